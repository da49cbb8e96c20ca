//! A data folder written by an earlier version (store format 1) opens with this one: it is
//! upgraded in place on the first open, reads back exactly, takes new writes (into packs), and
//! an upgrade cut short (the process aborted at each of its write steps) is finished by the
//! next open.

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;

use crate::harness::{read_tree, write_file, Archive};

/// The fixture `store-e94a722.tar.gz` (see `fixtures/README.md`) unpacked as `a`'s data
/// folder.
fn format_1_store() -> Archive {
    let a = Archive::from_fixture("store-e94a722.tar.gz", "store-e94a722");
    assert_eq!(format_of(&a), "archive-store 1\n");
    a
}

fn format_of(a: &Archive) -> String {
    fs::read_to_string(a.data_dir().join("FORMAT")).unwrap()
}

/// `seq 1 n`, as the fixture's files were made.
fn seq(n: u32) -> Vec<u8> {
    (1..=n)
        .map(|i| format!("{i}\n"))
        .collect::<String>()
        .into_bytes()
}

/// The tree the fixture's current view holds, and the one its snapshot `first` holds.
fn expected_trees(root: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let now = root.join("now");
    write_file(&now.join("docs/hello.txt"), b"hello again\n");
    write_file(&now.join("docs/numbers.txt"), &seq(100_000));
    write_file(&now.join("big/counting.txt"), &seq(600_000));
    let first = root.join("first");
    write_file(&first.join("docs/hello.txt"), b"hello, archive\n");
    write_file(&first.join("docs/numbers.txt"), &seq(100_000));
    write_file(&first.join("big/counting.txt"), &seq(600_000));
    write_file(&first.join("bin/run.sh"), b"#!/bin/sh\necho hi\n");
    (now, first)
}

/// Everything the store held reads back byte for byte, now and in its snapshot, and verifies.
fn assert_reads_back(a: &Archive) {
    let (now, first) = expected_trees(&a.path("expected"));
    let out = a.path(&format!("export-{}", rand_suffix()));
    a.ok(&["export", out.join("now").to_str().unwrap()]);
    assert!(read_tree(&out.join("now")) == read_tree(&now));
    a.ok(&[
        "export",
        out.join("first").to_str().unwrap(),
        "--snapshot",
        "first",
    ]);
    assert!(read_tree(&out.join("first")) == read_tree(&first));
    assert!(a.ok(&["verify"]).contains("all intact"));
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

#[test]
fn a_format_1_store_is_upgraded_in_place_and_reads_back_exactly() {
    let a = format_1_store();
    let listing = a.json(&["ls"]);
    let keys: Vec<&str> = listing
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        ["big/counting.txt", "docs/hello.txt", "docs/numbers.txt"]
    );
    assert_eq!(format_of(&a), "archive-store 2\n");
    assert!(!a.data_dir().join("FORMAT.tmp").exists());
    assert_reads_back(&a);

    // New content goes to packs; the old blobs stay where they were and still read.
    write_file(&a.path("new/notes.txt"), b"written after the upgrade\n");
    let fresh: Vec<u8> = (0..200_000)
        .flat_map(|i: u32| format!("line {i} after the upgrade\n").into_bytes())
        .collect();
    write_file(&a.path("new/lines.txt"), &fresh);
    a.ok(&["add", a.path("new").to_str().unwrap()]);
    let packs: u64 = fs::read_dir(a.data_dir().join("packs"))
        .unwrap()
        .map(|p| p.unwrap().metadata().unwrap().len())
        .sum();
    assert!(packs >= fresh.len() as u64, "{packs} bytes in packs");
    assert!(a.data_dir().join("blobs").is_dir(), "format 1's blobs stay");
    assert_eq!(
        a.ok(&["get", "new/notes.txt"]),
        "written after the upgrade\n"
    );
    // gc after removing an old file and a new one: what is left still reads (the snapshot
    // keeps the old one's blobs).
    a.ok(&["rm", "docs/numbers.txt", "new/notes.txt"]);
    a.ok(&["gc"]);
    assert!(a.ok(&["verify"]).contains("all intact"));
    assert_eq!(a.ok(&["get", "docs/hello.txt"]), "hello again\n");
    assert!(a.ok(&["get", "big/counting.txt"]).as_bytes() == seq(600_000));
    assert!(a.ok(&["get", "new/lines.txt"]).as_bytes() == fresh);
}

#[test]
fn an_upgrade_cut_at_each_write_step_is_finished_by_the_next_open() {
    // How many write steps the upgrade takes (an `ls` writes nothing else).
    let probe = format_1_store();
    let log = probe.path("steps.log");
    let out = probe
        .command(&["ls"])
        .env("ARCHIVE_FAULT_LOG", &log)
        .output()
        .unwrap();
    assert!(out.status.success());
    let steps = fs::read_to_string(&log).unwrap().lines().count();
    assert!(steps >= 2, "the upgrade logged {steps} write steps");

    for cut in 1..=steps {
        let a = format_1_store();
        let out = a
            .command(&["ls"])
            .env("ARCHIVE_FAULT_ABORT_AT", cut.to_string())
            .output()
            .unwrap();
        assert_eq!(out.status.signal(), Some(libc::SIGABRT), "cut {cut}");
        // Cut before `FORMAT` was replaced: still format 1, and the next open upgrades it.
        assert_eq!(format_of(&a), "archive-store 1\n", "cut {cut}");
        assert!(a.ok(&["ls"]).contains("docs/hello.txt"), "cut {cut}");
        assert_eq!(format_of(&a), "archive-store 2\n", "cut {cut}");
        assert_reads_back(&a);
    }
}
