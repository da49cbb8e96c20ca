//! The quick check of `add`, as git's index and restic's file cache do it: what each added file
//! hashed to, by path and `stat`, so a file whose device, inode, size, modification time and
//! change time are all as they were is not read again.
//!
//! `ctime` is the guard against a deliberate `touch -d` back to the old `mtime`: no user call
//! sets it. A file that changed within [`RACY_NANOS`] of being read is not recorded, because a
//! second change in the same timestamp tick would leave its `stat` equal (git's "racily clean"
//! files).

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fs::Metadata;
use std::path::Path;

use redb::{AccessGuard, ReadOnlyTable, ReadableDatabase};

use super::{decode_stored_entry, Store};
use crate::blobs;
use crate::entry::{EntryId, EntryValue, FileMeta};
use crate::error::StorageError;
use crate::format::layout::{
    QuickCheckRow, BLOBS, ENTRIES, INLINE_MAX, PACKED, QUICK_CHECK, VIEWS,
};
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
/// device and inode in the row tell one file from another). `file` lies under `given`, the
/// path `add` was given, which is `absolute` made absolute (once per add: that needs the
/// working folder, a system call).
pub(crate) fn path_key(absolute: &Path, given: &Path, file: &Path) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    // The walk makes each file's path by joining names onto `given`, so its bytes start with
    // `given`'s and then one separator: the rest is put after `absolute` as it is, without
    // the component parsing of `strip_prefix` and `join` (a third of a re-add's lookups).
    // Anything else takes the general way below, which gives the same bytes.
    let (abs, prefix, whole) = (
        absolute.as_os_str().as_bytes(),
        given.as_os_str().as_bytes(),
        file.as_os_str().as_bytes(),
    );
    let rest = whole.strip_prefix(prefix).and_then(|rest| match rest {
        [b'/', rel @ ..] if !prefix.ends_with(b"/") => Some(rel),
        rel if prefix.ends_with(b"/") => Some(rel),
        _ => None,
    });
    if let Some(rel) = rest.filter(|r| plain_relative(r) && !abs.ends_with(b"/")) {
        let mut key = Vec::with_capacity(abs.len() + 1 + rel.len());
        key.extend_from_slice(abs);
        key.push(b'/');
        key.extend_from_slice(rel);
        return Some(key);
    }
    path_key_by_components(absolute, given, file)
}

/// True for `a/b/c`: not empty, no empty, `.` or `..` component, no leading or trailing `/`.
fn plain_relative(rel: &[u8]) -> bool {
    !rel.is_empty()
        && rel
            .split(|b| *b == b'/')
            .all(|c| !c.is_empty() && c != b"." && c != b"..")
}

/// [`path_key`] the general way: `given` stripped from `file` by components, the rest joined
/// onto `absolute`.
fn path_key_by_components(absolute: &Path, given: &Path, file: &Path) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let rel = file.strip_prefix(given).ok()?;
    let full = if rel.as_os_str().is_empty() {
        absolute.to_owned()
    } else {
        absolute.join(rel)
    };
    Some(full.as_os_str().as_bytes().to_vec())
}

/// Records that the file at `key` with `stat` hashed to `hash`, and which entry then held it
/// (the key of the collection it was added to; `None` if it was not placed).
pub(crate) fn record(
    table: &mut redb::Table<'_, &'static [u8], QuickCheckRow>,
    key: &[u8],
    stat: &FileStat,
    hash: &Hash,
    entry: Option<&EntryId>,
) -> Result<(), StorageError> {
    table.insert(
        key,
        (
            stat.dev,
            stat.ino,
            stat.size,
            stat.mtime_ns,
            stat.ctime_ns,
            *hash.as_bytes(),
            entry.map_or([0; 32], |e| *e.as_bytes()),
        ),
    )?;
    Ok(())
}

/// Rows stepped over before a lookup in ascending order seeks from the root instead.
const MAX_STEPS: usize = 8;

/// Lookups in one table with keys that come in ascending order (the files of an add are
/// sorted by key, and their path keys ascend with them): each steps along the leaves from the
/// row the one before found, instead of walking down from the root, and seeks afresh after a
/// few steps. A key below the one looked up before may be reported absent; for the quick
/// check that only means the file is read again.
struct Ascending<K: redb::Key + 'static, V: redb::Value + 'static> {
    /// The first row at or after the key looked up last; `None` past the end. Declared
    /// first, so it is dropped before the range that keeps its transaction open.
    row: Option<(AccessGuard<'static, K>, AccessGuard<'static, V>)>,
    rows: Option<redb::Range<'static, K, V>>,
}

