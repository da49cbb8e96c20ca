//! Memory of a large sync, per server: server B (this process) pulls a collection of N entries
//! from server A (a child process) over iroh on 127.0.0.1. Reported for each process: its
//! resident memory when the sync starts and the most it held during the sync.
//!
//! ```text
//! cargo run --release -p archive-benches --features net --bin sync-memory -- \
//!     [--entries N] [--content tombstones|files] [--dir DIR] [--json]
//! ```
//! `tombstones`: N removal entries (no content: the entries alone). `files`: N small files
//! (100-400 bytes, each its own inline blob), added with `archive add`'s batching. Store A is
//! built by a child process (so building it does not count) in `DIR/a-<content>-<N>` and kept
//! for the next run; B is new each run. Both processes tune the allocator as `archive` does.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use archive_benches::net::Server;
use archive_benches::reset_peak_rss;
use archive_core::{Certificate, Entry, EntryValue, NoProgress, SignedEntry, Store, Timestamp};
use archive_net::{connect, Access, Counters, EndpointId, PeerPolicy, SyncOptions, Ticket};
use clap::{Parser, ValueEnum};

const COLLECTION: &str = "default";

#[derive(Debug, Parser)]
#[command(about = "Memory of a large sync, per server")]
struct Args {
    /// Entries in store A.
    #[arg(long, default_value_t = 1_000_000)]
    entries: u64,
    /// What the entries are.
    #[arg(long, value_enum, default_value_t = Content::Tombstones)]
    content: Content,
    /// Where store A is built (and kept for the next run) and B lives.
    #[arg(long, default_value = "/var/tmp")]
    dir: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// (Internal) build store A in DIR and exit.
    #[arg(long, value_name = "DIR", hide = true)]
    build_only: Option<PathBuf>,
    /// (Internal) serve store A in DIR to PEER.
    #[arg(long, value_name = "DIR", hide = true, requires = "peer")]
    serve: Option<PathBuf>,
    /// (Internal) the peer to serve.
    #[arg(long, hide = true)]
    peer: Option<EndpointId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Content {
    /// Removal entries (no content: the entries alone).
    Tombstones,
    /// Small files, each its own inline blob.
    Files,
}

fn main() {
    archive_benches::limit_malloc_arenas();
    let args = Args::parse();
    let n = args.entries;
    let content = match args.content {
        Content::Tombstones => "tombstones",
        Content::Files => "files",
    };
    if let Some(dir) = &args.build_only {
        build_store(dir, n, content);
        return;
    }
    if let (Some(dir), Some(peer)) = (&args.serve, args.peer) {
        serve(dir, peer);
        return;
    }
    let dir = args.dir.clone();
    let a_dir = dir.join(format!("a-{content}-{n}"));
    let this = std::env::current_exe().expect("this program");
    if !a_dir.join("FORMAT").exists() {
        let _ = std::fs::remove_dir_all(&a_dir);
        let started = Instant::now();
        let status = Command::new(&this)
            .args(["--entries", &n.to_string(), "--content", content])
            .arg("--build-only")
            .arg(&a_dir)
            .status()
            .expect("run the builder");
        assert!(status.success(), "building store A failed");
        eprintln!("built store A in {:.0} s", started.elapsed().as_secs_f64());
    }

    let b_dir = tempfile::tempdir_in(&dir).expect("a folder for store B");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let b = runtime.block_on(Server::start(b_dir.path()));
    let mut a = Command::new(&this)
        .arg("--serve")
        .arg(&a_dir)
        .arg("--peer")
        .arg(b.endpoint().id().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start server A");
    let mut a_out = BufReader::new(a.stdout.take().expect("A's output"));
    let ticket: Ticket = read_line(&mut a_out).parse().expect("A's ticket");
    b.node.trust().set(ticket.id, policy());

    reset_peak_rss();
    let b_before = rss_bytes();
    let (report, secs) = runtime.block_on(async {
        let started = Instant::now();
        let conn = connect(b.endpoint(), ticket.endpoint_addr(), Duration::from_secs(5))
            .await
            .expect("connect to A");
        let options = SyncOptions {
            collection: COLLECTION.into(),
            pull: true,
            push: false,
        };
        let report = b
            .node
            .sync(&conn, &options, Arc::new(Counters::default()))
            .await
            .expect("sync");
        (report, started.elapsed().as_secs_f64())
    });
    let b_peak = peak_rss_bytes();
    // A reports its own figures when told to stop.
    writeln!(a.stdin.as_mut().expect("A's input"), "stop").expect("tell A to stop");
    let a_figures: Vec<u64> = read_line(&mut a_out)
        .split(' ')
        .map(|v| v.parse().expect("A's figures"))
        .collect();
    let (a_before, a_peak) = (a_figures[0], a_figures[1]);
    assert!(a.wait().expect("A ends").success());
    runtime.block_on(b.shutdown());
    assert_eq!(report.entries_received, n, "B received every entry");

    let mb = |b: u64| b as f64 / 1e6;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "entries": n,
                "content": content,
                "sync_s": secs,
                "puller_before_mb": mb(b_before),
                "puller_peak_mb": mb(b_peak),
                "server_before_mb": mb(a_before),
                "server_peak_mb": mb(a_peak),
                "bytes_received": report.bytes_received,
            })
        );
    } else {
        println!(
            "{n} {content}: synced in {secs:.1} s; resident memory before -> most during the \
             sync: puller {:.0} -> {:.0} MB, server {:.0} -> {:.0} MB",
            mb(b_before),
            mb(b_peak),
            mb(a_before),
            mb(a_peak)
        );
    }
}

