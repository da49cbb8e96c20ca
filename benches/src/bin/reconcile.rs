//! Reconciliation benchmark: two real stores of N entries that differ by D, reconciled in memory
//! (frames handed from one session to the other, no sockets).
//!
//! ```text
//! cargo run --release -p archive-benches --bin reconcile -- --entries N --diffs D \
//!     --mode scattered|newest [--fast-path] [--frame-limit BYTES] [--fanout F] [--threshold T]
//!     [--store-dir DIR] [--repeat K] [--trace] [--json]
//! ```
//! `scattered`: each side lacks D/2 of the other's entries, at random times. `newest`: one side
//! lacks the other's D newest entries. `--fast-path`: the stores synced before the differences
//! were added and remember it. Reported: round trips, reconciliation bytes both ways (frames
//! only: the entries themselves must move anyway), and the CPU time of the busier side inside
//! the session (thread CPU time), with the index warm as a running server keeps it; the first
//! open of the index after start-up (loading block summaries) is reported as `cold_open_ms`.
//! `--trace` prints each frame's size and what its ranges ask, to stderr.

use std::time::Instant;

use archive_benches::thread_cpu_seconds;
use archive_core::sync::{Agreement, Message, Mode, ReconcileConfig, Reconciler, MAX_FRAME_LIMIT};
use archive_core::{Entry, EntryValue, FileRef, Hash, SecretKey, SignedEntry, Store, Timestamp};
use clap::{Parser, ValueEnum};

const COLLECTION: &str = "bench";
/// Entries span 30 days of hybrid-logical-clock time.
const SPAN_MS: u64 = 30 * 24 * 3600 * 1000;
const START_MS: u64 = 1_790_000_000_000;

