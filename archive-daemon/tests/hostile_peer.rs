//! A hostile paired peer against a real `archive serve` on 127.0.0.1 (issue 11, points 2, 3,
//! 4, 5, 6, 7 and 11). The peer is written here with the protocol's own wire types and signs
//! what it likes: far-future entries, times of u64::MAX, blobs sent as manifests that are not
//! manifests, 32 MiB manifests, a flood of entries, blobs that hash wrong; it stops reading.
//! Whatever it does, the victim's memory stays under 200 MB, its quota is never exceeded, its
//! own new writes still win, nothing unverified is stored, and it keeps serving others.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use archive_core::sync::{MemoryIndex, Reconciler, SyncKey};
use archive_core::{
    Certificate, Entry, EntryId, EntryValue, FileRef, Hash, SecretKey, SignedEntry, Timestamp,
};
use archive_net::wire::{
    encode_frame, read_frame, write_frame, BlobHeader, EntryReply, ReconcileStep, Request,
};
use archive_net::{bind_endpoint, NetConfig, NetError, PeerPolicy, Ticket, Trust, ALPN};
use iroh::endpoint::{Connection, RecvStream, SendStream};
use iroh::protocol::{AcceptError, ProtocolHandler, Router};

use crate::harness::{pseudo_random, write_file, Archive};
use crate::network::{id_of, Serving};

/// The victim's memory may not pass this, whatever the peer does.
const RSS_LIMIT_KB: u64 = 200 * 1024;

/// A victim: a real `archive serve`, with these network settings.
struct Victim {
    a: Archive,
    server: Serving,
}

impl Victim {
    fn start(settings: &str) -> Victim {
        let a = Archive::initialised();
        let base = r#""mdns": false, "client_bind": "127.0.0.1:0", "timeout_secs": 3"#;
        let json = if settings.is_empty() {
            format!("{{{base}}}")
        } else {
            format!("{{{base}, {settings}}}")
        };
        std::fs::write(a.data_dir().join("net.json"), json).unwrap();
        let server = Serving::start(&a);
        Victim { a, server }
    }

    /// Peak resident memory of the server process so far, in KiB.
    fn peak_rss_kb(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.server.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    fn assert_memory_bounded(&self) {
        let peak = self.peak_rss_kb();
        eprintln!("victim peak RSS: {} MiB", peak / 1024);
        assert!(peak < RSS_LIMIT_KB, "victim peak RSS {peak} KiB");
    }

    fn stats(&self) -> serde_json::Value {
        self.a.json(&["stats"])
    }

    /// Pulls from the hostile peer: (exit code, JSON report or null, stderr).
    fn pull_from(&self, name: &str) -> (i32, serde_json::Value, String) {
        let out = self.a.run(&["sync", name, "--pull", "--json"]);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let json = serde_json::from_str(stdout.trim()).unwrap_or(serde_json::Value::Null);
        (
            out.status.code().unwrap_or(-1),
            json,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// A blob as the peer serves it.
#[derive(Clone)]
enum Blob {
    /// These bytes, correctly encoded.
    Bytes(Arc<Vec<u8>>),
    /// Bytes made on demand (large ones), correctly encoded.
    Made(fn(u64) -> Vec<u8>, u64),
    /// These bytes' size, with one byte of the encoding flipped.
    Flipped(Arc<Vec<u8>>),
    /// A header announcing this many bytes, then nothing.
    Announced(u64),
}

impl Blob {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Blob::Bytes(b) | Blob::Flipped(b) => b.to_vec(),
            Blob::Made(make, seed) => make(*seed),
            Blob::Announced(_) => Vec::new(),
        }
    }
}

/// The bao encoding of a whole blob (16 KiB chunk groups, as the protocol moves blobs) and
/// its hash.
fn bao_encode(data: &[u8]) -> (Hash, Vec<u8>) {
    use bao_tree::io::outboard::PostOrderMemOutboard;
    let ob = PostOrderMemOutboard::create(data, bao_tree::BlockSize::from_chunk_log(4));
    let mut out = Vec::new();
    bao_tree::io::sync::encode_ranges_validated(data, &ob, &bao_tree::ChunkRanges::all(), &mut out)
        .unwrap();
    (Hash::from_bytes(*ob.root.as_bytes()), out)
}

/// What the hostile peer has to offer.
#[derive(Clone, Default)]
struct Offer {
    entries: HashMap<EntryId, Vec<u8>>,
    items: Vec<SyncKey>,
    blobs: HashMap<Hash, Blob>,
    /// Sent before the entries of every `GetEntries` reply.
    certificates: Vec<Vec<u8>>,
}

impl Offer {
    fn entry(&mut self, e: &SignedEntry) {
        self.entry_as(e, e.encoded().to_vec());
    }

    /// Offers `e` as these bytes (e.g. with its signature broken).
    fn entry_as(&mut self, e: &SignedEntry, bytes: Vec<u8>) {
        self.items.push(SyncKey {
            time: e.entry().time.raw(),
            id: e.id(),
        });
        self.entries.insert(e.id(), bytes);
    }

    fn blob(&mut self, blob: Blob) -> Hash {
        let hash = Hash::of(&blob.bytes());
        self.blobs.insert(hash, blob);
        hash
    }
}

/// The hostile peer's protocol handler: it answers the victim's requests from `offer`.
#[derive(Clone)]
struct Hostile {
    offer: Arc<Offer>,
    /// Every blob the victim asked for.
    asked: Arc<std::sync::Mutex<Vec<Hash>>>,
}

impl std::fmt::Debug for Hostile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hostile")
    }
}

