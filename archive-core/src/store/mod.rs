//! The store: blobs, files, entries, views and snapshots in one data folder.

mod add;
mod collection;
mod content;
mod export;
mod guard;
mod key_queue;
mod maintenance;
mod private;
mod purge;
mod quick_check;
mod rekey;
mod rules;
mod sync_index;
mod transfer;
mod versions;
mod view;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, Table};

pub use add::{AddProgress, AddReport, FailedFile, NoProgress};
pub use collection::{Arrivals, Collection};
pub use content::{Blobs, FileReader};
pub use export::{ExportReport, SkippedKey};
pub use key_queue::KeyQueue;
pub use maintenance::{
    BlobProblem, CollectionInfo, DamagedKey, DatabaseCheck, DoctorReport, GcReport, Stats,
    VerifyReport,
};
pub use purge::{DenyReason, PeerUsage, PurgeReport};
pub use rules::{EntryRules, NewEntries, RuleBreach};
pub use sync_index::StoreSyncIndex;
pub use transfer::{
    ContentSnapshot, Expected, FetchPlan, KeyConflict, MissingBlob, MissingPage, Outgoing,
    PeerScope, Received, Refusal, Refused, Transfer, TransferGuard,
};
pub use versions::{KeepVersions, RemovedKey};
pub use view::{
    Changes, FolderPage, History, Listing, Page, SnapshotInfo, Version, ViewItem, ViewPoint,
    PAGE_SIZE,
};

pub(crate) use guard::guarded;
pub use guard::set_call_check;
pub(crate) use quick_check::FileStat;

use crate::blobs::{BlobFiles, BlobReader};
use crate::certificate::Certificate;
use crate::clock::{HybridClock, Timestamp};
use crate::entry::{Entry, EntryId, EntryValue, FileMeta, FileRef, MessageFields, SignedEntry};
use crate::error::{EntryError, OpenError, StorageError};
use crate::format::layout::{
    format_file_contents, BLOBS, BLOB_REFS, COLLECTIONS, DB_FILE, DENIED, ENTRIES, FILES,
    FORMAT_FILE, FORMAT_PREFIX, FORMAT_VERSION, HISTORY, INLINE_BLOBS, META, META_CLOCK,
    META_ENTRY_BYTES, META_NEXT_SEQ, META_PRIVATE, META_SECRET_KEY, META_STORED_BYTES, ORIGINS,
    OUTBOARDS, PEER_USAGE, SNAPSHOTS, VIEWS,
};
use crate::hash::Hash;
use crate::identity::{PeerId, PublicKey, SecretKey};
use crate::names::{parent_folders, validate_collection, validate_key};

/// The collection used when none is named.
pub const DEFAULT_COLLECTION: &str = "default";

/// Metadata cache for redb: small enough for a 1 GB Raspberry Pi.
const DB_CACHE_BYTES: usize = 32 * 1024 * 1024;

/// A content-addressed archive store in one data folder.
///
/// One process opens a store at a time (the database is locked); inside the process a `Store`
/// is shared by reference across threads.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    db: Database,
    files: BlobFiles,
    key: SecretKey,
    clock: Mutex<HybridClock>,
    /// Held shared by every operation that writes or reads blobs, exclusively by `gc`, so
    /// garbage collection never removes a blob an operation in flight is using.
    gc_lock: RwLock<()>,
    /// Sync index block summaries, patched at every commit that inserts entries.
    sync_cache: sync_index::SummaryCache,
    /// Blobs that transfers in progress stored ahead of their entries (see
    /// [`Store::begin_transfer`]); gc keeps them.
    pins: std::sync::Arc<transfer::Pins>,
    /// Rules of embedding programs for their collections (see [`Store::add_rules`]).
    rules: rules::RuleBook,
}

impl Store {
    /// Creates a store in `dir` (created if missing, or an existing empty folder), with a new
    /// signing key. The folder is made private (0700, files 0600): the database holds the
    /// secret key. Fails with [`OpenError::AlreadyInitialized`] if a store is there already.
    pub fn init(dir: impl AsRef<Path>) -> Result<Store, OpenError> {
        Store::init_inner(dir.as_ref(), None)
    }

    /// [`Store::init`] with a given signing key instead of a new one: a server moved to a new
    /// disk keeps its identity (its peers know it by this key; its entries are signed with
    /// it). Content comes back by sync from its peers, or from a backup.
    pub fn init_with_key(dir: impl AsRef<Path>, key: &SecretKey) -> Result<Store, OpenError> {
        Store::init_inner(dir.as_ref(), Some(key))
    }

