//! Entries: signing, verification, and the latest-wins rule with entries from elsewhere.

use archive_core::{
    Entry, EntryError, EntryValue, FileRef, Hash, SecretKey, SignedEntry, Store, Timestamp,
    ViewPoint,
};

use crate::common::new_store;

fn entry_by(key: &SecretKey, k: &str, time: u64, content: &[u8]) -> SignedEntry {
    SignedEntry::sign(
        Entry {
            collection: "shared".into(),
            key: k.into(),
            value: EntryValue::File(FileRef {
                hash: Hash::of(content),
                size: content.len() as u64,
                manifest: None,
            }),
            author: key.public(),
            time: Timestamp::from_raw(time),
            meta: archive_core::FileMeta::default(),
            message: archive_core::MessageFields::default(),
        },
        key,
    )
    .unwrap()
}

#[test]
fn signed_entries_are_deterministic_and_pinned() {
    let key = SecretKey::from_bytes([3; 32]);
    let e = entry_by(&key, "docs/a.txt", 1 << 16, b"x");
    let again = entry_by(&key, "docs/a.txt", 1 << 16, b"x");
    assert_eq!(e.encoded(), again.encoded());
    let decoded = SignedEntry::decode(e.encoded()).unwrap();
    assert_eq!(decoded, e);
    assert_eq!(
        decoded.id().as_bytes(),
        Hash::of(&e.encoded()[..e.encoded().len() - 64]).as_bytes()
    );
    // Golden: the id of this exact entry (entry v2). A change means the encoding changed.
    assert_eq!(
        e.id().to_hex(),
        "3c42edf21d25d21f0ccceaab456f2d9e431e8c98f9392cfed5a2487b45594c03"
    );
    // ...and of its signed encoding (Ed25519 signatures are deterministic).
    assert_eq!(
        Hash::of(e.encoded()).to_hex(),
        "d32819097ee65d4009dff23ad1e4c522271d0ada9b1517a1deaf70e741358ed7"
    );
}

#[test]
fn tampered_or_forged_entries_are_refused() {
    let (_dir, store) = new_store();
    let key = SecretKey::from_bytes([4; 32]);
    let e = entry_by(&key, "k", 5 << 16, b"x");
    for i in 0..e.encoded().len() {
        let mut bad = e.encoded().to_vec();
        bad[i] ^= 0x01;
        let result = store.transfer().insert_entry(&bad);
        assert!(result.is_err(), "flipping byte {i} was accepted");
    }
    // Signed by one key but claiming another author.
    let other = SecretKey::from_bytes([5; 32]);
    let mut forged = entry_by(&other, "k", 5 << 16, b"x").encoded().to_vec();
    let body_len = forged.len() - 64;
    forged[body_len..].copy_from_slice(&e.encoded()[e.encoded().len() - 64..]);
    assert!(matches!(
        store.transfer().insert_entry(&forged),
        Err(EntryError::BadSignature { .. })
    ));
    assert!(store.transfer().insert_entry(&[]).is_err());
    assert!(store.transfer().insert_entry(&vec![0u8; 20_000]).is_err());
    assert!(
        crate::common::list(&store, "shared", ViewPoint::Current, "")
            .unwrap()
            .is_empty()
    );
    assert!(store.verify().unwrap().is_ok());
}

#[test]
fn latest_entry_wins_whatever_the_arrival_order_and_tombstones_stay() {
    let a = SecretKey::from_bytes([6; 32]);
    let b = SecretKey::from_bytes([7; 32]);
    let old = entry_by(&a, "k", 10 << 16, b"old");
    let new = entry_by(&b, "k", 20 << 16, b"new");
    let tomb = SignedEntry::sign(
        Entry {
            collection: "shared".into(),
            key: "gone".into(),
            value: EntryValue::Tombstone,
            author: a.public(),
            time: Timestamp::from_raw(30 << 16),
            meta: archive_core::FileMeta::default(),
            message: archive_core::MessageFields::default(),
        },
        &a,
    )
    .unwrap();
    let put_gone = entry_by(&b, "gone", 25 << 16, b"was here");
    let orders: [[&SignedEntry; 4]; 2] = [
        [&old, &new, &put_gone, &tomb],
        [&tomb, &new, &put_gone, &old],
    ];
    let mut views = Vec::new();
    for order in orders {
        let (_dir, store) = new_store();
        for e in order {
            assert!(store.transfer().insert_entry(e.encoded()).unwrap());
            assert!(
                !store.transfer().insert_entry(e.encoded()).unwrap(),
                "second insert is a no-op"
            );
        }
        let view: Vec<(String, Hash)> =
            crate::common::list(&store, "shared", ViewPoint::Current, "")
                .unwrap()
                .into_iter()
                .map(|i| (i.key, i.file.hash))
                .collect();
        assert_eq!(view, vec![("k".to_owned(), Hash::of(b"new"))]);
        // An entry written locally afterwards is later than everything seen.
        let local = store
            .collection("shared")
            .unwrap()
            .add_bytes("k", b"local")
            .unwrap()
            .unwrap();
        assert!(local.entry().time > Timestamp::from_raw(30 << 16));
        views.push(view);
    }
    assert_eq!(views[0], views[1]);
}

