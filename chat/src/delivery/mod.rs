//! Live delivery between servers: every room this server shares is synced with each paired
//! server that takes part in it, at once when the room changes here and on a short interval
//! behind that (see ARCHITECTURE.md, "Live delivery").
//!
//! There is no second path beside the archive's: a change here makes the room's job with
//! each peer due ([`schedule`]), and the job is a sync of the room's two collections with
//! that peer (authority first, then messages; both ways) over one cached iroh connection.
//! What arrives on a server is a change there too, so it travels on to the peers that server
//! shares the room with: a message written on A reaches C through B when C is paired only
//! with B. Since every delivery is a reconciliation, a burst or a broken connection can delay
//! messages but never lose them; the periodic round (and the round on reconnection) catches up
//! whatever a failed sync left.
//!
//! Each server's directory (its community's name and its people) travels the same way, to
//! every peer: a change to it is delivered at once, and every round includes it.

mod schedule;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use archive_net::{connect, Connection, Counters, Endpoint, EndpointAddr, EndpointId, Node};
use archive_net::{NetError, SyncOptions};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinSet;

use crate::blocklist::{blocklist_collection, blocklist_of};
use crate::engine::Chat;
use crate::error::ChatError;
use crate::names::{directory_collection, directory_of, RoomId, RoomPart, COLLECTION_PREFIX};
use schedule::{Outcome, Schedule};

/// How live delivery paces itself.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryConfig {
    /// How often every shared room is reconciled with every peer, changed or not: the
    /// longest a message missed by a failed sync waits once the peer is reachable.
    pub interval: Duration,
    /// Longest wait for a connection to a peer.
    pub connect_timeout: Duration,
    /// Longest one room's sync with one peer may take before it counts as failed (and is
    /// tried again).
    pub sync_timeout: Duration,
    /// Rooms synced at once with one peer.
    pub per_peer: usize,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            interval: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            sync_timeout: Duration::from_secs(60),
            per_peer: 2,
        }
    }
}

/// What delivery has done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryStats {
    /// Room syncs that completed.
    pub syncs: u64,
    /// Room syncs that failed (each is retried).
    pub failures: u64,
    /// Entries taken from peers.
    pub entries_received: u64,
    /// Entries peers took from us.
    pub entries_sent: u64,
    /// Bytes of entries and blobs received.
    pub bytes_received: u64,
    /// Bytes of entries and blobs sent.
    pub bytes_sent: u64,
    /// Bytes of reconciliation, both ways.
    pub reconcile_bytes: u64,
    /// The last failure, with the peer it was with.
    pub last_failure: Option<String>,
    /// Entries peers offered that this server refused (a forged, oversized or banned
    /// person's message, ...): counted each time one is offered.
    pub refused: u64,
    /// The latest refusals (at most [`RECENT_REFUSALS`]), each with the room, the peer
    /// and the reason, for the operator to read.
    pub recent_refusals: Vec<String>,
}

/// Refusals [`DeliveryStats::recent_refusals`] keeps.
pub const RECENT_REFUSALS: usize = 32;

/// Live delivery of one server's rooms to its paired peers; runs until dropped.
///
/// Peers are the servers it may dial ([`Delivery::add_peer`]); each must also be paired on
/// the `node` (its trust decides what the peer may read and write). A room is delivered to
/// a peer when the peer takes part in it ([`Chat::sharing`]).
#[derive(Debug)]
pub struct Delivery {
    shared: Arc<Shared>,
    commands: mpsc::UnboundedSender<Command>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Debug)]
struct Shared {
    chat: Chat,
    node: Node,
    endpoint: Endpoint,
    config: DeliveryConfig,
    /// Rooms with new entries since the driver last looked.
    changed: Mutex<BTreeSet<Topic>>,
    wake: Notify,
    connections: Mutex<HashMap<EndpointId, Connection>>,
    /// The peers' addresses.
    addrs: Mutex<HashMap<EndpointId, EndpointAddr>>,
    stats: Totals,
}

#[derive(Debug, Default)]
struct Totals {
    syncs: AtomicU64,
    failures: AtomicU64,
    entries_received: AtomicU64,
    entries_sent: AtomicU64,
    bytes_received: AtomicU64,
    bytes_sent: AtomicU64,
    reconcile_bytes: AtomicU64,
    last_failure: Mutex<Option<String>>,
    refused: AtomicU64,
    recent_refusals: Mutex<std::collections::VecDeque<String>>,
}

#[derive(Debug)]
enum Command {
    AddPeer(EndpointAddr),
    RemovePeer(EndpointId),
}

