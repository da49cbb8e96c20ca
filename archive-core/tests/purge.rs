//! Purging what a peer brought, against a model: a store that never had those entries. After
//! `purge_peer`, the store's view, its sync index (every query) and its counts equal those of
//! a fresh store given only the other entries; purged entries are refused from then on.

use archive_core::sync::{Bound, MemoryIndex, SyncIndex, SyncKey};
use archive_core::{
    Entry, EntryId, EntryValue, PeerId, Refusal, SecretKey, SignedEntry, Store, Timestamp,
    ViewPoint,
};
use proptest::prelude::*;

use crate::common::new_store;

fn entry(author: &SecretKey, key: &str, tombstone: bool, time: u64) -> SignedEntry {
    let value = if tombstone {
        EntryValue::Tombstone
    } else {
        EntryValue::File(archive_core::FileRef {
            hash: archive_core::Hash::of(key.as_bytes()),
            size: key.len() as u64,
            manifest: None,
        })
    };
    SignedEntry::sign(
        Entry {
            collection: "c".into(),
            key: key.into(),
            value,
            author: author.public(),
            time: Timestamp::from_raw(time),
            meta: archive_core::FileMeta::default(),
            message: archive_core::MessageFields::default(),
        },
        author,
    )
    .unwrap()
}

fn view(store: &Store) -> Vec<(String, EntryId)> {
    crate::common::list(store, "c", ViewPoint::Current, "")
        .unwrap()
        .into_iter()
        .map(|i| (i.key, i.entry))
        .collect()
}

fn sync_key(e: &SignedEntry) -> SyncKey {
    SyncKey {
        time: e.entry().time.raw(),
        id: e.id(),
    }
}