fn policy() -> PeerPolicy {
    PeerPolicy {
        name: "bench".into(),
        read: Access::All,
        write: Access::All,
    }
}

/// Server A: serves `dir` to `peer`, prints its ticket, and on "stop" prints its resident
/// memory when it started serving and the most it held since.
fn serve(dir: &Path, peer: EndpointId) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let a = runtime.block_on(Server::start(dir));
    a.node.trust().set(peer, policy());
    let ticket = Ticket {
        id: a.endpoint().id(),
        addrs: a.endpoint().addr().ip_addrs().copied().collect(),
    };
    reset_peak_rss();
    let before = rss_bytes();
    println!("{ticket}");
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .expect("wait for stop");
    println!("{before} {}", peak_rss_bytes());
    runtime.block_on(a.shutdown());
}

fn read_line(from: &mut impl BufRead) -> String {
    let mut line = String::new();
    from.read_line(&mut line).expect("a line from server A");
    line.trim().to_owned()
}

/// Store A: `n` entries of the chosen kind.
fn build_store(dir: &Path, n: u64, content: &str) {
    let store = Store::init(dir).expect("store A");
    if content == "files" {
        let src = dir.with_extension("src");
        let _ = std::fs::remove_dir_all(&src);
        for i in 0..n {
            let folder = src.join(format!("{:04}", i / 1000));
            if i % 1000 == 0 {
                std::fs::create_dir_all(&folder).expect("source folder");
            }
            let mut bytes = vec![0u8; 100 + (i % 300) as usize];
            archive_benches::fill_pseudo_random(&mut bytes, i);
            std::fs::write(folder.join(format!("{i}.txt")), bytes).expect("source file");
        }
        store
            .collection(COLLECTION)
            .unwrap()
            .add_path(&src, Some(""), &mut NoProgress)
            .expect("add");
        std::fs::remove_dir_all(&src).expect("remove the source files");
        return;
    }
    let key = store.secret_key().clone();
    let author = key.public();
    let batch = 20_000;
    for start in (0..n).step_by(batch) {
        let entries: Vec<SignedEntry> = (start..(start + batch as u64).min(n))
            .map(|i| {
                let entry = Entry {
                    collection: COLLECTION.into(),
                    key: format!("removed/{i:08}"),
                    value: EntryValue::Tombstone,
                    author,
                    time: Timestamp::from_raw((1_790_000_000_000 + i) << 16),
                    meta: archive_core::FileMeta::default(),
                    message: archive_core::MessageFields::default(),
                };
                SignedEntry::sign(entry, &key).expect("sign")
            })
            .collect();
        // As a server's own batches are: one certificate per 1,024 entries.
        let entries: Vec<SignedEntry> = entries
            .chunks(archive_core::MAX_CERTIFIED_IDS)
            .flat_map(|part| {
                let cert = std::sync::Arc::new(
                    Certificate::sign(&key, part.iter().map(SignedEntry::id)).expect("certify"),
                );
                part.iter()
                    .map(move |e| e.clone().with_certificate(cert.clone()).expect("listed"))
            })
            .collect();
        store.transfer().insert_entries(&entries).expect("insert");
    }
}

/// Resident memory now (VmRSS).
fn rss_bytes() -> u64 {
    status_kib("VmRSS:") * 1024
}

/// The most resident memory this process has had since the last reset (VmHWM).
fn peak_rss_bytes() -> u64 {
    status_kib("VmHWM:") * 1024
}

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a field of /proc/self/status")
}
