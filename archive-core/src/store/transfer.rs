//! What a sync needs from a store: serving blobs, importing verified ones, and inserting
//! received entries once their content is complete.

use std::collections::{HashMap, HashSet};

use redb::ReadableDatabase;

use super::{guarded, EntryTables, Inserted, KeyQueue, Store};
use crate::blobs::{self, BlobReader, BlobTables};
use crate::certificate::{Certificate, CertificateId};
use crate::clock::Timestamp;
use crate::entry::{EntryId, EntryValue, FileRef, SignedEntry};
use crate::error::{EntryError, ReadError, StorageError, TransferError};
use crate::fault::{self, Point, WriteStep};
use crate::format::layout::{
    BLOBS, BLOB_REFS, CERTIFICATES, DENIED, ENTRIES, ENTRY_CERTIFICATES, FILES, INLINE_MAX,
    NO_MANIFEST, PACKED,
};
use crate::format::manifest::{max_manifest_len, ManifestReader};
use crate::hash::Hash;
use crate::identity::PeerId;
use crate::store::purge::DenyReason;
use crate::sync::SyncKey;
use crate::transfer::{encode_whole, VerifiedBlob};

/// What a missing blob must turn out to be, known before any of its bytes are fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// A chunk or a whole small file of exactly this many bytes.
    Size(u64),
    /// The manifest of this file: at most [`Expected::max_size`] bytes, and checked as a
    /// manifest of exactly this file before it is stored.
    ManifestOf(FileRef),
}

impl Expected {
    /// The most bytes the blob can have: what a fetch reserves for it before asking.
    pub fn max_size(&self) -> u64 {
        match self {
            Expected::Size(n) => *n,
            Expected::ManifestOf(file) => max_manifest_len(file.size),
        }
    }
}

/// A blob a file still needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissingBlob {
    /// Its hash.
    pub hash: Hash,
    /// What it must be.
    pub expected: Expected,
}

/// Part of what a file still lacks (see [`Transfer::missing_content`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MissingPage {
    /// Missing blobs, each once.
    pub blobs: Vec<MissingBlob>,
    /// Where the next page starts (a chunk number), if there is more.
    pub next: Option<u64>,
}

/// Why a received entry was not inserted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// Dated later than this store accepts now (it may be accepted later: nothing is
    /// remembered).
    TooFarAhead {
        /// Its time.
        time: Timestamp,
        /// The latest time accepted now.
        limit: Timestamp,
    },
    /// On the deny list (purged, or invalid before).
    Denied,
    /// Its file's content can never match it; it is now on the deny list.
    InvalidContent {
        /// What did not match.
        detail: String,
    },
    /// Its content could not be taken from this peer this time (nothing is remembered).
    Unfetchable {
        /// Why.
        detail: String,
    },
    /// A batch certificate vouched for it, but too few of that certificate's entries came for
    /// it to be kept here, and the entry's own signature does not verify.
    BadSignature,
    /// It breaks the rules an embedding program set for its collection (see
    /// [`Store::add_rules`]); when the breach is lasting, it is now on the deny list.
    BrokeRules {
        /// Which rule, for a person to read.
        reason: String,
        /// Whether it can never be accepted (see [`crate::RuleBreach::lasting`]).
        lasting: bool,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::TooFarAhead { time, limit } => {
                write!(f, "dated {time}, later than this server accepts ({limit})")
            }
            Refusal::Denied => f.write_str("on this server's deny list (purged or invalid)"),
            Refusal::InvalidContent { detail } => write!(f, "its content is invalid: {detail}"),
            Refusal::Unfetchable { detail } => write!(f, "its content was not taken: {detail}"),
            Refusal::BadSignature => f.write_str(
                "its own signature does not verify (and its batch certificate was not kept)",
            ),
            Refusal::BrokeRules { reason, .. } => {
                write!(f, "it breaks its collection's rules: {reason}")
            }
        }
    }
}

/// A certificate goes with entries a peer asked for when at least this fraction (one in
/// `SEND_SHARE`) of its ids were asked for.
const SEND_SHARE: usize = 8;

/// A row of `certified-entries-v1`: the certificate id, and whether the entry's own
/// signature was checked.
type VoucherRow = ([u8; 32], bool);

/// An entry held here, with its row in `certified-entries-v1` if it has one.
type Held = (SignedEntry, Option<VoucherRow>);

/// One item of [`Transfer::entries_to_send`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// An encoded batch certificate vouching for entries that follow.
    Certificate(Vec<u8>),
    /// An encoded entry.
    Entry(Vec<u8>),
    /// This store does not have the entry (in that collection).
    Missing(EntryId),
}

/// A received entry that was not inserted, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The entry.
    pub id: EntryId,
    /// Why.
    pub reason: Refusal,
}

/// What [`Transfer::insert_received`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Received {
    /// Entries that were new to the store.
    pub new: u64,
    /// Entries not inserted.
    pub refused: Vec<Refused>,
    /// Keys the new entries made both a file and a folder in the view (entries from peers are
    /// not refused for it; an export keeps whichever came first and reports the other).
    pub conflicts: Vec<KeyConflict>,
}

