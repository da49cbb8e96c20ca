//! The README's quick start, checked: init, add, ls, snapshot, diff, export, verify.

use std::collections::BTreeMap;

use crate::harness::{b3, pseudo_random, read_tree, write_file, Archive};

#[test]
fn quick_start_round_trip() {
    let a = Archive::initialised();
    let src = a.path("docs");
    write_file(&src.join("readme.txt"), b"hello community");
    write_file(&src.join("maps/big.bin"), &pseudo_random(3 << 20, 1));
    write_file(&src.join("maps/empty"), b"");
    std::os::unix::fs::symlink("readme.txt", src.join("link")).unwrap();

    let out = a.run(&["add", src.to_str().unwrap()]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("skipped") && stderr.contains("link"),
        "{stderr}"
    );

    // ls --json: key, size and the b3sum hash of each file.
    let listed = a.json(&["ls"]);
    let got: BTreeMap<String, (u64, String)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["key"].as_str().unwrap().to_owned(),
                (
                    o["size"].as_u64().unwrap(),
                    o["hash"].as_str().unwrap().to_owned(),
                ),
            )
        })
        .collect();
    let expected: BTreeMap<String, (u64, String)> = read_tree(&src)
        .into_iter()
        .map(|(k, v)| (format!("docs/{k}"), (v.len() as u64, b3(&v))))
        .collect();
    assert_eq!(got, expected);
    assert_eq!(a.json(&["ls", "docs/maps"]).as_array().unwrap().len(), 2);

    a.ok(&["snapshot", "before"]);
    write_file(&src.join("readme.txt"), b"hello again");
    write_file(&src.join("new.txt"), b"new");
    std::fs::remove_file(src.join("maps/empty")).unwrap();

    // diff --dir shows what add would do, before it is done.
    let pending = changes(&a.json(&["diff", "--dir", src.to_str().unwrap()]));
    let want = vec![
        ("docs/maps/empty".to_owned(), "removed".to_owned()),
        ("docs/new.txt".to_owned(), "added".to_owned()),
        ("docs/readme.txt".to_owned(), "changed".to_owned()),
    ];
    assert_eq!(pending, want);

    a.ok(&["add", src.to_str().unwrap()]);
    a.ok(&["rm", "docs/maps/empty"]);
    assert_eq!(changes(&a.json(&["diff", "before"])), want);
    assert!(changes(&a.json(&["diff", "--dir", src.to_str().unwrap()])).is_empty());
    a.ok(&["snapshot", "after"]);
    assert_eq!(changes(&a.json(&["diff", "before", "after"])), want);

    // get by key and by hash.
    assert_eq!(a.ok(&["get", "docs/readme.txt"]), "hello again");
    let big = pseudo_random(3 << 20, 1);
    let out_file = a.path("big.out");
    a.ok(&["get", "--hash", &b3(&big), "-o", out_file.to_str().unwrap()]);
    assert!(std::fs::read(&out_file).unwrap() == big);

    // export: the current view and the old snapshot, byte for byte.
    let now = a.path("export-now");
    a.ok(&["export", now.to_str().unwrap()]);
    assert_eq!(read_tree(&now.join("docs")), read_tree(&src));
    let old = a.path("export-before");
    a.ok(&["export", old.to_str().unwrap(), "--snapshot", "before"]);
    let old_tree = read_tree(&old.join("docs"));
    assert_eq!(old_tree["readme.txt"], b"hello community");
    assert_eq!(old_tree["maps/empty"], b"");
    assert!(!old_tree.contains_key("new.txt"));

    assert!(a.ok(&["verify"]).contains("all intact"));
    let stats = a.json(&["stats"]);
    assert_eq!(stats["files"], 3);
    assert_eq!(stats["snapshots"], 2);
    let snaps = a.json(&["snapshots"]);
    assert_eq!(snaps.as_array().unwrap().len(), 2);
    let cols = a.json(&["collections"]);
    assert_eq!(cols[0]["name"], "default");
    assert_eq!(cols[0]["files"], 3);
}

