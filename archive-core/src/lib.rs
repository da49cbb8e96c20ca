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
//! ```no_run
//! use archive_core::{Store, ViewPoint, DEFAULT_COLLECTION};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = Store::init("/tmp/my-archive")?;
//! store.add_bytes(DEFAULT_COLLECTION, "hello.txt", b"hello")?;
//! for item in store.list(DEFAULT_COLLECTION, ViewPoint::Current, "")? {
//!     println!("{} {} {}", item.key, item.file.size, item.file.hash);
//! }
//! # Ok(()) }
//! ```
#![warn(missing_docs, unreachable_pub)]

mod blobs;
mod clock;
mod diff;
mod entry;
mod error;
mod format;
mod hash;
mod identity;
mod ingest;
mod names;
mod store;
pub mod sync;
pub mod transfer;
mod walk;

pub use clock::{Timestamp, EARLIEST_PLAUSIBLE_MILLIS, MAX_AHEAD_MILLIS, MAX_ENTRY_MILLIS};
pub use diff::{Change, ChangeKind, FileSummary};
pub use entry::{Entry, EntryId, EntryValue, FileRef, SignedEntry, MAX_ENTRY_CHARGE};
pub use error::{
    AddError, EntryError, ExportError, OpenError, ReadError, SnapshotError, StorageError,
    SyncError, TransferError,
};
pub use format::entry::MAX_ENCODED_ENTRY;
pub use hash::{Hash, ParseIdError};
pub use identity::{PeerId, PublicKey, SecretKey};
pub use ingest::{CHUNKING_THRESHOLD, CHUNK_AVG, CHUNK_MAX, CHUNK_MIN};
pub use names::{
    validate_collection, validate_key, validate_snapshot_name, NameError, MAX_KEY_COMPONENT_LEN,
    MAX_KEY_LEN, MAX_NAME_LEN,
};
pub use store::{
    AddProgress, AddReport, BlobProblem, CollectionInfo, DamagedKey, DatabaseCheck, DenyReason,
    DoctorReport, Expected, ExportReport, FailedFile, GcReport, KeyConflict, MissingBlob,
    MissingPage, NoProgress, PeerScope, PeerUsage, PurgeReport, Received, Refusal, Refused,
    SkippedKey, SnapshotInfo, Stats, Store, StoreSyncIndex, TransferGuard, VerifyReport, ViewItem,
    ViewPoint, DEFAULT_COLLECTION,
};
pub use walk::Skipped;

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