#[test]
fn an_entry_for_another_author_cannot_be_signed() {
    let key = SecretKey::from_bytes([8; 32]);
    let other = SecretKey::from_bytes([9; 32]);
    let mut e = entry_by(&key, "k", 1, b"x").entry().clone();
    e.author = other.public();
    assert!(matches!(
        SignedEntry::sign(e, &key),
        Err(EntryError::WrongAuthor { .. })
    ));
}

#[test]
fn removing_a_missing_key_writes_nothing() {
    let (_dir, store) = new_store();
    store
        .collection("c")
        .unwrap()
        .add_bytes("present", b"x")
        .unwrap();
    let err = store
        .collection("c")
        .unwrap()
        .remove(&["present", "absent"])
        .unwrap_err();
    assert_eq!(err.to_string(), "`absent` is not in collection `c`");
    assert!(crate::common::get(&store, "c", "present")
        .unwrap()
        .is_some());
    let _: &Store = &store;
}

/// Milliseconds of 1970-01-01T00:00:00.005Z: a Pi without a real-time clock, just booted.
fn in_1970() -> u64 {
    5
}

/// 2026-11-30, as a correct clock says.
const NOW_2026_MS: u64 = 1_795_996_800_000;
/// 2023-06-01.
const IN_2023_MS: u64 = 1_685_577_600_000;
const YEAR_3000_MS: u64 = 32_503_680_000_000;

fn at_ms(key: &SecretKey, k: &str, ms: u64) -> SignedEntry {
    entry_by(key, k, Timestamp::from_unix_millis(ms).raw(), k.as_bytes())
}

/// The time rule (issue 11, point 2): an empty server whose clock says 1970 takes a 2026
/// peer's entries; so does one offline for three years (it saw 2023 last, its clock says 1970).
#[test]
fn servers_with_wrong_clocks_accept_a_correct_peer() {
    let peer = SecretKey::from_bytes([5; 32]);
    let (_a, empty) = new_store();
    empty.set_wall_clock(in_1970);
    assert_eq!(
        empty
            .transfer()
            .insert_entries(&[at_ms(&peer, "now", NOW_2026_MS)])
            .unwrap(),
        1
    );

    let (_b, offline) = new_store();
    offline.set_wall_clock(in_1970);
    offline
        .transfer()
        .insert_entries(&[at_ms(&peer, "then", IN_2023_MS)])
        .unwrap();
    assert_eq!(
        offline
            .transfer()
            .insert_entries(&[at_ms(&peer, "now", NOW_2026_MS)])
            .unwrap(),
        1
    );
    // Its own writes come after everything it accepted, whatever its clock says.
    let own = offline
        .collection("shared")
        .unwrap()
        .add_bytes("mine", b"x")
        .unwrap()
        .unwrap();
    assert!(own.entry().time > Timestamp::from_unix_millis(NOW_2026_MS));

    // The reverse: a server whose clock runs years ahead takes a 2026 peer's entries.
    let (_c, ahead) = new_store();
    fn in_2030() -> u64 {
        NOW_2026_MS + 4 * 365 * 86_400_000
    }
    ahead.set_wall_clock(in_2030);
    assert_eq!(
        ahead
            .transfer()
            .insert_entries(&[at_ms(&peer, "now", NOW_2026_MS)])
            .unwrap(),
        1
    );
}

