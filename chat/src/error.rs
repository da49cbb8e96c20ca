//! The messenger's errors.

use archive_core::{AddError, EntryError, NameError, ReadError, SnapshotError, StorageError};

/// What went wrong in a chat call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChatError {
    /// The room's rules do not allow it (a ban, a role, a room not shared with this server).
    #[error("not allowed: {0}")]
    NotAllowed(String),
    /// Bad input: a text too long, an account name that breaks the rules.
    #[error("{0}")]
    Invalid(String),
    /// No such message in the room.
    #[error("no message {0} in this room")]
    NoSuchMessage(String),
    /// No such account on this server (every write is an account's).
    #[error("no account {0} on this server")]
    NoSuchAccount(String),
    /// The person writes faster than this server allows (see `PacePolicy`).
    #[error("slow down: {account} may write again in {} s", wait.as_secs().max(1))]
    TooFast {
        /// Who.
        account: String,
        /// How long until they may.
        wait: std::time::Duration,
    },
    /// The room is not known on this server.
    #[error("room {0} is not known on this server")]
    NoSuchRoom(String),
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The search index failed (see `Search`).
    #[error("search index: {0}")]
    Index(String),
    /// Content the store holds could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
}

impl From<NameError> for ChatError {
    fn from(e: NameError) -> Self {
        ChatError::Invalid(e.to_string())
    }
}

impl From<EntryError> for ChatError {
    fn from(e: EntryError) -> Self {
        match e {
            EntryError::BrokeRules { reason, .. } => ChatError::NotAllowed(reason),
            EntryError::Storage(s) => ChatError::Storage(s),
            EntryError::Name(n) => n.into(),
            other => ChatError::Invalid(other.to_string()),
        }
    }
}

impl From<AddError> for ChatError {
    fn from(e: AddError) -> Self {
        match e {
            AddError::Entry(e) => e.into(),
            AddError::Storage(s) => ChatError::Storage(s),
            other => ChatError::Invalid(other.to_string()),
        }
    }
}

impl From<SnapshotError> for ChatError {
    fn from(e: SnapshotError) -> Self {
        match e {
            SnapshotError::Storage(s) => ChatError::Storage(s),
            other => ChatError::Invalid(other.to_string()),
        }
    }
}
