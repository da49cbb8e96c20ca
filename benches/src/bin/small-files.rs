//! `archive add` of many small files against the real tools, side by side in one run:
//!
//! - the first `add` of the tree against `tar -cf` of the same tree into one file on the same
//!   disk followed by `sync` (reading every file and writing it once, durably);
//! - a re-`add` with nothing changed against `rsync -a TREE/ COPY/` onto an identical copy
//!   (rsync stats both trees; the archive stats one and looks up its quick check);
//! - a re-`add` after 1 % of the files changed (how many files it read, and its time), with
//!   `rsync -a` of the same change for reference.
//!
//! ```text
//! cargo run --release -p archive-benches --bin small-files -- \
//!     [--small 100000] [--large 3] [--large-mib 64] [--dir DIR] [--json]
//! ```
//! The tree is `vs-rsync`'s. Dirty pages are flushed (`sync`, untimed) before every timed
//! step, so no step pays for the one before it. The archive runs in this process, through the
//! library call the CLI makes (`Collection::add_path`); the tools run as processes.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use archive_benches::timed;
use archive_benches::tree::{change, generate, TreeArgs};
use archive_core::{AddReport, NoProgress, Store};
use clap::Parser;

#[derive(Debug, Parser)]
#[command(about = "archive add of many small files, against tar + sync and rsync -a")]
struct Args {
    #[command(flatten)]
    tree: TreeArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs a command to the end; returns its wall time in seconds.
fn run(program: &str, args: &[&str]) -> f64 {
    let started = Instant::now();
    let status = Command::new(program)
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(status.success(), "{program} {args:?}: {status}");
    started.elapsed().as_secs_f64()
}

fn flush() {
    run("sync", &[]);
}

fn add(store: &Store, tree: &Path) -> (AddReport, f64) {
    let (report, secs) = timed(|| {
        store
            .collection("tree")
            .unwrap()
            .add_path(tree, Some(""), &mut NoProgress)
            .expect("add")
    });
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    (report, secs)
}

fn main() {
    let args = Args::parse();
    let tmp = args.tree.tempdir();
    let tree = tmp.path().join("tree");
    let large_size = args.tree.large_mib << 20;
    let (files, bytes) = generate(&tree, args.tree.small, args.tree.large, large_size, 0);
    let generated = Instant::now();
    let tree_arg = format!("{}/", tree.display());

    flush();
    let tar_file = tmp.path().join("tree.tar");
    let tar_secs = {
        let started = Instant::now();
        run(
            "tar",
            &[
                "-cf",
                tar_file.to_str().unwrap(),
                "-C",
                tree.to_str().unwrap(),
                ".",
            ],
        );
        flush();
        started.elapsed().as_secs_f64()
    };
    std::fs::remove_file(&tar_file).expect("remove the tar file");

    // The quick check records only files that changed more than two seconds before an add.
    let settle = Duration::from_millis(2500).saturating_sub(generated.elapsed());
    std::thread::sleep(settle);
    flush();
    let store = Store::init(tmp.path().join("store")).expect("store");
    let (first, add_secs) = add(&store, &tree);
    assert_eq!(first.added, files);

    flush();
    let (again, readd_secs) = add(&store, &tree);
    assert_eq!((again.added, again.files_read), (0, 0), "{again:?}");

    let copy = tmp.path().join("copy");
    let copy_arg = format!("{}/", copy.display());
    run("rsync", &["-a", &tree_arg, &copy_arg]);
    flush();
    let rsync_nochange_secs = run("rsync", &["-a", &tree_arg, &copy_arg]);

    let (changed_files, changed_bytes) =
        change(&tree, args.tree.small, args.tree.large, large_size);
    flush();
    let (after_change, readd_change_secs) = add(&store, &tree);
    assert_eq!(after_change.added, changed_files);
    flush();
    let rsync_change_secs = run("rsync", &["-a", &tree_arg, &copy_arg]);

    let report = serde_json::json!({
        "files": files,
        "bytes": bytes,
        "tar_sync_secs": tar_secs,
        "add_secs": add_secs,
        "add_over_tar": add_secs / tar_secs,
        "readd_nochange_secs": readd_secs,
        "readd_nochange_files_read": again.files_read,
        "rsync_nochange_secs": rsync_nochange_secs,
        "readd_speedup_over_rsync": rsync_nochange_secs / readd_secs,
        "changed_files": changed_files,
        "changed_bytes": changed_bytes,
        "readd_change_secs": readd_change_secs,
        "readd_change_files_read": after_change.files_read,
        "readd_change_unchanged": after_change.unchanged,
        "rsync_change_secs": rsync_change_secs,
    });
    if args.json {
        println!("{report}");
    } else {
        println!("tree: {files} files, {:.1} MB", bytes as f64 / 1e6);
        println!(
            "add:                 {add_secs:>7.2} s   tar -cf + sync {tar_secs:>6.2} s   add / tar = {:.2} (goal <= 1.5)",
            add_secs / tar_secs
        );
        println!(
            "re-add, no change:   {readd_secs:>7.2} s   rsync -a       {rsync_nochange_secs:>6.2} s   rsync / re-add = {:.1}x (goal >= 3), {} files read",
            rsync_nochange_secs / readd_secs,
            again.files_read
        );
        println!(
            "re-add, 1 % changed: {readd_change_secs:>7.2} s   rsync -a       {rsync_change_secs:>6.2} s   {} files read of {changed_files} changed, {} unchanged",
            after_change.files_read, after_change.unchanged
        );
    }
}