impl Delivery {
    /// Starts delivering `chat`'s rooms over `node`, dialling from `endpoint` (the endpoint
    /// the node's router serves, so peers see one identity). Must be called within a tokio
    /// runtime.
    pub fn start(chat: Chat, node: Node, endpoint: Endpoint, config: DeliveryConfig) -> Delivery {
        let shared = Arc::new(Shared {
            chat,
            node,
            endpoint,
            config,
            changed: Mutex::default(),
            wake: Notify::new(),
            connections: Mutex::default(),
            addrs: Mutex::default(),
            stats: Totals::default(),
        });
        let watcher: Weak<Shared> = Arc::downgrade(&shared);
        shared
            .chat
            .store()
            .watch_new_entries(Arc::new(move |collection: &str| {
                let Some(shared) = watcher.upgrade() else {
                    return;
                };
                if !collection.starts_with(COLLECTION_PREFIX) {
                    return;
                }
                if let Some(topic) = Topic::of_collection(collection) {
                    lock(&shared.changed).insert(topic);
                    shared.wake.notify_one();
                }
            }));
        let (commands, receiver) = mpsc::unbounded_channel();
        let task = tokio::spawn(drive(shared.clone(), receiver));
        Delivery {
            shared,
            commands,
            task,
        }
    }

    /// Delivers to the server at `addr` (already paired on the node) from now on; its first
    /// round, every room it shares, starts at once.
    pub fn add_peer(&self, addr: EndpointAddr) {
        let _ = self.commands.send(Command::AddPeer(addr));
    }

    /// Stops delivering to `peer` and closes its connection.
    pub fn remove_peer(&self, peer: EndpointId) {
        let _ = self.commands.send(Command::RemovePeer(peer));
    }

    /// Fetches attachment `index` of `message` from a peer that shares the room (the first
    /// that has it), unless this server holds it already: the message's preview names the
    /// entry, which is pulled with its content, verified and resumable; it is inserted only
    /// once its content is complete, so [`Chat::attachment`] finds it whole or not at all.
    pub async fn fetch_attachment(
        &self,
        room: &RoomId,
        message: &crate::names::MessageId,
        index: u8,
    ) -> Result<(), ChatError> {
        let shared = &self.shared;
        let (chat, r, m) = (shared.chat.clone(), *room, message.clone());
        let (shown, sharing) = tokio::task::spawn_blocking(move || {
            Ok::<_, ChatError>((chat.message(&r, &m)?, chat.sharing(&r)?))
        })
        .await
        .map_err(|e| ChatError::Invalid(format!("reading the message failed: {e}")))??;
        let shown = shown.ok_or_else(|| ChatError::NoSuchMessage(message.message_key()))?;
        let attachment = shown
            .attachments
            .get(usize::from(index))
            .ok_or_else(|| ChatError::Invalid(format!("the message has no attachment {index}")))?;
        let (chat, r, m) = (shared.chat.clone(), *room, message.clone());
        let here = tokio::task::spawn_blocking(move || chat.attachment(&r, &m, index))
            .await
            .map_err(|e| ChatError::Invalid(format!("reading the attachment failed: {e}")))??;
        if here.is_some() {
            return Ok(());
        }
        let mut why = String::from("no peer that shares the room is known");
        for server in sharing {
            let Ok(peer) = EndpointId::from_bytes(server.as_bytes()) else {
                continue;
            };
            let Some(addr) = lock(&shared.addrs).get(&peer).cloned() else {
                continue;
            };
            let fetched = async {
                let conn = connection(shared, addr).await?;
                shared
                    .node
                    .fetch_entries(&conn, &room.files_collection(), vec![attachment.entry])
                    .await
            };
            match fetched.await {
                Ok(report) if report.entries_new > 0 => {
                    shared
                        .stats
                        .bytes_received
                        .fetch_add(report.bytes_received, Ordering::Relaxed);
                    return Ok(());
                }
                Ok(report) => {
                    why = match report.refused.first() {
                        Some(r) => format!("{}: {}", peer.fmt_short(), r.reason),
                        None => format!("{} does not have it", peer.fmt_short()),
                    }
                }
                Err(e) => why = format!("{}: {e}", peer.fmt_short()),
            }
        }
        Err(ChatError::Invalid(format!(
            "attachment {index} of {} could not be fetched: {why}",
            message.message_key()
        )))
    }