/// A key that is now both a file and a folder in a collection's view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyConflict {
    /// The collection.
    pub collection: String,
    /// The key a new entry put there.
    pub key: String,
    /// Which other key it collides with, and how.
    pub reason: String,
}

/// Blobs that transfers in progress stored ahead of the entries that will refer to them:
/// garbage collection keeps them (by hash, with a count of the transfers holding each).
#[derive(Debug, Default)]
pub(crate) struct Pins {
    blobs: std::sync::Mutex<HashMap<Hash, usize>>,
}

impl Pins {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Hash, usize>> {
        self.blobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn contains(&self, hash: &Hash) -> bool {
        self.lock().contains_key(hash)
    }
}

/// A transfer in progress: the blobs imported under it are kept by garbage collection until
/// it lets go of them (once their entries are in) or ends. See [`Transfer::begin`].
#[derive(Debug)]
pub struct TransferGuard {
    pins: std::sync::Arc<Pins>,
    mine: std::sync::Mutex<std::collections::HashSet<Hash>>,
}

/// The calls a network layer makes to move entries and blobs between stores (get it from
/// [`Store::transfer`]). An embedding program that does not sync needs none of them.
///
/// Everything received is checked here before it is kept: entries by signature, time and
/// names, blobs against their hash, files against their entries (see `insert_received`).
#[derive(Debug, Clone, Copy)]
pub struct Transfer<'s> {
    pub(super) store: &'s Store,
}

/// What a transfer must fetch before its entries can be inserted (see
/// [`Transfer::fetch_plan`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchPlan {
    /// The files whose content must be complete here, each once, in the order the entries
    /// first name them.
    pub files: Vec<FileRef>,
}

impl Store {
    /// The calls a network layer makes to move entries and blobs between stores.
    pub fn transfer(&self) -> Transfer<'_> {
        Transfer { store: self }
    }
}

/// The peer a transfer's content comes from, when it may not read every collection: what
/// it may read, and the transfer (what it has sent so far). See [`Transfer::missing_content`].
pub struct PeerScope<'a> {
    /// Whether the peer may read a collection.
    pub may_read: &'a dyn Fn(&str) -> bool,
    /// The transfer.
    pub transfer: &'a TransferGuard,
}

impl std::fmt::Debug for PeerScope<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerScope").finish_non_exhaustive()
    }
}

impl TransferGuard {
    fn pin(&self, hashes: impl IntoIterator<Item = Hash>) {
        let mut mine = self
            .mine
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut all = self.pins.lock();
        for h in hashes {
            if mine.insert(h) {
                *all.entry(h).or_default() += 1;
            }
        }
    }

    /// True when a blob was imported under this transfer (and not let go of yet).
    pub fn holds(&self, hash: &Hash) -> bool {
        self.mine
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(hash)
    }

    /// Lets go of the blobs imported so far: the entries that refer to them are in (or were
    /// refused, and the blobs may go).
    pub fn release(&self) {
        let mine = std::mem::take(
            &mut *self
                .mine
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let mut all = self.pins.lock();
        for h in mine {
            if let Some(n) = all.get_mut(&h) {
                *n -= 1;
                if *n == 0 {
                    all.remove(&h);
                }
            }
        }
    }
}

impl Drop for TransferGuard {
    fn drop(&mut self) {
        self.release();
    }
}

impl<'s> Transfer<'s> {
    /// Starts a transfer: blobs imported under it ([`Transfer::import_blobs`]) are kept by
    /// `gc` until the guard lets go of them or drops, so blobs received ahead of their entries
    /// are not collected. `gc` runs meanwhile; no peer can hold it off.
    pub fn begin(&self) -> TransferGuard {
        TransferGuard {
            pins: self.store.pins.clone(),
            mine: std::sync::Mutex::default(),
        }
    }

    /// True when the store holds this blob (for a file blob: its file is there, full size).
    pub(crate) fn has_blob(&self, hash: &Hash) -> Result<bool, StorageError> {
        guarded(|| {
            let tx = self.store.db.begin_read()?;
            let table = tx.open_table(BLOBS)?;
            let packed = tx.open_table(PACKED)?;
            self.has_blob_in(&table, &packed, hash)
        })
    }

    fn has_blob_in(
        &self,
        table: &impl redb::ReadableTable<[u8; 32], (u64, u8)>,
        packed: &impl redb::ReadableTable<[u8; 32], (u32, u64)>,
        hash: &Hash,
    ) -> Result<bool, StorageError> {
        match blobs::lookup(table, hash)? {
            None => Ok(false),
            Some((size, location)) => {
                blobs::in_place(&self.store.files, packed, hash, size, location)
            }
        }
    }

    /// True when an entry of a collection that `may_read` allows names a file this blob
    /// belongs to (its one blob, its manifest, or one of its chunks).
    pub fn blob_reachable(
        &self,
        hash: &Hash,
        may_read: impl Fn(&str) -> bool,
    ) -> Result<bool, StorageError> {
        guarded(|| {
            let tx = self.store.db.begin_read()?;
            let refs = tx.open_table(BLOB_REFS)?;
            reachable_in(&refs, hash, &may_read)
        })
    }

