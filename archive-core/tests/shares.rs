//! File shares (`archive_core::shares`): folders, uploads in parts, versions and the trash,
//! against a simple model and with a clock moved forward for `gc`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use archive_core::shares::{Share, ShareError, ShareLimits, Shares, COMMUNITY_SHARE};
use archive_core::{KeepVersions, Store};
use proptest::prelude::*;

fn open(limits: ShareLimits) -> (tempfile::TempDir, Shares) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::init(dir.path().join("store")).unwrap());
    let shares = Shares::open(store, dir.path().join("uploads"), limits).unwrap();
    (dir, shares)
}

fn upload(shares: &Shares, share: &Share, path: &str, bytes: &[u8]) {
    let up = shares
        .begin_upload("ana", share, path, bytes.len() as u64)
        .unwrap();
    let mut at = 0u64;
    for part in bytes.chunks(7) {
        at = shares.write_part("ana", &up.id, at, part).unwrap();
    }
    shares.finish_upload("ana", &up.id).unwrap();
}

fn content(shares: &Shares, file: &archive_core::FileRef) -> Vec<u8> {
    let mut out = Vec::new();
    shares.store().blobs().write_to(file, &mut out).unwrap();
    out
}

/// Every file of a share, read folder by folder through `list`.
fn walk(shares: &Shares, share: &Share, folder: &str, out: &mut BTreeMap<String, Vec<u8>>) {
    let listing = shares.list(share, folder).unwrap();
    assert!(!listing.more);
    for f in listing.files {
        out.insert(f.path.clone(), content(shares, &f.file));
    }
    for sub in listing.folders {
        let path = if folder.is_empty() {
            sub
        } else {
            format!("{folder}/{sub}")
        };
        walk(shares, share, &path, out);
    }
}

#[derive(Debug, Clone)]
enum Op {
    Upload(usize, u8),
    Remove(usize),
    Restore(usize),
    ShareWithCommunity(usize),
}

const PATHS: &[&str] = &[
    "a.txt",
    "docs/b.txt",
    "docs/deep/c.txt",
    "e.txt",
    "docs/f.txt",
];

fn op() -> impl Strategy<Value = Op> {
    let i = 0..PATHS.len();
    prop_oneof![
        3 => (i.clone(), any::<u8>()).prop_map(|(p, c)| Op::Upload(p, c)),
        2 => i.clone().prop_map(Op::Remove),
        2 => i.clone().prop_map(Op::Restore),
        1 => i.prop_map(Op::ShareWithCommunity),
    ]
}

#[derive(Default)]
struct Model {
    files: BTreeMap<String, Vec<u8>>,
    trash: BTreeMap<String, Vec<u8>>,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Uploads, removals, restores and sharing, in any order: both folders list what a map of
    /// path -> bytes says, and the trash holds each removed path's last content.
    #[test]
    fn shares_behave_like_a_map_with_a_trash(ops in proptest::collection::vec(op(), 1..24)) {
        let (_dir, shares) = open(ShareLimits::default());
        let own = Share::Person("ana".into());
        let (mut mine, mut community) = (Model::default(), Model::default());
        for op in ops {
            match op {
                Op::Upload(p, c) => {
                    let bytes = vec![c; 3 + c as usize % 20];
                    upload(&shares, &own, PATHS[p], &bytes);
                    mine.trash.remove(PATHS[p]);
                    mine.files.insert(PATHS[p].into(), bytes);
                }
                Op::Remove(p) => {
                    let r = shares.remove(&own, PATHS[p]);
                    match mine.files.remove(PATHS[p]) {
                        Some(bytes) => { r.unwrap(); mine.trash.insert(PATHS[p].into(), bytes); }
                        None => prop_assert!(matches!(r, Err(ShareError::NotFound(_)))),
                    }
                }
                Op::Restore(p) => {
                    let r = shares.restore(&own, PATHS[p]);
                    match mine.trash.remove(PATHS[p]) {
                        Some(bytes) => { r.unwrap(); mine.files.insert(PATHS[p].into(), bytes); }
                        None => prop_assert!(matches!(r, Err(ShareError::NotFound(_)))),
                    }
                }
                Op::ShareWithCommunity(p) => {
                    let r = shares.share_with_community("ana", PATHS[p]);
                    match mine.files.remove(PATHS[p]) {
                        Some(bytes) => {
                            r.unwrap();
                            mine.trash.insert(PATHS[p].into(), bytes.clone());
                            community.trash.remove(PATHS[p]);
                            community.files.insert(PATHS[p].into(), bytes);
                        }
                        None => prop_assert!(matches!(r, Err(ShareError::NotFound(_)))),
                    }
                }
            }
            for (share, model) in [(&own, &mine), (&Share::Community, &community)] {
                let mut listed = BTreeMap::new();
                walk(&shares, share, "", &mut listed);
                prop_assert_eq!(&listed, &model.files);
                let trash: BTreeMap<String, Vec<u8>> = shares
                    .trash(share)
                    .unwrap()
                    .into_iter()
                    .map(|t| (t.path.clone(), content(&shares, &t.file)))
                    .collect();
                prop_assert_eq!(&trash, &model.trash);
            }
        }
    }
}