    /// What delivery has done so far.
    pub fn stats(&self) -> DeliveryStats {
        let t = &self.shared.stats;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        DeliveryStats {
            syncs: get(&t.syncs),
            failures: get(&t.failures),
            entries_received: get(&t.entries_received),
            entries_sent: get(&t.entries_sent),
            bytes_received: get(&t.bytes_received),
            bytes_sent: get(&t.bytes_sent),
            reconcile_bytes: get(&t.reconcile_bytes),
            last_failure: lock(&t.last_failure).clone(),
            refused: get(&t.refused),
            recent_refusals: lock(&t.recent_refusals).iter().cloned().collect(),
        }
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        self.task.abort();
        for (_, conn) in lock(&self.shared.connections).drain() {
            conn.close(0u32.into(), b"delivery stopped");
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The driver: feeds the schedule with changes, rounds and finished jobs, and runs the jobs
/// it starts.
async fn drive(shared: Arc<Shared>, mut commands: mpsc::UnboundedReceiver<Command>) {
    let mut schedule: Schedule<EndpointId, Topic> =
        Schedule::new(shared.config.interval, shared.config.per_peer);
    let mut jobs: JoinSet<(EndpointId, Topic, Outcome)> = JoinSet::new();
    loop {
        let now = Instant::now();
        // Rooms that changed: due with every known peer that shares them.
        let changed = std::mem::take(&mut *lock(&shared.changed));
        if !changed.is_empty() {
            let peers: Vec<EndpointId> = schedule.peers().copied().collect();
            for (topic, sharing) in sharing_of(&shared, changed.into_iter().collect(), &peers).await
            {
                for peer in sharing.iter().filter(|p| peers.contains(*p)) {
                    schedule.mark(peer, &topic);
                }
            }
        }
        // Peers whose round has come: every room they share, every directory.
        let rounds = schedule.rounds_due(now);
        if !rounds.is_empty() {
            let topics = match all_topics(&shared).await {
                Ok(topics) => topics,
                Err(e) => {
                    note_failure(&shared, format!("cannot list the rooms: {e}"));
                    Vec::new()
                }
            };
            for (topic, sharing) in sharing_of(&shared, topics, &rounds).await {
                for peer in rounds.iter().filter(|p| sharing.contains(*p)) {
                    schedule.mark(peer, &topic);
                }
            }
        }
        for (peer, topic) in schedule.start(now) {
            let Some(addr) = lock(&shared.addrs).get(&peer).cloned() else {
                continue;
            };
            jobs.spawn(run_job(shared.clone(), addr, topic));
        }
        let wake_at = schedule.next_wake().map(tokio::time::Instant::from_std);
        tokio::select! {
            command = commands.recv() => match command {
                Some(Command::AddPeer(addr)) => {
                    schedule.add_peer(addr.id, Instant::now());
                    lock(&shared.addrs).insert(addr.id, addr);
                }
                Some(Command::RemovePeer(peer)) => {
                    schedule.remove_peer(&peer);
                    lock(&shared.addrs).remove(&peer);
                    if let Some(conn) = lock(&shared.connections).remove(&peer) {
                        conn.close(0u32.into(), b"no longer a peer");
                    }
                }
                None => return,
            },
            Some(done) = jobs.join_next(), if !jobs.is_empty() => {
                if let Ok((peer, topic, outcome)) = done {
                    schedule.finished(&peer, &topic, outcome, Instant::now());
                }
            }
            () = shared.wake.notified() => {}
            () = sleep_until(wake_at) => {}
        }
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// What delivery syncs: a room (its authority, then its messages), or a server's directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Topic {
    Room(RoomId),
    Directory(archive_core::PublicKey),
    Blocklist(archive_core::PublicKey),
}

impl Topic {
    fn of_collection(collection: &str) -> Option<Topic> {
        if !collection.starts_with(COLLECTION_PREFIX) {
            return None;
        }
        if let Some((room, _)) = RoomId::of_collection(collection) {
            return Some(Topic::Room(room));
        }
        if let Some(server) = blocklist_of(collection) {
            return Some(Topic::Blocklist(server));
        }
        directory_of(collection).map(Topic::Directory)
    }

    fn collections(&self) -> Vec<String> {
        match self {
            Topic::Room(room) => [RoomPart::Authority, RoomPart::Messages]
                .iter()
                .map(|part| room.collection(*part))
                .collect(),
            Topic::Directory(server) => vec![directory_collection(server)],
            Topic::Blocklist(server) => vec![blocklist_collection(server)],
        }
    }
}

impl std::fmt::Display for Topic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Topic::Room(room) => write!(f, "room {room}"),
            Topic::Directory(server) => write!(f, "the directory of {}", &server.to_hex()[..8]),
            Topic::Blocklist(server) => write!(f, "the blocklist of {}", &server.to_hex()[..8]),
        }
    }
}

/// Every room and directory of the store (read on the blocking pool).
async fn all_topics(shared: &Arc<Shared>) -> Result<Vec<Topic>, ChatError> {
    let store = shared.chat.store().clone();
    tokio::task::spawn_blocking(move || {
        let names = store.collection_names()?;
        let topics: BTreeSet<Topic> = names
            .iter()
            .filter_map(|n| Topic::of_collection(n))
            .collect();
        Ok(topics.into_iter().collect())
    })
    .await
    .unwrap_or_else(|e| Err(ChatError::Invalid(format!("listing rooms failed: {e}"))))
}

/// The peers each topic goes to (read on the blocking pool): a room's, the servers taking
/// part in it; a directory's, every peer of `peers` but the directory's own server. A room
/// whose authority cannot be read is left out (and noted).
async fn sharing_of(
    shared: &Arc<Shared>,
    topics: Vec<Topic>,
    peers: &[EndpointId],
) -> Vec<(Topic, Vec<EndpointId>)> {
    let chat = shared.chat.clone();
    let read = tokio::task::spawn_blocking(move || {
        topics
            .into_iter()
            .map(|topic| match topic {
                Topic::Room(room) => (topic, chat.sharing(&room).map(Some)),
                Topic::Directory(_) | Topic::Blocklist(_) => (topic, Ok(None)),
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    let mut out = Vec::with_capacity(read.len());
    for (topic, sharing) in read {
        match sharing {
            Ok(Some(servers)) => out.push((
                topic,
                servers
                    .iter()
                    .filter_map(|s| EndpointId::from_bytes(s.as_bytes()).ok())
                    .collect(),
            )),
            Ok(None) => {
                let (Topic::Directory(server) | Topic::Blocklist(server)) = topic else {
                    continue;
                };
                let everyone = peers.iter().filter(|p| p.as_bytes() != server.as_bytes());
                out.push((topic, everyone.copied().collect()));
            }
            Err(e) => note_failure(shared, format!("{topic}: {e}")),
        }
    }
    out
}

fn note_failure(shared: &Shared, what: String) {
    *lock(&shared.stats.last_failure) = Some(what);
}

/// One job: the topic's collections (a room's authority first) synced both ways with the
/// peer.
async fn run_job(
    shared: Arc<Shared>,
    addr: EndpointAddr,
    topic: Topic,
) -> (EndpointId, Topic, Outcome) {
    let peer = addr.id;
    let outcome = match sync_topic(&shared, addr, &topic).await {
        Ok(()) => {
            shared.stats.syncs.fetch_add(1, Ordering::Relaxed);
            Outcome::Synced
        }
        Err(e) => {
            shared.stats.failures.fetch_add(1, Ordering::Relaxed);
            note_failure(&shared, format!("{topic} with {peer}: {e}"));
            if let Some(conn) = lock(&shared.connections).remove(&peer) {
                conn.close(0u32.into(), b"sync failed");
            }
            Outcome::Failed
        }
    };
    (peer, topic, outcome)
}

async fn sync_topic(shared: &Shared, addr: EndpointAddr, topic: &Topic) -> Result<(), NetError> {
    let conn = connection(shared, addr).await?;
    for collection in topic.collections() {
        let options = SyncOptions {
            collection,
            pull: true,
            push: true,
        };
        let counters = Arc::new(Counters::default());
        let sync = shared.node.sync(&conn, &options, counters);
        let report = tokio::time::timeout(shared.config.sync_timeout, sync)
            .await
            .map_err(|_| NetError::Timeout(shared.config.sync_timeout))??;
        let t = &shared.stats;
        t.entries_received
            .fetch_add(report.entries_received, Ordering::Relaxed);
        t.entries_sent
            .fetch_add(report.entries_sent, Ordering::Relaxed);
        t.bytes_received
            .fetch_add(report.bytes_received, Ordering::Relaxed);
        t.bytes_sent.fetch_add(report.bytes_sent, Ordering::Relaxed);
        t.reconcile_bytes
            .fetch_add(report.reconcile_bytes, Ordering::Relaxed);
        if !report.refused.is_empty() {
            t.refused
                .fetch_add(report.refused.len() as u64, Ordering::Relaxed);
            let mut recent = lock(&t.recent_refusals);
            for refused in &report.refused {
                if recent.len() == RECENT_REFUSALS {
                    recent.pop_front();
                }
                recent.push_back(format!(
                    "{topic}, from {}: entry {}: {}",
                    conn.remote_id().fmt_short(),
                    refused.id,
                    refused.reason
                ));
            }
        }
    }
    Ok(())
}

/// The cached connection to the peer, or a new one.
async fn connection(shared: &Shared, addr: EndpointAddr) -> Result<Connection, NetError> {
    let peer = addr.id;
    if let Some(conn) = lock(&shared.connections).get(&peer) {
        if conn.close_reason().is_none() {
            return Ok(conn.clone());
        }
    }
    let conn = connect(&shared.endpoint, addr, shared.config.connect_timeout).await?;
    lock(&shared.connections).insert(peer, conn.clone());
    Ok(conn)
}
