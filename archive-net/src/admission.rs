//! Who gets in, and how much each may hold.
//!
//! - **Handshakes** are rate-limited per source IP before any cryptography runs (the router's
//!   incoming filter): a source over its budget is first asked to prove its address (a QUIC
//!   retry, so spoofed packets cannot spend a real peer's budget), and past that, ignored.
//! - **Unpaired endpoints** are refused in iroh's after-handshake hook, before any protocol
//!   handler or stream exists, with a close reason naming the id to pair; the log says so at
//!   most once every [`LOG_EVERY`], with a count of what it did not repeat.
//! - **Per paired peer**: at most [`Caps::connections_per_peer`] connections at once and a
//!   fixed number of requests served at once; each connection closes when it has been idle
//!   (no stream open) for the idle timeout, whatever keep-alives say.
//! - **Confirmed addresses**: the direct address a connection with a peer actually used is
//!   remembered, so an unauthenticated mDNS announcement can add addresses for that id but
//!   never replace it.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use iroh::endpoint::{
    AfterHandshakeOutcome, Connection, EndpointHooks, Incoming, IncomingAddr, Side, VarInt,
};
use iroh::protocol::IncomingFilterOutcome;
use iroh::{EndpointId, TransportAddr};
use tokio::sync::Semaphore;

use crate::server::CLOSE_NOT_PAIRED;
use crate::trust::{not_paired, Trust};

/// Refusals of unpaired endpoints are logged at most this often.
const LOG_EVERY: Duration = Duration::from_secs(60);
/// Source addresses whose handshake budget is tracked at once.
const MAX_SOURCES: usize = 4096;
/// Peers whose confirmed addresses are remembered.
const MAX_CONFIRMED: usize = 4096;
/// Addresses remembered per confirmed peer.
const MAX_ADDRS_PER_PEER: usize = 8;

/// Limits on what one peer may hold on this server.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    /// Connections one peer may have open at once.
    pub connections_per_peer: usize,
    /// Requests (streams) of one peer served at once, over all its connections.
    pub requests_per_peer: usize,
    /// Reconciliation sessions of one peer served at once (of the node's `Limits::sessions`).
    pub sessions_per_peer: usize,
    /// Bytes of blob encodings held for one peer at once (of the node's
    /// `Limits::serve_memory`).
    pub serve_memory_per_peer: usize,
    /// Store operations run for one peer at once (of the node's `Limits::store_reads`): a
    /// peer whose reads are slow cannot take the slots another peer's sync needs.
    pub store_reads_per_peer: usize,
    /// Streams one connection may have open at once (a QUIC transport limit).
    pub streams_per_connection: u32,
    /// Handshakes one source IP may start per minute (address-validated ones; as many more
    /// unvalidated ones are answered with a retry).
    pub handshakes_per_minute: u32,
    /// A connection with no stream open for this long is closed.
    pub idle: Duration,
}

impl Default for Caps {
    fn default() -> Self {
        Caps {
            connections_per_peer: 4,
            requests_per_peer: 8,
            sessions_per_peer: 2,
            serve_memory_per_peer: 32 * 1024 * 1024,
            store_reads_per_peer: 2,
            streams_per_connection: 16,
            handshakes_per_minute: 30,
            idle: Duration::from_secs(120),
        }
    }
}

/// A token bucket: `rate` per minute, at most `rate` saved up.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn take(&mut self, rate: u32, now: Instant) -> bool {
        let rate = f64::from(rate.max(1));
        let refill = now.duration_since(self.at).as_secs_f64() * rate / 60.0;
        self.tokens = (self.tokens + refill).min(rate);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Handshake budgets per source IP: unvalidated and validated attempts apart.
#[derive(Debug, Default)]
pub(crate) struct HandshakeLimiter {
    sources: Mutex<HashMap<(IpAddr, bool), Bucket>>,
}

impl HandshakeLimiter {
    /// What to do with an incoming connection attempt.
    pub(crate) fn judge(
        &self,
        source: IpAddr,
        validated: bool,
        rate: u32,
    ) -> IncomingFilterOutcome {
        let now = Instant::now();
        let mut sources = self.sources.lock().expect("limiter lock");
        if sources.len() >= MAX_SOURCES && !sources.contains_key(&(source, validated)) {
            // Forget the sources whose buckets are full again (idle for a minute).
            sources.retain(|_, b| now.duration_since(b.at) < Duration::from_secs(60));
            if sources.len() >= MAX_SOURCES {
                return if validated {
                    IncomingFilterOutcome::Ignore
                } else {
                    IncomingFilterOutcome::Retry
                };
            }
        }
        let bucket = sources.entry((source, validated)).or_insert(Bucket {
            tokens: f64::from(rate.max(1)),
            at: now,
        });
        match (bucket.take(rate, now), validated) {
            (true, _) => IncomingFilterOutcome::Accept,
            (false, false) => IncomingFilterOutcome::Retry,
            (false, true) => IncomingFilterOutcome::Ignore,
        }
    }
}

