//! Two and three real stores syncing over real iroh endpoints on 127.0.0.1 (relays, port
//! mapping and discovery off).

use std::sync::Arc;
use std::time::Duration;

use archive_core::{Store, ViewPoint};
use archive_net::{
    bind_endpoint, connect, Access, Counters, Endpoint, Limits, NetConfig, NetError, Node,
    PeerPolicy, SyncOptions, Trust,
};
use iroh::protocol::Router;

struct Server {
    node: Node,
    router: Router,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start() -> Server {
        Server::start_with(Limits::default()).await
    }

    async fn start_with(limits: Limits) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::init(dir.path()).unwrap());
        let config = NetConfig {
            bind: Some("127.0.0.1:0".parse().unwrap()),
            ..NetConfig::default()
        };
        let trust = Trust::default();
        let endpoint = bind_endpoint(store.secret_key(), &config, &trust)
            .await
            .unwrap();
        let node = Node::new(store, trust, limits);
        let router = node.router(endpoint).spawn();
        Server {
            node,
            router,
            _dir: dir,
        }
    }

    fn endpoint(&self) -> &Endpoint {
        self.router.endpoint()
    }

    fn pair(&self, other: &Server, name: &str, write: bool) {
        self.node.trust().set(
            other.endpoint().id(),
            PeerPolicy {
                name: name.into(),
                read: Access::All,
                write: if write {
                    Access::All
                } else {
                    Access::Only(Default::default())
                },
            },
        );
    }

    async fn sync_with(
        &self,
        other: &Server,
        pull: bool,
        push: bool,
    ) -> Result<archive_net::SyncReport, NetError> {
        let conn = connect(
            self.endpoint(),
            other.endpoint().addr(),
            Duration::from_secs(5),
        )
        .await?;
        let options = SyncOptions {
            collection: "default".into(),
            pull,
            push,
        };
        self.node
            .sync(&conn, &options, Arc::new(Counters::default()))
            .await
    }

    fn listing(&self) -> Vec<(String, archive_core::Hash)> {
        self.node
            .store()
            .collection("default")
            .unwrap()
            .list(ViewPoint::Current, "")
            .unwrap()
            .map(|i| i.map(|i| (i.key, i.file.hash)).unwrap())
            .collect()
    }
}

