//! Deterministic fault points, for tests that must cut a write at every step or hold a read
//! for as long as they like. Compiled only with the `fault-injection` feature (test builds);
//! without it every point is an empty inline function.
//!
//! Two ways to use them:
//! - In-process: `set_hook` installs a function that every point calls (it may block, to
//!   hold a reader, or panic).
//! - Across a process boundary, for crash tests: with `ARCHIVE_FAULT_ABORT_AT=N` in its
//!   environment a process aborts (as `kill -9` would stop it) at its N-th write step; with
//!   `ARCHIVE_FAULT_LOG=FILE` it appends one line per write step to FILE, so a test can count
//!   the steps of a command and then cut it at each one.

use crate::hash::Hash;

/// A place where the store can be made to fail or wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point<'a> {
    /// A blob's bytes are about to be read (whole or a range, to return or to send).
    BlobRead(&'a Hash),
    /// A step of writing: see [`WriteStep`].
    Write(WriteStep),
}

/// The steps by which new content becomes part of the store, in the order they happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteStep {
    /// A blob's bytes were appended to a pack (not yet durable).
    BlobAppended,
    /// The packs written so far were made durable (`fdatasync`, and the folder's new entries).
    PacksDurable,
    /// A write transaction is about to commit.
    Commit,
    /// A write transaction committed.
    Committed,
}

#[cfg(feature = "fault-injection")]
mod active {
    use std::io::Write;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{OnceLock, PoisonError, RwLock};

    use super::Point;

    use super::Hook;

    static HOOK: RwLock<Option<Hook>> = RwLock::new(None);
    static WRITE_STEPS: AtomicU64 = AtomicU64::new(0);

    struct FromEnv {
        abort_at: Option<u64>,
        log: Option<std::path::PathBuf>,
    }

    fn from_env() -> &'static FromEnv {
        static ENV: OnceLock<FromEnv> = OnceLock::new();
        ENV.get_or_init(|| FromEnv {
            abort_at: std::env::var("ARCHIVE_FAULT_ABORT_AT")
                .ok()
                .and_then(|v| v.parse().ok()),
            log: std::env::var_os("ARCHIVE_FAULT_LOG").map(Into::into),
        })
    }

    pub(crate) fn set_hook(hook: Option<Hook>) {
        *HOOK.write().unwrap_or_else(PoisonError::into_inner) = hook;
    }

    pub(crate) fn point(p: Point<'_>) {
        if let Point::Write(step) = p {
            let n = WRITE_STEPS.fetch_add(1, Ordering::SeqCst) + 1;
            let env = from_env();
            if let Some(path) = &env.log {
                if let Ok(mut f) = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                {
                    let _ = writeln!(f, "{n} {step:?}");
                }
            }
            if env.abort_at == Some(n) {
                std::process::abort();
            }
        }
        let hook = HOOK.read().unwrap_or_else(PoisonError::into_inner).clone();
        if let Some(hook) = hook {
            hook(p);
        }
    }
}

/// What [`set_hook`] installs.
#[cfg(feature = "fault-injection")]
pub type Hook = std::sync::Arc<dyn Fn(Point<'_>) + Send + Sync>;

/// Installs `hook`, called at every fault point of every store in this process (replacing
/// any earlier one); `None` removes it.
#[cfg(feature = "fault-injection")]
pub fn set_hook(hook: Option<Hook>) {
    active::set_hook(hook);
}

/// Passes a fault point.
#[inline(always)]
pub(crate) fn point(_p: Point<'_>) {
    #[cfg(feature = "fault-injection")]
    active::point(_p);
}