impl ProtocolHandler for Hostile {
    async fn accept(&self, conn: Connection) -> Result<(), AcceptError> {
        while let Ok((send, recv)) = conn.accept_bi().await {
            let this = self.clone();
            tokio::spawn(async move {
                let _ = this.answer(send, recv).await;
            });
        }
        Ok(())
    }
}

impl Hostile {
    async fn answer(&self, mut send: SendStream, mut recv: RecvStream) -> Result<(), NetError> {
        let t = Duration::from_secs(10);
        let request: Request = read_frame(&mut recv, 8 << 20, t).await?;
        match request {
            Request::Reconcile { frame, .. } => {
                let index = MemoryIndex::new(self.offer.items.iter().copied());
                let mut r = Reconciler::new(index, Default::default()).unwrap();
                let mut frame = frame;
                loop {
                    match r.receive(&frame).unwrap() {
                        Some(out) => {
                            write_frame(&mut send, &ReconcileStep::Frame(out)).await?;
                            match read_frame(&mut recv, 2 << 20, t).await? {
                                ReconcileStep::Frame(f) => frame = f,
                                _ => {
                                    write_frame(&mut send, &ReconcileStep::Done(None)).await?;
                                    break;
                                }
                            }
                        }
                        None => {
                            write_frame(&mut send, &ReconcileStep::Done(None)).await?;
                            let _: ReconcileStep = read_frame(&mut recv, 2 << 20, t).await?;
                            break;
                        }
                    }
                }
            }
            Request::GetEntries { keys, .. } => {
                for c in &self.offer.certificates {
                    write_frame(&mut send, &EntryReply::Certificate(c.clone())).await?;
                }
                for key in keys {
                    let reply = match self.offer.entries.get(&key.id) {
                        Some(e) => EntryReply::Entry(e.clone()),
                        None => EntryReply::Missing(key.id),
                    };
                    write_frame(&mut send, &reply).await?;
                }
                write_frame(&mut send, &EntryReply::End).await?;
            }
            Request::GetBlobs { hashes } => {
                for h in hashes {
                    self.asked.lock().unwrap().push(h);
                    let Some(blob) = self.offer.blobs.get(&h) else {
                        write_frame(&mut send, &BlobHeader::Missing).await?;
                        continue;
                    };
                    if let Blob::Announced(size) = blob {
                        let header = encode_frame(&BlobHeader::Found { size: *size });
                        send.write_all(&header).await.map_err(NetError::from)?;
                        break;
                    }
                    let data = blob.bytes();
                    let (_, mut encoded) = bao_encode(&data);
                    if let Blob::Flipped(_) = blob {
                        let mid = encoded.len() / 2;
                        encoded[mid] ^= 0x40;
                    }
                    let header = encode_frame(&BlobHeader::Found {
                        size: data.len() as u64,
                    });
                    send.write_all(&header).await.map_err(NetError::from)?;
                    send.write_all(&encoded).await.map_err(NetError::from)?;
                }
            }
            _ => {}
        }
        let _ = send.finish();
        let _ = tokio::time::timeout(t, send.stopped()).await;
        Ok(())
    }
}

/// The hostile peer, serving `offer`, paired with the victim (and the victim with it, with
/// write access to everything).
struct Peer {
    router: Router,
    runtime: tokio::runtime::Runtime,
    asked: Arc<std::sync::Mutex<Vec<Hash>>>,
}

impl Peer {
    fn key() -> SecretKey {
        SecretKey::from_bytes([0x66; 32])
    }

    fn serve(victim: &Victim, offer: Offer) -> Peer {
        Peer::serve_paired(victim, offer, &[])
    }

    /// Serves `offer`; the victim pairs it with `access` (e.g. `--read` and `--write` lists).
    fn serve_paired(victim: &Victim, offer: Offer, access: &[&str]) -> Peer {
        let key = Peer::key();
        let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let victim_id: iroh::EndpointId = id_of(&victim.a).parse().unwrap();
        let router = runtime.block_on(async {
            let trust = Trust::default();
            trust.set(victim_id, PeerPolicy::default());
            let config = NetConfig {
                bind: Some("127.0.0.1:0".parse().unwrap()),
                ..NetConfig::default()
            };
            let endpoint = bind_endpoint(&key, &config, &trust).await.unwrap();
            Router::builder(endpoint)
                .accept(
                    ALPN,
                    Hostile {
                        offer: Arc::new(offer),
                        asked: asked.clone(),
                    },
                )
                .spawn()
        });
        let ticket = Ticket {
            id: router.endpoint().id(),
            addrs: router.endpoint().addr().ip_addrs().copied().collect(),
        };
        let ticket = ticket.to_string();
        let mut add = vec!["peer", "add", ticket.as_str(), "--name", "h"];
        add.extend_from_slice(access);
        victim.a.ok(&add);
        Peer {
            router,
            runtime,
            asked,
        }
    }

    /// Every blob the victim asked this peer for so far.
    fn asked(&self) -> Vec<Hash> {
        self.asked.lock().unwrap().clone()
    }

