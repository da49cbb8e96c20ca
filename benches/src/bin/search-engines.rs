//! Full-text search for the messenger: tantivy and SQLite's FTS5 side by side on the same
//! chat-like messages (see `archive_benches::text`), each engine in processes of its own.
//!
//! ```text
//! cargo run --release -p archive-benches --features search-engines --bin search-engines -- \
//!     [--messages 1000000] [--rooms 100] [--dir /var/tmp] [--json]
//! ```
//! For each engine: one process builds the index of every message (words only, no positions,
//! no stored text: a message's text lives in the archive; its room, time and number beside),
//! reporting the time, the peak resident memory and the index's size; a fresh process opens
//! it and runs 200 queries of each kind (a common word, a middling word, a rare word, two
//! middling words, a three-letter prefix), each over the 50 rooms a person may read, newest
//! 20 first, reporting p50 / p99 and its resident memory; then indexes 1,000 more messages one
//! commit each (a server's live feed) and deletes 1,000. Both engines must return the same
//! hits for every query (the run fails otherwise).

use std::path::{Path, PathBuf};
use std::time::Instant;

use archive_benches::text::{splitmix, Chatter};
use clap::{Parser, ValueEnum};

#[derive(Debug, Parser)]
#[command(about = "tantivy and SQLite FTS5 on the same chat messages")]
struct Args {
    /// Messages indexed.
    #[arg(long, default_value_t = 1_000_000)]
    messages: u64,
    /// Rooms they are spread over.
    #[arg(long, default_value_t = 100)]
    rooms: u64,
    /// Where the indexes are built (and removed after).
    #[arg(long, default_value = "/var/tmp")]
    dir: PathBuf,
    /// Print one JSON object per engine instead of text.
    #[arg(long)]
    json: bool,
    /// (Internal) build this engine's index in `--dir` and exit.
    #[arg(long, hide = true)]
    build: Option<Engine>,
    /// (Internal) query this engine's index in `--dir` and exit.
    #[arg(long, hide = true)]
    query: Option<Engine>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Engine {
    Tantivy,
    Sqlite,
}

/// A message's time: arrival order, with neighbours (blocks of 8) out of order, all unique.
fn time_of(i: u64) -> u64 {
    let mut s = i / 8;
    let swapped = (i & !7) | ((i ^ splitmix(&mut s)) & 7);
    1_700_000_000_000_000 + swapped * 1_000
}

fn room_of(i: u64, rooms: u64) -> u64 {
    let mut s = i ^ 0xabcd;
    splitmix(&mut s) % rooms
}

/// One query: words every hit has, and a prefix one of its words starts with.
#[derive(Debug, Clone)]
struct Query {
    kind: &'static str,
    words: Vec<String>,
    prefix: Option<String>,
}

fn queries(chatter: &Chatter) -> Vec<Query> {
    let mut state = 42u64;
    let mut pick = |from: usize, to: usize| from + (splitmix(&mut state) as usize) % (to - from);
    let mut out = Vec::new();
    for _ in 0..200 {
        let w = |r: usize| chatter.word(r).to_owned();
        out.push(Query {
            kind: "common word",
            words: vec![w(pick(0, 10))],
            prefix: None,
        });
        out.push(Query {
            kind: "middling word",
            words: vec![w(pick(100, 1000))],
            prefix: None,
        });
        out.push(Query {
            kind: "rare word",
            words: vec![w(pick(5000, 30_000))],
            prefix: None,
        });
        out.push(Query {
            kind: "two words",
            words: vec![w(pick(20, 300)), w(pick(20, 300))],
            prefix: None,
        });
        let p = w(pick(500, 5000));
        out.push(Query {
            kind: "prefix",
            words: vec![],
            prefix: Some(p[..3].to_owned()),
        });
    }
    out
}

/// The rooms the querying person may read.
fn readable(rooms: u64) -> Vec<u64> {
    (0..rooms).filter(|r| r % 2 == 0).collect()
}

const LIMIT: usize = 20;
const LIVE: u64 = 1_000;

trait Index {
    /// Adds messages `from..to` in commits of `batch`.
    fn add(&mut self, chatter: &Chatter, rooms: u64, from: u64, to: u64, batch: u64);
    /// Removes message `i` for good.
    fn delete(&mut self, i: u64);
    /// The newest `LIMIT` hits in `rooms`, as message numbers.
    fn search(&mut self, q: &Query, rooms: &[u64]) -> Vec<u64>;
}

mod with_tantivy {
    use super::*;
    use tantivy::collector::TopDocs;
    use tantivy::query::{BooleanQuery, Occur, RegexQuery, TermQuery, TermSetQuery};
    use tantivy::schema::{
        IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions,
    };
    use tantivy::{doc, Order, Term};

