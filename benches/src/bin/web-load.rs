//! The community server's web UI under load: `CLIENTS` browsers hold a room's live feed
//! (server-sent events) while `RATE` messages a second are sent to the room through the
//! JSON API. Reports the delivery latency (send call started -> event read by each client;
//! it includes the durable write), the daemon's memory (VmRSS of the real `archive serve`
//! process) and, afterwards, each page's weight and time to first byte; then the files and
//! archive pages: an archive folder as a zip stream, and a large file up in parts and down
//! again beside a plain static file server (`python3 -m http.server`) and the disk.
//!
//! ```text
//! cargo build --release -p archive-daemon
//! cargo run --release -p archive-benches --features web --bin web-load -- \
//!     [--clients 200] [--rate 50] [--seconds 30] [--archive target/release/archive]
//! ```
//! Each client connects from its own loopback address (127.0.0.2, .3, ...), as phones on a
//! Wi-Fi do, so the server's per-address limits apply as they would. Clients are threads of
//! this process sharing the machine's two cores with the server: they read each event only
//! as far as the send time in its text.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use test_support::http::Client;

#[derive(Debug, Parser)]
#[command(about = "The web UI's live feed under load: latency, memory, page weight")]
struct Args {
    /// Browsers holding the room's live feed.
    #[arg(long, default_value_t = 200)]
    clients: usize,
    /// Messages sent to the room per second.
    #[arg(long, default_value_t = 50)]
    rate: u32,
    /// How long messages are sent.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Size of the file uploaded and downloaded through the files page, in MiB.
    #[arg(long, default_value_t = 256)]
    file_mib: usize,
    /// Files in the archive collection whose pages, diff and zip are measured.
    #[arg(long, default_value_t = 2000)]
    archive_files: usize,
    /// The `archive` binary (build it with `cargo build --release -p archive-daemon`).
    #[arg(long, default_value = "target/release/archive")]
    archive: PathBuf,
}

const PASSWORD: &str = "a long enough password";

/// A client from 127.0.0.`last`.
fn client(server: SocketAddr, last: u8) -> Client {
    Client::from_addr(server, IpAddr::from([127, 0, 0, last]))
}

/// A JSON call that must succeed; its answer.
fn call(
    c: &mut Client,
    csrf: &str,
    method: &str,
    path: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    let reply = c.api(method, path, csrf, &body);
    assert!(
        reply.status < 300,
        "{method} {path}: {} {}",
        reply.status,
        reply.text()
    );
    serde_json::from_slice(&reply.body).unwrap_or(serde_json::Value::Null)
}

