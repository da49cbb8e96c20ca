//! Helpers shared by the tests and benchmarks of the workspace. A dev-dependency only (and a
//! dependency of the unpublished `benches` crate): never in a library's dependency graph.

pub mod http;
pub mod netns;

/// Deterministic pseudo-random bytes (xorshift64), so failures reproduce.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut out = vec![0u8; len];
    fill_pseudo_random(&mut out, seed);
    out
}

/// Fills `buf` with the bytes [`pseudo_random`] makes for `seed`.
pub fn fill_pseudo_random(buf: &mut [u8], seed: u64) {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for chunk in buf.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
}

/// The same allocator setting as the `archive` binary (see its `main.rs`): at most two glibc
/// malloc arenas, so a benchmark that stands in for the binary measures what it would hold.
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes a setting of the allocator.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

/// A value of `/proc/PID/status` in KiB (`VmHWM`, `VmRSS`, ...), for `pid` or this process.
pub fn proc_status_kb(pid: Option<u32>, field: &str) -> Option<u64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/status"),
        None => "/proc/self/status".to_owned(),
    };
    let status = std::fs::read_to_string(path).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Checks that the fuzz seeds committed in `dir` are exactly `seeds` (name -> bytes), after
/// writing them there first when `ARCHIVE_WRITE_FUZZ_SEEDS` is set: a format change shows up
/// as a failing test until the seeds are written again.
pub fn check_fuzz_seeds(
    dir: &std::path::Path,
    seeds: &std::collections::BTreeMap<String, Vec<u8>>,
) {
    if std::env::var_os("ARCHIVE_WRITE_FUZZ_SEEDS").is_some() {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).unwrap();
        for (name, bytes) in seeds {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
    let committed: std::collections::BTreeMap<String, Vec<u8>> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (write them: ARCHIVE_WRITE_FUZZ_SEEDS=1 and the seeds test)",
                dir.display()
            )
        })
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    assert!(
        committed == *seeds,
        "the seeds in {} are not what this code makes: a format changed? (write them again \
         with ARCHIVE_WRITE_FUZZ_SEEDS=1)",
        dir.display()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_bytes_and_lengths_are_exact() {
        assert_eq!(pseudo_random(13, 7), pseudo_random(13, 7));
        assert_ne!(pseudo_random(64, 7), pseudo_random(64, 8));
        assert_eq!(pseudo_random(13, 7).len(), 13);
        assert_eq!(pseudo_random(13, 7)[..], pseudo_random(20, 7)[..13]);
        assert!(proc_status_kb(None, "VmRSS").unwrap() > 0);
    }
}