fn data(seed: u64, len: usize) -> Vec<u8> {
    test_support::pseudo_random(len, seed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_sync_both_ways_and_converge() {
    let a = Server::start().await;
    let b = Server::start().await;
    a.pair(&b, "b", true);
    b.pair(&a, "a", true);
    let sa = a.node.store();
    for i in 0..50 {
        sa.collection("default")
            .unwrap()
            .add_bytes(&format!("small/{i}.txt"), &data(i, 100 + i as usize * 300))
            .unwrap();
    }
    let big = data(99, 3 * 1024 * 1024 + 17);
    sa.collection("default")
        .unwrap()
        .add_bytes("big.bin", &big)
        .unwrap();
    b.node
        .store()
        .collection("default")
        .unwrap()
        .add_bytes("only-on-b.txt", b"from b")
        .unwrap();

    let report = b.sync_with(&a, true, true).await.unwrap();
    assert_eq!(report.entries_received, 51);
    assert_eq!(report.entries_sent, 1);
    assert!(report.bytes_received >= big.len() as u64, "{report:?}");
    assert_eq!(a.listing(), b.listing());
    assert_eq!(a.listing().len(), 52);
    let file = b
        .node
        .store()
        .collection("default")
        .unwrap()
        .get("big.bin")
        .unwrap()
        .unwrap()
        .file;
    let mut out = Vec::new();
    b.node.store().blobs().write_to(&file, &mut out).unwrap();
    assert_eq!(out, big);
    assert!(b.node.store().verify().unwrap().is_ok());
    assert!(a.node.store().verify().unwrap().is_ok());

    // Nothing changed: the fast path settles it in one round trip, nothing moves.
    let again = b.sync_with(&a, true, true).await.unwrap();
    assert_eq!(again.round_trips, 1, "{again:?}");
    assert!(again.fast_path, "{again:?}");
    assert_eq!(again.entries_received + again.entries_sent, 0);
    assert!(again.reconcile_bytes <= 64, "{again:?}");

    // A diff reports nothing either way.
    let conn = connect(b.endpoint(), a.endpoint().addr(), Duration::from_secs(5))
        .await
        .unwrap();
    let diff = b.node.diff(&conn, "default").await.unwrap();
    assert_eq!(diff.they_have.entries + diff.we_have.entries, 0);

    // One edit on A: only its new chunks move.
    let mut edited = big.clone();
    edited[1_000_000..1_000_100].fill(7);
    sa.collection("default")
        .unwrap()
        .add_bytes("big.bin", &edited)
        .unwrap();
    let conn = connect(b.endpoint(), a.endpoint().addr(), Duration::from_secs(5))
        .await
        .unwrap();
    let diff = b.node.diff(&conn, "default").await.unwrap();
    assert_eq!(diff.they_have.entries, 1);
    assert_eq!(diff.they_have.file_bytes, edited.len() as u64);
    assert_eq!(diff.we_have.entries, 0);
    let third = b.sync_with(&a, true, true).await.unwrap();
    assert_eq!(third.entries_received, 1);
    assert!(
        third.bytes_received < 1024 * 1024 + 64 * 1024,
        "an edit of 100 bytes moved {} bytes",
        third.bytes_received
    );
    assert_eq!(a.listing(), b.listing());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpaired_and_read_only_peers_are_refused() {
    let a = Server::start().await;
    let b = Server::start().await;
    b.pair(&a, "a", true);
    a.node
        .store()
        .collection("default")
        .unwrap()
        .add_bytes("x", b"x")
        .unwrap();
    // A does not know B.
    let err = b.sync_with(&a, true, true).await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("not paired"), "{msg}");
    assert!(b.listing().is_empty());

    // A knows B but lets it only read: a pull works, a push is refused.
    a.pair(&b, "b", false);
    b.node
        .store()
        .collection("default")
        .unwrap()
        .add_bytes("y", b"y")
        .unwrap();
    let pulled = b.sync_with(&a, true, false).await.unwrap();
    assert_eq!(pulled.entries_received, 1);
    let err = b.sync_with(&a, false, true).await.unwrap_err();
    assert!(err.to_string().contains("may not write"), "{err}");
    assert_eq!(a.listing().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_travel_a_to_c_through_b() {
    let a = Server::start().await;
    let b = Server::start().await;
    let c = Server::start().await;
    a.pair(&b, "b", true);
    b.pair(&a, "a", true);
    b.pair(&c, "c", true);
    c.pair(&b, "b", true);
    for i in 0..20 {
        a.node
            .store()
            .collection("default")
            .unwrap()
            .add_bytes(&format!("f{i}"), &data(i, 40_000))
            .unwrap();
    }
    b.sync_with(&a, true, true).await.unwrap();
    c.sync_with(&b, true, true).await.unwrap();
    assert_eq!(c.listing(), a.listing());
    assert_eq!(c.listing().len(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_syncs_and_an_add_leave_clean_converging_stores() {
    let a = Server::start().await;
    let b = Server::start().await;
    let c = Server::start().await;
    for (x, y) in [(&a, &b), (&a, &c), (&b, &a), (&c, &a)] {
        x.pair(y, "p", true);
    }
    for i in 0..30 {
        a.node
            .store()
            .collection("default")
            .unwrap()
            .add_bytes(&format!("a{i}"), &data(i, 70_000))
            .unwrap();
        b.node
            .store()
            .collection("default")
            .unwrap()
            .add_bytes(&format!("b{i}"), &data(100 + i, 30_000))
            .unwrap();
        c.node
            .store()
            .collection("default")
            .unwrap()
            .add_bytes(&format!("c{i}"), &data(200 + i, 2_000_000 + i as usize))
            .unwrap();
    }
    // The same key on both B and C: latest wins everywhere after convergence.
    b.node
        .store()
        .collection("default")
        .unwrap()
        .add_bytes("shared", b"b's")
        .unwrap();
    c.node
        .store()
        .collection("default")
        .unwrap()
        .add_bytes("shared", b"c's")
        .unwrap();
    let store_a = a.node.store().clone();
    let adder = tokio::task::spawn_blocking(move || {
        for i in 0..20 {
            store_a
                .collection("default")
                .unwrap()
                .add_bytes(&format!("during{i}"), &data(300 + i, 50_000))
                .unwrap();
        }
    });
    let (rb, rc) = tokio::join!(b.sync_with(&a, true, true), c.sync_with(&a, true, true));
    rb.unwrap();
    rc.unwrap();
    adder.await.unwrap();
    for s in [&a, &b, &c] {
        assert!(s.node.store().verify().unwrap().is_ok());
    }
    // One more round each converges all three.
    b.sync_with(&a, true, true).await.unwrap();
    c.sync_with(&a, true, true).await.unwrap();
    b.sync_with(&a, true, true).await.unwrap();
    assert_eq!(a.listing(), b.listing());
    assert_eq!(a.listing(), c.listing());
    assert_eq!(a.listing().len(), 30 * 3 + 20 + 1);
    for s in [&a, &b, &c] {
        assert!(s.node.store().verify().unwrap().is_ok());
    }
}

/// A fetch never holds more blob bytes than its budget: with a budget smaller than some
/// blobs' encoding plus their decoded copy, four requests in flight keep handing what they
/// hold to the importer and waiting for the memory it gives back, and the pull still
/// completes with every byte verified.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_within_a_small_memory_budget_completes_exactly() {
    let a = Server::start().await;
    let b = Server::start_with(Limits {
        fetch_memory: 2 * 1024 * 1024,
        parallel_fetches: 4,
        ..Limits::default()
    })
    .await;
    a.pair(&b, "b", true);
    b.pair(&a, "a", true);
    let files: Vec<Vec<u8>> = (0..3)
        .map(|i| data(500 + i, 5 * 1024 * 1024 + 11))
        .collect();
    for (i, bytes) in files.iter().enumerate() {
        a.node
            .store()
            .collection("default")
            .unwrap()
            .add_bytes(&format!("large/{i}.bin"), bytes)
            .unwrap();
    }
    let report = tokio::time::timeout(Duration::from_secs(120), b.sync_with(&a, true, false))
        .await
        .expect("the pull finishes: no request waits on memory another one holds")
        .unwrap();
    // 15 MiB in chunks of 64 KiB to 1 MiB, plus three manifests.
    assert!(report.blobs_received > 3 * 5 + 3, "{report:?}");
    assert_eq!(b.listing(), a.listing());
    for (i, bytes) in files.iter().enumerate() {
        let store = b.node.store();
        let file = store
            .collection("default")
            .unwrap()
            .get(&format!("large/{i}.bin"))
            .unwrap()
            .unwrap()
            .file;
        let mut got = Vec::new();
        store.blobs().write_to(&file, &mut got).unwrap();
        assert!(got == *bytes, "large/{i}.bin differs");
    }
    assert!(b.node.store().verify().unwrap().is_ok());
}

/// A pull goes through its pipeline a batch of entries at a time (what bounds its memory):
/// with batches of 7, files, second versions of some keys (older and newer versions in
/// different batches) and removals all arrive exactly, with every byte verified.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_in_many_small_batches_converges_exactly() {
    let a = Server::start().await;
    let b = Server::start_with(Limits {
        pull_batch: 7,
        ..Limits::default()
    })
    .await;
    a.pair(&b, "b", true);
    b.pair(&a, "a", true);
    let sa = a.node.store();
    for i in 0..40u64 {
        let len = if i % 10 == 0 {
            1_500_000
        } else {
            200 + i as usize * 40
        };
        sa.collection("default")
            .unwrap()
            .add_bytes(&format!("f/{i}"), &data(i, len))
            .unwrap();
    }
    for i in (0..40u64).step_by(3) {
        sa.collection("default")
            .unwrap()
            .add_bytes(&format!("f/{i}"), &data(1_000 + i, 300))
            .unwrap();
    }
    for i in (1..40u64).step_by(5) {
        sa.collection("default")
            .unwrap()
            .remove(&[format!("f/{i}")])
            .unwrap();
    }
    let report = b.sync_with(&a, true, false).await.unwrap();
    assert_eq!(report.entries_received, 40 + 14 + 8);
    assert_eq!(b.listing(), a.listing());
    assert!(b.node.store().verify().unwrap().is_ok());
    // Nothing is left to move.
    let again = b.sync_with(&a, true, false).await.unwrap();
    assert_eq!(again.entries_received, 0);
}

/// A pull of more keys than it keeps in memory (the rest wait in a scratch file on the store's
/// disk, read back a batch at a time) takes every entry, and leaves out the ones on the deny
/// list wherever they were in the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_of_more_keys_than_memory_holds_takes_them_all() {
    const FILES: usize = 40_000;
    let a = Server::start().await;
    let b = Server::start().await;
    a.pair(&b, "b", true);
    b.pair(&a, "a", true);
    let tree = tempfile::tempdir().unwrap();
    for i in 0..FILES {
        std::fs::write(tree.path().join(format!("{i:05}")), format!("file {i}")).unwrap();
    }
    a.node
        .store()
        .collection("default")
        .unwrap()
        .add_path(tree.path(), Some("t"), &mut archive_core::NoProgress)
        .unwrap();
    let items: Vec<archive_core::ViewItem> = a
        .node
        .store()
        .collection("default")
        .unwrap()
        .list(ViewPoint::Current, "")
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(items.len(), FILES);
    // Every 4,999th entry denied here: spread over the queue's memory part and its file.
    let denied: Vec<_> = items.iter().step_by(4_999).map(|i| i.entry_key()).collect();
    b.node
        .store()
        .transfer()
        .deny_entries(&denied, archive_core::DenyReason::Purged)
        .unwrap();

    let report = b.sync_with(&a, true, false).await.unwrap();
    assert_eq!(report.denied_skipped, denied.len() as u64);
    assert_eq!(report.entries_received, (FILES - denied.len()) as u64);
    let denied_keys: std::collections::HashSet<String> =
        items.iter().step_by(4_999).map(|i| i.key.clone()).collect();
    let want: Vec<(String, archive_core::Hash)> = a
        .listing()
        .into_iter()
        .filter(|(key, _)| !denied_keys.contains(key))
        .collect();
    assert_eq!(b.listing(), want);
    assert!(b.node.store().verify().unwrap().is_ok());
    // Nothing but the denied entries is left to move, and those are not asked for.
    let again = b.sync_with(&a, true, false).await.unwrap();
    assert_eq!(again.entries_received, 0);
    assert_eq!(again.denied_skipped, denied.len() as u64);
}

/// The quota is checked before each batch's content is fetched: a pull that would pass it
/// stops with an error naming the quota, keeps the batches it completed, and leaves a store
/// that verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_stops_at_the_quota_and_keeps_what_it_completed() {
    let a = Server::start().await;
    let b = Server::start_with(Limits {
        pull_batch: 7,
        max_store_bytes: Some(1_000_000),
        ..Limits::default()
    })
    .await;
    a.pair(&b, "b", true);
    b.pair(&a, "a", true);
    for i in 0..30u64 {
        a.node
            .store()
            .collection("default")
            .unwrap()
            .add_bytes(&format!("f/{i}"), &data(i, 100_000 + i as usize))
            .unwrap();
    }
    let err = b.sync_with(&a, true, false).await.unwrap_err();
    let NetError::NoSpace {
        needed,
        available,
        what,
    } = err
    else {
        panic!("expected NoSpace, got {err}");
    };
    assert_eq!(what, "the configured quota");
    assert!(needed > available, "{needed} {available}");
    assert!(err
        .to_string()
        .starts_with("not enough space: the sync needs "));
    assert!(err
        .to_string()
        .ends_with("are available (the configured quota)"));
    // The batches before the one that did not fit are in, content and all.
    let got = b.listing();
    assert!(!got.is_empty() && got.len() < 30, "{} files", got.len());
    assert!(got.iter().all(|f| a.listing().contains(f)));
    let stored = b.node.store().stats().unwrap().stored_bytes;
    assert!(stored <= 1_000_000, "{stored} bytes stored");
    assert!(b.node.store().verify().unwrap().is_ok());
}

/// The side that starts a sync serves the peer's requests on its own connection with no idle
/// limit: however long its pull takes, the peer's pull of what it pushes still gets answered
/// (with the idle limit applied there too, the connection closed in the middle of the sync).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_pull_does_not_close_the_connection_the_push_needs() {
    let a = Server::start().await;
    let b = Server::start_with(Limits {
        caps: archive_net::Caps {
            idle: Duration::from_millis(50),
            ..archive_net::Caps::default()
        },
        // Slow the pull down: one small blob in memory at a time.
        fetch_memory: 64 * 1024,
        parallel_fetches: 1,
        ..Limits::default()
    })
    .await;
    a.pair(&b, "b", true);
    b.pair(&a, "a", true);
    a.node
        .store()
        .collection("default")
        .unwrap()
        .add_bytes("big.bin", &data(77, 12 * 1024 * 1024))
        .unwrap();
    b.node
        .store()
        .collection("default")
        .unwrap()
        .add_bytes("from-b.txt", b"pushed after a long pull")
        .unwrap();
    let started = std::time::Instant::now();
    let report = b.sync_with(&a, true, true).await.unwrap();
    assert!(
        started.elapsed() > Duration::from_millis(50),
        "the pull was not longer than the idle limit"
    );
    assert_eq!(report.entries_received, 1, "{report:?}");
    assert_eq!(report.entries_sent, 1, "{report:?}");
    assert_eq!(a.listing(), b.listing());
}

/// Review finding: pulls running at once share the store's quota (one ledger per node): two
/// syncs from two peers, each with more than the quota to give, together store no more than
/// the quota.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulls_at_once_share_the_quota() {
    let quota = 6 * 1024 * 1024;
    let b = Server::start_with(Limits {
        max_store_bytes: Some(quota),
        ..Limits::default()
    })
    .await;
    let a1 = Server::start().await;
    let a2 = Server::start().await;
    for (i, a) in [&a1, &a2].into_iter().enumerate() {
        a.pair(&b, "b", true);
        b.pair(a, &format!("a{i}"), true);
        for n in 0..5u64 {
            let bytes = data(1000 * i as u64 + n, 1024 * 1024 + 17);
            a.node
                .store()
                .collection("default")
                .unwrap()
                .add_bytes(&format!("p{i}/{n}.bin"), &bytes)
                .unwrap();
        }
    }
    let (r1, r2) = tokio::join!(b.sync_with(&a1, true, false), b.sync_with(&a2, true, false));
    assert!(
        r1.is_err() || r2.is_err(),
        "10 MiB fitted in a 6 MiB quota: {r1:?} {r2:?}"
    );
    let used = b.node.store().quota_used().unwrap();
    assert!(used <= quota, "quota {quota}, used {used}");
    assert!(b.node.store().verify().unwrap().is_ok());
}

/// "Unlimited" written as `usize::MAX` in every limit and cap: the node clamps what tokio
/// cannot take instead of panicking when a connection arrives, and the sync works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_of_usize_max_mean_unlimited_not_a_panic() {
    let unlimited = Limits {
        sessions: usize::MAX,
        store_reads: usize::MAX,
        serve_memory: usize::MAX,
        fetch_memory: usize::MAX,
        parallel_fetches: usize::MAX,
        caps: archive_net::Caps {
            connections_per_peer: usize::MAX,
            requests_per_peer: usize::MAX,
            sessions_per_peer: usize::MAX,
            serve_memory_per_peer: usize::MAX,
            store_reads_per_peer: usize::MAX,
            ..archive_net::Caps::default()
        },
        ..Limits::default()
    };
    let a = Server::start_with(unlimited).await;
    let b = Server::start_with(unlimited).await;
    a.pair(&b, "b", true);
    b.pair(&a, "a", true);
    a.node
        .store()
        .collection("default")
        .unwrap()
        .add_bytes("big.bin", &data(77, 3 << 20))
        .unwrap();
    let report = tokio::time::timeout(Duration::from_secs(60), b.sync_with(&a, true, true))
        .await
        .expect("the sync finishes")
        .unwrap();
    assert_eq!(report.entries_received, 1, "{report:?}");
    assert_eq!(b.listing(), a.listing());
}

