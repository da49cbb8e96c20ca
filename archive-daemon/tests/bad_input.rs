//! Bad input: each a clear one-line error, no panic, nothing already stored lost.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use crate::harness::{pseudo_random, read_tree, write_file, Archive, BIN};

/// A store holding one file, to check nothing is lost after each failure.
fn store_with_one_file() -> (Archive, Vec<u8>) {
    let a = Archive::initialised();
    let data = pseudo_random(2 << 20, 7);
    write_file(&a.path("keep.bin"), &data);
    a.ok(&["add", a.path("keep.bin").to_str().unwrap()]);
    (a, data)
}

fn still_intact(a: &Archive, data: &[u8]) {
    let out = a.run(&["get", "keep.bin"]);
    assert!(out.status.success());
    assert!(out.stdout == data);
    assert!(a.ok(&["verify"]).contains("all intact"));
}

#[test]
fn a_missing_path_is_named() {
    let (a, data) = store_with_one_file();
    let missing = a.path("no/such/file");
    let err = a.fails(&["add", missing.to_str().unwrap()]);
    assert!(
        err.contains(&format!("{}: no such file or directory", missing.display())),
        "{err}"
    );
    still_intact(&a, &data);
}

#[test]
fn a_data_dir_never_initialised() {
    let a = Archive::new();
    let err = a.fails(&["ls"]);
    assert!(
        err.contains("no archive store at") && err.contains("archive init"),
        "{err}"
    );
    // Nothing was created by the failed command.
    assert!(!a.data_dir().exists());
}

#[test]
fn a_store_of_a_newer_format_version() {
    let (a, _data) = store_with_one_file();
    fs::write(a.data_dir().join("FORMAT"), "archive-store 7\n").unwrap();
    let err = a.fails(&["ls"]);
    assert!(
        err.contains("format version 7") && err.contains("hint: this store needs a newer version"),
        "{err}"
    );
    let err = a.fails(&["add", a.path("keep.bin").to_str().unwrap()]);
    assert!(err.contains("format version 7"), "{err}");
}

#[test]
fn a_damaged_database_file_is_refused_and_left_as_it_was() {
    let (a, data) = store_with_one_file();
    let db = a.data_dir().join("store.redb");
    let mut bytes = fs::read(&db).unwrap();
    let saved = bytes.clone();
    bytes[..4096].fill(0x5a);
    fs::write(&db, &bytes).unwrap();
    let packs_before = read_tree(&a.data_dir().join("packs"));
    let err = a.fails(&["ls"]);
    assert!(err.contains("cannot open the store database"), "{err}");
    a.fails(&["add", a.path("keep.bin").to_str().unwrap()]);
    a.fails(&["gc"]);
    assert_eq!(
        fs::read(&db).unwrap(),
        bytes,
        "the damaged file is not rewritten"
    );
    assert_eq!(
        read_tree(&a.data_dir().join("packs")),
        packs_before,
        "no pack was touched"
    );
    // Once the database is restored (say from a backup), everything is there.
    fs::write(&db, saved).unwrap();
    still_intact(&a, &data);
}

