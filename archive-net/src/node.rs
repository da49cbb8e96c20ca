//! A server's network side: its store, whom it trusts, and its limits. Serves the protocol
//! on incoming connections and drives syncs on outgoing ones.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use archive_core::sync::ReconcileConfig;
use archive_core::Store;
use tokio::sync::Semaphore;

use crate::admission::{Caps, PeerShare, PeerSlots};
use crate::error::NetError;
use crate::trust::Trust;

/// Limits of the protocol on this server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest wait for any frame or piece of a blob.
    pub timeout: Duration,
    /// Reconciliation tuning (frame limit, rounds).
    pub reconcile: ReconcileConfig,
    /// Most bytes the store may hold after a sync (a quota): its blobs plus the storage
    /// charge of its entries; `None` for no quota.
    pub max_store_bytes: Option<u64>,
    /// Most bytes (entries' storage charge plus new blobs) one peer may bring, since it was
    /// paired or last purged; `None` for no limit.
    pub peer_quota_bytes: Option<u64>,
    /// Most entries one peer may bring, since it was paired or last purged.
    pub peer_max_entries: Option<u64>,
    /// Requests (for blobs, or for entries) in flight at once during a pull.
    pub parallel_fetches: usize,
    /// Most bytes of blob data the node's fetches hold in memory at once, over all pulls:
    /// each blob's encoding from the moment it is received until it is verified, its decoded
    /// bytes until they are stored. Whatever peers announce, fetches never hold more (a blob
    /// larger than the whole budget waits until it is the only one held).
    pub fetch_memory: usize,
    /// Entries a pull takes through its whole pipeline at a time (fetch, content, insert):
    /// what bounds its memory, whatever the size of the collection.
    pub pull_batch: usize,
    /// Connections, requests and handshakes a peer may have (see [`Caps`]).
    pub caps: Caps,
    /// Most bytes of blob encodings the server holds for sending at once, over all peers.
    pub serve_memory: usize,
    /// Store reads run at once for serving peers (each on a blocking thread).
    pub store_reads: usize,
    /// Reconciliation sessions served at once, over all peers. A session keeps one read
    /// snapshot of the store for its rounds and up to 16 MiB of index blocks, so this bounds
    /// what peers can hold that way.
    pub sessions: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(30),
            reconcile: ReconcileConfig::default(),
            max_store_bytes: None,
            peer_quota_bytes: None,
            // Ten times the largest collection the benchmarks sync.
            peer_max_entries: Some(10_000_000),
            // One request at a time: on 127.0.0.1 a 1 GiB pull took 2.7-3.2 s with one and
            // 3.4-3.7 s with four (more streams of one connection lost more packets), and the
            // 100,000-file tree was no slower (BENCHMARKS.md, issue 13, eighth part). Each
            // stream's window is QUIC's 1.25 MB, so one request moves at most 1.25 MB per
            // round trip: raise this on links with a large bandwidth-delay product.
            parallel_fetches: 1,
            // A 16 MiB request, a few blobs being verified and the importer's 32 MiB group,
            // with room to spare: what honest transfers use, so they never wait on it.
            fetch_memory: 96 * 1024 * 1024,
            // One insert transaction's worth (~2.5 MB of decoded entries): with two batches in
            // flight, a million-entry pull peaks at ~85 MB here against ~100 MB at 8,192 and
            // ~115 MB at 16,384, at the same speed (BENCHMARKS.md, issue 13, seventh part).
            pull_batch: 4 * 1024,
            caps: Caps::default(),
            // Two of the largest blobs (manifests), or 64 chunks.
            serve_memory: 64 * 1024 * 1024,
            store_reads: 4,
            sessions: 4,
        }
    }
}

/// Running totals of a transfer, readable while it runs (for progress bars).
#[derive(Debug, Default)]
pub struct Counters {
    /// Entries received.
    pub entries_received: AtomicU64,
    /// Blob and entry bytes received.
    pub bytes_received: AtomicU64,
    /// Blobs verified and received.
    pub blobs_received: AtomicU64,
    /// Blob bytes a fetch expects in total (known once manifests are in).
    pub bytes_expected: AtomicU64,
    /// Entries served to the peer.
    pub entries_sent: AtomicU64,
    /// Blob and entry bytes served to the peer.
    pub bytes_sent: AtomicU64,
    /// The rate cap of [`Counters::paced`], shared by the counters of one transfer.
    pace: Option<Arc<Pace>>,
}

/// A token bucket on a virtual clock: each byte moved pushes `free_at` on by `1/rate` s.
#[derive(Debug)]
struct Pace {
    bytes_per_sec: u64,
    free_at: std::sync::Mutex<tokio::time::Instant>,
}

/// Bytes a paced transfer may move at once after a pause (a quarter of a second's worth).
const PACE_BURST: Duration = Duration::from_millis(250);

