//! Error types, one per family of operations. Each names what failed and on what.

use std::io;
use std::path::PathBuf;

use crate::clock::Timestamp;
use crate::entry::EntryId;
use crate::hash::Hash;
use crate::identity::PublicKey;
use crate::names::NameError;

/// A failure of the underlying storage: the database or a blob file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The metadata database failed.
    #[error("store database")]
    Database(#[from] redb::Error),
    /// A file of the store could not be read or written.
    #[error("{}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Stored metadata did not decode: the database is damaged or was written by other software.
    #[error("damaged store metadata: {0}")]
    Damaged(String),
    /// The operation cannot run now; the message says why and when to retry.
    #[error("{0}")]
    Busy(String),
    /// A position or range asked of a sync index lies outside it (a caller's mistake).
    #[error("positions {lo}..{hi} are outside a sync index of {len} items")]
    OutOfRange {
        /// Start of the range asked for.
        lo: u64,
        /// End of the range asked for (exclusive).
        hi: u64,
        /// Items in the index.
        len: u64,
    },
}

macro_rules! redb_into_storage {
    ($($t:ty),*) => {$(
        impl From<$t> for StorageError {
            fn from(e: $t) -> Self {
                StorageError::Database(e.into())
            }
        }
    )*};
}
redb_into_storage!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