static HOURS_AHEAD: AtomicU64 = AtomicU64::new(0);

fn shifted_clock() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    now + HOURS_AHEAD.load(Ordering::SeqCst) * 3_600_000
}

/// `gc` keeps the last `versions` superseded versions and a removed file's content for the
/// set time, and frees them after it; a version freed cannot be restored (a clear error).
#[test]
fn versions_and_trash_are_kept_for_their_time_then_freed() {
    let limits = ShareLimits {
        keep: KeepVersions {
            versions: 1,
            for_millis: 3_600_000,
        },
        ..ShareLimits::default()
    };
    let (_dir, shares) = open(limits);
    shares.store().set_wall_clock(shifted_clock);
    let share = Share::Community;
    for v in [b"version one".as_slice(), b"version two", b"version three"] {
        upload(&shares, &share, "notes.txt", v);
    }
    shares.store().gc().unwrap();
    let versions = shares.versions(&share, "notes.txt").unwrap();
    let available: Vec<bool> = versions.iter().map(|v| v.available).collect();
    // Newest first: the current one, the one kept (versions: 1), the oldest freed.
    assert_eq!(available, [true, true, false]);
    let oldest = versions[2].entry;
    assert!(matches!(
        shares.restore_version(&share, "notes.txt", &oldest),
        Err(ShareError::Gone(_))
    ));
    shares
        .restore_version(&share, "notes.txt", &versions[1].entry)
        .unwrap();
    let now = shares.get(&share, "notes.txt").unwrap().unwrap();
    assert_eq!(content(&shares, &now.file), b"version two");

    shares.remove(&share, "notes.txt").unwrap();
    shares.store().gc().unwrap();
    assert_eq!(shares.trash(&share).unwrap().len(), 1, "kept in the trash");

    HOURS_AHEAD.store(2, Ordering::SeqCst);
    shares.store().gc().unwrap();
    assert!(shares.trash(&share).unwrap().is_empty(), "emptied by gc");
    assert!(matches!(
        shares.restore(&share, "notes.txt"),
        Err(ShareError::NotFound(_))
    ));
    assert!(shares
        .versions(&share, "notes.txt")
        .unwrap()
        .iter()
        .all(|v| !v.available));
}

/// A collection without a rule loses superseded content at the next `gc`, as before.
#[test]
fn collections_without_a_rule_keep_no_versions() {
    let (_dir, shares) = open(ShareLimits::default());
    let store = shares.store();
    let docs = store.collection("docs").unwrap();
    docs.add_bytes("a", b"first").unwrap();
    let first = docs.get("a").unwrap().unwrap().file;
    docs.add_bytes("a", b"second").unwrap();
    store.gc().unwrap();
    assert!(store.blobs().file(&first.hash).unwrap().is_none());
    let rules = store.kept_versions().unwrap();
    assert_eq!(rules.len(), 2, "{rules:?}");
    assert!(rules.iter().any(|(p, _)| p == COMMUNITY_SHARE));
}

