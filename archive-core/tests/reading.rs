//! The reading API: files as verified streams, the versions of a key, keys at a snapshot.

use std::fs;
use std::io::{Read, Seek, SeekFrom};

use archive_core::{EntryValue, ReadError, ViewPoint};
use proptest::prelude::*;

use crate::common::{new_store, pseudo_random};

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// A reader gives the file's bytes, read straight through with any buffer size, and the
    /// bytes at any position after a seek: single blobs, one-blob files with outboards and
    /// chunked files alike.
    #[test]
    fn a_reader_gives_the_bytes_at_every_position(
        size in prop_oneof![0usize..20_000, 16_000usize..1_100_000, 1_000_000usize..3_500_000],
        seed in any::<u64>(),
        buf_len in 1usize..70_000,
        seeks in proptest::collection::vec((0.0f64..1.1, 0usize..300_000), 1..6),
    ) {
        let (_dir, store) = new_store();
        let data = pseudo_random(size, seed);
        let c = store.collection("c").unwrap();
        c.add_bytes("f", &data).unwrap();
        let file = c.get("f").unwrap().unwrap().file;

        let mut reader = store.blobs().reader(&file).unwrap();
        let mut got = Vec::new();
        let mut buf = vec![0u8; buf_len];
        loop {
            let n = reader.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        prop_assert!(got == data, "straight read of {} bytes", size);

        for (at, len) in seeks {
            let pos = ((size as f64) * at) as u64;
            prop_assert_eq!(reader.seek(SeekFrom::Start(pos)).unwrap(), pos);
            let mut out = vec![0u8; len];
            let mut filled = 0;
            while filled < len {
                let n = reader.read(&mut out[filled..]).unwrap();
                if n == 0 {
                    break;
                }
                filled += n;
            }
            let from = (pos as usize).min(size);
            let to = (from + len).min(size);
            prop_assert!(out[..filled] == data[from..to], "{} bytes at {}", len, pos);
        }
        prop_assert_eq!(reader.seek(SeekFrom::End(0)).unwrap(), size as u64);
        prop_assert!(reader.seek(SeekFrom::Current(-(size as i64) - 1)).is_err());
    }
}

/// A damaged chunk is an error from the stream (a `ReadError` inside the `io::Error`), never
/// bytes, and a damaged part of a file does not stop reads of the parts before it.
#[test]
fn a_reader_refuses_damaged_content() {
    let (_dir, store) = new_store();
    let data = pseudo_random(3 << 20, 9);
    let c = store.collection("c").unwrap();
    c.add_bytes("big", &data).unwrap();
    let file = c.get("big").unwrap().unwrap().file;
    let mut damaged = 0;
    for (_, pack, offset, size) in store.blob_places().unwrap() {
        let mut bytes = fs::read(&pack).unwrap();
        let end = (offset + size) as usize;
        // Damage only the chunk that holds the file's last byte.
        if size > 64 && data.ends_with(&bytes[end - 64..end]) {
            bytes[end - 10] ^= 1;
            fs::write(&pack, bytes).unwrap();
            damaged += 1;
        }
    }
    assert_eq!(damaged, 1);
    let mut all = Vec::new();
    let err = store
        .blobs()
        .reader(&file)
        .unwrap()
        .read_to_end(&mut all)
        .unwrap_err();
    let inner = err.get_ref().and_then(|e| e.downcast_ref::<ReadError>());
    assert!(matches!(inner, Some(ReadError::Corrupt { .. })), "{err:?}");
    assert!(data.starts_with(&all), "only verified bytes came out");
    // The start of the file still reads.
    let mut start = vec![0u8; 1000];
    store
        .blobs()
        .reader(&file)
        .unwrap()
        .read_exact(&mut start)
        .unwrap();
    assert_eq!(start, data[..1000]);
}

/// The versions of a key, in the order the store took them, whole or a page at a time; other
/// keys (a key under it, a key it is a prefix of) are not among them.
#[test]
fn history_lists_every_version_of_a_key() {
    let (_dir, store) = new_store();
    let c = store.collection("c").unwrap();
    let mut written = Vec::new();
    for i in 0..5 {
        written.push(
            c.add_bytes("a", format!("v{i}").as_bytes())
                .unwrap()
                .unwrap(),
        );
        c.add_bytes("ab", b"other").unwrap();
    }
    written.extend(c.remove(&["a"]).unwrap());
    c.add_bytes("a/b", b"under").unwrap();
    c.remove(&["a/b"]).unwrap();
    written.push(c.add_bytes("a", b"back").unwrap().unwrap());

    let history: Vec<_> = c.history("a").collect::<Result<_, _>>().unwrap();
    let ids: Vec<_> = history.iter().map(|v| v.entry).collect();
    let expected: Vec<_> = written.iter().map(|e| e.id()).collect();
    assert_eq!(ids, expected);
    assert!(history.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(history[5].value, EntryValue::Tombstone);
    assert!(history.iter().all(|v| v.author == store.author()));

    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = c.history_page("a", after, 2).unwrap();
        assert!(page.items.len() <= 2);
        paged.extend(page.items);
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(paged, history);
    assert!(c.history("nothing").next().is_none());
    assert!(c
        .history_page("a", Some(u64::MAX), 10)
        .unwrap()
        .items
        .is_empty());
}

/// A key at a snapshot: the version it had then, absent if it was removed or not yet written.
#[test]
fn get_at_a_snapshot() {
    let (_dir, store) = new_store();
    let c = store.collection("c").unwrap();
    c.add_bytes("kept", b"one").unwrap();
    c.add_bytes("gone", b"x").unwrap();
    c.snapshot("s1").unwrap();
    c.add_bytes("kept", b"two").unwrap();
    c.remove(&["gone"]).unwrap();
    c.add_bytes("new", b"y").unwrap();
    c.snapshot("s2").unwrap();

    let at = |key: &str, snap: &str| {
        c.get_at(key, ViewPoint::Snapshot(snap))
            .unwrap()
            .map(|i| i.file.hash)
    };
    let hash = |b: &[u8]| Some(archive_core::Hash::of(b));
    assert_eq!(at("kept", "s1"), hash(b"one"));
    assert_eq!(at("kept", "s2"), hash(b"two"));
    assert_eq!(at("gone", "s1"), hash(b"x"));
    assert_eq!(at("gone", "s2"), None);
    assert_eq!(at("new", "s1"), None);
    assert_eq!(at("new", "s2"), hash(b"y"));
    assert!(matches!(
        c.get_at("kept", ViewPoint::Snapshot("nope")),
        Err(archive_core::SnapshotError::NotFound { .. })
    ));
    let snaps: Vec<_> = c.snapshots().unwrap().into_iter().map(|s| s.name).collect();
    assert_eq!(snaps, ["s1", "s2"]);
    // Another collection's snapshots are not this one's.
    let d = store.collection("d").unwrap();
    d.add_bytes("k", b"z").unwrap();
    d.snapshot("s0").unwrap();
    assert_eq!(c.snapshots().unwrap().len(), 2);
    assert_eq!(store.snapshots().unwrap().len(), 3);
}
