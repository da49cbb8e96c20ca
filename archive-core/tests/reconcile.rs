//! The reconciliation engine against exact set differences, over in-memory indexes.

use std::collections::BTreeSet;

use archive_core::sync::{
    Accumulator, Agreement, Bound, MemoryIndex, Message, Mode, Range, ReconcileConfig, Reconciler,
    SyncIndex, SyncKey, SyncStats, MIN_FRAME_LIMIT,
};
use archive_core::{EntryId, StorageError, SyncError};
use proptest::prelude::*;

fn key(time: u64, n: u64) -> SyncKey {
    let mut id = *blake3::hash(&n.to_le_bytes()).as_bytes();
    // A few equal times with ids that share prefixes exercise prefix bounds.
    if n.is_multiple_of(7) {
        id[..3].copy_from_slice(&[1, 2, 3]);
    }
    SyncKey {
        time,
        id: EntryId::from_bytes(id),
    }
}

/// Runs a whole session between two indexes; returns both sides.
fn reconcile<I: SyncIndex>(
    a: I,
    b: I,
    config: ReconcileConfig,
    agreement: Option<(Agreement, Agreement)>,
) -> (Reconciler<I>, Reconciler<I>) {
    let mut ra = Reconciler::new(a, config).unwrap();
    let mut rb = Reconciler::new(b, config).unwrap();
    let mut frame = ra.initiate(agreement.map(|(x, _)| x)).unwrap();
    let mut to_b = true;
    loop {
        assert!(frame.len() <= config.frame_limit);
        let next = if to_b {
            rb.receive(&frame)
        } else {
            ra.receive(&frame)
        }
        .unwrap();
        match next {
            Some(f) => frame = f,
            None => break,
        }
        to_b = !to_b;
    }
    assert!(ra.is_done() && rb.is_done(), "both sides finish");
    (ra, rb)
}

/// The ids of `keys`, ascending: what a finished session's `have()` and `need()` return.
fn ids(keys: &BTreeSet<SyncKey>) -> Vec<SyncKey> {
    keys.iter().copied().collect()
}

fn check_exact(a: &BTreeSet<SyncKey>, b: &BTreeSet<SyncKey>, config: ReconcileConfig) -> SyncStats {
    let (ra, rb) = reconcile(
        MemoryIndex::new(a.iter().copied()),
        MemoryIndex::new(b.iter().copied()),
        config,
        None,
    );
    let a_only = ids(&a.difference(b).copied().collect());
    let b_only = ids(&b.difference(a).copied().collect());
    assert_eq!(&ascending(ra.have()), &a_only, "A's have");
    assert_eq!(&ascending(ra.need()), &b_only, "A's need");
    assert_eq!(&ascending(rb.have()), &b_only, "B's have");
    assert_eq!(&ascending(rb.need()), &a_only, "B's need");
    let s = ra.stats();
    assert_eq!(s.bytes_sent, rb.stats().bytes_received);
    s
}

fn small_frames() -> ReconcileConfig {
    ReconcileConfig {
        frame_limit: MIN_FRAME_LIMIT,
        ..ReconcileConfig::default()
    }
}

#[derive(Debug, Clone, Copy)]
enum Shape {
    Random,
    Identical,
    Disjoint,
    AInsideB,
    Newest,
}

fn sets(
    shape: Shape,
    n: u64,
    diff_permille: u64,
    spread: u64,
    seed: u64,
) -> (BTreeSet<SyncKey>, BTreeSet<SyncKey>) {
    let mut a = BTreeSet::new();
    let mut b = BTreeSet::new();
    let mut x = seed | 1;
    for i in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let time = match shape {
            Shape::Newest => i * 1000,
            _ => (x >> 8) % spread.max(1),
        };
        let k = key(time, seed.wrapping_mul(1_000_003) + i);
        let r = x % 1000;
        match shape {
            Shape::Identical => {
                a.insert(k);
                b.insert(k);
            }
            Shape::Disjoint => {
                if i % 2 == 0 {
                    a.insert(k)
                } else {
                    b.insert(k)
                };
            }
            Shape::AInsideB => {
                b.insert(k);
                if r >= diff_permille {
                    a.insert(k);
                }
            }
            Shape::Newest => {
                a.insert(k);
                if i < n - n * diff_permille / 1000 {
                    b.insert(k);
                }
            }
            Shape::Random => {
                if r < diff_permille / 2 {
                    a.insert(k);
                } else if r < diff_permille {
                    b.insert(k);
                } else {
                    a.insert(k);
                    b.insert(k);
                }
            }
        }
    }
    (a, b)
}

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        Just(Shape::Random),
        Just(Shape::Identical),
        Just(Shape::Disjoint),
        Just(Shape::AInsideB),
        Just(Shape::Newest),
    ]
}

