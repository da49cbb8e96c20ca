//! The benchmark tree: many small files in 1,000 folders plus a few large ones, and its 1 %
//! change. Shared by `vs-rsync` and `small-files` so both measure the same tree.

use std::path::{Path, PathBuf};

use clap::Args;

use crate::fill_pseudo_random;

/// The tree's shape and where it goes, as command-line options.
#[derive(Debug, Clone, Args)]
pub struct TreeArgs {
    /// Small files in the tree.
    #[arg(long, default_value_t = 100_000)]
    pub small: u64,
    /// Large files in the tree.
    #[arg(long, default_value_t = 3)]
    pub large: u64,
    /// Size of each large file in MiB.
    #[arg(long, default_value_t = 64)]
    pub large_mib: usize,
    /// Where the temporary files go (the same disk for every tool).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

impl TreeArgs {
    /// A temporary folder under `--dir` (or the system's).
    pub fn tempdir(&self) -> tempfile::TempDir {
        match &self.dir {
            Some(d) => tempfile::tempdir_in(d),
            None => tempfile::tempdir(),
        }
        .expect("temporary folder")
    }
}

/// Writes the tree: `small` files of 512 B to 8 KiB and `large` files of `large_size` bytes;
/// returns (files, bytes).
pub fn generate(tree: &Path, small: u64, large: u64, large_size: usize, salt: u64) -> (u64, u64) {
    let mut bytes = 0;
    for i in 0..small {
        bytes += write_small(tree, i, salt);
    }
    let mut buf = vec![0u8; large_size];
    for i in 0..large {
        fill_pseudo_random(&mut buf, 1_000_000 + i);
        write(&tree.join(format!("large/{i}.bin")), &buf);
        bytes += large_size as u64;
    }
    (small + large, bytes)
}

fn small_path(tree: &Path, i: u64) -> PathBuf {
    tree.join(format!("d{:03}/f{i}.txt", i % 1000))
}

fn write_small(tree: &Path, i: u64, salt: u64) -> u64 {
    let len = 512 + ((i * 7919 + salt * 13) % (8192 - 512)) as usize;
    let mut buf = vec![0u8; len];
    fill_pseudo_random(&mut buf, i * 31 + salt);
    write(&small_path(tree, i), &buf);
    len as u64
}

fn write(path: &Path, data: &[u8]) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, data).expect("write");
}

/// Rewrites every 100th small file (new content, new size) and 1 % of each large file in
/// place; returns (files, bytes) changed.
pub fn change(tree: &Path, small: u64, large: u64, large_size: usize) -> (u64, u64) {
    let (mut files, mut bytes) = (0, 0);
    for i in (0..small).step_by(100) {
        bytes += write_small(tree, i, 7);
        files += 1;
    }
    for i in 0..large {
        let path = tree.join(format!("large/{i}.bin"));
        let mut data = std::fs::read(&path).expect("read large");
        let span = large_size / 100;
        let at = large_size / 3;
        fill_pseudo_random(&mut data[at..at + span], 5_000 + i);
        write(&path, &data);
        files += 1;
        bytes += span as u64;
    }
    (files, bytes)
}
