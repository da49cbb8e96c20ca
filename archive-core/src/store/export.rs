//! Writing files out of the store into a folder the user names, safe even when other users
//! can write in that folder (a shared `/tmp`, a USB stick).
//!
//! - The destination folder itself is the user's choice and is opened as named; below it,
//!   nothing is followed: every folder is opened with `O_NOFOLLOW` relative to its parent's
//!   descriptor, so a symbolic link planted at `DEST/docs` is never traversed and nothing is
//!   written outside DEST.
//! - Each file is written under a short random temporary name created exclusively
//!   (`O_CREAT|O_EXCL|O_NOFOLLOW`), so no planted link or file is written through; the name
//!   does not grow with the final name, so a 255-byte file name still exports.
//! - Files are made durable a batch at a time (one `syncfs`), then renamed into place; a new
//!   file never replaces something that appeared meanwhile (`RENAME_NOREPLACE`); the folders'
//!   entries are made durable at the end.
//! - Each file gets its modification time and mode from its entry (the mode less the
//!   process's umask, as `tar` does for a user other than root); empty folders are created
//!   from their folder entries, deepest first, and get their time and mode last.
//! - What cannot be written safely is skipped and reported, key by key, with the reason: the
//!   export does the rest and the caller exits non-zero.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags, CWD};
use rustix::io::Errno;

use super::{Collection, Store, ViewItem, ViewPoint};
use crate::entry::{FileMeta, FileRef};
use crate::error::{ExportError, ReadError};
use crate::hash::Hash;
use crate::names::{parent_folders, validate_key};

/// Files are made durable and renamed into place in batches of this many files or bytes.
const BATCH_FILES: usize = 1000;
const BATCH_BYTES: u64 = 64 * 1024 * 1024;

/// What an export wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportReport {
    /// Files written.
    pub written: u64,
    /// Files already present with the right content.
    pub unchanged: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Empty folders created (or given their time and mode) from folder entries.
    pub folders: u64,
    /// Keys not exported, and why. Everything else was.
    pub skipped: Vec<SkippedKey>,
}

/// A key an export left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedKey {
    /// The key.
    pub key: String,
    /// Why it was not written.
    pub reason: String,
}

/// What is at a target path now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    Nothing,
    /// A regular file: its device and inode, so a replacement can check it is still the one.
    File {
        dev: u64,
        ino: u64,
        size: u64,
    },
    Link,
    Folder,
    Other,
}

/// A file to write, and what its rename may replace.
struct Pending<'a> {
    index: usize,
    item: &'a ViewItem,
    dir: usize,
    name: String,
    tmp: String,
    replaces: Found,
}

/// The open folders of the key being exported: DEST at the bottom, then one per component.
struct FolderStack {
    /// (path from DEST, descriptor); `path` of DEST is empty.
    open: Vec<(String, OwnedFd)>,
    /// Folders kept open for the pending batch, by path.
    kept: HashMap<String, usize>,
    kept_fds: Vec<OwnedFd>,
}