    /// Encodes blobs from the start of `hashes` (see [`Transfer::encode_blob`]) inside one short
    /// read transaction, as many as fit in `budget` bytes of encoding: the answers end before
    /// the first blob that would not fit. `None` for a blob the store does not have, or that
    /// `may_read` (when given) does not reach through a readable collection. When not even the
    /// first fits, no answer comes back and the second value says how many bytes it needs.
    #[allow(clippy::type_complexity)]
    pub fn encode_blobs_within(
        &self,
        hashes: &[Hash],
        may_read: Option<&dyn Fn(&str) -> bool>,
        budget: u64,
    ) -> Result<(Vec<Option<(u64, Vec<u8>)>>, Option<u64>), TransferError> {
        guarded(|| {
            let tx = self.store.db.begin_read().map_err(StorageError::from)?;
            let reader = BlobReader::open(&self.store.files, &tx)?;
            let refs = tx.open_table(BLOB_REFS).map_err(StorageError::from)?;
            let mut out = Vec::new();
            let mut used = 0u64;
            for hash in hashes {
                let visible = match may_read {
                    None => true,
                    Some(allows) => reachable_in(&refs, hash, allows)?,
                };
                let size = match (visible, blobs::lookup(&reader.blobs, hash)?) {
                    (true, Some((size, _))) => size,
                    _ => {
                        out.push(None);
                        continue;
                    }
                };
                let need = crate::transfer::encoded_len(size);
                if used + need > budget {
                    if out.is_empty() {
                        return Ok((out, Some(need)));
                    }
                    break;
                }
                used += need;
                out.push(encode_one(&reader, hash)?);
            }
            Ok((out, None))
        })
    }

    /// The size and bao encoding of a whole blob (see [`crate::transfer`]), checked against
    /// its hash on the way out; `None` if the store does not have it. Reads inside one short
    /// read transaction, which ends before this returns.
    pub fn encode_blob(&self, hash: &Hash) -> Result<Option<(u64, Vec<u8>)>, TransferError> {
        guarded(|| {
            let tx = self.store.db.begin_read().map_err(StorageError::from)?;
            encode_one(&BlobReader::open(&self.store.files, &tx)?, hash)
        })
    }

    /// Stores verified blobs for `transfer` (which keeps them from `gc` until their entries
    /// are in): files are written and made durable, then all are recorded in one transaction.
    /// Returns the bytes that were new to the store, which count against `origin`'s usage when
    /// a peer delivered them.
    pub fn import_blobs(
        &self,
        blobs: Vec<VerifiedBlob>,
        transfer: &TransferGuard,
        origin: Option<&PeerId>,
    ) -> Result<u64, StorageError> {
        if blobs.is_empty() {
            return Ok(0);
        }
        guarded(|| {
            let _gc = self.store.gc_shared();
            transfer.pin(blobs.iter().map(|b| b.hash()));
            let mut fresh = Vec::with_capacity(blobs.len());
            let read = self.store.db.begin_read()?;
            let known = read.open_table(BLOBS)?;
            let packed = read.open_table(PACKED)?;
            for VerifiedBlob(mut blob) in blobs {
                if self.has_blob_in(&known, &packed, &blob.hash)? {
                    continue;
                }
                self.store.files.append(&mut blob)?;
                fresh.push(blob);
            }
            drop((known, packed, read));
            if !fresh.is_empty() {
                self.store.files.make_durable()?;
            }
            let tx = self.store.db.begin_write()?;
            let mut new_bytes = 0;
            {
                let mut tables = BlobTables::open(&tx)?;
                for blob in &fresh {
                    new_bytes += blobs::record(&mut tables, blob)?;
                }
                let mut counters = EntryTables::open(&tx, origin)?;
                counters.blob_bytes = new_bytes;
                counters.finish_counters_only()?;
            }
            fault::point(Point::Write(WriteStep::Commit));
            tx.commit()?;
            fault::point(Point::Write(WriteStep::Committed));
            Ok(new_bytes)
        })
    }

    /// What `file` still lacks in this store, from chunk number `from` on, at most `limit`
    /// blobs a page (so a file of a million chunks is looked at a page at a time). A missing
    /// manifest comes alone, as [`Expected::ManifestOf`] (its chunks are known once it is
    /// here); an empty page without `next` means the content is complete.
    ///
    /// With a `scope` (for a peer that may not read every collection), a blob that is here but
    /// that no collection the peer may read reaches, and that it did not send in this transfer,
    /// counts as missing: the peer must send it, so naming a hash in an entry neither tells it
    /// that this server holds that content nor lets it fetch it afterwards.
    pub fn missing_content(
        &self,
        file: &FileRef,
        from: u64,
        limit: usize,
        scope: Option<&PeerScope<'_>>,
    ) -> Result<MissingPage, TransferError> {
        self.content_snapshot()?
            .missing_content(file, from, limit, scope)
    }

    /// One read snapshot of the store's content, for asking about many files
    /// ([`ContentSnapshot::missing_content`]) without a transaction and its tables opened for
    /// each.
    pub fn content_snapshot(&self) -> Result<ContentSnapshot<'s>, StorageError> {
        guarded(|| {
            let tx = self.store.db.begin_read()?;
            Ok(ContentSnapshot {
                transfer: Transfer { store: self.store },
                reader: BlobReader::open(&self.store.files, &tx)?,
                refs: tx.open_table(BLOB_REFS)?,
                files: tx.open_table(FILES)?,
            })
        })
    }

