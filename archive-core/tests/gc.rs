//! Garbage collection frees what nothing reaches and nothing else.

use std::sync::atomic::{AtomicBool, Ordering};

use archive_core::{ViewPoint, DEFAULT_COLLECTION};

use crate::common::{new_store, pseudo_random, read_all};

#[test]
fn gc_keeps_what_views_and_snapshots_reach() {
    let (_dir, store) = new_store();
    let keep = pseudo_random(2 << 20, 10);
    let in_snapshot = pseudo_random(2 << 20, 11);
    let doomed = pseudo_random(2 << 20, 12);
    store
        .collection(DEFAULT_COLLECTION)
        .unwrap()
        .add_bytes("keep", &keep)
        .unwrap();
    store
        .collection(DEFAULT_COLLECTION)
        .unwrap()
        .add_bytes("snap", &in_snapshot)
        .unwrap();
    store
        .collection(DEFAULT_COLLECTION)
        .unwrap()
        .snapshot("s")
        .unwrap();
    store
        .collection(DEFAULT_COLLECTION)
        .unwrap()
        .remove(&["snap"])
        .unwrap();
    store
        .collection(DEFAULT_COLLECTION)
        .unwrap()
        .add_bytes("doomed", &doomed)
        .unwrap();
    store
        .collection(DEFAULT_COLLECTION)
        .unwrap()
        .remove(&["doomed"])
        .unwrap();
    let before = store.stats().unwrap().stored_bytes;

    let report = store.gc().unwrap();
    assert!(report.bytes_freed >= 2 << 20, "{report:?}");
    assert_eq!(
        store.stats().unwrap().stored_bytes,
        before - report.bytes_freed
    );
    assert!(store.verify().unwrap().is_ok());
    let k = crate::common::get(&store, DEFAULT_COLLECTION, "keep")
        .unwrap()
        .unwrap();
    assert!(read_all(&store, &k) == keep);
    let s =
        crate::common::list(&store, DEFAULT_COLLECTION, ViewPoint::Snapshot("s"), "snap").unwrap();
    assert!(read_all(&store, &s[0].file) == in_snapshot);
    // Nothing left to collect.
    assert_eq!(store.gc().unwrap().blobs_removed, 0);
}

/// Bytes of all packs of the store.
fn pack_bytes(store: &archive_core::Store) -> u64 {
    std::fs::read_dir(store.dir().join("packs"))
        .unwrap()
        .map(|p| p.unwrap().metadata().unwrap().len())
        .sum()
}

#[test]
fn gc_gives_back_the_space_of_dead_bytes_in_packs() {
    let (_dir, store) = new_store();
    let docs = store.collection("docs").unwrap();
    // 40 files of 100 KB and 200 small ones, all in the one pack this process appends to.
    let big: Vec<Vec<u8>> = (0..40).map(|i| pseudo_random(100_000, 100 + i)).collect();
    let small: Vec<Vec<u8>> = (0..200)
        .map(|i| pseudo_random(300 + i as usize, 500 + i))
        .collect();
    for (i, data) in big.iter().enumerate() {
        docs.add_bytes(&format!("big/{i}"), data).unwrap();
    }
    for (i, data) in small.iter().enumerate() {
        docs.add_bytes(&format!("small/{i}"), data).unwrap();
    }
    let before = pack_bytes(&store);
    assert!(before >= 4_000_000, "{before}");
    // A gc with (almost) nothing dead leaves the packs as they are.
    let idle = store.gc().unwrap();
    assert_eq!((idle.packs_rewritten, idle.pack_bytes_freed), (0, 0));
    assert_eq!(pack_bytes(&store), before);

    // Three quarters removed: the pack is rewritten with the rest.
    let doomed: Vec<String> = (0..30)
        .map(|i| format!("big/{i}"))
        .chain((0..150).map(|i| format!("small/{i}")))
        .collect();
    docs.remove(&doomed).unwrap();
    let report = store.gc().unwrap();
    assert_eq!(report.packs_rewritten, 1, "{report:?}");
    assert!(report.pack_bytes_freed >= 3_000_000, "{report:?}");
    let after = pack_bytes(&store);
    assert!(
        after <= before - report.pack_bytes_freed,
        "{after} of {before}"
    );
    assert!(store.verify().unwrap().is_ok());
    for (i, data) in big.iter().enumerate().skip(30) {
        let f = docs.get(&format!("big/{i}")).unwrap().unwrap().file;
        assert!(read_all(&store, &f) == *data);
    }
    for (i, data) in small.iter().enumerate().skip(150) {
        let f = docs.get(&format!("small/{i}")).unwrap().unwrap().file;
        assert!(read_all(&store, &f) == *data);
    }
    // New writes after the rewrite land and read back; everything removed: nothing is left.
    docs.add_bytes("late", b"written after the repack").unwrap();
    let rest: Vec<String> = (30..40)
        .map(|i| format!("big/{i}"))
        .chain((150..200).map(|i| format!("small/{i}")))
        .chain(["late".to_owned()])
        .collect();
    docs.remove(&rest).unwrap();
    store.gc().unwrap();
    assert_eq!(pack_bytes(&store), 0);
    assert!(store.verify().unwrap().is_ok());
}

#[test]
fn gc_running_during_adds_never_removes_what_they_store() {
    let (dir, store) = new_store();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..20 {
        std::fs::write(
            src.join(format!("f{i}")),
            pseudo_random(300_000 + i * 1000, i as u64),
        )
        .unwrap();
    }
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                store.gc().unwrap();
            }
        });
        for round in 0..5 {
            store
                .collection(DEFAULT_COLLECTION)
                .unwrap()
                .add_path(
                    &src,
                    Some(&format!("r{round}")),
                    &mut archive_core::NoProgress,
                )
                .unwrap();
        }
        done.store(true, Ordering::Relaxed);
    });
    store.gc().unwrap();
    let report = store.verify().unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(
        crate::common::list(&store, DEFAULT_COLLECTION, ViewPoint::Current, "")
            .unwrap()
            .len(),
        100
    );
}

/// gc runs while a transfer is in progress (no peer can hold it off by keeping a sync going)
/// and keeps the blobs the transfer stored ahead of their entries; once the transfer lets go
/// of them, they are garbage like any other.
#[test]
fn gc_keeps_what_a_transfer_in_progress_imported() {
    let (_dir, store) = new_store();
    let data = pseudo_random(100_000, 21);
    let (hash, encoded) = {
        // A blob as a peer would send it: encoded by another store.
        let (_d, other) = new_store();
        other
            .collection("c")
            .unwrap()
            .add_bytes("x", &data)
            .unwrap();
        let h = archive_core::Hash::of(&data);
        (h, other.transfer().encode_blob(&h).unwrap().unwrap().1)
    };
    let blob = archive_core::transfer::decode_blob(hash, data.len() as u64, &encoded).unwrap();
    let transfer = store.transfer().begin();
    store
        .transfer()
        .import_blobs(vec![blob], &transfer, None)
        .unwrap();
    let report = store.gc().unwrap();
    assert_eq!(report.blobs_removed, 0, "{report:?}");
    assert!(store.blobs().contains(&hash).unwrap());
    transfer.release();
    let report = store.gc().unwrap();
    assert_eq!(report.blobs_removed, 1, "{report:?}");
    assert!(!store.blobs().contains(&hash).unwrap());
}