/// Sizes around the id-list threshold (32), the fanout (16) and their product.
fn size() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..4, 30u64..35, 62u64..67, 510u64..515, 1000u64..3000,]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn both_sides_learn_the_exact_difference(
        shape in shape(),
        n in size(),
        diff in prop_oneof![Just(0u64), 1u64..20, 20u64..1000],
        spread in prop_oneof![Just(1u64), Just(50u64), Just(u64::MAX >> 9)],
        seed in any::<u64>(),
        limited in any::<bool>(),
    ) {
        let (a, b) = sets(shape, n, diff, spread, seed);
        let config = if limited { small_frames() } else { ReconcileConfig::default() };
        check_exact(&a, &b, config);
    }
}

#[test]
fn a_hundred_thousand_items_with_and_without_a_frame_limit() {
    for (shape, diff) in [
        (Shape::Random, 3),
        (Shape::Random, 100),
        (Shape::Newest, 10),
        (Shape::Identical, 0),
    ] {
        let (a, b) = sets(shape, 100_000, diff, 1 << 40, 77);
        let free = check_exact(&a, &b, ReconcileConfig::default());
        let tight = check_exact(&a, &b, small_frames());
        assert!(tight.round_trips() >= free.round_trips());
    }
}

#[test]
fn identical_sets_settle_in_one_round_trip() {
    let (a, b) = sets(Shape::Identical, 10_000, 0, 1 << 40, 5);
    let s = check_exact(&a, &b, ReconcileConfig::default());
    assert_eq!(s.round_trips(), 1);
    assert!(s.bytes_sent + s.bytes_received <= 336, "{s:?}");
}

#[test]
fn fast_path_settles_additions_on_either_or_both_sides_in_one_round_trip() {
    let (base, _) = sets(Shape::Identical, 5_000, 0, 1 << 40, 9);
    let a_new: Vec<SyncKey> = (0..40).map(|i| key(1 << 45, 10_000_000 + i)).collect();
    let b_new: Vec<SyncKey> = (0..25).map(|i| key(3, 20_000_000 + i)).collect();
    let shared_new = key(99, 30_000_000);
    for (add_a, add_b) in [(false, false), (true, false), (false, true), (true, true)] {
        let mut a = MemoryIndex::new(base.iter().copied());
        let mut b = MemoryIndex::new(base.iter().copied());
        let agreement = (
            Agreement {
                my_seq: a.seq(),
                their_seq: b.seq(),
            },
            Agreement {
                my_seq: b.seq(),
                their_seq: a.seq(),
            },
        );
        if add_a {
            a.insert_all(a_new.iter().copied().chain([shared_new]));
        }
        if add_b {
            b.insert_all(b_new.iter().copied().chain([shared_new]));
        }
        let a_set: BTreeSet<SyncKey> = a.items().iter().copied().collect();
        let b_set: BTreeSet<SyncKey> = b.items().iter().copied().collect();
        let (ra, rb) = reconcile(a, b, ReconcileConfig::default(), Some(agreement));
        assert_eq!(ra.stats().round_trips(), 1, "a:{add_a} b:{add_b}");
        assert_eq!(
            &ascending(ra.have()),
            &ids(&a_set.difference(&b_set).copied().collect())
        );
        assert_eq!(
            &ascending(ra.need()),
            &ids(&b_set.difference(&a_set).copied().collect())
        );
        assert_eq!(&ascending(rb.have()), &ascending(ra.need()));
        assert_eq!(&ascending(rb.need()), &ascending(ra.have()));
        if !add_a && !add_b {
            let s = ra.stats();
            assert!(s.bytes_sent + s.bytes_received <= 64, "{s:?}");
        }
    }
}

#[test]
fn a_wrong_agreement_falls_back_and_stays_exact() {
    let (a, b) = sets(Shape::Random, 3_000, 50, 1 << 40, 11);
    let bogus = Agreement {
        my_seq: 100,
        their_seq: 200,
    };
    let (ra, rb) = reconcile(
        MemoryIndex::new(a.iter().copied()),
        MemoryIndex::new(b.iter().copied()),
        ReconcileConfig::default(),
        Some((bogus, bogus)),
    );
    assert_eq!(
        &ascending(ra.have()),
        &ids(&a.difference(&b).copied().collect())
    );
    assert_eq!(
        &ascending(rb.have()),
        &ids(&b.difference(&a).copied().collect())
    );
}

