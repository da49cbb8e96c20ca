//! Shared pieces of the benchmark binaries: data generation, timing, memory figures.

use std::time::Instant;

#[cfg(feature = "net")]
pub mod net;
pub mod text;
pub mod tree;

pub use test_support::{fill_pseudo_random, limit_malloc_arenas, proc_status_kb};

/// Runs `f` and returns its result with the elapsed seconds.
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed().as_secs_f64())
}

/// Megabytes (10^6 bytes) per second.
pub fn mb_per_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / 1e6 / secs
}

/// CPU seconds of the calling thread so far.
pub fn thread_cpu_seconds() -> f64 {
    cpu_clock(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// CPU seconds of the whole process so far (every thread, user and system).
pub fn process_cpu_seconds() -> f64 {
    cpu_clock(libc::CLOCK_PROCESS_CPUTIME_ID)
}

fn cpu_clock(clock: libc::clockid_t) -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Starts this process's peak resident memory (VmHWM) over from its current resident memory.
pub fn reset_peak_rss() {
    std::fs::write("/proc/self/clear_refs", "5").expect("reset the peak resident memory");
}

/// Bytes of the files under `dir` (recursively).
pub fn dir_size(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

/// Runs `command` (a benchmark's child process) and returns the JSON object it printed;
/// panics with its standard error if it failed.
pub fn child_json(command: &mut std::process::Command) -> serde_json::Value {
    let out = command.output().expect("start the child process");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the child printed one JSON object")
}
