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
use std::time::{Duration, SystemTime};

use iroh::address_lookup::{
    AddressLookup, AddressLookupBuilder, AddressLookupBuilderError, EndpointData, EndpointInfo,
    Error as LookupError, Item,
};
use iroh::{Endpoint, EndpointId, TransportAddr};
use n0_future::boxed::BoxStream;
use swarm_discovery::{Discoverer, DropGuard, IpClass, Peer};
use tokio::sync::broadcast;

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
/// Provenance of the lookup items.
const PROVENANCE: &str = "archive-mdns";

/// Builds the mDNS lookup for an endpoint (see [`crate::bind_endpoint`]).
#[derive(Debug, Default)]
pub(crate) struct MdnsLookupBuilder;

impl AddressLookupBuilder for MdnsLookupBuilder {
    fn into_address_lookup(
        self,
        endpoint: &Endpoint,
    ) -> Result<impl AddressLookup, AddressLookupBuilderError> {
        // The discoverer starts at the first publish, once the endpoint knows its addresses.
        Ok(MdnsLookup::new(endpoint.id()))
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

/// Servers seen, and a signal for lookups waiting on one.
struct Table {
    known: Mutex<HashMap<EndpointId, EndpointInfo>>,
    found: broadcast::Sender<EndpointId>,
}

impl Table {
    fn record(&self, me: EndpointId, instance: &str, peer: &Peer) {
        let Some(id) = parse_instance(instance) else {
            return;
        };
        if id == me {
            return;
        }
        let mut known = self.known.lock().expect("mdns table");
        if peer.is_expiry() {
            known.remove(&id);
            return;
        }
        if known.len() >= MAX_KNOWN && !known.contains_key(&id) {
            return;
        }
        let addrs = peer
            .addrs()
            .iter()
            .map(|(ip, port)| TransportAddr::Ip(SocketAddr::new(*ip, *port)));
        let info = EndpointInfo::from_parts(id, EndpointData::from_iter(addrs));
        if known.get(&id) != Some(&info) {
            tracing::debug!("mDNS: {id} at {:?}", peer.addrs());
            known.insert(id, info);
            let _ = self.found.send(id);
        }
    }

    fn get(&self, id: &EndpointId) -> Option<Item> {
        let info = self.known.lock().expect("mdns table").get(id)?.clone();
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
    fn new(me: EndpointId) -> MdnsLookup {
        MdnsLookup {
            shared: Arc::new(Shared {
                me,
                runtime: tokio::runtime::Handle::current(),
                table: Arc::new(Table {
                    known: Mutex::new(HashMap::new()),
                    found: broadcast::channel(64).0,
                }),
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
