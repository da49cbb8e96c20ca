//! A database that is damaged on disk can make redb panic inside a read (it trusts the pages
//! it reads). The store turns such a panic into [`StorageError::Damaged`], so a damaged file is
//! reported as damage, never a crash; `verify` and `doctor` run redb's own integrity check.
//!
//! Every guarded operation first runs the call check a layer above may register (see
//! [`set_call_check`]).

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::error::StorageError;

/// A check that every store operation runs first (outside the guard that turns panics into
/// errors), registered by a layer that wants to catch calls from the wrong thread: in
/// `archive-net`'s debug builds, a store call on an async task outside its blocking pool
/// panics.
static CALL_CHECK: std::sync::OnceLock<fn()> = std::sync::OnceLock::new();

/// Registers the check every store operation runs first; only the first registration in a
/// process counts. Not part of the supported API.
#[doc(hidden)]
pub fn set_call_check(check: fn()) {
    let _ = CALL_CHECK.set(check);
}

/// Runs the registered call check, if any.
#[inline]
pub(crate) fn call_check() {
    if let Some(check) = CALL_CHECK.get() {
        check();
    }
}

/// Runs `f`; a panic inside it becomes a "damaged database" error.
pub(crate) fn guarded<T, E: From<StorageError>>(f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
    call_check();
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no detail".to_owned());
            Err(StorageError::Damaged(format!(
                "the database failed while reading it ({what}); it is probably damaged on disk"
            ))
            .into())
        }
    }
}