#[derive(Debug, Parser)]
#[command(about = "Reconciliation of two stores that differ, in memory")]
struct Args {
    /// Entries in each store (before the differences).
    #[arg(long, default_value_t = 10_000)]
    entries: u64,
    /// Entries that differ.
    #[arg(long, default_value_t = 0)]
    diffs: u64,
    /// Where the differences are.
    #[arg(long, value_enum, default_value_t = Spread::Scattered)]
    mode: Spread,
    /// The stores synced before the differences were added and remember it.
    #[arg(long)]
    fast_path: bool,
    /// Largest frame (bytes).
    #[arg(long)]
    frame_limit: Option<usize>,
    /// Ranges a mismatched range is split into.
    #[arg(long)]
    fanout: Option<u64>,
    /// Ranges of at most this many items are sent as id lists.
    #[arg(long)]
    threshold: Option<u64>,
    /// Keep the two stores in DIR and reuse them on the next run with the same arguments.
    #[arg(long, value_name = "DIR")]
    store_dir: Option<std::path::PathBuf>,
    /// Run K extra sessions first (for profilers); the last one is reported.
    #[arg(long, value_name = "K", default_value_t = 0)]
    repeat: u32,
    /// Print each frame's size and what its ranges ask, to stderr.
    #[arg(long)]
    trace: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Spread {
    /// Each side lacks half of the differences, at random times.
    Scattered,
    /// One side lacks the other's newest entries.
    Newest,
}

fn main() {
    let args = Args::parse();
    let (n, d, fast, json, trace) = (
        args.entries,
        args.diffs,
        args.fast_path,
        args.json,
        args.trace,
    );
    let mut config = ReconcileConfig::default();
    if let Some(limit) = args.frame_limit {
        config.frame_limit = limit;
    }
    if let Some(f) = args.fanout {
        config.fanout = f;
    }
    if let Some(t) = args.threshold {
        config.id_list_threshold = t;
    }
    assert!(d <= n, "--diffs must not exceed --entries");
    let mode_name = match args.mode {
        Spread::Scattered => "scattered",
        Spread::Newest => "newest",
    };

    // Who has what. Scattered: common N - D/2, then D/2 only in A and D - D/2 only in B, all
    // at random times. Newest: common N - D, then D only in A, newer than everything.
    let (common, only_a, only_b) = if args.mode == Spread::Scattered {
        (n - d / 2, d / 2, d - d / 2)
    } else {
        (n - d, d, 0)
    };
    let build_started = Instant::now();
    // `--store-dir DIR` keeps the two stores there, in a folder named after the arguments that
    // shape them, and reuses them on the next run with the same arguments (for profiling); by
    // default they live in a temporary folder.
    let tmp = tempfile::tempdir().expect("temporary folder");
    let shape = format!(
        "n{n}-d{d}-{}{}",
        if args.mode == Spread::Scattered {
            "scattered"
        } else {
            "newest"
        },
        if fast { "-fast" } else { "" }
    );
    let root = args
        .store_dir
        .as_ref()
        .map_or_else(|| tmp.path().to_owned(), |dir| dir.join(shape));
    let reuse = root.join("a").join("FORMAT").exists() && root.join("b").join("FORMAT").exists();
    let (a, b, signed_s, agreement) = if reuse {
        let a = Store::open(root.join("a")).expect("store a");
        let b = Store::open(root.join("b")).expect("store b");
        let agreement = if fast {
            a.collection(COLLECTION)
                .expect("name")
                .agreement(&b.peer_id())
                .expect("agreement")
        } else {
            None
        };
        (a, b, 0.0, agreement)
    } else {
        let key = SecretKey::from_bytes([42; 32]);
        let total = common + only_a + only_b;
        let newest_from = if args.mode == Spread::Newest {
            common
        } else {
            total
        };
        let entries = sign_all(&key, total, newest_from);
        let signed_s = build_started.elapsed().as_secs_f64();
        let (c, rest) = entries.split_at(common as usize);
        let (a_extra, b_extra) = rest.split_at(only_a as usize);
        let a = Store::init(root.join("a")).expect("store a");
        let b = Store::init(root.join("b")).expect("store b");
        insert(&a, c);
        insert(&b, c);
        let agreement = fast.then(|| {
            let (sa, sb) = (
                a.transfer().sync_seq().expect("seq"),
                b.transfer().sync_seq().expect("seq"),
            );
            let agreement = Agreement {
                my_seq: sa,
                their_seq: sb,
            };
            a.collection(COLLECTION)
                .expect("name")
                .record_agreement(&b.peer_id(), agreement)
                .expect("record");
            agreement
        });
        insert(&a, a_extra);
        insert(&b, b_extra);
        (a, b, signed_s, agreement)
    };
    let build_s = build_started.elapsed().as_secs_f64();
    if !json {
        eprintln!("signing took {signed_s:.1} s of {build_s:.1} s building");
    }

    // Warm the indexes as a running server has them, timing the first open.
    let cold_open = cpu_time(|| {
        a.collection(COLLECTION)
            .unwrap()
            .sync_index()
            .expect("index a");
    });
    b.collection(COLLECTION)
        .unwrap()
        .sync_index()
        .expect("index b");

    // `--repeat K` runs K extra sessions first (for profilers); the last one is reported.
    let repeat = args.repeat;
    for _ in 0..repeat {
        let mut ra = Reconciler::new(
            a.collection(COLLECTION)
                .expect("name")
                .sync_index()
                .expect("index"),
            config,
        )
        .expect("config");
        let mut rb = Reconciler::new(
            b.collection(COLLECTION)
                .expect("name")
                .sync_index()
                .expect("index"),
            config,
        )
        .expect("config");
        let mut f = ra.initiate(agreement).expect("initiate");
        let mut to_b = true;
        while let Some(next) = if to_b { rb.receive(&f) } else { ra.receive(&f) }.expect("session")
        {
            f = next;
            to_b = !to_b;
        }
    }
    let (mut cpu_a, mut cpu_b) = (0f64, 0f64);
    let mut ra = None;
    let mut frame = cpu_time_with(&mut cpu_a, || {
        let mut r = Reconciler::new(
            a.collection(COLLECTION)
                .expect("name")
                .sync_index()
                .expect("index"),
            config,
        )
        .expect("config");
        let f = r.initiate(agreement).expect("initiate");
        ra = Some(r);
        f
    });
    let mut ra = ra.expect("initiator");
    if trace {
        eprintln!("{}", describe(&frame));
    }
    let mut rb = None;
    let mut to_b = true;
    loop {
        let next = if to_b {
            cpu_time_with(&mut cpu_b, || {
                let r = rb.get_or_insert_with(|| {
                    Reconciler::new(
                        b.collection(COLLECTION)
                            .unwrap()
                            .sync_index()
                            .expect("index"),
                        config,
                    )
                    .expect("config")
                });
                r.receive(&frame).expect("b receives")
            })
        } else {
            cpu_time_with(&mut cpu_a, || ra.receive(&frame).expect("a receives"))
        };
        match next {
            Some(f) => {
                if trace {
                    eprintln!("{}", describe(&f));
                }
                frame = f;
            }
            None => break,
        }
        to_b = !to_b;
    }
    let rb = rb.expect("responder");
    assert_eq!(ra.have().len() as u64, only_a, "A's have is exact");
    assert_eq!(ra.need().len() as u64, only_b, "A's need is exact");
    assert_eq!(rb.have().len() as u64, only_b, "B's have is exact");
    let stats = ra.stats();
    let bytes = stats.bytes_sent + stats.bytes_received;
    let cpu_ms = cpu_a.max(cpu_b) * 1e3;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "entries": n,
                "diffs": d,
                "mode": mode_name,
                "fast_path": fast,
                "rtt": stats.round_trips(),
                "bytes": bytes,
                "cpu_ms": cpu_ms,
                "cpu_ms_initiator": cpu_a * 1e3,
                "cpu_ms_responder": cpu_b * 1e3,
                "cold_open_ms": cold_open * 1e3,
                "frames": stats.frames_sent + stats.frames_received,
                "frame_limit": config.frame_limit,
                "fanout": config.fanout,
                "threshold": config.id_list_threshold,
                "build_s": build_s,
                "sign_s": signed_s,
            })
        );
    } else {
        println!(
            "N={n} D={d} {mode_name}{}: {} RTT, {bytes} B, busier side {cpu_ms:.2} ms CPU (cold index open {:.2} ms; stores built in {build_s:.1} s)",
            if fast { " fast-path" } else { "" },
            stats.round_trips(),
            cold_open * 1e3
        );
    }
}

