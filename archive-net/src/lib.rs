//! `archive-net`: community archive servers pair and sync over iroh.
//!
//! A server's identity is its store's key; peers dial it by that public key (its iroh
//! endpoint id). Trust is explicit ([`Trust`]): an unpaired endpoint is refused. The protocol
//! ([`wire`]) runs the reconciliation of [`archive_core::sync`] on one stream, then moves
//! signed entries and bao-verified blobs on others; see ARCHITECTURE.md, "Network protocol".
//!
//! This crate knows QUIC and iroh; it knows nothing of HTTP, configuration files or the CLI.
#![warn(missing_docs, unreachable_pub)]

mod admission;
mod client;
mod endpoint;
mod error;
mod mdns;
mod node;
mod pull;
mod server;
mod space;
mod streams;
mod ticket;
mod trust;
pub mod wire;

pub use admission::Caps;
pub use client::{connect, DiffReport, SyncOptions, SyncReport};
pub use endpoint::{bind_endpoint, NetConfig, Profile};
pub use error::{ConnectFailure, NetError};
pub use node::{Counters, Limits, Node};
pub use pull::PullReport;
pub use server::{
    ArchiveProtocol, RefuseOldVersion, CLOSE_IDLE, CLOSE_NOT_PAIRED, CLOSE_OLD_VERSION,
    CLOSE_TOO_MANY,
};
pub use ticket::{Ticket, TicketError, MAX_TICKET_ADDRS};
pub use trust::{Access, PeerPolicy, Trust, LOCAL_PREFIX};
pub use wire::{ALPN, ALPN_V1, PROTOCOL_VERSION};

pub use iroh::endpoint::Connection;
pub use iroh::{Endpoint, EndpointAddr, EndpointId};

/// Entry points for `cargo fuzz` targets. Not part of the supported API.
#[doc(hidden)]
pub mod fuzz_api {
    use std::sync::Arc;

    use crate::{Counters, NetError, Node, PullReport};

    /// Pulls `keys` of `collection` from a peer whose every answer is `answer(request)`: the
    /// raw bytes it sends back on that request's stream.
    pub async fn pull_scripted(
        node: &Node,
        peer: iroh::EndpointId,
        collection: &str,
        keys: Vec<archive_core::sync::SyncKey>,
        answer: impl Fn(&crate::wire::Request) -> Vec<u8> + Send + Sync + 'static,
    ) -> Result<PullReport, NetError> {
        let conn = crate::streams::ScriptedPeer {
            id: peer,
            answer: Arc::new(answer),
        };
        let counters = Counters::default();
        let pull = crate::pull::pull(node, &conn, collection, keys, &counters, None);
        crate::node::on_our_task(pull).await
    }
}
