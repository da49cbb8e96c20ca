//! What can go wrong between two servers.

use std::time::Duration;

/// A failure of a network operation: what happened, with the failure underneath as its
/// [`source`](std::error::Error::source) where there is one. What to do about it is for the
/// program to say (the `archive` command adds its own advice).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// The endpoint could not be created.
    #[error("cannot start the network endpoint{}", on(.addr))]
    Bind {
        /// The address it was to listen on, if one was given.
        addr: Option<std::net::SocketAddr>,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The peer could not be reached.
    #[error("cannot connect to {peer}")]
    Connect {
        /// The peer's endpoint id.
        peer: iroh::EndpointId,
        /// Why.
        #[source]
        source: ConnectFailure,
    },
    /// The peer speaks another version of the sync protocol.
    #[error(
        "{peer} speaks archive sync protocol {theirs} and this server speaks protocol {ours}: \
         upgrade `archive` on the server with the older version"
    )]
    OtherVersion {
        /// The peer.
        peer: iroh::EndpointId,
        /// Its protocol version.
        theirs: u32,
        /// Ours ([`crate::wire::PROTOCOL_VERSION`]).
        ours: u32,
    },
    /// The peer does not know this server: it closed the connection as unpaired.
    #[error("refused by the peer: {0}")]
    NotPaired(String),
    /// The peer refused us (not allowed, busy, ...), with its reason.
    #[error("refused by the peer: {0}")]
    Refused(String),
    /// We refused the peer.
    #[error("not allowed: {0}")]
    NotAllowed(String),
    /// The peer broke the protocol (garbage, wrong order, unknown data).
    #[error("protocol violation by the peer: {0}")]
    Protocol(String),
    /// A frame larger than its limit.
    #[error("the peer sent a frame of {size} bytes (limit {limit})")]
    FrameTooLarge {
        /// Announced size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The peer went quiet.
    #[error("the peer sent nothing for {0:?}")]
    Timeout(Duration),
    /// The peer stopped taking what we send.
    #[error("the peer took nothing for {0:?}")]
    Stalled(Duration),
    /// The connection failed (other than by the peer closing it with a reason, which is
    /// [`NetError::Refused`]).
    #[error("the connection failed")]
    Connection(#[source] iroh::endpoint::ConnectionError),
    /// Reading or writing a stream failed.
    #[error("the stream failed")]
    Stream(#[source] std::io::Error),
    /// A blocking task of the node failed.
    #[error("a blocking task failed")]
    Worker(#[source] tokio::task::JoinError),
    /// The node is shutting down.
    #[error("the node is shutting down")]
    Closed,
    /// Not enough room for what the sync would store.
    #[error(
        "not enough space: the sync needs {needed} more bytes, {available} are available ({what})"
    )]
    NoSpace {
        /// Bytes the sync would add.
        needed: u64,
        /// Bytes available.
        available: u64,
        /// Which limit: free disk space or the configured quota.
        what: &'static str,
    },
    /// The peer has brought as many entries as it may (`Limits::peer_max_entries`).
    #[error("the peer reached its limit of entries on this server ({limit} more allowed)")]
    TooManyEntries {
        /// Entries it may still bring.
        limit: u64,
    },
    /// Reconciliation failed.
    #[error("reconciliation")]
    Sync(#[from] archive_core::SyncError),
    /// Receiving blobs or entries failed (including bytes that do not verify).
    #[error(transparent)]
    Transfer(#[from] archive_core::TransferError),
    /// The local store failed.
    #[error("local store")]
    Storage(#[from] archive_core::StorageError),
    /// An entry could not be decoded or stored.
    #[error(transparent)]
    Entry(#[from] archive_core::EntryError),
    /// A collection name breaks the naming rules.
    #[error(transparent)]
    Name(#[from] archive_core::NameError),
}

/// Why a connection could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectFailure {
    /// Nothing answered in time.
    #[error("no answer within {0:?}")]
    Timeout(std::time::Duration),
    /// The attempt failed.
    #[error(transparent)]
    Failed(#[from] iroh::endpoint::ConnectError),
}

fn on(addr: &Option<std::net::SocketAddr>) -> String {
    addr.map(|a| format!(" on {a}")).unwrap_or_default()
}

impl NetError {
    /// A blocking task that panicked or was cancelled.
    pub(crate) fn worker(e: tokio::task::JoinError) -> Self {
        NetError::Worker(e)
    }

    /// A failure of the endpoint's creation.
    pub(crate) fn bind(
        addr: Option<std::net::SocketAddr>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        NetError::Bind {
            addr,
            source: Box::new(source),
        }
    }
}

/// What a peer said when it closed the connection on purpose: the refusal it stands for.
fn closed_on_purpose(e: &iroh::endpoint::ConnectionError) -> Option<NetError> {
    let iroh::endpoint::ConnectionError::ApplicationClosed(close) = e else {
        return None;
    };
    let reason = String::from_utf8_lossy(&close.reason).into_owned();
    Some(
        if close.error_code == iroh::endpoint::VarInt::from_u32(crate::CLOSE_NOT_PAIRED) {
            NetError::NotPaired(reason)
        } else {
            NetError::Refused(reason)
        },
    )
}

impl From<iroh::endpoint::ConnectionError> for NetError {
    fn from(e: iroh::endpoint::ConnectionError) -> Self {
        closed_on_purpose(&e).unwrap_or(NetError::Connection(e))
    }
}

/// A stream error: the peer's reason when it closed the connection on purpose, the stream
/// failure otherwise.
impl From<std::io::Error> for NetError {
    fn from(e: std::io::Error) -> Self {
        use iroh::endpoint::{ReadError, WriteError};
        let lost = e.get_ref().and_then(|inner| {
            if let Some(ReadError::ConnectionLost(c)) = inner.downcast_ref::<ReadError>() {
                return Some(c);
            }
            if let Some(WriteError::ConnectionLost(c)) = inner.downcast_ref::<WriteError>() {
                return Some(c);
            }
            None
        });
        lost.and_then(closed_on_purpose)
            .unwrap_or(NetError::Stream(e))
    }
}

/// A failed write on a QUIC stream (its inherent `write_all`), as [`From<std::io::Error>`].
impl From<iroh::endpoint::WriteError> for NetError {
    fn from(e: iroh::endpoint::WriteError) -> Self {
        NetError::from(std::io::Error::from(e))
    }
}