    fn init_inner(dir: &Path, given: Option<&SecretKey>) -> Result<Store, OpenError> {
        let dir = dir.to_owned();
        let format_path = dir.join(FORMAT_FILE);
        if format_path.exists() {
            check_format(&dir)?;
            return Err(OpenError::AlreadyInitialized { dir });
        }
        private::create_private_dir(&dir)?;
        let files = BlobFiles::new(&dir);
        files.create_dirs()?;
        let db_path = dir.join(DB_FILE);
        let db = open_db(&dir, &db_path, true)?;
        guarded(|| -> Result<(), OpenError> {
            let tx = db.begin_write().map_err(StorageError::from)?;
            {
                let mut meta = tx.open_table(META).map_err(StorageError::from)?;
                // A crashed earlier `init` may have left a key: keep it (unless one is given).
                if given.is_some()
                    || meta
                        .get(META_SECRET_KEY)
                        .map_err(StorageError::from)?
                        .is_none()
                {
                    let key = match given {
                        Some(k) => SecretKey::from_bytes(k.to_bytes()),
                        None => SecretKey::generate().map_err(|e| StorageError::io(&dir, e))?,
                    };
                    meta.insert(META_SECRET_KEY, key.to_bytes().as_slice())
                        .map_err(StorageError::from)?;
                    meta.insert(META_CLOCK, 0u64.to_le_bytes().as_slice())
                        .map_err(StorageError::from)?;
                    meta.insert(META_NEXT_SEQ, 0u64.to_le_bytes().as_slice())
                        .map_err(StorageError::from)?;
                }
                meta.insert(META_PRIVATE, [1u8].as_slice())
                    .map_err(StorageError::from)?;
                drop(meta);
                create_tables(&tx)?;
            }
            tx.commit().map_err(StorageError::from)?;
            Ok(())
        })?;
        private::tighten(&dir)?;
        write_durably(&format_path, format_file_contents().as_bytes())
            .map_err(|e| StorageError::io(&format_path, e))?;
        drop(db);
        Store::open(dir)
    }

    /// Opens the store in `dir`. Refuses a folder that belongs to another user or that is
    /// open to other users ([`OpenError::NotOwner`], [`OpenError::Exposed`]); a store made by
    /// an earlier version of this software is made private on its first open instead.
    pub fn open(dir: impl AsRef<Path>) -> Result<Store, OpenError> {
        let dir = dir.as_ref().to_owned();
        // Whose folder it is first: another user's folder may not even be readable.
        if dir.exists() {
            private::check_owner(&dir)?;
        }
        let format = check_format(&dir)?;
        let db_path = dir.join(DB_FILE);
        if !db_path.exists() {
            return Err(OpenError::Storage(StorageError::Damaged(format!(
                "{} is missing",
                db_path.display()
            ))));
        }
        let db = open_db(&dir, &db_path, false)?;
        let files = BlobFiles::new(&dir);
        if format < FORMAT_VERSION {
            add_format_2_tables(&db)?;
        }
        guarded(|| rekey::move_entries_to_time_keys(&db))?;
        let (seed, clock) = guarded(|| -> Result<_, OpenError> {
            let private = upgrade(&db, &files)?;
            if private {
                private::check_private(&dir)?;
            } else {
                // Made by an earlier version: tighten once, then remember it was done.
                private::tighten(&dir)?;
                let tx = db.begin_write().map_err(StorageError::from)?;
                tx.open_table(META)
                    .map_err(StorageError::from)?
                    .insert(META_PRIVATE, [1u8].as_slice())
                    .map_err(StorageError::from)?;
                tx.commit().map_err(StorageError::from)?;
            }
            let tx = db.begin_read().map_err(StorageError::from)?;
            let meta = tx.open_table(META).map_err(StorageError::from)?;
            let seed: [u8; 32] = read_meta(&meta, META_SECRET_KEY)?;
            let clock = u64::from_le_bytes(read_meta(&meta, META_CLOCK)?);
            Ok((seed, clock))
        })?;
        files.create_dirs()?;
        if format < FORMAT_VERSION {
            // Last, once everything else of the upgrade is durable.
            let format_path = dir.join(FORMAT_FILE);
            write_durably(&format_path, format_file_contents().as_bytes())
                .map_err(|e| StorageError::io(&format_path, e))?;
        }
        Ok(Store {
            dir,
            db,
            files,
            key: SecretKey::from_bytes(seed),
            clock: Mutex::new(HybridClock::new(Timestamp::from_raw(clock))),
            gc_lock: RwLock::new(()),
            sync_cache: sync_index::SummaryCache::default(),
            pins: std::sync::Arc::default(),
            rules: rules::RuleBook::default(),
        })
    }

    /// Replaces the wall clock the store reads (milliseconds since the Unix epoch): for
    /// simulations and tests of servers whose clocks are wrong. Not part of the supported API.
    #[doc(hidden)]
    pub fn set_wall_clock(&self, millis: fn() -> u64) {
        self.clock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .set_wall_clock(millis);
    }

    /// The latest entry time this store accepts from elsewhere right now (see
    /// ARCHITECTURE.md, "Entry time"): five years past the later of its wall clock, the
    /// latest time it has seen and the date this version was made, and never past May 2109.
    pub fn time_limit(&self) -> Timestamp {
        self.clock().rule().limit
    }

    /// A new time from this store's hybrid logical clock: later than every time it has
    /// used or seen, so no two calls on one store return the same time (the next entry
    /// written here is later still). What an embedding program names things by when their
    /// names must be unique per server and ordered by time (the messenger's message ids).
    pub fn next_time(&self) -> Timestamp {
        self.clock().tick()
    }

