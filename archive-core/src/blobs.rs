//! Blob storage: blob bytes appended to pack files, their places and bao outboards in redb
//! (and, read only, the inline blobs and blob files of store format 1).
//!
//! Every read of blob bytes goes through here and is verified against the blob's hash, so the
//! rest of the crate never sees unverified bytes. This is also the one place an encrypting layer
//! would wrap (see ARCHITECTURE.md, "Seizure resistance").

use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use bao_tree::io::outboard::PostOrderMemOutboard;
use bao_tree::io::round_up_to_chunks;
use bao_tree::{BaoTree, BlockSize, ByteRanges};
use redb::{ReadableTable, Table};

use crate::error::{ReadError, StorageError};
use crate::fault::{self, Point, WriteStep};
use crate::format::layout::{
    BLOBS, BLOB_DIR, INLINE_BLOBS, INLINE_MAX, LOCATION_INLINE, LOCATION_PACK, OUTBOARDS, PACKED,
    PACK_DIR, PACK_MAX, TMP_DIR,
};
use crate::hash::Hash;

/// 16 KiB chunk groups, as iroh-blobs uses: outboards cost 64 bytes per 16 KiB (0.4 %).
pub(crate) const BLOCK_SIZE: BlockSize = BlockSize::from_chunk_log(4);

/// A blob hashed and ready to store.
pub(crate) struct PreparedBlob {
    pub(crate) hash: Hash,
    pub(crate) size: u64,
    /// The bytes; emptied once appended to a pack.
    pub(crate) data: Vec<u8>,
    /// The post-order outboard, for blobs above [`INLINE_MAX`].
    pub(crate) outboard: Option<Vec<u8>>,
    /// Where it was appended: (pack, offset).
    pub(crate) packed: Option<(u32, u64)>,
}

impl PreparedBlob {
    /// Hashes `data` and, when it will be stored as a file, computes its outboard in the same
    /// pass (the outboard's root is the BLAKE3 hash).
    pub(crate) fn new(data: Vec<u8>) -> Self {
        if data.len() as u64 <= INLINE_MAX {
            PreparedBlob {
                hash: Hash::of(&data),
                size: data.len() as u64,
                data,
                outboard: None,
                packed: None,
            }
        } else {
            let ob = PostOrderMemOutboard::create(&data, BLOCK_SIZE);
            PreparedBlob {
                hash: ob.root.into(),
                size: data.len() as u64,
                data,
                outboard: Some(ob.data),
                packed: None,
            }
        }
    }
}

/// The tables a write transaction needs to record blobs.
pub(crate) struct BlobTables<'txn> {
    pub(crate) blobs: Table<'txn, [u8; 32], (u64, u8)>,
    pub(crate) packed: Table<'txn, [u8; 32], (u32, u64)>,
    pub(crate) outboards: Table<'txn, [u8; 32], &'static [u8]>,
}

impl<'txn> BlobTables<'txn> {
    pub(crate) fn open(tx: &'txn redb::WriteTransaction) -> Result<Self, StorageError> {
        Ok(BlobTables {
            blobs: tx.open_table(BLOBS)?,
            packed: tx.open_table(PACKED)?,
            outboards: tx.open_table(OUTBOARDS)?,
        })
    }
}

/// Where blob bytes live, and how they are written and read: packs (format 2), and the
/// blob files of format 1, read only.
#[derive(Debug)]
pub(crate) struct BlobFiles {
    blob_dir: PathBuf,
    tmp_dir: PathBuf,
    pack_dir: PathBuf,
    writer: Mutex<PackWriter>,
    /// Held through a whole `make_durable`, so they run one at a time (appends go on).
    syncing: Mutex<()>,
    /// Read handles of packs, opened once.
    readers: Mutex<HashMap<u32, Arc<File>>>,
}