/// Uploads resume where they stopped, belong to the person who began them, and never grow
/// past their declared size; limits and quotas refuse before anything is stored.
#[test]
fn uploads_resume_and_refuse_what_does_not_fit() {
    let limits = ShareLimits {
        max_file: 1000,
        person_quota: 1500,
        ..ShareLimits::default()
    };
    let (dir, shares) = open(limits);
    let own = Share::Person("ana".into());
    let up = shares
        .begin_upload("ana", &own, "big/file.bin", 900)
        .unwrap();
    assert_eq!(shares.write_part("ana", &up.id, 0, &[1; 400]).unwrap(), 400);
    // A part sent twice (the answer was lost) is refused with where to go on from.
    match shares.write_part("ana", &up.id, 0, &[1; 400]) {
        Err(ShareError::WrongOffset { expected }) => assert_eq!(expected, 400),
        other => panic!("{other:?}"),
    }
    assert_eq!(shares.upload("ana", &up.id).unwrap().received, 400);
    // Someone else cannot see, add to or finish it.
    for r in [
        shares.write_part("bo", &up.id, 400, &[2; 10]).map(|_| ()),
        shares.upload("bo", &up.id).map(|_| ()),
        shares.finish_upload("bo", &up.id).map(|_| ()),
        shares.cancel_upload("bo", &up.id),
    ] {
        assert!(matches!(r, Err(ShareError::NoSuchUpload)), "{r:?}");
    }
    assert!(matches!(
        shares.write_part("ana", &up.id, 400, &[1; 501]),
        Err(ShareError::PastDeclaredSize { size: 900 })
    ));
    assert!(matches!(
        shares.finish_upload("ana", &up.id),
        Err(ShareError::Incomplete {
            received: 400,
            size: 900
        })
    ));
    // The quota counts uploads under way.
    match shares.begin_upload("ana", &own, "other.bin", 700) {
        Err(ShareError::OverQuota { quota, free }) => assert_eq!((quota, free), (1500, 600)),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        shares.begin_upload("ana", &own, "huge.bin", 1001),
        Err(ShareError::TooLarge {
            size: 1001,
            max: 1000
        })
    ));
    shares.write_part("ana", &up.id, 400, &[1; 500]).unwrap();
    let done = shares.finish_upload("ana", &up.id).unwrap();
    assert_eq!((done.path.as_str(), done.file.size), ("big/file.bin", 900));
    assert!(matches!(
        shares.upload("ana", &up.id),
        Err(ShareError::NoSuchUpload)
    ));
    assert!(matches!(
        shares.begin_upload("ana", &own, "other.bin", 700),
        Err(ShareError::OverQuota { free: 600, .. })
    ));
    // A whole file from elsewhere meets the same checks.
    let whole = dir.path().join("whole.bin");
    std::fs::write(&whole, [3; 700]).unwrap();
    assert!(matches!(
        shares.add_file(&own, "whole.bin", &whole),
        Err(ShareError::OverQuota { free: 600, .. })
    ));
    std::fs::write(&whole, [3; 600]).unwrap();
    assert_eq!(
        shares
            .add_file(&own, "whole.bin", &whole)
            .unwrap()
            .file
            .size,
        600
    );
    assert!(matches!(
        shares.add_file(&own, "../whole.bin", &whole),
        Err(ShareError::Name(_))
    ));
    // One person cannot reserve the whole folder with uploads they never send.
    let ids: Vec<String> = (0..archive_core::shares::MAX_UPLOADS_PER_PERSON)
        .map(|i| {
            shares
                .begin_upload("ana", &Share::Community, &format!("n{i}"), 1)
                .unwrap()
                .id
        })
        .collect();
    assert!(matches!(
        shares.begin_upload("ana", &Share::Community, "one-more", 1),
        Err(ShareError::TooManyUploads)
    ));
    let bo = shares
        .begin_upload("bo", &Share::Community, "bo", 1)
        .unwrap();
    for id in &ids {
        shares.cancel_upload("ana", id).unwrap();
    }
    shares.cancel_upload("bo", &bo.id).unwrap();
    // Nothing is left in the uploads folder.
    assert_eq!(
        std::fs::read_dir(dir.path().join("uploads"))
            .unwrap()
            .count(),
        0
    );
}

/// Names that would leave the share, or that are not names, are refused before anything is
/// written; upload ids that are not ids are "no such upload", never a path.
#[test]
fn paths_cannot_escape_a_share() {
    let (dir, shares) = open(ShareLimits::default());
    let own = Share::Person("ana".into());
    for bad in [
        "../x",
        "a/../../x",
        "/etc/passwd",
        "a//b",
        "",
        ".",
        "a/\n",
        "x/..",
    ] {
        assert!(
            matches!(
                shares.begin_upload("ana", &own, bad, 1),
                Err(ShareError::Name(_))
            ),
            "{bad:?}"
        );
    }
    assert!(matches!(
        shares.list(&own, "../.."),
        Err(ShareError::Name(_))
    ));
    for bad_person in ["../bo", "bo/x", ""] {
        assert!(matches!(
            shares.list(&Share::Person(bad_person.into()), ""),
            Err(ShareError::Name(_))
        ));
    }
    for bad_id in ["../../store/db", "00", &"g".repeat(32)] {
        assert!(matches!(
            shares.upload("ana", bad_id),
            Err(ShareError::NoSuchUpload)
        ));
    }
    assert_eq!(
        std::fs::read_dir(dir.path().join("uploads"))
            .unwrap()
            .count(),
        0
    );
    // A person's folder is a `local/` collection: never offered to peers.
    assert!(own.collection().starts_with("local/"));
}