/// An endpoint that speaks only protocol version 1, as a server of the previous release does.
async fn version_1_endpoint() -> Endpoint {
    iroh::Endpoint::builder(iroh::endpoint::presets::Minimal)
        .relay_mode(iroh::RelayMode::Disabled)
        .portmapper_config(iroh::endpoint::PortmapperConfig::Disabled)
        .alpns(vec![archive_net::ALPN_V1.to_vec()])
        .clear_ip_transports()
        .bind_addr("127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap())
        .unwrap()
        .bind()
        .await
        .unwrap()
}

/// A version-1 protocol handler that holds the connection open, as an old server would.
#[derive(Debug, Clone)]
struct HoldOpen;

impl iroh::protocol::ProtocolHandler for HoldOpen {
    async fn accept(
        &self,
        conn: iroh::endpoint::Connection,
    ) -> Result<(), iroh::protocol::AcceptError> {
        conn.closed().await;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_of_protocol_version_1_is_refused_with_both_versions_named() {
    let a = Server::start().await;

    // An old server dials us: it is told, in the close reason its version shows, why.
    let old = version_1_endpoint().await;
    a.node.trust().set(
        old.id(),
        PeerPolicy {
            name: "old".into(),
            read: Access::All,
            write: Access::All,
        },
    );
    let conn = old
        .connect(a.endpoint().addr(), archive_net::ALPN_V1)
        .await
        .unwrap();
    match conn.closed().await {
        iroh::endpoint::ConnectionError::ApplicationClosed(close) => {
            assert_eq!(
                close.error_code,
                iroh::endpoint::VarInt::from_u32(archive_net::CLOSE_OLD_VERSION)
            );
            let reason = String::from_utf8_lossy(&close.reason).into_owned();
            assert!(
                reason.contains("protocol 2") && reason.contains("protocol 1"),
                "{reason}"
            );
        }
        other => panic!("closed otherwise: {other:?}"),
    }

    // We dial an old server: refused before any request, with both versions named.
    let router = Router::builder(old)
        .accept(archive_net::ALPN_V1, HoldOpen)
        .spawn();
    let err = connect(
        a.endpoint(),
        router.endpoint().addr(),
        Duration::from_secs(5),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            NetError::OtherVersion {
                theirs: 1,
                ours: 2,
                ..
            }
        ),
        "{err:?}"
    );
    let shown = err.to_string();
    assert!(
        shown.contains("protocol 1") && shown.contains("protocol 2"),
        "{shown}"
    );
    router.shutdown().await.unwrap();
}

/// Two syncs of one collection at once (ours pulling while another pulls the same keys, as
/// when both servers start a sync with each other): the second waits for the first and
/// fetches nothing the first took, so every entry crosses once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pulls_of_one_collection_fetch_each_entry_once() {
    let a = Server::start().await;
    let b = Server::start().await;
    a.pair(&b, "b", true);
    b.pair(&a, "a", true);
    let collection = a.node.store().collection("default").unwrap();
    for i in 0..3_000u64 {
        collection
            .add_bytes(&format!("notes/{i}.txt"), &data(i, 200))
            .unwrap();
    }
    let (first, second) = tokio::join!(b.sync_with(&a, true, false), b.sync_with(&a, true, false));
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(
        first.entries_received + second.entries_received,
        3_000,
        "{first:?} {second:?}"
    );
    assert_eq!(a.listing(), b.listing());
}

/// A collection under `local/` is the server's alone: a peer with access to everything can
/// neither pull it nor have it pushed to it, and pushes into it are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_collections_never_leave_the_server() {
    let a = Server::start().await;
    let b = Server::start().await;
    a.pair(&b, "b", true);
    b.pair(&a, "a", true);
    for s in [&a, &b] {
        s.node
            .store()
            .collection("local/reads")
            .unwrap()
            .add_bytes("ana", b"private")
            .unwrap();
    }
    for (pull, push) in [(true, false), (false, true), (true, true)] {
        let conn = connect(b.endpoint(), a.endpoint().addr(), Duration::from_secs(5))
            .await
            .unwrap();
        let options = SyncOptions {
            collection: "local/reads".into(),
            pull,
            push,
        };
        let err = b
            .node
            .sync(&conn, &options, Arc::new(Counters::default()))
            .await
            .unwrap_err();
        assert!(matches!(err, NetError::NotAllowed(_)), "{err}");
    }
    for s in [&a, &b] {
        let history: Vec<_> = s
            .node
            .store()
            .collection("local/reads")
            .unwrap()
            .history("ana")
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(history.len(), 1, "each keeps only its own");
    }
}

