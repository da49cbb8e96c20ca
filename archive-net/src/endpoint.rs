//! The server's iroh endpoint: its identity is the store's key; two network profiles.

use std::net::SocketAddr;

use std::sync::Arc;

use iroh::endpoint::{presets, PortmapperConfig, QuicTransportConfig, VarInt};
use iroh::{Endpoint, RelayMap, RelayMode, RelayUrl};

use crate::admission::{Caps, ConfirmedAddrs, TrustHook};
use crate::error::NetError;
use crate::mdns::MdnsLookupBuilder;
use crate::trust::Trust;
use crate::wire::{ALPN, ALPN_V1};

/// Bytes a peer may have in flight to us on one connection (QUIC flow control): bounds what a
/// peer that sends fast can make us buffer.
const RECEIVE_WINDOW: u32 = 16 * 1024 * 1024;

/// How the endpoint reaches other servers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Profile {
    /// The community's own network, internet or not: no relay, no DNS or pkarr lookup, no port
    /// mapping; direct addresses, with mDNS discovery when enabled.
    #[default]
    Lan,
    /// Relays and public discovery on. `relay` names the community's own relay; without one
    /// the public relays of number 0 are used.
    Internet {
        /// A self-hosted relay.
        relay: Option<RelayUrl>,
    },
}

/// Endpoint settings.
#[derive(Debug, Clone, Default)]
pub struct NetConfig {
    /// Network profile.
    pub profile: Profile,
    /// Listen address; by default every interface on a random port.
    pub bind: Option<SocketAddr>,
    /// Find (and be found by) servers on the local network by mDNS.
    pub mdns: bool,
}

/// Creates the endpoint for `key` (the store's key: its public half is the endpoint id).
/// Incoming connections from endpoints not in `trust` are refused right after the handshake.
pub async fn bind_endpoint(
    key: &archive_core::SecretKey,
    config: &NetConfig,
    trust: &Trust,
) -> Result<Endpoint, NetError> {
    let caps = Caps::default();
    let transport = QuicTransportConfig::builder()
        .keep_alive_interval(std::time::Duration::from_secs(5))
        .max_concurrent_bidi_streams(VarInt::from_u32(caps.streams_per_connection))
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        .receive_window(VarInt::from_u32(RECEIVE_WINDOW))
        .build();
    let confirmed = Arc::new(ConfirmedAddrs::default());
    let mut builder = match &config.profile {
        Profile::Lan => Endpoint::builder(presets::Minimal)
            .relay_mode(RelayMode::Disabled)
            .portmapper_config(PortmapperConfig::Disabled),
        Profile::Internet { relay: None } => Endpoint::builder(presets::N0),
        Profile::Internet { relay: Some(url) } => Endpoint::builder(presets::N0)
            .relay_mode(RelayMode::Custom(RelayMap::from_iter([url.clone()]))),
    };
    builder = builder
        .secret_key(iroh::SecretKey::from_bytes(&key.to_bytes()))
        .alpns(vec![ALPN.to_vec(), ALPN_V1.to_vec()])
        .transport_config(transport)
        .hooks(TrustHook::new(trust.clone(), confirmed.clone()));
    if let Some(addr) = config.bind {
        builder = builder
            .clear_ip_transports()
            .bind_addr(addr)
            .map_err(|e| NetError::bind(Some(addr), e))?;
    }
    if config.mdns {
        builder = builder.address_lookup(MdnsLookupBuilder { confirmed });
    }
    builder
        .bind()
        .await
        .map_err(|e| NetError::bind(config.bind, e))
}