    /// Checks the header of `file`'s manifest and returns its chunk reader.
    fn manifest_reader<'b>(
        &self,
        file: &FileRef,
        manifest: &Hash,
        bytes: &'b [u8],
    ) -> Result<ManifestReader<'b>, TransferError> {
        let chunks =
            ManifestReader::new(bytes).map_err(|e| bad_manifest(file, manifest, e.to_string()))?;
        if chunks.size() != file.size {
            return Err(bad_manifest(
                file,
                manifest,
                format!(
                    "it describes {} bytes, the entry {}",
                    chunks.size(),
                    file.size
                ),
            ));
        }
        Ok(chunks)
    }

    /// What must be fetched before `entries` can be inserted: the files that will be the
    /// latest version of their key (newer than this store's view and than the other entries
    /// given), each once. Older versions and tombstones are history and need nothing.
    ///
    /// Entries that break their collection's rules ([`Store::add_rules`]) are left out: their
    /// content is not fetched, and `insert_received` refuses them.
    pub fn fetch_plan(&self, entries: &[SignedEntry]) -> Result<FetchPlan, StorageError> {
        let within_rules: Vec<SignedEntry>;
        let entries = if self.store.rules.is_empty() {
            entries
        } else {
            within_rules = entries
                .iter()
                .filter(|e| self.store.check_rules(e).is_ok())
                .cloned()
                .collect();
            &within_rules
        };
        let needs = self.needs_content(entries)?;
        let mut seen = std::collections::HashSet::new();
        let files = entries
            .iter()
            .zip(needs)
            .filter_map(|(e, needs)| match (needs, e.entry().value) {
                (true, EntryValue::File(f)) if seen.insert(f) => Some(f),
                _ => None,
            })
            .collect();
        Ok(FetchPlan { files })
    }

    /// For each entry, whether its content must be in the store before it is inserted (see
    /// [`Transfer::fetch_plan`]); one answer per entry, in order.
    fn needs_content(&self, entries: &[SignedEntry]) -> Result<Vec<bool>, StorageError> {
        let mut newest: HashMap<(&str, &str), (u64, [u8; 32])> = HashMap::new();
        for e in entries {
            let v = (e.entry().time.raw(), *e.id().as_bytes());
            let k = (e.entry().collection.as_str(), e.entry().key.as_str());
            let slot = newest.entry(k).or_insert(v);
            if v > *slot {
                *slot = v;
            }
        }
        guarded(|| {
            let tx = self.store.db.begin_read()?;
            let views = tx.open_table(super::VIEWS)?;
            let mut out = Vec::with_capacity(entries.len());
            for e in entries {
                let v = (e.entry().time.raw(), *e.id().as_bytes());
                let (c, k) = (e.entry().collection.as_str(), e.entry().key.as_str());
                let latest_here = newest[&(c, k)] == v;
                let newer_than_view = views.get((c, k))?.is_none_or(|cur| v > cur.value());
                out.push(
                    latest_here
                        && newer_than_view
                        && matches!(e.entry().value, EntryValue::File(_)),
                );
            }
            Ok(out)
        })
    }

    /// Inserts entries received from `origin` (the peer that delivered them; their storage
    /// charge counts against its usage), in one transaction.
    ///
    /// An entry is refused, not inserted, when it is dated later than [`Store::time_limit`],
    /// when it is on the deny list, when its file's content can never match it (a single-blob
    /// file larger than [`crate::CHUNKING_THRESHOLD`], a manifest of another size, chunks that
    /// hash to something else: it then goes on the deny list), or when it would become the
    /// latest version of its key without its content complete here (it may be taken later).
    /// The latest versions are worked out here, against the view and the other entries taken,
    /// so refusing one never lets an older version without its content become visible; for a
    /// chunked file the chunks are hashed together and must give the entry's file hash.
    /// Entries that stay older versions are history and are taken without their content.
    pub fn insert_received(
        &self,
        entries: &[SignedEntry],
        origin: Option<&PeerId>,
    ) -> Result<Received, TransferError> {
        guarded(|| self.insert_received_inner(entries, origin))
    }

    fn insert_received_inner(
        &self,
        entries: &[SignedEntry],
        origin: Option<&PeerId>,
    ) -> Result<Received, TransferError> {
        // Shared from the first check to the commit: gc cannot remove what was checked.
        let _gc = self.store.gc_shared();
        let rule = self.store.clock().rule();
        let mut received = Received::default();
        let mut ok = vec![true; entries.len()];
        let mut invalid: Vec<[u8; 32]> = Vec::new();
        let mut broke_rules: Vec<[u8; 32]> = Vec::new();
        let mut refuse = |i: usize, reason: Refusal, ok: &mut Vec<bool>| {
            ok[i] = false;
            received.refused.push(Refused {
                id: entries[i].id(),
                reason,
            });
        };
        let kept = self.certificates_to_keep(entries)?;
        for (i, e) in entries.iter().enumerate() {
            let time = e.entry().time;
            let unproved = e
                .voucher()
                .is_some_and(|v| !v.signature_checked && !kept.contains(&v.certificate.id()));
            if unproved && !e.signature_verifies() {
                refuse(i, Refusal::BadSignature, &mut ok);
            } else if !rule.accepts(time) {
                let limit = rule.limit;
                refuse(i, Refusal::TooFarAhead { time, limit }, &mut ok);
            } else if let Err(breach) = self.store.check_rules(e) {
                if breach.lasting {
                    broke_rules.push(*e.id().as_bytes());
                }
                let reason = Refusal::BrokeRules {
                    reason: breach.reason,
                    lasting: breach.lasting,
                };
                refuse(i, reason, &mut ok);
            } else if let EntryValue::File(f) = e.entry().value {
                if let Err(detail) = crate::transfer::check_file_ref(&f) {
                    invalid.push(*e.id().as_bytes());
                    refuse(i, Refusal::InvalidContent { detail }, &mut ok);
                }
            }
        }
        // The latest version of each key must have its content; refusing one makes the next
        // older one the latest, so work it out again until nothing changes.
        let mut verdicts: HashMap<FileRef, Verdict> = HashMap::new();
        let mut complete: Vec<FileRef> = Vec::new();
        let snapshot = self.content_snapshot()?;
        loop {
            let live: Vec<usize> = (0..entries.len()).filter(|i| ok[*i]).collect();
            let batch: Vec<SignedEntry> = live.iter().map(|i| entries[*i].clone()).collect();
            let needs = self.needs_content(&batch)?;
            let mut changed = false;
            complete.clear();
            for (i, needs) in live.into_iter().zip(needs) {
                let (true, EntryValue::File(f)) = (needs, entries[i].entry().value) else {
                    continue;
                };
                let verdict = match verdicts.get(&f) {
                    Some(v) => v.clone(),
                    None => {
                        let v = snapshot.content_verdict(&f)?;
                        verdicts.insert(f, v.clone());
                        v
                    }
                };
                match verdict {
                    Verdict::Complete => complete.push(f),
                    Verdict::Invalid(detail) => {
                        invalid.push(*entries[i].id().as_bytes());
                        refuse(i, Refusal::InvalidContent { detail }, &mut ok);
                        changed = true;
                    }
                    Verdict::Missing => {
                        let detail = "its content is not complete here".to_owned();
                        refuse(i, Refusal::Unfetchable { detail }, &mut ok);
                        changed = true;
                    }
                }
            }
            if !changed {
                break;
            }
        }
        complete.sort_by_key(|f| *f.hash.as_bytes());
        complete.dedup();
        let reader = &snapshot.reader;
        let tx = self.store.db.begin_write().map_err(StorageError::from)?;
        let touched = {
            let mut table = tx.open_table(FILES).map_err(StorageError::from)?;
            for f in &complete {
                let manifest = f.manifest.map(|m| *m.as_bytes()).unwrap_or(NO_MANIFEST);
                table
                    .insert(f.hash.as_bytes(), (f.size, manifest))
                    .map_err(StorageError::from)?;
            }
            drop(table);
            let mut denied = tx.open_table(DENIED).map_err(StorageError::from)?;
            let now = crate::clock::wall_clock_millis();
            for id in &invalid {
                denied
                    .insert(id, (now, DenyReason::InvalidContent.code()))
                    .map_err(StorageError::from)?;
            }
            for id in &broke_rules {
                denied
                    .insert(id, (now, DenyReason::BrokeRules.code()))
                    .map_err(StorageError::from)?;
            }
            drop(denied);
            let mut tables = EntryTables::open(&tx, origin)?;
            let mut clock = self.store.clock();
            let mut new_files = Vec::new();
            for (e, ok) in entries.iter().zip(&ok) {
                if !ok {
                    continue;
                }
                let keep = e
                    .voucher()
                    .is_some_and(|v| kept.contains(&v.certificate.id()));
                match tables.insert_vouched(e, keep)? {
                    Inserted::New => received.new += 1,
                    Inserted::Known => continue,
                    Inserted::Denied => {
                        received.refused.push(Refused {
                            id: e.id(),
                            reason: Refusal::Denied,
                        });
                        continue;
                    }
                }
                clock.observe(e.entry().time);
                // A peer reaches, through this collection, the blobs of files whose content is
                // complete here: it sent them (or could already read them; see
                // `missing_content`). Older versions taken without content grant nothing.
                if let EntryValue::File(f) = e.entry().value {
                    if complete
                        .binary_search_by_key(f.hash.as_bytes(), |c| *c.hash.as_bytes())
                        .is_ok()
                    {
                        let c = e.entry().collection.as_str();
                        tables.add_refs(c, super::file_blobs(reader, &f))?;
                        new_files.push(e);
                    }
                }
            }
            // Against the view as it is now, with the whole batch in it.
            for e in new_files {
                let (c, k) = (e.entry().collection.as_str(), e.entry().key.as_str());
                if tables.shows(c, k, &e.id())? {
                    if let Err(crate::EntryError::FileFolderConflict { reason, .. }) =
                        tables.check_placement(c, k)
                    {
                        received.conflicts.push(KeyConflict {
                            collection: c.to_owned(),
                            key: k.to_owned(),
                            reason,
                        });
                    }
                }
            }
            tables.finish(&clock)?
        };
        drop(snapshot);
        self.store.commit_entries(tx, touched)?;
        Ok(received)
    }

    /// The certificates among the vouchers of `entries` that this store keeps: those it keeps
    /// already, and those that vouch for at least half their ids among `entries` (so a peer
    /// cannot make it keep 32 KiB of certificate for one entry). An entry whose certificate
    /// is not kept must pass its own signature check instead.
    fn certificates_to_keep(
        &self,
        entries: &[SignedEntry],
    ) -> Result<HashSet<CertificateId>, StorageError> {
        let mut vouched: HashMap<CertificateId, (usize, usize)> = HashMap::new();
        for v in entries.iter().filter_map(SignedEntry::voucher) {
            let count = vouched
                .entry(v.certificate.id())
                .or_insert((0, v.certificate.ids().len()));
            count.0 += 1;
        }
        if vouched.is_empty() {
            return Ok(HashSet::new());
        }
        let tx = self.store.db.begin_read()?;
        let table = tx.open_table(CERTIFICATES)?;
        let mut kept = HashSet::new();
        for (id, (count, len)) in vouched {
            if count * 2 >= len || table.get(id.as_bytes())?.is_some() {
                kept.insert(id);
            }
        }
        Ok(kept)
    }

    /// What to send a peer that asked for the entries `keys` of `collection`, in order: the
    /// certificates worth sending first, then each entry (or that it is missing). A
    /// certificate goes when at least an eighth of its ids are asked for, so a few entries of
    /// a large batch travel with their own signatures; an entry that came here vouched for by
    /// a certificate and whose own signature was never checked is checked now, and if it does
    /// not verify its certificate goes too, so every entry sent is provable.
    pub fn entries_to_send(
        &self,
        collection: &str,
        keys: &[SyncKey],
    ) -> Result<Vec<Outgoing>, EntryError> {
        guarded(|| {
            let tx = self.store.db.begin_read().map_err(StorageError::from)?;
            let entries = tx.open_table(ENTRIES).map_err(StorageError::from)?;
            let vouchers = tx
                .open_table(ENTRY_CERTIFICATES)
                .map_err(StorageError::from)?;
            let certificates = tx.open_table(CERTIFICATES).map_err(StorageError::from)?;
            // Per key: the entry, if here, and its row in `certified-entries-v1`, if any.
            let mut found: Vec<(EntryId, Option<Held>)> = Vec::with_capacity(keys.len());
            let mut asked: HashMap<[u8; 32], usize> = HashMap::new();
            for key in keys {
                let entry = match entries.get(key.to_bytes()).map_err(StorageError::from)? {
                    None => None,
                    Some(_) => Some(super::decode_stored_entry(
                        &entries,
                        (key.time, *key.id.as_bytes()),
                    )?),
                };
                let entry = entry.filter(|e| e.entry().collection == collection);
                let Some(entry) = entry else {
                    found.push((key.id, None));
                    continue;
                };
                let voucher = vouchers
                    .get(super::certificate_row(&entry))
                    .map_err(StorageError::from)?
                    .map(|v| v.value());
                if let Some((cert, _)) = voucher {
                    *asked.entry(cert).or_default() += 1;
                }
                found.push((key.id, Some((entry, voucher))));
            }
            let mut send: Vec<[u8; 32]> = Vec::new();
            let mut encoded: HashMap<[u8; 32], Vec<u8>> = HashMap::new();
            for (cert, count) in &asked {
                let bytes = certificates
                    .get(cert)
                    .map_err(StorageError::from)?
                    .ok_or_else(|| {
                        StorageError::Damaged(format!(
                            "certificate {} is missing",
                            CertificateId::from_bytes(*cert)
                        ))
                    })?
                    .value()
                    .to_vec();
                let len = Certificate::decode_unverified(&bytes)
                    .map_err(|e| StorageError::Damaged(format!("certificate: {e}")))?
                    .ids()
                    .len();
                if count * SEND_SHARE >= len {
                    send.push(*cert);
                }
                encoded.insert(*cert, bytes);
            }
            for (_, found) in &found {
                if let Some((entry, Some((cert, false)))) = found {
                    if !send.contains(cert) && !entry.signature_verifies() {
                        send.push(*cert);
                    }
                }
            }
            let mut out: Vec<Outgoing> = send
                .iter()
                .map(|c| Outgoing::Certificate(encoded.remove(c).expect("read above")))
                .collect();
            out.extend(found.into_iter().map(|(id, found)| match found {
                Some((entry, _)) => Outgoing::Entry(entry.encoded().to_vec()),
                None => Outgoing::Missing(id),
            }));
            Ok(out)
        })
    }
}

