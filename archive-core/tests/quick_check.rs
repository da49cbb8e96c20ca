//! The quick check of `add`: a file whose `stat` (device, inode, size, mtime, ctime) is as it
//! was when it was last read is not read again, and nothing else is skipped.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use archive_core::{AddReport, NoProgress, Store, ViewPoint};
use proptest::prelude::*;

use crate::common::{get, list, new_store, pseudo_random, read_all};

/// A minute ahead: every file on disk looks settled (changed well before the add), as it
/// would a few seconds after it was written.
fn a_minute_ahead() -> u64 {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap();
    (now + Duration::from_secs(60)).as_millis() as u64
}

fn add(store: &Store, collection: &str, dir: &Path) -> AddReport {
    let report = store
        .collection(collection)
        .unwrap()
        .add_path(dir, Some(""), &mut NoProgress)
        .unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    report
}

fn tree(dir: &Path, files: usize) {
    for i in 0..files {
        let path = dir.join(format!("d{}/f{i}.bin", i % 3));
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        // Small (inline), single-blob and chunked files.
        let len = [100, 40_000, 1_500_000][i % 3];
        fs::write(path, pseudo_random(len, i as u64)).unwrap();
    }
}

/// Every file under `dir` against what the collection holds at its key.
fn assert_view_is(store: &Store, collection: &str, dir: &Path) {
    let mut on_disk = BTreeMap::new();
    for entry in walk(dir) {
        let key = entry
            .strip_prefix(dir)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        on_disk.insert(key, fs::read(&entry).unwrap());
    }
    let view = list(store, collection, ViewPoint::Current, "").unwrap();
    let keys: Vec<&String> = view.iter().map(|i| &i.key).collect();
    assert_eq!(keys, on_disk.keys().collect::<Vec<_>>());
    for item in view {
        assert!(
            read_all(store, &item.file) == on_disk[&item.key],
            "{}",
            item.key
        );
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Flips byte `at` of the file and puts its old modification time back, as `touch -d`
/// would: only the change time (which no user call sets) tells. Returns the new content.
fn flip_keeping_size_and_mtime(path: &Path, at: usize) -> Vec<u8> {
    let old_mtime = fs::metadata(path).unwrap().modified().unwrap();
    let mut bytes = fs::read(path).unwrap();
    bytes[at] ^= 0xff;
    fs::write(path, &bytes).unwrap();
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(old_mtime)
        .unwrap();
    bytes
}

#[test]
fn re_adding_an_unchanged_tree_reads_no_file() {
    let (tmp, store) = new_store();
    store.set_wall_clock(a_minute_ahead);
    let src = tmp.path().join("src");
    tree(&src, 30);
    let first = add(&store, "c", &src);
    assert_eq!((first.added, first.files_read), (30, 30));
    let again = add(&store, "c", &src);
    assert_eq!(
        (
            again.added,
            again.unchanged,
            again.files_read,
            again.bytes_read
        ),
        (0, 30, 0, 0)
    );
    assert_view_is(&store, "c", &src);
}

#[test]
fn a_rewritten_file_is_read_even_with_the_same_size_and_its_old_mtime_put_back() {
    let (tmp, store) = new_store();
    store.set_wall_clock(a_minute_ahead);
    let src = tmp.path().join("src");
    tree(&src, 9);
    add(&store, "c", &src);
    let changed = flip_keeping_size_and_mtime(&src.join("d1/f4.bin"), 10);
    let again = add(&store, "c", &src);
    assert_eq!((again.added, again.files_read), (1, 1));
    let held = get(&store, "c", "d1/f4.bin").unwrap().unwrap();
    assert!(read_all(&store, &held) == changed);
}

#[test]
fn files_that_changed_just_now_are_read_every_time() {
    // The store's clock is the real one: the files were written within the last two
    // seconds, so a second change in the same timestamp tick could hide. Nothing is recorded.
    let (tmp, store) = new_store();
    let src = tmp.path().join("src");
    tree(&src, 6);
    add(&store, "c", &src);
    let again = add(&store, "c", &src);
    assert_eq!((again.unchanged, again.files_read), (6, 6));
}

#[test]
fn the_quick_check_never_skips_a_key_that_does_not_hold_the_file() {
    let (tmp, store) = new_store();
    store.set_wall_clock(a_minute_ahead);
    let src = tmp.path().join("src");
    tree(&src, 6);
    add(&store, "c", &src);
    // Removed from the view: added again, by reading it.
    store
        .collection("c")
        .unwrap()
        .remove(&["d0/f3.bin"])
        .unwrap();
    let again = add(&store, "c", &src);
    assert_eq!((again.added, again.files_read), (1, 1));
    // Another collection: every file is read (its keys hold nothing yet).
    let other = add(&store, "other", &src);
    assert_eq!((other.added, other.files_read), (6, 6));
    assert_view_is(&store, "c", &src);
    assert_view_is(&store, "other", &src);
}

#[test]
fn a_lost_pack_is_read_and_written_again_not_skipped() {
    let (tmp, store) = new_store();
    store.set_wall_clock(a_minute_ahead);
    let src = tmp.path().join("src");
    fs::create_dir_all(&src).unwrap();
    let data = pseudo_random(300_000, 7);
    fs::write(src.join("one.bin"), &data).unwrap();
    add(&store, "c", &src);
    let hash = get(&store, "c", "one.bin").unwrap().unwrap().hash;
    let (_, pack, ..) = store
        .blob_places()
        .unwrap()
        .into_iter()
        .find(|(h, ..)| *h == hash)
        .expect("the blob's place");
    fs::remove_file(&pack).unwrap();
    assert!(!store.verify().unwrap().is_ok());
    let again = add(&store, "c", &src);
    assert_eq!((again.unchanged, again.files_read), (1, 1));
    assert!(store.verify().unwrap().is_ok(), "written again");
}

#[derive(Debug, Clone)]
enum Op {
    /// Write new content (of this length) to file number n.
    Write(usize, usize),
    /// Flip one byte of file n, keeping its size.
    Flip(usize),
    Delete(usize),
    Add,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..6usize, 0..50_000usize).prop_map(|(n, len)| Op::Write(n, len)),
        (0..6usize).prop_map(Op::Flip),
        (0..6usize).prop_map(Op::Delete),
        Just(Op::Add),
        Just(Op::Add),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Against the model "the view is the folder after every add" (files are only added
    /// here, so a deleted file stays in the view: the model keeps what was last added).
    /// Every change is stamped with its own modification time, as changes a human makes are
    /// seconds apart, while the store's clock is a minute ahead so every file looks settled.
    #[test]
    fn after_every_add_the_view_holds_what_the_folder_held(ops in prop::collection::vec(op(), 1..25)) {
        let (tmp, store) = new_store();
        store.set_wall_clock(a_minute_ahead);
        let src = tmp.path().join("src");
        fs::create_dir_all(&src).unwrap();
        let mut model: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let base = SystemTime::now() - Duration::from_secs(3600);
        for (step, op) in ops.iter().enumerate() {
            let stamp = |path: &Path| {
                fs::File::options().write(true).open(path).unwrap()
                    .set_modified(base + Duration::from_secs(step as u64)).unwrap();
            };
            match *op {
                Op::Write(n, len) => {
                    let path = src.join(format!("f{n}"));
                    fs::write(&path, pseudo_random(len, step as u64)).unwrap();
                    stamp(&path);
                }
                Op::Flip(n) => {
                    let path = src.join(format!("f{n}"));
                    if let Ok(mut bytes) = fs::read(&path) {
                        if let Some(b) = bytes.first_mut() {
                            *b ^= 1;
                            fs::write(&path, &bytes).unwrap();
                            stamp(&path);
                        }
                    }
                }
                Op::Delete(n) => {
                    let _ = fs::remove_file(src.join(format!("f{n}")));
                }
                Op::Add => {
                    add(&store, "c", &src);
                    for e in walk(&src) {
                        let key = e.file_name().unwrap().to_str().unwrap().to_owned();
                        model.insert(key, fs::read(&e).unwrap());
                    }
                    let view = list(&store, "c", ViewPoint::Current, "").unwrap();
                    let keys: Vec<&String> = view.iter().map(|i| &i.key).collect();
                    prop_assert_eq!(keys, model.keys().collect::<Vec<_>>());
                    for item in view {
                        prop_assert!(read_all(&store, &item.file) == model[&item.key], "{}", item.key);
                    }
                }
            }
        }
    }
}

#[test]
fn diff_dir_uses_the_recorded_hashes_and_still_sees_every_change() {
    let (tmp, store) = new_store();
    store.set_wall_clock(a_minute_ahead);
    let src = tmp.path().join("src");
    tree(&src, 9);
    add(&store, "c", &src);
    let docs = store.collection("c").unwrap();
    assert!(docs.diff_dir(&src, Some("")).unwrap().is_empty());

    // A same-size rewrite with its mtime put back, a new file, a removed one.
    flip_keeping_size_and_mtime(&src.join("d2/f5.bin"), 0);
    fs::write(src.join("new.txt"), b"new").unwrap();
    fs::remove_file(src.join("d0/f0.bin")).unwrap();
    let changes: Vec<(String, &str)> = docs
        .diff_dir(&src, Some(""))
        .unwrap()
        .into_iter()
        .map(|c| (c.key, c.kind.as_str()))
        .collect();
    assert_eq!(
        changes,
        [
            ("d0/f0.bin".to_owned(), "removed"),
            ("d2/f5.bin".to_owned(), "changed"),
            ("new.txt".to_owned(), "added"),
        ]
    );
}
