//! Reading a collection: its views (current or at a snapshot) page by page, single keys,
//! snapshots, diffs and the versions of a key.
//!
//! Every page is read in a read transaction of its own, which ends before the page is
//! returned: a listing of a million keys holds one page in memory, and no transaction stays
//! open between pages (an open one would keep redb from reusing the pages it frees).

use std::fs;
use std::io::{self, Write};
use std::ops::Bound;
use std::path::Path;

use redb::{ReadableDatabase, ReadableTable};

use super::{decode_stored_entry, guarded, Collection, Store};
use crate::clock::Timestamp;
use crate::diff::{Change, ChangeMerge, DiffSide, FileSummary, Sorted};
use crate::entry::{EntryId, EntryValue, FileMeta, FileRef, MessageFields, SignedEntry};
use crate::error::{AddError, SnapshotError, StorageError};
use crate::format::layout::{COLLECTIONS, ENTRIES, HISTORY, META, META_NEXT_SEQ, SNAPSHOTS, VIEWS};
use crate::identity::PublicKey;
use crate::names::validate_snapshot_name;
use crate::sync::SyncKey;
use crate::walk::walk;

/// Items a [`Listing`], [`Changes`] or [`History`] reads per page.
pub const PAGE_SIZE: usize = 1024;

/// Which point of a collection's history to look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewPoint<'a> {
    /// What the collection holds now.
    Current,
    /// What it held when the named snapshot was taken.
    Snapshot(&'a str),
}

/// A key and the file it holds in a view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewItem {
    /// The key.
    pub key: String,
    /// The file.
    pub file: FileRef,
    /// Its modification time and mode, as added.
    pub meta: FileMeta,
    /// When the entry was written (its author's clock).
    pub time: Timestamp,
    /// Who wrote it.
    pub author: PublicKey,
    /// The entry that put it there.
    pub entry: EntryId,
    /// That entry's messenger fields (empty for archive files).
    pub message: MessageFields,
}

/// One version of a key: an entry that put a file there or removed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// The store's insertion number of the entry: versions come in this order, and it is the
    /// resume point of [`Collection::history_page`].
    pub seq: u64,
    /// The entry.
    pub entry: EntryId,
    /// A file or a tombstone.
    pub value: EntryValue,
    /// When it was written (its author's clock). The view shows the version with the latest
    /// `(time, entry)`, which need not be the last one inserted.
    pub time: Timestamp,
    /// Who wrote it.
    pub author: PublicKey,
}

impl ViewItem {
    /// The key of the entry that put it there (see [`Store::entry`]).
    pub fn entry_key(&self) -> SyncKey {
        SyncKey {
            time: self.time.raw(),
            id: self.entry,
        }
    }
}

impl Version {
    /// The key of the entry (see [`Store::entry`]).
    pub fn entry_key(&self) -> SyncKey {
        SyncKey {
            time: self.time.raw(),
            id: self.entry,
        }
    }
}

/// A snapshot's name and totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The collection.
    pub collection: String,
    /// The snapshot's name.
    pub name: String,
    /// When it was taken (this store's clock).
    pub created: Timestamp,
    /// Files in its view.
    pub files: u64,
    /// Bytes in its view.
    pub bytes: u64,
}

/// One level of a folder ([`Collection::list_folder`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FolderPage {
    /// The folders directly in it (names, not paths), in order.
    pub folders: Vec<String>,
    /// Its files, in key order.
    pub files: Vec<ViewItem>,
    /// More than the limit asked for.
    pub more: bool,
}

/// One page of a listing, a diff or a history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T, R = String> {
    /// The items, in order.
    pub items: Vec<T>,
    /// `None` when the listing is complete; otherwise where to resume (pass it as `after` for
    /// the next page, which may turn out empty).
    pub next: Option<R>,
}

/// A view point with its snapshot looked up: every page of a listing reads the same point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Point {
    Current,
    /// Entries inserted before this insertion number.
    Before(u64),
}

