//! Bytes in, same bytes out, at the sizes where layouts change.

use std::fs;

use archive_core::{
    Hash, NoProgress, ViewPoint, CHUNKING_THRESHOLD, CHUNK_MAX, CHUNK_MIN, DEFAULT_COLLECTION,
    INLINE_MAX,
};

use crate::common::{new_store, pseudo_random, read_all};

/// 0, 1, and both sides of every boundary: BLAKE3 chunk (1 KiB), chunk group and inline limit
/// (16 KiB), chunking threshold (1 MiB), chunk minimum and maximum.
fn boundary_sizes() -> Vec<usize> {
    let mut sizes = vec![0, 1];
    for b in [
        1024,
        INLINE_MAX as usize,
        CHUNK_MIN as usize,
        CHUNKING_THRESHOLD as usize,
        CHUNK_MAX as usize + CHUNKING_THRESHOLD as usize,
        3 * CHUNKING_THRESHOLD as usize,
    ] {
        sizes.extend([b - 1, b, b + 1]);
    }
    sizes.sort();
    sizes.dedup();
    sizes
}

#[test]
fn add_bytes_reads_back_identically_with_b3sum_hash() {
    let (_dir, store) = new_store();
    for (i, size) in boundary_sizes().into_iter().enumerate() {
        let data = pseudo_random(size, i as u64);
        let key = format!("f{size}");
        store
            .collection(DEFAULT_COLLECTION)
            .unwrap()
            .add_bytes(&key, &data)
            .unwrap();
        let file = crate::common::get(&store, DEFAULT_COLLECTION, &key)
            .unwrap()
            .unwrap();
        assert_eq!(file.size, size as u64);
        assert_eq!(
            file.hash,
            Hash::of(&data),
            "whole-content hash is plain BLAKE3 at {size}"
        );
        assert_eq!(file.manifest.is_some(), size as u64 > CHUNKING_THRESHOLD);
        assert!(
            read_all(&store, &file) == data,
            "content differs at size {size}"
        );
        assert_eq!(store.blobs().file(&file.hash).unwrap(), Some(file));
    }
    assert!(store.verify().unwrap().is_ok());
}

#[test]
fn export_after_add_gives_back_every_file_byte_for_byte() {
    let (dir, store) = new_store();
    let src = dir.path().join("src");
    fs::create_dir_all(src.join("nested/deeper")).unwrap();
    let mut expected = Vec::new();
    for (i, size) in boundary_sizes().into_iter().enumerate() {
        let rel = if i % 2 == 0 {
            format!("size-{size}.bin")
        } else {
            format!("nested/deeper/size-{size}.bin")
        };
        let data = pseudo_random(size, 100 + i as u64);
        fs::write(src.join(&rel), &data).unwrap();
        expected.push((rel, data));
    }
    let report = store
        .collection(DEFAULT_COLLECTION)
        .unwrap()
        .add_path(&src, Some(""), &mut NoProgress)
        .unwrap();
    assert_eq!(report.added, expected.len() as u64);
    assert!(report.failed.is_empty() && report.skipped.is_empty());
    let out = dir.path().join("out");
    let exported = store
        .collection(DEFAULT_COLLECTION)
        .unwrap()
        .export(ViewPoint::Current, &out, false)
        .unwrap();
    assert_eq!(exported.written, expected.len() as u64);
    for (rel, data) in &expected {
        assert!(fs::read(out.join(rel)).unwrap() == *data, "{rel} differs");
    }
    // A second export finds everything in place; adding again changes nothing.
    let again = store
        .collection(DEFAULT_COLLECTION)
        .unwrap()
        .export(ViewPoint::Current, &out, false)
        .unwrap();
    assert_eq!((again.written, again.unchanged), (0, expected.len() as u64));
    let readd = store
        .collection(DEFAULT_COLLECTION)
        .unwrap()
        .add_path(&src, Some(""), &mut NoProgress)
        .unwrap();
    assert_eq!(
        (readd.added, readd.unchanged, readd.bytes_new),
        (0, expected.len() as u64, 0)
    );
}

#[test]
fn ranges_of_a_file_blob_read_verified_at_chunk_group_edges() {
    let (_dir, store) = new_store();
    // One blob above the inline limit: a single-blob file just under the chunking threshold.
    let data = pseudo_random(CHUNKING_THRESHOLD as usize - 7, 9);
    store
        .collection(DEFAULT_COLLECTION)
        .unwrap()
        .add_bytes("blob", &data)
        .unwrap();
    let file = crate::common::get(&store, DEFAULT_COLLECTION, "blob")
        .unwrap()
        .unwrap();
    let g = 16 * 1024u64;
    let n = data.len() as u64;
    for (start, end) in [
        (0, 0),
        (0, 1),
        (g - 1, g + 1),
        (g, 2 * g),
        (5, n),
        (n - 1, n),
        (3 * g + 5, 9 * g - 3),
    ] {
        let got = store.blobs().read_range(&file.hash, start, end).unwrap();
        assert!(
            got == data[start as usize..end as usize],
            "range {start}..{end}"
        );
    }
    assert!(store.blobs().read_range(&file.hash, 0, n + 1).is_err());
}

#[test]
fn editing_one_mib_inside_a_hundred_mib_file_stores_at_most_three_mib() {
    let (dir, store) = new_store();
    let path = dir.path().join("big.bin");
    let mut data = pseudo_random(100 << 20, 42);
    fs::write(&path, &data).unwrap();
    let first = store
        .collection(DEFAULT_COLLECTION)
        .unwrap()
        .add_path(&path, None, &mut NoProgress)
        .unwrap();
    assert_eq!(first.bytes_new as usize, data.len() + manifest_len(&store));
    let middle = 50 << 20;
    data[middle..middle + (1 << 20)].copy_from_slice(&pseudo_random(1 << 20, 43));
    fs::write(&path, &data).unwrap();
    let second = store
        .collection(DEFAULT_COLLECTION)
        .unwrap()
        .add_path(&path, None, &mut NoProgress)
        .unwrap();
    assert_eq!(second.added, 1);
    assert!(
        second.bytes_new <= 3 << 20,
        "stored {} new bytes for a 1 MiB edit",
        second.bytes_new
    );
    assert!(second.bytes_new >= 1 << 20);
    let file = crate::common::get(&store, DEFAULT_COLLECTION, "big.bin")
        .unwrap()
        .unwrap();
    assert!(read_all(&store, &file) == data);
}

fn manifest_len(store: &archive_core::Store) -> usize {
    let file = crate::common::get(store, DEFAULT_COLLECTION, "big.bin")
        .unwrap()
        .unwrap();
    let manifest = file.manifest.unwrap();
    store.blobs().read_range(&manifest, 0, 0).unwrap();
    let size = store.blobs().file(&manifest).unwrap().unwrap().size;
    size as usize
}
