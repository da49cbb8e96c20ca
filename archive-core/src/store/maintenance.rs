//! Whole-store operations: verify, garbage collection, statistics.

use std::collections::{HashMap, HashSet};
use std::fs;

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};

use super::{guarded, read_meta, sub_from_counter, Store, ViewPoint};
use crate::blobs::BlobReader;
use crate::clock::{Timestamp, MAX_ENTRY_MILLIS};
use crate::entry::{EntryId, EntryValue, FileRef, SignedEntry};
use crate::error::{EntryError, ReadError, SnapshotError, StorageError};
use crate::fault::{self, Point, WriteStep};
use crate::format::layout::{
    BLOBS, BLOB_REFS, COLLECTIONS, ENTRIES, FILES, HISTORY, INLINE_BLOBS, LOCATION_FILE, META,
    META_CLOCK, META_STORED_BYTES, OUTBOARDS, PACKED, SNAPSHOTS,
};
use crate::format::manifest::decode_manifest;
use crate::hash::Hash;
use crate::store::purge::DenyReason;
use crate::sync::SyncKey;

/// A blob that failed verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobProblem {
    /// The blob.
    pub hash: Hash,
    /// What is wrong (corrupt bytes, missing file, damaged outboard).
    pub problem: String,
}

/// A key whose content cannot be read back intact.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DamagedKey {
    /// The collection.
    pub collection: String,
    /// The key.
    pub key: String,
    /// The snapshot whose view holds it, or `None` for the current view.
    pub snapshot: Option<String>,
}

/// The outcome of [`Store::verify`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Blobs re-hashed.
    pub blobs_checked: u64,
    /// Bytes re-hashed.
    pub bytes_checked: u64,
    /// Entries whose signature and id were checked.
    pub entries_checked: u64,
    /// Blobs that are corrupt or missing.
    pub bad_blobs: Vec<BlobProblem>,
    /// Entries that fail to decode or verify.
    pub bad_entries: Vec<(EntryId, String)>,
    /// Keys (in views and snapshots) whose content is damaged.
    pub damaged_keys: Vec<DamagedKey>,
}

impl VerifyReport {
    /// True when nothing is wrong.
    pub fn is_ok(&self) -> bool {
        self.bad_blobs.is_empty() && self.bad_entries.is_empty() && self.damaged_keys.is_empty()
    }
}

/// What [`Store::gc`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Blobs removed.
    pub blobs_removed: u64,
    /// Bytes freed.
    pub bytes_freed: u64,
    /// Leftover files of interrupted writes removed.
    pub leftovers_removed: u64,
    /// Packs rewritten without their dead bytes (at most half of each was still live).
    pub packs_rewritten: u64,
    /// Bytes of packs given back to the file system (dead blobs, and bytes a crash left).
    pub pack_bytes_freed: u64,
    /// Batch certificates removed: every entry they proved was purged.
    pub certificates_removed: u64,
}

/// What redb's own check of the database file found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseCheck {
    /// Every page checked out.
    Intact,
    /// Damage was found and repaired from the last good commit.
    Repaired,
}

/// What [`Store::doctor`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoctorReport {
    /// The database file's own check.
    pub database: DatabaseCheck,
    /// Entries dated past the absolute ceiling (May 2109) that were removed and denied: what
    /// a peer could push before times had a limit, and this store's writes while its clock
    /// was stuck there.
    pub far_future_removed: u64,
    /// This store's own writes among them, written again with fresh times.
    pub own_rewritten: u64,
    /// The latest time the store had seen, before and after: new writes are later than
    /// `clock_after`, so they win over everything that remains.
    pub clock_before: Timestamp,
    /// See `clock_before`.
    pub clock_after: Timestamp,
}

/// Totals for one collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionInfo {
    /// Its name.
    pub name: String,
    /// Entries (all versions and tombstones).
    pub entries: u64,
    /// Files in its current view.
    pub files: u64,
    /// Bytes in its current view.
    pub bytes: u64,
}