/// True when `path` is `folder` or lies under it (`""` is DEST, above everything).
fn within(path: &str, folder: &str) -> bool {
    folder.is_empty()
        || path
            .strip_prefix(folder)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

impl FolderStack {
    fn new(dest: OwnedFd) -> Self {
        FolderStack {
            open: vec![(String::new(), dest)],
            kept: HashMap::new(),
            kept_fds: Vec::new(),
        }
    }

    fn dest(&self) -> &OwnedFd {
        &self.open[0].1
    }

    fn current(&self) -> &OwnedFd {
        &self.open.last().expect("DEST stays open").1
    }

    /// Opens the folder `path` below DEST one component at a time, never following a link,
    /// creating what is missing when `create`. Returns false when a folder is missing (and
    /// not created); a reason when something else is in the way.
    fn enter(&mut self, path: &str, create: bool) -> Result<bool, String> {
        while self.open.len() > 1 && !within(path, &self.open.last().expect("not empty").0) {
            self.open.pop();
        }
        let top = self.open.last().expect("not empty").0.clone();
        let rest = if top.is_empty() {
            path
        } else {
            path[top.len()..].trim_start_matches('/')
        };
        for component in rest.split('/').filter(|c| !c.is_empty()) {
            let (parent_path, parent) = self.open.last().expect("not empty");
            let Some(fd) = open_folder(parent, component, create)? else {
                return Ok(false);
            };
            let full = if parent_path.is_empty() {
                component.to_owned()
            } else {
                format!("{parent_path}/{component}")
            };
            self.open.push((full, fd));
        }
        Ok(true)
    }

    /// A descriptor of the current folder that stays open until the batch is done.
    fn keep_current(&mut self) -> Result<usize, io::Error> {
        let (path, fd) = self.open.last().expect("not empty");
        if let Some(&i) = self.kept.get(path) {
            return Ok(i);
        }
        let dup = fd.try_clone()?;
        self.kept_fds.push(dup);
        self.kept.insert(path.clone(), self.kept_fds.len() - 1);
        Ok(self.kept_fds.len() - 1)
    }

    fn clear_kept(&mut self) {
        self.kept.clear();
        self.kept_fds.clear();
    }
}

fn open_folder(parent: &OwnedFd, name: &str, create: bool) -> Result<Option<OwnedFd>, String> {
    let flags = OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::RDONLY | OFlags::CLOEXEC;
    let in_the_way = |parent: &OwnedFd| match what_is(parent, name) {
        Ok(Found::Link) => format!("`{name}` is a symbolic link (not followed)"),
        _ => format!("`{name}` is not a folder"),
    };
    match rustix::fs::openat(parent, name, flags, Mode::empty()) {
        Ok(fd) => return Ok(Some(fd)),
        Err(Errno::NOENT) if !create => return Ok(None),
        Err(Errno::NOENT) => {}
        Err(Errno::LOOP) | Err(Errno::NOTDIR) => return Err(in_the_way(parent)),
        Err(e) => return Err(format!("cannot open folder `{name}`: {e}")),
    }
    match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o777)) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(format!("cannot create folder `{name}`: {e}")),
    }
    match rustix::fs::openat(parent, name, flags, Mode::empty()) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::LOOP) | Err(Errno::NOTDIR) => Err(in_the_way(parent)),
        Err(e) => Err(format!("cannot open folder `{name}`: {e}")),
    }
}

fn what_is(dir: &OwnedFd, name: &str) -> io::Result<Found> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => Found::File {
                dev: st.st_dev,
                ino: st.st_ino,
                size: st.st_size as u64,
            },
            FileType::Symlink => Found::Link,
            FileType::Directory => Found::Folder,
            _ => Found::Other,
        }),
        Err(Errno::NOENT) => Ok(Found::Nothing),
        Err(e) => Err(e.into()),
    }
}

/// BLAKE3 of a regular file in `dir`, opened without following a link and without waiting
/// (a FIFO swapped in would block a plain open), and only if it is still the regular file
/// `(dev, ino)` that was looked at.
fn hash_at(dir: &OwnedFd, name: &str, dev: u64, ino: u64) -> io::Result<(Hash, File)> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
    let fd = rustix::fs::openat(dir, name, flags, Mode::empty())?;
    let st = rustix::fs::fstat(&fd)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile
        || (st.st_dev, st.st_ino) != (dev, ino)
    {
        return Err(io::Error::other("it changed while being looked at"));
    }
    let mut f = File::from(fd);
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok((hasher.finalize().into(), f))
}

/// The process's umask, read once from `/proc/self/status` (setting and restoring it to
/// read it would race with other threads); `022` where that cannot be read.
fn umask() -> u32 {
    static UMASK: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *UMASK.get_or_init(|| {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|status| {
                let line = status.lines().find(|l| l.starts_with("Umask:"))?;
                u32::from_str_radix(line["Umask:".len()..].trim(), 8).ok()
            })
            .unwrap_or(0o022)
    })
}

/// What a restored mode always grants the owner: a file can be read (a later export
/// compares it), a folder read and entered.
const OWNER_FILE: u32 = 0o400;
const OWNER_FOLDER: u32 = 0o500;