impl Counters {
    /// Counters of a transfer whose blob and entry bytes, both ways together, move at most
    /// `bytes_per_sec` (at least 1): reading slower lets QUIC's flow control slow the
    /// sender, and what we serve waits before each write.
    pub fn paced(bytes_per_sec: u64) -> Counters {
        Counters {
            pace: Some(Arc::new(Pace {
                bytes_per_sec: bytes_per_sec.max(1),
                free_at: std::sync::Mutex::new(tokio::time::Instant::now()),
            })),
            ..Counters::default()
        }
    }

    /// New counters under the same rate cap as `other` (for a part of its transfer).
    pub(crate) fn sharing_pace(other: &Counters) -> Counters {
        Counters {
            pace: other.pace.clone(),
            ..Counters::default()
        }
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Adds `n` bytes moved to `counter` (one of these counters), then waits as long as the
    /// rate cap needs.
    pub(crate) async fn add_paced(&self, counter: &AtomicU64, n: u64) {
        Counters::add(counter, n);
        let Some(pace) = &self.pace else { return };
        let now = tokio::time::Instant::now();
        let free_at = {
            let mut free_at = pace
                .free_at
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let cost = Duration::from_secs_f64(n as f64 / pace.bytes_per_sec as f64);
            *free_at = (*free_at).max(now) + cost;
            *free_at
        };
        if free_at > now + PACE_BURST {
            tokio::time::sleep_until(free_at - PACE_BURST).await;
        }
    }

    /// A counter's current value.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// The network side of one store.
#[derive(Debug, Clone)]
pub struct Node {
    pub(crate) trust: Trust,
    pub(crate) limits: Limits,
    pub(crate) slots: Arc<PeerSlots>,
    pub(crate) reads: StoreReads,
    /// Bytes of blob encodings held for sending, as permits.
    pub(crate) serve_memory: Arc<Semaphore>,
    /// Reconciliation sessions served at once.
    pub(crate) sessions: Arc<Semaphore>,
    /// What pulls in flight have reserved (space, quotas).
    pub(crate) ledger: Arc<crate::space::Ledger>,
    /// Blob bytes in flight over every pull.
    pub(crate) fetch_memory: crate::pull::FetchMemory,
    /// One pull per collection at a time.
    pub(crate) pulls: Arc<CollectionLocks>,
    /// Told of each paired peer whose connection this node accepts.
    pub(crate) arrivals: tokio::sync::broadcast::Sender<iroh::EndpointId>,
}

/// A lock per collection name, made on first use and dropped when no one holds or waits
/// for it.
#[derive(Debug, Default)]
pub(crate) struct CollectionLocks(
    std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
);

/// Held while a collection's lock is: lets it go, and forgets it if no one else wants it.
pub(crate) struct CollectionGuard<'a> {
    locks: &'a CollectionLocks,
    name: String,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl CollectionLocks {
    pub(crate) async fn lock(&self, collection: &str) -> CollectionGuard<'_> {
        let lock = self.map().entry(collection.to_owned()).or_default().clone();
        CollectionGuard {
            locks: self,
            name: collection.to_owned(),
            guard: Some(lock.lock_owned().await),
        }
    }

    fn map(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>
    {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for CollectionGuard<'_> {
    fn drop(&mut self) {
        self.guard = None;
        let mut map = self.locks.map();
        if map
            .get(&self.name)
            .is_some_and(|lock| Arc::strong_count(lock) == 1)
        {
            map.remove(&self.name);
        }
    }
}

/// The one way this crate reaches its store: every store call runs here, on a blocking
/// thread, a bounded number at once, so an async worker never waits on the disk and peers
/// cannot pin more threads (or read transactions) than this between them. The store is only
/// handed to the closure: code on an async task has no store to call.
///
/// In debug builds every store operation also checks where it runs (see
/// [`archive_core::set_call_check`]): one made while an async task of this crate is being
/// polled panics, so a test catches a new one.
#[derive(Debug, Clone)]
pub(crate) struct StoreReads {
    store: Arc<Store>,
    permits: Arc<Semaphore>,
}

tokio::task_local! {
    /// Set while a future of this crate is polled (see [`on_our_task`] and [`spawn`]); never
    /// on the blocking threads of [`StoreReads`].
    static OUR_TASK: ();
}

/// Runs `fut` marked as this crate's async work (a public async entry point wraps its body
/// in this): a store call made while it is polled is caught in debug builds.
pub(crate) async fn on_our_task<F: std::future::Future>(fut: F) -> F::Output {
    if OUR_TASK.try_with(|_| ()).is_ok() {
        fut.await
    } else {
        OUR_TASK.scope((), fut).await
    }
}

/// `tokio::spawn`, with the task marked as this crate's (task-local marks do not pass to
/// spawned tasks by themselves).
pub(crate) fn spawn<F>(fut: F) -> tokio::task::JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(OUR_TASK.scope((), fut))
}

/// The debug check of every store operation: not while one of this crate's async tasks is
/// polled. (An embedding program's own tasks are its business.)
fn not_on_our_async_task() {
    if OUR_TASK.try_with(|_| ()).is_ok() {
        panic!(
            "a store call on an async task of archive-net: it reaches its store only through \
             StoreReads::run (a slow disk would stall every connection on this worker)"
        );
    }
}

impl StoreReads {
    fn new(store: Arc<Store>, n: usize) -> Self {
        if cfg!(debug_assertions) {
            archive_core::set_call_check(not_on_our_async_task);
        }
        StoreReads {
            store,
            permits: Arc::new(crate::admission::permits(n)),
        }
    }

    /// Runs `f` with the store on a blocking thread once a slot is free: first one of the
    /// peer's own (when the work is done for a peer), then one of the node's, so one peer
    /// cannot hold every slot.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        peer: Option<&PeerShare>,
        f: impl FnOnce(&Store) -> Result<T, NetError> + Send + 'static,
    ) -> Result<T, NetError> {
        let own = match peer {
            Some(share) => Some(
                share
                    .reads
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|_| NetError::Closed)?,
            ),
            None => None,
        };
        let slot = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| NetError::Closed)?;
        let store = self.store.clone();
        // The slots go with the work: if the caller is dropped, the thread still counts
        // until its work is done.
        tokio::task::spawn_blocking(move || {
            let _slots = (own, slot);
            f(&store)
        })
        .await
        .map_err(NetError::worker)?
    }
}