/// Direct addresses that connections with a peer actually used.
#[derive(Debug, Default)]
pub(crate) struct ConfirmedAddrs {
    peers: Mutex<HashMap<EndpointId, BTreeSet<SocketAddr>>>,
}

impl ConfirmedAddrs {
    pub(crate) fn confirm(&self, id: EndpointId, addr: SocketAddr) {
        let mut peers = self.peers.lock().expect("confirmed lock");
        if peers.len() >= MAX_CONFIRMED && !peers.contains_key(&id) {
            return;
        }
        let addrs = peers.entry(id).or_default();
        if addrs.len() < MAX_ADDRS_PER_PEER {
            addrs.insert(addr);
        }
    }

    pub(crate) fn get(&self, id: &EndpointId) -> BTreeSet<SocketAddr> {
        self.peers
            .lock()
            .expect("confirmed lock")
            .get(id)
            .cloned()
            .unwrap_or_default()
    }
}

/// Logs a line at most once every [`LOG_EVERY`], counting what it held back.
#[derive(Debug)]
struct QuietLog {
    state: Mutex<(Option<Instant>, u64)>,
}

impl QuietLog {
    fn new() -> Self {
        QuietLog {
            state: Mutex::new((None, 0)),
        }
    }

    fn warn(&self, line: impl FnOnce(u64) -> String) {
        let now = Instant::now();
        let mut state = self.state.lock().expect("log lock");
        match state.0 {
            Some(last) if now.duration_since(last) < LOG_EVERY => state.1 += 1,
            _ => {
                let held_back = state.1;
                *state = (Some(now), 0);
                drop(state);
                tracing::warn!("{}", line(held_back));
            }
        }
    }
}

/// The endpoint hook: refuses unpaired endpoints after the handshake, and remembers the
/// addresses connections with paired peers used.
#[derive(Debug)]
pub(crate) struct TrustHook {
    pub(crate) trust: Trust,
    pub(crate) confirmed: Arc<ConfirmedAddrs>,
    log: QuietLog,
}

impl TrustHook {
    pub(crate) fn new(trust: Trust, confirmed: Arc<ConfirmedAddrs>) -> Self {
        TrustHook {
            trust,
            confirmed,
            log: QuietLog::new(),
        }
    }
}

impl EndpointHooks for TrustHook {
    async fn after_handshake<'a>(&'a self, conn: &'a Connection) -> AfterHandshakeOutcome {
        let id = conn.remote_id();
        if conn.side() == Side::Server && self.trust.policy(&id).is_none() {
            self.log.warn(|held_back| {
                let more = if held_back > 0 {
                    format!(" ({held_back} more refusals since the last line)")
                } else {
                    String::new()
                };
                format!("refused a connection from unpaired endpoint {id}{more}")
            });
            return AfterHandshakeOutcome::Reject {
                error_code: VarInt::from_u32(CLOSE_NOT_PAIRED),
                reason: not_paired(&id).into_bytes(),
            };
        }
        for path in conn.paths().iter() {
            if let TransportAddr::Ip(addr) = path.remote_addr() {
                self.confirmed.confirm(id, *addr);
            }
        }
        AfterHandshakeOutcome::Accept
    }
}

/// Per-peer connection counts and request slots.
#[derive(Debug)]
pub(crate) struct PeerSlots {
    caps: Caps,
    peers: Mutex<HashMap<EndpointId, PeerState>>,
    limiter: HandshakeLimiter,
}

#[derive(Debug)]
struct PeerState {
    connections: usize,
    share: Arc<PeerShare>,
}

/// What one peer may hold of the server at once, over all its connections.
#[derive(Debug)]
pub(crate) struct PeerShare {
    /// Requests served.
    pub(crate) requests: Arc<Semaphore>,
    /// Reconciliation sessions.
    pub(crate) sessions: Arc<Semaphore>,
    /// Bytes of blob encodings waiting to be sent.
    pub(crate) serve_memory: Arc<Semaphore>,
    /// Store operations run for it at once (of the node's `Limits::store_reads`).
    pub(crate) reads: Arc<Semaphore>,
}