/// A sync with a rate cap moves no faster than it, in either direction (what it pulls and
/// what the peer fetches from it), and still completes exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paced_sync_keeps_to_its_rate_both_ways() {
    const RATE: u64 = 512 * 1024;
    let a = Server::start().await;
    let b = Server::start().await;
    a.pair(&b, "b", true);
    b.pair(&a, "a", true);
    let on_a = data(1, 2 * 1024 * 1024);
    let on_b = data(2, 1024 * 1024);
    a.node
        .store()
        .collection("default")
        .unwrap()
        .add_bytes("a.bin", &on_a)
        .unwrap();
    b.node
        .store()
        .collection("default")
        .unwrap()
        .add_bytes("b.bin", &on_b)
        .unwrap();
    let conn = connect(b.endpoint(), a.endpoint().addr(), Duration::from_secs(5))
        .await
        .unwrap();
    let options = SyncOptions {
        collection: "default".into(),
        pull: true,
        push: true,
    };
    let started = std::time::Instant::now();
    let report = b
        .node
        .sync(&conn, &options, Arc::new(Counters::paced(RATE)))
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(a.listing(), b.listing());
    let moved = report.bytes_received + report.bytes_sent;
    assert!(moved >= 3 * 1024 * 1024, "{report:?}");
    // A quarter of a second's burst is allowed; the rest waits for its turn.
    let least = Duration::from_secs_f64(moved as f64 / RATE as f64) - Duration::from_millis(300);
    assert!(
        took >= least,
        "{moved} bytes in {took:?}: faster than {RATE} bytes/s (at least {least:?})"
    );
    // Without a cap the same amount moves far faster (the cap, not the link, was the limit).
    let c = Server::start().await;
    c.pair(&a, "a", true);
    a.pair(&c, "c", true);
    let conn = connect(c.endpoint(), a.endpoint().addr(), Duration::from_secs(5))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    c.node
        .sync(&conn, &options, Arc::new(Counters::default()))
        .await
        .unwrap();
    assert!(
        started.elapsed() < least,
        "unpaced took {:?}",
        started.elapsed()
    );
}