/// The pack being appended to, and what is not durable yet.
#[derive(Debug, Default)]
struct PackWriter {
    /// Number, file and length of the pack appends go to; opened on the first append.
    current: Option<(u32, File, u64)>,
    /// Packs with appends since the last `make_durable` (the current one included).
    unsynced: Vec<(u32, File)>,
    current_unsynced: bool,
    /// A pack file was created since the last `make_durable`: the folder needs a sync too.
    new_file: bool,
    /// The current pack was seen on disk since the last `make_durable`.
    checked: bool,
}

impl BlobFiles {
    pub(crate) fn new(root: &Path) -> Self {
        BlobFiles {
            blob_dir: root.join(BLOB_DIR),
            tmp_dir: root.join(TMP_DIR),
            pack_dir: root.join(PACK_DIR),
            writer: Mutex::default(),
            syncing: Mutex::default(),
            readers: Mutex::default(),
        }
    }

    pub(crate) fn create_dirs(&self) -> Result<(), StorageError> {
        for dir in [&self.tmp_dir, &self.pack_dir] {
            private_dir_builder()
                .create(dir)
                .map_err(|e| StorageError::io(dir, e))?;
        }
        Ok(())
    }

    pub(crate) fn blob_dir(&self) -> &Path {
        &self.blob_dir
    }

    pub(crate) fn tmp_dir(&self) -> &Path {
        &self.tmp_dir
    }

    /// Where a format-1 file blob is.
    pub(crate) fn path(&self, hash: &Hash) -> PathBuf {
        let hex = hash.to_hex();
        self.blob_dir.join(&hex[..2]).join(hex)
    }

    /// Where pack `n` is.
    pub(crate) fn pack_path(&self, n: u32) -> PathBuf {
        self.pack_dir.join(format!("{n:08x}.pack"))
    }

    /// The numbers of the packs on disk, ascending.
    pub(crate) fn pack_numbers(&self) -> Result<Vec<u32>, StorageError> {
        let mut numbers = Vec::new();
        let listing = match fs::read_dir(&self.pack_dir) {
            Ok(l) => l,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(numbers),
            Err(e) => return Err(StorageError::io(&self.pack_dir, e)),
        };
        for item in listing {
            let item = item.map_err(|e| StorageError::io(&self.pack_dir, e))?;
            let name = item.file_name();
            let number = name
                .to_str()
                .and_then(|n| n.strip_suffix(".pack"))
                .filter(|n| n.len() == 8)
                .and_then(|n| u32::from_str_radix(n, 16).ok());
            numbers.extend(number);
        }
        numbers.sort_unstable();
        Ok(numbers)
    }

    /// Appends a blob's bytes to the current pack and notes where (`blob.packed`); the bytes
    /// are dropped from memory. Not yet durable: [`BlobFiles::make_durable`] must run before
    /// any record refers to them.
    pub(crate) fn append(&self, blob: &mut PreparedBlob) -> Result<(), StorageError> {
        let mut w = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        if !w.checked {
            // Once per batch: a pack deleted under a running store is not appended to.
            w.checked = true;
            if let Some((n, _, _)) = &w.current {
                if !self.pack_path(*n).exists() {
                    w.current = None;
                    w.current_unsynced = false;
                }
            }
        }
        let len = blob.data.len() as u64;
        let full = w
            .current
            .as_ref()
            .is_none_or(|(_, _, at)| *at > 0 && at + len > PACK_MAX);
        if full {
            self.next_pack(&mut w)?;
        }
        let (n, file, at) = w.current.as_mut().expect("a pack is open");
        let offset = *at;
        file.write_all_at(&blob.data, offset)
            .map_err(|e| StorageError::io(self.pack_path(*n), e))?;
        *at += len;
        blob.packed = Some((*n, offset));
        blob.data = Vec::new();
        w.current_unsynced = true;
        fault::point(Point::Write(WriteStep::BlobAppended));
        Ok(())
    }

