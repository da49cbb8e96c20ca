//! Reading: views, snapshots, diffs, file contents and exports.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use redb::{ReadableDatabase, ReadableTable};

use super::{decode_stored_entry, guarded, Store};
use crate::blobs::BlobReader;
use crate::clock::Timestamp;
use crate::diff::{diff_sorted, Change, FileSummary};
use crate::entry::{EntryId, EntryValue, FileRef};
use crate::error::{AddError, ReadError, SnapshotError, StorageError};
use crate::format::layout::{
    COLLECTIONS, ENTRIES, FILES, HISTORY, META, META_NEXT_SEQ, NO_MANIFEST, SNAPSHOTS, VIEWS,
};
use crate::format::manifest::decode_manifest;
use crate::hash::Hash;
use crate::identity::PublicKey;
use crate::names::validate_snapshot_name;
use crate::walk::walk;

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
    /// When the entry was written (its author's clock).
    pub time: Timestamp,
    /// Who wrote it.
    pub author: PublicKey,
    /// The entry that put it there.
    pub entry: EntryId,
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

/// True when `key` is `prefix` or lies under it as a path (`a` covers `a` and `a/b`, not `ab`).
fn under_prefix(key: &str, prefix: &str) -> bool {
    prefix.is_empty()
        || key
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

impl Store {
    /// The files of a collection at a point in its history, in key order, restricted to keys
    /// at or under `prefix` (a path prefix; empty for all).
    pub fn list(
        &self,
        collection: &str,
        at: ViewPoint<'_>,
        prefix: &str,
    ) -> Result<Vec<ViewItem>, SnapshotError> {
        guarded(|| {
            crate::names::validate_collection(collection)?;
            let prefix = prefix.trim_matches('/');
            let tx = self.db.begin_read().map_err(StorageError::from)?;
            let entries = tx.open_table(ENTRIES).map_err(StorageError::from)?;
            let mut ids: Vec<[u8; 32]> = Vec::new();
            match at {
                ViewPoint::Current => {
                    let views = tx.open_table(VIEWS).map_err(StorageError::from)?;
                    for row in views
                        .range((collection, prefix)..)
                        .map_err(StorageError::from)?
                    {
                        let (k, v) = row.map_err(StorageError::from)?;
                        let (c, key) = k.value();
                        if c != collection || !key.starts_with(prefix) {
                            break;
                        }
                        if under_prefix(key, prefix) {
                            ids.push(v.value().1);
                        }
                    }
                }
                ViewPoint::Snapshot(name) => {
                    let seq = self.snapshot_seq(&tx, collection, name)?;
                    let history = tx.open_table(HISTORY).map_err(StorageError::from)?;
                    let mut current: Option<(String, (u64, [u8; 32]))> = None;
                    for row in history
                        .range((collection, prefix, 0)..)
                        .map_err(StorageError::from)?
                    {
                        let (k, v) = row.map_err(StorageError::from)?;
                        let (c, key, s) = k.value();
                        if c != collection || !key.starts_with(prefix) {
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
                                if let Some((_, (_, id))) = current.take() {
                                    ids.push(id);
                                }
                                current = Some((key.to_owned(), version));
                            }
                        }
                    }
                    if let Some((_, (_, id))) = current {
                        ids.push(id);
                    }
                }
            }
            let mut items = Vec::with_capacity(ids.len());
            for id in ids {
                let signed = decode_stored_entry(&entries, &id)?;
                let e = signed.entry();
                if let EntryValue::File(file) = e.value {
                    items.push(ViewItem {
                        key: e.key.clone(),
                        file,
                        time: e.time,
                        author: e.author,
                        entry: signed.id(),
                    });
                }
            }
            Ok(items)
        })
    }

    /// True when the collection has at least one entry.
    pub fn has_collection(&self, collection: &str) -> Result<bool, StorageError> {
        guarded(|| {
            let tx = self.db.begin_read()?;
            let table = tx.open_table(COLLECTIONS)?;
            Ok(table.get(collection)?.is_some())
        })
    }

    /// The file a key holds now, if any.
    pub fn get(&self, collection: &str, key: &str) -> Result<Option<FileRef>, StorageError> {
        guarded(|| {
            let tx = self.db.begin_read()?;
            let views = tx.open_table(VIEWS)?;
            let Some(row) = views.get((collection, key))? else {
                return Ok(None);
            };
            let entries = tx.open_table(ENTRIES)?;
            let signed = decode_stored_entry(&entries, &row.value().1)?;
            Ok(match signed.entry().value {
                EntryValue::File(f) => Some(f),
                EntryValue::Tombstone => None,
            })
        })
    }

    /// The file whose whole content hashes to `hash`, if stored.
    pub fn file_by_hash(&self, hash: &Hash) -> Result<Option<FileRef>, StorageError> {
        guarded(|| {
            let tx = self.db.begin_read()?;
            let files = tx.open_table(FILES)?;
            if let Some(row) = files.get(hash.as_bytes())? {
                let (size, manifest) = row.value();
                return Ok(Some(FileRef {
                    hash: *hash,
                    size,
                    manifest: (manifest != NO_MANIFEST).then_some(Hash::from_bytes(manifest)),
                }));
            }
            // A bare blob (a chunk, say) is a file of one blob.
            let reader = BlobReader::open(&self.files, &tx)?;
            Ok(reader.size(hash)?.map(|size| FileRef {
                hash: *hash,
                size,
                manifest: None,
            }))
        })
    }

    /// Writes a file's bytes to `out`. Every blob is verified before its bytes are written, and
    /// the whole content is checked against `file.hash` at the end.
    pub fn read_file(&self, file: &FileRef, out: &mut dyn Write) -> Result<(), ReadError> {
        guarded(|| {
            let _guard = self.gc_shared();
            let tx = self.db.begin_read().map_err(StorageError::from)?;
            let reader = BlobReader::open(&self.files, &tx)?;
            let mut whole = blake3::Hasher::new();
            let mut emit = |bytes: &[u8]| -> Result<(), ReadError> {
                whole.update(bytes);
                out.write_all(bytes).map_err(ReadError::Output)
            };
            match file.manifest {
                None => emit(&reader.read(&file.hash)?)?,
                Some(m) => {
                    let manifest = reader.read(&m)?;
                    let (size, chunks) =
                        decode_manifest(&manifest).map_err(|e| ReadError::Corrupt {
                            hash: m,
                            detail: e.to_string(),
                        })?;
                    if size != file.size {
                        return Err(ReadError::Corrupt {
                            hash: m,
                            detail: format!(
                                "manifest says {size} bytes, the file record {}",
                                file.size
                            ),
                        });
                    }
                    for chunk in chunks {
                        emit(&reader.read(&chunk.hash)?)?;
                    }
                }
            }
            let actual: Hash = whole.finalize().into();
            if actual != file.hash {
                return Err(ReadError::Corrupt {
                    hash: file.hash,
                    detail: format!("reassembled content hashes to {actual}"),
                });
            }
            Ok(())
        })
    }

    /// Bytes `start..end` of one blob, verified through its bao outboard.
    pub fn read_blob_range(&self, hash: &Hash, start: u64, end: u64) -> Result<Vec<u8>, ReadError> {
        guarded(|| {
            let _guard = self.gc_shared();
            let tx = self.db.begin_read().map_err(StorageError::from)?;
            BlobReader::open(&self.files, &tx)?.read_range(hash, start, end)
        })
    }

    /// Takes a snapshot of a collection's current view under `name`. Costs one small record:
    /// the snapshot is the store's insertion counter at this moment.
    pub fn snapshot(&self, collection: &str, name: &str) -> Result<SnapshotInfo, SnapshotError> {
        guarded(|| {
            validate_snapshot_name(name)?;
            let items = self.list(collection, ViewPoint::Current, "")?;
            let tx = self.db.begin_write().map_err(StorageError::from)?;
            let info;
            {
                let collections = tx.open_table(COLLECTIONS).map_err(StorageError::from)?;
                if collections
                    .get(collection)
                    .map_err(StorageError::from)?
                    .is_none()
                {
                    return Err(SnapshotError::NoSuchCollection {
                        collection: collection.to_owned(),
                    });
                }
                let mut snapshots = tx.open_table(SNAPSHOTS).map_err(StorageError::from)?;
                if snapshots
                    .get((collection, name))
                    .map_err(StorageError::from)?
                    .is_some()
                {
                    return Err(SnapshotError::Exists {
                        collection: collection.to_owned(),
                        name: name.to_owned(),
                    });
                }
                let meta = tx.open_table(META).map_err(StorageError::from)?;
                let seq = u64::from_le_bytes(super::read_meta(&meta, META_NEXT_SEQ)?);
                let created = self.clock().last();
                info = SnapshotInfo {
                    collection: collection.to_owned(),
                    name: name.to_owned(),
                    created,
                    files: items.len() as u64,
                    bytes: items.iter().map(|i| i.file.size).sum(),
                };
                snapshots
                    .insert(
                        (collection, name),
                        (seq, created.raw(), info.files, info.bytes),
                    )
                    .map_err(StorageError::from)?;
            }
            tx.commit().map_err(StorageError::from)?;
            Ok(info)
        })
    }

    /// Every snapshot, by collection then name.
    pub fn snapshots(&self) -> Result<Vec<SnapshotInfo>, StorageError> {
        guarded(|| {
            let tx = self.db.begin_read()?;
            let table = tx.open_table(SNAPSHOTS)?;
            let mut out = Vec::new();
            for row in table.iter()? {
                let (k, v) = row?;
                let (collection, name) = k.value();
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

    fn snapshot_seq(
        &self,
        tx: &redb::ReadTransaction,
        collection: &str,
        name: &str,
    ) -> Result<u64, SnapshotError> {
        let table = tx.open_table(SNAPSHOTS).map_err(StorageError::from)?;
        let row = table
            .get((collection, name))
            .map_err(StorageError::from)?
            .ok_or_else(|| SnapshotError::NotFound {
                collection: collection.to_owned(),
                name: name.to_owned(),
            })?;
        Ok(row.value().0)
    }

    /// The changes from `from` to `to` (added: only in `to`).
    pub fn diff(
        &self,
        collection: &str,
        from: ViewPoint<'_>,
        to: ViewPoint<'_>,
    ) -> Result<Vec<Change>, SnapshotError> {
        guarded(|| {
            let old = self.list(collection, from, "")?;
            let new = self.list(collection, to, "")?;
            Ok(diff_sorted(
                old.iter()
                    .map(|i| (i.key.as_str(), FileSummary::from(&i.file))),
                new.iter()
                    .map(|i| (i.key.as_str(), FileSummary::from(&i.file))),
            ))
        })
    }

    /// The changes `add_path(path, as_key)` would make to the current view: files only on disk
    /// are added, files only in the archive (under the same key prefix) removed, files whose
    /// content differs changed. Nothing is stored.
    pub fn diff_dir(
        &self,
        collection: &str,
        path: &Path,
        as_key: Option<&str>,
    ) -> Result<Vec<Change>, AddError> {
        let walked = walk(path, as_key)?;
        // A diff that silently missed an unreadable folder would report its files as removed.
        if let Some(u) = walked.unreadable.first() {
            return Err(AddError::BadPath {
                path: u.path.clone(),
                reason: u.reason.clone(),
            });
        }
        let found = walked.found;
        let base = crate::walk::base_key(path, as_key)?;
        let mut on_disk = Vec::with_capacity(found.len());
        for f in &found {
            let mut hasher = blake3::Hasher::new();
            let read_err = |e| AddError::Read {
                path: f.path.clone(),
                source: e,
            };
            let mut file = fs::File::open(&f.path).map_err(read_err)?;
            let size = io::copy(&mut file, &mut HashWriter(&mut hasher)).map_err(read_err)?;
            on_disk.push((
                f.key.clone(),
                FileSummary {
                    hash: hasher.finalize().into(),
                    size,
                },
            ));
        }
        let archived = self
            .list(collection, ViewPoint::Current, &base)
            .map_err(|e| match e {
                SnapshotError::Storage(s) => AddError::Storage(s),
                other => AddError::BadPath {
                    path: path.to_owned(),
                    reason: other.to_string(),
                },
            })?;
        Ok(diff_sorted(
            archived
                .iter()
                .map(|i| (i.key.as_str(), FileSummary::from(&i.file))),
            on_disk.iter().map(|(k, s)| (k.as_str(), *s)),
        ))
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
