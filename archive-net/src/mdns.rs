//! Finding servers on the local network by mDNS, also on a network with no default route.
//!
//! An iroh address lookup ([`AddressLookup`]) over `swarm-discovery`: each server announces its
//! endpoint id (base32, as the mDNS instance name) with its direct addresses under the service
//! `_archive-sync._udp.local.`, and asks for the others every [`CADENCE`]. Addresses learnt this
//! way are only hints for dialling: QUIC's handshake proves the id, so a false announcement can
//! misdirect a dial but never impersonate a server.
//!
//! Why not `iroh-mdns-address-lookup` (which wraps the same crate)? It sends multicast through
//! the default route's interface. On a host without a default route (the cut-off case, such as
//! a Pi that is itself the community's Wi-Fi access point) the kernel then has no interface for
//! 224.0.0.251: every send fails with "network unreachable" and the group is never joined, so
//! the server is neither seen nor sees. Here every IPv4 address the endpoint is reachable on
//! gets its own multicast interface, kept up to date as addresses change.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use iroh::address_lookup::{
    AddressLookup, AddressLookupBuilder, AddressLookupBuilderError, EndpointData, EndpointInfo,
    Error as LookupError, Item,
};
use iroh::{Endpoint, EndpointId, TransportAddr};
use n0_future::boxed::BoxStream;
use swarm_discovery::{Discoverer, DropGuard, IpClass, Peer};
use tokio::sync::broadcast;

use crate::admission::ConfirmedAddrs;

/// The DNS-SD service name (`_archive-sync._udp.local.`); servers of other iroh applications
/// use other names and are not listed.
const SERVICE: &str = "archive-sync";
/// How often each server asks (swarm-discovery spreads the answers).
const CADENCE: Duration = Duration::from_millis(700);
/// How long a dial waits for an answer about a server not seen yet.
const LOOKUP_WAIT: Duration = Duration::from_secs(10);
/// Most servers remembered: announcements are unauthenticated, so a noisy network cannot make
/// the table grow without bound. Servers beyond it are still found when they answer a lookup
/// while there is room again (expired ones are removed).
const MAX_KNOWN: usize = 4096;
/// How long an announcement counts: servers re-announce every few seconds, so an address
/// heard longer ago than this is stale (the server left, or the announcement was forged once).
const MAX_AGE: Duration = Duration::from_secs(120);
/// Provenance of the lookup items.
const PROVENANCE: &str = "archive-mdns";

/// Builds the mDNS lookup for an endpoint (see [`crate::bind_endpoint`]).
#[derive(Debug, Default)]
pub(crate) struct MdnsLookupBuilder {
    /// Addresses connections confirmed: announcements never replace them.
    pub(crate) confirmed: Arc<ConfirmedAddrs>,
}

impl AddressLookupBuilder for MdnsLookupBuilder {
    fn into_address_lookup(
        self,
        endpoint: &Endpoint,
    ) -> Result<impl AddressLookup, AddressLookupBuilderError> {
        // The discoverer starts at the first publish, once the endpoint knows its addresses.
        Ok(MdnsLookup::new(endpoint.id(), self.confirmed))
    }
}

/// The running lookup; stops when the endpoint drops it.
#[derive(Clone)]
pub(crate) struct MdnsLookup {
    shared: Arc<Shared>,
}

struct Shared {
    me: EndpointId,
    runtime: tokio::runtime::Handle,
    table: Arc<Table>,
    running: Mutex<Running>,
}

/// The discoverer, when there is an interface to run it on, and what it announces.
#[derive(Default)]
struct Running {
    discoverer: Option<DropGuard>,
    addrs: BTreeSet<SocketAddr>,
    interfaces: BTreeSet<Ipv4Addr>,
}

/// Servers seen (with when), and a signal for lookups waiting on one.
pub(crate) struct Table {
    known: Mutex<HashMap<EndpointId, (BTreeSet<SocketAddr>, Instant)>>,
    found: broadcast::Sender<EndpointId>,
    confirmed: Arc<ConfirmedAddrs>,
}

impl Table {
    pub(crate) fn new(confirmed: Arc<ConfirmedAddrs>) -> Self {
        Table {
            known: Mutex::new(HashMap::new()),
            found: broadcast::channel(64).0,
            confirmed,
        }
    }

    /// Takes an announcement (unauthenticated: anyone on the LAN can send one).
    pub(crate) fn record(&self, me: EndpointId, instance: &str, peer: &Peer) {
        let Some(id) = parse_instance(instance) else {
            return;
        };
        let addrs: BTreeSet<SocketAddr> = peer
            .addrs()
            .iter()
            .map(|(ip, port)| SocketAddr::new(*ip, *port))
            .collect();
        self.record_addrs(me, id, addrs, peer.is_expiry(), Instant::now());
    }