    /// The clock. A panic that once happened while it was held (a damaged database) does not
    /// make it unusable: its state is a single time, never left half-written.
    fn clock(&self) -> MutexGuard<'_, HybridClock> {
        self.clock.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The gc lock, shared (see `gc_lock`).
    fn gc_shared(&self) -> RwLockReadGuard<'_, ()> {
        self.gc_lock.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The gc lock, exclusive.
    fn gc_exclusive(&self) -> RwLockWriteGuard<'_, ()> {
        self.gc_lock.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The data folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// This store's public key: the author of the entries it writes.
    pub fn author(&self) -> PublicKey {
        self.key.public()
    }

    /// This store as other servers know it: its endpoint id, the same bytes as [`Store::author`].
    pub fn peer_id(&self) -> PeerId {
        self.key.public().into()
    }

    /// This store's secret key (the server identity; `archive-net` uses it for the endpoint).
    pub fn secret_key(&self) -> &SecretKey {
        &self.key
    }

    /// Signs and writes one entry per `(key, value)`, each with the messenger's fields
    /// `message`, in one transaction. Every entry must pass the collection's rules
    /// ([`Store::add_rules`]) or nothing is written.
    fn write_entries(
        &self,
        collection: &str,
        values: &[(String, EntryValue)],
        message: &MessageFields,
    ) -> Result<Vec<SignedEntry>, EntryError> {
        validate_collection(collection)?;
        for (k, _) in values {
            validate_key(k)?;
        }
        if let Some(person) = &message.person {
            crate::names::validate_person(person)?;
        }
        guarded(|| {
            let reach: Vec<Vec<Hash>> = {
                let read = self.db.begin_read().map_err(StorageError::from)?;
                let reader = BlobReader::open(&self.files, &read)?;
                values
                    .iter()
                    .map(|(_, v)| match v {
                        EntryValue::File(f) => file_blobs(&reader, f),
                        EntryValue::Folder | EntryValue::Tombstone => Vec::new(),
                    })
                    .collect()
            };
            let signed = values
                .iter()
                .map(|(key, value)| {
                    let entry =
                        self.new_entry(collection, key, *value, FileMeta::default(), message);
                    SignedEntry::sign(entry, &self.key)
                })
                .collect::<Result<Vec<_>, _>>()?;
            self.check_rules_each(&signed)?;
            let tx = self.db.begin_write().map_err(StorageError::from)?;
            let mut out = Vec::with_capacity(values.len());
            let touched = {
                let mut tables = EntryTables::open(&tx, None)?;
                for (((key, value), reach), signed) in values.iter().zip(reach).zip(signed) {
                    if let EntryValue::File(_) = value {
                        tables.check_placement(collection, key)?;
                        tables.add_refs(collection, reach)?;
                    }
                    tables.insert(&signed)?;
                    out.push(signed);
                }
                tables.certify(&self.key, &out)?;
                tables.finish(&self.clock())?
            };
            self.commit_entries(tx, touched)?;
            Ok(out)
        })
    }

    fn new_entry(
        &self,
        collection: &str,
        key: &str,
        value: EntryValue,
        meta: FileMeta,
        message: &MessageFields,
    ) -> Entry {
        Entry {
            collection: collection.to_owned(),
            key: key.to_owned(),
            value,
            author: self.key.public(),
            time: self.clock().tick(),
            meta,
            message: message.clone(),
        }
    }

    /// Checks entries about to be inserted against their collection's rules; the first breach
    /// is the error.
    fn check_rules_each(&self, entries: &[SignedEntry]) -> Result<(), EntryError> {
        for e in entries {
            if let Err(breach) = self.check_rules(e) {
                return Err(EntryError::BrokeRules {
                    collection: e.entry().collection.clone(),
                    key: e.entry().key.clone(),
                    reason: breach.reason,
                });
            }
        }
        Ok(())
    }

    /// Inserts an entry that arrived from elsewhere, after checking its signature, its names
    /// and its time (see [`Store::time_limit`]); its blobs need not be here (entries may arrive
    /// before their blobs). Returns false if the store already had it.
    fn insert_entry(&self, encoded: &[u8]) -> Result<bool, EntryError> {
        let entry = SignedEntry::decode(encoded)?;
        Ok(self.insert_entries(std::slice::from_ref(&entry))? == 1)
    }

    /// Inserts verified entries (from [`SignedEntry::decode`] or [`SignedEntry::sign`]) in one
    /// transaction; returns how many were new. Entries may arrive before their blobs. All or
    /// nothing: if one is dated later than [`Store::time_limit`] or is on the deny list,
    /// nothing is inserted and the error names it.
    fn insert_entries(&self, entries: &[SignedEntry]) -> Result<u64, EntryError> {
        self.check_rules_each(entries)?;
        guarded(|| {
            let tx = self.db.begin_write().map_err(StorageError::from)?;
            let mut inserted = 0;
            let touched = {
                let mut tables = EntryTables::open(&tx, None)?;
                let mut clock = self.clock();
                let rule = clock.rule();
                for entry in entries {
                    let time = entry.entry().time;
                    if !rule.accepts(time) {
                        return Err(EntryError::TooFarAhead {
                            id: entry.id(),
                            time,
                            limit: rule.limit,
                        });
                    }
                    match tables.insert(entry)? {
                        Inserted::New => inserted += 1,
                        Inserted::Known => {}
                        Inserted::Denied => return Err(EntryError::Denied { id: entry.id() }),
                    }
                    if let EntryValue::File(f) = entry.entry().value {
                        let c = entry.entry().collection.as_str();
                        tables.add_refs(c, [f.hash].into_iter().chain(f.manifest))?;
                    }
                    clock.observe(time);
                }
                tables.finish(&clock)?
            };
            self.commit_entries(tx, touched)?;
            Ok(inserted)
        })
    }