impl<K: redb::Key + 'static, V: redb::Value + 'static> Ascending<K, V> {
    fn new() -> Self {
        Ascending {
            rows: None,
            row: None,
        }
    }

    /// The row at `want`; `order` tells how a row's key compares with `want`.
    fn get<'w>(
        &mut self,
        table: &ReadOnlyTable<K, V>,
        want: impl Borrow<K::SelfType<'w>> + 'w,
        order: impl Fn(K::SelfType<'_>) -> Ordering,
    ) -> Result<Option<&AccessGuard<'static, V>>, StorageError> {
        let mut steps = 0;
        let stepped_to = loop {
            let Some(rows) = &mut self.rows else {
                break None;
            };
            let Some((key, _)) = &self.row else {
                return Ok(None);
            };
            match order(key.value()) {
                Ordering::Equal => break Some(true),
                Ordering::Greater => break Some(false),
                Ordering::Less if steps < MAX_STEPS => {
                    steps += 1;
                    self.row = rows.next().transpose()?;
                }
                Ordering::Less => break None,
            }
        };
        let hit = match stepped_to {
            Some(hit) => hit,
            None => {
                let mut rows = table.range(want..)?;
                self.row = rows.next().transpose()?;
                self.rows = Some(rows);
                match &self.row {
                    Some((key, _)) => order(key.value()) == Ordering::Equal,
                    None => false,
                }
            }
        };
        Ok(self.row.as_ref().filter(|_| hit).map(|(_, value)| value))
    }
}

/// The tables the quick check reads, in one read transaction that `add` renews after each
/// batch it commits (so no transaction outlives a batch, and the rows it just wrote are seen).
pub(super) struct QuickLookup {
    /// `None` in a store created before the quick check and not yet written by this build.
    quick: Option<ReadOnlyTable<&'static [u8], QuickCheckRow>>,
    /// Where [`QuickLookup::holds_unread`]'s ascending lookups are in `quick` and `views`.
    quick_rows: Ascending<&'static [u8], QuickCheckRow>,
    view_rows: Ascending<(&'static str, &'static str), (u64, [u8; 32])>,
    views: ReadOnlyTable<(&'static str, &'static str), (u64, [u8; 32])>,
    entries: ReadOnlyTable<[u8; 40], &'static [u8]>,
    blobs: ReadOnlyTable<[u8; 32], (u64, u8)>,
    packed: ReadOnlyTable<[u8; 32], (u32, u64)>,
}

impl QuickLookup {
    pub(super) fn open(store: &Store) -> Result<QuickLookup, StorageError> {
        super::guarded(|| {
            let tx = store.db.begin_read()?;
            let quick = match tx.open_table(QUICK_CHECK) {
                Ok(t) => Some(t),
                Err(redb::TableError::TableDoesNotExist(_)) => None,
                Err(e) => return Err(e.into()),
            };
            Ok(QuickLookup {
                quick,
                quick_rows: Ascending::new(),
                view_rows: Ascending::new(),
                views: tx.open_table(VIEWS)?,
                entries: tx.open_table(ENTRIES)?,
                blobs: tx.open_table(BLOBS)?,
                packed: tx.open_table(PACKED)?,
            })
        })
    }

    /// The content hash recorded for the file at `path_key`, if its `stat` is still the one
    /// recorded with it.
    pub(super) fn recorded_hash(
        &self,
        path_key: &[u8],
        stat: &FileStat,
    ) -> Result<Option<Hash>, StorageError> {
        super::guarded(|| Ok(self.unchanged_row(path_key, stat)?.map(|(hash, _)| hash)))
    }

    /// The recorded hash and entry (zeros: none) of the file at `path_key`, if its `stat`
    /// is still the one recorded with it.
    fn unchanged_row(
        &self,
        path_key: &[u8],
        stat: &FileStat,
    ) -> Result<Option<(Hash, [u8; 32])>, StorageError> {
        let Some(quick) = &self.quick else {
            return Ok(None);
        };
        Ok(quick
            .get(path_key)?
            .and_then(|row| unchanged(row.value(), stat)))
    }