    fn record_addrs(
        &self,
        me: EndpointId,
        id: EndpointId,
        addrs: BTreeSet<SocketAddr>,
        expiry: bool,
        now: Instant,
    ) {
        if id == me {
            return;
        }
        let mut known = self.known.lock().expect("mdns table");
        if expiry {
            known.remove(&id);
            return;
        }
        if known.len() >= MAX_KNOWN && !known.contains_key(&id) {
            known.retain(|_, (_, seen)| now.duration_since(*seen) < MAX_AGE);
            if known.len() >= MAX_KNOWN {
                return;
            }
        }
        let changed = known.get(&id).is_none_or(|(old, _)| *old != addrs);
        if changed {
            tracing::debug!("mDNS: {id} at {addrs:?}");
        }
        known.insert(id, (addrs, now));
        if changed {
            let _ = self.found.send(id);
        }
    }

    /// The addresses to try for `id`: those a connection confirmed first, then what was
    /// announced lately. An announcement adds to a confirmed address, never replaces it.
    pub(crate) fn addrs(&self, id: &EndpointId, now: Instant) -> Vec<SocketAddr> {
        let confirmed = self.confirmed.get(id);
        let mut out: Vec<SocketAddr> = confirmed.iter().copied().collect();
        if let Some((announced, seen)) = self.known.lock().expect("mdns table").get(id) {
            if now.duration_since(*seen) < MAX_AGE {
                out.extend(announced.difference(&confirmed).copied());
            }
        }
        out
    }

    fn get(&self, id: &EndpointId) -> Option<Item> {
        let addrs = self.addrs(id, Instant::now());
        if addrs.is_empty() {
            return None;
        }
        let data = EndpointData::from_iter(addrs.into_iter().map(TransportAddr::Ip));
        let info = EndpointInfo::from_parts(*id, data);
        let micros = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        Some(Item::new(info, PROVENANCE, Some(micros)))
    }
}

impl std::fmt::Debug for MdnsLookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MdnsLookup").finish_non_exhaustive()
    }
}

impl MdnsLookup {
    fn new(me: EndpointId, confirmed: Arc<ConfirmedAddrs>) -> MdnsLookup {
        MdnsLookup {
            shared: Arc::new(Shared {
                me,
                runtime: tokio::runtime::Handle::current(),
                table: Arc::new(Table::new(confirmed)),
                running: Mutex::default(),
            }),
        }
    }

    /// Starts the discoverer on `interfaces`, announcing `addrs`.
    fn spawn(
        &self,
        addrs: &BTreeSet<SocketAddr>,
        interfaces: &BTreeSet<Ipv4Addr>,
    ) -> Result<DropGuard, Box<swarm_discovery::SpawnError>> {
        let shared = &self.shared;
        let (table, me) = (shared.table.clone(), shared.me);
        let mut discoverer = Discoverer::new_interactive(SERVICE.to_owned(), instance_name(&me))
            .with_cadence(CADENCE)
            .with_ip_class(IpClass::Auto)
            .with_multicast_interfaces_v4(interfaces.iter().copied().collect())
            .with_callback(move |instance: &str, peer: &Peer| table.record(me, instance, peer));
        for (port, ips) in by_port(addrs) {
            discoverer = discoverer.with_addrs(port, ips);
        }
        discoverer.spawn(&shared.runtime).map_err(Box::new)
    }
}

fn by_port(addrs: &BTreeSet<SocketAddr>) -> HashMap<u16, Vec<IpAddr>> {
    let mut ports: HashMap<u16, Vec<IpAddr>> = HashMap::new();
    for a in addrs {
        ports.entry(a.port()).or_default().push(a.ip());
    }
    ports
}

impl AddressLookup for MdnsLookup {
    fn publish(&self, data: &EndpointData) {
        let addrs: BTreeSet<SocketAddr> = data.ip_addrs().copied().collect();
        // Multicast goes out on every interface we are reachable on, loopback aside (it
        // carries no multicast); an unspecified address is no interface.
        let interfaces: BTreeSet<Ipv4Addr> = addrs
            .iter()
            .filter_map(|a| match a.ip() {
                IpAddr::V4(ip) if !ip.is_loopback() && !ip.is_unspecified() => Some(ip),
                _ => None,
            })
            .collect();
        let mut running = self.shared.running.lock().expect("mdns state");
        if interfaces.is_empty() {
            // Bound to loopback only (or not yet addressed): nobody to announce to.
            running.discoverer = None;
        } else if let Some(d) = &running.discoverer {
            for gone in running.interfaces.difference(&interfaces) {
                d.remove_interface_v4(*gone);
            }
            for new in interfaces.difference(&running.interfaces) {
                d.add_interface_v4(*new);
            }
            if addrs != running.addrs {
                d.remove_all();
                for (port, ips) in by_port(&addrs) {
                    d.add(port, ips);
                }
            }
        } else {
            match self.spawn(&addrs, &interfaces) {
                Ok(d) => running.discoverer = Some(d),
                Err(e) => tracing::warn!("mDNS discovery could not start: {e}"),
            }
        }
        running.addrs = addrs;
        running.interfaces = interfaces;
    }