    /// Commits a transaction that inserted entries, keeping the sync index cache in step.
    fn commit_entries(
        &self,
        tx: redb::WriteTransaction,
        touched: Touched,
    ) -> Result<(), StorageError> {
        let collections: Vec<String> = if self.rules.has_watchers() {
            touched.keys().cloned().collect()
        } else {
            Vec::new()
        };
        self.sync_cache.commit(&self.db, tx, touched)?;
        for collection in collections {
            self.rules.notify(&collection);
        }
        Ok(())
    }

    /// A consistent view of one collection's items for a reconciliation session.
    fn sync_index(&self, collection: &str) -> Result<StoreSyncIndex, StorageError> {
        guarded(|| StoreSyncIndex::open(&self.db, &self.sync_cache, collection))
    }

    /// The insertion counter: the number every next inserted entry gets. With the peer's, it
    /// is what a completed sync records as an [`Agreement`](crate::sync::Agreement).
    fn sync_seq(&self) -> Result<u64, StorageError> {
        guarded(|| {
            let tx = self.db.begin_read()?;
            let meta = tx.open_table(META)?;
            Ok(u64::from_le_bytes(read_meta(&meta, META_NEXT_SEQ)?))
        })
    }

    /// What this store last agreed with `peer` about `collection`.
    fn agreement(
        &self,
        peer: &PeerId,
        collection: &str,
    ) -> Result<Option<crate::sync::Agreement>, StorageError> {
        guarded(|| {
            let tx = self.db.begin_read()?;
            sync_index::read_agreement(&tx, peer.as_bytes(), collection)
        })
    }

    /// Remembers that this store and `peer` held the same entries of `collection` at these
    /// insertion counters.
    fn record_agreement(
        &self,
        peer: &PeerId,
        collection: &str,
        agreement: crate::sync::Agreement,
    ) -> Result<(), StorageError> {
        guarded(|| {
            let tx = self.db.begin_write()?;
            sync_index::write_agreement(&tx, peer.as_bytes(), collection, agreement)?;
            tx.commit()?;
            Ok(())
        })
    }

    /// The entry with this key (its time and id: what listings, histories and sync name), if
    /// the store has it. Entries are kept in time order, so a bare id is not enough to find
    /// one.
    pub fn entry(&self, key: &crate::sync::SyncKey) -> Result<Option<SignedEntry>, EntryError> {
        guarded(|| {
            let tx = self.db.begin_read().map_err(StorageError::from)?;
            let entries = tx.open_table(ENTRIES).map_err(StorageError::from)?;
            if entries
                .get(key.to_bytes())
                .map_err(StorageError::from)?
                .is_none()
            {
                return Ok(None);
            }
            Ok(Some(decode_stored_entry(
                &entries,
                (key.time, *key.id.as_bytes()),
            )?))
        })
    }

    /// Bytes stored: every blob, plus the storage charge of every entry (what a quota counts).
    pub fn quota_used(&self) -> Result<u64, StorageError> {
        guarded(|| {
            let tx = self.db.begin_read()?;
            let meta = tx.open_table(META)?;
            let blobs = u64::from_le_bytes(read_meta(&meta, META_STORED_BYTES)?);
            let entries = u64::from_le_bytes(read_meta(&meta, META_ENTRY_BYTES)?);
            Ok(blobs.saturating_add(entries))
        })
    }
}

/// What happened to one entry offered to [`EntryTables::insert`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Inserted {
    New,
    /// The store had it already.
    Known,
    /// It is on the deny list.
    Denied,
}

/// The tables touched when entries are inserted, inside one write transaction.
struct EntryTables<'txn> {
    meta: Table<'txn, &'static str, &'static [u8]>,
    entries: Table<'txn, [u8; 40], &'static [u8]>,
    views: Table<'txn, (&'static str, &'static str), (u64, [u8; 32])>,
    history: Table<'txn, (&'static str, &'static str, u64), (u64, [u8; 32])>,
    collections: Table<'txn, &'static str, u64>,
    /// Entries inserted per collection, added to `collections` once, by `finish`.
    collection_counts: std::collections::HashMap<String, u64>,
    denied: Table<'txn, [u8; 32], (u64, u8)>,
    origins: Table<'txn, ([u8; 32], u64), [u8; 40]>,
    usage: Table<'txn, [u8; 32], (u64, u64, u64)>,
    refs: Table<'txn, ([u8; 32], &'static str), ()>,
    sync: sync_index::SyncTables<'txn>,
    certificates: Table<'txn, [u8; 32], &'static [u8]>,
    entry_certificates: Table<'txn, [u8; 40], ([u8; 32], bool)>,
    /// Certificates known to be in `certificates` in this transaction.
    certificates_kept: std::collections::HashSet<[u8; 32]>,
    next_seq: u64,
    /// The peer that delivered the entries (none for entries written here).
    origin: Option<[u8; 32]>,
    /// Storage charge of the entries inserted, and how many.
    charged: u64,
    count: u64,
    /// Blob bytes the transaction recorded that were new to the store (from `BlobTables`).
    blob_bytes: u64,
}