    /// Moves appends to a pack with room: the last pack on disk if it has some (after a
    /// restart; bytes a crash left past its last committed blob are never referred to), else
    /// a new one.
    fn next_pack(&self, w: &mut PackWriter) -> Result<(), StorageError> {
        if let Some((n, file, _)) = w.current.take() {
            if w.current_unsynced {
                w.unsynced.push((n, file));
            }
            w.current_unsynced = false;
        }
        let last = self.pack_numbers()?.last().copied();
        let reopen = match last {
            Some(n) if w.unsynced.iter().all(|(u, _)| *u != n) => {
                let path = self.pack_path(n);
                let len = fs::metadata(&path)
                    .map_err(|e| StorageError::io(&path, e))?
                    .len();
                (len < PACK_MAX / 2).then_some((n, len))
            }
            _ => None,
        };
        let (n, file, len) = match reopen {
            Some((n, len)) => {
                let path = self.pack_path(n);
                let file = fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(|e| StorageError::io(&path, e))?;
                (n, file, len)
            }
            None => {
                let n = last.map_or(0, |l| l + 1);
                let path = self.pack_path(n);
                private_dir_builder()
                    .create(&self.pack_dir)
                    .map_err(|e| StorageError::io(&self.pack_dir, e))?;
                let file = private_new_file()
                    .open(&path)
                    .map_err(|e| StorageError::io(&path, e))?;
                w.new_file = true;
                (n, file, 0)
            }
        };
        w.current = Some((n, file, len));
        Ok(())
    }

    /// Makes every pack append so far durable (data, and the folder's entries of new packs),
    /// so a commit that refers to them may follow. Appends go on meanwhile (another thread
    /// reads the next batch); calls run one at a time, so a caller that finds nothing left to
    /// sync knows the call before it has finished syncing its bytes.
    pub(crate) fn make_durable(&self) -> Result<(), StorageError> {
        let _one_at_a_time = self.syncing.lock().unwrap_or_else(PoisonError::into_inner);
        let (mut files, new_file) = {
            let mut w = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
            let mut files = std::mem::take(&mut w.unsynced);
            if w.current_unsynced {
                if let Some((n, file, _)) = &w.current {
                    let dup = file
                        .try_clone()
                        .map_err(|e| StorageError::io(self.pack_path(*n), e))?;
                    files.push((*n, dup));
                }
                w.current_unsynced = false;
            }
            w.checked = false;
            (files, std::mem::take(&mut w.new_file))
        };
        let synced = (|| -> Result<(), StorageError> {
            while let Some((n, file)) = files.last() {
                file.sync_data()
                    .map_err(|e| StorageError::io(self.pack_path(*n), e))?;
                files.pop();
            }
            if new_file {
                File::open(&self.pack_dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| StorageError::io(&self.pack_dir, e))?;
            }
            Ok(())
        })();
        if synced.is_err() {
            // Not known durable: the next call tries again.
            let mut w = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
            w.unsynced.append(&mut files);
            w.new_file |= new_file;
        }
        synced?;
        fault::point(Point::Write(WriteStep::PacksDurable));
        Ok(())
    }

    /// Sends appends to a new pack from now on (so `gc` never appends to a pack it is about to
    /// rewrite).
    pub(crate) fn start_new_pack(&self) -> Result<(), StorageError> {
        let mut w = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((n, file, _)) = w.current.take() {
            if w.current_unsynced {
                w.unsynced.push((n, file));
            }
            w.current_unsynced = false;
        }
        let n = self.pack_numbers()?.last().map_or(0, |l| l + 1);
        let path = self.pack_path(n);
        let file = private_new_file()
            .open(&path)
            .map_err(|e| StorageError::io(&path, e))?;
        w.new_file = true;
        w.current = Some((n, file, 0));
        Ok(())
    }

    /// The pack appends go to now, if one is open.
    pub(crate) fn current_pack(&self) -> Option<u32> {
        let w = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        w.current.as_ref().map(|(n, _, _)| *n)
    }

    /// A read handle of pack `n`.
    fn pack_reader(&self, n: u32) -> io::Result<Arc<File>> {
        let mut readers = self.readers.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(f) = readers.get(&n) {
            return Ok(f.clone());
        }
        let file = Arc::new(File::open(self.pack_path(n))?);
        readers.insert(n, file.clone());
        Ok(file)
    }

