//! Damaged bytes are found by verify and never returned by reads.

use std::fs;
use std::path::PathBuf;

use archive_core::{ReadError, Store, DEFAULT_COLLECTION};

use crate::common::{new_store, pseudo_random};

/// Where each blob larger than `min` is: (pack, offset, length), in blob order.
fn places(store: &Store, min: u64) -> Vec<(PathBuf, u64, u64)> {
    store
        .blob_places()
        .unwrap()
        .into_iter()
        .filter(|(_, _, _, size)| *size > min)
        .map(|(_, path, offset, size)| (path, offset, size))
        .collect()
}

/// Flips one byte at `at` within the blob at `place` (inside its pack).
fn flip_byte((path, offset, size): &(PathBuf, u64, u64), at: u64) {
    assert!(at < *size);
    let mut bytes = fs::read(path).unwrap();
    bytes[(offset + at) as usize] ^= 0x40;
    fs::write(path, bytes).unwrap();
}

#[test]
fn a_flipped_byte_is_named_by_verify_and_refused_by_reads() {
    let (_dir, store) = new_store();
    store
        .collection(DEFAULT_COLLECTION)
        .unwrap()
        .add_bytes("small.txt", b"fine")
        .unwrap();
    let data = pseudo_random(3 << 20, 1);
    store
        .collection(DEFAULT_COLLECTION)
        .unwrap()
        .add_bytes("big.bin", &data)
        .unwrap();
    store
        .collection(DEFAULT_COLLECTION)
        .unwrap()
        .snapshot("before")
        .unwrap();
    assert!(store.verify().unwrap().is_ok());

    let chunks = places(&store, 64 * 1024);
    assert!(chunks.len() > 2, "a 3 MiB file is several chunks");
    assert!(
        chunks
            .iter()
            .all(|(p, ..)| p.extension().unwrap() == "pack"),
        "{chunks:?}"
    );
    // A byte inside a pack, in the middle of one chunk.
    flip_byte(&chunks[1], 1000);

    let report = store.verify().unwrap();
    assert!(!report.is_ok());
    assert_eq!(report.bad_blobs.len(), 1);
    let damaged: Vec<(&str, Option<&str>)> = report
        .damaged_keys
        .iter()
        .map(|d| (d.key.as_str(), d.snapshot.as_deref()))
        .collect();
    assert_eq!(
        damaged,
        vec![("big.bin", None), ("big.bin", Some("before"))]
    );

    let file = crate::common::get(&store, DEFAULT_COLLECTION, "big.bin")
        .unwrap()
        .unwrap();
    let mut out = Vec::new();
    let err = store.blobs().write_to(&file, &mut out).unwrap_err();
    assert!(matches!(err, ReadError::Corrupt { .. }), "{err}");
    assert!(data.starts_with(&out), "only verified bytes were written");
    assert!(out.len() < data.len());
    // The intact file still reads.
    let small = crate::common::get(&store, DEFAULT_COLLECTION, "small.txt")
        .unwrap()
        .unwrap();
    let mut out = Vec::new();
    store.blobs().write_to(&small, &mut out).unwrap();
    assert_eq!(out, b"fine");
}

#[test]
fn a_missing_pack_is_reported_and_re_adding_repairs_it() {
    let (_dir, store) = new_store();
    let data = pseudo_random(2 << 20, 2);
    store
        .collection(DEFAULT_COLLECTION)
        .unwrap()
        .add_bytes("big.bin", &data)
        .unwrap();
    let chunks = places(&store, 0);
    fs::remove_file(&chunks[0].0).unwrap();
    let report = store.verify().unwrap();
    assert_eq!(report.damaged_keys.len(), 1);
    assert!(
        report.bad_blobs[0].problem.contains("missing"),
        "{:?}",
        report.bad_blobs
    );
    // Adding the same content again rewrites the lost blob.
    store
        .collection(DEFAULT_COLLECTION)
        .unwrap()
        .add_bytes("big.bin", &data)
        .unwrap();
    assert!(store.verify().unwrap().is_ok());
}

#[test]
fn a_damaged_range_is_refused_but_other_ranges_still_verify() {
    let (_dir, store) = new_store();
    let data = pseudo_random(900 * 1024, 3);
    store
        .collection(DEFAULT_COLLECTION)
        .unwrap()
        .add_bytes("one-blob", &data)
        .unwrap();
    let file = crate::common::get(&store, DEFAULT_COLLECTION, "one-blob")
        .unwrap()
        .unwrap();
    let blob = places(&store, 0);
    assert_eq!(blob.len(), 1);
    flip_byte(&blob[0], 100 * 1024);
    assert!(store
        .blobs()
        .read_range(&file.hash, 96 * 1024, 112 * 1024)
        .is_err());
    let fine = store.blobs().read_range(&file.hash, 0, 64 * 1024).unwrap();
    assert!(fine == data[..64 * 1024]);
}
