//! Memory of listing a large collection from the library: a process opens a store of N files
//! and walks `Collection::list` to the end; its peak resident memory (VmHWM) is reported. For
//! comparison, another process collects the same listing into a `Vec` (what `list` returned
//! before it came in pages).
//!
//! ```text
//! cargo run --release -p archive-benches --bin list-memory -- [--entries N] [--dir DIR] [--json]
//! ```
//! The store (N file entries, keys `docs/NNNNNNNN.txt`; their content is not needed to list
//! them) is built by a child process in `DIR/list-memory-N` and kept for the next run. Each
//! measurement runs in a fresh child process that tunes the allocator as `archive` does.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use archive_core::{Entry, EntryValue, FileRef, Hash, SignedEntry, Store, Timestamp, ViewPoint};
use clap::{Parser, ValueEnum};

const COLLECTION: &str = "default";

#[derive(Debug, Parser)]
#[command(about = "Peak memory of listing a large collection")]
struct Args {
    /// Files in the collection.
    #[arg(long, default_value_t = 1_000_000)]
    entries: u64,
    /// Where the store is built (and kept for the next run).
    #[arg(long, default_value = "/var/tmp")]
    dir: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// (Internal) run one step in this process.
    #[arg(long, value_enum, hide = true)]
    step: Option<Step>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Step {
    Build,
    List,
    Collect,
}

fn main() {
    archive_benches::limit_malloc_arenas();
    let args = Args::parse();
    let store_dir = args.dir.join(format!("list-memory-{}", args.entries));
    match args.step {
        Some(Step::Build) => return build(&store_dir, args.entries),
        Some(step) => return measure(&store_dir, step),
        None => {}
    }
    if !store_dir.join("FORMAT").exists() {
        let _ = std::fs::remove_dir_all(&store_dir);
        let started = Instant::now();
        run_step(&args, Step::Build);
        eprintln!(
            "built a store of {} files in {:.0} s",
            args.entries,
            started.elapsed().as_secs_f64()
        );
    }
    let list = run_step(&args, Step::List);
    let collect = run_step(&args, Step::Collect);
    let field = |out: &serde_json::Value, name: &str| out[name].as_f64().expect(name);
    let entries = list["entries"].as_u64().expect("entries");
    assert_eq!(entries, args.entries, "every file listed");
    assert_eq!(collect["entries"].as_u64(), Some(entries));
    let report = serde_json::json!({
        "entries": entries,
        "max_rss_mb": field(&list, "max_rss_mb"),
        "list_secs": field(&list, "secs"),
        "collected_max_rss_mb": field(&collect, "max_rss_mb"),
        "collect_secs": field(&collect, "secs"),
    });
    if args.json {
        println!("{report}");
    } else {
        println!(
            "listed {entries} files in {:.1} s, peak RSS {:.1} MB; collected into a Vec: {:.1} s, peak RSS {:.1} MB",
            field(&list, "secs"),
            field(&list, "max_rss_mb"),
            field(&collect, "secs"),
            field(&collect, "max_rss_mb"),
        );
    }
}

/// Runs this program again for one step; returns the JSON it prints.
fn run_step(args: &Args, step: Step) -> serde_json::Value {
    let this = std::env::current_exe().expect("this program");
    let name = step
        .to_possible_value()
        .expect("a name")
        .get_name()
        .to_owned();
    let out = Command::new(this)
        .args(["--entries", &args.entries.to_string(), "--step", &name])
        .arg("--dir")
        .arg(&args.dir)
        .output()
        .expect("run a step");
    assert!(
        out.status.success(),
        "step {name} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    if step == Step::Build {
        return serde_json::Value::Null;
    }
    serde_json::from_slice(&out.stdout).expect("the step's JSON")
}

fn build(dir: &Path, n: u64) {
    let store = Store::init(dir).expect("store");
    let key = store.secret_key().clone();
    let author = key.public();
    let batch = 20_000;
    for start in (0..n).step_by(batch) {
        let entries: Vec<SignedEntry> = (start..(start + batch as u64).min(n))
            .map(|i| {
                let file = FileRef {
                    hash: Hash::of(&i.to_le_bytes()),
                    size: 100 + i % 300,
                    manifest: None,
                };
                let entry = Entry {
                    collection: COLLECTION.into(),
                    key: format!("docs/{i:08}.txt"),
                    value: EntryValue::File(file),
                    author,
                    time: Timestamp::from_raw((1_790_000_000_000 + i) << 16),
                    meta: archive_core::FileMeta::default(),
                    message: archive_core::MessageFields::default(),
                };
                SignedEntry::sign(entry, &key).expect("sign")
            })
            .collect();
        store.transfer().insert_entries(&entries).expect("insert");
    }
}

/// Opens the store and lists the collection, as a page-at-a-time walk or collected whole;
/// prints how many files, how long, and the process's peak resident memory.
fn measure(dir: &Path, step: Step) {
    let store = Store::open(dir).expect("store");
    let collection = store.collection(COLLECTION).expect("name");
    let started = Instant::now();
    let listing = collection.list(ViewPoint::Current, "").expect("list");
    let (entries, bytes) = if step == Step::Collect {
        let all: Vec<_> = listing.collect::<Result<_, _>>().expect("list");
        (
            all.len() as u64,
            all.iter().map(|i| i.file.size).sum::<u64>(),
        )
    } else {
        let mut n = 0u64;
        let mut bytes = 0u64;
        for item in listing {
            n += 1;
            bytes += item.expect("list").file.size;
        }
        (n, bytes)
    };
    let secs = started.elapsed().as_secs_f64();
    let peak_kb = archive_benches::proc_status_kb(None, "VmHWM").expect("VmHWM");
    println!(
        "{}",
        serde_json::json!({
            "entries": entries,
            "bytes": bytes,
            "secs": secs,
            "max_rss_mb": peak_kb as f64 * 1024.0 / 1e6,
        })
    );
}
