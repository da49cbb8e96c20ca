//! What a sync needs from a store: serving blobs, importing verified ones, and inserting
//! received entries once their content is complete.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use redb::ReadableDatabase;

use super::{EntryTables, Store};
use crate::blobs::{self, BlobReader, BlobTables};
use crate::entry::{EntryValue, FileRef, SignedEntry};
use crate::error::{ReadError, StorageError, TransferError};
use crate::format::layout::{
    BLOBS, FILES, INLINE_BLOBS, LOCATION_FILE, LOCATION_INLINE, NO_MANIFEST, OUTBOARDS,
};
use crate::format::manifest::decode_manifest;
use crate::hash::Hash;
use crate::transfer::{encode_whole, VerifiedBlob};

/// A blob a file still needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissingBlob {
    /// Its hash.
    pub hash: Hash,
    /// Its size when known (chunks and single-blob files); `None` for a manifest.
    pub size: Option<u64>,
}

/// Keeps garbage collection away while a transfer stores blobs ahead of the entries that
/// will refer to them. See [`Store::begin_transfer`].
#[derive(Debug)]
pub struct TransferGuard<'a> {
    store: &'a Store,
}

impl Drop for TransferGuard<'_> {
    fn drop(&mut self) {
        self.store.transfers.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Store {
    /// Marks a transfer in progress until the guard drops: `gc` refuses to run meanwhile, so
    /// blobs received ahead of their entries are not collected.
    pub fn begin_transfer(&self) -> TransferGuard<'_> {
        // Taking the gc lock shared waits for a running gc to finish first.
        let _gc = self.gc_lock.read().expect("gc lock");
        self.transfers.fetch_add(1, Ordering::SeqCst);
        TransferGuard { store: self }
    }

    pub(crate) fn transfers_in_progress(&self) -> usize {
        self.transfers.load(Ordering::SeqCst)
    }

    /// True when the store holds this blob (for a file blob: its file is there, full size).
    pub fn has_blob(&self, hash: &Hash) -> Result<bool, StorageError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(BLOBS)?;
        self.has_blob_in(&table, hash)
    }

    fn has_blob_in(
        &self,
        table: &impl redb::ReadableTable<[u8; 32], (u64, u8)>,
        hash: &Hash,
    ) -> Result<bool, StorageError> {
        Ok(match blobs::lookup(table, hash)? {
            None => false,
            Some((size, LOCATION_FILE)) => std::fs::metadata(self.files.path(hash))
                .map(|m| m.len() == size)
                .unwrap_or(false),
            Some(_) => true,
        })
    }

    /// The size and bao encoding of a whole blob (see [`crate::transfer`]), checked against
    /// its hash on the way out; `None` if the store does not have it.
    pub fn encode_blob(&self, hash: &Hash) -> Result<Option<(u64, Vec<u8>)>, TransferError> {
        let mut out = None;
        self.encode_blobs(&[*hash], |_, encoded| {
            out = Some(encoded);
            false
        })?;
        out.expect("one blob asked, one answered")
    }

    /// Encodes `hashes` in order, as [`Store::encode_blob`] does, inside one read transaction,
    /// handing each result to `each` until it returns false. Fails only when the database
    /// cannot be read at all.
    pub fn encode_blobs(
        &self,
        hashes: &[Hash],
        mut each: impl FnMut(Hash, Result<Option<(u64, Vec<u8>)>, TransferError>) -> bool,
    ) -> Result<(), TransferError> {
        let tx = self.db.begin_read().map_err(StorageError::from)?;
        let table = tx.open_table(BLOBS).map_err(StorageError::from)?;
        let inline = tx.open_table(INLINE_BLOBS).map_err(StorageError::from)?;
        let outboards = tx.open_table(OUTBOARDS).map_err(StorageError::from)?;
        for hash in hashes {
            let encoded = self.encode_one(&table, &inline, &outboards, hash);
            if !each(*hash, encoded) {
                break;
            }
        }
        Ok(())
    }

    fn encode_one(
        &self,
        table: &redb::ReadOnlyTable<[u8; 32], (u64, u8)>,
        inline: &redb::ReadOnlyTable<[u8; 32], &'static [u8]>,
        outboards: &redb::ReadOnlyTable<[u8; 32], &'static [u8]>,
        hash: &Hash,
    ) -> Result<Option<(u64, Vec<u8>)>, TransferError> {
        let Some((size, location)) = blobs::lookup(table, hash)? else {
            return Ok(None);
        };
        let (data, outboard) = match location {
            LOCATION_INLINE => {
                let data = inline
                    .get(hash.as_bytes())
                    .map_err(StorageError::from)?
                    .map(|v| v.value().to_vec());
                match data {
                    Some(d) => (d, Vec::new()),
                    None => return Ok(None),
                }
            }
            _ => {
                let Some(ob) = outboards
                    .get(hash.as_bytes())
                    .map_err(StorageError::from)?
                    .map(|v| v.value().to_vec())
                else {
                    return Ok(None);
                };
                let path = self.files.path(hash);
                match std::fs::read(&path) {
                    Ok(d) => (d, ob),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(StorageError::io(path, e).into()),
                }
            }
        };
        if data.len() as u64 != size {
            return Err(TransferError::Verification {
                hash: *hash,
                detail: format!("the stored copy has {} bytes, {size} expected", data.len()),
            });
        }
        Ok(Some((size, encode_whole(hash, &data, &outboard)?)))
    }

    /// Stores verified blobs: files are written and made durable, then all are recorded in
    /// one transaction. Returns the bytes that were new to the store.
    pub fn import_blobs(&self, blobs: Vec<VerifiedBlob>) -> Result<u64, StorageError> {
        if blobs.is_empty() {
            return Ok(0);
        }
        let _gc = self.gc_lock.read().expect("gc lock");
        let mut fresh = Vec::with_capacity(blobs.len());
        let read = self.db.begin_read()?;
        let known = read.open_table(BLOBS)?;
        for VerifiedBlob(mut blob) in blobs {
            if self.has_blob_in(&known, &blob.hash)? {
                continue;
            }
            if blob.is_file() {
                self.files.write(&blob)?;
                blob.data = Vec::new();
            }
            fresh.push(blob);
        }
        drop((known, read));
        if fresh.iter().any(|b| b.is_file()) {
            self.files.make_durable()?;
        }
        let tx = self.db.begin_write()?;
        let mut new_bytes = 0;
        {
            let mut tables = BlobTables::open(&tx)?;
            for blob in &fresh {
                blobs::record(&mut tables, blob)?;
                new_bytes += blob.size;
            }
        }
        tx.commit()?;
        Ok(new_bytes)
    }

    /// The blobs `file` still lacks in this store. A missing manifest comes alone (its chunks
    /// are known once it is there); an empty list means the content is complete.
    pub fn missing_blobs(&self, file: &FileRef) -> Result<Vec<MissingBlob>, TransferError> {
        let Some(manifest) = file.manifest else {
            return Ok(if self.has_blob(&file.hash)? {
                Vec::new()
            } else {
                vec![MissingBlob {
                    hash: file.hash,
                    size: Some(file.size),
                }]
            });
        };
        if !self.has_blob(&manifest)? {
            return Ok(vec![MissingBlob {
                hash: manifest,
                size: None,
            }]);
        }
        let chunks = self.manifest_of(file, &manifest)?;
        let mut missing = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for c in chunks {
            if seen.insert(c.hash) && !self.has_blob(&c.hash)? {
                missing.push(MissingBlob {
                    hash: c.hash,
                    size: Some(u64::from(c.len)),
                });
            }
        }
        Ok(missing)
    }

    fn manifest_of(
        &self,
        file: &FileRef,
        manifest: &Hash,
    ) -> Result<Vec<crate::format::manifest::ChunkRef>, TransferError> {
        let tx = self.db.begin_read().map_err(StorageError::from)?;
        let reader = BlobReader::open(&self.files, &tx)?;
        let bytes = reader.read(manifest)?;
        let mismatch = |detail: String| TransferError::ContentMismatch {
            hash: file.hash,
            detail,
        };
        let (size, chunks) =
            decode_manifest(&bytes).map_err(|e| mismatch(format!("bad manifest: {e}")))?;
        if size != file.size {
            return Err(mismatch(format!(
                "the manifest says {size} bytes, the entry {}",
                file.size
            )));
        }
        Ok(chunks)
    }

    /// For each entry, whether its content must be in the store before it is inserted: true
    /// for a file entry that will be the latest version of its key (newer than this store's
    /// view and than the other entries given). Older versions and tombstones are history and
    /// need nothing.
    pub fn needs_content(&self, entries: &[SignedEntry]) -> Result<Vec<bool>, StorageError> {
        let mut newest: HashMap<(&str, &str), (u64, [u8; 32])> = HashMap::new();
        for e in entries {
            let v = (e.entry().time.raw(), *e.id().as_bytes());
            let k = (e.entry().collection.as_str(), e.entry().key.as_str());
            let slot = newest.entry(k).or_insert(v);
            if v > *slot {
                *slot = v;
            }
        }
        let tx = self.db.begin_read()?;
        let views = tx.open_table(super::VIEWS)?;
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            let v = (e.entry().time.raw(), *e.id().as_bytes());
            let (c, k) = (e.entry().collection.as_str(), e.entry().key.as_str());
            let latest_here = newest[&(c, k)] == v;
            let newer_than_view = views.get((c, k))?.is_none_or(|cur| v > cur.value());
            out.push(
                latest_here && newer_than_view && matches!(e.entry().value, EntryValue::File(_)),
            );
        }
        Ok(out)
    }

    /// Inserts entries received from another store. Each entry marked in `needs_content`
    /// (see [`Store::needs_content`]) must have its content complete here: for a chunked file
    /// the chunks are hashed together and must give the entry's file hash, so nothing that
    /// does not match its entry becomes visible. Returns how many entries were new.
    pub fn insert_received(
        &self,
        entries: &[SignedEntry],
        needs_content: &[bool],
    ) -> Result<u64, TransferError> {
        assert_eq!(entries.len(), needs_content.len(), "one flag per entry");
        let mut files = Vec::new();
        for (e, needs) in entries.iter().zip(needs_content) {
            if let (true, EntryValue::File(f)) = (needs, e.entry().value) {
                if !self.file_recorded(&f)? {
                    self.check_content(&f)?;
                }
                files.push(f);
            }
        }
        let _gc = self.gc_lock.read().expect("gc lock");
        let tx = self.db.begin_write().map_err(StorageError::from)?;
        let mut inserted = 0;
        let touched = {
            let mut table = tx.open_table(FILES).map_err(StorageError::from)?;
            for f in &files {
                let manifest = f.manifest.map(|m| *m.as_bytes()).unwrap_or(NO_MANIFEST);
                table
                    .insert(f.hash.as_bytes(), (f.size, manifest))
                    .map_err(StorageError::from)?;
            }
            drop(table);
            let mut tables = EntryTables::open(&tx)?;
            let mut clock = self.clock.lock().expect("clock lock");
            for e in entries {
                if tables.insert(e)? {
                    inserted += 1;
                }
                clock.observe(e.entry().time);
            }
            tables.finish(&clock)?
        };
        self.commit_entries(tx, touched)?;
        Ok(inserted)
    }

    /// True when `files-v1` already records exactly this file (so it was verified before).
    fn file_recorded(&self, f: &FileRef) -> Result<bool, StorageError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(FILES)?;
        let manifest = f.manifest.map(|m| *m.as_bytes()).unwrap_or(NO_MANIFEST);
        let recorded = table.get(f.hash.as_bytes())?.map(|v| v.value());
        Ok(recorded == Some((f.size, manifest))
            && (f.manifest.is_some() || self.has_blob(&f.hash)?))
    }

    /// Checks that `f`'s content is complete and hashes to `f.hash`.
    fn check_content(&self, f: &FileRef) -> Result<(), TransferError> {
        if !self.missing_blobs(f)?.is_empty() {
            return Err(TransferError::ContentMissing { hash: f.hash });
        }
        let tx = self.db.begin_read().map_err(StorageError::from)?;
        let reader = BlobReader::open(&self.files, &tx)?;
        let mismatch = |detail: String| TransferError::ContentMismatch {
            hash: f.hash,
            detail,
        };
        match f.manifest {
            None => {
                let size = reader.size(&f.hash)?.unwrap_or(0);
                if size != f.size {
                    return Err(mismatch(format!("the blob has {size} bytes")));
                }
            }
            Some(m) => {
                let chunks = self.manifest_of(f, &m)?;
                let mut hasher = blake3::Hasher::new();
                for c in chunks {
                    let data = reader.read(&c.hash).map_err(|e| match e {
                        ReadError::NotFound { .. } | ReadError::Missing { .. } => {
                            TransferError::ContentMissing { hash: f.hash }
                        }
                        other => other.into(),
                    })?;
                    if data.len() != c.len as usize {
                        return Err(mismatch(format!(
                            "chunk {} has {} bytes, the manifest says {}",
                            c.hash,
                            data.len(),
                            c.len
                        )));
                    }
                    hasher.update(&data);
                }
                let actual = Hash::from(hasher.finalize());
                if actual != f.hash {
                    return Err(mismatch(format!("the chunks hash to {actual}")));
                }
            }
        }
        Ok(())
    }
}

impl Store {
    /// Bytes free for this store on its file system (for an unprivileged user).
    pub fn available_space(&self) -> Result<u64, StorageError> {
        available_space(self.dir())
    }
}

#[cfg(unix)]
fn available_space(dir: &std::path::Path) -> Result<u64, StorageError> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| StorageError::io(dir, std::io::Error::other(e)))?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a valid C string and `st` a writable statvfs.
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return Err(StorageError::io(dir, std::io::Error::last_os_error()));
    }
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}

#[cfg(not(unix))]
fn available_space(_dir: &std::path::Path) -> Result<u64, StorageError> {
    Ok(u64::MAX)
}