/// The fewest entries written together that get a batch certificate: fewer are sent with
/// their own signatures anyway (see `Transfer::entries_to_send`).
pub(crate) const CERTIFY_MIN: usize = 16;

/// Sync index blocks a transaction touched, per collection.
type Touched = std::collections::HashMap<String, std::collections::BTreeSet<[u8; 40]>>;

impl<'txn> EntryTables<'txn> {
    fn open(
        tx: &'txn redb::WriteTransaction,
        origin: Option<&PeerId>,
    ) -> Result<Self, StorageError> {
        let meta = tx.open_table(META)?;
        let next_seq = u64::from_le_bytes(read_meta(&meta, META_NEXT_SEQ)?);
        Ok(EntryTables {
            meta,
            entries: tx.open_table(ENTRIES)?,
            views: tx.open_table(VIEWS)?,
            history: tx.open_table(HISTORY)?,
            collections: tx.open_table(COLLECTIONS)?,
            collection_counts: std::collections::HashMap::new(),
            denied: tx.open_table(DENIED)?,
            origins: tx.open_table(ORIGINS)?,
            usage: tx.open_table(PEER_USAGE)?,
            refs: tx.open_table(BLOB_REFS)?,
            sync: sync_index::SyncTables::open(tx)?,
            certificates: tx.open_table(crate::format::layout::CERTIFICATES)?,
            entry_certificates: tx.open_table(crate::format::layout::ENTRY_CERTIFICATES)?,
            certificates_kept: std::collections::HashSet::new(),
            next_seq,
            origin: origin.map(|p| *p.as_bytes()),
            charged: 0,
            count: 0,
            blob_bytes: 0,
        })
    }

    /// Adds an entry to the set, its key's history and (if it is the latest) the view, and
    /// keeps the certificate that vouches for it, if any.
    fn insert(&mut self, entry: &SignedEntry) -> Result<Inserted, StorageError> {
        self.insert_vouched(entry, true)
    }

