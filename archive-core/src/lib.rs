//! `archive-core`: a content-addressed, deduplicated, verified archive store.
//!
//! A [`Store`] keeps **blobs** (bytes named by their BLAKE3 hash, verified on every read),
//! **files** (one blob, or content-defined chunks listed in a manifest blob), and **entries**:
//! small signed records that put a file (or a tombstone) at a key of a **collection**. A
//! collection is a grow-only set of entries; its **view** shows, per key, the latest entry.
//! **Snapshots** name points in a collection's history.
//!
//! This crate does no network I/O. See `ARCHITECTURE.md` for the formats and invariants.
//!
//! The store comes in parts: a [`Collection`] handle for one collection's keys, views,
//! snapshots and history ([`Store::collection`]); [`Blobs`] for content by hash, as verified
//! streams ([`Store::blobs`]); [`Transfer`] for the calls a network layer makes
//! ([`Store::transfer`]). Listings, diffs and histories come a page at a time, so a collection
//! of millions of keys is read in constant memory.
//!
//! ```
//! use std::io::Read;
//!
//! use archive_core::{Store, ViewPoint};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let store = Store::init(dir.path().join("archive"))?;
//! let docs = store.collection("docs")?;
//! docs.add_bytes("notes/hello.txt", b"hello")?;
//! docs.add_bytes("notes/todo.txt", b"water the plants")?;
//! docs.snapshot("monday")?;
//! docs.remove(&["notes/todo.txt"])?;
//!
//! // The view now, read a page at a time as the iterator advances.
//! let keys: Vec<String> = docs
//!     .list(ViewPoint::Current, "notes")?
//!     .map(|item| item.map(|i| i.key))
//!     .collect::<Result<_, _>>()?;
//! assert_eq!(keys, ["notes/hello.txt"]);
//!
//! // What changed since the snapshot.
//! let changes: Vec<_> = docs.diff(ViewPoint::Snapshot("monday"), ViewPoint::Current)?
//!     .collect::<Result<_, _>>()?;
//! assert_eq!(changes[0].key, "notes/todo.txt");
//!
//! // Content by hash, as a verified stream.
//! let file = docs.get("notes/hello.txt")?.expect("it is there").file;
//! let mut text = String::new();
//! store.blobs().reader(&file)?.read_to_string(&mut text)?;
//! assert_eq!(text, "hello");
//! # Ok(()) }
//! ```
#![warn(missing_docs, unreachable_pub)]

mod blobs;
mod certificate;
mod clock;
mod diff;
mod entry;
mod error;
#[doc(hidden)]
pub mod fault;
mod format;
mod hash;
mod identity;
mod ingest;
mod names;
pub mod shares;
mod store;
pub mod sync;
pub mod transfer;
mod walk;

pub use certificate::{Certificate, CertificateId};
pub use clock::{Timestamp, EARLIEST_PLAUSIBLE_MILLIS, MAX_AHEAD_MILLIS, MAX_ENTRY_MILLIS};
pub use diff::{Change, ChangeKind, FileSummary};
pub use entry::{
    Entry, EntryId, EntryValue, FileMeta, FileRef, MessageFields, SignedEntry, MAX_ENTRY_CHARGE,
};
pub use error::{
    AddError, EntryError, ExportError, OpenError, ReadError, SnapshotError, StorageError,
    SyncError, TransferError,
};
pub use format::certificate::{MAX_CERTIFIED_IDS, MAX_ENCODED_CERTIFICATE};
pub use format::entry::MAX_ENCODED_ENTRY;
pub use hash::{Hash, ParseIdError};
pub use identity::{PeerId, PublicKey, SecretKey};
pub use ingest::{CHUNKING_THRESHOLD, CHUNK_AVG, CHUNK_MAX, CHUNK_MIN};
pub use names::{
    validate_collection, validate_key, validate_person, validate_snapshot_name, NameError,
    MAX_KEY_COMPONENT_LEN, MAX_KEY_LEN, MAX_NAME_LEN,
};
pub use store::{
    AddProgress, AddReport, Arrivals, BlobProblem, Blobs, Changes, Collection, CollectionInfo,
    ContentSnapshot, DamagedKey, DatabaseCheck, DenyReason, DoctorReport, EntryRules, Expected,
    ExportReport, FailedFile, FetchPlan, FileReader, FolderPage, GcReport, History, KeepVersions,
    KeyConflict, KeyQueue, Listing, MissingBlob, MissingPage, NewEntries, NoProgress, Outgoing,
    Page, PeerScope, PeerUsage, PurgeReport, Received, Refusal, Refused, RemovedKey, RuleBreach,
    SkippedKey, SnapshotInfo, Stats, Store, StoreSyncIndex, Transfer, TransferGuard, VerifyReport,
    Version, ViewItem, ViewPoint, DEFAULT_COLLECTION, PAGE_SIZE,
};
pub use walk::Skipped;

#[doc(hidden)]
pub use store::set_call_check;

/// Entry points for `cargo fuzz` targets: decoders of untrusted bytes that are otherwise
/// internal. Not part of the supported API.
#[doc(hidden)]
pub mod fuzz_api {
    /// Decodes a chunk manifest; on success the bytes must re-encode to themselves.
    pub fn manifest_round_trips(bytes: &[u8]) -> Option<bool> {
        let (size, chunks) = crate::format::manifest::decode_manifest(bytes).ok()?;
        Some(crate::format::manifest::encode_manifest(size, &chunks) == bytes)
    }

    /// The longest manifest a file of `file_size` bytes may have.
    pub fn max_manifest_len(file_size: u64) -> u64 {
        crate::format::manifest::max_manifest_len(file_size)
    }
}

/// The largest blob kept inside the database rather than as a file of its own.
pub const INLINE_MAX: u64 = format::layout::INLINE_MAX;

#[cfg(test)]
mod send_sync {
    fn assert_send_sync<T: Send + Sync>() {}
    #[test]
    fn public_types_are_send_and_sync() {
        assert_send_sync::<super::Store>();
        assert_send_sync::<super::SignedEntry>();
        assert_send_sync::<super::OpenError>();
    }
}
