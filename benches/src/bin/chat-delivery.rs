//! The messenger between two servers on 127.0.0.1 (relays, port mapping and mDNS off), with
//! live delivery as the `chat` crate runs it; raw QUIC on the same loopback as the floor.
//!
//! ```text
//! cargo run --release -p archive-benches --features chat --bin chat-delivery -- \
//!     [--part latency|catch-up|memory|all] [--rooms 100] [--per-room 10000] [--dir DIR] [--json]
//! ```
//! - `latency`: A sends 100 messages a second for 10 s; each one's time from `send` returning
//!   on A to its arrival in B's subscription stream (p50, p99, max), beside the one-way time
//!   of a 200-byte message on an open QUIC stream (half an echo's round trip). Then 5,000 sent
//!   back to back: messages per second from the first send to the last arrival, beside A's
//!   rate of writing them alone.
//! - `catch-up`: A and B share a room; delivery stops both ways (a partition); A writes
//!   10,000 messages; delivery resumes: the time until B has them all, and every byte the two
//!   servers sent each other (entries, content, reconciliation) against the encoded signed
//!   entries plus their message bodies.
//! - `memory`: a server with `--rooms` rooms of `--per-room` messages (built once by a child
//!   process in `DIR/chat-R-M` and kept): in a fresh child process, its resident memory after
//!   opening with the messenger and delivery running, its peak after 500 full-text searches
//!   (with their p50 / p99) on the search index built beside the store
//!   (`DIR/chat-R-M.search.sqlite`), and its peak after reading every room's messages and the
//!   latest 50 events of each.
//! - `gossip`: the alternative live delivery was chosen against: iroh-gossip between two bare
//!   endpoints on the same loopback, one topic, defaults. 1,000 messages of 400 bytes (an
//!   entry and its body) at 100 a second: time from `broadcast` to the other side's stream
//!   (p50, p99), and how many arrived; then 10,000 broadcast back to back: how many arrived.
//!   Messages are made-up chat (`archive_benches::text`): Zipf-distributed words.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use archive_benches::net::Server;
use archive_benches::text::{splitmix, Chatter};
use archive_core::Store;
use chat::{Access, Chat, Delivery, DeliveryConfig, MessageBody, MessageId, RoomEvent, RoomId};
use chat::{ResumeToken, RoomSettings, Search};
use clap::{Parser, ValueEnum};
use iroh::endpoint::Connection;
use iroh::protocol::{AcceptError, ProtocolHandler};
use n0_future::StreamExt;

#[derive(Debug, Parser)]
#[command(about = "The messenger between two servers on 127.0.0.1")]
struct Args {
    #[arg(long, value_enum, default_value_t = Part::All)]
    part: Part,
    /// Rooms of the memory part's server.
    #[arg(long, default_value_t = 100)]
    rooms: usize,
    /// Messages in each of its rooms.
    #[arg(long, default_value_t = 10_000)]
    per_room: usize,
    /// Where the memory part's store is built (and kept).
    #[arg(long, default_value = "/var/tmp")]
    dir: PathBuf,
    /// Print one JSON object per part instead of text.
    #[arg(long)]
    json: bool,
    /// (Internal) build the memory part's store in DIR and exit.
    #[arg(long, hide = true)]
    build_only: Option<PathBuf>,
    /// (Internal) measure the memory part's store in DIR.
    #[arg(long, hide = true)]
    measure: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Part {
    Latency,
    CatchUp,
    Memory,
    Gossip,
    All,
}

const ECHO_ALPN: &[u8] = b"archive-bench/echo/0";

/// Sends back every byte it reads: the raw QUIC floor.
#[derive(Debug, Clone)]
struct Echo;

impl ProtocolHandler for Echo {
    async fn accept(&self, conn: Connection) -> Result<(), AcceptError> {
        while let Ok((mut send, mut recv)) = conn.accept_bi().await {
            let mut buf = [0u8; 200];
            while recv.read_exact(&mut buf).await.is_ok() {
                if send.write_all(&buf).await.is_err() {
                    break;
                }
            }
        }
        Ok(())
    }
}

/// A server with the messenger and live delivery.
struct ChatServer {
    server: Server,
    chat: Chat,
    delivery: Delivery,
}

impl ChatServer {
    async fn start(dir: &Path) -> ChatServer {
        let server = Server::start_with(dir, Some((ECHO_ALPN, Echo))).await;
        let chat = Chat::new(server.node.store().clone());
        with_people(&chat);
        let delivery = Delivery::start(
            chat.clone(),
            server.node.clone(),
            server.endpoint().clone(),
            DeliveryConfig::default(),
        );
        ChatServer {
            server,
            chat,
            delivery,
        }
    }

