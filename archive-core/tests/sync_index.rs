//! The persisted sync index against a from-scratch recomputation, and sessions between stores.

use std::collections::BTreeSet;

use archive_core::sync::{
    Agreement, Bound, MemoryIndex, ReconcileConfig, Reconciler, SyncIndex, SyncKey, MIN_FRAME_LIMIT,
};
use archive_core::{Entry, EntryId, EntryValue, SecretKey, SignedEntry, Store, Timestamp};
use proptest::prelude::*;

fn entry(key: &SecretKey, collection: &str, n: u64, time: u64) -> SignedEntry {
    SignedEntry::sign(
        Entry {
            collection: collection.into(),
            key: format!("k{n}"),
            value: EntryValue::Tombstone,
            author: key.public(),
            time: Timestamp::from_raw(time),
            meta: archive_core::FileMeta::default(),
            message: archive_core::MessageFields::default(),
        },
        key,
    )
    .unwrap()
}

/// Ids ascending, without repeats: what a finished session's `have()` and `need()` return.
fn sorted(ids: impl IntoIterator<Item = SyncKey>) -> Vec<SyncKey> {
    ids.into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

fn sync_key(e: &SignedEntry) -> SyncKey {
    SyncKey {
        time: e.entry().time.raw(),
        id: e.id(),
    }
}

/// Compares every query of the store's index with the in-memory model.
fn assert_same(store: &Store, model: &mut MemoryIndex, collection: &str, probes: &[SyncKey]) {
    let mut index = store.collection(collection).unwrap().sync_index().unwrap();
    let n = model.len().unwrap();
    assert_eq!(index.len().unwrap(), n);
    assert_eq!(index.total().unwrap(), model.total().unwrap());
    assert_eq!(index.keys(0, n).unwrap(), model.keys(0, n).unwrap());
    for p in probes {
        for b in [Bound::Key(*p), Bound::Infinity] {
            assert_eq!(
                index.lower_bound(&b).unwrap(),
                model.lower_bound(&b).unwrap(),
                "{p:?}"
            );
        }
    }
    let step = (n / 37).max(1);
    for lo in (0..=n).step_by(step as usize) {
        for hi in (lo..=n).step_by((step * 3) as usize) {
            assert_eq!(
                index.accumulate(lo, hi).unwrap(),
                model.accumulate(lo, hi).unwrap(),
                "{lo}..{hi}"
            );
        }
        if lo < n {
            assert_eq!(index.key_at(lo).unwrap(), model.key_at(lo).unwrap());
        }
    }
    // Every position: prefix sums come from checkpoints inside blocks, so check each offset,
    // and every item (and the point just above it) as a bound.
    let items = model.keys(0, n).unwrap();
    for p in 0..=n {
        assert_eq!(
            index.accumulate(0, p).unwrap(),
            model.accumulate(0, p).unwrap(),
            "..{p}"
        );
        assert_eq!(
            index.accumulate(p, n).unwrap(),
            model.accumulate(p, n).unwrap(),
            "{p}.."
        );
    }
    for (p, k) in items.iter().enumerate() {
        assert_eq!(index.key_at(p as u64).unwrap(), *k);
        let mut above = *k;
        let mut bytes = *above.id.as_bytes();
        bytes[31] = bytes[31].wrapping_add(1);
        above.id = EntryId::from_bytes(bytes);
        for b in [Bound::Key(*k), Bound::Key(above)] {
            assert_eq!(
                index.lower_bound(&b).unwrap(),
                model.lower_bound(&b).unwrap()
            );
        }
    }
    for parts in [2, 16] {
        let cuts = index.split_points(0, n, parts).unwrap();
        assert!(cuts.windows(2).all(|w| w[0] < w[1]) && cuts.iter().all(|c| *c > 0 && *c < n));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn persisted_index_equals_a_recomputation_after_random_inserts_and_reopening(
        batches in proptest::collection::vec(
            proptest::collection::vec((0u64..400, any::<bool>()), 1..300), 1..6),
        seed in any::<u64>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let key = SecretKey::from_bytes([seed as u8; 32]);
        let mut model = MemoryIndex::default();
        let mut probes = Vec::new();
        let mut n = (seed % 1_000_000) * 1_000_000;
        {
            let store = Store::init(dir.path()).unwrap();
            for batch in &batches {
                let entries: Vec<SignedEntry> = batch
                    .iter()
                    .map(|(t, old)| {
                        n += 1;
                        // Mostly new times, some far in the past: inserts land everywhere.
                        let time = if *old { *t } else { 1_000_000 + n };
                        entry(&key, "c", n, time)
                    })
                    .collect();
                store.transfer().insert_entries(&entries).unwrap();
                model.insert_all(entries.iter().map(sync_key));
                probes.extend(entries.iter().take(5).map(sync_key));
                probes.push(SyncKey { time: n % 500, id: EntryId::from_bytes([0x80; 32]) });
                assert_same(&store, &mut model, "c", &probes);
            }
        }
        let store = Store::open(dir.path()).unwrap();
        assert_same(&store, &mut model, "c", &probes);
        prop_assert!(store.verify().unwrap().is_ok());
    }
}

#[test]
fn oversized_blocks_are_cut_and_stay_exact() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::init(dir.path()).unwrap();
    let key = SecretKey::from_bytes([1; 32]);
    // 3,000 entries none of which starts a block: one block would grow past the limit.
    let entries: Vec<SignedEntry> = (0..4_000u64)
        .map(|i| entry(&key, "c", i, 5_000 - i))
        .filter(|e| e.id().as_bytes()[0] != 0)
        .take(3_000)
        .collect();
    for chunk in entries.chunks(700) {
        store.transfer().insert_entries(chunk).unwrap();
    }
    let mut model = MemoryIndex::new(entries.iter().map(sync_key));
    let probes: Vec<SyncKey> = entries.iter().step_by(97).map(sync_key).collect();
    assert_same(&store, &mut model, "c", &probes);
}

fn run(
    a: &Store,
    b: &Store,
    collection: &str,
    agreement: Option<(Agreement, Agreement)>,
) -> (
    Reconciler<archive_core::StoreSyncIndex>,
    Reconciler<archive_core::StoreSyncIndex>,
) {
    run_with(a, b, collection, agreement, ReconcileConfig::default())
}

fn run_with(
    a: &Store,
    b: &Store,
    collection: &str,
    agreement: Option<(Agreement, Agreement)>,
    config: ReconcileConfig,
) -> (
    Reconciler<archive_core::StoreSyncIndex>,
    Reconciler<archive_core::StoreSyncIndex>,
) {
    let mut ra = Reconciler::new(
        a.collection(collection).unwrap().sync_index().unwrap(),
        config,
    )
    .unwrap();
    let mut rb = Reconciler::new(
        b.collection(collection).unwrap().sync_index().unwrap(),
        config,
    )
    .unwrap();
    let mut frame = ra.initiate(agreement.map(|x| x.0)).unwrap();
    let mut to_b = true;
    while let Some(next) = if to_b {
        rb.receive(&frame)
    } else {
        ra.receive(&frame)
    }
    .unwrap()
    {
        frame = next;
        to_b = !to_b;
    }
    (ra, rb)
}

#[test]
fn two_stores_reconcile_exactly_then_take_the_fast_path() {
    let da = tempfile::tempdir().unwrap();
    let db = tempfile::tempdir().unwrap();
    let a = Store::init(da.path()).unwrap();
    let b = Store::init(db.path()).unwrap();
    let key = SecretKey::from_bytes([2; 32]);
    let all: Vec<SignedEntry> = (0..6_000u64)
        .map(|i| entry(&key, "lib", i, 10_000 + i * 3))
        .collect();
    let (mut only_a, mut only_b) = (Vec::new(), Vec::new());
    let (mut in_a, mut in_b) = (Vec::new(), Vec::new());
    for (i, e) in all.iter().enumerate() {
        match i % 50 {
            0 => {
                in_a.push(e.clone());
                only_a.push(e.sync_key())
            }
            1 => {
                in_b.push(e.clone());
                only_b.push(e.sync_key())
            }
            _ => {
                in_a.push(e.clone());
                in_b.push(e.clone())
            }
        }
    }
    a.transfer().insert_entries(&in_a).unwrap();
    b.transfer().insert_entries(&in_b).unwrap();
    let (ra, rb) = run(&a, &b, "lib", None);
    let set = |v: &Vec<SyncKey>| sorted(v.iter().copied());
    assert_eq!(&ascending(ra.have()), &set(&only_a));
    assert_eq!(&ascending(ra.need()), &set(&only_b));
    assert_eq!(&ascending(rb.have()), &set(&only_b));
    assert_eq!(&ascending(rb.need()), &set(&only_a));

    // Move the entries both ways, as a sync would, and remember the agreement.
    let by_id = |keys: &[SyncKey]| -> Vec<SignedEntry> {
        all.iter()
            .filter(|e| keys.binary_search(&e.sync_key()).is_ok())
            .cloned()
            .collect()
    };
    b.transfer()
        .insert_entries(&by_id(&ascending(ra.have())))
        .unwrap();
    a.transfer()
        .insert_entries(&by_id(&ascending(ra.need())))
        .unwrap();
    let agreement = (
        Agreement {
            my_seq: a.transfer().sync_seq().unwrap(),
            their_seq: b.transfer().sync_seq().unwrap(),
        },
        Agreement {
            my_seq: b.transfer().sync_seq().unwrap(),
            their_seq: a.transfer().sync_seq().unwrap(),
        },
    );
    a.collection("lib")
        .unwrap()
        .record_agreement(&b.peer_id(), agreement.0)
        .unwrap();
    assert_eq!(
        a.collection("lib")
            .unwrap()
            .agreement(&b.peer_id())
            .unwrap(),
        Some(agreement.0)
    );

    // Nothing changed: one round trip, at most 64 bytes.
    let (ra, _) = run(&a, &b, "lib", Some(agreement));
    let s = ra.stats();
    assert_eq!(s.round_trips(), 1);
    assert!(s.bytes_sent + s.bytes_received <= 64, "{s:?}");
    assert!(ra.have().is_empty() && ra.need().is_empty());

    // Both add: still one round trip, still exact.
    let more: Vec<SignedEntry> = (6_000..6_010u64)
        .map(|i| entry(&key, "lib", i, 1_000 + i))
        .collect();
    a.transfer().insert_entries(&more[..6]).unwrap();
    b.transfer().insert_entries(&more[4..]).unwrap();
    let (ra, rb) = run(&a, &b, "lib", Some(agreement));
    assert_eq!(ra.stats().round_trips(), 1);
    let ids = |r: &[SignedEntry]| sorted(r.iter().map(|e| e.sync_key()));
    assert_eq!(&ascending(ra.have()), &ids(&more[..4]));
    assert_eq!(&ascending(ra.need()), &ids(&more[6..]));
    assert_eq!(&ascending(rb.have()), &ascending(ra.need()));
}

/// The in-memory property tests' shapes, run over two real stores' persisted indexes: each
/// side's result equals the exact set difference, with the default and the smallest frames.
#[test]
fn store_backed_sessions_are_exact_for_every_shape() {
    let key = SecretKey::from_bytes([3; 32]);
    let n = 4_000u64;
    let all: Vec<SignedEntry> = (0..n)
        .map(|i| {
            // Random times over a wide span, except the newest 300 which come last.
            let time = if i >= n - 300 {
                1 << 40 | i
            } else {
                (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 30) % (1 << 39)
            };
            entry(&key, "c", i, time)
        })
        .collect();
    type Split = fn(u64) -> (bool, bool);
    let shapes: [(&str, Split); 5] = [
        ("scattered", |i| (i % 37 != 3, i % 41 != 5)),
        ("identical", |_| (true, true)),
        ("disjoint", |i| (i % 2 == 0, i % 2 == 1)),
        ("a inside b", |i| (i % 13 != 0, true)),
        ("newest", |i| (true, i < 4_000 - 300)),
    ];
    for (name, split) in shapes {
        let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (a, b) = (
            Store::init(da.path()).unwrap(),
            Store::init(db.path()).unwrap(),
        );
        let (mut in_a, mut in_b) = (Vec::new(), Vec::new());
        for (i, e) in all.iter().enumerate() {
            let (to_a, to_b) = split(i as u64);
            if to_a {
                in_a.push(e.clone());
            }
            if to_b {
                in_b.push(e.clone());
            }
        }
        a.transfer().insert_entries(&in_a).unwrap();
        b.transfer().insert_entries(&in_b).unwrap();
        let ids =
            |v: &[SignedEntry]| -> BTreeSet<SyncKey> { v.iter().map(|e| e.sync_key()).collect() };
        let (set_a, set_b) = (ids(&in_a), ids(&in_b));
        let only_a = sorted(set_a.difference(&set_b).copied());
        let only_b = sorted(set_b.difference(&set_a).copied());
        for frame_limit in [ReconcileConfig::default().frame_limit, MIN_FRAME_LIMIT] {
            let config = ReconcileConfig {
                frame_limit,
                ..ReconcileConfig::default()
            };
            let (ra, rb) = run_with(&a, &b, "c", None, config);
            assert_eq!(
                &ascending(ra.have()),
                &only_a,
                "{name}, limit {frame_limit}: A's have"
            );
            assert_eq!(
                &ascending(ra.need()),
                &only_b,
                "{name}, limit {frame_limit}: A's need"
            );
            assert_eq!(
                &ascending(rb.have()),
                &only_b,
                "{name}, limit {frame_limit}: B's have"
            );
            assert_eq!(
                &ascending(rb.need()),
                &only_a,
                "{name}, limit {frame_limit}: B's need"
            );
        }
    }
}

/// A difference as a set, ascending (a session lists it in the order it learnt it).
fn ascending(ids: &[SyncKey]) -> Vec<SyncKey> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids
}
