//! Archive sync against `rsync -a` through an rsync daemon, both on 127.0.0.1, same tree, same
//! run: initial sync, no-change sync and a 1 % change.
//!
//! ```text
//! cargo run --release -p archive-benches --features net --bin vs-rsync -- \
//!     [--small 100000] [--large 3] [--large-mib 64] [--dir DIR] [--json]
//! ```
//! The tree holds `--small` files of 512 B to 8 KiB in 1,000 folders and `--large` files of
//! `--large-mib` MiB. The 1 % change rewrites every 100th small file (new content, new size) and
//! 1 % of each large file in place.
//!
//! What is timed: for rsync, `rsync -a rsync://127.0.0.1:PORT/tree/ DEST/` as a process, which
//! compares the trees and moves what differs. For the archive, a server B dials server A (both
//! in this process), reconciles both ways and pulls what it lacks, writing it durably: the
//! connection set-up is inside the time. The archive's source side has already ingested the
//! tree (`archive add`), which rsync never does; that ingest time (and the re-ingest after the
//! change, which re-hashes the whole tree) is printed next to the sync figures, not hidden.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use archive_benches::net::Server;
use archive_benches::timed;
use archive_benches::tree::{change, generate, TreeArgs};
use archive_core::{NoProgress, Store, ViewPoint};
use clap::Parser;

const COLLECTION: &str = "bench";