#[test]
fn garbage_and_hostile_peers_end_the_session_with_an_error() {
    let (a, _) = sets(Shape::Identical, 2_000, 0, 1 << 40, 13);
    let index = MemoryIndex::new(a.iter().copied());
    for garbage in [
        &b""[..],
        b"\x01",
        b"\x02\x00",
        b"\x01\x00\x00",
        b"\x01\x07\xff\xff\xff\xff\xff",
    ] {
        let mut r = Reconciler::new(index.clone(), ReconcileConfig::default()).unwrap();
        assert!(r.receive(garbage).is_err(), "{garbage:?} accepted");
    }
    // A peer that always claims a different fingerprint for everything never ends the
    // session; the round limit does.
    let config = ReconcileConfig {
        max_rounds: 50,
        ..ReconcileConfig::default()
    };
    let mut r = Reconciler::new(index.clone(), config).unwrap();
    let liar = Message::Ranges(vec![Range {
        upper: Bound::Infinity,
        mode: Mode::Fingerprint(archive_core::sync::Fingerprint([0xee; 16])),
    }])
    .encode();
    let err = loop {
        match r.receive(&liar) {
            Ok(_) => continue,
            Err(e) => break e,
        }
    };
    assert!(
        matches!(err, SyncError::TooManyRounds { limit: 50 }),
        "{err}"
    );
    // A Diff must answer our own IdList: one claiming to cover everything is refused (before
    // the session reads the items it covers).
    let mut r = Reconciler::new(index.clone(), ReconcileConfig::default()).unwrap();
    let fake_diff = Message::Ranges(vec![Range {
        upper: Bound::Infinity,
        mode: Mode::Diff {
            lacked: vec![true; 3],
            only_here: vec![],
        },
    }])
    .encode();
    assert!(matches!(r.receive(&fake_diff), Err(SyncError::Protocol(_))));
    // A frame over the limit is refused before it is decoded.
    let mut r = Reconciler::new(index, small_frames()).unwrap();
    let big = Message::Ranges(vec![Range {
        upper: Bound::Infinity,
        mode: Mode::IdList(
            (0..200)
                .map(|i| SyncKey {
                    time: i,
                    id: EntryId::from_bytes([1; 32]),
                })
                .collect(),
        ),
    }])
    .encode();
    assert!(matches!(r.receive(&big), Err(SyncError::Wire(_))));
}

/// Found by the `sync_session` fuzzer: a fast-path request listed every new id even when they
/// did not fit in the frame limit (130 ids in a 4 KiB frame).
#[test]
fn regression_fast_path_respects_the_frame_limit() {
    let (base, _) = sets(Shape::Identical, 300, 0, 1 << 40, 21);
    for (a_new, b_new) in [(200u64, 0u64), (0, 200), (150, 150)] {
        let mut a = MemoryIndex::new(base.iter().copied());
        let mut b = MemoryIndex::new(base.iter().copied());
        let agreement = (
            Agreement {
                my_seq: a.seq(),
                their_seq: b.seq(),
            },
            Agreement {
                my_seq: b.seq(),
                their_seq: a.seq(),
            },
        );
        a.insert_all((0..a_new).map(|i| key(1 << 50, 40_000_000 + i)));
        b.insert_all((0..b_new).map(|i| key(1 << 51, 50_000_000 + i)));
        let a_set: BTreeSet<SyncKey> = a.items().iter().copied().collect();
        let b_set: BTreeSet<SyncKey> = b.items().iter().copied().collect();
        // `reconcile` asserts that every frame stays within the limit.
        let (ra, rb) = reconcile(a, b, small_frames(), Some(agreement));
        assert_eq!(
            &ascending(ra.have()),
            &ids(&a_set.difference(&b_set).copied().collect())
        );
        assert_eq!(
            &ascending(rb.have()),
            &ids(&b_set.difference(&a_set).copied().collect())
        );
    }
}

#[test]
fn an_empty_id_list_against_a_large_range_splits_instead_of_listing_everything() {
    // B has nothing; A has 50,000 items: B's first message is an empty IdList for everything.
    let (a, _) = sets(Shape::Identical, 50_000, 0, 1 << 40, 31);
    let b = BTreeSet::new();
    let s = check_exact(&b, &a, small_frames());
    assert!(s.round_trips() > 1);
    check_exact(&a, &b, ReconcileConfig::default());
}

/// An in-memory index that, like the store's, prefers to cut ranges at block starts: here each
/// item whose last id byte is below the given value (blocks of ~256 / value items).
struct BlockStarts(MemoryIndex, u8);