/// A connection counted against its peer's cap until dropped.
#[derive(Debug)]
pub(crate) struct ConnectionSlot {
    slots: Arc<PeerSlots>,
    peer: EndpointId,
    pub(crate) share: Arc<PeerShare>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut peers = self.slots.peers.lock().expect("slots lock");
        if let Some(state) = peers.get_mut(&self.peer) {
            state.connections -= 1;
            if state.connections == 0 {
                peers.remove(&self.peer);
            }
        }
    }
}

impl PeerSlots {
    pub(crate) fn new(caps: Caps) -> Self {
        PeerSlots {
            caps,
            peers: Mutex::default(),
            limiter: HandshakeLimiter::default(),
        }
    }

    pub(crate) fn caps(&self) -> Caps {
        self.caps
    }

    /// Counts a new connection of `peer`, or `None` when it has its maximum open.
    pub(crate) fn open(self: &Arc<Self>, peer: EndpointId) -> Option<ConnectionSlot> {
        let mut peers = self.peers.lock().expect("slots lock");
        let state = peers.entry(peer).or_insert_with(|| PeerState {
            connections: 0,
            share: Arc::new(PeerShare {
                requests: Arc::new(permits(self.caps.requests_per_peer)),
                sessions: Arc::new(permits(self.caps.sessions_per_peer)),
                serve_memory: Arc::new(Semaphore::new(
                    self.caps.serve_memory_per_peer.clamp(1, u32::MAX as usize),
                )),
                reads: Arc::new(permits(self.caps.store_reads_per_peer)),
            }),
        });
        if state.connections >= self.caps.connections_per_peer.max(1) {
            return None;
        }
        state.connections += 1;
        Some(ConnectionSlot {
            slots: self.clone(),
            peer,
            share: state.share.clone(),
        })
    }

    /// The router's incoming filter: handshake budgets per source IP.
    pub(crate) fn judge(&self, incoming: &Incoming) -> IncomingFilterOutcome {
        match incoming.remote_addr() {
            IncomingAddr::Ip(addr) => self.limiter.judge(
                addr.ip(),
                incoming.remote_addr_validated(),
                self.caps.handshakes_per_minute,
            ),
            // Relayed connections carry the relay's word for the id; the hook checks it.
            _ => IncomingFilterOutcome::Accept,
        }
    }
}

/// A semaphore of `n` permits: at least one (a zero limit would stop everything), at most what
/// tokio allows (a caller's "unlimited", `usize::MAX`, would panic there).
pub(crate) fn permits(n: usize) -> Semaphore {
    Semaphore::new(n.clamp(1, Semaphore::MAX_PERMITS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_over_its_budget_is_retried_then_ignored() {
        let limiter = HandshakeLimiter::default();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        for _ in 0..5 {
            assert!(matches!(
                limiter.judge(ip, true, 5),
                IncomingFilterOutcome::Accept
            ));
        }
        assert!(matches!(
            limiter.judge(ip, true, 5),
            IncomingFilterOutcome::Ignore
        ));
        // Spoofed (unvalidated) attempts spend their own budget, then get a retry: they
        // cannot use up the validated budget of the address they claim.
        for _ in 0..5 {
            assert!(matches!(
                limiter.judge(ip, false, 5),
                IncomingFilterOutcome::Accept
            ));
        }
        assert!(matches!(
            limiter.judge(ip, false, 5),
            IncomingFilterOutcome::Retry
        ));
        // Another source is not affected.
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        assert!(matches!(
            limiter.judge(other, true, 5),
            IncomingFilterOutcome::Accept
        ));
    }

    #[test]
    fn the_source_table_is_bounded() {
        let limiter = HandshakeLimiter::default();
        for i in 0..(MAX_SOURCES as u32 + 10) {
            let ip = IpAddr::from(i.to_be_bytes());
            limiter.judge(ip, true, 5);
        }
        assert!(limiter.sources.lock().unwrap().len() <= MAX_SOURCES);
    }

    #[test]
    fn connections_per_peer_are_capped_and_given_back() {
        let slots = Arc::new(PeerSlots::new(Caps {
            connections_per_peer: 2,
            ..Caps::default()
        }));
        let peer = iroh::SecretKey::from_bytes(&[3; 32]).public();
        let a = slots.open(peer).unwrap();
        let _b = slots.open(peer).unwrap();
        assert!(slots.open(peer).is_none());
        drop(a);
        assert!(slots.open(peer).is_some());
    }

    #[test]
    fn confirmed_addresses_are_bounded_per_peer() {
        let c = ConfirmedAddrs::default();
        let peer = iroh::SecretKey::from_bytes(&[4; 32]).public();
        for port in 0..100u16 {
            c.confirm(peer, SocketAddr::from(([10, 0, 0, 1], port)));
        }
        assert_eq!(c.get(&peer).len(), MAX_ADDRS_PER_PEER);
    }
}
