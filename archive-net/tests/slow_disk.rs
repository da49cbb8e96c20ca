//! A disk that stalls for one peer's reads does not stall the server for another: store calls
//! run on the node's blocking pool (never on an async worker), and one peer holds at most its
//! share of that pool.
//!
//! A fault point in the blob layer (archive-core's `fault-injection` feature) holds every read
//! of one collection's blobs until the test lets go. Peer X asks for those blobs on many
//! streams at once; while its reads are held, peer Y syncs another collection to the end.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use archive_core::fault::{self, Point};
use archive_core::{Hash, Store, ViewPoint};
use archive_net::wire::{read_frame, write_frame, BlobHeader, Request};
use archive_net::{
    bind_endpoint, connect, Access, Counters, Limits, NetConfig, Node, PeerPolicy, SyncOptions,
    Trust,
};
use iroh::protocol::Router;

struct Server {
    node: Node,
    router: Router,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start() -> Server {
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
        let node = Node::new(store, trust, Limits::default());
        let router = node.router(endpoint).spawn();
        Server {
            node,
            router,
            _dir: dir,
        }
    }

    fn pair(&self, other: &Server, name: &str) {
        self.node.trust().set(
            other.router.endpoint().id(),
            PeerPolicy {
                name: name.into(),
                read: Access::All,
                write: Access::All,
            },
        );
    }
}

/// Reads of the blobs in `held` wait until it is opened.
#[derive(Default)]
struct Gate {
    held: Mutex<Vec<Hash>>,
    open: Mutex<bool>,
    opened: Condvar,
    waiting: AtomicUsize,
}

impl Gate {
    fn pass(&self, hash: &Hash) {
        if !self.held.lock().unwrap().contains(hash) {
            return;
        }
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.opened.wait(open).unwrap();
        }
        self.waiting.fetch_sub(1, Ordering::SeqCst);
    }

    fn release(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

/// Opens the gate when dropped, so a failing test ends instead of waiting for held reads.
struct OpenOnDrop(Arc<Gate>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.release();
        fault::set_hook(None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_peers_stalled_reads_do_not_stall_another_peers_sync() {
    let server = Server::start().await;
    let x = Server::start().await;
    let y = Server::start().await;
    server.pair(&x, "x");
    server.pair(&y, "y");
    y.pair(&server, "server");

    // "slow": blobs whose reads will be held; "fast": what Y syncs meanwhile.
    let store = server.node.store();
    let slow = store.collection("slow").unwrap();
    let mut held = Vec::new();
    for i in 0..8u8 {
        let data = vec![i; 100_000 + usize::from(i)];
        slow.add_bytes(&format!("f{i}"), &data).unwrap();
        held.push(Hash::of(&data));
    }
    let fast = store.collection("fast").unwrap();
    for i in 0..20u32 {
        fast.add_bytes(&format!("doc{i}.txt"), format!("document {i}").as_bytes())
            .unwrap();
    }
    fast.add_bytes("big.bin", &vec![7u8; 3 << 20]).unwrap();

    let gate = Arc::new(Gate::default());
    *gate.held.lock().unwrap() = held.clone();
    let _open_at_the_end = OpenOnDrop(gate.clone());
    let hook_gate = gate.clone();
    fault::set_hook(Some(Arc::new(move |p: Point<'_>| {
        if let Point::BlobRead(hash) = p {
            hook_gate.pass(hash);
        }
    })));

    // X asks for every held blob, one stream each, all at once; nothing answers while the
    // gate is shut.
    let conn = connect(
        x.router.endpoint(),
        server.router.endpoint().addr(),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let mut asks = Vec::new();
    for hash in &held {
        let (mut send, recv) = conn.open_bi().await.unwrap();
        write_frame(
            &mut send,
            &Request::GetBlobs {
                hashes: vec![*hash],
            },
        )
        .await
        .unwrap();
        send.finish().unwrap();
        asks.push(recv);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while gate.waiting.load(Ordering::SeqCst) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no read reached the gate"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Meanwhile Y syncs "fast" to the end.
    let to_server = connect(
        y.router.endpoint(),
        server.router.endpoint().addr(),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let options = SyncOptions {
        collection: "fast".into(),
        pull: true,
        push: false,
    };
    let report = tokio::time::timeout(
        Duration::from_secs(30),
        y.node
            .sync(&to_server, &options, Arc::new(Counters::default())),
    )
    .await
    .expect("Y's sync finishes while X's reads are held")
    .unwrap();
    assert_eq!(report.entries_received, 21, "{report:?}");
    let y_files: Vec<String> = y
        .node
        .store()
        .collection("fast")
        .unwrap()
        .list(ViewPoint::Current, "")
        .unwrap()
        .map(|i| i.unwrap().key)
        .collect();
    assert_eq!(y_files.len(), 21);
    // X's reads are still held, and they hold no more than X's share of the pool.
    let waiting = gate.waiting.load(Ordering::SeqCst);
    let share = Limits::default().caps.store_reads_per_peer;
    assert!(
        waiting >= 1 && waiting <= share,
        "{waiting} reads held (X's share is {share})"
    );

    // Let go: X gets every blob.
    gate.release();
    for (recv, hash) in asks.iter_mut().zip(&held) {
        let header: BlobHeader = read_frame(recv, 1 << 20, Duration::from_secs(20))
            .await
            .unwrap();
        assert!(
            matches!(header, BlobHeader::Found { size } if size >= 100_000),
            "{hash}: {header:?}"
        );
    }
    fault::set_hook(None);
    assert!(y.node.store().verify().unwrap().is_ok());
}