    /// Keeps `certificate` as the proof of these entries (already inserted or known).
    fn keep_certificate<'e>(
        &mut self,
        certificate: &Certificate,
        entries: impl IntoIterator<Item = &'e SignedEntry>,
        signature_checked: bool,
    ) -> Result<(), StorageError> {
        let cert_id = *certificate.id().as_bytes();
        if self.certificates_kept.insert(cert_id) && self.certificates.get(&cert_id)?.is_none() {
            self.certificates.insert(&cert_id, certificate.encoded())?;
        }
        for e in entries {
            self.entry_certificates
                .insert(certificate_row(e), (cert_id, signature_checked))?;
        }
        Ok(())
    }

    /// Signs certificates over entries written here (when there are enough of them for a
    /// certificate to be worth sending: [`CERTIFY_MIN`]) and keeps them.
    fn certify(&mut self, key: &SecretKey, written: &[SignedEntry]) -> Result<(), StorageError> {
        if written.len() < CERTIFY_MIN {
            return Ok(());
        }
        let ids = written.iter().map(SignedEntry::id).collect();
        // `sign_all` keeps the order given: certificate i covers written[i * MAX..].
        let parts = written.chunks(crate::MAX_CERTIFIED_IDS);
        for (certificate, part) in Certificate::sign_all(key, ids).iter().zip(parts) {
            self.keep_certificate(certificate, part, true)?;
        }
        Ok(())
    }

    /// [`EntryTables::insert`], keeping the entry's certificate only if `keep_voucher`.
    fn insert_vouched(
        &mut self,
        entry: &SignedEntry,
        keep_voucher: bool,
    ) -> Result<Inserted, StorageError> {
        let id = *entry.id().as_bytes();
        let item = entry.sync_key();
        let row = item.to_bytes();
        // Inserted first and put back if it was there: one B-tree walk for a new entry (the
        // common case) instead of a lookup and then an insert.
        let before = self
            .entries
            .insert(&row, entry.encoded())?
            .map(|old| old.value().to_vec());
        if let Some(old) = before {
            // Known: kept exactly as it was stored (the same body, perhaps another voucher).
            self.entries.insert(&row, old.as_slice())?;
            return Ok(Inserted::Known);
        }
        // The deny list's length is in its root: an empty list costs no walk.
        if !self.denied.is_empty()? && self.denied.get(&id)?.is_some() {
            self.entries.remove(&row)?;
            return Ok(Inserted::Denied);
        }
        let e = entry.entry();
        let (c, k) = (e.collection.as_str(), e.key.as_str());
        let version = (e.time.raw(), id);
        match self.collection_counts.get_mut(c) {
            Some(n) => *n += 1,
            None => {
                self.collection_counts.insert(c.to_owned(), 1);
            }
        }
        self.history.insert((c, k, self.next_seq), version)?;
        self.sync.insert(c, item, self.next_seq)?;
        if let Some(origin) = self.origin {
            self.origins.insert((origin, self.next_seq), row)?;
        }
        self.next_seq += 1;
        if let (true, Some(voucher)) = (keep_voucher, entry.voucher()) {
            let v = voucher.signature_checked;
            self.keep_certificate(&voucher.certificate, [entry], v)?;
        }
        self.charged += entry.storage_charge();
        self.count += 1;
        // Also inserted first: the newer version stays (put back if it was already there).
        let current = self.views.insert((c, k), version)?.map(|v| v.value());
        if let Some(cur) = current.filter(|cur| *cur > version) {
            self.views.insert((c, k), cur)?;
        }
        Ok(Inserted::New)
    }

    /// Records that `collection` reaches these blobs (a peer that may read it may fetch them).
    fn add_refs(
        &mut self,
        collection: &str,
        blobs: impl IntoIterator<Item = Hash>,
    ) -> Result<(), StorageError> {
        for h in blobs {
            self.refs.insert((*h.as_bytes(), collection), ())?;
        }
        Ok(())
    }

    /// The entry the view shows for a key (a tombstone included), as of this transaction.
    fn current(&self, collection: &str, key: &str) -> Result<Option<SignedEntry>, StorageError> {
        let Some(row) = self.views.get((collection, key))? else {
            return Ok(None);
        };
        decode_stored_entry(&self.entries, row.value()).map(Some)
    }

    /// True when the view shows this entry at `key`.
    fn shows(&self, collection: &str, key: &str, id: &EntryId) -> Result<bool, StorageError> {
        Ok(self
            .views
            .get((collection, key))?
            .is_some_and(|v| v.value().1 == *id.as_bytes()))
    }

    /// True when the view holds a file (not a tombstone) at `key`.
    fn holds_file(&self, collection: &str, key: &str) -> Result<bool, StorageError> {
        Ok(self
            .current(collection, key)?
            .is_some_and(|e| matches!(e.entry().value, EntryValue::File(_))))
    }

    /// Refuses a file at `key` where the view has a file at one of its folders, or files
    /// under it (it is a folder there): an export could not hold both.
    fn check_placement(&self, collection: &str, key: &str) -> Result<(), EntryError> {
        let conflict = |reason: String| EntryError::FileFolderConflict {
            collection: collection.to_owned(),
            key: key.to_owned(),
            reason,
        };
        for folder in parent_folders(key) {
            if self.holds_file(collection, folder)? {
                return Err(conflict(format!("`{folder}` is a file there")));
            }
        }
        let below = format!("{key}/");
        for row in self
            .views
            .range((collection, below.as_str())..)
            .map_err(StorageError::from)?
        {
            let (k, _) = row.map_err(StorageError::from)?;
            let (c, other) = k.value();
            if c != collection || !other.starts_with(&below) {
                break;
            }
            if self.holds_file(collection, other)? {
                return Err(conflict(format!(
                    "it is a folder there (it holds `{other}`)"
                )));
            }
        }
        Ok(())
    }

    /// Writes the counters; returns the sync blocks touched, for the commit.
    fn finish(mut self, clock: &HybridClock) -> Result<Touched, StorageError> {
        self.sync.finish()?;
        self.count_collections()?;
        self.meta
            .insert(META_NEXT_SEQ, self.next_seq.to_le_bytes().as_slice())?;
        self.meta
            .insert(META_CLOCK, clock.last().raw().to_le_bytes().as_slice())?;
        add_to_counter(&mut self.meta, META_ENTRY_BYTES, self.charged)?;
        add_to_counter(&mut self.meta, META_STORED_BYTES, self.blob_bytes)?;
        if let Some(origin) = self.origin {
            let (n, bytes, blobs) = self
                .usage
                .get(&origin)?
                .map(|v| v.value())
                .unwrap_or_default();
            self.usage.insert(
                &origin,
                (
                    n + self.count,
                    bytes + self.charged,
                    blobs + self.blob_bytes,
                ),
            )?;
        }
        Ok(std::mem::take(&mut self.sync.touched))
    }
}

impl EntryTables<'_> {
    /// Adds the entries inserted to their collections' counts.
    fn count_collections(&mut self) -> Result<(), StorageError> {
        for (c, n) in std::mem::take(&mut self.collection_counts) {
            let count = self.collections.get(c.as_str())?.map(|v| v.value());
            self.collections
                .insert(c.as_str(), count.unwrap_or(0) + n)?;
        }
        Ok(())
    }

    /// Writes only the byte counters and the origin's usage (a transaction that recorded
    /// blobs but inserted no entries).
    fn finish_counters_only(mut self) -> Result<(), StorageError> {
        debug_assert!(self.collection_counts.is_empty(), "entries were inserted");
        add_to_counter(&mut self.meta, META_STORED_BYTES, self.blob_bytes)?;
        if let (Some(origin), true) = (self.origin, self.blob_bytes > 0) {
            let (n, bytes, blobs) = self
                .usage
                .get(&origin)?
                .map(|v| v.value())
                .unwrap_or_default();
            self.usage
                .insert(&origin, (n, bytes, blobs + self.blob_bytes))?;
        }
        Ok(())
    }
}

