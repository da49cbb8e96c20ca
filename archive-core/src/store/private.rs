//! Keeping the data folder private: the database holds the server's secret key, and the blobs
//! may be private documents. Other local users must not read either.
//!
//! - `init` makes a new (or empty) folder 0700, and the files in it 0600.
//! - A store made by an earlier version (no `private` record yet) is tightened on first open.
//! - After that, a folder that is open to group or others, or that belongs to another user, is
//!   refused: someone opened it up, and the error names the fix.
//!
//! Blob files inside `blobs/` are not tightened one by one (that would be a scan of every blob
//! at start-up); the folders above them are 0700, which is what keeps others out.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;

use crate::error::{OpenError, StorageError};
use crate::format::layout::{BLOB_DIR, DB_FILE, FORMAT_FILE, TMP_DIR};

const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;

/// Files `init` may find in a folder and still call it empty: what a crashed earlier `init`
/// leaves.
const OWN_NAMES: &[&str] = &[DB_FILE, BLOB_DIR, TMP_DIR];

/// Creates `dir` (and missing parents) private, or makes an existing empty one private.
pub(crate) fn create_private_dir(dir: &Path) -> Result<(), OpenError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true).mode(DIR_MODE);
    builder.create(dir).map_err(|e| StorageError::io(dir, e))?;
    let entries = fs::read_dir(dir).map_err(|e| StorageError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io(dir, e))?;
        let name = entry.file_name();
        if !OWN_NAMES.iter().any(|own| name == *own) {
            return Err(OpenError::NotEmpty {
                dir: dir.to_owned(),
            });
        }
    }
    check_owner(dir)?;
    set_mode(dir, DIR_MODE)?;
    Ok(())
}

/// Refuses a folder that belongs to another user.
pub(crate) fn check_owner(dir: &Path) -> Result<(), OpenError> {
    let meta = fs::metadata(dir).map_err(|e| StorageError::io(dir, e))?;
    let user = rustix::process::geteuid().as_raw();
    if meta.uid() != user {
        return Err(OpenError::NotOwner {
            dir: dir.to_owned(),
            owner: meta.uid(),
            user,
        });
    }
    Ok(())
}

/// Refuses a folder open to group or others.
pub(crate) fn check_private(dir: &Path) -> Result<(), OpenError> {
    let mode = fs::metadata(dir)
        .map_err(|e| StorageError::io(dir, e))?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        return Err(OpenError::Exposed {
            dir: dir.to_owned(),
            mode,
        });
    }
    Ok(())
}

/// Makes the folder, its sub-folders and the store's own files private (a store made by an
/// earlier version, or a new one).
pub(crate) fn tighten(dir: &Path) -> Result<(), StorageError> {
    set_mode(dir, DIR_MODE)?;
    for sub in [BLOB_DIR, TMP_DIR] {
        set_mode_if_present(&dir.join(sub), DIR_MODE)?;
    }
    for file in [DB_FILE, FORMAT_FILE] {
        set_mode_if_present(&dir.join(file), FILE_MODE)?;
    }
    // The blob shards (`blobs/ab`): 256 folders at most, cheap to fix.
    let blobs = dir.join(BLOB_DIR);
    if let Ok(shards) = fs::read_dir(&blobs) {
        for shard in shards.flatten() {
            if shard.file_type().is_ok_and(|t| t.is_dir()) {
                set_mode_if_present(&shard.path(), DIR_MODE)?;
            }
        }
    }
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> Result<(), StorageError> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| StorageError::io(path, e))
}

fn set_mode_if_present(path: &Path, mode: u32) -> Result<(), StorageError> {
    match fs::set_permissions(path, fs::Permissions::from_mode(mode)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::io(path, e)),
    }
}

/// Options for files the store creates: readable by the owner only.
pub(crate) fn private_file_options() -> fs::OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    let mut o = fs::OpenOptions::new();
    o.write(true).create(true).truncate(true).mode(FILE_MODE);
    o
}