/// Totals for the whole store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Collections.
    pub collections: u64,
    /// Entries in all collections.
    pub entries: u64,
    /// Files in all current views.
    pub files: u64,
    /// Bytes in all current views (what an export of everything would write).
    pub logical_bytes: u64,
    /// Distinct blobs stored.
    pub blobs: u64,
    /// Bytes of distinct blobs stored (after deduplication).
    pub stored_bytes: u64,
    /// Snapshots.
    pub snapshots: u64,
}

impl Store {
    /// Re-hashes every blob, checks every entry's signature, and names every key in a view or
    /// snapshot whose content is damaged.
    pub fn verify(&self) -> Result<VerifyReport, StorageError> {
        guarded(|| self.verify_inner())
    }

    fn verify_inner(&self) -> Result<VerifyReport, StorageError> {
        let _guard = self.gc_shared();
        // Read every pack as it is on disk now, not through a handle opened earlier.
        self.files.forget_readers();
        let tx = self.db.begin_read()?;
        let reader = BlobReader::open(&self.files, &tx)?;
        let mut report = VerifyReport::default();
        let mut bad: HashSet<Hash> = HashSet::new();
        for row in reader.blobs.iter()? {
            let (k, v) = row?;
            let hash = Hash::from_bytes(k.value());
            let (size, _) = v.value();
            report.blobs_checked += 1;
            report.bytes_checked += size;
            let result = reader
                .read(&hash)
                .and_then(|data| reader.check_outboard(&hash, &data));
            if let Err(e) = result {
                if let ReadError::Storage(s) = e {
                    return Err(s);
                }
                bad.insert(hash);
                report.bad_blobs.push(BlobProblem {
                    hash,
                    problem: crate::error::chain(&e),
                });
            }
        }
        let entries = tx.open_table(ENTRIES)?;
        for row in entries.iter()? {
            let (k, v) = row?;
            report.entries_checked += 1;
            let key = SyncKey::from_bytes(&k.value());
            let id = key.id;
            let decoded = match SignedEntry::decode(v.value()) {
                // Taken on a batch certificate's word: the certificate proves it.
                Err(EntryError::BadSignature { .. }) => match certified(&tx, key, v.value())? {
                    Some(e) => Ok(e),
                    None => SignedEntry::decode(v.value()),
                },
                other => other,
            };
            match decoded {
                Ok(e) if e.sync_key() == key => {}
                Ok(e) => report.bad_entries.push((
                    id,
                    format!(
                        "stored under the wrong key (content id {}, time {})",
                        e.id(),
                        e.entry().time.raw()
                    ),
                )),
                Err(e) => report.bad_entries.push((id, crate::error::chain(&e))),
            }
        }
        drop(entries);
        self.each_view_file(|collection, snapshot, item| {
            if !self.file_intact(&reader, &item.file, &bad)? {
                report.damaged_keys.push(DamagedKey {
                    collection: collection.to_owned(),
                    key: item.key,
                    snapshot: snapshot.map(str::to_owned),
                });
            }
            Ok(())
        })?;
        Ok(report)
    }

    /// Where each blob's bytes are on disk: (blob, file, offset, length), in blob order; blobs
    /// inside the database (format 1's small ones) are left out. For tests and diagnosis:
    /// not part of the supported API.
    #[doc(hidden)]
    pub fn blob_places(&self) -> Result<Vec<(Hash, std::path::PathBuf, u64, u64)>, StorageError> {
        guarded(|| {
            let tx = self.db.begin_read()?;
            let reader = BlobReader::open(&self.files, &tx)?;
            let mut places = Vec::new();
            for row in reader.blobs.iter()? {
                let (k, v) = row?;
                let hash = Hash::from_bytes(k.value());
                let (size, location) = v.value();
                if location == LOCATION_FILE {
                    places.push((hash, self.files.path(&hash), 0, size));
                } else if let Some(p) = reader.packed.get(k.value())? {
                    let (pack, offset) = p.value();
                    places.push((hash, self.files.pack_path(pack), offset, size));
                }
            }
            Ok(places)
        })
    }