    fn pair(&self, other: &ChatServer) {
        self.server.pair(&other.server);
        self.delivery.add_peer(other.server.endpoint().addr());
        other.delivery.add_peer(self.server.endpoint().addr());
    }

    fn unpair(&self, other: &ChatServer) {
        self.delivery.remove_peer(other.server.endpoint().id());
        other.delivery.remove_peer(self.server.endpoint().id());
    }

    /// Arrival times of the messages of `room` on this server, from now on.
    fn arrivals(&self, room: &RoomId) -> Arc<Mutex<HashMap<MessageId, Instant>>> {
        let seen = Arc::new(Mutex::new(HashMap::new()));
        let mut stream = Box::pin(self.chat.subscribe(room, ResumeToken::default()));
        let record = seen.clone();
        tokio::spawn(async move {
            while let Some(Ok(page)) = stream.next().await {
                let now = Instant::now();
                let mut seen = record.lock().unwrap();
                for event in page.events {
                    if let RoomEvent::Message { id, .. } = event {
                        seen.entry(id).or_insert(now);
                    }
                }
            }
        });
        seen
    }
}

/// The accounts the benchmark writes as (made once per store; ana is its admin).
fn with_people(chat: &Chat) {
    // Measured here: delivery, not the pace people are held to.
    chat.set_pace(chat::PacePolicy {
        per_minute: u32::MAX,
        new_account_for: Duration::ZERO,
        new_account_every: Duration::ZERO,
    });
    if chat.account("ana").unwrap().is_none() {
        chat.create_account(None, "ana", "Ana").unwrap();
    }
    for name in ["bo", "cy", "dee"] {
        if chat.account(name).unwrap().is_none() {
            chat.create_account(Some("ana"), name, name).unwrap();
        }
    }
}

/// The made-up chat every part sends (see `archive_benches::text`).
fn chatter() -> &'static Chatter {
    static CHATTER: std::sync::OnceLock<Chatter> = std::sync::OnceLock::new();
    CHATTER.get_or_init(Chatter::new)
}

fn body(i: usize) -> MessageBody {
    MessageBody {
        text: chatter().message(i as u64),
        reply_to: None,
        attachments: Vec::new(),
    }
}

async fn shared_room(a: &ChatServer, b: &ChatServer) -> RoomId {
    let settings = RoomSettings {
        name: "bench".into(),
        topic: String::new(),
        access: Access::Open,
        servers: vec![b.chat.server()],
        history: Default::default(),
    };
    let room = a.chat.create_room("ana", settings).expect("room");
    wait(Duration::from_secs(10), || {
        b.chat.rooms().unwrap().contains(&room)
    })
    .await;
    room
}

