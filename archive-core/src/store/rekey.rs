//! Moving entries from `entries-v1` (keyed by id) to `entries-v2` (keyed by time, then id), and
//! the rows of `entry-origins-v1` (which name entries by id) to `entry-origins-v2` (which name
//! them by key), when a store that has the old tables is opened.
//!
//! The rows move in transactions of [`BATCH`]: each one inserts a batch into the new table and
//! removes it from the old one, so a store killed anywhere holds every entry in exactly one of
//! the two, and the next open goes on where this one stopped. The old table is deleted in the
//! transaction that empties it. Origins move first, while every entry can still be found by its
//! id.

#[cfg(test)]
use redb::ReadableTableMetadata;
use redb::{Database, ReadableDatabase, ReadableTable, TableHandle};

use crate::entry::SignedEntry;
use crate::error::StorageError;
use crate::fault::{self, Point, WriteStep};
use crate::format::layout::{ENTRIES, ENTRIES_V1, ORIGINS, ORIGINS_V1};
use crate::sync::SyncKey;

/// Rows moved per transaction.
const BATCH: usize = 16 * 1024;

/// Moves whatever is left in the old tables; does nothing on a store without them.
pub(super) fn move_entries_to_time_keys(db: &Database) -> Result<(), StorageError> {
    if has_table(db, ORIGINS_V1.name())? {
        while !move_origins_batch(db, BATCH)? {}
    }
    if has_table(db, ENTRIES_V1.name())? {
        while !move_entries_batch(db, BATCH)? {}
    }
    Ok(())
}

fn has_table(db: &Database, name: &str) -> Result<bool, StorageError> {
    let tx = db.begin_read()?;
    let found = tx.list_tables()?.any(|t| t.name() == name);
    Ok(found)
}

/// The key an `entries-v1` row moves to. An entry too damaged to decode keeps its id, at time
/// 0, rather than being dropped (or keeping the store from opening).
fn key_of(id: [u8; 32], bytes: &[u8]) -> SyncKey {
    let time = SignedEntry::decode_unverified(bytes).map_or(0, |e| e.entry().time.raw());
    SyncKey {
        time,
        id: crate::EntryId::from_bytes(id),
    }
}

/// Moves `batch` origin rows; true when the old table is gone.
fn move_origins_batch(db: &Database, batch: usize) -> Result<bool, StorageError> {
    let tx = db.begin_write()?;
    let done = {
        let entries = tx.open_table(ENTRIES_V1)?;
        let mut old = tx.open_table(ORIGINS_V1)?;
        let mut new = tx.open_table(ORIGINS)?;
        let mut rows = Vec::with_capacity(batch);
        for row in old.iter()?.take(batch) {
            let (k, v) = row?;
            rows.push((k.value(), v.value()));
        }
        for (origin, id) in &rows {
            // A row whose entry is gone (purged) names nothing: it is not carried over.
            if let Some(bytes) = entries.get(id)? {
                new.insert(origin, key_of(*id, bytes.value()).to_bytes())?;
            }
            old.remove(origin)?;
        }
        rows.len() < batch
    };
    if done {
        tx.delete_table(ORIGINS_V1)?;
    }
    commit(tx)?;
    Ok(done)
}

/// Moves `batch` entries; true when the old table is gone.
fn move_entries_batch(db: &Database, batch: usize) -> Result<bool, StorageError> {
    let tx = db.begin_write()?;
    let done = {
        let mut old = tx.open_table(ENTRIES_V1)?;
        let mut new = tx.open_table(ENTRIES)?;
        let mut ids = Vec::with_capacity(batch);
        for row in old.iter()?.take(batch) {
            let (k, v) = row?;
            let id = k.value();
            new.insert(key_of(id, v.value()).to_bytes(), v.value())?;
            ids.push(id);
        }
        for id in &ids {
            old.remove(id)?;
        }
        ids.len() < batch
    };
    if done {
        tx.delete_table(ENTRIES_V1)?;
    }
    commit(tx)?;
    Ok(done)
}

