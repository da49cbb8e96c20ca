//! What can go wrong between two servers.

use std::time::Duration;

/// A failure of a network operation. Messages say what happened and, where it helps, what to
/// do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// The endpoint could not be created.
    #[error("cannot start the network endpoint: {0}")]
    Bind(String),
    /// The peer could not be reached.
    #[error("cannot connect to {peer}: {detail}")]
    Connect {
        /// The peer's endpoint id.
        peer: String,
        /// Why.
        detail: String,
    },
    /// The peer refused us (not paired, or not allowed).
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
    /// The connection failed.
    #[error("connection: {0}")]
    Io(String),
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
    #[error("the peer reached its limit of entries on this server ({limit} more allowed); purge what it brought or raise the limit")]
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

impl From<iroh::endpoint::ConnectionError> for NetError {
    fn from(e: iroh::endpoint::ConnectionError) -> Self {
        use iroh::endpoint::ConnectionError as C;
        match e {
            C::ApplicationClosed(close) => {
                NetError::Refused(String::from_utf8_lossy(&close.reason).into_owned())
            }
            other => NetError::Io(other.to_string()),
        }
    }
}
