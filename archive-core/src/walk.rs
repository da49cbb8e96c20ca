//! Turning paths on disk into (file, key) pairs, the same way for `add` and for `diff --dir`.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::AddError;
use crate::names::validate_key;
use crate::store::FileStat;

/// A regular file found under a path given to add, with the key it will have.
#[derive(Debug, Clone)]
pub(crate) struct FoundFile {
    pub(crate) path: PathBuf,
    pub(crate) key: String,
    pub(crate) size: u64,
    /// Its `stat` as the walk saw it, for the quick check of `add`.
    pub(crate) stat: Option<FileStat>,
}

/// Something under a path that is not added, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The path on disk.
    pub path: PathBuf,
    /// Why it was left out.
    pub reason: String,
}

/// The key a path is added under: `as_key` when given (empty for a folder means "at the
/// root"), else the path's own file name.
pub(crate) fn base_key(path: &Path, as_key: Option<&str>) -> Result<String, AddError> {
    if let Some(k) = as_key {
        let k = k.trim_matches('/');
        if !k.is_empty() {
            validate_key(k).map_err(|e| AddError::BadPath {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
        }
        return Ok(k.to_owned());
    }
    let name = match path.file_name() {
        Some(n) => n.to_owned(),
        // `.`, `..` or `/`: name it after the folder it resolves to.
        None => fs::canonicalize(path)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_owned()))
            .ok_or_else(|| AddError::NeedsKey {
                path: path.to_owned(),
                reason: "it has no name to use as a key",
            })?,
    };
    name.into_string().map_err(|_| AddError::NeedsKey {
        path: path.to_owned(),
        reason: "its name is not valid UTF-8",
    })
}

fn join_key(base: &str, name: &str) -> String {
    if base.is_empty() {
        name.to_owned()
    } else {
        format!("{base}/{name}")
    }
}

/// What a walk found.
#[derive(Debug, Default)]
pub(crate) struct Walk {
    /// Regular files, in key order.
    pub(crate) found: Vec<FoundFile>,
    /// Links, special files and unusable names, left out on purpose.
    pub(crate) skipped: Vec<Skipped>,
    /// Folders or entries that could not be read: their files are missing from `found`.
    pub(crate) unreadable: Vec<Skipped>,
}

/// Every regular file at or under `path`, plus what was skipped or could not be read.
pub(crate) fn walk(path: &Path, as_key: Option<&str>) -> Result<Walk, AddError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(AddError::NotFound {
                path: path.to_owned(),
            })
        }
        Err(e) => {
            return Err(AddError::Read {
                path: path.to_owned(),
                source: e,
            })
        }
    };
    let base = base_key(path, as_key)?;
    let mut walk = Walk::default();
    if meta.is_dir() {
        walk_dir(path, &base, &mut walk)?;
    } else if meta.is_file() {
        if base.is_empty() {
            return Err(AddError::NeedsKey {
                path: path.to_owned(),
                reason: "a file needs a key, and the key given is empty",
            });
        }
        walk.found.push(FoundFile {
            path: path.to_owned(),
            key: base,
            size: meta.len(),
            stat: FileStat::of(&meta),
        });
    } else {
        walk.skipped.push(Skipped {
            path: path.to_owned(),
            reason: kind_of(&meta).into(),
        });
    }
    walk.found.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(walk)
}

fn kind_of(meta: &fs::Metadata) -> &'static str {
    let ft = meta.file_type();
    if ft.is_symlink() {
        return "symbolic link (not followed)";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return "named pipe (special file)";
        }
        if ft.is_socket() {
            return "socket (special file)";
        }
        if ft.is_block_device() || ft.is_char_device() {
            return "device (special file)";
        }
    }
    "special file"
}

fn walk_dir(dir: &Path, base: &str, walk: &mut Walk) -> Result<(), AddError> {
    let read_err = |e| AddError::Read {
        path: dir.to_owned(),
        source: e,
    };
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            walk.unreadable.push(Skipped {
                path: dir.to_owned(),
                reason: format!("cannot read folder: {e}"),
            });
            return Ok(());
        }
    };
    let mut children: Vec<_> = entries.collect::<Result<_, _>>().map_err(read_err)?;
    children.sort_by_key(|e| e.file_name());
    for child in children {
        let path = child.path();
        let Some(name) = child.file_name().to_str().map(str::to_owned) else {
            walk.skipped.push(Skipped {
                path,
                reason: "name is not valid UTF-8".into(),
            });
            continue;
        };
        let key = join_key(base, &name);
        if let Err(e) = validate_key(&key) {
            walk.skipped.push(Skipped {
                path,
                reason: e.to_string(),
            });
            continue;
        }
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) => {
                walk.unreadable.push(Skipped {
                    path,
                    reason: format!("cannot stat: {e}"),
                });
                continue;
            }
        };
        if meta.is_dir() {
            walk_dir(&path, &key, walk)?;
        } else if meta.is_file() {
            walk.found.push(FoundFile {
                path,
                key,
                size: meta.len(),
                stat: FileStat::of(&meta),
            });
        } else {
            walk.skipped.push(Skipped {
                path,
                reason: kind_of(&meta).into(),
            });
        }
    }
    Ok(())
}