    fn resolve(&self, id: EndpointId) -> Option<BoxStream<Result<Item, LookupError>>> {
        let table = self.shared.table.clone();
        // Subscribe before looking, so an answer arriving in between is not missed.
        let found = table.found.subscribe();
        let first = table.get(&id);
        let deadline = tokio::time::Instant::now() + LOOKUP_WAIT;
        let stream = n0_future::stream::unfold(
            (first, found, table),
            move |(first, mut found, table)| async move {
                if let Some(item) = first {
                    return Some((Ok(item), (None, found, table)));
                }
                loop {
                    match tokio::time::timeout_at(deadline, found.recv()).await {
                        Err(_) | Ok(Err(broadcast::error::RecvError::Closed)) => return None,
                        Ok(Ok(seen)) if seen != id => continue,
                        // This one, or missed signals (one of them may have been this one).
                        Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {
                            if let Some(item) = table.get(&id) {
                                return Some((Ok(item), (None, found, table)));
                            }
                        }
                    }
                }
            },
        );
        Some(Box::pin(stream))
    }
}

/// The mDNS instance name of an endpoint: its id in lowercase base32 (52 characters, within a
/// DNS label's 63).
fn instance_name(id: &EndpointId) -> String {
    data_encoding::BASE32_NOPAD
        .encode(id.as_bytes())
        .to_ascii_lowercase()
}

fn parse_instance(name: &str) -> Option<EndpointId> {
    let bytes = data_encoding::BASE32_NOPAD
        .decode(name.to_ascii_uppercase().as_bytes())
        .ok()?;
    EndpointId::from_bytes(&bytes.try_into().ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> EndpointId {
        iroh::SecretKey::from_bytes(&[n; 32]).public()
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_forged_announcement_never_replaces_a_confirmed_address() {
        let confirmed = Arc::new(ConfirmedAddrs::default());
        let table = Table::new(confirmed.clone());
        let (me, peer) = (id(1), id(2));
        confirmed.confirm(peer, addr("10.0.0.2:7740"));
        let now = Instant::now();
        table.record_addrs(me, peer, [addr("10.6.6.6:7740")].into(), false, now);
        let addrs = table.addrs(&peer, now);
        assert_eq!(addrs[0], addr("10.0.0.2:7740"), "{addrs:?}");
        assert!(addrs.contains(&addr("10.6.6.6:7740")));
        // A forged "goodbye" cannot remove it either.
        table.record_addrs(me, peer, BTreeSet::new(), true, now);
        assert_eq!(table.addrs(&peer, now), vec![addr("10.0.0.2:7740")]);
    }

    #[test]
    fn announcements_age_out() {
        let table = Table::new(Arc::default());
        let (me, peer) = (id(1), id(3));
        let then = Instant::now();
        table.record_addrs(me, peer, [addr("10.0.0.3:7740")].into(), false, then);
        assert_eq!(table.addrs(&peer, then).len(), 1);
        assert!(table
            .addrs(&peer, then + MAX_AGE + Duration::from_secs(1))
            .is_empty());
    }

    #[test]
    fn a_flood_of_announcements_stays_bounded() {
        let table = Table::new(Arc::default());
        let now = Instant::now();
        for i in 0..(MAX_KNOWN + 100) {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
            let fake = iroh::SecretKey::from_bytes(&seed).public();
            table.record_addrs(id(1), fake, [addr("10.0.0.9:1")].into(), false, now);
        }
        assert!(table.known.lock().unwrap().len() <= MAX_KNOWN);
    }

    #[test]
    fn instance_names_are_dns_labels_and_parse_back() {
        let id = iroh::SecretKey::from_bytes(&[9; 32]).public();
        let name = instance_name(&id);
        assert_eq!(name.len(), 52);
        assert!(name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
        assert_eq!(parse_instance(&name), Some(id));
        // Case does not matter in DNS; anything else is not a server of ours.
        assert_eq!(parse_instance(&name.to_ascii_uppercase()), Some(id));
        for bad in [
            "",
            "archive",
            &name[..51],
            &format!("{name}a"),
            "0".repeat(52).as_str(),
        ] {
            assert_eq!(parse_instance(bad), None, "{bad:?}");
        }
    }
}