/// True when `key` is `prefix` or lies under it as a path (`a` covers `a` and `a/b`, not `ab`).
pub(super) fn under_prefix(key: &str, prefix: &str) -> bool {
    prefix.is_empty()
        || key
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

impl<'s> Collection<'s> {
    fn resolve(&self, at: ViewPoint<'_>) -> Result<Point, SnapshotError> {
        match at {
            ViewPoint::Current => Ok(Point::Current),
            ViewPoint::Snapshot(name) => guarded(|| {
                let tx = self.store.db.begin_read().map_err(StorageError::from)?;
                let table = tx.open_table(SNAPSHOTS).map_err(StorageError::from)?;
                let row = table
                    .get((self.name(), name))
                    .map_err(StorageError::from)?
                    .ok_or_else(|| SnapshotError::NotFound {
                        collection: self.name().to_owned(),
                        name: name.to_owned(),
                    })?;
                Ok(Point::Before(row.value().0))
            }),
        }
    }

    /// The files at or under `prefix` (a path prefix; empty for all) at a point in the
    /// collection's history, in key order, read a page at a time as the iterator advances.
    /// Fails at once if the snapshot does not exist.
    pub fn list(&self, at: ViewPoint<'_>, prefix: &str) -> Result<Listing<'s>, SnapshotError> {
        Ok(Listing {
            collection: self.clone(),
            point: self.resolve(at)?,
            prefix: prefix.trim_matches('/').to_owned(),
            pages: Pages::default(),
        })
    }

    /// One page of [`Collection::list`]: at most `limit` files with keys after `after` (the
    /// `next` of the page before; `None` to start).
    pub fn list_page(
        &self,
        at: ViewPoint<'_>,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<ViewItem>, SnapshotError> {
        let point = self.resolve(at)?;
        Ok(self.read_page(point, prefix.trim_matches('/'), after, limit)?)
    }

    fn read_page(
        &self,
        point: Point,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<ViewItem>, StorageError> {
        let limit = limit.max(1);
        let mut items = Vec::new();
        let more = self.visit_view(point, prefix, after, |key, signed| {
            let e = signed.entry();
            if let EntryValue::File(file) = e.value {
                items.push(ViewItem {
                    key: key.to_owned(),
                    file,
                    meta: e.meta,
                    time: e.time,
                    author: e.author,
                    entry: signed.id(),
                    message: e.message.clone(),
                });
            }
            items.len() < limit
        })?;
        let next = more.then(|| items.last().map(|i| i.key.clone())).flatten();
        Ok(Page { items, next })
    }

    /// One level of a folder of a view: the folders directly in `folder` (names) and its
    /// files, at most `limit` of them together (then `more` is set). Skips past each subfolder's
    /// keys instead of reading them, so a folder of a few entries over millions below reads
    /// a few pages.
    pub fn list_folder(
        &self,
        at: ViewPoint<'_>,
        folder: &str,
        limit: usize,
    ) -> Result<FolderPage, SnapshotError> {
        let folder = folder.trim_matches('/');
        let point = self.resolve(at)?;
        let depth = if folder.is_empty() {
            0
        } else {
            folder.len() + 1
        };
        let mut out = FolderPage::default();
        let mut after: Option<String> = None;
        loop {
            let page = self.read_page(point, folder, after.as_deref(), 256)?;
            let mut next = page.next;
            for item in page.items {
                if out.folders.len() + out.files.len() >= limit {
                    out.more = true;
                    return Ok(out);
                }
                // The folder's own key, when it names a file rather than a folder.
                let Some(rest) = item.key.get(depth..) else {
                    continue;
                };
                match rest.split_once('/') {
                    Some((sub, _)) => {
                        // Nothing below the subfolder is listed here: go on after it.
                        next = Some(format!("{}{sub}/\u{10FFFF}", &item.key[..depth]));
                        out.folders.push(sub.to_owned());
                        break;
                    }
                    None => out.files.push(item),
                }
            }
            match next {
                Some(n) => after = Some(n),
                None => return Ok(out),
            }
        }
    }

    /// The folder entries of a view (empty folders, to export), in key order.
    pub(crate) fn folders(
        &self,
        at: ViewPoint<'_>,
    ) -> Result<Vec<(String, FileMeta)>, SnapshotError> {
        let point = self.resolve(at)?;
        let mut folders = Vec::new();
        self.visit_view(point, "", None, |key, signed| {
            if signed.entry().value == EntryValue::Folder {
                folders.push((key.to_owned(), signed.entry().meta));
            }
            true
        })?;
        Ok(folders)
    }

    /// Calls `visit` with the latest entry (tombstones included) of each key under `prefix`
    /// after `after` at `point`, in key order, until it returns false. Returns whether it was
    /// stopped before the end.
    pub(super) fn visit_view(
        &self,
        point: Point,
        prefix: &str,
        after: Option<&str>,
        mut visit: impl FnMut(&str, &SignedEntry) -> bool,
    ) -> Result<bool, StorageError> {
        let c = self.name();
        // Resume after `after` unless it lies before the prefix.
        let after = after.filter(|a| *a >= prefix);
        guarded(|| {
            let tx = self.store.db.begin_read()?;
            let entries = tx.open_table(ENTRIES)?;
            let mut push = |key: &str, version: (u64, [u8; 32])| -> Result<bool, StorageError> {
                Ok(visit(key, &decode_stored_entry(&entries, version)?))
            };
            let mut more = false;
            match point {
                Point::Current => {
                    let views = tx.open_table(VIEWS)?;
                    let start = match after {
                        Some(a) => Bound::Excluded((c, a)),
                        None => Bound::Included((c, prefix)),
                    };
                    for row in views.range::<(&str, &str)>((start, Bound::Unbounded))? {
                        let (k, v) = row?;
                        let (rc, key) = k.value();
                        if rc != c || !key.starts_with(prefix) {
                            break;
                        }
                        if under_prefix(key, prefix) && !push(key, v.value())? {
                            more = true;
                            break;
                        }
                    }
                }
                Point::Before(seq) => {
                    let history = tx.open_table(HISTORY)?;
                    let start = match after {
                        Some(a) => Bound::Excluded((c, a, u64::MAX)),
                        None => Bound::Included((c, prefix, 0)),
                    };
                    // Rows come grouped by key: the latest version before `seq` of each key.
                    let mut current: Option<(String, (u64, [u8; 32]))> = None;
                    for row in history.range::<(&str, &str, u64)>((start, Bound::Unbounded))? {
                        let (k, v) = row?;
                        let (rc, key, s) = k.value();
                        if rc != c || !key.starts_with(prefix) {
                            break;
                        }
                        if s >= seq || !under_prefix(key, prefix) {
                            continue;
                        }
                        let version = v.value();
                        match &mut current {
                            Some((k, best)) if k == key => {
                                if version > *best {
                                    *best = version;
                                }
                            }
                            _ => {
                                if let Some((k, version)) = current.take() {
                                    if !push(&k, version)? {
                                        more = true;
                                        break;
                                    }
                                }
                                current = Some((key.to_owned(), version));
                            }
                        }
                    }
                    if let (false, Some((k, version))) = (more, current) {
                        more = !push(&k, version)?;
                    }
                }
            }
            Ok(more)
        })
    }

    /// True when the collection has at least one entry.
    pub fn exists(&self) -> Result<bool, StorageError> {
        guarded(|| {
            let tx = self.store.db.begin_read()?;
            let table = tx.open_table(COLLECTIONS)?;
            Ok(table.get(self.name())?.is_some())
        })
    }

    /// The file `key` holds now, if any.
    pub fn get(&self, key: &str) -> Result<Option<ViewItem>, StorageError> {
        self.item(Point::Current, key)
    }

    /// The file `key` held at a point in the collection's history, if any.
    pub fn get_at(&self, key: &str, at: ViewPoint<'_>) -> Result<Option<ViewItem>, SnapshotError> {
        let point = self.resolve(at)?;
        Ok(self.item(point, key)?)
    }

    fn item(&self, point: Point, key: &str) -> Result<Option<ViewItem>, StorageError> {
        guarded(|| {
            let tx = self.store.db.begin_read()?;
            let version = match point {
                Point::Current => {
                    let views = tx.open_table(VIEWS)?;
                    let row = views.get((self.name(), key))?;
                    row.map(|r| r.value())
                }
                Point::Before(seq) => {
                    let history = tx.open_table(HISTORY)?;
                    let mut best = None;
                    for row in history.range((self.name(), key, 0)..(self.name(), key, seq))? {
                        let v = row?.1.value();
                        best = best.max(Some(v));
                    }
                    best
                }
            };
            let Some(version) = version else {
                return Ok(None);
            };
            let signed = decode_stored_entry(&tx.open_table(ENTRIES)?, version)?;
            let e = signed.entry();
            Ok(match e.value {
                EntryValue::File(file) => Some(ViewItem {
                    key: key.to_owned(),
                    file,
                    meta: e.meta,
                    time: e.time,
                    author: e.author,
                    entry: signed.id(),
                    message: e.message.clone(),
                }),
                EntryValue::Folder | EntryValue::Tombstone => None,
            })
        })
    }

    /// Every version of `key` this store has, in the order it took them, a page at a time.
    pub fn history(&self, key: &str) -> History<'s> {
        History {
            collection: self.clone(),
            key: key.to_owned(),
            pages: Pages::default(),
        }
    }

    /// One page of [`Collection::history`]: at most `limit` versions inserted after `after`
    /// (the `next` of the page before; `None` to start).
    pub fn history_page(
        &self,
        key: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Page<Version, u64>, StorageError> {
        let limit = limit.max(1);
        let from = match after {
            None => 0,
            Some(u64::MAX) => {
                return Ok(Page {
                    items: Vec::new(),
                    next: None,
                })
            }
            Some(s) => s + 1,
        };
        guarded(|| {
            let tx = self.store.db.begin_read()?;
            let history = tx.open_table(HISTORY)?;
            let entries = tx.open_table(ENTRIES)?;
            let c = self.name();
            let mut items = Vec::new();
            let mut more = false;
            for row in history.range((c, key, from)..=(c, key, u64::MAX))? {
                if items.len() == limit {
                    more = true;
                    break;
                }
                let (k, v) = row?;
                let signed = decode_stored_entry(&entries, v.value())?;
                let e = signed.entry();
                items.push(Version {
                    seq: k.value().2,
                    entry: signed.id(),
                    value: e.value,
                    time: e.time,
                    author: e.author,
                });
            }
            let next = more.then(|| items.last().map(|v| v.seq)).flatten();
            Ok(Page { items, next })
        })
    }

    /// Takes a snapshot of the collection's current view under `name`. Costs one small record:
    /// the snapshot is the store's insertion counter at this moment.
    pub fn snapshot(&self, name: &str) -> Result<SnapshotInfo, SnapshotError> {
        let c = self.name();
        guarded(|| {
            validate_snapshot_name(name)?;
            let tx = self.store.db.begin_write().map_err(StorageError::from)?;
            let info;
            {
                let collections = tx.open_table(COLLECTIONS).map_err(StorageError::from)?;
                if collections.get(c).map_err(StorageError::from)?.is_none() {
                    return Err(SnapshotError::NoSuchCollection {
                        collection: c.to_owned(),
                    });
                }
                let mut snapshots = tx.open_table(SNAPSHOTS).map_err(StorageError::from)?;
                if snapshots
                    .get((c, name))
                    .map_err(StorageError::from)?
                    .is_some()
                {
                    return Err(SnapshotError::Exists {
                        collection: c.to_owned(),
                        name: name.to_owned(),
                    });
                }
                let meta = tx.open_table(META).map_err(StorageError::from)?;
                let seq = u64::from_le_bytes(super::read_meta(&meta, META_NEXT_SEQ)?);
                // Totals of the view as this transaction sees it: no write can slip in between.
                let (files, bytes) = view_totals(&tx, c)?;
                let created = self.store.clock().last();
                info = SnapshotInfo {
                    collection: c.to_owned(),
                    name: name.to_owned(),
                    created,
                    files,
                    bytes,
                };
                snapshots
                    .insert((c, name), (seq, created.raw(), files, bytes))
                    .map_err(StorageError::from)?;
            }
            tx.commit().map_err(StorageError::from)?;
            Ok(info)
        })
    }

    /// This collection's snapshots, by name.
    pub fn snapshots(&self) -> Result<Vec<SnapshotInfo>, StorageError> {
        self.store.snapshots_in(Some(self.name()))
    }

    /// The changes from `from` to `to` (added: only in `to`), in key order, read a page at a
    /// time as the iterator advances.
    pub fn diff(
        &self,
        from: ViewPoint<'_>,
        to: ViewPoint<'_>,
    ) -> Result<Changes<'s>, SnapshotError> {
        Ok(Changes(ChangeMerge::new(
            self.list(from, "")?,
            self.list(to, "")?,
        )))
    }

    /// One page of [`Collection::diff`]: at most `limit` changes of keys after `after` (the
    /// `next` of the page before; `None` to start).
    pub fn diff_page(
        &self,
        from: ViewPoint<'_>,
        to: ViewPoint<'_>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<Change>, SnapshotError> {
        let limit = limit.max(1);
        let (mut old, mut new) = (self.list(from, "")?, self.list(to, "")?);
        old.pages.after = after.map(str::to_owned);
        new.pages.after = after.map(str::to_owned);
        let mut items = Vec::new();
        for change in ChangeMerge::new(old, new) {
            items.push(change?);
            if items.len() == limit {
                break;
            }
        }
        let next = (items.len() == limit)
            .then(|| items.last().map(|c| c.key.clone()))
            .flatten();
        Ok(Page { items, next })
    }

    /// The changes `add_path(path, as_key)` would make to the current view: files only on disk
    /// are added, files only in the archive (under the same key prefix) removed, files whose
    /// content differs changed. Nothing is stored. (The folder's files are held in memory as
    /// the walk finds them; the archive's side is read a page at a time.)
    pub fn diff_dir(&self, path: &Path, as_key: Option<&str>) -> Result<Vec<Change>, AddError> {
        let walked = walk(path, as_key)?;
        // A diff that silently missed an unreadable folder would report its files as removed.
        if let Some(u) = walked.unreadable.first() {
            return Err(AddError::BadPath {
                path: u.path.clone(),
                reason: u.reason.clone(),
            });
        }
        let base = crate::walk::base_key(path, as_key)?;
        // A file the quick check of `add` knows unchanged is not read: its recorded hash is
        // its content's.
        // (All looked up first, so no read transaction stays open while files are hashed.)
        let lookup = super::quick_check::QuickLookup::open(self.store)?;
        let absolute = std::path::absolute(path).ok();
        let mut known = Vec::with_capacity(walked.found.len());
        for f in &walked.found {
            let key = absolute
                .as_deref()
                .and_then(|a| super::quick_check::path_key(a, path, &f.path));
            known.push(match (key, f.stat) {
                (Some(key), Some(stat)) => lookup.recorded_hash(&key, &stat)?,
                _ => None,
            });
        }
        drop(lookup);
        let mut on_disk = Vec::with_capacity(walked.found.len());
        for (f, known) in walked.found.into_iter().zip(known) {
            if let Some(hash) = known {
                on_disk.push((f.key, FileSummary { hash, size: f.size }));
                continue;
            }
            let mut hasher = blake3::Hasher::new();
            let read_err = |e| AddError::Read {
                path: f.path.clone(),
                source: e,
            };
            let mut file = fs::File::open(&f.path).map_err(read_err)?;
            let size = io::copy(&mut file, &mut HashWriter(&mut hasher)).map_err(read_err)?;
            let summary = FileSummary {
                hash: hasher.finalize().into(),
                size,
            };
            on_disk.push((f.key, summary));
        }
        let archived = self.list(ViewPoint::Current, &base).map_err(|e| match e {
            SnapshotError::Storage(s) => AddError::Storage(s),
            other => AddError::BadPath {
                path: path.to_owned(),
                reason: other.to_string(),
            },
        })?;
        ChangeMerge::new(archived, Sorted(on_disk.into_iter()))
            .collect::<Result<Vec<_>, StorageError>>()
            .map_err(AddError::Storage)
    }
}

/// Files and bytes in a collection's current view, read inside `tx`.
fn view_totals(tx: &redb::WriteTransaction, c: &str) -> Result<(u64, u64), StorageError> {
    let views = tx.open_table(VIEWS)?;
    let entries = tx.open_table(ENTRIES)?;
    let (mut files, mut bytes) = (0u64, 0u64);
    for row in views.range((c, "")..)? {
        let (k, v) = row?;
        if k.value().0 != c {
            break;
        }
        if let EntryValue::File(f) = decode_stored_entry(&entries, v.value())?.entry().value {
            files += 1;
            bytes = bytes.saturating_add(f.size); // sizes are signed claims: never overflow
        }
    }
    Ok((files, bytes))
}

impl Store {
    /// Every snapshot, by collection then name.
    pub fn snapshots(&self) -> Result<Vec<SnapshotInfo>, StorageError> {
        self.snapshots_in(None)
    }

    fn snapshots_in(&self, only: Option<&str>) -> Result<Vec<SnapshotInfo>, StorageError> {
        guarded(|| {
            let tx = self.db.begin_read()?;
            let table = tx.open_table(SNAPSHOTS)?;
            let mut out = Vec::new();
            let rows = match only {
                Some(c) => table.range((c, "")..)?,
                None => table.range::<(&str, &str)>(..)?,
            };
            for row in rows {
                let (k, v) = row?;
                let (collection, name) = k.value();
                if only.is_some_and(|c| c != collection) {
                    break;
                }
                let (_, created, files, bytes) = v.value();
                out.push(SnapshotInfo {
                    collection: collection.to_owned(),
                    name: name.to_owned(),
                    created: Timestamp::from_raw(created),
                    files,
                    bytes,
                });
            }
            Ok(out)
        })
    }
}

/// The files of a view, in key order, read a page at a time (see [`Collection::list`]).
#[derive(Debug)]
pub struct Listing<'s> {
    collection: Collection<'s>,
    point: Point,
    prefix: String,
    pages: Pages<ViewItem, String>,
}

impl Iterator for Listing<'_> {
    type Item = Result<ViewItem, StorageError>;

    fn next(&mut self) -> Option<Self::Item> {
        let Listing {
            collection,
            point,
            prefix,
            pages,
        } = self;
        pages.next(|after| {
            collection.read_page(*point, prefix, after.map(String::as_str), PAGE_SIZE)
        })
    }
}