/// Adds `delta` to a u64 counter in the meta table (a missing one counts as 0).
pub(crate) fn add_to_counter(
    meta: &mut Table<'_, &'static str, &'static [u8]>,
    name: &str,
    delta: u64,
) -> Result<(), StorageError> {
    if delta == 0 {
        return Ok(());
    }
    let now = match meta.get(name)? {
        Some(v) => u64::from_le_bytes(v.value().try_into().map_err(|_| {
            StorageError::Damaged(format!("the `{name}` record has the wrong length"))
        })?),
        None => 0,
    };
    meta.insert(name, now.saturating_add(delta).to_le_bytes().as_slice())?;
    Ok(())
}

/// Subtracts `delta` from a u64 counter in the meta table.
pub(crate) fn sub_from_counter(
    meta: &mut Table<'_, &'static str, &'static [u8]>,
    name: &str,
    delta: u64,
) -> Result<(), StorageError> {
    if delta == 0 {
        return Ok(());
    }
    let now: [u8; 8] = read_meta(meta, name)?;
    let now = u64::from_le_bytes(now);
    meta.insert(name, now.saturating_sub(delta).to_le_bytes().as_slice())?;
    Ok(())
}

/// The blobs that hold a file: its one blob, or its manifest and (when the manifest is here
/// and valid) its chunks.
/// Each once: a manifest may name one chunk many times.
pub(crate) fn file_blobs(reader: &BlobReader<'_>, file: &FileRef) -> Vec<Hash> {
    let Some(m) = file.manifest else {
        return vec![file.hash];
    };
    let mut out = vec![m];
    if let Ok(bytes) = reader.read(&m) {
        if let Ok(chunks) = crate::format::manifest::ManifestReader::new(&bytes) {
            let mut seen = std::collections::HashSet::new();
            out.extend(
                chunks
                    .map_while(Result::ok)
                    .map(|c| c.hash)
                    .filter(|h| seen.insert(*h)),
            );
        }
    }
    out
}

/// The key of an entry's row in `certified-entries-v1`: its sync key.
fn certificate_row(entry: &SignedEntry) -> [u8; 40] {
    entry.sync_key().to_bytes()
}

/// Reads an entry the store accepted earlier, by the (time, id) a view or history row names;
/// a missing or undecodable one means damage.
fn decode_stored_entry(
    entries: &impl ReadableTable<[u8; 40], &'static [u8]>,
    (time, id): (u64, [u8; 32]),
) -> Result<SignedEntry, StorageError> {
    let id = EntryId::from_bytes(id);
    let key = crate::sync::SyncKey { time, id };
    let bytes = entries
        .get(key.to_bytes())?
        .ok_or_else(|| StorageError::Damaged(format!("entry {id} is missing")))?;
    SignedEntry::decode_unverified(bytes.value())
        .map_err(|e| StorageError::Damaged(format!("entry {id}: {e}")))
}

fn create_tables(tx: &redb::WriteTransaction) -> Result<(), StorageError> {
    tx.open_table(BLOBS)?;
    tx.open_table(INLINE_BLOBS)?;
    tx.open_table(OUTBOARDS)?;
    tx.open_table(FILES)?;
    tx.open_table(ENTRIES)?;
    tx.open_table(VIEWS)?;
    tx.open_table(HISTORY)?;
    tx.open_table(COLLECTIONS)?;
    tx.open_table(SNAPSHOTS)?;
    tx.open_table(crate::format::layout::SYNC_BLOCK_ITEMS)?;
    tx.open_table(crate::format::layout::SYNC_BLOCKS)?;
    tx.open_table(crate::format::layout::SYNC_TOTALS)?;
    tx.open_table(crate::format::layout::SYNC_LOG)?;
    tx.open_table(crate::format::layout::SYNC_PEERS)?;
    tx.open_table(DENIED)?;
    tx.open_table(ORIGINS)?;
    tx.open_table(PEER_USAGE)?;
    tx.open_table(BLOB_REFS)?;
    tx.open_table(crate::format::layout::QUICK_CHECK)?;
    tx.open_table(crate::format::layout::PACKED)?;
    tx.open_table(crate::format::layout::CERTIFICATES)?;
    tx.open_table(crate::format::layout::ENTRY_CERTIFICATES)?;
    let mut meta = tx.open_table(META)?;
    for counter in [META_STORED_BYTES, META_ENTRY_BYTES] {
        if meta.get(counter)?.is_none() {
            meta.insert(counter, 0u64.to_le_bytes().as_slice())?;
        }
    }
    Ok(())
}