/// The time rule: u64::MAX and the year 3000 are refused, and the store is left as it was.
#[test]
fn the_far_future_is_refused() {
    let peer = SecretKey::from_bytes([6; 32]);
    let (_d, store) = new_store();
    // A clock that stands still: the limit moves with the wall clock, and the test compares
    // it before and after.
    store.set_wall_clock(|| NOW_2026_MS);
    let before = store.time_limit();
    for e in [
        entry_by(&peer, "max", u64::MAX, b"x"),
        at_ms(&peer, "y3000", YEAR_3000_MS),
    ] {
        match store
            .transfer()
            .insert_entries(&[at_ms(&peer, "fine", NOW_2026_MS), e.clone()])
        {
            Err(EntryError::TooFarAhead { id, .. }) => assert_eq!(id, e.id()),
            other => panic!("{other:?}"),
        }
    }
    // All or nothing: the fine entry of those batches is not in either.
    assert!(
        crate::common::list(&store, "shared", ViewPoint::Current, "")
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.time_limit(), before);
}

/// The time rule's headroom: 10,000 pushes at the latest time the store accepts (each
/// dragging its clock forward as far as the rule lets it) leave at least 2^40 ticks, and the
/// store's own writes win over each of them.
#[test]
fn ten_thousand_pushes_at_the_limit_leave_headroom_and_latest_wins() {
    let peer = SecretKey::from_bytes([7; 32]);
    let (_d, store) = new_store();
    let mut last = None;
    for n in 0..10_000u64 {
        let limit = store.time_limit();
        let e = entry_by(&peer, "k", limit.raw(), &n.to_le_bytes());
        assert_eq!(store.transfer().insert_entries(&[e]).unwrap(), 1);
        if n % 1000 == 0 || n == 9_999 {
            let mine = format!("own write {n}");
            let own = store
                .collection("shared")
                .unwrap()
                .add_bytes("k", mine.as_bytes())
                .unwrap()
                .unwrap();
            assert!(own.entry().time > limit);
            assert_eq!(
                crate::common::get(&store, "shared", "k")
                    .unwrap()
                    .unwrap()
                    .hash,
                Hash::of(mine.as_bytes())
            );
            last = Some(own.entry().time);
        }
    }
    let headroom = u64::MAX - last.unwrap().raw();
    assert!(headroom >= 1 << 40, "headroom {headroom}");
    assert!(store.time_limit().unix_millis() <= archive_core::MAX_ENTRY_MILLIS);
}

/// Refusing the newest version of a key (its content can never match) never lets an older
/// version whose content is not here become what the view shows: it is refused too, for now,
/// and the view, gc and export stay sound.
#[test]
fn refusing_the_newest_version_never_shows_an_older_one_without_content() {
    let peer = SecretKey::from_bytes([8; 32]);
    let (dir, store) = new_store();
    let missing = FileRef {
        hash: Hash::of(b"never sent"),
        size: 10,
        manifest: None,
    };
    // Newer, and impossible: one blob of 4 GB.
    let impossible = FileRef {
        hash: Hash::of(b"anything"),
        size: 4 << 30,
        manifest: None,
    };
    let mk = |file: FileRef, ms: u64| {
        SignedEntry::sign(
            Entry {
                collection: "shared".into(),
                key: "doc".into(),
                value: EntryValue::File(file),
                author: peer.public(),
                time: Timestamp::from_unix_millis(ms),
                meta: archive_core::FileMeta::default(),
                message: archive_core::MessageFields::default(),
            },
            &peer,
        )
        .unwrap()
    };
    let older = mk(missing, NOW_2026_MS);
    let newer = mk(impossible, NOW_2026_MS + 1);
    let got = store
        .transfer()
        .insert_received(&[older.clone(), newer.clone()], None)
        .unwrap();
    assert_eq!(got.new, 0, "{got:?}");
    let reasons: Vec<String> = got.refused.iter().map(|r| r.reason.to_string()).collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons.iter().any(|r| r.contains("in one blob")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("not complete here")),
        "{reasons:?}"
    );
    assert!(store.transfer().is_denied(&newer.id()).unwrap());
    assert!(!store.transfer().is_denied(&older.id()).unwrap());
    assert!(
        crate::common::list(&store, "shared", ViewPoint::Current, "")
            .unwrap()
            .is_empty()
    );
    store.gc().unwrap();
    let report = store
        .collection("shared")
        .unwrap()
        .export(ViewPoint::Current, &dir.path().join("out"), false)
        .unwrap();
    assert!(report.skipped.is_empty());
}