impl SyncIndex for BlockStarts {
    fn len(&mut self) -> Result<u64, StorageError> {
        self.0.len()
    }
    fn lower_bound(&mut self, bound: &Bound) -> Result<u64, StorageError> {
        self.0.lower_bound(bound)
    }
    fn key_at(&mut self, pos: u64) -> Result<SyncKey, StorageError> {
        self.0.key_at(pos)
    }
    fn accumulate(&mut self, lo: u64, hi: u64) -> Result<Accumulator, StorageError> {
        self.0.accumulate(lo, hi)
    }
    fn keys(&mut self, lo: u64, hi: u64) -> Result<Vec<SyncKey>, StorageError> {
        self.0.keys(lo, hi)
    }
    fn split_points(&mut self, lo: u64, hi: u64, parts: u64) -> Result<Vec<u64>, StorageError> {
        let starts: Vec<u64> = (lo + 1..hi)
            .filter(|p| self.0.items()[*p as usize].id.as_bytes()[31] < self.1)
            .collect();
        if (starts.len() as u64) < parts / 2 {
            return self.0.split_points(lo, hi, parts);
        }
        let mut out: Vec<u64> = (1..parts)
            .map(|k| {
                let target = lo + (hi - lo) * k / parts;
                *starts
                    .iter()
                    .min_by_key(|s| s.abs_diff(target))
                    .expect("not empty")
            })
            .collect();
        out.dedup();
        Ok(out)
    }
    fn contains(&mut self, key: &SyncKey) -> Result<bool, StorageError> {
        self.0.contains(key)
    }
    fn added_since(
        &mut self,
        seq: u64,
        limit: usize,
    ) -> Result<Option<Vec<SyncKey>>, StorageError> {
        self.0.added_since(seq, limit)
    }
}

/// Regression: the final split (parts meant to be listed as ids next round) went through the
/// index's `split_points`, which prefers block starts; where a range held many block starts,
/// parts of a whole block came out larger than the id-list threshold and cost one more frame
/// (at N = 10^6 with the store's blocks: a 4th round trip).
#[test]
fn regression_the_final_split_is_even_whatever_the_index_prefers() {
    let n = 50_000u64;
    let all: Vec<SyncKey> = (0..n).map(|i| key(i * 1_000 + i % 997, i)).collect();
    // 50 items only in A, 50 only in B, spread over the whole set.
    let slot = |i: usize| (i as u64 * 7_919) % n;
    let a: Vec<SyncKey> = (0..all.len())
        .filter(|i| slot(*i) >= 50)
        .map(|i| all[i])
        .collect();
    let b: Vec<SyncKey> = (0..all.len())
        .filter(|i| slot(*i) < 50 || slot(*i) >= 100)
        .map(|i| all[i])
        .collect();
    let config = ReconcileConfig::default();
    let (plain, _) = reconcile(
        MemoryIndex::new(a.iter().copied()),
        MemoryIndex::new(b.iter().copied()),
        config,
        None,
    );
    // Blocks of ~16 items: a final range of ~250 items holds ~16 block starts.
    let blocks = |items: &[SyncKey]| BlockStarts(MemoryIndex::new(items.iter().copied()), 16);
    let (ra, rb) = reconcile(blocks(&a), blocks(&b), config, None);
    assert_eq!(&ascending(ra.have()), &ascending(plain.have()));
    assert_eq!(&ascending(ra.need()), &ascending(plain.need()));
    assert_eq!(&ascending(rb.have()), &ascending(plain.need()));
    assert_eq!((ra.have().len(), ra.need().len()), (50, 50));
    let frames = |s: SyncStats| s.frames_sent + s.frames_received;
    assert_eq!(frames(ra.stats()), frames(plain.stats()), "no extra frame");
    assert_eq!(frames(plain.stats()), 5);
}

/// A difference as a set, ascending (a session lists it in the order it learnt it).
fn ascending(keys: &[SyncKey]) -> Vec<SyncKey> {
    let mut keys = keys.to_vec();
    keys.sort_unstable();
    keys
}

/// A side that lacks a whole run of entries learns their ids in time order, a range at a time
/// (not sorted by id): a puller fetching the list in pieces of 1,024 then fetches entries
/// written together together, and gets their batch certificates with them.
#[test]
fn a_missing_run_is_learnt_in_time_order() {
    let config = ReconcileConfig::default();
    for (n, shared) in [(3_000u64, 0u64), (20_000, 5_000)] {
        let all: BTreeSet<SyncKey> = (0..n).map(|i| key(1_000 + i, i)).collect();
        let b: BTreeSet<SyncKey> = all.iter().take(shared as usize).copied().collect();
        let (_, rb) = reconcile(
            MemoryIndex::new(all.iter().copied()),
            MemoryIndex::new(b.iter().copied()),
            config,
            None,
        );
        let times: Vec<u64> = rb.need().iter().map(|k| k.time).collect();
        assert_eq!(times.len() as u64, n - shared);
        // Places where the list goes back in time: one at most per range learnt in a later
        // round, never one per id as an order by id would give (about half of them).
        let back = times.windows(2).filter(|w| w[1] < w[0]).count();
        assert!(back <= 64, "{n}: {back} steps back in {} ids", times.len());
        // Sorted by id, the same list would step back about every other id.
        let mut by_id = rb.need().to_vec();
        by_id.sort_unstable_by_key(|k| k.id);
        let back_by_id = by_id.windows(2).filter(|w| w[1].time < w[0].time).count();
        assert!(back_by_id > times.len() / 4);
    }
}
