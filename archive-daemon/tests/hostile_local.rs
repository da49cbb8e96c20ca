//! Hostile local users and damaged disks, against the real binary (issue 11). Each test names
//! the point of the adversarial review it pins; each failed on the code before the fix.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use crate::harness::{assert_no_panic, write_file, Archive, BIN};

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o777
}

/// Runs the binary as another user (root drops to uid/gid 1234 with setpriv).
fn as_other_user(args: &[&std::ffi::OsStr]) -> std::process::Output {
    let out = Command::new("setpriv")
        .args(["--reuid", "1234", "--regid", "1234", "--clear-groups"])
        .arg(BIN)
        .args(args)
        .env_remove("ARCHIVE_DIR")
        .output()
        .expect("setpriv (util-linux) runs");
    assert_no_panic(&out);
    out
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// An archive with `docs/new.txt` and `b.txt`.
fn small_archive() -> Archive {
    let a = Archive::initialised();
    let src = a.path("src");
    write_file(&src.join("docs/new.txt"), b"new document\n");
    write_file(&src.join("b.txt"), b"bee\n");
    a.ok(&["add", src.to_str().unwrap(), "--as", ""]);
    a
}

/// Point 1: a link planted inside DEST (`DEST/docs -> elsewhere/`) is never followed, and
/// the old predictable temporary name (`.b.txt.archive-tmp`) planted as a link to a file the
/// user can write does not make export overwrite that file.
#[test]
fn export_never_writes_through_links_planted_in_dest() {
    let a = small_archive();
    let dest = a.path("shared-tmp/restore");
    let elsewhere = a.path("elsewhere");
    fs::create_dir_all(&dest).unwrap();
    fs::create_dir_all(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, dest.join("docs")).unwrap();
    let victim = a.path("victim.txt");
    fs::write(&victim, b"precious").unwrap();
    std::os::unix::fs::symlink(&victim, dest.join(".b.txt.archive-tmp")).unwrap();

    let out = a.run(&["export", dest.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("skipped `docs/new.txt`") && err.contains("symbolic link"),
        "{err}"
    );
    assert!(
        fs::read_dir(&elsewhere).unwrap().next().is_none(),
        "wrote outside DEST"
    );
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    assert_eq!(fs::read(dest.join("b.txt")).unwrap(), b"bee\n");
    assert!(fs::symlink_metadata(dest.join("b.txt")).unwrap().is_file());
}

/// Point 1: a link where a file goes is only replaced with --force, and then the link
/// itself is replaced: what it points to is untouched.
#[test]
fn export_replaces_a_link_only_when_forced_and_never_follows_it() {
    let a = small_archive();
    let dest = a.path("dest");
    fs::create_dir_all(&dest).unwrap();
    let victim = a.path("victim.txt");
    fs::write(&victim, b"precious").unwrap();
    std::os::unix::fs::symlink(&victim, dest.join("b.txt")).unwrap();
    let err = a.fails(&["export", dest.to_str().unwrap()]);
    assert!(err.contains("refusing to overwrite"), "{err}");
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    a.ok(&["export", dest.to_str().unwrap(), "--force"]);
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    assert!(fs::symlink_metadata(dest.join("b.txt")).unwrap().is_file());
    assert_eq!(fs::read(dest.join("b.txt")).unwrap(), b"bee\n");
    assert_eq!(
        fs::read(dest.join("docs/new.txt")).unwrap(),
        b"new document\n"
    );
}

/// Point 1: `get -o FILE` where FILE (or the old temporary name beside it) is a planted
/// link: the link is replaced, never written through.
#[test]
fn get_output_never_writes_through_a_link() {
    let a = small_archive();
    let shared = a.path("shared");
    fs::create_dir_all(&shared).unwrap();
    let victim = a.path("victim.txt");
    fs::write(&victim, b"precious").unwrap();
    let out = shared.join("out.txt");
    std::os::unix::fs::symlink(&victim, &out).unwrap();
    std::os::unix::fs::symlink(&victim, shared.join(".out.txt.archive-tmp")).unwrap();
    a.ok(&["get", "b.txt", "-o", out.to_str().unwrap()]);
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    assert!(fs::symlink_metadata(&out).unwrap().is_file());
    assert_eq!(fs::read(&out).unwrap(), b"bee\n");
}

/// Point 12: export makes what it writes durable (files and folders: `syncfs` on DEST's file
/// system before the renames and after them).
#[test]
fn export_makes_its_files_durable() {
    let a = small_archive();
    let dest = a.path("durable");
    let out = Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=syncfs,fsync,fdatasync", "-o"])
        .arg(a.path("trace"))
        .arg(BIN)
        .arg("--data-dir")
        .arg(a.data_dir())
        .args(["export", dest.to_str().unwrap()])
        .output()
        .expect("strace runs (.ci/run installs it)");
    assert!(out.status.success(), "{}", stderr(&out));
    let trace = fs::read_to_string(a.path("trace")).unwrap();
    let syncs = trace.lines().filter(|l| l.contains("syncfs(")).count();
    assert!(syncs >= 2, "export synced {syncs} times:\n{trace}");
}

/// Point 9: a key cannot be both a file and a folder: `a/b` is refused while `a` is a file,
/// and the rest of the add goes on.
#[test]
fn a_key_is_never_both_a_file_and_a_folder() {
    let a = Archive::initialised();
    write_file(&a.path("one/a"), b"a file");
    a.ok(&["add", a.path("one/a").to_str().unwrap(), "--as", "a"]);
    write_file(&a.path("two/b"), b"under a");
    write_file(&a.path("two/c"), b"fine");
    let out = a.run(&["add", a.path("two").to_str().unwrap(), "--as", "a"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("`a` is a file there"),
        "{}",
        stderr(&out)
    );
    let keys: Vec<String> = a
        .json(&["ls"])
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(keys, ["a"], "nothing under the file `a`");
    // The whole view exports.
    a.ok(&["export", a.path("out").to_str().unwrap()]);
    assert_eq!(fs::read(a.path("out/a")).unwrap(), b"a file");
}

/// Point 9: a 250-byte file name is a valid key and exports (the temporary name does not
/// lengthen it); a key `.x.archive-tmp` beside `x` is exported too, not lost.
#[test]
fn long_names_and_names_like_temporary_files_export() {
    let a = Archive::initialised();
    let long = "n".repeat(250);
    let src = a.path("src");
    write_file(&src.join(&long), b"long name");
    write_file(&src.join("x"), b"x");
    write_file(&src.join(".x.archive-tmp"), b"not a temporary file");
    a.ok(&["add", src.to_str().unwrap(), "--as", ""]);
    let out = a.run(&["export", a.path("out").to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fs::read(a.path("out").join(&long)).unwrap(), b"long name");
    assert_eq!(fs::read(a.path("out/x")).unwrap(), b"x");
    assert_eq!(
        fs::read(a.path("out/.x.archive-tmp")).unwrap(),
        b"not a temporary file"
    );
}

/// Point 9: names with control characters (a newline that would forge a line of `ls`, an
/// escape that would drive the terminal) are not keys: add skips them and says why, with the
/// name escaped.
#[test]
fn control_characters_never_become_keys() {
    let a = Archive::initialised();
    let src = a.path("src");
    write_file(&src.join("ok.txt"), b"ok");
    write_file(&src.join("forged\nb3  1 B  evil.txt"), b"x");
    write_file(&src.join("bell\u{7}\u{1b}[2J"), b"x");
    let out = a.run(&["add", src.to_str().unwrap(), "--as", ""]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(!err.contains('\u{1b}'), "raw escape printed: {err:?}");
    assert!(err.contains("control character"), "{err}");
    let listing = a.ok(&["ls"]);
    assert_eq!(listing.lines().count(), 1, "{listing}");
    assert!(listing.contains("ok.txt"));
}

/// Point 10: arguments that are not UTF-8 (valid Linux file names) never panic, run here or
/// forwarded to a running server.
#[test]
fn arguments_that_are_not_utf8_do_not_panic() {
    let a = Archive::initialised();
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9.txt");
    let folder = a.path("latin1");
    write_file(&folder.join(name), b"bytes");
    write_file(&folder.join("plain.txt"), b"plain");
    let check = |a: &Archive| {
        // The file itself: its name cannot be a key; a clear error.
        let out = a.command(&["add"]).arg(folder.join(name)).output().unwrap();
        assert_no_panic(&out);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(stderr(&out).contains("UTF-8"), "{}", stderr(&out));
        // Inside a folder: skipped and said so, the rest added.
        let out = a.command(&["add"]).arg(&folder).output().unwrap();
        assert_no_panic(&out);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stderr(&out).contains("UTF-8"), "{}", stderr(&out));
        // A key given as bytes: refused cleanly.
        let out = a.command(&["ls"]).arg(name).output().unwrap();
        assert_no_panic(&out);
        assert!(!out.status.success());
    };
    check(&a);
    // Forwarded to a running server: the same answers.
    fs::write(
        a.data_dir().join("net.json"),
        r#"{"mdns": false, "client_bind": "127.0.0.1:0"}"#,
    )
    .unwrap();
    let _server = crate::network::Serving::start(&a);
    check(&a);
}

/// Point 10: a database with damaged pages is reported as damaged by every command; none of
/// them panics inside redb.
#[test]
fn a_damaged_database_is_reported_not_a_panic() {
    let a = Archive::initialised();
    for i in 0..300 {
        write_file(
            &a.path(&format!("src/f{i}.txt")),
            format!("file {i}").as_bytes(),
        );
    }
    a.ok(&["add", a.path("src").to_str().unwrap()]);
    let db = a.data_dir().join("store.redb");
    let mut bytes = fs::read(&db).unwrap();
    let len = bytes.len();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for off in (8192..len).step_by(3 * 4096) {
        for b in &mut bytes[off + 100..(off + 300).min(len)] {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
    }
    fs::write(&db, bytes).unwrap();
    for args in [&["ls"][..], &["verify"], &["stats"], &["collections"]] {
        let out = a.run(args);
        assert!(
            !out.status.success(),
            "{args:?} succeeded on a damaged database"
        );
        let err = stderr(&out);
        assert!(
            err.contains("damaged") || err.contains("corrupt") || err.contains("Corrupted"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

/// Point 8: `init` on an existing empty folder makes it private (0700, files 0600), and
/// refuses a folder that holds other things.
#[test]
fn init_makes_the_folder_private_and_refuses_a_full_one() {
    let a = Archive::new();
    fs::create_dir_all(a.data_dir()).unwrap();
    fs::set_permissions(a.data_dir(), fs::Permissions::from_mode(0o755)).unwrap();
    a.ok(&["init"]);
    assert_eq!(mode(&a.data_dir()), 0o700);
    for file in ["store.redb", "FORMAT"] {
        assert_eq!(mode(&a.data_dir().join(file)), 0o600, "{file}");
    }
    for dir in ["packs", "tmp"] {
        assert_eq!(mode(&a.data_dir().join(dir)), 0o700, "{dir}");
    }
    // Pack files too.
    write_file(&a.path("big"), &vec![7u8; 100_000]);
    a.ok(&["add", a.path("big").to_str().unwrap()]);
    let pack = fs::read_dir(a.data_dir().join("packs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert_eq!(mode(&pack), 0o600);

    let b = Archive::new();
    write_file(&b.data_dir().join("my-notes.txt"), b"mine");
    let err = b.fails(&["init"]);
    assert!(err.contains("not empty"), "{err}");
    assert_eq!(
        fs::read(b.data_dir().join("my-notes.txt")).unwrap(),
        b"mine"
    );
}

/// Point 8: a data folder opened up to others, or owned by another user, is refused, and the
/// message names the fix.
#[test]
fn an_exposed_or_foreign_data_folder_is_refused() {
    let a = small_archive();
    fs::set_permissions(a.data_dir(), fs::Permissions::from_mode(0o755)).unwrap();
    let err = a.fails(&["ls"]);
    assert!(
        err.contains("open to other users") && err.contains("chmod 700"),
        "{err}"
    );
    fs::set_permissions(a.data_dir(), fs::Permissions::from_mode(0o700)).unwrap();
    a.ok(&["ls"]);
    std::os::unix::fs::chown(a.data_dir(), Some(1234), Some(1234)).unwrap();
    let err = a.fails(&["ls"]);
    assert!(err.contains("belongs to user id 1234"), "{err}");
}

/// Points 8 and 2: a store written by an earlier version (folder 0755, files 0644, poisoned
/// by a peer's entry dated u64::MAX) is made private on its first open; `archive doctor`
/// removes the far-future entries, keeps this server's own last write, and new writes win
/// again.
#[test]
fn an_earlier_versions_poisoned_store_is_tightened_and_repaired() {
    let a = Archive::from_fixture("store-f84b7b9-poisoned.tar.gz", "poisoned");
    assert_eq!(mode(&a.data_dir()), 0o755);
    // The first open tightens it.
    let listing = a.ok(&["ls"]);
    assert!(listing.contains("notes.txt"), "{listing}");
    assert_eq!(mode(&a.data_dir()), 0o700);
    assert_eq!(mode(&a.data_dir().join("store.redb")), 0o600);
    // ... and upgrades it to store format 2 (see `upgrade.rs`).
    assert_eq!(
        fs::read_to_string(a.data_dir().join("FORMAT")).unwrap(),
        "archive-store 2\n"
    );
    // Opened up again afterwards: refused.
    fs::set_permissions(a.data_dir(), fs::Permissions::from_mode(0o750)).unwrap();
    assert!(a.fails(&["ls"]).contains("chmod 700"));
    fs::set_permissions(a.data_dir(), fs::Permissions::from_mode(0o700)).unwrap();

    let doctor = a.json(&["doctor"]);
    assert_eq!(doctor["far_future_removed"], 2, "{doctor}");
    assert_eq!(doctor["own_rewritten"], 1, "{doctor}");
    assert!(
        doctor["clock_after_ms"].as_u64().unwrap() < 1 << 42,
        "{doctor}"
    );
    // This server's last write before the repair is what the view shows...
    assert_eq!(a.ok(&["get", "notes.txt"]), "version 2, lost\n");
    // ...and a new write wins, as does a removal.
    write_file(&a.path("v3"), b"version 3\n");
    a.ok(&["add", a.path("v3").to_str().unwrap(), "--as", "notes.txt"]);
    assert_eq!(a.ok(&["get", "notes.txt"]), "version 3\n");
    a.ok(&["rm", "notes.txt"]);
    assert!(!a.ok(&["ls"]).contains("notes.txt"));
    assert!(a.ok(&["verify"]).contains("all intact"));
}

/// Point 8: the CLI does not talk to a control socket another user planted in the folder.
#[test]
fn a_control_socket_of_another_user_is_not_used() {
    let a = small_archive();
    let socket = a.data_dir().join("control.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    std::os::unix::fs::lchown(&socket, Some(1234), Some(1234)).unwrap();
    let err = a.fails(&["ls"]);
    assert!(err.contains("refusing to use the control socket"), "{err}");
    assert!(err.contains("1234"), "{err}");
}

/// Point 8: even with its socket's permissions opened up, the server runs commands only for
/// its own user, root or its admin group (the kernel's peer credentials).
#[test]
fn the_server_refuses_other_users_on_its_control_socket() {
    let a = small_archive();
    fs::write(
        a.data_dir().join("net.json"),
        r#"{"mdns": false, "client_bind": "127.0.0.1:0"}"#,
    )
    .unwrap();
    let _server = crate::network::Serving::start(&a);
    // A misconfiguration lets others reach the socket.
    fs::set_permissions(a.data_dir(), fs::Permissions::from_mode(0o711)).unwrap();
    let socket = a.data_dir().join("control.sock");
    fs::set_permissions(&socket, fs::Permissions::from_mode(0o666)).unwrap();
    assert_eq!(fs::metadata(&socket).unwrap().uid(), 0);
    let out = as_other_user(&[
        "--data-dir".as_ref(),
        a.data_dir().as_os_str(),
        "ls".as_ref(),
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("refused a control connection from user id 1234"),
        "{}",
        stderr(&out)
    );
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Root is served.
    fs::set_permissions(a.data_dir(), fs::Permissions::from_mode(0o700)).unwrap();
    assert!(a.ok(&["ls"]).contains("b.txt"));
}

/// Point 12: `rm -r` with a prefix that trims to nothing is refused, not "remove everything".
#[test]
fn rm_recursive_of_an_empty_prefix_is_refused() {
    let a = small_archive();
    for prefix in ["", "/", "//"] {
        let err = a.fails(&["rm", "-r", prefix]);
        assert!(err.contains("names no key"), "{err}");
    }
    assert_eq!(a.json(&["ls"]).as_array().unwrap().len(), 2);
}

/// Point 12: an error says what failed once, not "X: X".
#[test]
fn errors_do_not_repeat_themselves() {
    let a = small_archive();
    for args in [
        vec!["get", "b.txt", "-o", "/nonexistent/dir/out"],
        vec!["export", "/proc/no-such-dir/out"],
    ] {
        let err = a.fails(&args);
        let line = err
            .lines()
            .find(|l| l.starts_with("archive: error:"))
            .unwrap();
        let parts: Vec<&str> = line.split(": ").collect();
        for w in parts.windows(2) {
            assert_ne!(w[0], w[1], "repeated in {line:?}");
        }
        let os = "(os error 2)";
        assert_eq!(line.matches(os).count(), 1, "{line}");
    }
}

/// Point 12: a data folder this user cannot read says so (it used to say "cannot reach the
/// server").
#[test]
fn an_unreadable_data_folder_says_whose_it_is() {
    let a = small_archive();
    let out = as_other_user(&[
        "--data-dir".as_ref(),
        a.data_dir().as_os_str(),
        "ls".as_ref(),
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("belongs to user id 0"), "{err}");
    assert!(!err.contains("cannot reach the server"), "{err}");
}

/// Review finding: a FIFO where a file goes (a local user can make one in a shared folder) is
/// skipped and reported; the export neither blocks on it nor writes to it.
#[test]
fn a_fifo_in_dest_does_not_block_export() {
    let a = small_archive();
    let dest = a.path("dest");
    fs::create_dir_all(&dest).unwrap();
    let fifo = dest.join("b.txt");
    let status = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());
    let out = a.run(&["export", dest.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("skipped `b.txt`"), "{}", stderr(&out));
    assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
    assert_eq!(
        fs::read(dest.join("docs/new.txt")).unwrap(),
        b"new document\n"
    );
}