    /// True when `key` of `collection` already holds the content of the file at `path_key`,
    /// known without reading it: its `stat` matches what the quick check recorded, the view
    /// holds that content with the file's `meta`, and the content is still in the store (a blob lost to damage is
    /// read and written again instead). Files are asked about in ascending order of key (and
    /// so of path key): see [`Ascending`].
    pub(super) fn holds_unread(
        &mut self,
        store: &Store,
        collection: &str,
        key: &str,
        path_key: &[u8],
        stat: &FileStat,
        meta: &FileMeta,
    ) -> Result<bool, StorageError> {
        super::guarded(|| {
            let Some(quick) = &self.quick else {
                return Ok(false);
            };
            let row = self
                .quick_rows
                .get(quick, path_key, |k: &[u8]| k.cmp(path_key))?
                .and_then(|row| unchanged(row.value(), stat));
            let Some((hash, entry)) = row else {
                return Ok(false);
            };
            let size = stat.size;
            let view = self
                .view_rows
                .get(&self.views, (collection, key), |(c, k): (&str, &str)| {
                    (c, k).cmp(&(collection, key))
                })?
                .map(|v| v.value());
            let Some((time, id)) = view else {
                return Ok(false);
            };
            if id == entry && size <= INLINE_MAX {
                // The key holds the very entry this row was written with, and the content is
                // small enough to live inside the database (recorded with that entry): done.
                return Ok(true);
            }
            let signed = decode_stored_entry(&self.entries, (time, id))?;
            let held = match signed.entry().value {
                EntryValue::File(f) => f,
                EntryValue::Folder | EntryValue::Tombstone => return Ok(false),
            };
            // Another entry with this content (from a peer, say) but not this file's
            // modification time or mode: read it, so the entry gets them.
            if held.hash != hash || held.size != size || signed.entry().meta != *meta {
                return Ok(false);
            }
            // Check the content's bytes are still where they are recorded.
            let blob = held.manifest.unwrap_or(held.hash);
            match blobs::lookup(&self.blobs, &blob)? {
                None => Ok(false),
                Some((size, location)) => {
                    blobs::in_place(&store.files, &self.packed, &blob, size, location)
                }
            }
        })
    }
}

/// The recorded hash and entry (zeros: none) of a quick-check row, if `stat` is still the one
/// recorded in it.
fn unchanged(row: QuickCheckRow, stat: &FileStat) -> Option<(Hash, [u8; 32])> {
    let (dev, ino, size, mtime_ns, ctime_ns, hash, entry) = row;
    let then = FileStat {
        dev,
        ino,
        size,
        mtime_ns,
        ctime_ns,
    };
    (then == *stat).then(|| (Hash::from_bytes(hash), entry))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use redb::ReadableTableMetadata;

    use super::*;
    use crate::NoProgress;

    proptest::proptest! {
        /// Lookups in ascending order find exactly what `get` finds, whatever the gaps
        /// between the keys asked (stepped over or sought afresh).
        #[test]
        fn ascending_lookups_find_what_get_finds(
            keys in proptest::collection::btree_set(0u64..400, 0..200),
            asked in proptest::collection::btree_set(0u64..420, 0..100),
        ) {
            const TABLE: redb::TableDefinition<u64, u64> = redb::TableDefinition::new("t");
            let dir = tempfile::tempdir().unwrap();
            let db = redb::Database::create(dir.path().join("db")).unwrap();
            let tx = db.begin_write().unwrap();
            {
                let mut table = tx.open_table(TABLE).unwrap();
                for k in &keys {
                    table.insert(k, k * 3).unwrap();
                }
            }
            tx.commit().unwrap();
            let table = db.begin_read().unwrap().open_table(TABLE).unwrap();
            let mut rows = Ascending::new();
            for want in asked {
                let stepped = rows
                    .get(&table, want, |k: u64| k.cmp(&want))
                    .unwrap()
                    .map(|v| v.value());
                let got = table.get(want).unwrap().map(|v| v.value());
                proptest::prop_assert_eq!(stepped, got, "key {}", want);
            }
        }

        /// The byte-wise way of `path_key` gives exactly the bytes of the general way, for
        /// paths made as the walk makes them and for odd ones (`.`, `..`, doubled and
        /// trailing separators, a file outside `given`).
        #[test]
        fn path_key_bytes_match_the_general_way(
            absolute in proptest::sample::select(vec!["/", "/home/ana", "/home/ana/", "/a/./b"]),
            given in proptest::sample::select(vec![
                "qt", "qt/", "qt//", "./qt", "qt/.", "/", "/srv/qt", "..", ".", "", "q",
            ]),
            parts in proptest::collection::vec(
                proptest::sample::select(vec!["a", "b.txt", ".", "..", "", "qt", "x/y", "c//"]),
                0..4,
            ),
            outside in proptest::bool::ANY,
        ) {
            let mut file = if outside { PathBuf::from("elsewhere") } else { PathBuf::from(given) };
            for part in &parts {
                file.push(part);
            }
            let (absolute, given) = (Path::new(absolute), Path::new(given));
            proptest::prop_assert_eq!(
                path_key(absolute, given, &file),
                path_key_by_components(absolute, given, &file)
            );
        }
    }

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