    pub(super) struct Tantivy {
        index: tantivy::Index,
        writer: tantivy::IndexWriter,
        reader: tantivy::IndexReader,
        fields: [tantivy::schema::Field; 4],
    }

    impl Tantivy {
        pub(super) fn open(dir: &Path) -> Tantivy {
            let mut schema = Schema::builder();
            let text = schema.add_text_field(
                "text",
                TextOptions::default().set_indexing_options(
                    TextFieldIndexing::default()
                        .set_tokenizer("default")
                        .set_index_option(IndexRecordOption::Basic),
                ),
            );
            let room = schema.add_u64_field("room", NumericOptions::default().set_indexed());
            let time = schema.add_u64_field("time", NumericOptions::default().set_fast());
            let id = schema.add_u64_field("id", NumericOptions::default().set_fast().set_indexed());
            let schema = schema.build();
            std::fs::create_dir_all(dir).unwrap();
            let directory = tantivy::directory::MmapDirectory::open(dir).unwrap();
            let index = tantivy::Index::open_or_create(directory, schema).unwrap();
            let writer = index.writer_with_num_threads(1, 15_000_000).unwrap();
            let reader = index
                .reader_builder()
                .reload_policy(tantivy::ReloadPolicy::Manual)
                .try_into()
                .unwrap();
            Tantivy {
                index,
                writer,
                reader,
                fields: [text, room, time, id],
            }
        }

        pub(super) fn finish(self) {
            let _ = &self.index;
            self.writer.wait_merging_threads().unwrap();
        }
    }

    impl Index for Tantivy {
        fn add(&mut self, chatter: &Chatter, rooms: u64, from: u64, to: u64, batch: u64) {
            let [text, room, time, id] = self.fields;
            for i in from..to {
                self.writer
                    .add_document(doc!(
                        text => chatter.message(i),
                        room => room_of(i, rooms),
                        time => time_of(i),
                        id => i,
                    ))
                    .unwrap();
                if (i + 1 - from).is_multiple_of(batch) || i + 1 == to {
                    self.writer.commit().unwrap();
                }
            }
            self.reader.reload().unwrap();
        }

        fn delete(&mut self, i: u64) {
            self.writer
                .delete_term(Term::from_field_u64(self.fields[3], i));
            self.writer.commit().unwrap();
            self.reader.reload().unwrap();
        }

        fn search(&mut self, q: &Query, rooms: &[u64]) -> Vec<u64> {
            let [text, room, _, _] = self.fields;
            let mut must: Vec<(Occur, Box<dyn tantivy::query::Query>)> = q
                .words
                .iter()
                .map(|w| {
                    let t = Term::from_field_text(text, w);
                    (
                        Occur::Must,
                        Box::new(TermQuery::new(t, IndexRecordOption::Basic))
                            as Box<dyn tantivy::query::Query>,
                    )
                })
                .collect();
            if let Some(p) = &q.prefix {
                // Prefixes are letters only here (a real query escapes them).
                let r = RegexQuery::from_pattern(&format!("{p}.*"), text).unwrap();
                must.push((Occur::Must, Box::new(r)));
            }
            let terms = rooms.iter().map(|&r| Term::from_field_u64(room, r));
            must.push((Occur::Must, Box::new(TermSetQuery::new(terms))));
            let query = BooleanQuery::new(must);
            let searcher = self.reader.searcher();
            let top = searcher
                .search(
                    &query,
                    &TopDocs::with_limit(LIMIT).order_by_u64_field("time", Order::Desc),
                )
                .unwrap();
            top.into_iter()
                .map(|(_, address)| {
                    let segment = searcher.segment_reader(address.segment_ord);
                    let ids = segment.fast_fields().u64("id").unwrap();
                    ids.first(address.doc_id).unwrap()
                })
                .collect()
        }
    }
}

mod with_sqlite {
    use super::*;

    pub(super) struct Sqlite(rusqlite::Connection);

    impl Sqlite {
        pub(super) fn open(dir: &Path) -> Sqlite {
            std::fs::create_dir_all(dir).unwrap();
            let db = rusqlite::Connection::open(dir.join("search.sqlite")).unwrap();
            db.execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = NORMAL;
                 PRAGMA secure_delete = ON;
                 CREATE TABLE IF NOT EXISTS messages(
                     time INTEGER PRIMARY KEY, id INTEGER NOT NULL, room INTEGER NOT NULL);
                 CREATE INDEX IF NOT EXISTS messages_id ON messages(id);
                 CREATE VIRTUAL TABLE IF NOT EXISTS words USING fts5(
                     text, content = '', contentless_delete = 1, detail = none, prefix = '3');
                 INSERT INTO words(words, rank) VALUES('secure-delete', 1);",
            )
            .unwrap();
            Sqlite(db)
        }
    }

