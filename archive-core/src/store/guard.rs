//! A database that is damaged on disk can make redb panic inside a read (it trusts the pages
//! it reads). The store turns such a panic into [`StorageError::Damaged`], so a damaged file is
//! reported as damage, never a crash; `verify` and `doctor` run redb's own integrity check.

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::error::StorageError;

/// Runs `f`; a panic inside it becomes a "damaged database" error.
pub(crate) fn guarded<T, E: From<StorageError>>(f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
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
