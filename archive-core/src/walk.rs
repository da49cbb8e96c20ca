//! Turning paths on disk into (file, key) pairs, the same way for `add` and for `diff --dir`.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, PoisonError};

use crate::entry::FileMeta;
use crate::error::AddError;
use crate::format::entry::MODE_BITS;
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
    /// Its modification time and mode, for its entry.
    pub(crate) meta: FileMeta,
}

/// An empty folder found under a path given to add (it gets a folder entry).
#[derive(Debug, Clone)]
pub(crate) struct FoundFolder {
    pub(crate) key: String,
    pub(crate) meta: FileMeta,
}

/// The modification time and permission bits of a file or folder.
pub(crate) fn meta_of(meta: &fs::Metadata) -> FileMeta {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        FileMeta {
            modified_ns: Some(
                meta.mtime()
                    .saturating_mul(1_000_000_000)
                    .saturating_add(meta.mtime_nsec()),
            ),
            mode: Some(meta.mode() & MODE_BITS),
        }
    }
    #[cfg(not(unix))]
    {
        let modified_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .and_then(|d| i64::try_from(d.as_nanos()).ok());
        let _ = MODE_BITS;
        FileMeta {
            modified_ns,
            mode: None,
        }
    }
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

/// Threads a walk uses at most.
const MAX_WALK_THREADS: usize = 4;

/// What a walk found.
#[derive(Debug, Default)]
pub(crate) struct Walk {
    /// Regular files, in key order.
    pub(crate) found: Vec<FoundFile>,
    /// Folders with nothing in them, in key order.
    pub(crate) empty_folders: Vec<FoundFolder>,
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
        walk_dir(path, &base, meta_of(&meta), &mut walk)?;
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
            meta: meta_of(&meta),
        });
    } else {
        walk.skipped.push(Skipped {
            path: path.to_owned(),
            reason: kind_of(&meta).into(),
        });
    }
    // Keys are distinct (one per path), so an unstable sort gives the one order.
    walk.found.sort_unstable_by(|a, b| a.key.cmp(&b.key));
    walk.empty_folders
        .sort_unstable_by(|a, b| a.key.cmp(&b.key));
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

/// Walks the tree under `root` on a few threads (a folder at a time from a shared queue): on a
/// tree of many small files the walk is mostly `stat` calls, which run in parallel in the
/// kernel. The order of what is found does not depend on the threads: the caller sorts.
fn walk_dir(root: &Path, base: &str, meta: FileMeta, walk: &mut Walk) -> Result<(), AddError> {
    struct Queue {
        dirs: Vec<Folder>,
        /// Folders being read right now (they may add more).
        busy: usize,
        error: Option<AddError>,
    }
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, MAX_WALK_THREADS);
    let queue = Mutex::new(Queue {
        dirs: vec![Folder {
            path: root.to_owned(),
            key: base.to_owned(),
            meta,
        }],
        busy: 0,
        error: None,
    });
    let changed = Condvar::new();
    let lock = || queue.lock().unwrap_or_else(PoisonError::into_inner);
    let parts: Vec<Walk> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Walk::default();
                    let mut subdirs = Vec::new();
                    loop {
                        let next = {
                            let mut q = lock();
                            loop {
                                if q.error.is_some() {
                                    break None;
                                }
                                if let Some(dir) = q.dirs.pop() {
                                    q.busy += 1;
                                    break Some(dir);
                                }
                                if q.busy == 0 {
                                    break None;
                                }
                                q = changed.wait(q).unwrap_or_else(PoisonError::into_inner);
                            }
                        };
                        let Some(folder) = next else {
                            changed.notify_all();
                            return mine;
                        };
                        let result = read_folder(folder, &mut mine, &mut subdirs);
                        let mut q = lock();
                        q.busy -= 1;
                        match result {
                            Ok(()) => q.dirs.append(&mut subdirs),
                            Err(e) => {
                                q.error.get_or_insert(e);
                            }
                        }
                        drop(q);
                        changed.notify_all();
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    if let Some(e) = queue
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner)
        .error
    {
        return Err(e);
    }
    for part in parts {
        walk.found.extend(part.found);
        walk.empty_folders.extend(part.empty_folders);
        walk.skipped.extend(part.skipped);
        walk.unreadable.extend(part.unreadable);
    }
    walk.skipped.sort_by(|a, b| a.path.cmp(&b.path));
    walk.unreadable.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(())
}

/// A folder to read.
struct Folder {
    path: PathBuf,
    /// The key of what is in it ("" at the root of a collection).
    key: String,
    meta: FileMeta,
}

/// Reads one folder: its files go to `walk`, its sub-folders to `subdirs`; if it holds
/// neither (nothing, or only what is skipped), it is an empty folder.
fn read_folder(folder: Folder, walk: &mut Walk, subdirs: &mut Vec<Folder>) -> Result<(), AddError> {
    let (dir, base) = (folder.path.as_path(), folder.key.as_str());
    let before = (walk.found.len(), subdirs.len());
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
    // In the order the folder lists them: what is found is sorted once, by key, at the end.
    let children: Vec<_> = entries.collect::<Result<_, _>>().map_err(read_err)?;
    for child in children {
        let path = child.path();
        let Ok(name) = child.file_name().into_string() else {
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
        // Relative to the open folder (fstatat), not the whole path again; links not followed.
        let meta = match child.metadata() {
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
            subdirs.push(Folder {
                path,
                key,
                meta: meta_of(&meta),
            });
        } else if meta.is_file() {
            walk.found.push(FoundFile {
                path,
                key,
                size: meta.len(),
                stat: FileStat::of(&meta),
                meta: meta_of(&meta),
            });
        } else {
            walk.skipped.push(Skipped {
                path,
                reason: kind_of(&meta).into(),
            });
        }
    }
    if (walk.found.len(), subdirs.len()) == before && !base.is_empty() {
        walk.empty_folders.push(FoundFolder {
            key: folder.key,
            meta: folder.meta,
        });
    }
    Ok(())
}