/// The state of an iterator that reads a page at a time: the page being handed out, and where
/// the next one starts. No transaction is held between pages.
#[derive(Debug)]
struct Pages<T, R> {
    after: Option<R>,
    page: std::vec::IntoIter<T>,
    done: bool,
}

impl<T, R> Default for Pages<T, R> {
    fn default() -> Self {
        Pages {
            after: None,
            page: Vec::new().into_iter(),
            done: false,
        }
    }
}

impl<T, R> Pages<T, R> {
    /// The next item, reading the next page with `read` (given the resume point) when this
    /// one is used up. After an error the iteration ends.
    fn next(
        &mut self,
        mut read: impl FnMut(Option<&R>) -> Result<Page<T, R>, StorageError>,
    ) -> Option<Result<T, StorageError>> {
        if let Some(item) = self.page.next() {
            return Some(Ok(item));
        }
        // A page may come back empty with a resume point (its keys were all filtered out):
        // read on until an item or the end.
        while !self.done {
            match read(self.after.as_ref()) {
                Ok(page) => {
                    self.done = page.next.is_none();
                    self.after = page.next;
                    self.page = page.items.into_iter();
                    if let Some(item) = self.page.next() {
                        return Some(Ok(item));
                    }
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        None
    }
}

/// A listing as the key-ordered (key, content) pairs a diff merges.
impl DiffSide for Listing<'_> {
    fn next_file(&mut self) -> Option<Result<(String, FileSummary), StorageError>> {
        self.next()
            .map(|r| r.map(|i| (i.key, FileSummary::from(&i.file))))
    }
}

/// The changes between two views, in key order, read a page at a time (see
/// [`Collection::diff`]).
#[derive(Debug)]
pub struct Changes<'s>(ChangeMerge<Listing<'s>, Listing<'s>>);

impl Iterator for Changes<'_> {
    type Item = Result<Change, StorageError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next()
    }
}

/// The versions of a key, in the order the store took them, a page at a time (see
/// [`Collection::history`]).
#[derive(Debug)]
pub struct History<'s> {
    collection: Collection<'s>,
    key: String,
    pages: Pages<Version, u64>,
}

impl Iterator for History<'_> {
    type Item = Result<Version, StorageError>;

    fn next(&mut self) -> Option<Self::Item> {
        let History {
            collection,
            key,
            pages,
        } = self;
        pages.next(|after| collection.history_page(key, after.copied(), PAGE_SIZE))
    }
}

struct HashWriter<'a>(&'a mut blake3::Hasher);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
