//! What an archive of a folder gives back besides bytes: modification times, permission bits
//! and empty folders, through `add`, `export` and `save`.

use std::fs::{self, File, FileTimes};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use archive_core::{
    Entry, EntryValue, FileMeta, MessageFields, NoProgress, SecretKey, SignedEntry, Timestamp,
    ViewPoint,
};

use crate::common::new_store;

fn at(secs: u64, nanos: u32) -> SystemTime {
    UNIX_EPOCH + Duration::new(secs, nanos)
}

fn set_mtime(path: &Path, when: SystemTime) {
    File::open(path)
        .unwrap()
        .set_times(FileTimes::new().set_modified(when))
        .unwrap();
}

fn write(path: &Path, bytes: &[u8], mode: u32, when: SystemTime) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    set_mtime(path, when);
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

fn mtime(path: &Path) -> SystemTime {
    fs::symlink_metadata(path).unwrap().modified().unwrap()
}

/// A tree with an executable, a private file, old times (one before 1970) and empty folders
/// (one nested in folders that hold nothing else).
fn sample_tree(root: &Path) {
    write(
        &root.join("bin/run.sh"),
        b"#!/bin/sh\necho hi\n",
        0o755,
        at(978_307_200, 123_456_789),
    );
    write(
        &root.join("notes.txt"),
        b"private",
        0o600,
        at(631_152_000, 0),
    );
    write(
        &root.join("old/1969.txt"),
        b"before the epoch",
        0o644,
        UNIX_EPOCH - Duration::new(86_400, 500),
    );
    for empty in ["empty", "deep/x/y"] {
        fs::create_dir_all(root.join(empty)).unwrap();
    }
    set_mtime(&root.join("empty"), at(1_104_537_600, 42));
    set_mtime(&root.join("deep/x/y"), at(1_200_000_000, 0));
}

/// Asserts `b` holds what `a` does: the same files, bytes, modes and modification times,
/// and the same empty folders with their times.
fn assert_same_tree(a: &Path, b: &Path) {
    for rel in ["bin/run.sh", "notes.txt", "old/1969.txt"] {
        let (x, y) = (a.join(rel), b.join(rel));
        assert_eq!(fs::read(&x).unwrap(), fs::read(&y).unwrap(), "{rel}");
        assert_eq!(mode(&x), mode(&y), "mode of {rel}");
        assert_eq!(mtime(&x), mtime(&y), "modification time of {rel}");
    }
    for rel in ["empty", "deep/x/y"] {
        let y = b.join(rel);
        assert!(y.is_dir(), "{rel} is not a folder in the export");
        assert_eq!(fs::read_dir(&y).unwrap().count(), 0, "{rel} is not empty");
        assert_eq!(mtime(&a.join(rel)), mtime(&y), "modification time of {rel}");
    }
}

#[test]
fn export_gives_back_times_modes_and_empty_folders() {
    let (dir, store) = new_store();
    let src = dir.path().join("src");
    sample_tree(&src);
    let docs = store.collection("docs").unwrap();
    let report = docs.add_path(&src, Some(""), &mut NoProgress).unwrap();
    assert_eq!((report.added, report.folders_added), (3, 2));
    let script = docs.get("bin/run.sh").unwrap().unwrap();
    assert_eq!(
        script.meta,
        FileMeta {
            modified_ns: Some(978_307_200_123_456_789),
            mode: Some(0o755)
        }
    );

    let out = dir.path().join("out");
    let exported = docs.export(ViewPoint::Current, &out, false).unwrap();
    assert_eq!((exported.written, exported.folders), (3, 2));
    assert!(exported.skipped.is_empty(), "{:?}", exported.skipped);
    assert_same_tree(&src, &out);

    // Exporting again over the same tree leaves it as it is.
    let again = docs.export(ViewPoint::Current, &out, false).unwrap();
    assert_eq!((again.written, again.unchanged), (0, 3));
    assert_same_tree(&src, &out);

    // One file saved alone gets its time and mode too.
    let saved = dir.path().join("run-copy.sh");
    store
        .blobs()
        .save(&script.file, &script.meta, &saved)
        .unwrap();
    assert_eq!(mode(&saved), 0o755);
    assert_eq!(mtime(&saved), at(978_307_200, 123_456_789));
}