    /// Forgets every read handle: the next reads open the packs as they are on disk now.
    pub(crate) fn forget_readers(&self) {
        self.readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Forgets the read handle of a pack that is being deleted.
    pub(crate) fn forget_pack(&self, n: u32) {
        self.readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&n);
    }

    /// `size` bytes at `offset` of pack `n` (not verified: see [`BlobReader::read`]).
    fn read_packed(
        &self,
        hash: &Hash,
        n: u32,
        offset: u64,
        size: u64,
    ) -> Result<Vec<u8>, ReadError> {
        let path = || self.pack_path(n);
        let file = self.pack_reader(n).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => ReadError::Missing {
                hash: *hash,
                path: path(),
            },
            _ => StorageError::io(path(), e).into(),
        })?;
        let mut data = vec![0u8; size as usize];
        match file.read_exact_at(&mut data, offset) {
            Ok(()) => Ok(data),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(ReadError::Corrupt {
                hash: *hash,
                detail: format!(
                    "{} ends before its bytes ({size} at {offset})",
                    path().display()
                ),
            }),
            Err(e) => Err(StorageError::io(path(), e).into()),
        }
    }

    /// True when pack `n` holds `size` bytes at `offset` (its file is there, as it is on disk
    /// now, and long enough).
    pub(crate) fn holds_packed(&self, n: u32, offset: u64, size: u64) -> bool {
        fs::metadata(self.pack_path(n)).is_ok_and(|m| m.len() >= offset + size)
    }
}

/// Bytes `offset..offset + len` of a pack, read in place (for bao's verified range reads).
struct PackSlice<'a> {
    file: &'a File,
    offset: u64,
    len: u64,
}

impl bao_tree::io::sync::ReadAt for PackSlice<'_> {
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
        if pos >= self.len {
            return Ok(0);
        }
        let n = buf.len().min((self.len - pos) as usize);
        FileExt::read_at(self.file, &mut buf[..n], self.offset + pos)
    }
}

/// Folders of the store: owner only (see `store::private`).
fn private_dir_builder() -> fs::DirBuilder {
    use std::os::unix::fs::DirBuilderExt;
    let mut b = fs::DirBuilder::new();
    b.recursive(true).mode(0o700);
    b
}

/// A new file of the store, created exclusively, readable by its owner only.
fn private_new_file() -> fs::OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    let mut o = fs::OpenOptions::new();
    o.write(true).create_new(true).mode(0o600);
    o
}

/// Records a blob appended to a pack (and made durable) in the tables. A blob recorded before
/// is appended again only when its bytes were found missing or damaged: its record then points
/// at the new copy. Returns its size if it was new to the tables, else 0.
pub(crate) fn record(
    tables: &mut BlobTables<'_>,
    blob: &PreparedBlob,
) -> Result<u64, StorageError> {
    let key = *blob.hash.as_bytes();
    let known = tables.blobs.get(&key)?.is_some();
    let place = blob
        .packed
        .expect("a blob is appended to a pack before it is recorded");
    if let Some(ob) = &blob.outboard {
        tables.outboards.insert(&key, ob.as_slice())?;
    }
    tables.packed.insert(&key, place)?;
    tables.blobs.insert(&key, (blob.size, LOCATION_PACK))?;
    Ok(if known { 0 } else { blob.size })
}

/// Size and location of a stored blob, if the store has it.
pub(crate) fn lookup(
    blobs: &impl ReadableTable<[u8; 32], (u64, u8)>,
    hash: &Hash,
) -> Result<Option<(u64, u8)>, StorageError> {
    Ok(blobs.get(hash.as_bytes())?.map(|v| v.value()))
}

/// Read access to blobs inside one read transaction.
pub(crate) struct BlobReader<'a> {
    pub(crate) files: &'a BlobFiles,
    pub(crate) blobs: redb::ReadOnlyTable<[u8; 32], (u64, u8)>,
    pub(crate) packed: redb::ReadOnlyTable<[u8; 32], (u32, u64)>,
    pub(crate) inline: redb::ReadOnlyTable<[u8; 32], &'static [u8]>,
    pub(crate) outboards: redb::ReadOnlyTable<[u8; 32], &'static [u8]>,
}