/// One read snapshot of the store's content (see [`Transfer::content_snapshot`]): what is
/// missing of many files is worked out in one read transaction, its tables opened once.
pub struct ContentSnapshot<'s> {
    transfer: Transfer<'s>,
    reader: BlobReader<'s>,
    refs: redb::ReadOnlyTable<([u8; 32], &'static str), ()>,
    files: redb::ReadOnlyTable<[u8; 32], (u64, [u8; 32])>,
}

impl ContentSnapshot<'_> {
    /// What [`Transfer::missing_content`] says, as of this snapshot.
    pub fn missing_content(
        &self,
        file: &FileRef,
        from: u64,
        limit: usize,
        scope: Option<&PeerScope<'_>>,
    ) -> Result<MissingPage, TransferError> {
        guarded(|| {
            let have = |hash: &Hash| -> Result<bool, StorageError> {
                Ok(self.has_blob(hash)?
                    && match scope {
                        None => true,
                        Some(s) => {
                            s.transfer.holds(hash) || reachable_in(&self.refs, hash, s.may_read)?
                        }
                    })
            };
            let Some(manifest) = file.manifest else {
                let blobs = if have(&file.hash)? {
                    Vec::new()
                } else {
                    vec![MissingBlob {
                        hash: file.hash,
                        expected: Expected::Size(file.size),
                    }]
                };
                return Ok(MissingPage { blobs, next: None });
            };
            if !have(&manifest)? {
                return Ok(MissingPage {
                    blobs: vec![MissingBlob {
                        hash: manifest,
                        expected: Expected::ManifestOf(*file),
                    }],
                    next: None,
                });
            }
            let bytes = self.reader.read(&manifest)?;
            let chunks = self.transfer.manifest_reader(file, &manifest, &bytes)?;
            let count = chunks.chunk_count();
            let mut page = MissingPage::default();
            let mut seen = std::collections::HashSet::new();
            for (i, chunk) in chunks.enumerate().skip(from as usize) {
                if page.blobs.len() == limit.max(1) {
                    page.next = Some(i as u64);
                    break;
                }
                let c = chunk.map_err(|e| bad_manifest(file, &manifest, e.to_string()))?;
                if seen.insert(c.hash) && !have(&c.hash)? {
                    page.blobs.push(MissingBlob {
                        hash: c.hash,
                        expected: Expected::Size(u64::from(c.len)),
                    });
                }
            }
            debug_assert!(page.next.is_none_or(|n| n < count));
            Ok(page)
        })
    }

    /// True when the store holds this blob (for a file blob: its file is there, full size).
    fn has_blob(&self, hash: &Hash) -> Result<bool, StorageError> {
        self.transfer
            .has_blob_in(&self.reader.blobs, &self.reader.packed, hash)
    }

    /// Whether a received file's content is complete and matches it.
    fn content_verdict(&self, f: &FileRef) -> Result<Verdict, TransferError> {
        if self.file_recorded(f)? {
            return Ok(Verdict::Complete);
        }
        Ok(match self.check_content(f) {
            Ok(()) => Verdict::Complete,
            Err(TransferError::ContentMismatch { detail, .. })
            | Err(TransferError::BadManifest { detail, .. }) => Verdict::Invalid(detail),
            Err(TransferError::ContentMissing { .. }) => Verdict::Missing,
            Err(other) => return Err(other),
        })
    }

    /// True when `files-v1` already records exactly this file (so it was verified before).
    fn file_recorded(&self, f: &FileRef) -> Result<bool, StorageError> {
        let manifest = f.manifest.map(|m| *m.as_bytes()).unwrap_or(NO_MANIFEST);
        let recorded = self.files.get(f.hash.as_bytes())?.map(|v| v.value());
        Ok(recorded == Some((f.size, manifest))
            && (f.manifest.is_some() || self.has_blob(&f.hash)?))
    }

    /// Checks that `f`'s content is complete and hashes to `f.hash`, a chunk at a time.
    fn check_content(&self, f: &FileRef) -> Result<(), TransferError> {
        let page = self.missing_content(f, 0, 1, None)?;
        if !page.blobs.is_empty() {
            return Err(TransferError::ContentMissing { hash: f.hash });
        }
        let reader = &self.reader;
        let mismatch = |detail: String| TransferError::ContentMismatch {
            hash: f.hash,
            detail,
        };
        match f.manifest {
            None => {
                let size = reader.size(&f.hash)?.unwrap_or(0);
                if size != f.size {
                    return Err(mismatch(format!("the blob has {size} bytes")));
                }
            }
            Some(m) => {
                let bytes = reader.read(&m)?;
                let chunks = self.transfer.manifest_reader(f, &m, &bytes)?;
                let mut hasher = blake3::Hasher::new();
                for c in chunks {
                    let c = c.map_err(|e| bad_manifest(f, &m, e.to_string()))?;
                    let data = reader.read(&c.hash).map_err(|e| match e {
                        ReadError::NotFound { .. } | ReadError::Missing { .. } => {
                            TransferError::ContentMissing { hash: f.hash }
                        }
                        other => other.into(),
                    })?;
                    if data.len() != c.len as usize {
                        return Err(mismatch(format!(
                            "chunk {} has {} bytes, the manifest says {}",
                            c.hash,
                            data.len(),
                            c.len
                        )));
                    }
                    hasher.update(&data);
                }
                let actual = Hash::from(hasher.finalize());
                if actual != f.hash {
                    return Err(mismatch(format!("the chunks hash to {actual}")));
                }
            }
        }
        Ok(())
    }
}