#[test]
fn a_new_time_or_mode_is_a_new_version_and_nothing_else_is() {
    let (dir, store) = new_store();
    let src = dir.path().join("src");
    sample_tree(&src);
    let docs = store.collection("docs").unwrap();
    docs.add_path(&src, Some(""), &mut NoProgress).unwrap();
    let unchanged = docs.add_path(&src, Some(""), &mut NoProgress).unwrap();
    assert_eq!(
        (
            unchanged.added,
            unchanged.folders_added,
            unchanged.unchanged
        ),
        (0, 0, 3)
    );

    set_mtime(&src.join("notes.txt"), at(700_000_000, 7));
    fs::set_permissions(src.join("old/1969.txt"), fs::Permissions::from_mode(0o755)).unwrap();
    set_mtime(&src.join("empty"), at(1_300_000_000, 0));
    let touched = docs.add_path(&src, Some(""), &mut NoProgress).unwrap();
    assert_eq!((touched.added, touched.folders_added), (2, 1));
    assert_eq!(
        docs.get("notes.txt").unwrap().unwrap().meta.modified_ns,
        Some(700_000_000_000_000_007)
    );
    let out = dir.path().join("out");
    docs.export(ViewPoint::Current, &out, false).unwrap();
    assert_same_tree(&src, &out);
}

/// Modes a peer (or a damaged entry) could send that would lock the owner out: the owner keeps
/// reading the files and entering the folders an export wrote, so a second export still works;
/// other modes come back as they were.
#[test]
fn restored_modes_never_lock_the_owner_out() {
    let (dir, store) = new_store();
    let docs = store.collection("docs").unwrap();
    let content = docs
        .add_bytes("plain.txt", b"no one may read")
        .unwrap()
        .unwrap();
    let EntryValue::File(file) = content.entry().value else {
        panic!("a file")
    };
    let peer = SecretKey::from_bytes([9; 32]);
    let from_peer = |key: &str, value: EntryValue, mode: u32| {
        let entry = Entry {
            collection: "docs".into(),
            key: key.into(),
            value,
            author: peer.public(),
            time: Timestamp::from_unix_millis(1_800_000_000_000),
            meta: FileMeta {
                modified_ns: Some(1_000),
                mode: Some(mode),
            },
            message: MessageFields::default(),
        };
        let signed = SignedEntry::sign(entry, &peer).unwrap();
        assert!(store.transfer().insert_entry(signed.encoded()).unwrap());
    };
    from_peer("locked.txt", EntryValue::File(file), 0o000);
    from_peer("read-only.txt", EntryValue::File(file), 0o444);
    from_peer("shut", EntryValue::Folder, 0o000);
    let out = dir.path().join("out");
    let first = docs.export(ViewPoint::Current, &out, false).unwrap();
    assert!(first.skipped.is_empty(), "{:?}", first.skipped);
    assert_eq!(mode(&out.join("locked.txt")), 0o400);
    assert_eq!(mode(&out.join("read-only.txt")), 0o444);
    assert_eq!(mode(&out.join("shut")), 0o500);
    let again = docs.export(ViewPoint::Current, &out, false).unwrap();
    assert_eq!((again.written, again.unchanged), (0, 3));
    assert!(again.skipped.is_empty(), "{:?}", again.skipped);
}

#[test]
fn a_file_beneath_or_above_an_empty_folder_supersedes_it() {
    let (dir, store) = new_store();
    let src = dir.path().join("src");
    fs::create_dir_all(src.join("photos/2026")).unwrap();
    let docs = store.collection("docs").unwrap();
    docs.add_path(&src, Some(""), &mut NoProgress).unwrap();
    let versions: Vec<_> = docs
        .history("photos/2026")
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(versions.len(), 1);
    assert_eq!(versions[0].value, EntryValue::Folder);
    // A folder is not a file: `get` has nothing there.
    assert!(docs.get("photos/2026").unwrap().is_none());

    // A file beneath the empty folder: no conflict, both kept, the file exported.
    docs.add_bytes("photos/2026/a.jpg", b"jpeg").unwrap();
    // A file where a folder entry's parent is: the file wins the export.
    fs::create_dir_all(src.join("music/live")).unwrap();
    docs.add_path(&src.join("music"), Some("music"), &mut NoProgress)
        .unwrap();
    docs.add_bytes("music", b"a file now").unwrap();

    let out = dir.path().join("out");
    let report = docs.export(ViewPoint::Current, &out, false).unwrap();
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    assert_eq!(fs::read(out.join("photos/2026/a.jpg")).unwrap(), b"jpeg");
    assert_eq!(fs::read(out.join("music")).unwrap(), b"a file now");
    assert_eq!(report.written, 2);
    // Both folder entries are superseded: nothing is made of them.
    assert_eq!(report.folders, 0);
}