async fn wait(limit: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    start.elapsed()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn latency(json: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let a = ChatServer::start(&tmp.path().join("a")).await;
    let b = ChatServer::start(&tmp.path().join("b")).await;
    a.pair(&b);
    let room = shared_room(&a, &b).await;
    let seen = b.arrivals(&room);

    // 100 messages a second for 10 s.
    let mut sent = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    for i in 0..1000 {
        tick.tick().await;
        let id = a.chat.send(&room, "ana", &body(i)).unwrap();
        sent.push((id, Instant::now()));
    }
    wait(Duration::from_secs(60), || {
        seen.lock().unwrap().len() >= 1000
    })
    .await;
    let mut lat: Vec<f64> = {
        let seen = seen.lock().unwrap();
        sent.iter()
            .map(|(id, at)| ms(seen[id].saturating_duration_since(*at)))
            .collect()
    };
    lat.sort_by(f64::total_cmp);

    // The floor: half an echo's round trip on an open QUIC stream, 1,000 times.
    let conn = a
        .server
        .endpoint()
        .connect(b.server.endpoint().addr(), ECHO_ALPN)
        .await
        .unwrap();
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    let mut quic = Vec::new();
    let mut buf = [7u8; 200];
    for _ in 0..1000 {
        let start = Instant::now();
        send.write_all(&buf).await.unwrap();
        recv.read_exact(&mut buf).await.unwrap();
        quic.push(ms(start.elapsed()) / 2.0);
        tick.tick().await;
    }
    quic.sort_by(f64::total_cmp);

    // Back to back: 5,000 messages as fast as A writes them.
    let burst_room = shared_room(&a, &b).await;
    let burst_seen = b.arrivals(&burst_room);
    let chat = a.chat.clone();
    let start = Instant::now();
    let write_secs = tokio::task::spawn_blocking(move || {
        for i in 0..5000 {
            chat.send(&burst_room, "ana", &body(i)).unwrap();
        }
        start.elapsed().as_secs_f64()
    })
    .await
    .unwrap();
    wait(Duration::from_secs(120), || {
        burst_seen.lock().unwrap().len() >= 5000
    })
    .await;
    let total_secs = start.elapsed().as_secs_f64();

    let report = serde_json::json!({
        "part": "latency",
        "messages": 1000,
        "rate_per_sec": 100,
        "p50_ms": percentile(&lat, 0.5),
        "p99_ms": percentile(&lat, 0.99),
        "max_ms": lat[lat.len() - 1],
        "quic_one_way_p50_ms": percentile(&quic, 0.5),
        "quic_one_way_p99_ms": percentile(&quic, 0.99),
        "burst_messages": 5000,
        "burst_delivered_per_sec": 5000.0 / total_secs,
        "burst_written_per_sec": 5000.0 / write_secs,
    });
    if json {
        println!("{report}");
    } else {
        println!(
            "latency at 100 msg/s over 1,000 messages: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms \
             (raw QUIC one way: p50 {:.2} ms, p99 {:.2} ms)",
            percentile(&lat, 0.5),
            percentile(&lat, 0.99),
            lat[lat.len() - 1],
            percentile(&quic, 0.5),
            percentile(&quic, 0.99),
        );
        println!(
            "5,000 back to back: delivered {:.0} msg/s (A writes {:.0} msg/s alone)",
            5000.0 / total_secs,
            5000.0 / write_secs
        );
    }
}

async fn catch_up(json: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let a = ChatServer::start(&tmp.path().join("a")).await;
    let b = ChatServer::start(&tmp.path().join("b")).await;
    a.pair(&b);
    let room = shared_room(&a, &b).await;
    a.unpair(&b);
    tokio::time::sleep(Duration::from_millis(200)).await;

    let messages = a
        .chat
        .store()
        .collection(&room.messages_collection())
        .unwrap();
    let before = messages.arrivals(0, usize::MAX).unwrap().next;
    for chunk in 0..100 {
        let bodies: Vec<_> = (0..100).map(|i| body(chunk * 100 + i)).collect();
        a.chat.send_many(&room, "ana", &bodies).unwrap();
    }
    let written = messages.arrivals(before, usize::MAX).unwrap().entries;
    let entry_bytes: u64 = written.iter().map(|e| e.encoded().len() as u64).sum();
    let body_bytes: u64 = written
        .iter()
        .map(|e| match &e.entry().value {
            archive_core::EntryValue::File(f) => f.size,
            _ => 0,
        })
        .sum();
    let seen = b.arrivals(&room);
    let (sa, sb) = (a.delivery.stats(), b.delivery.stats());

    let start = Instant::now();
    a.pair(&b);
    wait(Duration::from_secs(120), || {
        seen.lock().unwrap().len() >= 10_000
    })
    .await;
    let secs = start.elapsed().as_secs_f64();
    // Settle: the syncs that brought them report once they end.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (ea, eb) = (a.delivery.stats(), b.delivery.stats());
    let moved = |s: &chat::DeliveryStats| s.bytes_sent + s.bytes_received + s.reconcile_bytes;
    let wire = moved(&ea) - moved(&sa) + moved(&eb) - moved(&sb);
    let report = serde_json::json!({
        "part": "catch-up",
        "missed": 10_000,
        "secs": secs,
        "bytes": wire,
        "entry_bytes": entry_bytes,
        "body_bytes": body_bytes,
        "ratio_to_entries_and_bodies": wire as f64 / (entry_bytes + body_bytes) as f64,
        "ratio_to_entries": wire as f64 / entry_bytes as f64,
    });
    if json {
        println!("{report}");
    } else {
        println!(
            "catch-up of 10,000 missed messages: {secs:.2} s, {wire} bytes between the two \
             servers = {:.2}x the signed entries and bodies ({entry_bytes} + {body_bytes} \
             bytes; {:.2}x the entries alone)",
            wire as f64 / (entry_bytes + body_bytes) as f64,
            wire as f64 / entry_bytes as f64,
        );
    }
}

fn build(dir: &Path, rooms: usize, per_room: usize) {
    let store = Arc::new(Store::init(dir).expect("store"));
    let chat = Chat::new(store);
    with_people(&chat);
    for r in 0..rooms {
        let settings = RoomSettings {
            name: format!("room {r}"),
            topic: String::new(),
            access: Access::Open,
            servers: vec![],
            history: Default::default(),
        };
        let room = chat.create_room("ana", settings).unwrap();
        let mut i = 0;
        while i < per_room {
            let n = (per_room - i).min(5000);
            let who = ["ana", "bo", "cy", "dee"][(i / 5000) % 4];
            let bodies: Vec<_> = (i..i + n).map(body).collect();
            chat.send_many(&room, who, &bodies).unwrap();
            i += n;
        }
    }
    let started = Instant::now();
    let search = Search::open(&chat, &search_path(dir)).unwrap();
    search.catch_up().unwrap();
    eprintln!(
        "indexed {} messages for search in {:.1} s",
        search.indexed_messages().unwrap(),
        started.elapsed().as_secs_f64()
    );
}

/// The search index of the memory part's store, beside it.
fn search_path(dir: &Path) -> PathBuf {
    dir.with_extension("search.sqlite")
}

/// Searches as a person would, through the whole index (`Search::search`, 20 hits a page):
/// a common word, a middling one, a rare one, two words, a three-letter prefix, 100 of each.
/// Returns the p50 and p99 in milliseconds.
fn search_latency(chat: &Chat, dir: &Path) -> (f64, f64) {
    let search = Search::open(chat, &search_path(dir)).unwrap();
    let words = chatter();
    let mut state = 7u64;
    let mut pick = |from: usize, to: usize| from + (splitmix(&mut state) as usize) % (to - from);
    let mut times = Vec::new();
    for _ in 0..100 {
        let prefix = &words.word(pick(500, 5000))[..3];
        let queries = [
            words.word(pick(0, 10)).to_owned(),
            words.word(pick(100, 1000)).to_owned(),
            words.word(pick(5000, 30_000)).to_owned(),
            format!(
                "{} {}",
                words.word(pick(20, 300)),
                words.word(pick(20, 300))
            ),
            prefix.to_owned(),
        ];
        for q in queries {
            let started = Instant::now();
            search.search("bo", &q, None, 20).unwrap();
            let ms = started.elapsed().as_secs_f64() * 1e3;
            if ms > 10.0 {
                eprintln!("SLOW {q:?} {ms:.1}");
            }
            times.push(ms);
        }
    }
    times.sort_by(f64::total_cmp);
    let at = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    (at(0.5), at(0.99))
}

async fn measure(dir: &Path) {
    archive_benches::reset_peak_rss();
    let opened = Instant::now();
    let server = ChatServer::start(dir).await;
    let rooms = server.chat.rooms().unwrap();
    let open_secs = opened.elapsed().as_secs_f64();
    let rss_open = archive_benches::proc_status_kb(None, "VmRSS").unwrap();
    // Searches first, so their peak is theirs alone.
    let (search_p50, search_p99) = search_latency(&server.chat, dir);
    let search_peak = archive_benches::proc_status_kb(None, "VmHWM").unwrap();
    let mut shown = 0;
    let mut events = 0;
    for room in &rooms {
        shown += server.chat.messages(room).unwrap().len();
        // What a phone asks for first: the latest events (a token near the end).
        let all = server
            .chat
            .events(room, ResumeToken::default(), usize::MAX)
            .unwrap();
        events += all.events.len().min(50);
    }
    let peak = archive_benches::proc_status_kb(None, "VmHWM").unwrap();
    println!(
        "{}",
        serde_json::json!({
            "search_peak_mb": search_peak as f64 * 1024.0 / 1e6,
            "search_p50_ms": search_p50,
            "search_p99_ms": search_p99,
            "rooms": rooms.len(),
            "messages": shown,
            "events": events,
            "open_secs": open_secs,
            "rss_open_mb": rss_open as f64 * 1024.0 / 1e6,
            "peak_mb": peak as f64 * 1024.0 / 1e6,
        })
    );
}

fn memory(args: &Args) {
    let dir = args
        .dir
        .join(format!("chat-{}-{}", args.rooms, args.per_room));
    let exe = std::env::current_exe().unwrap();
    if !dir.join("archive.redb").exists() && !dir.exists() {
        let started = Instant::now();
        let status = std::process::Command::new(&exe)
            .arg("--build-only")
            .arg(&dir)
            .args(["--rooms", &args.rooms.to_string()])
            .args(["--per-room", &args.per_room.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "building the store failed");
        eprintln!(
            "built {} in {:.0} s",
            dir.display(),
            started.elapsed().as_secs_f64()
        );
    }
    let m =
        archive_benches::child_json(std::process::Command::new(&exe).arg("--measure").arg(&dir));
    let disk = archive_benches::dir_size(&dir);
    let index = std::fs::metadata(search_path(&dir)).map_or(0, |m| m.len());
    if args.json {
        let mut m = m;
        m["part"] = "memory".into();
        m["disk_bytes"] = disk.into();
        m["search_index_bytes"] = index.into();
        println!("{m}");
    } else {
        println!(
            "a server with {} rooms and {} messages ({:.0} MB on disk, search index {:.0} MB): \
             {:.1} MB resident after opening (in {:.2} s), peak {:.1} MB after 500 searches \
             (p50 {:.2} ms, p99 {:.2} ms), {:.1} MB after reading every room too",
            m["rooms"],
            m["messages"],
            disk as f64 / 1e6,
            index as f64 / 1e6,
            m["rss_open_mb"].as_f64().unwrap(),
            m["open_secs"].as_f64().unwrap(),
            m["search_peak_mb"].as_f64().unwrap(),
            m["search_p50_ms"].as_f64().unwrap(),
            m["search_p99_ms"].as_f64().unwrap(),
            m["peak_mb"].as_f64().unwrap(),
        );
    }
}

fn main() {
    let args = Args::parse();
    test_support::limit_malloc_arenas();
    if let Some(dir) = &args.build_only {
        build(dir, args.rooms, args.per_room);
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if let Some(dir) = &args.measure {
        runtime.block_on(measure(dir));
        return;
    }
    if matches!(args.part, Part::Memory | Part::All) {
        memory(&args);
    }
    if matches!(args.part, Part::Latency | Part::All) {
        runtime.block_on(latency(args.json));
    }
    if matches!(args.part, Part::CatchUp | Part::All) {
        runtime.block_on(catch_up(args.json));
    }
    if matches!(args.part, Part::Gossip | Part::All) {
        runtime.block_on(gossip(args.json));
    }
}

/// One bare endpoint on 127.0.0.1 with iroh-gossip, addresses looked up in `lookup`.
async fn gossip_node(
    lookup: &iroh::address_lookup::MemoryLookup,
) -> (iroh::protocol::Router, iroh_gossip::net::Gossip) {
    let endpoint = iroh::Endpoint::builder(iroh::endpoint::presets::Minimal)
        .relay_mode(iroh::RelayMode::Disabled)
        .portmapper_config(iroh::endpoint::PortmapperConfig::Disabled)
        .clear_ip_transports()
        .bind_addr("127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap())
        .unwrap()
        .address_lookup(lookup.clone())
        .bind()
        .await
        .unwrap();
    let gossip = iroh_gossip::net::Gossip::builder().spawn(endpoint.clone());
    let router = iroh::protocol::Router::builder(endpoint)
        .accept(iroh_gossip::ALPN, gossip.clone())
        .spawn();
    (router, gossip)
}

async fn gossip(json: bool) {
    use iroh_gossip::api::Event;
    let lookup = iroh::address_lookup::MemoryLookup::new();
    let (router_a, gossip_a) = gossip_node(&lookup).await;
    let (router_b, gossip_b) = gossip_node(&lookup).await;
    lookup.add_endpoint_info(router_a.endpoint().addr());
    lookup.add_endpoint_info(router_b.endpoint().addr());
    let topic = iroh_gossip::TopicId::from_bytes([7; 32]);
    let (sub_b, sub_a) = tokio::join!(
        gossip_b.subscribe(topic, vec![router_a.endpoint().id()]),
        gossip_a.subscribe_and_join(topic, vec![router_b.endpoint().id()]),
    );
    let mut sub_b = sub_b.unwrap();
    let sub_a = sub_a.unwrap();
    sub_b.joined().await.unwrap();
    let (sender, _receiver_a) = sub_a.split();
    // B's side: the arrival time of each message number, and how often it lagged.
    let seen: Arc<Mutex<HashMap<u64, Instant>>> = Default::default();
    let lagged = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let receiving = tokio::spawn({
        let seen = seen.clone();
        let lagged = lagged.clone();
        async move {
            while let Some(event) = sub_b.next().await {
                match event {
                    Ok(Event::Received(m)) => {
                        let n = u64::from_le_bytes(m.content[..8].try_into().unwrap());
                        seen.lock().unwrap().insert(n, Instant::now());
                    }
                    Ok(Event::Lagged) => {
                        lagged.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        }
    });
    let message = |n: u64| {
        let mut m = vec![0u8; 400];
        m[..8].copy_from_slice(&n.to_le_bytes());
        bytes::Bytes::from(m)
    };
    let mut sent = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    for n in 0..1000u64 {
        tick.tick().await;
        sender.broadcast(message(n)).await.unwrap();
        sent.push((n, Instant::now()));
    }
    let quiet = |seen: &Arc<Mutex<HashMap<u64, Instant>>>, want: usize| {
        let seen = seen.clone();
        async move {
            // Until all arrived, or nothing more for 3 s.
            let mut last = (0, Instant::now());
            loop {
                let n = seen.lock().unwrap().len();
                if n >= want || last.1.elapsed() > Duration::from_secs(3) {
                    return n;
                }
                if n != last.0 {
                    last = (n, Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let paced = quiet(&seen, 1000).await;
    let mut lat: Vec<f64> = {
        let seen = seen.lock().unwrap();
        sent.iter()
            .filter_map(|(n, at)| seen.get(n).map(|t| ms(t.saturating_duration_since(*at))))
            .collect()
    };
    lat.sort_by(f64::total_cmp);
    seen.lock().unwrap().clear();
    for n in 1_000_000..1_010_000u64 {
        sender.broadcast(message(n)).await.unwrap();
    }
    let burst = quiet(&seen, 10_000).await;
    let lagged = lagged.load(std::sync::atomic::Ordering::Relaxed);
    receiving.abort();
    router_a.shutdown().await.unwrap();
    router_b.shutdown().await.unwrap();
    let report = serde_json::json!({
        "part": "gossip",
        "paced_sent": 1000,
        "paced_arrived": paced,
        "p50_ms": percentile(&lat, 0.5),
        "p99_ms": percentile(&lat, 0.99),
        "burst_sent": 10_000,
        "burst_arrived": burst,
        "lagged": lagged,
    });
    if json {
        println!("{report}");
    } else {
        println!(
            "iroh-gossip, 1,000 at 100 msg/s: {paced} arrived, p50 {:.2} ms, p99 {:.2} ms; \
             10,000 back to back: {burst} arrived ({lagged} lagged events)",
            percentile(&lat, 0.5),
            percentile(&lat, 0.99),
        );
    }
}
