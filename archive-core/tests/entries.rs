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
        decoded.id(),
        Hash::of(&e.encoded()[..e.encoded().len() - 64])
    );
    // Golden: the id of this exact entry. A change means the encoding changed.
    assert_eq!(
        e.id().to_hex(),
        "245b73013186112ffc8fac0ff0a44cfdd3363d109be850f2f95d2380dd42685a"
    );
    // ...and of its signed encoding (Ed25519 signatures are deterministic).
    assert_eq!(
        Hash::of(e.encoded()).to_hex(),
        "c38bbf39409a4295c56638b72603912213e8133e0ba1ee61c585602955bf2e91"
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
        let result = store.insert_entry(&bad);
        assert!(result.is_err(), "flipping byte {i} was accepted");
    }
    // Signed by one key but claiming another author.
    let other = SecretKey::from_bytes([5; 32]);
    let mut forged = entry_by(&other, "k", 5 << 16, b"x").encoded().to_vec();
    let body_len = forged.len() - 64;
    forged[body_len..].copy_from_slice(&e.encoded()[e.encoded().len() - 64..]);
    assert!(matches!(
        store.insert_entry(&forged),
        Err(EntryError::BadSignature { .. })
    ));
    assert!(store.insert_entry(&[]).is_err());
    assert!(store.insert_entry(&vec![0u8; 20_000]).is_err());
    assert!(store
        .list("shared", ViewPoint::Current, "")
        .unwrap()
        .is_empty());
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
            assert!(store.insert_entry(e.encoded()).unwrap());
            assert!(
                !store.insert_entry(e.encoded()).unwrap(),
                "second insert is a no-op"
            );
        }
        let view: Vec<(String, Hash)> = store
            .list("shared", ViewPoint::Current, "")
            .unwrap()
            .into_iter()
            .map(|i| (i.key, i.file.hash))
            .collect();
        assert_eq!(view, vec![("k".to_owned(), Hash::of(b"new"))]);
        // An entry written locally afterwards is later than everything seen.
        let local = store.add_bytes("shared", "k", b"local").unwrap().unwrap();
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
    store.add_bytes("c", "present", b"x").unwrap();
    let err = store
        .remove("c", &["present".into(), "absent".into()])
        .unwrap_err();
    assert_eq!(err.to_string(), "`absent` is not in collection `c`");
    assert!(store.get("c", "present").unwrap().is_some());
    let _: &Store = &store;
}