/// Gives an open file or folder the modification time and mode of its entry: the mode less the
/// umask, plus what the owner always keeps (`owner`: [`OWNER_FILE`] or [`OWNER_FOLDER`]), so
/// no entry, a peer's included, can lock this user out of what an export wrote. What the entry
/// does not say is left as it is.
pub(crate) fn apply_meta(fd: impl AsFd, meta: &FileMeta, owner: u32) -> io::Result<()> {
    if let Some(mode) = meta.mode {
        let mode = (mode & crate::format::entry::MODE_BITS & !umask()) | owner;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))?;
    }
    if let Some(ns) = meta.modified_ns {
        let modified = rustix::fs::Timespec {
            tv_sec: ns.div_euclid(1_000_000_000),
            tv_nsec: ns.rem_euclid(1_000_000_000) as _,
        };
        let times = rustix::fs::Timestamps {
            last_access: rustix::fs::Timespec {
                tv_sec: 0,
                tv_nsec: rustix::fs::UTIME_OMIT,
            },
            last_modification: modified,
        };
        rustix::fs::futimens(&fd, &times)?;
    }
    Ok(())
}

/// A fresh temporary name: short and fixed in length, whatever the final name.
fn temp_name() -> io::Result<String> {
    let mut r = [0u8; 8];
    getrandom::fill(&mut r).map_err(io::Error::other)?;
    Ok(format!(
        ".archive-{}.tmp",
        r.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ))
}

