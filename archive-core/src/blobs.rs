//! Blob storage: small blobs inside redb, large ones as files with a bao outboard in redb.
//!
//! Every read of blob bytes goes through here and is verified against the blob's hash, so the
//! rest of the crate never sees unverified bytes. This is also the one place an encrypting layer
//! would wrap (see ARCHITECTURE.md, "Seizure resistance").

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bao_tree::io::outboard::PostOrderMemOutboard;
use bao_tree::io::round_up_to_chunks;
use bao_tree::{BaoTree, BlockSize, ByteRanges};
use redb::{ReadableTable, Table};

use crate::error::{ReadError, StorageError};
use crate::fault::{self, Point, WriteStep};
use crate::format::layout::{
    BLOBS, BLOB_DIR, INLINE_BLOBS, INLINE_MAX, LOCATION_FILE, LOCATION_INLINE, OUTBOARDS, TMP_DIR,
};
use crate::hash::Hash;

/// 16 KiB chunk groups, as iroh-blobs uses: outboards cost 64 bytes per 16 KiB (0.4 %).
pub(crate) const BLOCK_SIZE: BlockSize = BlockSize::from_chunk_log(4);

/// A blob hashed and ready to store.
pub(crate) struct PreparedBlob {
    pub(crate) hash: Hash,
    pub(crate) size: u64,
    /// The bytes; emptied once a file blob is written to disk.
    pub(crate) data: Vec<u8>,
    /// The post-order outboard, for blobs above [`INLINE_MAX`].
    pub(crate) outboard: Option<Vec<u8>>,
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
            }
        } else {
            let ob = PostOrderMemOutboard::create(&data, BLOCK_SIZE);
            PreparedBlob {
                hash: ob.root.into(),
                size: data.len() as u64,
                data,
                outboard: Some(ob.data),
            }
        }
    }

    /// True when the blob lives in a file of its own rather than in the database.
    pub(crate) fn is_file(&self) -> bool {
        self.outboard.is_some()
    }
}

/// The tables a write transaction needs to record blobs.
pub(crate) struct BlobTables<'txn> {
    pub(crate) blobs: Table<'txn, [u8; 32], (u64, u8)>,
    pub(crate) inline: Table<'txn, [u8; 32], &'static [u8]>,
    pub(crate) outboards: Table<'txn, [u8; 32], &'static [u8]>,
}

impl<'txn> BlobTables<'txn> {
    pub(crate) fn open(tx: &'txn redb::WriteTransaction) -> Result<Self, StorageError> {
        Ok(BlobTables {
            blobs: tx.open_table(BLOBS)?,
            inline: tx.open_table(INLINE_BLOBS)?,
            outboards: tx.open_table(OUTBOARDS)?,
        })
    }
}

/// Where the blob files live, and how they are written and read.
#[derive(Debug)]
pub(crate) struct BlobFiles {
    blob_dir: PathBuf,
    tmp_dir: PathBuf,
    tmp_counter: AtomicU64,
}

impl BlobFiles {
    pub(crate) fn new(root: &Path) -> Self {
        BlobFiles {
            blob_dir: root.join(BLOB_DIR),
            tmp_dir: root.join(TMP_DIR),
            tmp_counter: AtomicU64::new(0),
        }
    }