fn commit(tx: redb::WriteTransaction) -> Result<(), StorageError> {
    fault::point(Point::Write(WriteStep::Commit));
    tx.commit()?;
    fault::point(Point::Write(WriteStep::Committed));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::layout::DB_FILE;
    use crate::{Entry, EntryValue, PeerId, SecretKey, Store, Timestamp, ViewPoint};

    /// Entries of `peer` (tombstones: nothing to fetch), and of the store's own.
    fn store_with_received(dir: &std::path::Path, peer: &SecretKey) -> Vec<SignedEntry> {
        let store = Store::init(dir).unwrap();
        for i in 0..5 {
            store
                .add_bytes("own", &format!("f{i}"), b"mine", &Default::default())
                .unwrap();
        }
        let received: Vec<SignedEntry> = (0..40u64)
            .map(|i| {
                SignedEntry::sign(
                    Entry {
                        collection: "theirs".into(),
                        key: format!("k{}", (i * 7) % 40),
                        value: EntryValue::Tombstone,
                        author: peer.public(),
                        time: Timestamp::from_unix_millis(crate::EARLIEST_PLAUSIBLE_MILLIS + i),
                        meta: Default::default(),
                        message: Default::default(),
                    },
                    peer,
                )
                .unwrap()
            })
            .collect();
        let from = PeerId::from_bytes(*peer.public().as_bytes());
        let r = store
            .transfer()
            .insert_received(&received, Some(&from))
            .unwrap();
        assert_eq!(r.new, 40);
        received
    }

    /// Puts the entries and origins back into the tables of the layout before `entries-v2`.
    fn back_to_v1_tables(db: &Database) {
        let tx = db.begin_write().unwrap();
        {
            let new = tx.open_table(ENTRIES).unwrap();
            let mut old = tx.open_table(ENTRIES_V1).unwrap();
            for row in new.iter().unwrap() {
                let (k, v) = row.unwrap();
                let key = SyncKey::from_bytes(&k.value());
                old.insert(key.id.as_bytes(), v.value()).unwrap();
            }
            let new = tx.open_table(ORIGINS).unwrap();
            let mut old = tx.open_table(ORIGINS_V1).unwrap();
            for row in new.iter().unwrap() {
                let (k, v) = row.unwrap();
                let key = SyncKey::from_bytes(&v.value());
                old.insert(k.value(), key.id.as_bytes()).unwrap();
            }
        }
        tx.delete_table(ENTRIES).unwrap();
        tx.delete_table(ORIGINS).unwrap();
        tx.commit().unwrap();
    }

    /// Everything reads back after the move, and the peer's entries are still found by its
    /// origin rows.
    fn assert_moved(dir: &std::path::Path, peer: &SecretKey, received: &[SignedEntry]) {
        let store = Store::open(dir).unwrap();
        let own: Vec<_> = store
            .collection("own")
            .unwrap()
            .list(ViewPoint::Current, "")
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(own.len(), 5);
        for item in &own {
            assert!(store.entry(&item.entry_key()).unwrap().is_some());
        }
        for e in received {
            assert_eq!(store.entry(&e.sync_key()).unwrap().as_ref(), Some(e));
        }
        let report = store.verify().unwrap();
        assert_eq!(report.entries_checked, 45);
        assert!(report.bad_entries.is_empty(), "{:?}", report.bad_entries);
        let purged = store
            .purge_peer(&PeerId::from_bytes(*peer.public().as_bytes()))
            .unwrap();
        assert_eq!(purged.entries_removed, 40);
        for e in received {
            assert!(store.entry(&e.sync_key()).unwrap().is_none());
        }
    }

    #[test]
    fn old_tables_move_on_open_even_after_a_move_cut_short() {
        let peer = SecretKey::from_bytes([9; 32]);
        // Cut after one batch of origins; after all origins and two batches of entries.
        for (origin_batches, entry_batches) in [(0, 0), (1, 0), (6, 2)] {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("store");
            let received = store_with_received(&dir, &peer);
            {
                let db = Database::open(dir.join(DB_FILE)).unwrap();
                back_to_v1_tables(&db);
                assert!(has_table(&db, ENTRIES_V1.name()).unwrap());
                for _ in 0..origin_batches {
                    move_origins_batch(&db, 7).unwrap();
                }
                for _ in 0..entry_batches {
                    assert!(!move_entries_batch(&db, 7).unwrap());
                }
            }
            assert_moved(&dir, &peer, &received);
            let db = Database::open(dir.join(DB_FILE)).unwrap();
            assert!(!has_table(&db, ENTRIES_V1.name()).unwrap());
            assert!(!has_table(&db, ORIGINS_V1.name()).unwrap());
        }
    }

    #[test]
    fn an_undecodable_entry_is_kept_at_time_zero() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("store");
        let received = store_with_received(&dir, &SecretKey::from_bytes([9; 32]));
        let damaged = received[3].id();
        {
            let db = Database::open(dir.join(DB_FILE)).unwrap();
            back_to_v1_tables(&db);
            let tx = db.begin_write().unwrap();
            tx.open_table(ENTRIES_V1)
                .unwrap()
                .insert(damaged.as_bytes(), [0xff; 7].as_slice())
                .unwrap();
            tx.commit().unwrap();
        }
        let store = Store::open(&dir).unwrap();
        assert_eq!(
            store.entry(&received[4].sync_key()).unwrap().as_ref(),
            Some(&received[4])
        );
        drop(store);
        let db = Database::open(dir.join(DB_FILE)).unwrap();
        let tx = db.begin_read().unwrap();
        let entries = tx.open_table(ENTRIES).unwrap();
        assert_eq!(entries.len().unwrap(), 45);
        let at_zero = SyncKey {
            time: 0,
            id: damaged,
        };
        let kept = entries.get(at_zero.to_bytes()).unwrap().unwrap();
        assert_eq!(kept.value(), [0xff; 7].as_slice());
    }
}