impl StorageError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        StorageError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Opening or creating a store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// No store lives in this folder.
    #[error("no archive store at {}", dir.display())]
    NotInitialized {
        /// The data folder.
        dir: PathBuf,
    },
    /// `init` found a store already there.
    #[error("an archive store already exists at {}", dir.display())]
    AlreadyInitialized {
        /// The data folder.
        dir: PathBuf,
    },
    /// The store was written by a newer version of this software.
    #[error("the store at {} has format version {found}, newer than this program supports ({supported})", dir.display())]
    NewerFormat {
        /// The data folder.
        dir: PathBuf,
        /// The version found on disk.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// The FORMAT file is not one this software wrote.
    #[error("{} is not an archive format file: {reason}", path.display())]
    BadFormatFile {
        /// The FORMAT file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The data folder belongs to another user.
    #[error("the store at {} belongs to user id {owner}, not to this user (id {user})", dir.display())]
    NotOwner {
        /// The data folder.
        dir: PathBuf,
        /// Its owner's user id.
        owner: u32,
        /// This process's effective user id.
        user: u32,
    },
    /// The data folder is open to other users: they could read the secret key and the blobs.
    #[error("the store at {} is open to other users (mode {mode:03o})", dir.display())]
    Exposed {
        /// The data folder.
        dir: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// `init` was given a folder with other things in it.
    #[error("{} is not empty and holds no archive store; choose a new or empty folder", dir.display())]
    NotEmpty {
        /// The folder.
        dir: PathBuf,
    },
    /// Another process has the store open.
    #[error("the store at {} is in use by another archive process", dir.display())]
    Locked {
        /// The data folder.
        dir: PathBuf,
    },
    /// The database file cannot be opened: damaged or not a redb file.
    #[error("cannot open the store database {}", path.display())]
    Database {
        /// The database file.
        path: PathBuf,
        /// The cause.
        source: redb::Error,
    },
    /// Any other storage failure.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Reading a blob or file out of the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The store has no blob or file by this hash.
    #[error("no blob or file {hash} in the store")]
    NotFound {
        /// The hash asked for.
        hash: Hash,
    },
    /// A blob's bytes do not match its hash: the store is damaged.
    #[error("blob {hash} is corrupt: {detail}")]
    Corrupt {
        /// The damaged blob.
        hash: Hash,
        /// What was found.
        detail: String,
    },
    /// A blob the store recorded is gone from disk.
    #[error("blob {hash} is missing from {}", path.display())]
    Missing {
        /// The lost blob.
        hash: Hash,
        /// Where it should be.
        path: PathBuf,
    },
    /// The requested range lies outside the blob.
    #[error("range {start}..{end} is outside blob {hash} of {size} bytes")]
    OutOfRange {
        /// The blob.
        hash: Hash,
        /// Start of the range.
        start: u64,
        /// End of the range.
        end: u64,
        /// The blob's size.
        size: u64,
    },
    /// Writing the bytes out failed.
    #[error("writing output")]
    Output(#[source] io::Error),
    /// The storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Creating, decoding or inserting an entry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EntryError {
    /// The signature does not verify against the author's key.
    #[error("entry {id} has a bad signature")]
    BadSignature {
        /// The entry id.
        id: EntryId,
    },
    /// A batch certificate's signature does not verify against its author's key.
    #[error("batch certificate {id} has a bad signature")]
    BadCertificate {
        /// The certificate id.
        id: crate::CertificateId,
    },
    /// Tried to sign an entry for another author.
    #[error("entry author {author} is not this store's key")]
    WrongAuthor {
        /// The claimed author.
        author: PublicKey,
    },
    /// The encoding is too large.
    #[error(
        "entry of {size} bytes exceeds the limit of {} bytes",
        crate::format::entry::MAX_ENCODED_ENTRY
    )]
    TooLarge {
        /// Its size.
        size: usize,
    },
    /// An entry version this build does not know.
    #[error("entry format version {version} is not supported")]
    UnknownVersion {
        /// The version byte.
        version: u8,
    },
    /// Bytes that are not a valid entry.
    #[error("malformed entry: {reason}")]
    Malformed {
        /// What is wrong.
        reason: String,
    },
    /// A key or collection name breaks the rules.
    #[error(transparent)]
    Name(#[from] NameError),
    /// The entry is dated later than this store accepts (see `Store::accepts_time`).
    #[error("entry {id} is dated {time}, later than this server accepts ({limit})")]
    TooFarAhead {
        /// The entry.
        id: EntryId,
        /// Its time.
        time: Timestamp,
        /// The latest time accepted now.
        limit: Timestamp,
    },
    /// The entry was purged or proved invalid here, and is refused for good.
    #[error("entry {id} is on this store's deny list (purged or invalid)")]
    Denied {
        /// The entry.
        id: EntryId,
    },
    /// A file cannot go where a folder is, nor a folder where a file is.
    #[error("`{key}` cannot be added to collection `{collection}`: {reason}")]
    FileFolderConflict {
        /// The collection.
        collection: String,
        /// The key refused.
        key: String,
        /// Which other key it collides with, and how.
        reason: String,
    },
    /// The entry breaks the rules an embedding program set for its collection (see
    /// `Store::add_rules`).
    #[error("`{key}` cannot be written to collection `{collection}`: {reason}")]
    BrokeRules {
        /// The collection.
        collection: String,
        /// The key.
        key: String,
        /// Which rule, for a person to read.
        reason: String,
    },
    /// The key holds nothing (for `remove`).
    #[error("`{key}` is not in collection `{collection}`")]
    NoSuchKey {
        /// The collection.
        collection: String,
        /// The key.
        key: String,
    },
    /// The storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Adding files from disk.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AddError {
    /// A path given to add does not exist.
    #[error("{}: no such file or directory", path.display())]
    NotFound {
        /// The path.
        path: PathBuf,
    },
    /// A file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A path cannot become a key.
    #[error("{}: {reason}", path.display())]
    BadPath {
        /// The path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A path gives no key by itself (no name, a name that is not UTF-8, or an empty key for
    /// a file): the key must be given.
    #[error("{}: {reason}", path.display())]
    NeedsKey {
        /// The path.
        path: PathBuf,
        /// Why.
        reason: &'static str,
    },
    /// The entry for the file could not be written.
    #[error(transparent)]
    Entry(#[from] EntryError),
    /// The storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Snapshots: creating or naming one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// A snapshot of this name exists in the collection.
    #[error("snapshot `{name}` already exists in collection `{collection}`")]
    Exists {
        /// The collection.
        collection: String,
        /// The name.
        name: String,
    },
    /// The collection has no entries.
    #[error("no collection `{collection}`")]
    NoSuchCollection {
        /// The collection.
        collection: String,
    },
    /// No snapshot of this name exists in the collection.
    #[error("no snapshot `{name}` in collection `{collection}`")]
    NotFound {
        /// The collection.
        collection: String,
        /// The name.
        name: String,
    },
    /// The name breaks the naming rules.
    #[error(transparent)]
    Name(#[from] NameError),
    /// The storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Exporting a view to a folder or comparing one with a folder.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// A file would be overwritten with different content.
    #[error("{} exists and differs from `{key}`; refusing to overwrite it", path.display())]
    WouldOverwrite {
        /// The existing file.
        path: PathBuf,
        /// The key that would go there.
        key: String,
    },
    /// Writing or reading the folder failed.
    #[error("{}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A file's content could not be read from the store.
    #[error("`{key}`")]
    Read {
        /// The key.
        key: String,
        /// The cause.
        source: ReadError,
    },
    /// The snapshot does not exist.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// The storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// A reconciliation session failed. The session is over; nothing was stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// The other side sent bytes that are not a valid frame.
    #[error(transparent)]
    Wire(#[from] crate::sync::WireError),
    /// The other side broke the protocol.
    #[error("sync protocol violation: {0}")]
    Protocol(String),
    /// The session took more rounds than allowed.
    #[error("sync gave up after {limit} rounds")]
    TooManyRounds {
        /// The limit.
        limit: u32,
    },
    /// The session's configuration is unusable.
    #[error("invalid sync configuration: {0}")]
    Config(String),
    /// Reading the local set failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Receiving blobs and entries from another store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransferError {
    /// Bytes that do not match the hash they were sent for.
    #[error("blob {hash} failed verification: {detail}")]
    Verification {
        /// The requested hash.
        hash: Hash,
        /// What did not match.
        detail: String,
    },
    /// A blob larger than any the protocol moves in one piece.
    #[error("blob {hash} of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The hash.
        hash: Hash,
        /// Its announced size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// An entry's file is not complete in the store.
    #[error("the content of file {hash} is not complete in the store")]
    ContentMissing {
        /// The file hash.
        hash: Hash,
    },
    /// A file's chunks, manifest or size disagree with the entry that names it.
    #[error("file {hash} does not match its entry: {detail}")]
    ContentMismatch {
        /// The file hash.
        hash: Hash,
        /// What disagreed.
        detail: String,
    },
    /// A blob sent as a file's manifest is a valid blob but not a valid manifest of that
    /// file: every entry that names this file is invalid.
    #[error("blob {hash} is not a valid manifest of file {file}: {detail}")]
    BadManifest {
        /// The manifest blob.
        hash: Hash,
        /// The file it was to describe.
        file: Hash,
        /// What is wrong.
        detail: String,
    },
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// An entry could not be stored.
    #[error(transparent)]
    Entry(#[from] EntryError),
    /// A stored blob could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
}

/// An error and its causes on one line (`what: why: why`), for reports that keep errors as
/// text.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}