/// True when a recorded blob's bytes are where its record says: a format-1 file blob's file
/// is there with the right size; a packed blob's pack is there and long enough. (Inline
/// bytes are in the database.)
pub(crate) fn in_place(
    files: &BlobFiles,
    packed: &impl ReadableTable<[u8; 32], (u32, u64)>,
    hash: &Hash,
    size: u64,
    location: u8,
) -> Result<bool, StorageError> {
    Ok(match location {
        LOCATION_INLINE => true,
        LOCATION_PACK => packed
            .get(hash.as_bytes())?
            .is_some_and(|v| files.holds_packed(v.value().0, v.value().1, size)),
        _ => fs::metadata(files.path(hash)).is_ok_and(|m| m.len() == size),
    })
}

impl<'a> BlobReader<'a> {
    pub(crate) fn open(
        files: &'a BlobFiles,
        tx: &redb::ReadTransaction,
    ) -> Result<Self, StorageError> {
        Ok(BlobReader {
            files,
            blobs: tx.open_table(BLOBS)?,
            packed: tx.open_table(PACKED)?,
            inline: tx.open_table(INLINE_BLOBS)?,
            outboards: tx.open_table(OUTBOARDS)?,
        })
    }

    /// A blob's size and bytes as stored, not verified; `None` if it is not recorded.
    pub(crate) fn raw(&self, hash: &Hash) -> Result<Option<(u64, Vec<u8>)>, ReadError> {
        fault::point(Point::BlobRead(hash));
        let Some((size, location)) = lookup(&self.blobs, hash)? else {
            return Ok(None);
        };
        let corrupt = |detail: &str| ReadError::Corrupt {
            hash: *hash,
            detail: detail.into(),
        };
        let data = match location {
            LOCATION_INLINE => self
                .inline
                .get(hash.as_bytes())
                .map_err(StorageError::from)?
                .map(|v| v.value().to_vec())
                .ok_or_else(|| corrupt("inline bytes are missing from the database"))?,
            LOCATION_PACK => {
                let (pack, offset) = self
                    .packed
                    .get(hash.as_bytes())
                    .map_err(StorageError::from)?
                    .map(|v| v.value())
                    .ok_or_else(|| corrupt("its place in a pack is missing from the database"))?;
                self.files.read_packed(hash, pack, offset, size)?
            }
            _ => {
                let path = self.files.path(hash);
                match fs::read(&path) {
                    Ok(d) => d,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        return Err(ReadError::Missing { hash: *hash, path })
                    }
                    Err(e) => return Err(StorageError::io(path, e).into()),
                }
            }
        };
        Ok(Some((size, data)))
    }

    pub(crate) fn size(&self, hash: &Hash) -> Result<Option<u64>, StorageError> {
        Ok(lookup(&self.blobs, hash)?.map(|(size, _)| size))
    }

    /// The whole blob, verified against its hash.
    pub(crate) fn read(&self, hash: &Hash) -> Result<Vec<u8>, ReadError> {
        let (size, data) = self.raw(hash)?.ok_or(ReadError::NotFound { hash: *hash })?;
        if data.len() as u64 != size {
            return Err(ReadError::Corrupt {
                hash: *hash,
                detail: format!("{} bytes stored, {size} expected", data.len()),
            });
        }
        let actual = Hash::of(&data);
        if actual != *hash {
            return Err(ReadError::Corrupt {
                hash: *hash,
                detail: format!("content hashes to {actual}"),
            });
        }
        Ok(data)
    }

    /// Checks a file blob's outboard against its data (both must agree with the hash).
    pub(crate) fn check_outboard(&self, hash: &Hash, data: &[u8]) -> Result<(), ReadError> {
        if data.len() as u64 <= INLINE_MAX {
            return Ok(());
        }
        let stored = self
            .outboards
            .get(hash.as_bytes())
            .map_err(StorageError::from)?
            .map(|v| v.value().to_vec());
        let expected = PostOrderMemOutboard::create(data, BLOCK_SIZE).data;
        if stored.as_deref() != Some(expected.as_slice()) {
            return Err(ReadError::Corrupt {
                hash: *hash,
                detail: "its bao outboard is missing or damaged".into(),
            });
        }
        Ok(())
    }

    /// Bytes `start..end` of a blob, verified through the bao outboard: only the 16 KiB chunk
    /// groups that cover the range are read and hashed.
    pub(crate) fn read_range(
        &self,
        hash: &Hash,
        start: u64,
        end: u64,
    ) -> Result<Vec<u8>, ReadError> {
        fault::point(Point::BlobRead(hash));
        let (size, location) =
            lookup(&self.blobs, hash)?.ok_or(ReadError::NotFound { hash: *hash })?;
        if start > end || end > size {
            return Err(ReadError::OutOfRange {
                hash: *hash,
                start,
                end,
                size,
            });
        }
        if location == LOCATION_INLINE || size <= INLINE_MAX {
            // One chunk group, no outboard: the whole blob is read and checked.
            let all = self.read(hash)?;
            return Ok(all[start as usize..end as usize].to_vec());
        }
        let corrupt = |detail: String| ReadError::Corrupt {
            hash: *hash,
            detail,
        };
        let outboard = self
            .outboards
            .get(hash.as_bytes())
            .map_err(StorageError::from)?
            .map(|v| v.value().to_vec())
            .ok_or_else(|| corrupt("its bao outboard is missing".into()))?;
        let tree = BaoTree::new(size, BLOCK_SIZE);
        let root = blake3::Hash::from_bytes(*hash.as_bytes());
        let ob = PostOrderMemOutboard {
            root,
            tree,
            data: outboard,
        };
        let missing_or_failed = |path: PathBuf, e: io::Error| match e.kind() {
            io::ErrorKind::NotFound => ReadError::Missing { hash: *hash, path },
            _ => StorageError::io(path, e).into(),
        };
        let ranges = round_up_to_chunks(&ByteRanges::from(start..end));
        let mut encoded = Vec::new();
        let encoded_ok = if location == LOCATION_PACK {
            let (pack, offset) = self
                .packed
                .get(hash.as_bytes())
                .map_err(StorageError::from)?
                .map(|v| v.value())
                .ok_or_else(|| corrupt("its place in a pack is missing".into()))?;
            let file = self
                .files
                .pack_reader(pack)
                .map_err(|e| missing_or_failed(self.files.pack_path(pack), e))?;
            let slice = PackSlice {
                file: &file,
                offset,
                len: size,
            };
            bao_tree::io::sync::encode_ranges_validated(slice, &ob, &ranges, &mut encoded)
        } else {
            let path = self.files.path(hash);
            let file = File::open(&path).map_err(|e| missing_or_failed(path, e))?;
            bao_tree::io::sync::encode_ranges_validated(&file, &ob, &ranges, &mut encoded)
        };
        encoded_ok.map_err(|e| corrupt(format!("range {start}..{end} does not verify: {e}")))?;
        let mut out = Vec::with_capacity((end - start) as usize);
        let decoder = bao_tree::io::sync::DecodeResponseIter::new(
            root,
            tree,
            io::Cursor::new(&encoded),
            &ranges,
        );
        for item in decoder {
            let item =
                item.map_err(|e| corrupt(format!("range {start}..{end} does not verify: {e}")))?;
            if let bao_tree::io::BaoContentItem::Leaf(leaf) = item {
                let leaf_end = leaf.offset + leaf.data.len() as u64;
                let from = start.max(leaf.offset);
                let to = end.min(leaf_end);
                if from < to {
                    out.extend_from_slice(
                        &leaf.data[(from - leaf.offset) as usize..(to - leaf.offset) as usize],
                    );
                }
            }
        }
        Ok(out)
    }
}