/// Every query of the store's index equals the model's.
fn assert_index_is(store: &Store, model: &mut MemoryIndex) {
    let mut index = store.collection("c").unwrap().sync_index().unwrap();
    let n = model.len().unwrap();
    assert_eq!(index.len().unwrap(), n);
    assert_eq!(index.total().unwrap(), model.total().unwrap());
    assert_eq!(index.keys(0, n).unwrap(), model.keys(0, n).unwrap());
    for lo in 0..=n.min(40) {
        assert_eq!(
            index.accumulate(lo, n).unwrap(),
            model.accumulate(lo, n).unwrap()
        );
    }
    for k in model.keys(0, n).unwrap().into_iter().step_by(7) {
        let b = Bound::Key(k);
        assert_eq!(
            index.lower_bound(&b).unwrap(),
            model.lower_bound(&b).unwrap()
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn purge_leaves_what_a_store_without_those_entries_would_have(
        // (which peer, key number, tombstone, time): peers 0 and 1 deliver; 0 is purged.
        ops in proptest::collection::vec((0u8..2, 0u8..12, any::<bool>(), 1u64..5_000), 1..400),
        batch in 1usize..64,
    ) {
        let (_a, store) = new_store();
        let (_b, model_store) = new_store();
        // The content the files name (each key's own bytes), so the latest versions can be
        // taken with their content complete.
        for k in 0..12 {
            let key = format!("k{k}");
            store.collection("scratch").unwrap().add_bytes(&key, key.as_bytes()).unwrap();
        }
        let peers = [SecretKey::from_bytes([1; 32]), SecretKey::from_bytes([2; 32])];
        let origins = [PeerId::from_bytes([0xa0; 32]), PeerId::from_bytes([0xa1; 32])];
        let mut kept = Vec::new();
        let mut purged = Vec::new();
        let entries: Vec<(usize, SignedEntry)> = ops
            .iter()
            .enumerate()
            .map(|(n, (p, k, tomb, t))| {
                let p = *p as usize;
                // A time per position, so ids never collide.
                (p, entry(&peers[p], &format!("k{k}"), *tomb, (t << 16) | n as u64))
            })
            .collect();
        for chunk in entries.chunks(batch) {
            for (p, origin) in origins.iter().enumerate() {
                let from: Vec<SignedEntry> =
                    chunk.iter().filter(|(q, _)| *q == p).map(|(_, e)| e.clone()).collect();
                let r = store.transfer().insert_received(&from, Some(origin)).unwrap();
                prop_assert!(r.refused.is_empty());
                if p == 0 { purged.extend(from) } else { kept.extend(from) }
            }
        }
        model_store.transfer().insert_entries(&kept).unwrap();
        let usage = store.peer_usage(&origins[0]).unwrap();
        prop_assert_eq!(usage.entries, purged.len() as u64);

        let report = store.purge_peer(&origins[0]).unwrap();
        prop_assert_eq!(report.entries_removed, purged.len() as u64);
        prop_assert_eq!(view(&store), view(&model_store));
        prop_assert_eq!(store.stats().unwrap().entries, kept.len() as u64 + 12);
        prop_assert_eq!(store.peer_usage(&origins[0]).unwrap().entries, 0);
        let mut model = MemoryIndex::new(kept.iter().map(sync_key));
        assert_index_is(&store, &mut model);
        // After a reopen (the persisted index, not the cached summaries), the same.
        let dir = store.dir().to_owned();
        drop(store);
        let store = Store::open(&dir).unwrap();
        assert_index_is(&store, &mut model);
        // What was purged is refused from now on, whoever brings it.
        if let Some(e) = purged.first() {
            let r = store
                .transfer().insert_received(std::slice::from_ref(e), Some(&origins[1]))
                .unwrap();
            prop_assert_eq!(r.new, 0);
            prop_assert_eq!(&r.refused[0].reason, &Refusal::Denied);
            prop_assert!(store.transfer().is_denied(&e.id()).unwrap());
        }
    }
}

/// Entries from peers can put a file and a folder at the same key (local writes cannot):
/// export keeps whichever came first and reports the other, and exports everything else.
#[test]
fn a_file_folder_conflict_from_peers_is_reported_by_export_not_fatal() {
    let peer = SecretKey::from_bytes([9; 32]);
    for file_first in [true, false] {
        let (dir, store) = new_store();
        let a = store
            .collection("c")
            .unwrap()
            .add_bytes("plain.txt", b"plain")
            .unwrap()
            .unwrap();
        let content = |k: &str| archive_core::FileRef {
            hash: archive_core::Hash::of(k.as_bytes()),
            size: k.len() as u64,
            manifest: None,
        };
        store
            .collection("scratch")
            .unwrap()
            .add_bytes("x", b"a")
            .unwrap();
        store
            .collection("scratch")
            .unwrap()
            .add_bytes("y", b"a/b")
            .unwrap();
        let now = a.entry().time.raw();
        let (t_file, t_under) = if file_first {
            (now + 1, now + 2)
        } else {
            (now + 2, now + 1)
        };
        let mk = |key: &str, t: u64| {
            SignedEntry::sign(
                Entry {
                    collection: "c".into(),
                    key: key.into(),
                    value: EntryValue::File(content(if key == "a" { "a" } else { "a/b" })),
                    author: peer.public(),
                    time: Timestamp::from_raw(t),
                    meta: archive_core::FileMeta::default(),
                    message: archive_core::MessageFields::default(),
                },
                &peer,
            )
            .unwrap()
        };
        let from = PeerId::from_bytes([0xa2; 32]);
        let received = store
            .transfer()
            .insert_received(&[mk("a", t_file), mk("a/b", t_under)], Some(&from))
            .unwrap();
        assert_eq!(received.new, 2);
        // Both keys of the conflict are reported when they arrive together.
        assert_eq!(received.conflicts.len(), 2, "{received:?}");
        let dest = dir.path().join("out");
        let report = store
            .collection("c")
            .unwrap()
            .export(ViewPoint::Current, &dest, false)
            .unwrap();
        assert_eq!(report.written, 2, "{report:?}");
        assert_eq!(report.skipped.len(), 1, "{report:?}");
        let (kept, lost) = if file_first {
            ("a", "a/b")
        } else {
            ("a/b", "a")
        };
        assert_eq!(report.skipped[0].key, lost, "{report:?}");
        assert!(report.skipped[0].reason.contains("conflict"), "{report:?}");
        assert_eq!(std::fs::read(dest.join(kept)).unwrap(), kept.as_bytes());
        assert_eq!(std::fs::read(dest.join("plain.txt")).unwrap(), b"plain");
    }
}
