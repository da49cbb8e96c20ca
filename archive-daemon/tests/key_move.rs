//! `archive key export | import`: a server's identity moved to a new data folder (a new SD
//! card) with a passphrase, through the real binary; wrong passphrases, changed files and
//! existing stores are refused and nothing is created or overwritten.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

use crate::harness::Archive;

const PASSPHRASE: &str = "a long passphrase for the key";

/// `archive key ARGS` with `passphrase` on stdin: success and stderr.
fn key(a: &Archive, args: &[&str], passphrase: &str) -> (bool, String) {
    let mut all = vec!["key"];
    all.extend_from_slice(args);
    let out = a.run_with_input(&all, format!("{passphrase}\n").as_bytes());
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_servers_key_moves_to_a_new_data_folder_with_its_passphrase_only() {
    let a = Archive::initialised();
    let id = a.json(&["id"])["id"].as_str().unwrap().to_owned();
    let status = a.json(&["status"]);
    assert_eq!(
        (status["serving"].clone(), status["id"].clone()),
        (serde_json::json!(false), serde_json::json!(id))
    );
    assert!(a.ok(&["status"]).contains("not running"));
    let file = a.path("server.key");
    let file_str = file.to_str().unwrap();

    // A passphrase too short writes nothing.
    let (ok, err) = key(&a, &["export", file_str], "short");
    assert!(!ok && err.contains("at least 12 bytes"), "{err}");
    assert!(!file.exists());
    let (ok, err) = key(&a, &["export", file_str], PASSPHRASE);
    assert!(ok, "{err}");
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.len(), 101);
    let sealed = std::fs::read(&file).unwrap();
    // Never over an existing file.
    let (ok, err) = key(&a, &["export", file_str], PASSPHRASE);
    assert!(!ok && err.contains("must not exist"), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), sealed);

    // The new disk: wrong passphrase, a changed byte, a file that is not a key: refused,
    // and no store is created.
    let b = Archive::new();
    let (ok, err) = key(&b, &["import", file_str], "not the passphrase at all");
    assert!(!ok && err.contains("wrong passphrase"), "{err}");
    let changed = a.path("changed.key");
    let mut bytes = sealed.clone();
    bytes[80] ^= 1;
    std::fs::write(&changed, &bytes).unwrap();
    let (ok, err) = key(&b, &["import", changed.to_str().unwrap()], PASSPHRASE);
    assert!(
        !ok && err.contains("wrong passphrase, or the key file was changed"),
        "{err}"
    );
    let (ok, err) = key(
        &b,
        &["import", a.path("nosuch").to_str().unwrap()],
        PASSPHRASE,
    );
    assert!(!ok && err.contains("cannot read"), "{err}");
    let not_a_key = a.path("notes.txt");
    std::fs::write(&not_a_key, b"hello").unwrap();
    let (ok, err) = key(&b, &["import", not_a_key.to_str().unwrap()], PASSPHRASE);
    assert!(!ok && err.contains("not an archive key file"), "{err}");
    assert!(!b.data_dir().join("FORMAT").exists(), "no store made");

    // The right passphrase: the same server.
    let (ok, err) = key(&b, &["import", file_str], PASSPHRASE);
    assert!(ok, "{err}");
    assert_eq!(b.json(&["id"])["id"].as_str().unwrap(), id);
    assert!(b.ok(&["verify"]).contains("all intact"));
    // Not into a store that exists: that would change a server's identity under its data.
    let (ok, err) = key(&a, &["import", file_str], PASSPHRASE);
    assert!(!ok && err.contains("holds a store already"), "{err}");
    assert_eq!(a.json(&["id"])["id"].as_str().unwrap(), id);
}

#[test]
fn a_running_server_exports_its_key_where_the_client_stands() {
    let a = Archive::initialised();
    std::fs::write(
        a.data_dir().join("net.json"),
        r#"{"mdns": false, "client_bind": "127.0.0.1:0"}"#,
    )
    .unwrap();
    let _server = crate::network::Serving::start(&a);
    let out_dir = a.path("usb");
    std::fs::create_dir_all(&out_dir).unwrap();
    let mut child = a
        .command(&["key", "export", "server.key"])
        .current_dir(&out_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{PASSPHRASE}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::metadata(out_dir.join("server.key")).unwrap().len(),
        101
    );
}
