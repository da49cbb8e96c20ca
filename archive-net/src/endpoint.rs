//! The server's iroh endpoint: its identity is the store's key; two network profiles.

use std::net::SocketAddr;

use iroh::endpoint::{presets, PortmapperConfig, QuicTransportConfig};
use iroh::{Endpoint, RelayMap, RelayMode, RelayUrl};

use crate::error::NetError;
use crate::mdns::MdnsLookupBuilder;
use crate::wire::ALPN;

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
pub async fn bind_endpoint(
    key: &archive_core::SecretKey,
    config: &NetConfig,
) -> Result<Endpoint, NetError> {
    let transport = QuicTransportConfig::builder()
        .keep_alive_interval(std::time::Duration::from_secs(5))
        .build();
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
        .alpns(vec![ALPN.to_vec()])
        .transport_config(transport);
    if let Some(addr) = config.bind {
        builder = builder
            .clear_ip_transports()
            .bind_addr(addr)
            .map_err(|e| NetError::Bind(format!("{addr}: {e}")))?;
    }
    if config.mdns {
        builder = builder.address_lookup(MdnsLookupBuilder);
    }
    builder
        .bind()
        .await
        .map_err(|e| NetError::Bind(e.to_string()))
}
