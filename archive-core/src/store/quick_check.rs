//! The quick check of `add`, as git's index and restic's file cache do it: what each added file
//! hashed to, by path and `stat`, so a file whose device, inode, size, modification time and
//! change time are all as they were is not read again.
//!
//! `ctime` is the guard against a deliberate `touch -d` back to the old `mtime`: no user call
//! sets it. A file that changed within [`RACY_NANOS`] of being read is not recorded, because a
//! second change in the same timestamp tick would leave its `stat` equal (git's "racily clean"
//! files).

use std::fs::Metadata;
use std::path::Path;

use redb::ReadableDatabase;

use super::Store;
use crate::entry::FileRef;
use crate::error::StorageError;
use crate::format::layout::QUICK_CHECK;
use crate::hash::Hash;

/// A file changed this recently (nanoseconds before it was looked at) is read every time, not
/// recorded: ext4 timestamps advance in ticks, and two writes in one tick look like one.
pub(crate) const RACY_NANOS: i64 = 2_000_000_000;

/// What `stat` says of a file, as far as the quick check compares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileStat {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    pub(crate) size: u64,
    pub(crate) mtime_ns: i64,
    pub(crate) ctime_ns: i64,
}

impl FileStat {
    /// The fields of `meta` (on Unix; elsewhere there is no quick check).
    pub(crate) fn of(meta: &Metadata) -> Option<FileStat> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let ns = |s: i64, n: i64| s.saturating_mul(1_000_000_000).saturating_add(n);
            Some(FileStat {
                dev: meta.dev(),
                ino: meta.ino(),
                size: meta.len(),
                mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
                ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
            })
        }
        #[cfg(not(unix))]
        {
            let _ = meta;
            None
        }
    }

    /// True when the file last changed long enough before `now_ns` for its `stat` to show
    /// any later change.
    pub(crate) fn settled(&self, now_ns: i64) -> bool {
        let limit = now_ns.saturating_sub(RACY_NANOS);
        self.mtime_ns < limit && self.ctime_ns < limit
    }
}

/// The table key of a file: its absolute path's bytes (not resolved through links: the
/// device and inode in the row tell one file from another).
pub(crate) fn path_key(path: &Path) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let absolute = std::path::absolute(path).ok()?;
    Some(absolute.as_os_str().as_bytes().to_vec())
}

/// Records, in `tx`, that the file at `key` with `stat` hashed to `hash`.
pub(crate) fn record(
    tx: &redb::WriteTransaction,
    key: &[u8],
    stat: &FileStat,
    hash: &Hash,
) -> Result<(), StorageError> {
    let mut table = tx.open_table(QUICK_CHECK)?;
    table.insert(
        key,
        (
            stat.dev,
            stat.ino,
            stat.size,
            stat.mtime_ns,
            stat.ctime_ns,
            *hash.as_bytes(),
        ),
    )?;
    Ok(())
}

impl Store {
    /// The hash the file at `key` had when it was last read, if its `stat` is unchanged.
    fn quick_hash(&self, key: &[u8], stat: &FileStat) -> Result<Option<Hash>, StorageError> {
        let tx = self.db.begin_read()?;
        let table = match tx.open_table(QUICK_CHECK) {
            Ok(t) => t,
            // A store created before the quick check, not yet written by this build.
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let Some(row) = table.get(key)? else {
            return Ok(None);
        };
        let (dev, ino, size, mtime_ns, ctime_ns, hash) = row.value();
        let then = FileStat {
            dev,
            ino,
            size,
            mtime_ns,
            ctime_ns,
        };
        Ok((then == *stat).then(|| Hash::from_bytes(hash)))
    }

    /// True when `key` of `collection` already holds the content of the file at `path`, known
    /// without reading it: its `stat` matches what the quick check recorded, the view holds
    /// that content, and the content is still in the store (a blob lost to damage is read and
    /// written again instead).
    pub(super) fn holds_unread(
        &self,
        collection: &str,
        key: &str,
        path_key: &[u8],
        stat: &FileStat,
    ) -> Result<bool, StorageError> {
        let Some(hash) = super::guarded(|| self.quick_hash(path_key, stat))? else {
            return Ok(false);
        };
        let held: Option<FileRef> = self
            .collection_unchecked(collection)
            .get(key)?
            .map(|item| item.file);
        Ok(match held {
            Some(f) if f.hash == hash && f.size == stat.size => {
                self.has_blob_in_place(&f.manifest.unwrap_or(f.hash))
            }
            _ => false,
        })
    }
}

#[cfg(test)]
mod tests {
    use redb::ReadableTableMetadata;

    use super::*;
    use crate::NoProgress;

    fn rows(store: &Store) -> u64 {
        let tx = store.db.begin_read().unwrap();
        tx.open_table(QUICK_CHECK).unwrap().len().unwrap()
    }

    #[test]
    fn gc_drops_the_rows_of_content_nothing_holds() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::init(dir.path().join("store")).unwrap();
        store.set_wall_clock(|| u64::MAX / 4_000_000); // far ahead: every file is settled
        let src = dir.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        for name in ["a", "b", "c"] {
            std::fs::write(src.join(name), name.repeat(100)).unwrap();
        }
        let docs = store.collection("docs").unwrap();
        docs.add_path(&src, Some(""), &mut NoProgress).unwrap();
        assert_eq!(rows(&store), 3);
        docs.remove(&["b"]).unwrap();
        store.gc().unwrap();
        assert_eq!(rows(&store), 2);
    }
}