#[test]
fn an_unreadable_file_is_reported_and_the_rest_is_added() {
    let a = Archive::new();
    // Root reads any file, so as root the store runs as `nobody` (the test needs setpriv).
    let as_root = unsafe_geteuid_is_root();
    let tmp = a.tmp.path();
    fs::set_permissions(tmp, fs::Permissions::from_mode(0o777)).unwrap();
    let src = a.path("src");
    write_file(&src.join("ok.txt"), b"readable");
    write_file(&src.join("secret.txt"), b"unreadable");
    fs::set_permissions(src.join("secret.txt"), fs::Permissions::from_mode(0o000)).unwrap();
    write_file(&src.join("locked/inside.txt"), b"behind a closed door");
    fs::set_permissions(src.join("locked"), fs::Permissions::from_mode(0o000)).unwrap();
    let run = |args: &[&str]| {
        let mut c = if as_root {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN]);
            c
        } else {
            Command::new(BIN)
        };
        c.arg("--data-dir")
            .arg(a.data_dir())
            .args(args)
            .env_remove("ARCHIVE_DIR");
        let out = c
            .output()
            .expect("setpriv (util-linux) is needed to run this test as root");
        crate::harness::assert_no_panic(&out);
        out
    };
    assert!(run(&["init"]).status.success());
    let out = run(&["add", src.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("secret.txt") && err.contains("ermission denied"),
        "{err}"
    );
    assert!(
        err.contains("locked") && err.contains("cannot read folder"),
        "{err}"
    );
    assert!(err.contains("2 file(s) could not be added"), "{err}");
    let ls = String::from_utf8(run(&["ls"]).stdout).unwrap();
    assert!(ls.contains("src/ok.txt") && !ls.contains("secret"), "{ls}");
    // diff --dir refuses rather than reporting the unreadable folder's files as removed.
    let out = run(&["diff", "--dir", src.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read folder"));
    // The unreadable file given directly: an error, and the store keeps what it had.
    let out = run(&["add", src.join("secret.txt").to_str().unwrap(), "--as", "s"]);
    assert!(!out.status.success());
    assert!(run(&["verify"]).status.success());
    let ls = String::from_utf8(run(&["ls"]).stdout).unwrap();
    assert!(ls.contains("src/ok.txt"));
}

fn unsafe_geteuid_is_root() -> bool {
    // `id -u` avoids a libc dependency in tests.
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

#[test]
fn bad_arguments_get_clear_errors() {
    let (a, data) = store_with_one_file();
    let err = a.fails(&["get", "--hash", "not-a-hash"]);
    assert!(err.contains("`not-a-hash` is not a BLAKE3 hash"), "{err}");
    let err = a.fails(&["get", "--hash", &"0".repeat(64)]);
    assert!(err.contains("no file or blob 0000"), "{err}");
    let err = a.fails(&["get", "nope.txt"]);
    assert!(
        err.contains("`nope.txt` is not in collection `default`"),
        "{err}"
    );
    let err = a.fails(&["diff", "no-such-snapshot"]);
    assert!(err.contains("no snapshot `no-such-snapshot`"), "{err}");
    let err = a.fails(&["ls", "-c", "bad name"]);
    assert!(err.contains("invalid collection name `bad name`"), "{err}");
    let err = a.fails(&["ls", "-c", "typo"]);
    assert!(err.contains("no collection `typo`"), "{err}");
    let err = a.fails(&[
        "add",
        a.path("keep.bin").to_str().unwrap(),
        "-c",
        "bad name",
    ]);
    assert!(err.contains("invalid collection name `bad name`"), "{err}");
    let err = a.fails(&["add", "x", "y", "--as", "z"]);
    assert!(err.contains("--as names one file or folder"), "{err}");
    let err = a.fails(&[
        "add",
        a.path("keep.bin").to_str().unwrap(),
        "--as",
        "../escape",
    ]);
    assert!(err.contains("`.` or `..`"), "{err}");
    a.ok(&["snapshot", "s1"]);
    let err = a.fails(&["snapshot", "s1"]);
    assert!(err.contains("snapshot `s1` already exists"), "{err}");
    let err = a.fails(&["snapshot", "s/2"]);
    assert!(err.contains("invalid snapshot name"), "{err}");
    let err = a.fails(&["rm", "nope"]);
    assert!(err.contains("`nope` is not in collection"), "{err}");
    // Exporting over a different file refuses and leaves it.
    let dest = a.path("dest");
    write_file(&dest.join("keep.bin"), b"mine");
    let err = a.fails(&["export", dest.to_str().unwrap()]);
    assert!(err.contains("exists and differs"), "{err}");
    assert_eq!(fs::read(dest.join("keep.bin")).unwrap(), b"mine");
    // clap's own usage errors exit 2 without a panic.
    let out = a.run(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    still_intact(&a, &data);
}

#[test]
fn bad_pairing_input_and_damaged_network_files_are_named() {
    let (a, data) = store_with_one_file();
    let id = "5cf863893a295374f9bd4fb31823a9352642aa2cc513279b12b13f46fb1ecdc7";
    let err = a.fails(&["peer", "add", "garbage"]);
    assert!(
        err.contains("neither a ticket") && err.contains("endpoint id"),
        "{err}"
    );
    let err = a.fails(&["peer", "add", "archive1abc"]);
    assert!(err.contains("not a valid ticket"), "{err}");
    let err = a.fails(&["peer", "add", id, "--name", "bad!name"]);
    assert!(err.contains("peer name `bad!name`"), "{err}");
    for args in [
        &["sync", "nosuch"][..],
        &["diff", "--peer", "nosuch"],
        &["peer", "rm", "nosuch"],
    ] {
        let err = a.fails(args);
        assert!(err.contains("no peer named `nosuch`"), "{args:?}: {err}");
    }
    let out = a.run(&["serve", "--bind", "nope"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid value 'nope'"));

    // A damaged peers.json is named, and a command that would rewrite it leaves it alone.
    let peers = a.data_dir().join("peers.json");
    fs::write(&peers, r#"{"peers": [{"name": 5}]}"#).unwrap();
    for args in [&["peer", "ls"][..], &["peer", "add", id, "--name", "x"]] {
        let err = a.fails(args);
        assert!(err.contains("peers.json is not valid"), "{args:?}: {err}");
    }
    assert_eq!(fs::read(&peers).unwrap(), br#"{"peers": [{"name": 5}]}"#);
    fs::remove_file(&peers).unwrap();

    // So is a damaged or wrong net.json, for the commands that need the network.
    let net = a.data_dir().join("net.json");
    for (text, expected) in [
        ("garbage{", "net.json is not valid"),
        (
            r#"{"profile": "moon"}"#,
            r#"profile `moon`: use "lan" or "internet""#,
        ),
    ] {
        fs::write(&net, text).unwrap();
        let err = a.fails(&["serve"]);
        assert!(err.contains(expected), "{err}");
        assert_eq!(fs::read_to_string(&net).unwrap(), text);
    }
    still_intact(&a, &data);
}

/// `archive user ...` with the password on stdin: its stderr and whether it succeeded.
fn user(a: &Archive, args: &[&str], stdin: &[u8]) -> (bool, String) {
    let mut all = vec!["user"];
    all.extend_from_slice(args);
    let out = a.run_with_input(&all, stdin);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_user_commands_get_clear_errors_and_change_nothing() {
    let a = Archive::initialised();
    assert!(user(&a, &["add", "ana", "--admin"], b"a good long password\n").0);
    let cases: &[(&[&str], &[u8], &str)] = &[
        (&["add", "bo"], b"short\n", "8 to 256 bytes"),
        (&["add", "bo"], b"", "8 to 256 bytes"),
        (&["add", "bo"], &[b'x'; 300], "bytes"),
        (&["add", "../bo"], b"a good long password\n", "name"),
        (&["add", "b o"], b"a good long password\n", "name"),
        (&["add", ""], b"a good long password\n", "name"),
        (&["add", "ana"], b"a good long password\n", "ana"),
        (&["passwd", "nosuch"], b"a good long password\n", "nosuch"),
        (&["passwd", "ana"], b"short\n", "8 to 256 bytes"),
        (&["rm", "nosuch"], b"", "nosuch"),
        (&["rm", "ana"], b"", "admin"),
    ];
    for (args, stdin, says) in cases {
        let (ok, err) = user(&a, args, stdin);
        assert!(!ok, "user {args:?} succeeded");
        assert!(
            err.lines().any(|l| l.starts_with("archive: error:")),
            "user {args:?}: {err}"
        );
        assert!(err.contains(says), "user {args:?}: {err}");
    }
    // Ana is still the one person, and her password still works.
    let people = a.json(&["user", "ls"]);
    assert_eq!(people.as_array().unwrap().len(), 1, "{people}");
    assert_eq!(people[0]["name"], "ana");
}