    /// Asks the victim for a blob over a connection of its own: the header of the answer.
    fn get_blob(&self, victim: &Victim, hash: Hash) -> BlobHeader {
        let ticket: Ticket = victim.server.ticket().parse().unwrap();
        let endpoint = self.router.endpoint().clone();
        self.runtime.block_on(async move {
            let mut addr = iroh::EndpointAddr::new(ticket.id);
            for a in &ticket.addrs {
                addr = addr.with_ip_addr(*a);
            }
            let conn = endpoint.connect(addr, ALPN).await.unwrap();
            let (mut send, mut recv) = conn.open_bi().await.unwrap();
            let request = Request::GetBlobs { hashes: vec![hash] };
            write_frame(&mut send, &request).await.unwrap();
            read_frame(&mut recv, 1 << 20, Duration::from_secs(5))
                .await
                .unwrap()
        })
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let router = self.router.clone();
        self.runtime.block_on(async move {
            let _ = tokio::time::timeout(Duration::from_secs(2), router.shutdown()).await;
        });
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

const YEAR_MS: u64 = 365 * 24 * 3600 * 1000;
const YEAR_3000_MS: u64 = 32_503_680_000_000;

fn signed(key: &SecretKey, path: &str, value: EntryValue, time: Timestamp) -> SignedEntry {
    SignedEntry::sign(
        Entry {
            collection: "default".into(),
            key: path.into(),
            value,
            author: key.public(),
            time,
            meta: archive_core::FileMeta::default(),
            message: archive_core::MessageFields::default(),
        },
        key,
    )
    .unwrap()
}

fn small_file(offer: &mut Offer, bytes: &[u8]) -> FileRef {
    let hash = offer.blob(Blob::Bytes(Arc::new(bytes.to_vec())));
    FileRef {
        hash,
        size: bytes.len() as u64,
        manifest: None,
    }
}

/// Points 2 and 5 (of the review): a peer's entries dated in the year 3000 or at u64::MAX are
/// refused (and said so), entries within the rule are taken, and the victim's own new writes
/// and removals still win afterwards.
#[test]
fn far_future_times_are_refused_and_latest_wins_still_works() {
    let victim = Victim::start("");
    write_file(&victim.a.path("notes"), b"victim's version 1\n");
    victim.a.ok(&[
        "add",
        victim.a.path("notes").to_str().unwrap(),
        "--as",
        "notes.txt",
    ]);
    let key = Peer::key();
    let mut offer = Offer::default();
    let evil = small_file(&mut offer, b"from the peer\n");
    let far = [
        Timestamp::from_unix_millis(YEAR_3000_MS),
        Timestamp::from_raw(u64::MAX),
    ];
    for t in far {
        offer.entry(&signed(&key, "notes.txt", EntryValue::File(evil), t));
    }
    // Four years ahead of now: within the rule (a correct peer ahead of a wrong clock).
    let ahead = Timestamp::from_unix_millis(now_ms() + 4 * YEAR_MS);
    offer.entry(&signed(&key, "notes.txt", EntryValue::File(evil), ahead));
    let ok_file = small_file(&mut offer, b"an ordinary file\n");
    let now = Timestamp::from_unix_millis(now_ms());
    offer.entry(&signed(&key, "other.txt", EntryValue::File(ok_file), now));
    let _peer = Peer::serve(&victim, offer);

    let (code, report, err) = victim.pull_from("h");
    assert_eq!(code, 1, "{report} {err}");
    let refused = report["refused"].as_array().unwrap();
    assert_eq!(refused.len(), 2, "{report}");
    assert!(
        refused.iter().all(|r| r["reason"]
            .as_str()
            .unwrap()
            .contains("later than this server accepts")),
        "{report}"
    );
    assert!(err.contains("refused entry"), "{err}");
    assert_eq!(victim.a.ok(&["get", "other.txt"]), "an ordinary file\n");
    assert_eq!(victim.a.ok(&["get", "notes.txt"]), "from the peer\n");
    // The victim's own writes still take effect.
    write_file(&victim.a.path("notes2"), b"victim's version 2\n");
    victim.a.ok(&[
        "add",
        victim.a.path("notes2").to_str().unwrap(),
        "--as",
        "notes.txt",
    ]);
    assert_eq!(victim.a.ok(&["get", "notes.txt"]), "victim's version 2\n");
    victim.a.ok(&["rm", "notes.txt"]);
    assert!(!victim.a.ok(&["ls"]).contains("notes.txt"));
    // Refused is not remembered: the next sync refuses them again, and takes nothing else.
    let (code, report, _) = victim.pull_from("h");
    assert_eq!(code, 1);
    assert_eq!(report["refused"].as_array().unwrap().len(), 2, "{report}");
    assert!(victim.a.ok(&["verify"]).contains("all intact"));
    victim.assert_memory_bounded();
}

/// Point 3: a blob sent as a manifest that is no manifest of its file is never stored: one
/// announced longer than any manifest of the file is not even read, one that is short enough
/// is read, checked, and its entry denied for good; the rest of the sync goes on, and later
/// syncs with the peer do not fail on it.
#[test]
fn blobs_sent_as_manifests_that_are_not_are_never_stored() {
    let victim = Victim::start(r#""quota_bytes": 1048576"#);
    let key = Peer::key();
    let mut offer = Offer::default();
    let now = || Timestamp::from_unix_millis(now_ms());
    // 1 MiB of noise as the "manifest" of a 3 MiB file (whose longest manifest is ~2 KB).
    let big_noise = offer.blob(Blob::Bytes(Arc::new(pseudo_random(1 << 20, 1))));
    let file_a = FileRef {
        hash: Hash::of(b"whatever"),
        size: 3 << 20,
        manifest: Some(big_noise),
    };
    offer.entry(&signed(&key, "a.bin", EntryValue::File(file_a), now()));
    // 1 KB of noise as the manifest of another 3 MiB file: short enough to be read.
    let small_noise = offer.blob(Blob::Bytes(Arc::new(pseudo_random(1000, 2))));
    let file_b = FileRef {
        hash: Hash::of(b"whatever else"),
        size: 3 << 20,
        manifest: Some(small_noise),
    };
    let b_entry = signed(&key, "b.bin", EntryValue::File(file_b), now());
    offer.entry(&b_entry);
    let fine = small_file(&mut offer, b"fine\n");
    offer.entry(&signed(&key, "fine.txt", EntryValue::File(fine), now()));
    let _peer = Peer::serve(&victim, offer);
    let before = victim.stats();

    let (code, report, err) = victim.pull_from("h");
    assert_eq!(code, 1, "{report} {err}");
    let refused = report["refused"].as_array().unwrap();
    assert_eq!(refused.len(), 2, "{report}");
    let text = report.to_string();
    assert!(text.contains("announced 1048576 bytes"), "{text}");
    assert!(text.contains("content is invalid"), "{text}");
    // The fine file arrived; neither noise blob was stored.
    assert_eq!(victim.a.ok(&["get", "fine.txt"]), "fine\n");
    let after = victim.stats();
    assert_eq!(
        after["blobs"].as_u64().unwrap(),
        before["blobs"].as_u64().unwrap() + 1,
        "{after}"
    );
    assert!(after["quota_used"].as_u64().unwrap() <= 1 << 20, "{after}");
    // Next time: the invalid entry is denied (not asked for); only the unread one is refused.
    let (code, report, _) = victim.pull_from("h");
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["denied_skipped"], 1, "{report}");
    assert_eq!(report["refused"].as_array().unwrap().len(), 1, "{report}");
    assert!(victim.a.ok(&["verify"]).contains("all intact"));
    victim.assert_memory_bounded();
}

/// A manifest of `n` chunks of the minimum length (the longest manifest there is for its
/// file's size): about 35 bytes a chunk.
fn long_manifest(seed: u64) -> Vec<u8> {
    let n = 958_000u64;
    let mut out = b"archive-manifest-v1\n".to_vec();
    let varint = |out: &mut Vec<u8>, mut v: u64| {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    };
    varint(&mut out, n * 65_536);
    varint(&mut out, n);
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for _ in 0..n {
        for _ in 0..4 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.extend_from_slice(&x.to_le_bytes());
        }
        varint(&mut out, 65_536);
    }
    out
}

fn huge_manifest_offer(count: u64) -> Offer {
    let key = Peer::key();
    let mut offer = Offer::default();
    for seed in 0..count {
        let manifest = offer.blob(Blob::Made(long_manifest, seed));
        let file = FileRef {
            hash: Hash::of(&seed.to_le_bytes()),
            size: 958_000 * 65_536,
            manifest: Some(manifest),
        };
        let t = Timestamp::from_unix_millis(now_ms());
        offer.entry(&signed(
            &key,
            &format!("huge{seed}.zim"),
            EntryValue::File(file),
            t,
        ));
    }
    offer
}

/// Point 3: eight valid 32 MiB manifests. With a 1 MiB quota, nothing is fetched: each is
/// reserved at the longest a manifest of its file can be, before any byte. Without a quota
/// they are fetched a few at a time and checked, and the victim's memory stays bounded.
#[test]
fn huge_manifests_are_reserved_first_and_memory_stays_bounded() {
    let victim = Victim::start(r#""quota_bytes": 1048576"#);
    let _peer = Peer::serve(&victim, huge_manifest_offer(8));
    let (code, report, err) = victim.pull_from("h");
    assert_eq!(code, 1, "{report}");
    assert!(err.contains("the configured quota"), "{err}");
    let used = victim.stats()["quota_used"].as_u64().unwrap();
    assert!(used <= 1 << 20, "quota used {used}");
    victim.assert_memory_bounded();
    drop(_peer);

    let victim = Victim::start("");
    let _peer = Peer::serve(&victim, huge_manifest_offer(8));
    let (code, _, err) = victim.pull_from("h");
    // The manifests arrive and check out; the peer then lacks the chunks they name.
    assert_eq!(code, 1);
    assert!(err.contains("lacks blob"), "{err}");
    victim.assert_memory_bounded();
    assert!(victim.a.ok(&["verify"]).contains("all intact"));
}

/// Point 4: a flood of tombstones with 4 KiB keys stops at the quota (entries count against
/// it), at the peer's own entry cap, and `peer purge` takes back what the peer brought.
#[test]
fn an_entry_flood_stops_at_the_quota_and_purge_takes_it_back() {
    let key = Peer::key();
    let mut offer = Offer::default();
    let long = format!("{}/", "x".repeat(250)).repeat(16);
    for n in 0..3_000u64 {
        let t = Timestamp::from_unix_millis(now_ms() - 10_000 + n);
        offer.entry(&signed(
            &key,
            &format!("flood/{long}{n}"),
            EntryValue::Tombstone,
            t,
        ));
    }
    let victim = Victim::start(r#""quota_bytes": 1048576"#);
    let db = victim.a.data_dir().join("store.redb");
    let db_before = std::fs::metadata(&db).unwrap().len();
    let entries_before = victim.stats()["entries"].as_u64().unwrap();
    let _peer = Peer::serve(&victim, offer.clone());
    let (code, _, err) = victim.pull_from("h");
    assert_eq!(code, 1);
    assert!(err.contains("the configured quota"), "{err}");
    let stats = victim.stats();
    assert!(stats["quota_used"].as_u64().unwrap() <= 1 << 20, "{stats}");
    let taken = stats["entries"].as_u64().unwrap() - entries_before;
    assert!(taken > 0 && taken < 200, "took {taken} entries");
    let growth = std::fs::metadata(&db).unwrap().len() - db_before;
    assert!(growth < 16 << 20, "database grew by {growth} bytes");
    // Purge gives it all back, and what was purged is not taken again.
    let purge = victim.a.json(&["peer", "purge", "h"]);
    assert_eq!(purge["entries_removed"].as_u64().unwrap(), taken, "{purge}");
    assert_eq!(victim.stats()["entries"].as_u64().unwrap(), entries_before);
    let (_, report, _) = victim.pull_from("h");
    assert_eq!(
        report,
        serde_json::Value::Null,
        "the quota still stops the rest"
    );
    assert!(victim.a.ok(&["verify"]).contains("all intact"));
    victim.assert_memory_bounded();
    drop(_peer);

    // Without a quota, the peer's entry cap stops it.
    let victim = Victim::start(r#""peer_max_entries": 50"#);
    let before = victim.stats()["entries"].as_u64().unwrap();
    let _peer = Peer::serve(&victim, offer);
    let (code, _, err) = victim.pull_from("h");
    assert_eq!(code, 1);
    assert!(err.contains("limit of entries"), "{err}");
    assert_eq!(victim.stats()["entries"].as_u64().unwrap(), before + 50);
}

/// A blob whose bytes do not match its hash is never stored, and the sync says so.
#[test]
fn blobs_that_hash_wrong_are_never_stored() {
    let victim = Victim::start("");
    let key = Peer::key();
    let mut offer = Offer::default();
    let bytes = Arc::new(pseudo_random(200_000, 9));
    let hash = Hash::of(&bytes);
    offer.blobs.insert(hash, Blob::Flipped(bytes.clone()));
    let file = FileRef {
        hash,
        size: bytes.len() as u64,
        manifest: None,
    };
    let t = Timestamp::from_unix_millis(now_ms());
    offer.entry(&signed(&key, "wrong.bin", EntryValue::File(file), t));
    let blobs_before = victim.stats()["blobs"].as_u64().unwrap();
    let _peer = Peer::serve(&victim, offer);
    let (code, _, err) = victim.pull_from("h");
    assert_eq!(code, 1);
    assert!(err.contains("failed verification"), "{err}");
    assert_eq!(victim.stats()["blobs"].as_u64().unwrap(), blobs_before);
    assert!(!victim.a.ok(&["ls"]).contains("wrong.bin"));
    assert!(victim.a.ok(&["verify"]).contains("all intact"));
}

/// Point 7: a peer that asks for blobs and stops reading, and opens more connections than it
/// may, cannot hold the server: its writes time out, its extra connection is refused, an idle
/// connection is closed, and another peer syncs meanwhile.
#[test]
fn a_peer_that_stops_reading_cannot_hold_the_server() {
    let victim = Victim::start(r#""idle_secs": 6"#);
    let big = pseudo_random(24 << 20, 5);
    write_file(&victim.a.path("big.bin"), &big);
    victim
        .a
        .ok(&["add", victim.a.path("big.bin").to_str().unwrap()]);
    let chunks: Vec<Hash> = chunks_of(&big);
    assert!(chunks.len() > 20);

    // The stalling peer: paired, may read everything.
    let key = SecretKey::from_bytes([0x77; 32]);
    let stall_id = iroh::SecretKey::from_bytes(&key.to_bytes()).public();
    victim
        .a
        .ok(&["peer", "add", &stall_id.to_string(), "--name", "stall"]);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ticket: Ticket = victim.server.ticket().parse().unwrap();
    let (held, conns, refused_fifth, idle_closed) = runtime.block_on(async {
        let config = NetConfig {
            bind: Some("127.0.0.1:0".parse().unwrap()),
            ..NetConfig::default()
        };
        let endpoint = bind_endpoint(&key, &config, &Trust::default())
            .await
            .unwrap();
        let mut addr = iroh::EndpointAddr::new(ticket.id);
        for a in &ticket.addrs {
            addr = addr.with_ip_addr(*a);
        }
        let mut conns = Vec::new();
        for _ in 0..4 {
            let conn = endpoint.connect(addr.clone(), ALPN).await.unwrap();
            // Answered: the server has taken this connection's slot. (The server accepts
            // connections on tasks of their own, in no set order: without this, the fifth
            // could take a slot before the fourth and the fourth be the one refused.)
            answered(&conn).await;
            conns.push(conn);
        }
        // A fifth connection is one too many (asked first, before any of the four can have
        // been closed as idle).
        let fifth = endpoint.connect(addr.clone(), ALPN).await.unwrap();
        // Ask for every chunk on many streams, never read; before waiting for the fifth's
        // refusal, which on a loaded machine can take longer than the idle timeout (the three
        // connections would then be closed as idle before they asked anything).
        let mut held = Vec::new();
        for conn in &conns[..3] {
            // 15 of its 16 streams: the one `answered` used may not be credited back yet.
            for _ in 0..15 {
                let Ok((mut send, recv)) = conn.open_bi().await else {
                    break;
                };
                let request = Request::GetBlobs {
                    hashes: chunks.clone(),
                };
                let _ = send.write_all(&encode_frame(&request)).await;
                held.push((send, recv));
            }
        }
        // (The bound is generous: the whole test suite may be running on two cores.)
        let refused_fifth = tokio::time::timeout(Duration::from_secs(20), fifth.closed())
            .await
            .map(|reason| reason.to_string())
            .unwrap_or_default();
        // The fourth connection asks nothing: closed once idle.
        let idle_closed = tokio::time::timeout(Duration::from_secs(30), conns[3].closed())
            .await
            .map(|reason| reason.to_string())
            .unwrap_or_default();
        (held, conns, refused_fifth, idle_closed)
    });
    assert!(held.len() >= 16, "opened {} streams", held.len());
    assert!(
        refused_fifth.contains("too many connections"),
        "{refused_fifth}"
    );
    assert!(idle_closed.contains("idle"), "{idle_closed}");

    // Meanwhile another server syncs the whole file from the victim.
    let other = Archive::initialised();
    std::fs::write(
        other.data_dir().join("net.json"),
        r#"{"mdns": false, "client_bind": "127.0.0.1:0", "timeout_secs": 10}"#,
    )
    .unwrap();
    other.ok(&["peer", "add", victim.server.ticket(), "--name", "v"]);
    victim
        .a
        .ok(&["peer", "add", &id_of(&other), "--name", "other"]);
    let started = Instant::now();
    let report = other.json(&["sync", "v", "--pull"]);
    assert_eq!(report["entries_received"], 1, "{report}");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(
        crate::harness::b3(&big),
        other.json(&["ls"])[0]["hash"].as_str().unwrap()
    );
    // The stalled writes gave up on their own (the streams are still open, unread).
    let deadline = Instant::now() + Duration::from_secs(20);
    while !victim.server.log().contains("the peer took nothing for") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        victim.server.log().contains("the peer took nothing for"),
        "{}",
        victim.server.log()
    );
    drop((held, conns));
    drop(runtime);
    victim.assert_memory_bounded();
}

/// The chunk hashes of a large file's content: what any store makes of it (chunking is part
/// of the format), found by adding it to a scratch store whose only blobs of 64 KiB or more
/// are those chunks (its manifest is smaller).
fn chunks_of(data: &[u8]) -> Vec<Hash> {
    let dir = tempfile::tempdir().unwrap();
    let store = archive_core::Store::init(dir.path().join("s")).unwrap();
    store.collection("c").unwrap().add_bytes("f", data).unwrap();
    store
        .blob_places()
        .unwrap()
        .into_iter()
        .filter(|(_, _, _, size)| *size >= 64 * 1024)
        .map(|(hash, ..)| hash)
        .collect()
}

/// Point 11: an unpaired endpoint is refused right after the handshake, with the reason, and
/// the log says so once, however often it tries; a source past its handshake budget is not
/// answered at all.
#[test]
fn unpaired_endpoints_are_refused_quietly_and_handshakes_are_limited() {
    let victim = Victim::start(r#""handshakes_per_minute": 5"#);
    let ticket: Ticket = victim.server.ticket().parse().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let outcomes = runtime.block_on(async {
        let key = SecretKey::from_bytes([0x55; 32]);
        let config = NetConfig {
            bind: Some("127.0.0.1:0".parse().unwrap()),
            ..NetConfig::default()
        };
        let endpoint = bind_endpoint(&key, &config, &Trust::default())
            .await
            .unwrap();
        let mut addr = iroh::EndpointAddr::new(ticket.id);
        for a in &ticket.addrs {
            addr = addr.with_ip_addr(*a);
        }
        let mut outcomes = Vec::new();
        for _ in 0..14 {
            let attempt = tokio::time::timeout(Duration::from_secs(2), async {
                let conn = endpoint.connect(addr.clone(), ALPN).await?;
                Ok::<_, anyhow::Error>(conn.closed().await.to_string())
            })
            .await;
            outcomes.push(match attempt {
                Ok(Ok(reason)) => reason,
                Ok(Err(e)) => format!("error: {e}"),
                Err(_) => "no answer".to_owned(),
            });
        }
        outcomes
    });
    assert!(outcomes[0].contains("not paired"), "{outcomes:?}");
    let refused = outcomes.iter().filter(|o| o.contains("not paired")).count();
    let unanswered = outcomes
        .iter()
        .filter(|o| o.as_str() == "no answer")
        .count();
    // Five validated and five unvalidated handshakes a minute; the rest get no answer.
    assert!(refused <= 10, "{outcomes:?}");
    assert!(unanswered >= 4, "{outcomes:?}");
    let lines = victim
        .server
        .log()
        .lines()
        .filter(|l| l.contains("refused a connection from unpaired endpoint"))
        .count();
    assert_eq!(lines, 1, "{}", victim.server.log());
}

/// Point 5: a peer paired read-only (`--write ""`) cannot get its entries in by being
/// pulled from: a sync both ways only pushes, `--pull` is refused.
#[test]
fn a_read_only_peer_cannot_write_by_being_pulled_from() {
    let victim = Victim::start("");
    let key = Peer::key();
    let mut offer = Offer::default();
    let file = small_file(&mut offer, b"pushed by pulling\n");
    let t = Timestamp::from_unix_millis(now_ms());
    offer.entry(&signed(&key, "sneaky.txt", EntryValue::File(file), t));
    let _peer = Peer::serve(&victim, offer);
    // Re-pair it read-only.
    let ticket = victim.a.json(&["peer", "ls"])[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let addrs = victim.a.json(&["peer", "ls"])[0]["addrs"][0]
        .as_str()
        .unwrap()
        .to_owned();
    victim.a.ok(&["peer", "rm", "h"]);
    victim.a.ok(&[
        "peer", "add", &ticket, "--addr", &addrs, "--name", "h", "--write", "",
    ]);
    let out = victim.a.run(&["sync", "h", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not pulling"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = victim.a.fails(&["sync", "h", "--pull"]);
    assert!(err.contains("may not write"), "{err}");
    assert!(!victim.a.ok(&["ls"]).contains("sneaky"));
}

/// Point 6: a peer that may read only some collections gets only blobs reachable from them
/// (whole files and the chunks of chunked ones); for any other blob the answer is the same as
/// for a blob the server does not have.
#[test]
fn a_restricted_peer_gets_only_blobs_of_collections_it_may_read() {
    let victim = Victim::start("");
    let add = |file: &str, bytes: &[u8], collection: &str| {
        write_file(&victim.a.path(file), bytes);
        let path = victim.a.path(file);
        victim
            .a
            .ok(&["add", path.to_str().unwrap(), "-c", collection]);
    };
    add("pub.txt", b"public document\n", "public");
    add("pub.bin", &pseudo_random(3 << 20, 11), "public");
    let public_chunks = chunks_of(&pseudo_random(3 << 20, 11));
    add("priv.txt", b"private document\n", "private");
    add("priv.bin", &pseudo_random(3 << 20, 12), "private");
    let public_chunk = public_chunks[0];
    let private_chunk = chunks_of(&pseudo_random(3 << 20, 12))
        .into_iter()
        .find(|h| !public_chunks.contains(h))
        .unwrap();
    let public = Hash::of(b"public document\n");
    let private = Hash::of(b"private document\n");
    let nowhere = Hash::of(b"not in the store");
    let key = SecretKey::from_bytes([0x44; 32]);
    let id = iroh::SecretKey::from_bytes(&key.to_bytes()).public();
    victim.a.ok(&[
        "peer",
        "add",
        &id.to_string(),
        "--name",
        "r",
        "--read",
        "public",
    ]);
    let ticket: Ticket = victim.server.ticket().parse().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let answers = runtime.block_on(async {
        let config = NetConfig {
            bind: Some("127.0.0.1:0".parse().unwrap()),
            ..NetConfig::default()
        };
        let endpoint = bind_endpoint(&key, &config, &Trust::default())
            .await
            .unwrap();
        let mut addr = iroh::EndpointAddr::new(ticket.id);
        for a in &ticket.addrs {
            addr = addr.with_ip_addr(*a);
        }
        let conn = endpoint.connect(addr, ALPN).await.unwrap();
        let mut answers = Vec::new();
        for h in [public, private, nowhere, public_chunk, private_chunk] {
            let (mut send, mut recv) = conn.open_bi().await.unwrap();
            write_frame(&mut send, &Request::GetBlobs { hashes: vec![h] })
                .await
                .unwrap();
            let header: BlobHeader = read_frame(&mut recv, 1 << 20, Duration::from_secs(5))
                .await
                .unwrap();
            answers.push(header);
        }
        answers
    });
    assert!(
        matches!(answers[0], BlobHeader::Found { size: 16 }),
        "{answers:?}"
    );
    assert_eq!(answers[1], BlobHeader::Missing, "{answers:?}");
    assert_eq!(answers[2], BlobHeader::Missing, "{answers:?}");
}

/// Review finding: a single-blob file of 4 GB (this software chunks everything over 1 MiB) is
/// refused and denied before its size is used for anything: nothing is reserved, asked for
/// or read.
#[test]
fn a_four_gigabyte_single_blob_is_refused_before_anything_is_fetched() {
    let victim = Victim::start("");
    let key = Peer::key();
    let mut offer = Offer::default();
    let hash = Hash::of(b"four gigabytes, allegedly");
    offer.blobs.insert(hash, Blob::Announced(4 << 30));
    let file = FileRef {
        hash,
        size: 4 << 30,
        manifest: None,
    };
    let t = Timestamp::from_unix_millis(now_ms());
    offer.entry(&signed(&key, "huge.iso", EntryValue::File(file), t));
    let peer = Peer::serve(&victim, offer);
    let (code, report, _) = victim.pull_from("h");
    assert_eq!(code, 1, "{report}");
    assert!(report.to_string().contains("in one blob"), "{report}");
    assert!(peer.asked().is_empty(), "asked for {:?}", peer.asked());
    let (_, again, _) = victim.pull_from("h");
    assert_eq!(again["denied_skipped"], 1, "{again}");
    victim.assert_memory_bounded();
}

/// Review finding: a peer that may read only `public` names, in an entry of `public`, the hash
/// of a file that is here only in `private`. The victim does not take it on trust (the peer
/// must send the content: it asks), and the peer cannot fetch that content afterwards.
#[test]
fn naming_a_hash_neither_reveals_nor_grants_it() {
    let victim = Victim::start("");
    let secret = b"a private document\n".to_vec();
    write_file(&victim.a.path("secret.txt"), &secret);
    let path = victim.a.path("secret.txt");
    victim
        .a
        .ok(&["add", path.to_str().unwrap(), "-c", "private"]);
    let hash = Hash::of(&secret);
    let key = Peer::key();
    let mut offer = Offer::default();
    let named = FileRef {
        hash,
        size: secret.len() as u64,
        manifest: None,
    };
    let t = Timestamp::from_unix_millis(now_ms());
    let mut entry = signed(&key, "copy.txt", EntryValue::File(named), t);
    // In `public`, the collection it may read and write.
    entry = SignedEntry::sign(
        Entry {
            collection: "public".into(),
            ..entry.entry().clone()
        },
        &key,
    )
    .unwrap();
    offer.entry(&entry);
    let peer = Peer::serve_paired(&victim, offer, &["--read", "public", "--write", "public"]);
    let out = victim.a.run(&["sync", "h", "-c", "public", "--pull"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("lacks blob"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        peer.asked().contains(&hash),
        "the victim took the hash on trust"
    );
    assert_eq!(peer.get_blob(&victim, hash), BlobHeader::Missing);
}

/// Review finding: an entry whose manifest this store already holds, but for a file of
/// another size, is denied (its manifest can never describe it); the pull goes on and later
/// syncs do not fail on it.
#[test]
fn an_entry_whose_stored_manifest_describes_another_file_is_denied() {
    let victim = Victim::start("");
    let data = pseudo_random(3 << 20, 31);
    write_file(&victim.a.path("big.bin"), &data);
    victim
        .a
        .ok(&["add", victim.a.path("big.bin").to_str().unwrap()]);
    // The same bytes chunk the same way anywhere: the manifest's hash, from a scratch store.
    let scratch = tempfile::tempdir().unwrap();
    let store = archive_core::Store::init(scratch.path().join("s")).unwrap();
    store
        .collection("c")
        .unwrap()
        .add_bytes("big.bin", &data)
        .unwrap();
    let manifest = store
        .collection("c")
        .unwrap()
        .get("big.bin")
        .unwrap()
        .unwrap()
        .file
        .manifest
        .unwrap();
    let key = Peer::key();
    let mut offer = Offer::default();
    let wrong = FileRef {
        hash: Hash::of(b"a file of another size"),
        size: 5 << 20,
        manifest: Some(manifest),
    };
    let t = Timestamp::from_unix_millis(now_ms());
    offer.entry(&signed(&key, "wrong.bin", EntryValue::File(wrong), t));
    let fine = small_file(&mut offer, b"fine\n");
    offer.entry(&signed(&key, "fine.txt", EntryValue::File(fine), t));
    let _peer = Peer::serve(&victim, offer);
    let (code, report, err) = victim.pull_from("h");
    assert_eq!(code, 1, "{report} {err}");
    assert!(
        report.to_string().contains("content is invalid"),
        "{report}"
    );
    assert_eq!(victim.a.ok(&["get", "fine.txt"]), "fine\n");
    let (code, again, err) = victim.pull_from("h");
    assert_eq!(code, 0, "{again} {err}");
    assert_eq!(again["denied_skipped"], 1, "{again}");
}

/// `e` with its own signature broken (its id, the hash of its body, is unchanged).
fn broken_signature(e: &SignedEntry) -> Vec<u8> {
    let mut bytes = e.encoded().to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    bytes
}

fn tombstones(key: &SecretKey, prefix: &str, n: u64) -> Vec<SignedEntry> {
    (0..n)
        .map(|i| {
            let t = Timestamp::from_unix_millis(now_ms() - 10_000 + i);
            signed(key, &format!("{prefix}/{i}"), EntryValue::Tombstone, t)
        })
        .collect()
}

/// Batch certificates from a peer: one by the entries' author proves them without their own
/// signatures; one by anyone else proves nothing; a large certificate sent for a single entry
/// is not kept, so that entry must prove itself; a flood of certificates is refused.
#[test]
fn certificates_from_a_peer_prove_only_what_their_author_signed() {
    let key = Peer::key();
    let batch = tombstones(&key, "batch", 40);
    let ids: Vec<EntryId> = batch.iter().map(SignedEntry::id).collect();
    let with_certificate = |signer: &SecretKey, ids: &[EntryId], entries: &[SignedEntry]| {
        let mut offer = Offer::default();
        let cert = Certificate::sign(signer, ids.iter().copied()).unwrap();
        offer.certificates.push(cert.encoded().to_vec());
        for e in entries {
            offer.entry_as(e, broken_signature(e));
        }
        offer
    };

    // Its author's certificate: all forty are taken.
    let victim = Victim::start("");
    let before = victim.stats()["entries"].as_u64().unwrap();
    let peer = Peer::serve(&victim, with_certificate(&key, &ids, &batch));
    let (code, report, err) = victim.pull_from("h");
    assert_eq!(code, 0, "{report} {err}");
    assert_eq!(victim.stats()["entries"].as_u64().unwrap(), before + 40);
    drop(peer);

    // Another server's certificate over the same ids: nothing is taken.
    let victim = Victim::start("");
    let other = SecretKey::from_bytes([0x77; 32]);
    let peer = Peer::serve(&victim, with_certificate(&other, &ids, &batch));
    let (code, _, err) = victim.pull_from("h");
    assert_ne!(code, 0);
    assert!(err.contains("bad signature"), "{err}");
    assert_eq!(victim.stats()["entries"].as_u64().unwrap(), before);
    drop(peer);

    // A certificate of 1,024 ids sent for two entries is not kept: the one whose own
    // signature verifies is taken, the other is refused and the report says why.
    let victim = Victim::start("");
    let two = tombstones(&key, "two", 2);
    let mut listed: Vec<EntryId> = two.iter().map(SignedEntry::id).collect();
    listed
        .extend((0..1022u32).map(|i| EntryId::from_bytes(*Hash::of(&i.to_le_bytes()).as_bytes())));
    let mut offer = with_certificate(&key, &listed, &two[1..]);
    offer.entry(&two[0]);
    let peer = Peer::serve(&victim, offer);
    let (code, report, err) = victim.pull_from("h");
    assert_eq!(code, 1, "{report} {err}");
    let refused = report["refused"].as_array().unwrap();
    assert_eq!(refused.len(), 1, "{report}");
    assert!(
        refused[0]["reason"]
            .as_str()
            .unwrap()
            .contains("own signature does not verify"),
        "{report}"
    );
    assert_eq!(victim.stats()["entries"].as_u64().unwrap(), before + 1);
    drop(peer);

    // More certificates than one reply may carry: the sync stops, nothing is taken.
    let victim = Victim::start("");
    let mut offer = with_certificate(&key, &ids, &batch);
    let cert = offer.certificates[0].clone();
    offer.certificates = vec![cert; archive_net::wire::MAX_CERTIFICATES_PER_REPLY + 1];
    let peer = Peer::serve(&victim, offer);
    let (code, _, err) = victim.pull_from("h");
    assert_ne!(code, 0);
    assert!(err.contains("certificates for one request"), "{err}");
    assert_eq!(victim.stats()["entries"].as_u64().unwrap(), before);
    victim.assert_memory_bounded();
    drop(peer);
}

/// One request on `conn` answered: the server runs its handler for the connection, so the
/// connection holds one of the peer's slots.
async fn answered(conn: &Connection) {
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    let request = Request::GetEntries {
        collection: "default".into(),
        keys: Vec::new(),
    };
    write_frame(&mut send, &request).await.unwrap();
    let _ = send.finish();
    let reply: EntryReply = read_frame(&mut recv, 1 << 20, Duration::from_secs(20))
        .await
        .unwrap();
    assert!(matches!(reply, EntryReply::End), "{reply:?}");
}