/// A folder lists its own files and the folders in it, however many files those hold.
#[test]
fn a_folder_lists_one_level() {
    let (_dir, shares) = open(ShareLimits::default());
    let store = shares.store();
    let c = store.collection(COMMUNITY_SHARE).unwrap();
    for i in 0..300 {
        c.add_bytes(&format!("top{i:03}.txt"), b"x").unwrap();
        c.add_bytes(&format!("photos/{i:03}.jpg"), b"y").unwrap();
        c.add_bytes(&format!("photos/2026/{i:03}.jpg"), b"z")
            .unwrap();
    }
    c.add_bytes("zines/one.pdf", b"z").unwrap();
    let top = shares.list(&Share::Community, "").unwrap();
    assert_eq!(top.folders, ["photos", "zines"]);
    assert_eq!(top.files.len(), 300);
    let photos = shares.list(&Share::Community, "/photos/").unwrap();
    assert_eq!(photos.folders, ["2026"]);
    assert_eq!(photos.files.len(), 300);
    assert!(photos.files.iter().all(|f| f.path.starts_with("photos/")));
    assert_eq!(
        shares.used(&Share::Community).unwrap(),
        901,
        "every file's bytes"
    );
}

/// Unfinished uploads older than the expiry are deleted.
#[test]
fn stale_uploads_expire() {
    let limits = ShareLimits {
        upload_expiry_millis: 0,
        ..ShareLimits::default()
    };
    let (_dir, shares) = open(limits);
    let up = shares
        .begin_upload("ana", &Share::Community, "a.bin", 10)
        .unwrap();
    assert_eq!(
        shares.expire_uploads().unwrap(),
        2,
        "its bytes and its record"
    );
    assert!(matches!(
        shares.upload("ana", &up.id),
        Err(ShareError::NoSuchUpload)
    ));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// `list_folder` gives what the keys say, in the view now and in a snapshot, whatever
    /// the limit: the folders directly in it (once each) and its own files, in order.
    #[test]
    fn one_level_of_a_folder_matches_the_keys(
        keys in proptest::collection::btree_set("[ab]{1,2}(/[ab]{1,2}){0,3}", 1..40),
        removed in proptest::collection::vec(any::<prop::sample::Index>(), 0..5),
        folder in "|a|b|a/a|a/b|ab",
        limit in 1usize..50,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::init(dir.path().join("store")).unwrap();
        let c = store.collection("c").unwrap();
        // A key that is also a folder of another key cannot exist: keep the shorter.
        let keys: Vec<&String> = keys
            .iter()
            .filter(|k| !keys.iter().any(|o| k.starts_with(&format!("{o}/"))))
            .collect();
        for k in &keys {
            c.add_bytes(k, k.as_bytes()).unwrap();
        }
        c.snapshot("before").unwrap();
        let mut now: Vec<&String> = keys.clone();
        for r in removed {
            if now.is_empty() { break; }
            let k = now.remove(r.index(now.len()));
            c.remove(&[k.as_str()]).unwrap();
        }
        for (at, keys) in [
            (archive_core::ViewPoint::Snapshot("before"), &keys),
            (archive_core::ViewPoint::Current, &now),
        ] {
            let prefix = if folder.is_empty() { String::new() } else { format!("{folder}/") };
            let mut expected: Vec<(bool, String)> = Vec::new();
            for k in keys.iter() {
                if let Some(rest) = k.strip_prefix(&prefix) {
                    match rest.split_once('/') {
                        Some((sub, _)) => expected.push((true, sub.to_owned())),
                        None => expected.push((false, (*k).clone())),
                    }
                }
            }
            expected.dedup();
            let page = c.list_folder(at, &folder, limit).unwrap();
            let mut got: Vec<(bool, String)> = page.folders.iter().map(|f| (true, f.clone())).collect();
            got.extend(page.files.iter().map(|f| (false, f.key.clone())));
            // Entries come in key order (folders and files interleaved); compared as sets.
            prop_assert_eq!(page.more, expected.len() > limit);
            let mut want: Vec<(bool, String)> = expected.into_iter().take(limit).collect();
            want.sort();
            got.sort();
            prop_assert_eq!(got, want);
        }
    }
}

/// An upload larger than the disk can take (twice: while it arrives and in the store) is
/// refused before a byte is stored, whatever the quotas allow.
#[test]
fn an_upload_the_disk_cannot_hold_is_refused() {
    let limits = ShareLimits {
        max_file: u64::MAX,
        person_quota: u64::MAX,
        community_quota: u64::MAX,
        ..ShareLimits::default()
    };
    let (dir, shares) = open(limits);
    match shares.begin_upload("ana", &Share::Community, "huge.iso", 1 << 60) {
        Err(ShareError::DiskFull { needed, free }) => {
            assert_eq!(needed, 2 << 60);
            assert!(free < 1 << 60);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        std::fs::read_dir(dir.path().join("uploads"))
            .unwrap()
            .count(),
        0
    );
}