#[test]
fn collections_keep_apart_and_rm_recursive_and_gc_free_space() {
    let a = Archive::initialised();
    let src = a.path("site");
    for i in 0..5 {
        write_file(
            &src.join(format!("page{i}.html")),
            &pseudo_random(100_000, i),
        );
    }
    a.ok(&[
        "add",
        src.to_str().unwrap(),
        "-c",
        "websites/2026",
        "--as",
        "",
    ]);
    assert_eq!(
        a.json(&["ls", "-c", "websites/2026"])
            .as_array()
            .unwrap()
            .len(),
        5
    );
    assert!(a.json(&["ls"]).as_array().unwrap().is_empty());
    let keys: Vec<String> = (0..5).map(|i| format!("page{i}.html")).collect();
    let mut rm = vec!["rm", "-c", "websites/2026"];
    rm.extend(keys.iter().map(String::as_str));
    a.ok(&rm);
    assert!(a
        .json(&["ls", "-c", "websites/2026"])
        .as_array()
        .unwrap()
        .is_empty());
    let gc = a.json(&["gc"]);
    assert_eq!(gc["bytes_freed"], 500_000);
    assert!(a.ok(&["verify"]).contains("all intact"));
}

fn changes(v: &serde_json::Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["key"].as_str().unwrap().to_owned(),
                c["change"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn history_lists_every_version_and_an_old_one_is_got_by_hash() {
    let a = Archive::initialised();
    let file = a.path("notes.txt");
    let mut hashes = Vec::new();
    for text in ["first draft", "second draft"] {
        write_file(&file, text.as_bytes());
        a.ok(&["add", file.to_str().unwrap()]);
        hashes.push(blake3::hash(text.as_bytes()).to_hex().to_string());
    }
    a.ok(&["rm", "notes.txt"]);

    let versions = a.json(&["history", "notes.txt"]);
    let versions = versions.as_array().unwrap();
    let kinds: Vec<&str> = versions
        .iter()
        .map(|v| v["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["file", "file", "removed"]);
    for (v, hash) in versions.iter().zip(&hashes) {
        assert_eq!(v["hash"].as_str(), Some(hash.as_str()));
    }
    let text = a.ok(&["history", "notes.txt"]);
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(text.lines().last().unwrap().contains("removed"), "{text}");
    // The removed key's first version is still there, by hash.
    assert_eq!(a.ok(&["get", "--hash", &hashes[0]]), "first draft");

    let err = a.fails(&["history", "never-added.txt"]);
    assert!(err.contains("no version of `never-added.txt`"), "{err}");
    let err = a.fails(&["history", "../escape"]);
    assert!(err.contains("invalid key"), "{err}");
}

#[test]
fn re_add_reports_how_many_files_it_read_and_skips_settled_unchanged_ones() {
    let a = Archive::initialised();
    let src = a.path("src");
    for i in 0..20u64 {
        write_file(&src.join(format!("f{i}.txt")), &pseudo_random(3000, i));
    }
    let src_str = src.to_str().unwrap();
    let first = a.json(&["add", src_str]);
    assert_eq!(first["read"], 20);
    // Files that changed within two seconds of an add are read again by the next one (two
    // writes in one timestamp tick would look like one); once settled, they are recorded...
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let settled = a.json(&["add", src_str]);
    assert_eq!(
        (settled["read"].as_u64(), settled["unchanged"].as_u64()),
        (Some(20), Some(20))
    );
    // ... and from then on not read while their stat is unchanged.
    let again = a.json(&["add", src_str]);
    assert_eq!(
        (
            again["read"].as_u64(),
            again["unchanged"].as_u64(),
            again["bytes_read"].as_u64()
        ),
        (Some(0), Some(20), Some(0))
    );
    write_file(&src.join("f3.txt"), b"changed");
    let changed = a.json(&["add", src_str]);
    assert_eq!(
        (changed["read"].as_u64(), changed["added"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(a.ok(&["get", "src/f3.txt"]), "changed");
}