/// Brings a store made by an earlier version of format 1 up to date: creates the tables it
/// lacks and computes the counters it did not keep (one pass over the blobs and entries, once).
/// Returns whether the data folder was made private by this version already.
fn upgrade(db: &Database, files: &BlobFiles) -> Result<bool, StorageError> {
    let (private, missing) = {
        let tx = db.begin_read()?;
        let meta = tx.open_table(META)?;
        let private = meta.get(META_PRIVATE)?.is_some();
        let missing = meta.get(META_STORED_BYTES)?.is_none()
            || meta.get(META_ENTRY_BYTES)?.is_none()
            || tx.open_table(BLOB_REFS).is_err();
        (private, missing)
    };
    if !missing {
        return Ok(private);
    }
    let read = db.begin_read()?;
    let reader = BlobReader::open(files, &read)?;
    let tx = db.begin_write()?;
    {
        let mut stored = 0u64;
        for row in tx.open_table(BLOBS)?.iter()? {
            stored += row?.1.value().0;
        }
        let mut charged = 0u64;
        let entries = tx.open_table(ENTRIES)?;
        let mut refs = tx.open_table(BLOB_REFS)?;
        for row in entries.iter()? {
            let (k, v) = row?;
            let e = SignedEntry::decode_unverified(v.value()).map_err(|e| {
                let id = crate::sync::SyncKey::from_bytes(&k.value()).id;
                StorageError::Damaged(format!("entry {id}: {e}"))
            })?;
            charged += e.storage_charge();
            if let EntryValue::File(f) = e.entry().value {
                let c = e.entry().collection.as_str();
                for h in file_blobs(&reader, &f) {
                    refs.insert((*h.as_bytes(), c), ())?;
                }
            }
        }
        drop((entries, refs));
        create_tables(&tx)?;
        let mut meta = tx.open_table(META)?;
        meta.insert(META_STORED_BYTES, stored.to_le_bytes().as_slice())?;
        meta.insert(META_ENTRY_BYTES, charged.to_le_bytes().as_slice())?;
    }
    tx.commit()?;
    Ok(private)
}

pub(crate) fn read_meta<const N: usize>(
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
    name: &str,
) -> Result<[u8; N], StorageError> {
    let value = meta
        .get(name)?
        .ok_or_else(|| StorageError::Damaged(format!("the `{name}` record is missing")))?;
    value
        .value()
        .try_into()
        .map_err(|_| StorageError::Damaged(format!("the `{name}` record has the wrong length")))
}

fn open_db(dir: &Path, path: &Path, create: bool) -> Result<Database, OpenError> {
    let mut builder = Database::builder();
    builder.set_cache_size(DB_CACHE_BYTES);
    let result = guarded(|| {
        Ok::<_, OpenError>(if create {
            builder.create(path)
        } else {
            builder.open(path)
        })
    })?;
    result.map_err(|e| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => OpenError::Locked {
            dir: dir.to_owned(),
        },
        other => OpenError::Database {
            path: path.to_owned(),
            source: other.into(),
        },
    })
}

/// The first step of upgrading a store of format 1 in place, on its first open by this
/// version: the tables of format 2 are created (one commit). Then the rest of `open` runs as
/// for any store, and `FORMAT` is replaced last (atomically, durably). Its blobs stay where
/// they are, inline or in files, and are read as before; new blobs go to packs. Killed
/// anywhere, the store is either still format 1 (the next open does this again: each step is
/// idempotent) or format 2.
fn add_format_2_tables(db: &Database) -> Result<(), OpenError> {
    guarded(|| -> Result<(), OpenError> {
        let tx = db.begin_write().map_err(StorageError::from)?;
        create_tables(&tx)?;
        crate::fault::point(crate::fault::Point::Write(crate::fault::WriteStep::Commit));
        tx.commit().map_err(StorageError::from)?;
        crate::fault::point(crate::fault::Point::Write(
            crate::fault::WriteStep::Committed,
        ));
        Ok(())
    })
}

/// The store format the data folder says it is in; refuses a newer one.
fn check_format(dir: &Path) -> Result<u32, OpenError> {
    let path = dir.join(FORMAT_FILE);
    let text = match fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(OpenError::NotInitialized {
                dir: dir.to_owned(),
            })
        }
        Err(e) => return Err(StorageError::io(&path, e).into()),
    };
    let bad = |reason: &str| OpenError::BadFormatFile {
        path: path.clone(),
        reason: reason.to_owned(),
    };
    let text = std::str::from_utf8(&text).map_err(|_| bad("not UTF-8 text"))?;
    let version: u32 = text
        .trim_end()
        .strip_prefix(FORMAT_PREFIX)
        .ok_or_else(|| bad("it does not start with `archive-store `"))?
        .parse()
        .map_err(|_| bad("the version is not a number"))?;
    if version > FORMAT_VERSION {
        return Err(OpenError::NewerFormat {
            dir: dir.to_owned(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    if version == 0 {
        return Err(bad("version 0 does not exist"));
    }
    Ok(version)
}

/// Writes a small file atomically and durably: temp name, fsync, rename, fsync the folder.
pub(crate) fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = private::private_file_options().open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, path)?;
    if let Some(parent) = path.parent() {
        fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}