/// One line about a frame: its size and what its ranges ask (`--trace`).
fn describe(frame: &[u8]) -> String {
    match Message::decode(frame, MAX_FRAME_LIMIT).expect("a frame the session sent") {
        Message::Ranges(ranges) => {
            let count = |f: fn(&Mode) -> bool| ranges.iter().filter(|r| f(&r.mode)).count();
            format!(
                "frame {} B: {} ranges: {} skip, {} fingerprint, {} id list, {} diff",
                frame.len(),
                ranges.len(),
                count(|m| matches!(m, Mode::Skip)),
                count(|m| matches!(m, Mode::Fingerprint(_))),
                count(|m| matches!(m, Mode::IdList(_))),
                count(|m| matches!(m, Mode::Diff { .. })),
            )
        }
        Message::FastRequest { added, .. } => {
            format!("frame {} B: fast request, {} ids", frame.len(), added.len())
        }
        Message::FastReply(_) => format!("frame {} B: fast reply", frame.len()),
    }
}

/// Signs `total` entries on every core. Entry i has a random time in the 30-day span, or, from
/// `newest_from` on, a time after all of them.
fn sign_all(key: &SecretKey, total: u64, newest_from: u64) -> Vec<SignedEntry> {
    let threads = std::thread::available_parallelism().map_or(1, |p| p.get()) as u64;
    let per = total.div_ceil(threads.max(1));
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let range = (t * per).min(total)..((t + 1) * per).min(total);
                    range
                        .map(|i| sign_one(key, i, newest_from))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("signer"))
            .collect()
    })
}

fn sign_one(key: &SecretKey, i: u64, newest_from: u64) -> SignedEntry {
    let mut x = (i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 29;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 32;
    let ms = if i >= newest_from {
        START_MS + SPAN_MS + (i - newest_from)
    } else {
        START_MS + x % SPAN_MS
    };
    let mut content = [0u8; 32];
    content[..8].copy_from_slice(&i.to_le_bytes());
    SignedEntry::sign(
        Entry {
            collection: COLLECTION.into(),
            key: format!("files/{i:08}"),
            value: EntryValue::File(FileRef {
                hash: Hash::from_bytes(content),
                size: 1000 + i % 5000,
                manifest: None,
            }),
            author: key.public(),
            time: Timestamp::from_raw(ms << 16),
            meta: archive_core::FileMeta::default(),
            message: archive_core::MessageFields::default(),
        },
        key,
    )
    .expect("sign")
}

/// Inserts in time order, as a server mostly receives entries.
fn insert(store: &Store, entries: &[SignedEntry]) {
    let mut sorted: Vec<SignedEntry> = entries.to_vec();
    sorted.sort_by_key(|e| (e.entry().time, e.id()));
    for chunk in sorted.chunks(20_000) {
        store.transfer().insert_entries(chunk).expect("insert");
    }
}

fn cpu_time(f: impl FnOnce()) -> f64 {
    let start = thread_cpu_seconds();
    f();
    thread_cpu_seconds() - start
}

fn cpu_time_with<T>(acc: &mut f64, f: impl FnOnce() -> T) -> T {
    let start = thread_cpu_seconds();
    let out = f();
    *acc += thread_cpu_seconds() - start;
    out
}