    pub(crate) fn create_dirs(&self) -> Result<(), StorageError> {
        for dir in [&self.blob_dir, &self.tmp_dir] {
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

    pub(crate) fn path(&self, hash: &Hash) -> PathBuf {
        let hex = hash.to_hex();
        self.blob_dir.join(&hex[..2]).join(hex)
    }

    /// Writes a file blob under a temporary name, then renames it into place. The data is not
    /// yet durable: [`BlobFiles::make_durable`] must run before any record refers to it.
    pub(crate) fn write(&self, blob: &PreparedBlob) -> Result<(), StorageError> {
        let final_path = self.path(&blob.hash);
        let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .tmp_dir
            .join(format!("{}.{}.{n}", blob.hash.to_hex(), std::process::id()));
        let result = (|| {
            let mut f = private_new_file().open(&tmp)?;
            f.write_all(&blob.data)?;
            start_writeback(&f);
            drop(f);
            fault::point(Point::Write(WriteStep::BlobWritten));
            let parent = final_path.parent().expect("blob paths have a parent");
            if let Err(e) = fs::rename(&tmp, &final_path) {
                if e.kind() != io::ErrorKind::NotFound {
                    return Err(e);
                }
                private_dir_builder().create(parent)?;
                fs::rename(&tmp, &final_path)?;
            }
            fault::point(Point::Write(WriteStep::BlobRenamed));
            Ok(())
        })();
        result.map_err(|e| {
            let _ = fs::remove_file(&tmp);
            StorageError::io(&final_path, e)
        })
    }

    /// Makes every blob file written so far durable (data and directory entries), so a commit
    /// that refers to them may follow.
    pub(crate) fn make_durable(&self) -> Result<(), StorageError> {
        sync_filesystem(&self.blob_dir).map_err(|e| StorageError::io(&self.blob_dir, e))?;
        fault::point(Point::Write(WriteStep::BlobsDurable));
        Ok(())
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

/// Starts writing a file's dirty pages to disk without waiting, so the barrier before the
/// commit finds little left to do. (`sync_file_range` is the one call here that rustix does
/// not wrap.)
fn start_writeback(file: &File) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: plain syscall on a valid, open descriptor; failure only loses the hint.
        unsafe {
            libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = file;
}

#[cfg(target_os = "linux")]
fn sync_filesystem(dir: &Path) -> io::Result<()> {
    rustix::fs::syncfs(File::open(dir)?).map_err(io::Error::from)
}

#[cfg(not(target_os = "linux"))]
fn sync_filesystem(_dir: &Path) -> io::Result<()> {
    // Without syncfs, fall back to the strongest portable call: sync the whole system.
    // (Windows is not a target; macOS and the BSDs have sync(2).)
    rustix::fs::sync();
    Ok(())
}

/// Records a prepared blob (already written, if it is a file blob) in the tables. Returns its
/// size if it was new to the tables, else 0.
pub(crate) fn record(
    tables: &mut BlobTables<'_>,
    blob: &PreparedBlob,
) -> Result<u64, StorageError> {
    let key = *blob.hash.as_bytes();
    if tables.blobs.get(&key)?.is_some() {
        return Ok(0);
    }
    match &blob.outboard {
        None => {
            tables.inline.insert(&key, blob.data.as_slice())?;
            tables.blobs.insert(&key, (blob.size, LOCATION_INLINE))?;
        }
        Some(ob) => {
            tables.outboards.insert(&key, ob.as_slice())?;
            tables.blobs.insert(&key, (blob.size, LOCATION_FILE))?;
        }
    }
    Ok(blob.size)
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
    pub(crate) inline: redb::ReadOnlyTable<[u8; 32], &'static [u8]>,
    pub(crate) outboards: redb::ReadOnlyTable<[u8; 32], &'static [u8]>,
}

impl<'a> BlobReader<'a> {
    pub(crate) fn open(
        files: &'a BlobFiles,
        tx: &redb::ReadTransaction,
    ) -> Result<Self, StorageError> {
        Ok(BlobReader {
            files,
            blobs: tx.open_table(BLOBS)?,
            inline: tx.open_table(INLINE_BLOBS)?,
            outboards: tx.open_table(OUTBOARDS)?,
        })
    }

    pub(crate) fn size(&self, hash: &Hash) -> Result<Option<u64>, StorageError> {
        Ok(lookup(&self.blobs, hash)?.map(|(size, _)| size))
    }

    /// The whole blob, verified against its hash.
    pub(crate) fn read(&self, hash: &Hash) -> Result<Vec<u8>, ReadError> {
        fault::point(Point::BlobRead(hash));
        let (size, location) =
            lookup(&self.blobs, hash)?.ok_or(ReadError::NotFound { hash: *hash })?;
        let data = match location {
            LOCATION_INLINE => self
                .inline
                .get(hash.as_bytes())
                .map_err(StorageError::from)?
                .map(|v| v.value().to_vec())
                .ok_or_else(|| ReadError::Corrupt {
                    hash: *hash,
                    detail: "inline bytes are missing from the database".into(),
                })?,
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
        if location == LOCATION_INLINE {
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
        let path = self.files.path(hash);
        let file = File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => ReadError::Missing {
                hash: *hash,
                path: path.clone(),
            },
            _ => StorageError::io(&path, e).into(),
        })?;
        let ranges = round_up_to_chunks(&ByteRanges::from(start..end));
        let mut encoded = Vec::new();
        bao_tree::io::sync::encode_ranges_validated(&file, &ob, &ranges, &mut encoded)
            .map_err(|e| corrupt(format!("range {start}..{end} does not verify: {e}")))?;
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