    /// Calls `visit` with every file of every view: each collection's current view (snapshot
    /// `None`), then each snapshot's, a page at a time.
    fn each_view_file(
        &self,
        mut visit: impl FnMut(&str, Option<&str>, crate::ViewItem) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        let mut views: Vec<(String, Option<String>)> = self
            .collection_names_inner()?
            .into_iter()
            .map(|c| (c, None))
            .collect();
        for s in self.snapshots()? {
            views.push((s.collection, Some(s.name)));
        }
        for (collection, snapshot) in &views {
            let at = snapshot
                .as_deref()
                .map_or(ViewPoint::Current, ViewPoint::Snapshot);
            let listing = self
                .collection_unchecked(collection)
                .list(at, "")
                .map_err(into_storage)?;
            for item in listing {
                visit(collection, snapshot.as_deref(), item?)?;
            }
        }
        Ok(())
    }

    /// The names of the collections that hold entries, in order; cheaper than
    /// [`Store::collections`], which also totals each one's view.
    pub fn collection_names(&self) -> Result<Vec<String>, StorageError> {
        guarded(|| self.collection_names_inner())
    }

    pub(super) fn collection_names_inner(&self) -> Result<Vec<String>, StorageError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(COLLECTIONS)?;
        let mut names = Vec::new();
        for row in table.iter()? {
            names.push(row?.0.value().to_owned());
        }
        Ok(names)
    }

    /// True when every blob of `file` is present and not in `bad`.
    fn file_intact(
        &self,
        reader: &BlobReader<'_>,
        file: &FileRef,
        bad: &HashSet<Hash>,
    ) -> Result<bool, StorageError> {
        let ok = |h: &Hash| -> Result<bool, StorageError> {
            Ok(!bad.contains(h) && reader.size(h)?.is_some())
        };
        match file.manifest {
            None => ok(&file.hash),
            Some(m) => {
                if !ok(&m)? {
                    return Ok(false);
                }
                let Ok(chunks) = self.manifest_chunks(reader, &m) else {
                    return Ok(false);
                };
                for c in chunks {
                    if !ok(&c)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
        }
    }

    fn manifest_chunks(
        &self,
        reader: &BlobReader<'_>,
        manifest: &Hash,
    ) -> Result<Vec<Hash>, ReadError> {
        let bytes = reader.read(manifest)?;
        let (_, chunks) = decode_manifest(&bytes).map_err(|e| ReadError::Corrupt {
            hash: *manifest,
            detail: e.to_string(),
        })?;
        Ok(chunks.into_iter().map(|c| c.hash).collect())
    }

    /// Removes every blob and file record that no current view or snapshot reaches, and files
    /// left behind by interrupted writes. Waits for operations in flight to finish and blocks
    /// new ones while it runs, so nothing they use is removed. Refuses to run if a manifest
    /// cannot be read (it would not know which chunks are still needed): run `verify`.
    pub fn gc(&self) -> Result<GcReport, StorageError> {
        guarded(|| self.gc_inner())
    }

    fn gc_inner(&self) -> Result<GcReport, StorageError> {
        let _guard = self.gc_exclusive();
        let mut live_blobs: HashSet<Hash> = HashSet::new();
        let mut live_files: HashSet<Hash> = HashSet::new();
        {
            let tx = self.db.begin_read()?;
            let reader = BlobReader::open(&self.files, &tx)?;
            let mut keep = |key: &str, file: FileRef| -> Result<(), StorageError> {
                live_files.insert(file.hash);
                match file.manifest {
                    None => {
                        live_blobs.insert(file.hash);
                    }
                    Some(m) => {
                        if live_blobs.insert(m) {
                            match self.manifest_chunks(&reader, &m) {
                                    Ok(chunks) => live_blobs.extend(chunks),
                                    // Never here (a version taken without its content, shown
                                    // after newer ones were purged): no chunk of it is known.
                                    Err(ReadError::NotFound { .. }) => {}
                                    Err(e) => {
                                        return Err(StorageError::Damaged(format!(
                                            "gc stopped: cannot read the manifest of `{}` ({}); verify names the damage",
                                            key,
                                            crate::error::chain(&e)
                                        )))
                                    }
                                }
                        }
                    }
                }
                Ok(())
            };
            self.each_view_file(|_, _, item| keep(&item.key, item.file))?;
            // Earlier versions that a `keep_versions` rule keeps (file shares' versions and
            // trash).
            self.each_kept_version(|collection, file| keep(collection, file))?;
        }
        let mut report = GcReport::default();
        let mut doomed_files = Vec::new();
        let tx = self.db.begin_write()?;
        {
            let mut blobs = tx.open_table(BLOBS)?;
            let mut inline = tx.open_table(INLINE_BLOBS)?;
            let mut packed = tx.open_table(PACKED)?;
            let mut outboards = tx.open_table(OUTBOARDS)?;
            let mut refs = tx.open_table(BLOB_REFS)?;
            let mut doomed = Vec::new();
            for row in blobs.iter()? {
                let (k, v) = row?;
                let hash = Hash::from_bytes(k.value());
                // Blobs a transfer stored ahead of their entries are kept too.
                if !live_blobs.contains(&hash) && !self.pins.contains(&hash) {
                    doomed.push((hash, v.value()));
                }
            }
            for (hash, (size, location)) in doomed {
                blobs.remove(hash.as_bytes())?;
                inline.remove(hash.as_bytes())?;
                packed.remove(hash.as_bytes())?;
                outboards.remove(hash.as_bytes())?;
                let h = *hash.as_bytes();
                refs.retain_in((h, "")..=(h, "\u{10ffff}"), |_, _| false)?;
                if location == LOCATION_FILE {
                    doomed_files.push(self.files.path(&hash));
                }
                report.blobs_removed += 1;
                report.bytes_freed += size;
            }
            let mut files = tx.open_table(FILES)?;
            let mut dead: Vec<[u8; 32]> = Vec::new();
            for row in files.iter()? {
                let k = row?.0.value();
                if !live_files.contains(&Hash::from_bytes(k)) {
                    dead.push(k);
                }
            }
            for k in dead {
                files.remove(&k)?;
            }
            // Quick-check rows of content no view or snapshot holds any more: the next add
            // of such a path reads it anyway.
            tx.open_table(crate::format::layout::QUICK_CHECK)?
                .retain(|_, (.., hash, _)| live_files.contains(&Hash::from_bytes(hash)))?;
            // Batch certificates no entry here refers to any more (their entries were purged).
            let proving: HashSet<[u8; 32]> = tx
                .open_table(crate::format::layout::ENTRY_CERTIFICATES)?
                .iter()?
                .map(|row| row.map(|(_, v)| v.value().0))
                .collect::<Result<_, _>>()?;
            let mut certificates = tx.open_table(crate::format::layout::CERTIFICATES)?;
            let before = certificates.len()?;
            certificates.retain(|id, _| proving.contains(&id))?;
            report.certificates_removed = before - certificates.len()?;
            drop(certificates);
            sub_from_counter(
                &mut tx.open_table(META)?,
                META_STORED_BYTES,
                report.bytes_freed,
            )?;
        }
        fault::point(Point::Write(WriteStep::Commit));
        tx.commit()?;
        fault::point(Point::Write(WriteStep::Committed));
        for path in doomed_files {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StorageError::io(path, e)),
            }
        }
        report.leftovers_removed = self.remove_leftovers()?;
        self.repack(&mut report)?;
        Ok(report)
    }

    /// Gives back the space of dead bytes in packs: a pack nothing refers to is deleted; one
    /// at most half live is rewritten (its live blobs, verified, appended to a new pack, made
    /// durable, their places switched in one commit, then the old pack deleted). A crash
    /// anywhere leaves either the old places or the new, and a pack no row refers to, which the
    /// next gc deletes. A pack with a damaged blob is left for `verify` to name. Runs under the
    /// exclusive gc lock, so nothing else appends meanwhile.
    fn repack(&self, report: &mut GcReport) -> Result<(), StorageError> {
        let mut live: HashMap<u32, (u64, Vec<Hash>)> = HashMap::new();
        {
            let tx = self.db.begin_read()?;
            let blobs = tx.open_table(BLOBS)?;
            for row in tx.open_table(PACKED)?.iter()? {
                let (k, v) = row?;
                let (pack, _) = v.value();
                let size = blobs.get(k.value())?.map_or(0, |b| b.value().0);
                let slot = live.entry(pack).or_default();
                slot.0 += size;
                slot.1.push(Hash::from_bytes(k.value()));
            }
        }
        let current = self.files.current_pack();
        let mut candidates = Vec::new();
        for pack in self.files.pack_numbers()? {
            let path = self.files.pack_path(pack);
            let len = fs::metadata(&path)
                .map_err(|e| StorageError::io(&path, e))?
                .len();
            let (live_bytes, blobs) = live.remove(&pack).unwrap_or_default();
            let fresh = len == 0 && Some(pack) == current;
            if live_bytes * 2 <= len && !fresh {
                candidates.push((pack, len, live_bytes, blobs));
            }
        }
        // Appends (of this gc, and after it) go to a new pack, never to one this loop may
        // rewrite or delete: the pack being appended to is a candidate like any other.
        if candidates
            .iter()
            .any(|(pack, _, _, blobs)| !blobs.is_empty() || Some(*pack) == current)
        {
            self.files.start_new_pack()?;
        }
        for (pack, len, live_bytes, blobs) in candidates {
            if !blobs.is_empty() && !self.rewrite_pack(pack, &blobs)? {
                continue;
            }
            let path = self.files.pack_path(pack);
            self.files.forget_pack(pack);
            fs::remove_file(&path).map_err(|e| StorageError::io(&path, e))?;
            report.pack_bytes_freed += len - live_bytes;
            report.packs_rewritten += u64::from(!blobs.is_empty());
        }
        Ok(())
    }

    /// Copies a pack's live blobs to the current pack and switches their places; false (and
    /// nothing switched) when one of them does not verify.
    fn rewrite_pack(&self, pack: u32, blobs: &[Hash]) -> Result<bool, StorageError> {
        let mut moved = Vec::with_capacity(blobs.len());
        {
            let tx = self.db.begin_read()?;
            let reader = BlobReader::open(&self.files, &tx)?;
            for hash in blobs {
                let data = match reader.read(hash) {
                    Ok(d) => d,
                    Err(ReadError::Storage(e)) => return Err(e),
                    Err(_) => return Ok(false),
                };
                let mut blob = crate::blobs::PreparedBlob {
                    hash: *hash,
                    size: data.len() as u64,
                    data,
                    outboard: None,
                    packed: None,
                };
                self.files.append(&mut blob)?;
                moved.push((*hash, blob.packed.expect("appended")));
            }
        }
        self.files.make_durable()?;
        let tx = self.db.begin_write()?;
        {
            let mut packed = tx.open_table(PACKED)?;
            for (hash, place) in &moved {
                // Only rows that still point into the old pack (nothing else runs under gc).
                if packed
                    .get(hash.as_bytes())?
                    .is_some_and(|v| v.value().0 == pack)
                {
                    packed.insert(hash.as_bytes(), place)?;
                }
            }
        }
        fault::point(Point::Write(WriteStep::Commit));
        tx.commit()?;
        fault::point(Point::Write(WriteStep::Committed));
        Ok(true)
    }

    /// Deletes temporary files and blob files the database does not record (left by a crash
    /// between writing a blob and committing it). Runs under the exclusive gc lock.
    fn remove_leftovers(&self) -> Result<u64, StorageError> {
        let tx = self.db.begin_read()?;
        let blobs = tx.open_table(BLOBS)?;
        let mut removed = 0;
        let io = |p: &std::path::Path| {
            let p = p.to_owned();
            move |e| StorageError::io(p, e)
        };
        let tmp = self.files.tmp_dir();
        for entry in fs::read_dir(tmp).map_err(io(tmp))? {
            let path = entry.map_err(io(tmp))?.path();
            fs::remove_file(&path).map_err(io(&path))?;
            removed += 1;
        }
        let dir = self.files.blob_dir();
        // Format 1's blob files; a store made in format 2 has none.
        let shards = match fs::read_dir(dir) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(removed),
            Err(e) => return Err(StorageError::io(dir, e)),
        };
        for shard in shards {
            let shard = shard.map_err(io(dir))?.path();
            if !shard.is_dir() {
                continue;
            }
            for entry in fs::read_dir(&shard).map_err(io(&shard))? {
                let path = entry.map_err(io(&shard))?.path();
                let recorded = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.parse::<Hash>().ok())
                    .map(|h| blobs.get(h.as_bytes()).map(|v| v.is_some()))
                    .transpose()?;
                if recorded != Some(true) {
                    fs::remove_file(&path).map_err(io(&path))?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// Each collection with its totals.
    pub fn collections(&self) -> Result<Vec<CollectionInfo>, StorageError> {
        guarded(|| self.collections_inner())
    }

    fn collections_inner(&self) -> Result<Vec<CollectionInfo>, StorageError> {
        let counts: Vec<(String, u64)> = {
            let tx = self.db.begin_read()?;
            let table = tx.open_table(COLLECTIONS)?;
            let mut v = Vec::new();
            for row in table.iter()? {
                let (k, n) = row?;
                v.push((k.value().to_owned(), n.value()));
            }
            v
        };
        let mut out = Vec::with_capacity(counts.len());
        for (name, entries) in counts {
            let (mut files, mut bytes) = (0, 0u64);
            let listing = self
                .collection_unchecked(&name)
                .list(ViewPoint::Current, "")
                .map_err(into_storage)?;
            for item in listing {
                files += 1;
                bytes = bytes.saturating_add(item?.file.size);
            }
            out.push(CollectionInfo {
                files,
                bytes,
                name,
                entries,
            });
        }
        Ok(out)
    }

    /// Totals for the whole store.
    pub fn stats(&self) -> Result<Stats, StorageError> {
        guarded(|| self.stats_inner())
    }

    fn stats_inner(&self) -> Result<Stats, StorageError> {
        let collections = self.collections()?;
        let tx = self.db.begin_read()?;
        let blobs = tx.open_table(BLOBS)?;
        let stored_bytes = u64::from_le_bytes(read_meta(&tx.open_table(META)?, META_STORED_BYTES)?);
        Ok(Stats {
            collections: collections.len() as u64,
            entries: tx.open_table(ENTRIES)?.len()?,
            files: collections.iter().map(|c| c.files).sum(),
            logical_bytes: collections
                .iter()
                .fold(0u64, |t, c| t.saturating_add(c.bytes)),
            blobs: blobs.len()?,
            stored_bytes,
            snapshots: tx.open_table(SNAPSHOTS)?.len()?,
        })
    }
}

impl Store {
    /// Runs redb's check of every page of the database file (a pass over the whole file; it
    /// repairs from the last good commit where it can). Needs the store to itself.
    pub fn check_database(&mut self) -> Result<DatabaseCheck, StorageError> {
        let result = guarded(|| {
            self.db
                .check_integrity()
                .map_err(|e| StorageError::Damaged(format!("the database check failed: {e}")))
        })?;
        Ok(if result {
            DatabaseCheck::Intact
        } else {
            DatabaseCheck::Repaired
        })
    }

    /// Repairs what can be repaired: checks the database file (see
    /// [`Store::check_database`]), removes entries dated past the absolute ceiling of entry
    /// times (putting them on the deny list), and sets the clock back to the latest time that
    /// remains, so new writes win again over everything the store holds. For a store poisoned
    /// by a far-future entry before times had a limit.
    ///
    /// This store's own writes that got far-future times while it was poisoned (its clock
    /// was stuck there) are not lost: they are written again, with fresh times, in the order
    /// they were first written, so the last of them is what the view shows.
    pub fn doctor(&mut self) -> Result<DoctorReport, StorageError> {
        let database = self.check_database()?;
        guarded(|| {
            let clock_before = self.clock().last();
            let ceiling = Timestamp::from_unix_millis(MAX_ENTRY_MILLIS + 1);
            // (seq, id) of every entry dated past the ceiling, from the history.
            let mut far: Vec<(u64, SyncKey)> = Vec::new();
            let mut latest = Timestamp::default();
            {
                let tx = self.db.begin_read()?;
                for row in tx.open_table(HISTORY)?.iter()? {
                    let (k, v) = row?;
                    let (time, id) = v.value();
                    let key = SyncKey {
                        time,
                        id: EntryId::from_bytes(id),
                    };
                    let time = Timestamp::from_raw(time);
                    if time >= ceiling {
                        far.push((k.value().2, key));
                    } else {
                        latest = latest.max(time);
                    }
                }
            }
            far.sort();
            let mut own: Vec<(String, String, EntryValue)> = Vec::new();
            for (_, key) in &far {
                if let Some(e) = self.entry(key).map_err(|e| match e {
                    crate::EntryError::Storage(s) => s,
                    other => StorageError::Damaged(crate::error::chain(&other)),
                })? {
                    let e = e.entry();
                    if e.author == self.author() {
                        own.push((e.collection.clone(), e.key.clone(), e.value));
                    }
                }
            }
            let keys: Vec<SyncKey> = far.iter().map(|(_, key)| *key).collect();
            let mut far_future_removed = 0;
            for chunk in keys.chunks(4096) {
                far_future_removed += self
                    .remove_entries(chunk, DenyReason::FarFuture, |_, _| Ok(()))?
                    .len() as u64;
            }
            {
                let mut clock = self.clock();
                clock.reset(latest);
                let tx = self.db.begin_write()?;
                tx.open_table(META)?
                    .insert(META_CLOCK, latest.raw().to_le_bytes().as_slice())?;
                tx.commit()?;
            }
            let mut rewritten = 0;
            for (collection, key, value) in own {
                match self.write_entries(
                    &collection,
                    &[(key, value)],
                    &crate::entry::MessageFields::default(),
                ) {
                    Ok(_) => rewritten += 1,
                    Err(crate::EntryError::Storage(s)) => return Err(s),
                    // A write the view can no longer take (a file where a folder now is):
                    // the older version stays.
                    Err(_) => {}
                }
            }
            let clock_after = self.clock().last();
            Ok(DoctorReport {
                database,
                far_future_removed,
                own_rewritten: rewritten,
                clock_before,
                clock_after,
            })
        })
    }
}

fn into_storage(e: SnapshotError) -> StorageError {
    match e {
        SnapshotError::Storage(s) => s,
        other => StorageError::Damaged(crate::error::chain(&other)),
    }
}

/// The entry `bytes` (stored under `id`) if a batch certificate this store keeps for it is
/// intact, signed by the entry's author and lists it; `None` otherwise.
fn certified(
    tx: &redb::ReadTransaction,
    key: SyncKey,
    bytes: &[u8],
) -> Result<Option<SignedEntry>, StorageError> {
    let Ok(entry) = SignedEntry::decode_unverified(bytes) else {
        return Ok(None);
    };
    if entry.sync_key() != key {
        return Ok(None);
    }
    let rows = tx.open_table(crate::format::layout::ENTRY_CERTIFICATES)?;
    let Some(row) = rows.get(key.to_bytes())? else {
        return Ok(None);
    };
    let (cert_id, _) = row.value();
    let certificates = tx.open_table(crate::format::layout::CERTIFICATES)?;
    let Some(cert) = certificates.get(&cert_id)? else {
        return Ok(None);
    };
    let Ok(cert) = crate::Certificate::decode(cert.value()) else {
        return Ok(None);
    };
    Ok(SignedEntry::decode_vouched(bytes, &[std::sync::Arc::new(cert)]).ok())
}