/// True when a row of `blob-refs-v1` says a collection `may_read` allows reaches `hash`.
fn reachable_in(
    refs: &impl redb::ReadableTable<([u8; 32], &'static str), ()>,
    hash: &Hash,
    may_read: &dyn Fn(&str) -> bool,
) -> Result<bool, StorageError> {
    let h = *hash.as_bytes();
    for row in refs.range((h, "")..)? {
        let (k, _) = row?;
        let (blob, collection) = k.value();
        if blob != h {
            break;
        }
        if may_read(collection) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// What a received file's content is, here.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Complete,
    /// Can never match its entry.
    Invalid(String),
    /// Not (all) here.
    Missing,
}

fn bad_manifest(file: &FileRef, manifest: &Hash, detail: String) -> TransferError {
    TransferError::BadManifest {
        hash: *manifest,
        file: file.hash,
        detail,
    }
}

impl Transfer<'_> {
    /// Inserts an encoded entry that arrived from elsewhere, after checking its signature, its
    /// names and its time (see [`Store::time_limit`]). Its content need not be here: this is
    /// for entries whose content follows later or is not wanted (tests, benchmarks, history);
    /// a sync inserts with [`Transfer::insert_received`]. Returns false if the store already
    /// had it.
    pub fn insert_entry(&self, encoded: &[u8]) -> Result<bool, EntryError> {
        self.store.insert_entry(encoded)
    }

    /// Inserts verified entries (from [`SignedEntry::decode`] or [`SignedEntry::sign`]) in one
    /// transaction, without their content (see [`Transfer::insert_entry`]); returns how many
    /// were new. All or nothing: if one is dated later than [`Store::time_limit`] or is on the
    /// deny list, nothing is inserted and the error names it.
    pub fn insert_entries(&self, entries: &[SignedEntry]) -> Result<u64, EntryError> {
        self.store.insert_entries(entries)
    }

    /// The insertion counter: the number every next inserted entry gets. With the peer's, it
    /// is what a completed sync records as an [`Agreement`](crate::sync::Agreement).
    pub fn sync_seq(&self) -> Result<u64, StorageError> {
        self.store.sync_seq()
    }

    /// True when the entry is on the deny list (purged, or its content proved invalid).
    pub fn is_denied(&self, id: &EntryId) -> Result<bool, StorageError> {
        self.store.is_denied(id)
    }

    /// Queues `keys` to be fetched, in their order: the first few thousand in memory, the rest
    /// in a scratch file on the store's disk (see [`KeyQueue`]).
    pub fn queue_keys(&self, keys: Vec<SyncKey>) -> Result<KeyQueue, StorageError> {
        KeyQueue::new(keys, self.store.files.tmp_dir().to_owned())
    }

    /// Removes the entries on the deny list from `keys` (before asking a peer for them); returns
    /// how many were removed.
    pub fn drop_denied(&self, keys: &mut Vec<SyncKey>) -> Result<u64, StorageError> {
        self.store.drop_denied(keys)
    }

    /// Removes from `keys` the entries the store already holds (taken since the keys were
    /// learned, by another sync); returns how many were removed.
    pub fn drop_held(&self, keys: &mut Vec<SyncKey>) -> Result<u64, StorageError> {
        self.store.drop_held(keys)
    }

    /// Puts entries on the deny list (removing those the store has, as a purge does): for
    /// entries that proved invalid, so no sync fetches them again.
    pub fn deny_entries(&self, keys: &[SyncKey], reason: DenyReason) -> Result<u64, StorageError> {
        self.store.deny_entries(keys, reason)
    }

    /// Bytes free for this store on its file system (for an unprivileged user).
    pub fn available_space(&self) -> Result<u64, StorageError> {
        let st = rustix::fs::statvfs(self.store.dir())
            .map_err(|e| StorageError::io(self.store.dir(), std::io::Error::from(e)))?;
        Ok(st.f_bavail.saturating_mul(st.f_frsize))
    }
}

/// The size and bao encoding of a whole stored blob, checked against its hash; `None` if the
/// store does not have it (or its bytes are gone: the caller answers "not found").
fn encode_one(
    reader: &BlobReader<'_>,
    hash: &Hash,
) -> Result<Option<(u64, Vec<u8>)>, TransferError> {
    let (size, data) = match reader.raw(hash) {
        Ok(Some(found)) => found,
        Ok(None) | Err(ReadError::Missing { .. }) => return Ok(None),
        Err(ReadError::Storage(e)) => return Err(e.into()),
        Err(e) => {
            return Err(TransferError::Verification {
                hash: *hash,
                detail: crate::error::chain(&e),
            })
        }
    };
    let outboard = if size > INLINE_MAX {
        match reader
            .outboards
            .get(hash.as_bytes())
            .map_err(StorageError::from)?
        {
            Some(ob) => ob.value().to_vec(),
            None => return Ok(None),
        }
    } else {
        Vec::new()
    };
    if data.len() as u64 != size {
        return Err(TransferError::Verification {
            hash: *hash,
            detail: format!("the stored copy has {} bytes, {size} expected", data.len()),
        });
    }
    Ok(Some((size, encode_whole(hash, &data, &outboard)?)))
}