    impl Index for Sqlite {
        fn add(&mut self, chatter: &Chatter, rooms: u64, from: u64, to: u64, batch: u64) {
            let mut i = from;
            while i < to {
                let end = (i + batch).min(to);
                let tx = self.0.transaction().unwrap();
                {
                    let mut row = tx
                        .prepare_cached("INSERT INTO messages(time, id, room) VALUES (?1, ?2, ?3)")
                        .unwrap();
                    let mut words = tx
                        .prepare_cached("INSERT INTO words(rowid, text) VALUES (?1, ?2)")
                        .unwrap();
                    for n in i..end {
                        let t = time_of(n) as i64;
                        row.execute((t, n as i64, room_of(n, rooms) as i64))
                            .unwrap();
                        words.execute((t, chatter.message(n))).unwrap();
                    }
                }
                tx.commit().unwrap();
                i = end;
            }
        }

        fn delete(&mut self, i: u64) {
            let tx = self.0.transaction().unwrap();
            let t: i64 = tx
                .query_row("SELECT time FROM messages WHERE id = ?1", [i as i64], |r| {
                    r.get(0)
                })
                .unwrap();
            tx.execute("DELETE FROM words WHERE rowid = ?1", [t])
                .unwrap();
            tx.execute("DELETE FROM messages WHERE time = ?1", [t])
                .unwrap();
            tx.commit().unwrap();
        }

        fn search(&mut self, q: &Query, rooms: &[u64]) -> Vec<u64> {
            // Every word quoted: a person's text is never FTS5 syntax.
            let mut expr: Vec<String> = q.words.iter().map(|w| format!("\"{w}\"")).collect();
            if let Some(p) = &q.prefix {
                expr.push(format!("\"{p}\"*"));
            }
            let rooms: Vec<String> = rooms.iter().map(u64::to_string).collect();
            let sql = format!(
                "SELECT m.id FROM words w JOIN messages m ON m.time = w.rowid \
                 WHERE w.words MATCH ?1 AND m.room IN ({}) ORDER BY w.rowid DESC LIMIT {LIMIT}",
                rooms.join(",")
            );
            let mut stmt = self.0.prepare_cached(&sql).unwrap();
            let rows = stmt
                .query_map([expr.join(" ")], |r| r.get::<_, i64>(0))
                .unwrap();
            rows.map(|r| r.unwrap() as u64).collect()
        }
    }
}

fn open(engine: Engine, dir: &Path) -> Box<dyn Index> {
    match engine {
        Engine::Tantivy => Box::new(with_tantivy::Tantivy::open(dir)),
        Engine::Sqlite => Box::new(with_sqlite::Sqlite::open(dir)),
    }
}

fn mb(kb: u64) -> f64 {
    kb as f64 * 1024.0 / 1e6
}

