//! Servers as real processes on 127.0.0.1: pairing, `serve`, `sync`, `diff --peer`, and
//! commands forwarded to a running server.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{pseudo_random, read_tree, write_file, Archive};

/// Loopback only, no mDNS: tests must not talk to the host's network.
const SETTINGS: &str =
    "[network]\nmdns = false\nclient_bind = \"127.0.0.1:0\"\ntimeout = \"10s\"\n";

fn server_store() -> Archive {
    let a = Archive::initialised();
    std::fs::write(a.data_dir().join("archive.toml"), SETTINGS).unwrap();
    a
}

/// A running `archive serve`; killed on drop.
pub(crate) struct Serving {
    child: Child,
    ticket: String,
    /// The web UI's address (`http://127.0.0.1:PORT/`).
    web: Option<String>,
    /// What it printed before serving.
    printed: String,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serving {
    /// `archive serve` on loopback ports the system picks (peers and the web UI).
    pub(crate) fn start(a: &Archive) -> Serving {
        Serving::spawn(a.command(&["serve", "--bind", "127.0.0.1:0", "--http", "127.0.0.1:0"]))
    }

    /// Runs `serve_command` (an `archive serve`) and waits until it serves.
    pub(crate) fn spawn(mut serve_command: std::process::Command) -> Serving {
        let mut child = serve_command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let log = stderr.clone();
        std::thread::spawn(move || {
            let mut line = String::new();
            while err.read_line(&mut line).unwrap_or(0) > 0 {
                log.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut ticket = None;
        let mut web = None;
        let mut printed = String::new();
        let mut line = String::new();
        while out.read_line(&mut line).unwrap() > 0 {
            if let Some(t) = line.strip_prefix("ticket: ") {
                ticket = Some(t.trim().to_owned());
            }
            printed.push_str(&line);
            if let Some(w) = line.strip_prefix("web:") {
                web.get_or_insert_with(|| w.split_whitespace().next().unwrap_or("").to_owned());
            }
            if line.starts_with("(stop") {
                break;
            }
            line.clear();
        }
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        let ticket = ticket.unwrap_or_else(|| panic!("no ticket: {}", stderr.lock().unwrap()));
        Serving {
            child,
            ticket,
            web,
            printed,
            stderr,
        }
    }

    /// The server's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The ticket it printed (id and addresses).
    pub(crate) fn ticket(&self) -> &str {
        &self.ticket
    }

    /// Everything it printed on stdout up to "(stop with Ctrl-C)".
    pub(crate) fn printed(&self) -> &str {
        &self.printed
    }

    /// The web UI's address, as printed (`http://IP:PORT/`).
    pub(crate) fn web(&self) -> &str {
        self.web
            .as_deref()
            .expect("the server printed its web address")
    }

    pub(crate) fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

pub(crate) fn id_of(a: &Archive) -> String {
    a.json(&["id"])["id"].as_str().unwrap().to_owned()
}

#[test]
fn two_servers_pair_sync_and_converge() {
    let a = server_store();
    let b = server_store();
    // 1,999 small files and one of 50 MiB.
    let tree = a.path("tree");
    for i in 0..1999u64 {
        write_file(
            &tree.join(format!("d{}/f{i}.txt", i % 40)),
            &pseudo_random(200 + (i as usize * 37) % 3000, i),
        );
    }
    let mut big = pseudo_random(50 * 1024 * 1024, 7);
    write_file(&tree.join("big.bin"), &big);
    a.ok(&["add", tree.to_str().unwrap(), "--as", ""]);

    let server = Serving::start(&a);
    assert!(server.ticket.starts_with("archive1"));
    // Whoever can connect to the control socket runs commands as the server: owner only.
    let socket = std::fs::metadata(a.data_dir().join("control.sock")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&socket.permissions()) & 0o777,
        0o600
    );
    // Commands on A now go through its server (the store is locked by it).
    let b_id = id_of(&b);
    a.ok(&["peer", "add", &b_id, "--name", "b"]);
    b.ok(&["peer", "add", &server.ticket, "--name", "a"]);
    let peers = b.json(&["peer", "ls"]);
    assert_eq!(peers[0]["name"], "a");

    let first = b.json(&["sync", "a"]);
    assert_eq!(first["entries_received"], 2000, "{first}");
    assert_eq!(first["entries_sent"], 0);
    assert_eq!(first["fast_path"], false, "no agreement yet: {first}");
    assert!(first["bytes_received"].as_u64().unwrap() >= 50 * 1024 * 1024);
    b.ok(&["export", b.path("out").to_str().unwrap()]);
    assert!(
        read_tree(&b.path("out")) == read_tree(&tree),
        "B's export differs from A's tree"
    );

    // Change 1 MiB inside the big file and 10 small files on A (through its server).
    big[20 * 1024 * 1024..21 * 1024 * 1024].copy_from_slice(&pseudo_random(1024 * 1024, 99));
    write_file(&tree.join("big.bin"), &big);
    for i in 0..10u64 {
        write_file(
            &tree.join(format!("d{}/f{i}.txt", i % 40)),
            &pseudo_random(500, 1000 + i),
        );
    }
    a.ok(&["add", tree.to_str().unwrap(), "--as", ""]);
    let diff = b.json(&["diff", "--peer", "a"]);
    assert_eq!(diff["they_have"]["entries"], 11, "{diff}");
    assert_eq!(diff["we_have"]["entries"], 0, "{diff}");
    let second = b.json(&["sync", "a"]);
    assert_eq!(second["entries_received"], 11, "{second}");
    let received = second["bytes_received"].as_u64().unwrap();
    assert!(
        received <= 5 * 1024 * 1024,
        "received {received} bytes for a 1 MiB change"
    );
    b.ok(&["export", b.path("out2").to_str().unwrap()]);
    assert!(read_tree(&b.path("out2")) == read_tree(&tree));

    // Afterwards neither side has anything the other lacks, and a sync moves nothing.
    let diff = b.json(&["diff", "--peer", "a"]);
    assert_eq!(diff["they_have"]["entries"], 0, "{diff}");
    assert_eq!(diff["we_have"]["entries"], 0, "{diff}");
    let third = b.json(&["sync", "a"]);
    assert_eq!(third["entries_received"], 0);
    assert_eq!(third["round_trips"], 1, "{third}");
    assert_eq!(third["fast_path"], true, "{third}");
    // A's store verifies clean, through its server.
    a.ok(&["verify"]);
    b.ok(&["verify"]);
}

/// Every file and empty folder under `root` with its permission bits and modification time
/// (to the nanosecond), as `find` prints them.
fn times_and_modes(root: &std::path::Path) -> String {
    let out = std::process::Command::new("find")
        .arg(".")
        .args(["(", "-type", "f", "-o", "-type", "d", "-empty", ")"])
        .args(["-printf", "%P %y %m %T@\\n"])
        .current_dir(root)
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut lines: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    lines.sort();
    lines.join("\n")
}

fn set_times_and_mode(path: &std::path::Path, secs: u64, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let when = std::time::UNIX_EPOCH + Duration::new(secs, 250_000_000);
    std::fs::File::open(path)
        .unwrap()
        .set_times(std::fs::FileTimes::new().set_modified(when))
        .unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn times_modes_and_empty_folders_come_back_locally_and_after_a_sync() {
    let a = server_store();
    let b = server_store();
    let tree = a.path("tree");
    write_file(&tree.join("bin/build.sh"), b"#!/bin/sh\nmake\n");
    set_times_and_mode(&tree.join("bin/build.sh"), 1_000_000_000, 0o755);
    write_file(&tree.join("docs/old.txt"), b"written long ago");
    set_times_and_mode(&tree.join("docs/old.txt"), 400_000_000, 0o640);
    for empty in ["inbox", "photos/2026/summer"] {
        std::fs::create_dir_all(tree.join(empty)).unwrap();
        set_times_and_mode(&tree.join(empty), 1_500_000_000, 0o750);
    }
    let expected = times_and_modes(&tree);
    assert_eq!(expected.lines().count(), 4, "{expected}");
    let added = a.json(&["add", tree.to_str().unwrap(), "--as", ""]);
    assert_eq!(added["folders_added"], 2, "{added}");

    let diff_r = |x: &std::path::Path, y: &std::path::Path| {
        let out = std::process::Command::new("diff")
            .arg("-r")
            .args([x, y])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "diff -r: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    };
    // Locally.
    let local = a.path("local-export");
    a.ok(&["export", local.to_str().unwrap()]);
    diff_r(&tree, &local);
    assert_eq!(times_and_modes(&local), expected);

    // After a sync, on the other server.
    let server = Serving::start(&a);
    a.ok(&["peer", "add", &id_of(&b), "--name", "b"]);
    b.ok(&["peer", "add", server.ticket(), "--name", "a"]);
    let synced = b.json(&["sync", "a"]);
    assert_eq!(synced["entries_received"], 4, "{synced}");
    let remote = b.path("synced-export");
    b.ok(&["export", remote.to_str().unwrap()]);
    diff_r(&tree, &remote);
    assert_eq!(times_and_modes(&remote), expected);

    // `get -o` of one file, too.
    let one = b.path("build.sh");
    b.ok(&["get", "bin/build.sh", "-o", one.to_str().unwrap()]);
    let meta = std::fs::metadata(&one).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o755
    );
    assert_eq!(
        meta.modified().unwrap(),
        std::time::UNIX_EPOCH + Duration::new(1_000_000_000, 250_000_000)
    );
}

#[test]
fn unpaired_servers_are_refused_on_both_sides() {
    let a = server_store();
    let c = server_store();
    let server = Serving::start(&a);
    c.ok(&["peer", "add", &server.ticket, "--name", "a"]);
    let err = c.fails(&["sync", "a"]);
    assert!(err.contains("not paired"), "{err}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !server.log().contains("unpaired") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        server.log().contains("unpaired"),
        "server log: {}",
        server.log()
    );

    // Paired for reading only: a pull works, a push is refused.
    let c_id = id_of(&c);
    a.ok(&["peer", "add", &c_id, "--name", "c", "--write", ""]);
    write_file(&c.path("x"), b"from c");
    c.ok(&["add", c.path("x").to_str().unwrap()]);
    a.ok(&["add", c.path("x").to_str().unwrap(), "--as", "y"]);
    let pulled = c.json(&["sync", "a", "--pull"]);
    assert_eq!(pulled["entries_received"], 1, "{pulled}");
    let err = c.fails(&["sync", "a", "--push"]);
    assert!(err.contains("may not write"), "{err}");
    let keys = a.json(&["ls"]);
    assert_eq!(keys.as_array().unwrap().len(), 1, "C's push landed: {keys}");
    assert!(server.log().contains("may not write"), "{}", server.log());
    let peers = a.json(&["peer", "ls"]);
    assert_eq!(peers[0]["write"], serde_json::json!([]));
    a.ok(&["peer", "rm", "c"]);
    let err = c.fails(&["sync", "a", "--pull"]);
    assert!(err.contains("not paired"), "{err}");
}

#[test]
fn an_interrupted_sync_resumes_without_refetching_verified_bytes() {
    let a = server_store();
    let b = server_store();
    let tree = a.path("tree");
    for i in 0..3u64 {
        write_file(
            &tree.join(format!("big{i}.bin")),
            &pseudo_random(40 * 1024 * 1024, 50 + i),
        );
    }
    a.ok(&["add", tree.to_str().unwrap(), "--as", ""]);
    let server = Serving::start(&a);
    a.ok(&["peer", "add", &id_of(&b), "--name", "b"]);
    b.ok(&["peer", "add", &server.ticket, "--name", "a"]);

    // Kill the client as soon as its first blobs are stored.
    let mut child = b
        .command(&["sync", "a", "--json"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let packs = b.data_dir().join("packs");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // At least 64 average chunks' worth of bytes appended to packs.
        let stored = pack_bytes(&packs);
        if stored >= 64 * 256 * 1024 || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the sync finished before it could be interrupted"
    );

    let before = b.json(&["stats"]);
    let kept = before["stored_bytes"].as_u64().unwrap();
    assert!(
        kept > 0,
        "nothing was kept from the interrupted sync: {before}"
    );
    assert_eq!(
        before["entries"], 0,
        "entries became visible before their content"
    );
    b.ok(&["verify"]);

    let second = b.json(&["sync", "a"]);
    assert_eq!(second["entries_received"], 3, "{second}");
    let received = second["bytes_received"].as_u64().unwrap();
    let total = 3 * 40 * 1024 * 1024u64;
    // Blob encodings carry 0.4 % of hash tree; entries and manifests a few KiB.
    assert!(
        received <= (total - kept) + total / 200,
        "received {received} bytes after keeping {kept} of {total}"
    );
    b.ok(&["export", b.path("out").to_str().unwrap()]);
    assert!(read_tree(&b.path("out")) == read_tree(&tree));
}

fn pack_bytes(dir: &std::path::Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}