impl Node {
    /// A node serving `store` to the peers in `trust`.
    pub fn new(store: Arc<Store>, trust: Trust, limits: Limits) -> Self {
        Node {
            trust,
            slots: Arc::new(PeerSlots::new(limits.caps)),
            reads: StoreReads::new(store, limits.store_reads),
            serve_memory: Arc::new(Semaphore::new(
                limits.serve_memory.clamp(1, u32::MAX as usize),
            )),
            sessions: Arc::new(crate::admission::permits(limits.sessions)),
            ledger: Arc::default(),
            fetch_memory: crate::pull::FetchMemory::new(limits.fetch_memory),
            pulls: Arc::default(),
            arrivals: tokio::sync::broadcast::channel(16).0,
            limits,
        }
    }

    /// A router for `endpoint` that serves this node's protocol behind the per-source
    /// handshake limit (see [`Caps::handshakes_per_minute`]); `.spawn()` it (after adding any
    /// other protocol the endpoint serves).
    pub fn router(&self, endpoint: iroh::Endpoint) -> iroh::protocol::RouterBuilder {
        let slots = self.slots.clone();
        iroh::protocol::Router::builder(endpoint)
            .incoming_filter(Arc::new(move |incoming| slots.judge(incoming)))
            .accept(crate::wire::ALPN, self.protocol())
            .accept(crate::wire::ALPN_V1, crate::server::RefuseOldVersion)
    }

    /// The store, for the program that embeds this node (this crate itself reaches it only
    /// through its blocking pool).
    pub fn store(&self) -> &Arc<Store> {
        &self.reads.store
    }

    /// The id of each paired peer whose connection this node accepts, as it arrives: a
    /// scheduler can sync at once with a peer that was unreachable and is back. A receiver
    /// that falls behind misses the oldest (`RecvError::Lagged`).
    pub fn arrivals(&self) -> tokio::sync::broadcast::Receiver<iroh::EndpointId> {
        self.arrivals.subscribe()
    }

    /// The paired peers.
    pub fn trust(&self) -> &Trust {
        &self.trust
    }

    /// The protocol handler to register on an iroh `Router` under [`crate::ALPN`].
    pub fn protocol(&self) -> crate::server::ArchiveProtocol {
        crate::server::ArchiveProtocol { node: self.clone() }
    }
}

/// The core's view of an endpoint id (for agreements).
pub(crate) fn peer_id(id: &iroh::EndpointId) -> archive_core::PeerId {
    archive_core::PeerId::from_bytes(*id.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> (tempfile::TempDir, Node) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::init(dir.path().join("s")).unwrap());
        (dir, Node::new(store, Trust::default(), Limits::default()))
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    /// The debug check: a store call while one of this crate's tasks is polled panics (what
    /// catches a new call that would block an async worker on the disk)... The check exists
    /// in debug builds only (so does this test: CI also runs the suite in release, under
    /// qemu for aarch64).
    #[cfg(debug_assertions)]
    #[test]
    #[should_panic(expected = "a store call on an async task of archive-net")]
    fn a_store_call_on_our_async_task_panics() {
        let (_dir, node) = node();
        let store = node.store().clone();
        runtime().block_on(on_our_task(async move {
            let _ = store.collection("c").unwrap().exists();
        }));
    }

    /// ... while the same call through the pool, or on the embedding program's own task, is
    /// fine.
    #[test]
    fn store_calls_through_the_pool_or_on_other_tasks_are_fine() {
        let (_dir, node) = node();
        let exists = runtime().block_on(on_our_task(async {
            node.reads
                .run(None, |store| Ok(store.collection("c")?.exists()?))
                .await
        }));
        assert!(!exists.unwrap());
        let store = node.store().clone();
        let theirs = runtime().block_on(async move { store.collection("c").unwrap().exists() });
        assert!(!theirs.unwrap());
    }
}