fn build(engine: Engine, args: &Args) {
    let chatter = Chatter::new();
    archive_benches::reset_peak_rss();
    let started = Instant::now();
    match engine {
        Engine::Tantivy => {
            let mut index = with_tantivy::Tantivy::open(&args.dir);
            index.add(&chatter, args.rooms, 0, args.messages, 100_000);
            index.finish();
        }
        Engine::Sqlite => {
            let mut index = with_sqlite::Sqlite::open(&args.dir);
            index.add(&chatter, args.rooms, 0, args.messages, 100_000);
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let peak = archive_benches::proc_status_kb(None, "VmHWM").unwrap();
    println!(
        "{}",
        serde_json::json!({ "build_secs": secs, "build_peak_mb": mb(peak) })
    );
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn query(engine: Engine, args: &Args) {
    let chatter = Chatter::new();
    archive_benches::reset_peak_rss();
    let mut index = open(engine, &args.dir);
    let rss_open = archive_benches::proc_status_kb(None, "VmRSS").unwrap();
    let rooms = readable(args.rooms);
    let mut kinds: Vec<(&str, Vec<f64>)> = Vec::new();
    let mut all = Vec::new();
    let mut hits = blake3::Hasher::new();
    let mut hit_count = 0usize;
    for q in queries(&chatter) {
        let started = Instant::now();
        let found = index.search(&q, &rooms);
        let ms = started.elapsed().as_secs_f64() * 1e3;
        for i in &found {
            hits.update(&i.to_le_bytes());
        }
        hit_count += found.len();
        all.push(ms);
        match kinds.iter_mut().find(|(k, _)| *k == q.kind) {
            Some((_, v)) => v.push(ms),
            None => kinds.push((q.kind, vec![ms])),
        }
    }
    let rss_queried = archive_benches::proc_status_kb(None, "VmRSS").unwrap();
    all.sort_by(f64::total_cmp);
    let mut per_kind = serde_json::Map::new();
    for (kind, mut v) in kinds {
        v.sort_by(f64::total_cmp);
        per_kind.insert(
            kind.into(),
            serde_json::json!({ "p50_ms": percentile(&v, 0.5), "p99_ms": percentile(&v, 0.99) }),
        );
    }
    // The live feed: one commit per message, then deletions one at a time.
    let started = Instant::now();
    index.add(&chatter, args.rooms, args.messages, args.messages + LIVE, 1);
    let add_ms = started.elapsed().as_secs_f64() * 1e3 / LIVE as f64;
    let started = Instant::now();
    for i in 0..LIVE {
        index.delete(i * 997 % args.messages);
    }
    let delete_ms = started.elapsed().as_secs_f64() * 1e3 / LIVE as f64;
    drop(index);
    let peak = archive_benches::proc_status_kb(None, "VmHWM").unwrap();
    println!(
        "{}",
        serde_json::json!({
            "rss_open_mb": mb(rss_open),
            "rss_queried_mb": mb(rss_queried),
            "peak_mb": mb(peak),
            "p50_ms": percentile(&all, 0.5),
            "p99_ms": percentile(&all, 0.99),
            "kinds": per_kind,
            "hits": hit_count,
            "hits_hash": hits.finalize().to_hex().to_string(),
            "add_ms": add_ms,
            "delete_ms": delete_ms,
        })
    );
}

fn child(engine: Engine, step: &str, dir: &Path, args: &Args) -> serde_json::Value {
    archive_benches::child_json(
        std::process::Command::new(std::env::current_exe().unwrap())
            .arg(step)
            .arg(engine.to_possible_value().unwrap().get_name())
            .arg("--dir")
            .arg(dir)
            .args(["--messages", &args.messages.to_string()])
            .args(["--rooms", &args.rooms.to_string()]),
    )
}

fn main() {
    let args = Args::parse();
    archive_benches::limit_malloc_arenas();
    if let Some(engine) = args.build {
        return build(engine, &args);
    }
    if let Some(engine) = args.query {
        return query(engine, &args);
    }
    let mut hashes = Vec::new();
    for engine in [Engine::Tantivy, Engine::Sqlite] {
        let name = engine.to_possible_value().unwrap().get_name().to_owned();
        let dir = args.dir.join(format!("search-{name}-{}", args.messages));
        let _ = std::fs::remove_dir_all(&dir);
        let mut m = child(engine, "--build", &dir, &args);
        let size = archive_benches::dir_size(&dir);
        let q = child(engine, "--query", &dir, &args);
        std::fs::remove_dir_all(&dir).unwrap();
        hashes.push(q["hits_hash"].clone());
        for (k, v) in q.as_object().unwrap() {
            m[k] = v.clone();
        }
        m["engine"] = name.clone().into();
        m["index_mb"] = (size as f64 / 1e6).into();
        if args.json {
            println!("{m}");
            continue;
        }
        println!(
            "{name}: {} messages indexed in {:.1} s (peak {:.1} MB), index {:.1} MB on disk; \
             opened: {:.1} MB resident, {:.1} MB after the queries, peak {:.1} MB",
            args.messages,
            m["build_secs"].as_f64().unwrap(),
            m["build_peak_mb"].as_f64().unwrap(),
            m["index_mb"].as_f64().unwrap(),
            m["rss_open_mb"].as_f64().unwrap(),
            m["rss_queried_mb"].as_f64().unwrap(),
            m["peak_mb"].as_f64().unwrap(),
        );
        println!(
            "  queries: p50 {:.2} ms, p99 {:.2} ms ({} hits)",
            m["p50_ms"].as_f64().unwrap(),
            m["p99_ms"].as_f64().unwrap(),
            m["hits"]
        );
        for (kind, v) in m["kinds"].as_object().unwrap() {
            println!(
                "    {kind}: p50 {:.2} ms, p99 {:.2} ms",
                v["p50_ms"].as_f64().unwrap(),
                v["p99_ms"].as_f64().unwrap()
            );
        }
        println!(
            "  live: {:.2} ms per message added (one commit each), {:.2} ms per deletion",
            m["add_ms"].as_f64().unwrap(),
            m["delete_ms"].as_f64().unwrap()
        );
    }
    assert_eq!(
        hashes[0], hashes[1],
        "the two engines found different messages"
    );
}
