//! Scheduled syncs (`[[sync]]` in archive.toml) between two real servers on 127.0.0.1: they
//! run at their time without a command, back off while the peer is down, complete once it is
//! back, and sync at once when a failing peer connects.

use std::time::{Duration, Instant};

use crate::harness::{pseudo_random, write_file, Archive};
use crate::network::Serving;

/// Loopback only, no mDNS, and a schedule (TOML tables) after the network settings.
fn settings(schedule: &str) -> String {
    format!(
        "[network]\nmdns = false\nclient_bind = \"127.0.0.1:0\"\ntimeout = \"5s\"\n\n{schedule}"
    )
}

fn store_with(schedule: &str) -> Archive {
    let a = Archive::initialised();
    std::fs::write(a.data_dir().join("archive.toml"), settings(schedule)).unwrap();
    a
}

/// A UDP port on 127.0.0.1 free now (B restarts on the same address).
fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn serve_on(a: &Archive, port: u16) -> Serving {
    let bind = format!("127.0.0.1:{port}");
    Serving::spawn(a.command(&["serve", "--bind", &bind, "--http", "127.0.0.1:0"]))
}

/// A's record of its last sync of `collection` with `peer`, and its schedules with that
/// peer, from `archive status --json`.
fn status_of(a: &Archive, peer: &str, collection: &str) -> (serde_json::Value, serde_json::Value) {
    let status = a.json(&["status"]);
    let p = status["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == peer)
        .unwrap_or_else(|| panic!("no peer {peer}: {status}"))
        .clone();
    let record = p["syncs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["collection"] == collection)
        .cloned()
        .unwrap_or(serde_json::Value::Null);
    (record, p["schedules"].clone())
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "waited {limit:?} for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// B with 30 files in `docs`, served on a fixed port; A paired with it (by ticket) and B
/// with A (by id). Returns B's server and port.
fn pair(a: &Archive, b: &Archive) -> (Serving, u16) {
    let tree = b.path("docs");
    for i in 0..30u64 {
        write_file(&tree.join(format!("f{i}.txt")), &pseudo_random(2000, i));
    }
    b.ok(&["add", tree.to_str().unwrap(), "-c", "docs", "--as", ""]);
    let port = free_port();
    let server = serve_on(b, port);
    a.ok(&["peer", "add", server.ticket(), "--name", "b"]);
    let a_id = a.json(&["id"])["id"].as_str().unwrap().to_owned();
    b.ok(&["peer", "add", &a_id, "--name", "a"]);
    (server, port)
}

#[test]
fn a_scheduled_sync_runs_backs_off_while_the_peer_is_down_and_completes_when_it_returns() {
    let a = store_with(
        "[[sync]]\npeer = \"b\"\ncollections = [\"docs\"]\nevery = \"3s\"\nretry = \"1s\"\n",
    );
    let b = store_with("");
    let (b_server, b_port) = pair(&a, &b);
    drop(b_server);

    let a_server = Serving::start(&a);
    // Without any command, A tries, fails, and backs off: the next try waits longer after
    // each failure (1 s, 2 s, 4 s ...), as status shows.
    let mut seen = 0;
    wait_for("two failures in a row", Duration::from_secs(90), || {
        let (record, _) = status_of(&a, "b", "docs");
        seen = record["failures"].as_u64().unwrap_or(0);
        seen >= 2
    });
    let (record, schedules) = status_of(&a, "b", "docs");
    assert!(record["error"].is_string(), "{record}");
    assert!(record["last_success_at"].is_null(), "{record}");
    let failures = record["failures"].as_u64().unwrap();
    let wait = schedules[0]["next_at"].as_u64().unwrap() - record["at"].as_u64().unwrap();
    let backoff = 1000 * (1u64 << (failures - 1)).min(3);
    assert!(
        wait + 50 >= backoff,
        "after {failures} failures the next try is {wait} ms later, not {backoff}"
    );
    assert!(
        !a.ok(&["collections"]).contains("docs"),
        "nothing arrived from a server that is down"
    );
    let text = a.ok(&["status"]);
    assert!(text.contains("schedule: docs every 3s"), "{text}");
    assert!(text.contains("docs: failed"), "{text}");
    assert!(text.contains("never completed"), "{text}");

    // B returns on the same address: A's schedule completes without a command.
    let _b_server = serve_on(&b, b_port);
    wait_for(
        "the scheduled sync to complete",
        Duration::from_secs(60),
        || status_of(&a, "b", "docs").0["error"].is_null(),
    );
    let (record, _) = status_of(&a, "b", "docs");
    assert_eq!(record["entries_received"], 30, "{record}");
    assert_eq!(record["failures"], 0, "{record}");
    assert_eq!(record["last_success_at"], record["at"], "{record}");
    assert_eq!(a.ok(&["ls", "-c", "docs"]).lines().count(), 30);
    // And it keeps its time: a file added on B arrives by the next run.
    write_file(&b.path("late.txt"), b"late");
    b.ok(&["add", b.path("late.txt").to_str().unwrap(), "-c", "docs"]);
    wait_for("the next scheduled run", Duration::from_secs(30), || {
        a.ok(&["ls", "-c", "docs"]).contains("late.txt")
    });
    assert!(
        a_server.log().contains("scheduled sync of `docs` with `b`"),
        "{}",
        a_server.log()
    );
}

#[test]
fn a_failing_schedule_syncs_at_once_when_its_peer_connects() {
    // A retries only after an hour: only the peer's arrival can explain a prompt sync.
    let a = store_with(
        "[[sync]]\npeer = \"b\"\ncollections = [\"docs\"]\nevery = \"6h\"\nretry = \"1h\"\n",
    );
    let b = store_with("");
    let (b_server, b_port) = pair(&a, &b);
    drop(b_server);
    let a_server = Serving::start(&a);
    wait_for("the first failure", Duration::from_secs(60), || {
        status_of(&a, "b", "docs").0["failures"] == 1
    });
    let _b_server = serve_on(&b, b_port);
    // B connects to A (its own sync of another collection, through its server).
    b.ok(&["peer", "rm", "a"]);
    b.ok(&["peer", "add", a_server.ticket(), "--name", "a"]);
    b.ok(&["sync", "a", "-c", "other"]);
    wait_for("the sync on reconnection", Duration::from_secs(30), || {
        status_of(&a, "b", "docs").0["error"].is_null()
    });
    assert_eq!(status_of(&a, "b", "docs").0["entries_received"], 30);
    assert!(
        a_server.log().contains("peer `b` is back"),
        "{}",
        a_server.log()
    );
}

#[test]
fn bad_schedules_and_settings_are_refused_with_the_line_at_fault() {
    let a = Archive::initialised();
    let cases = [
        (
            "[[sync]]\npeer = \"b\"\ncollections = [\"docs\"]\n",
            "needs `every`",
        ),
        (
            "[[sync]]\npeer = \"b\"\ncollections = [\"docs\"]\nwindow = \"1am-5am\"\n",
            "01:00-05:00",
        ),
        (
            "[[sync]]\npeer = \"b\"\ncollections = [\"docs\"]\nevery = \"often\"\n",
            "`often`",
        ),
        ("[web]\nhttp = \"everywhere\"\n", "http"),
        ("[network]\nmdns = \"yes\"\n", "mdns"),
        ("[quotas]\nperson = \"lots\"\n", "lots"),
        ("\u{0}\u{ff}garbage", "archive.toml"),
    ];
    for (text, says) in cases {
        std::fs::write(a.data_dir().join("archive.toml"), text).unwrap();
        let err = a.fails(&["serve", "--bind", "127.0.0.1:0", "--http", "127.0.0.1:0"]);
        assert!(err.contains(says), "{text:?}: {err}");
        let err = a.fails(&["config"]);
        assert!(err.contains(says), "{text:?}: {err}");
    }
    // Too large a file is refused unread.
    std::fs::write(a.data_dir().join("archive.toml"), vec![b'#'; 2 << 20]).unwrap();
    assert!(a.fails(&["config"]).contains("larger than 1 MiB"));
    // A good one prints back in effect, with where it comes from.
    std::fs::write(
        a.data_dir().join("archive.toml"),
        "[[sync]]\npeer = \"b\"\ncollections = [\"docs\"]\nwindow = \"01:00-05:00\"\nmax_rate = \"64 KiB\"\n",
    )
    .unwrap();
    let shown = a.ok(&["config"]);
    assert!(shown.contains("archive.toml"), "{shown}");
    assert!(shown.contains("window = \"01:00-05:00\""), "{shown}");
    assert!(shown.contains("max_rate = \"64 KiB\""), "{shown}");
    // A schedule with a peer that is not paired is shown as such, not an error.
    let status = a.ok(&["status"]);
    assert!(status.contains("schedule with `b`: not paired"), "{status}");
    // `--config` names a file elsewhere, whose data_dir says where the store is.
    let elsewhere = a.path("etc-archive.toml");
    std::fs::write(
        &elsewhere,
        format!(
            "data_dir = \"{}\"\nlog_level = \"warn\"\n",
            a.data_dir().display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(crate::harness::BIN)
        .args(["--config", elsewhere.to_str().unwrap(), "config"])
        .env_remove("ARCHIVE_DIR")
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(shown.contains("log_level = \"warn\""), "{shown}");
    let out = std::process::Command::new(crate::harness::BIN)
        .args(["--config", elsewhere.to_str().unwrap(), "id"])
        .env_remove("ARCHIVE_DIR")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        a.ok(&["id"]),
        "the store named by data_dir"
    );
}