/// Creates a new temporary file in `dir` that nobody else had (exclusively, no links).
fn create_temp(dir: &OwnedFd) -> io::Result<(String, File)> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    loop {
        let name = temp_name()?;
        match rustix::fs::openat(dir, &name, flags, Mode::from_raw_mode(0o666)) {
            Ok(fd) => return Ok((name, File::from(fd))),
            Err(Errno::EXIST) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Renames `tmp` to `name` in `dir`: for a new file, never over something that appeared
/// since it was checked; for a replacement, only over the file that was checked.
fn rename_into_place(dir: &OwnedFd, tmp: &str, name: &str, replaces: Found) -> Result<(), String> {
    match replaces {
        Found::Nothing => {
            match rustix::fs::renameat_with(dir, tmp, dir, name, RenameFlags::NOREPLACE) {
                Ok(()) => Ok(()),
                Err(Errno::EXIST) => Err("something appeared there while exporting".into()),
                // File systems without RENAME_NOREPLACE: check, then rename.
                Err(Errno::INVAL) => match what_is(dir, name) {
                    Ok(Found::Nothing) => {
                        rustix::fs::renameat(dir, tmp, dir, name).map_err(|e| e.to_string())
                    }
                    _ => Err("something appeared there while exporting".into()),
                },
                Err(e) => Err(e.to_string()),
            }
        }
        Found::File { dev, ino, .. } => match what_is(dir, name) {
            Ok(Found::File { dev: d, ino: i, .. }) if (d, i) == (dev, ino) => {
                rustix::fs::renameat(dir, tmp, dir, name).map_err(|e| e.to_string())
            }
            _ => Err("it changed while exporting".into()),
        },
        Found::Link => match what_is(dir, name) {
            // The link itself is replaced; what it points to is not touched.
            Ok(Found::Link) => rustix::fs::renameat(dir, tmp, dir, name).map_err(|e| e.to_string()),
            _ => Err("it changed while exporting".into()),
        },
        Found::Folder | Found::Other => Err("something other than a file is in the way".into()),
    }
}

/// Opens (creating it if missing) the folder the user named.
fn open_dest(dest: &Path) -> Result<OwnedFd, ExportError> {
    let io_err = |source| ExportError::Io {
        path: dest.to_owned(),
        source,
    };
    std::fs::create_dir_all(dest).map_err(io_err)?;
    let flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC;
    rustix::fs::openat(CWD, dest, flags, Mode::empty()).map_err(|e| io_err(e.into()))
}

/// Keys that collide as file and folder in one view (possible only through peers: local
/// writes refuse them). Whichever came first (the file, or the earliest entry under the
/// folder) is exported; the others are skipped. Returns (index, reason) of the losers.
fn file_folder_conflicts(items: &[ViewItem]) -> Vec<(usize, String)> {
    let files: HashMap<&str, usize> = items
        .iter()
        .enumerate()
        .map(|(i, it)| (it.key.as_str(), i))
        .collect();
    // For each file that is also a folder: its children.
    let mut children: HashMap<usize, Vec<usize>> = HashMap::new();
    for (i, it) in items.iter().enumerate() {
        for folder in parent_folders(&it.key) {
            if let Some(&f) = files.get(folder) {
                children.entry(f).or_default().push(i);
            }
        }
    }
    let version = |i: usize| (items[i].time, items[i].entry);
    let mut losers = Vec::new();
    for (file, under) in children {
        let first_under = under.iter().map(|&c| version(c)).min().expect("not empty");
        if version(file) < first_under {
            for c in under {
                losers.push((
                    c,
                    format!(
                        "conflict: `{}` is a file, written before anything under it",
                        items[file].key
                    ),
                ));
            }
        } else {
            losers.push((
                file,
                "conflict: it is also a folder of keys written before it".to_owned(),
            ));
        }
    }
    losers.sort();
    losers.dedup_by_key(|(i, _)| *i);
    losers
}

impl Store {
    /// Writes every file of a view under `dest` (created if missing), byte for byte.
    ///
    /// A file already there with the same content is left alone; one with different content
    /// (or a link where a file goes) is an error unless `overwrite`, and the export then
    /// writes nothing. Nothing is written outside `dest`: links below it are never followed.
    /// Keys that cannot be written safely (a link or a file where a folder goes, a key that is
    /// also a folder of other keys, a name the file system refuses) are skipped and listed
    /// in [`ExportReport::skipped`]; everything else is exported.
    pub(super) fn export(
        &self,
        collection: &Collection<'_>,
        at: ViewPoint<'_>,
        dest: &Path,
        overwrite: bool,
    ) -> Result<ExportReport, ExportError> {
        let items = collection.list(at, "")?.collect::<Result<Vec<_>, _>>()?;
        let mut report = ExportReport::default();
        let mut skip: HashMap<usize, String> = file_folder_conflicts(&items).into_iter().collect();
        for (i, item) in items.iter().enumerate() {
            if let Err(e) = validate_key(&item.key) {
                skip.insert(i, e.to_string());
            }
        }
        let mut folders = FolderStack::new(open_dest(dest)?);
        // Check every target first, so a refused export writes nothing.
        let mut plan: Vec<(usize, Found)> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            if skip.contains_key(&i) {
                continue;
            }
            let (dir, name) = split_key(&item.key);
            let found = match folders.enter(dir, false) {
                Ok(true) => what_is(folders.current(), name).map_err(|source| ExportError::Io {
                    path: dest.join(&item.key),
                    source,
                })?,
                Ok(false) => Found::Nothing,
                Err(reason) => {
                    skip.insert(i, reason);
                    continue;
                }
            };
            match found {
                Found::Nothing => plan.push((i, found)),
                Found::File { size, dev, ino } if size == item.file.size => {
                    let (hash, file) =
                        hash_at(folders.current(), name, dev, ino).map_err(|source| {
                            ExportError::Io {
                                path: dest.join(&item.key),
                                source,
                            }
                        })?;
                    if hash == item.file.hash {
                        report.unchanged += 1;
                        if let Err(e) = apply_meta(&file, &item.meta, OWNER_FILE) {
                            skip.insert(
                                i,
                                format!("its content is there, but its time and mode cannot be set: {e}"),
                            );
                        }
                    } else if overwrite {
                        plan.push((i, found));
                    } else {
                        return Err(would_overwrite(dest, item));
                    }
                }
                Found::File { .. } | Found::Link if overwrite => plan.push((i, found)),
                Found::File { .. } | Found::Link => return Err(would_overwrite(dest, item)),
                Found::Folder => {
                    skip.insert(i, "a folder is in the way".into());
                }
                Found::Other => {
                    skip.insert(i, "something other than a file is in the way".into());
                }
            }
        }
        let mut batch: Vec<Pending<'_>> = Vec::new();
        let mut batch_bytes = 0;
        for (i, replaces) in plan {
            let item = &items[i];
            let (dir, name) = split_key(&item.key);
            if let Err(reason) = folders.enter(dir, true) {
                skip.insert(i, reason);
                continue;
            }
            let slot = folders.keep_current().map_err(|source| ExportError::Io {
                path: dest.join(dir),
                source,
            })?;
            let dir_fd = &folders.kept_fds[slot];
            let (tmp, mut f) = match create_temp(dir_fd) {
                Ok(t) => t,
                Err(e) => {
                    skip.insert(i, format!("cannot create a file in its folder: {e}"));
                    continue;
                }
            };
            let result = self
                .blobs()
                .write_to(&item.file, &mut f)
                .and_then(|()| apply_meta(&f, &item.meta, OWNER_FILE).map_err(ReadError::Output));
            drop(f);
            match result {
                Ok(()) => {}
                // Writing failed: the destination is the problem, and it is everyone's.
                Err(ReadError::Output(source)) => {
                    let _ = rustix::fs::unlinkat(dir_fd, &tmp, AtFlags::empty());
                    self.finish_batch(&mut folders, &mut batch, &mut report, &mut skip)?;
                    return Err(ExportError::Read {
                        key: item.key.clone(),
                        source: ReadError::Output(source),
                    });
                }
                // This file's content is not here or is damaged (verify names it): the others
                // are exported.
                Err(e) => {
                    let _ = rustix::fs::unlinkat(dir_fd, &tmp, AtFlags::empty());
                    let why = crate::error::chain(&e);
                    skip.insert(i, format!("its content cannot be read: {why}"));
                    continue;
                }
            }
            batch_bytes += item.file.size;
            batch.push(Pending {
                index: i,
                item,
                dir: slot,
                name: name.to_owned(),
                tmp,
                replaces,
            });
            if batch.len() >= BATCH_FILES || batch_bytes >= BATCH_BYTES {
                self.finish_batch(&mut folders, &mut batch, &mut report, &mut skip)?;
                batch_bytes = 0;
            }
        }
        self.finish_batch(&mut folders, &mut batch, &mut report, &mut skip)?;
        let folder_skips =
            export_folders(collection.folders(at)?, &items, &mut folders, &mut report);
        // The folders' new entries, durable too.
        rustix::fs::syncfs(folders.dest()).map_err(|e| ExportError::Io {
            path: dest.to_owned(),
            source: e.into(),
        })?;
        let mut skipped: Vec<(usize, String)> = skip.into_iter().collect();
        skipped.sort();
        report.skipped = skipped
            .into_iter()
            .map(|(i, reason)| SkippedKey {
                key: items[i].key.clone(),
                reason,
            })
            .chain(folder_skips)
            .collect();
        report.skipped.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(report)
    }

    /// Makes a batch of temporary files durable, then renames them into place.
    fn finish_batch(
        &self,
        folders: &mut FolderStack,
        batch: &mut Vec<Pending<'_>>,
        report: &mut ExportReport,
        skip: &mut HashMap<usize, String>,
    ) -> Result<(), ExportError> {
        if batch.is_empty() {
            return Ok(());
        }
        rustix::fs::syncfs(folders.dest()).map_err(|e| ExportError::Io {
            path: PathBuf::from("."),
            source: e.into(),
        })?;
        for p in std::mem::take(batch) {
            let dir = &folders.kept_fds[p.dir];
            match rename_into_place(dir, &p.tmp, &p.name, p.replaces) {
                Ok(()) => {
                    report.written += 1;
                    report.bytes += p.item.file.size;
                }
                Err(reason) => {
                    let _ = rustix::fs::unlinkat(dir, &p.tmp, AtFlags::empty());
                    skip.insert(p.index, format!("not written: {reason}"));
                }
            }
        }
        folders.clear_kept();
        Ok(())
    }

    /// Writes one file's content to `path`: under a temporary name created exclusively
    /// beside it, made durable, then renamed over `path`. A link at `path` is replaced, not
    /// followed; the content is verified before the rename, so a failed read leaves `path` as
    /// it was.
    pub(super) fn save_file(
        &self,
        file: &FileRef,
        meta: &FileMeta,
        path: &Path,
    ) -> Result<(), ExportError> {
        let io_err = |source: io::Error| ExportError::Io {
            path: path.to_owned(),
            source,
        };
        let name = path
            .file_name()
            .ok_or_else(|| io_err(io::Error::other("it names no file")))?;
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC;
        let dir =
            rustix::fs::openat(CWD, parent, flags, Mode::empty()).map_err(|e| ExportError::Io {
                path: parent.to_owned(),
                source: e.into(),
            })?;
        if what_is(&dir, &name.to_string_lossy()).map_err(io_err)? == Found::Folder {
            return Err(io_err(io::Error::other("it is a folder")));
        }
        let (tmp, mut f) = create_temp(&dir).map_err(io_err)?;
        let result = self
            .blobs()
            .write_to(file, &mut f)
            .and_then(|()| apply_meta(&f, meta, OWNER_FILE).map_err(ReadError::Output))
            .and_then(|()| f.sync_all().map_err(ReadError::Output));
        drop(f);
        if let Err(source) = result {
            let _ = rustix::fs::unlinkat(&dir, &tmp, AtFlags::empty());
            return Err(ExportError::Read {
                key: path.display().to_string(),
                source,
            });
        }
        rustix::fs::renameat(&dir, &tmp, &dir, name).map_err(|e| {
            let _ = rustix::fs::unlinkat(&dir, &tmp, AtFlags::empty());
            io_err(e.into())
        })?;
        rustix::fs::fsync(dir.as_fd()).map_err(|e| io_err(e.into()))?;
        Ok(())
    }
}

/// Creates the folders of folder entries and gives them their time and mode, deepest first
/// (so a folder's time is set after anything is created in it, and a folder without write
/// permission is finished last). A folder entry is superseded, and left out without a word,
/// by a file at its key, at one of its parent folders, or beneath it (it is not empty then:
/// the files make the folder). Returns the folders that could not be made.
fn export_folders(
    mut entries: Vec<(String, FileMeta)>,
    files: &[ViewItem],
    folders: &mut FolderStack,
    report: &mut ExportReport,
) -> Vec<SkippedKey> {
    let file_keys: std::collections::BTreeSet<&str> =
        files.iter().map(|f| f.key.as_str()).collect();
    let mut skipped = Vec::new();
    entries.sort_by(|a, b| b.0.cmp(&a.0));
    for (key, meta) in entries {
        let beneath = format!("{key}/");
        let superseded = file_keys.contains(key.as_str())
            || parent_folders(&key).any(|folder| file_keys.contains(folder))
            || file_keys
                .range(beneath.as_str()..)
                .next()
                .is_some_and(|k| k.starts_with(&beneath));
        if superseded {
            continue;
        }
        let result = validate_key(&key)
            .map_err(|e| e.to_string())
            .and_then(|()| folders.enter(&key, true))
            .and_then(|_| {
                apply_meta(folders.current(), &meta, OWNER_FOLDER)
                    .map_err(|e| format!("cannot set its time and mode: {e}"))
            });
        match result {
            Ok(()) => report.folders += 1,
            Err(reason) => skipped.push(SkippedKey { key, reason }),
        }
    }
    skipped
}

fn would_overwrite(dest: &Path, item: &ViewItem) -> ExportError {
    ExportError::WouldOverwrite {
        path: dest.join(&item.key),
        key: item.key.clone(),
    }
}

/// A key's folder (empty at the top) and file name.
fn split_key(key: &str) -> (&str, &str) {
    match key.rsplit_once('/') {
        Some((dir, name)) => (dir, name),
        None => ("", key),
    }
}