fn user_add(archive: &PathBuf, dir: &std::path::Path, name: &str, admin: bool) {
    let mut c = Command::new(archive);
    c.arg("--data-dir").arg(dir).args(["user", "add", name]);
    if admin {
        c.arg("--admin");
    }
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    assert!(child.wait().unwrap().success(), "user add {name}");
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let args = Args::parse();
    assert!(
        args.clients <= 240,
        "at most 240 clients (one loopback address each)"
    );
    assert!(
        args.archive.exists(),
        "{} is missing: cargo build --release -p archive-daemon",
        args.archive.display()
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let status = Command::new(&args.archive)
        .arg("--data-dir")
        .arg(&dir)
        .arg("init")
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::write(dir.join("net.json"), r#"{"mdns": false}"#).unwrap();
    let mut child = Command::new(&args.archive)
        .arg("--data-dir")
        .arg(&dir)
        .args(["serve", "--bind", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut web = None;
    let mut line = String::new();
    while out.read_line(&mut line).unwrap() > 0 {
        if let Some(w) = line.strip_prefix("web:") {
            web = Some(
                w.trim()
                    .trim_start_matches("http://")
                    .trim_end_matches('/')
                    .to_owned(),
            );
        }
        if line.starts_with("(stop") {
            break;
        }
        line.clear();
    }
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    let server = Server(child);
    let pid = server.0.id();
    let addr: SocketAddr = web.expect("the server's web address").parse().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let rss_started = rss_kib(pid);

    user_add(&args.archive, &dir, "ana", true);
    user_add(&args.archive, &dir, "reader", false);
    let mut ana = client(addr, 1);
    let ana_csrf = ana.sign_in("ana", PASSWORD);
    // The messages come from ten addresses (people on the Wi-Fi), each within the server's
    // per-address request rate; as an admin, Ana is not paced by the messenger.
    let mut senders: Vec<(Client, String)> = (0..10)
        .map(|i| {
            let mut c = client(addr, 230 + i);
            let csrf = c.sign_in("ana", PASSWORD);
            (c, csrf)
        })
        .collect();
    let room = call(
        &mut ana,
        &ana_csrf,
        "POST",
        "/api/rooms",
        serde_json::json!({"name": "load", "topic": "the feed under load"}),
    );
    let room = room["id"].as_str().unwrap().to_owned();

    // The readers sign in (one address each) and open the room's feed.
    let start = Instant::now();
    let received = Arc::new(Mutex::new(Vec::<f64>::new()));
    let events = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    let ready = Arc::new(AtomicU64::new(0));
    for i in 0..args.clients {
        let mut reader_client = client(addr, 2 + i as u8);
        reader_client.sign_in("reader", PASSWORD);
        let (status, mut reader) = reader_client.events(&format!("/api/rooms/{room}/events"), &[]);
        assert_eq!(status, 200, "the live feed");
        reader
            .get_ref()
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let (received, events, done, ready) = (
            received.clone(),
            events.clone(),
            done.clone(),
            ready.clone(),
        );
        readers.push(std::thread::spawn(move || {
            let mut line = String::new();
            ready.fetch_add(1, Ordering::Relaxed);
            let mut mine = Vec::new();
            loop {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(_) if done.load(Ordering::Relaxed) => break,
                    Err(_) => continue,
                }
                if !line.starts_with("data:") {
                    continue;
                }
                let Some(at) = line.find("\"text\":\"load t=") else {
                    continue;
                };
                let digits: String = line[at + 15..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                if let Ok(sent_us) = digits.parse::<u64>() {
                    let now_us = start.elapsed().as_micros() as u64;
                    mine.push(now_us.saturating_sub(sent_us) as f64 / 1000.0);
                    events.fetch_add(1, Ordering::Relaxed);
                }
            }
            received.lock().unwrap().extend(mine);
        }));
    }
    while ready.load(Ordering::Relaxed) < args.clients as u64 {
        std::thread::sleep(Duration::from_millis(10));
    }
    let rss_connected = rss_kib(pid);

    // Memory, sampled while messages flow.
    let peak = Arc::new(AtomicU64::new(0));
    let sampling = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };

    // The sender: RATE messages a second, each carrying its send time.
    let total = args.rate as u64 * args.seconds;
    let every = Duration::from_secs_f64(1.0 / f64::from(args.rate));
    let mut send_ms = Vec::new();
    let sending = Instant::now();
    for n in 0..total {
        let due = sending + every * n as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let t = start.elapsed().as_micros();
        let began = Instant::now();
        let (sender, csrf) = &mut senders[n as usize % 10];
        call(
            sender,
            csrf,
            "POST",
            &format!("/api/rooms/{room}/messages"),
            serde_json::json!({"text": format!("load t={t} message {n} of the load test, a line of ordinary length")}),
        );
        send_ms.push(began.elapsed().as_secs_f64() * 1000.0);
    }
    let sent_in = sending.elapsed().as_secs_f64();
    // Until every client has every event, or 10 s.
    let expected = total * args.clients as u64;
    let deadline = Instant::now() + Duration::from_secs(10);
    while events.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let rss_end = rss_kib(pid);
    done.store(true, Ordering::Relaxed);
    sampling.join().unwrap();

    // The archive: a collection of small files added through the running server, two
    // snapshots with 5% of the files changed between them.
    let library = tmp.path().join("library");
    for i in 0..args.archive_files {
        let path = library.join(format!("docs/{:02}/{i:05}.txt", i % 20));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, format!("document {i}\n").repeat(100 + i % 50)).unwrap();
    }
    let cli = |args_: &[&str]| {
        let status = Command::new(&args.archive)
            .arg("--data-dir")
            .arg(&dir)
            .args(args_)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "{args_:?}");
    };
    let lib = library.to_str().unwrap();
    cli(&["add", "-c", "library", "--as", "", lib]);
    cli(&["snapshot", "-c", "library", "v1"]);
    for i in (0..args.archive_files).step_by(20) {
        let path = library.join(format!("docs/{:02}/{i:05}.txt", i % 20));
        std::fs::write(&path, format!("changed {i}\n")).unwrap();
    }
    cli(&["add", "-c", "library", "--as", "", lib]);
    cli(&["snapshot", "-c", "library", "v2"]);

    // Pages: weight and time to first byte (median of 20), as Ana, after the load.
    let mut pages = Vec::new();
    for (page_index, (name, path)) in [
        ("sign-in", "/login".to_owned()),
        ("rooms", "/rooms".to_owned()),
        ("room (its 50 latest messages)", format!("/rooms/{room}")),
        ("search", "/search?q=ordinary".to_owned()),
        ("admin", "/admin".to_owned()),
        ("files (community)", "/files/community".to_owned()),
        ("archive", "/archive".to_owned()),
        (
            "archive folder (100 files)",
            "/archive/c?c=library&folder=docs/07".to_owned(),
        ),
        (
            "archive diff v1 -> v2",
            "/archive/diff?c=library&from=v1&to=v2".to_owned(),
        ),
        ("archive find", "/archive/find?c=library&q=00042".to_owned()),
        ("peers", "/peers".to_owned()),
        ("script", "/app.js".to_owned()),
    ]
    .into_iter()
    .enumerate()
    {
        let mut ttfbs = Vec::new();
        let mut bytes = 0;
        for _ in 0..20 {
            // Each page from its own address: 20 requests each stay under the rate limit.
            let mut c = client(addr, 240 + page_index as u8);
            if name != "sign-in" {
                c.cookies = ana.cookies.clone();
            }
            let (reply, ttfb) = c.send_timed("GET", path.as_bytes(), &[], b"");
            assert_eq!(reply.status, 200, "{path}");
            bytes = reply.body.len();
            ttfbs.push(ttfb.as_secs_f64() * 1000.0);
        }
        ttfbs.sort_by(f64::total_cmp);
        pages.push((name, bytes, percentile(&ttfbs, 0.5)));
    }
    // A folder of the archive as a zip stream.
    let zip_started = Instant::now();
    let mut c = client(addr, 253);
    c.cookies = ana.cookies.clone();
    let zipped = c.get("/archive/zip?c=library&folder=docs");
    assert_eq!(zipped.status, 200);
    let zip_secs = zip_started.elapsed().as_secs_f64();
    let zip_bytes = zipped.body.len();

    // A large file up in 4 MiB parts, as the page's script sends it, and down again; the
    // same bytes from a plain static file server (Python's) and from the disk, side by side.
    let big = test_support::pseudo_random(args.file_mib << 20, 3);
    let begun = call(
        &mut ana,
        &ana_csrf,
        "POST",
        "/api/files/community/uploads",
        serde_json::json!({"path": "films/big.mp4", "size": big.len()}),
    );
    let id = begun["id"].as_str().unwrap().to_owned();
    let up_started = Instant::now();
    let mut at = 0;
    for part in big.chunks(4 << 20) {
        let r = ana.send(
            "PUT",
            format!("/api/files/uploads/{id}?offset={at}").as_bytes(),
            &[("X-CSRF-Token", &ana_csrf)],
            part,
        );
        assert_eq!(r.status, 200, "{}", r.text());
        at += part.len();
    }
    call(
        &mut ana,
        &ana_csrf,
        "POST",
        &format!("/api/files/uploads/{id}/finish"),
        serde_json::json!({}),
    );
    let up_secs = up_started.elapsed().as_secs_f64();
    let down_started = Instant::now();
    let mut c = client(addr, 254);
    c.cookies = ana.cookies.clone();
    let down = c.get("/files/community/get?path=films/big.mp4");
    let down_secs = down_started.elapsed().as_secs_f64();
    assert!(down.body == big, "the download differs");
    let mut range_ms = Vec::new();
    for i in 0..20u64 {
        let start = (i * 7_919_993) % (big.len() as u64 - (1 << 20));
        let range = format!("bytes={start}-{}", start + (1 << 20) - 1);
        let (r, ttfb) = c.send_timed(
            "GET",
            b"/files/community/get?path=films/big.mp4",
            &[("Range", &range)],
            b"",
        );
        assert_eq!(r.status, 206);
        range_ms.push(ttfb.as_secs_f64() * 1000.0);
    }
    range_ms.sort_by(f64::total_cmp);
    let plain_dir = tmp.path().join("plain");
    std::fs::create_dir_all(&plain_dir).unwrap();
    std::fs::write(plain_dir.join("big.mp4"), &big).unwrap();
    let disk_started = Instant::now();
    let from_disk = std::fs::read(plain_dir.join("big.mp4")).unwrap();
    let disk_secs = disk_started.elapsed().as_secs_f64();
    assert_eq!(from_disk.len(), big.len());
    let python = python_download(&plain_dir, big.len());
    let mib = args.file_mib as f64;

    drop(server);
    for r in readers {
        let _ = r.join();
    }

    let mut latencies = received.lock().unwrap().clone();
    latencies.sort_by(f64::total_cmp);
    send_ms.sort_by(f64::total_cmp);
    println!(
        "web-load: {} clients on the live feed, {} messages/s for {} s",
        args.clients, args.rate, args.seconds
    );
    println!(
        "sent {total} messages in {sent_in:.1} s (send call p50 {:.1} ms, p99 {:.1} ms)",
        percentile(&send_ms, 0.5),
        percentile(&send_ms, 0.99)
    );
    println!(
        "delivered {} of {expected} events: latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (goal p99 < 300 ms)",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "daemon RSS: {:.1} MB started, {:.1} MB with {} feeds open, peak {:.1} MB, {:.1} MB at the end (goal < 80 MB)",
        rss_started as f64 / 1024.0,
        rss_connected as f64 / 1024.0,
        args.clients,
        peak.load(Ordering::Relaxed) as f64 / 1024.0,
        rss_end as f64 / 1024.0
    );
    println!("{:<32} {:>9} {:>10}", "page", "bytes", "TTFB p50");
    for (name, bytes, ttfb) in pages {
        println!("{name:<32} {bytes:>9} {ttfb:>8.2} ms");
    }
    println!(
        "archive: {} files; zip of docs/ ({:.1} MB) streamed in {:.2} s ({:.0} MB/s)",
        args.archive_files,
        zip_bytes as f64 / 1e6,
        zip_secs,
        zip_bytes as f64 / 1e6 / zip_secs
    );
    println!(
        "files: {mib} MiB uploaded in 4 MiB parts in {up_secs:.2} s ({:.0} MiB/s); downloaded in {down_secs:.2} s ({:.0} MiB/s)",
        mib / up_secs,
        mib / down_secs
    );
    match python {
        Some(secs) => println!(
            "  the same file from python3 -m http.server: {secs:.2} s ({:.0} MiB/s); daemon / python = {:.2}",
            mib / secs,
            down_secs / secs
        ),
        None => println!("  (python3 not found: no static-server comparison)"),
    }
    println!(
        "  read from the disk (page cache): {disk_secs:.3} s ({:.0} MiB/s)",
        mib / disk_secs
    );
    println!(
        "  a 1 MiB range (a video seek): TTFB p50 {:.2} ms, p99 {:.2} ms",
        percentile(&range_ms, 0.5),
        percentile(&range_ms, 0.99)
    );
}

/// Seconds to download `len` bytes of `big.mp4` from `python3 -m http.server` serving
/// `dir` on loopback; `None` without python3.
fn python_download(dir: &std::path::Path, len: usize) -> Option<f64> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = Command::new("python3")
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let _server = Server(child);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(addr).is_err() {
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut c = client(addr, 1);
    let started = Instant::now();
    let r = c.get("/big.mp4");
    let secs = started.elapsed().as_secs_f64();
    (r.status == 200 && r.body.len() == len).then_some(secs)
}