#[derive(Debug, Parser)]
#[command(about = "Initial and incremental sync of a tree, against rsync over its daemon protocol")]
struct Args {
    #[command(flatten)]
    tree: TreeArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

fn main() {
    let args = Args::parse();
    let (small, large, large_mib, json) = (
        args.tree.small,
        args.tree.large,
        args.tree.large_mib,
        args.json,
    );
    let tmp = args.tree.tempdir();
    let tree = tmp.path().join("tree");
    let (files, bytes) = generate(&tree, small, large, large_mib << 20, 0);

    let rsyncd = RsyncDaemon::start(tmp.path(), &tree);
    let rsync_dest = tmp.path().join("rsync-dest");
    let rsync_initial = rsyncd.pull(&rsync_dest);
    let rsync_nochange = rsyncd.pull(&rsync_dest);

    let a_dir = tmp.path().join("a");
    let b_dir = tmp.path().join("b");
    let (_, ingest_secs) = timed(|| {
        Store::init(&a_dir)
            .expect("init A")
            .collection(COLLECTION)
            .unwrap()
            .add_path(&tree, Some(""), &mut NoProgress)
            .expect("add")
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (a, b) = rt.block_on(async {
        let a = Server::start(&a_dir).await;
        let b = Server::start(&b_dir).await;
        a.pair(&b);
        (a, b)
    });
    let archive_initial = rt.block_on(b.sync_from(&a, COLLECTION, true, true));
    assert_eq!(listing(&a), listing(&b), "B holds A's tree after the sync");
    let archive_nochange = rt.block_on(b.sync_from(&a, COLLECTION, true, true));
    assert_eq!(archive_nochange.0.entries_received, 0);

    // The 1 % change: rsync's quick check looks at size and whole-second mtimes, so let a
    // second pass first (and the sizes change anyway).
    std::thread::sleep(Duration::from_millis(1100));
    let (changed_files, changed_bytes) = change(&tree, small, large, large_mib << 20);
    let rsync_change = rsyncd.pull(&rsync_dest);
    let (_, reingest_secs) = timed(|| {
        a.node
            .store()
            .collection(COLLECTION)
            .unwrap()
            .add_path(&tree, Some(""), &mut NoProgress)
            .expect("re-add")
    });
    let archive_change = rt.block_on(b.sync_from(&a, COLLECTION, true, true));
    assert_eq!(listing(&a), listing(&b), "B holds the changed tree");
    assert_eq!(archive_change.0.entries_received, changed_files);
    rt.block_on(async {
        a.shutdown().await;
        b.shutdown().await;
    });
    drop(rsyncd);

    let rows = [
        ("initial", rsync_initial, archive_initial),
        ("no change", rsync_nochange, archive_nochange),
        ("1% change", rsync_change, archive_change),
    ];
    if json {
        let parts: Vec<String> = rows
            .iter()
            .map(|(name, r, (s, secs))| {
                format!(
                    "{{\"case\":\"{name}\",\"rsync_secs\":{:.4},\"rsync_wire_bytes\":{},\"archive_secs\":{secs:.4},\"archive_bytes_received\":{},\"archive_round_trips\":{},\"speedup\":{:.2}}}",
                    r.secs, r.wire_bytes, s.bytes_received, s.round_trips, r.secs / secs
                )
            })
            .collect();
        println!(
            "{{\"files\":{files},\"bytes\":{bytes},\"changed_files\":{changed_files},\"changed_bytes\":{changed_bytes},\"archive_ingest_secs\":{ingest_secs:.3},\"archive_reingest_secs\":{reingest_secs:.3},\"cases\":[{}]}}",
            parts.join(",")
        );
    } else {
        println!(
            "tree: {files} files, {:.1} MB; change: {changed_files} files, {:.1} MB",
            bytes as f64 / 1e6,
            changed_bytes as f64 / 1e6
        );
        println!(
            "{:<10} {:>10} {:>14} {:>10} {:>14} {:>4} {:>9}",
            "case", "rsync s", "rsync wire B", "archive s", "archive recv B", "RTT", "speedup"
        );
        for (name, r, (s, secs)) in &rows {
            println!(
                "{name:<10} {:>10.3} {:>14} {secs:>10.3} {:>14} {:>4} {:>8.1}x",
                r.secs,
                r.wire_bytes,
                s.bytes_received,
                s.round_trips,
                r.secs / secs
            );
        }
        println!(
            "archive ingest on A (not in the sync times): initial {ingest_secs:.2} s, after the change {reingest_secs:.2} s"
        );
    }
}

/// Hashes of every key in the collection.
fn listing(s: &Server) -> Vec<(String, archive_core::Hash)> {
    s.node
        .store()
        .collection(COLLECTION)
        .expect("name")
        .list(ViewPoint::Current, "")
        .expect("list")
        .map(|i| i.map(|i| (i.key, i.file.hash)).expect("list"))
        .collect()
}

/// One timed rsync run.
struct RsyncRun {
    secs: f64,
    /// Bytes sent plus bytes received, as `rsync --stats` reports them.
    wire_bytes: u64,
}

/// `rsync --daemon` serving the tree read-only on 127.0.0.1; killed on drop.
struct RsyncDaemon {
    child: Child,
    port: u16,
}

impl RsyncDaemon {
    fn start(dir: &Path, tree: &Path) -> RsyncDaemon {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let conf = dir.join("rsyncd.conf");
        std::fs::write(
            &conf,
            format!(
                "use chroot = no\npid file = {}\nlog file = {}\n[tree]\npath = {}\nread only = yes\n",
                dir.join("rsyncd.pid").display(),
                dir.join("rsyncd.log").display(),
                tree.display()
            ),
        )
        .expect("write rsyncd.conf");
        let child = Command::new("rsync")
            .args(["--daemon", "--no-detach", "--address=127.0.0.1"])
            .arg(format!("--port={port}"))
            .arg(format!("--config={}", conf.display()))
            .stdout(Stdio::null())
            .spawn()
            .expect("rsync --daemon (install the rsync package)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "rsync daemon did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        RsyncDaemon { child, port }
    }

    fn pull(&self, dest: &Path) -> RsyncRun {
        let start = Instant::now();
        let out = Command::new("rsync")
            .args(["-a", "--stats"])
            .arg(format!("rsync://127.0.0.1:{}/tree/", self.port))
            .arg(dest)
            .output()
            .expect("run rsync");
        let secs = start.elapsed().as_secs_f64();
        assert!(
            out.status.success(),
            "rsync failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stats = String::from_utf8_lossy(&out.stdout);
        let field = |name: &str| -> u64 {
            stats
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().replace(',', ""))
                .and_then(|v| v.split_whitespace().next().map(str::to_owned))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {name:?} in rsync --stats:\n{stats}"))
        };
        RsyncRun {
            secs,
            wire_bytes: field("Total bytes sent:") + field("Total bytes received:"),
        }
    }
}

impl Drop for RsyncDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
