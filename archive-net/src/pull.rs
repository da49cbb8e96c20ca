//! Taking entries and their content from a peer: the receiving half, used by `sync` for a
//! pull and by the server for an offer (a push from the other side).
//!
//! Whatever the peer does, a pull stays inside fixed bounds:
//! - **Trust**: entries are taken only into collections the peer may write (`--write`), in
//!   either direction; ids on the deny list are never asked for. A peer that may not read
//!   every collection must send content this server already holds but that it may not read
//!   (see `Transfer::missing_content`), so naming a hash neither reveals nor grants anything.
//! - **Space**: free disk space, the store's quota and the peer's own quota and entry cap are
//!   reserved before any byte is asked for, in the node's one ledger (see [`crate::space`]):
//!   entries at [`MAX_ENTRY_CHARGE`] each (settled to their real charge once they arrived),
//!   chunks at their size from the manifest, manifests at the longest a manifest of their file
//!   can be. A blob announced larger than expected is refused before its bytes are read.
//! - **Memory**: the keys still to fetch wait on the store's disk beyond the first few
//!   thousand (`Transfer::queue_keys`); entries are taken a batch at a time, bounded by count
//!   and by bytes, and a batch is not copied on its way through; a file's missing chunks are
//!   listed a page at a time; blob bytes in flight, over every pull of the node, are bounded
//!   by `Limits::fetch_memory`.
//! - **Validity**: signatures are checked as entries are decoded, times against the store's
//!   time rule and file sizes against what this software makes before any content is fetched,
//!   manifests as manifests of their file before they are stored, and each file's content
//!   against its hash before its entry is inserted. Entries that can never be valid are
//!   refused and denied; the rest of the pull goes on.
//!
//! Blobs imported by a pull are kept from `gc` (the transfer's pins) until the entries that
//! refer to them are in. An interrupted pull keeps every batch it inserted and every blob it
//! imported; the next one fetches only what is missing.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use archive_core::sync::SyncKey;
use archive_core::transfer::{check_file_ref, decode_expected, encoded_len, VerifiedBlob};
use archive_core::{
    Certificate, DenyReason, EntryValue, Expected, FileRef, Hash, KeyQueue, MissingBlob, PeerId,
    PeerScope, Refusal, Refused, SignedEntry, TransferError, TransferGuard, MAX_ENTRY_CHARGE,
};
use n0_future::{stream, BufferedStreamExt, FuturesUnordered, StreamExt};
use tokio::io::AsyncWriteExt;

use crate::admission::PeerShare;
use crate::error::NetError;
use crate::node::{peer_id, Counters, Node};
use crate::space::{Reservation, Usage};
use crate::streams::PeerStreams;
use crate::trust::Access;
use crate::wire::{
    read_exact, read_frame, BlobHeader, EntryReply, Request, MAX_CERTIFICATES_PER_REPLY,
    MAX_CONTROL_FRAME, MAX_ENTRY_IDS, MAX_ENTRY_REPLY_FRAME,
};

/// Blobs per request, and bytes per request.
const BLOBS_PER_REQUEST: usize = 1024;
const BYTES_PER_REQUEST: u64 = 16 * 1024 * 1024;
/// Blobs of one request being verified while the next arrives.
const DECODE_AHEAD: usize = 2;
/// Verified blobs waiting for the importer (their memory is held all the while, so the fetch
/// memory bounds them too).
const IMPORT_QUEUE: usize = 256;
/// Most bytes of blobs stored in one transaction.
const IMPORT_GROUP: u64 = 32 * 1024 * 1024;
/// Entries inserted per transaction.
const ENTRIES_PER_INSERT: usize = 4096;
/// Blob bytes are read in pieces this large, each within the timeout.
const READ_PIECE: usize = 256 * 1024;
/// Encoded entries a batch holds at most (plus the requests in flight when it is reached).
const BATCH_ENTRY_BYTES: u64 = 8 * 1024 * 1024;
/// Missing blobs listed, reserved and fetched at a time.
const MISSING_PAGE: usize = 16 * 1024;

/// What a pull did.
#[derive(Debug, Clone, Default)]
pub struct PullReport {
    /// Entries received.
    pub entries_received: u64,
    /// Entries that were new to the store.
    pub entries_new: u64,
    /// Blobs imported.
    pub blobs: u64,
    /// Bytes received (entries and blob encodings).
    pub bytes_received: u64,
    /// Entries on the deny list, not asked for.
    pub denied_skipped: u64,
    /// Entries not asked for because the store took them meanwhile (from another sync of
    /// the same collection).
    pub held_skipped: u64,
    /// Entries received but not inserted, and why.
    pub refused: Vec<Refused>,
    /// Keys the new entries made both a file and a folder (reported; export keeps the first).
    pub conflicts: Vec<archive_core::KeyConflict>,
}

/// What a pull works with, besides the node and the connection.
#[derive(Clone)]
struct Pull<'a> {
    node: &'a Node,
    peer: PeerId,
    /// The peer's read access: content it may not read must come from it.
    read: Access,
    /// Keeps the blobs of the batch being worked on from gc until its entries are stored:
    /// one guard per batch.
    transfer: Arc<TransferGuard>,
    counters: &'a Counters,
    /// The share of the peer this pull works for (taking its offer), whose slots its store
    /// operations take; `None` for a pull this server started.
    share: Option<Arc<PeerShare>>,
}

impl Pull<'_> {
    fn share(&self) -> Option<&PeerShare> {
        self.share.as_deref()
    }
}

impl PullReport {
    /// Adds what another part of the same pull did.
    fn absorb(&mut self, other: PullReport) {
        self.entries_received += other.entries_received;
        self.entries_new += other.entries_new;
        self.blobs += other.blobs;
        self.bytes_received += other.bytes_received;
        self.denied_skipped += other.denied_skipped;
        self.held_skipped += other.held_skipped;
        self.refused.extend(other.refused);
        self.conflicts.extend(other.conflicts);
    }
}

pub(crate) async fn pull<C: PeerStreams>(
    node: &Node,
    conn: &C,
    collection: &str,
    keys: Vec<SyncKey>,
    counters: &Counters,
    share: Option<Arc<PeerShare>>,
) -> Result<PullReport, NetError> {
    let remote = conn.remote_id();
    node.trust
        .check_write(&remote, collection)
        .map_err(NetError::NotAllowed)?;
    // One pull per collection at a time: two that learned the same keys (our sync pulling
    // while the peer's sync offers) would both fetch them. The second waits, then skips
    // what the first took (see `next_keys`).
    let _one_at_a_time = node.pulls.lock(collection).await;
    let read = node
        .trust
        .policy(&remote)
        .map(|p| p.read)
        .unwrap_or_else(|| Access::Only(Default::default()));
    // Each batch has a transfer guard of its own: the blobs fetched for the next batch while
    // one is stored stay pinned when that one lets go of its own.
    let peer = peer_id(&remote);
    let batch_pull = || Pull {
        node,
        peer,
        read: read.clone(),
        transfer: Arc::new(node.store().transfer().begin()),
        counters,
        share: share.clone(),
    };
    let mut report = PullReport::default();
    // The keys wait on the store's disk, not in memory: a first sync of a million entries
    // learns 40 MB of them and takes minutes to fetch them.
    let queue = node
        .reads
        .run(share.as_deref(), move |store| {
            Ok(store.transfer().queue_keys(keys)?)
        })
        .await?;
    let queue = Arc::new(std::sync::Mutex::new(queue));
    let batch_limit = node.limits.pull_batch.max(1);
    // Pipelined: while one batch is stored, the next one's entries are fetched and checked
    // and its content fetched; a batch is stored only once the one before it is.
    let mut ready: Option<Prepared> = None;
    loop {
        let mut prepared_report = PullReport::default();
        let mut stored_report = PullReport::default();
        let store_ready = async {
            match ready.take() {
                Some(batch) => store_batch(batch, &mut stored_report).await,
                None => Ok(()),
            }
        };
        let prepare_next = async {
            let b = batch_pull();
            let Some(keys) = next_keys(&b, &queue, batch_limit, &mut prepared_report).await? else {
                return Ok(None);
            };
            let (entries, held, unasked) =
                fetch_entry_batch(&b, conn, collection, keys, &mut prepared_report).await?;
            lock(&queue).put_back(unasked);
            prepare_batch(b, conn, entries, held, &mut prepared_report)
                .await
                .map(Some)
        };
        let (stored, next) = tokio::join!(store_ready, prepare_next);
        report.absorb(stored_report);
        report.absorb(prepared_report);
        stored?;
        ready = next?;
        if ready.is_none() {
            break;
        }
    }
    Ok(report)
}

/// The next keys to ask for, up to `n` of them, leaving out those on the deny list and those
/// the store holds by now; `None` when the queue is empty.
async fn next_keys(
    p: &Pull<'_>,
    queue: &Arc<std::sync::Mutex<KeyQueue>>,
    n: usize,
    report: &mut PullReport,
) -> Result<Option<Vec<SyncKey>>, NetError> {
    loop {
        let queue = queue.clone();
        let (keys, denied, held) = p
            .node
            .reads
            .run(p.share(), move |store| {
                let mut keys = lock(&queue).take(n)?;
                let denied = store.transfer().drop_denied(&mut keys)?;
                let held = store.transfer().drop_held(&mut keys)?;
                Ok((keys, denied, held))
            })
            .await?;
        report.denied_skipped += denied;
        report.held_skipped += held;
        if !keys.is_empty() {
            return Ok(Some(keys));
        }
        if denied == 0 && held == 0 {
            return Ok(None);
        }
    }
}

/// The queue's lock; a panic while it was held leaves nothing half-done in it.
fn lock(queue: &std::sync::Mutex<KeyQueue>) -> std::sync::MutexGuard<'_, KeyQueue> {
    queue
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A batch whose content is here, waiting for the batch before it to be stored.
struct Prepared<'a> {
    pull: Pull<'a>,
    entries: Vec<SignedEntry>,
    /// What the entries hold in the ledger until they are stored.
    held: Reservation,
}

/// Takes one batch of verified entries through their content: what is left to do is to
/// store them ([`store_batch`]).
async fn prepare_batch<'a, C: PeerStreams>(
    p: Pull<'a>,
    conn: &C,
    entries: Vec<SignedEntry>,
    held: Reservation,
    report: &mut PullReport,
) -> Result<Prepared<'a>, NetError> {
    let node = p.node;
    // Dated past what this store accepts: refused before any content is fetched.
    let limit = node
        .reads
        .run(p.share(), |store| Ok(store.time_limit()))
        .await?;
    let mut entries = entries;
    let late = take_out(&mut entries, |e| e.entry().time > limit);
    report.refused.extend(late.iter().map(|e| Refused {
        id: e.id(),
        reason: Refusal::TooFarAhead {
            time: e.entry().time,
            limit,
        },
    }));
    // A file this software never makes (one blob over the chunking size): invalid for good,
    // before its announced size is used for anything.
    let mut implausible = HashMap::new();
    for e in &entries {
        if let EntryValue::File(f) = e.entry().value {
            if let Err(why) = check_file_ref(&f) {
                implausible.insert(f, why);
            }
        }
    }
    let (entries, invalid) = split_off(entries, &implausible);
    deny(&p, invalid, report).await?;

    let (entries, plan) = node
        .reads
        .run(p.share(), move |store| {
            let plan = store.transfer().fetch_plan(&entries)?;
            Ok::<_, NetError>((entries, plan))
        })
        .await?;
    let files = plan.files;
    let left_out = fetch_content(&p, conn, &files, report).await?;

    // Entries whose content was not taken: left out of this sync.
    let (entries, unfetched) = split_off(entries, &left_out.unfetched);
    report
        .refused
        .extend(unfetched.into_iter().map(|(key, detail)| Refused {
            id: key.id,
            reason: Refusal::Unfetchable { detail },
        }));
    // Entries whose file can never be valid: denied, the rest inserted.
    let (entries, invalid) = split_off(entries, &left_out.invalid);
    deny(&p, invalid, report).await?;
    Ok(Prepared {
        pull: p,
        entries,
        held,
    })
}

/// Stores a prepared batch; its blobs and its room in the ledger are let go of after.
async fn store_batch(batch: Prepared<'_>, report: &mut PullReport) -> Result<(), NetError> {
    let Prepared {
        pull: p,
        entries,
        held,
    } = batch;
    let node = p.node;
    let origin = p.peer;
    let received = node
        .reads
        .run(p.share(), move |store| {
            let mut all = archive_core::Received::default();
            let mut entries = entries;
            for chunk in insert_chunks(&mut entries) {
                let chunk = &entries[chunk];
                let r = store.transfer().insert_received(chunk, Some(&origin))?;
                all.new += r.new;
                all.refused.extend(r.refused);
                all.conflicts.extend(r.conflicts);
            }
            Ok::<_, NetError>(all)
        })
        .await?;
    report.entries_new += received.new;
    report.refused.extend(received.refused);
    report.conflicts.extend(received.conflicts);
    // Stored (or refused): the entries' room is counted by the store now, and their blobs
    // are referenced by them.
    drop(held);
    drop(p);
    Ok(())
}

/// A batch cut into transactions of about [`ENTRIES_PER_INSERT`] entries, in time order,
/// never cutting the entries one batch certificate vouches for apart: the store keeps a
/// certificate only for at least half its ids in one transaction (the rest of its entries
/// would each be checked by their own signature).
fn insert_chunks(entries: &mut [SignedEntry]) -> Vec<std::ops::Range<usize>> {
    entries.sort_by_key(|e| (e.entry().time, e.id()));
    let mut chunks = Vec::new();
    let mut start = 0;
    for i in 1..entries.len() {
        let same_certificate = match (entries[i - 1].certificate(), entries[i].certificate()) {
            (Some(a), Some(b)) => a.id() == b.id(),
            _ => false,
        };
        if i - start >= ENTRIES_PER_INSERT && !same_certificate {
            chunks.push(start..i);
            start = i;
        }
    }
    if start < entries.len() {
        chunks.push(start..entries.len());
    }
    chunks
}

/// Puts entries that can never be valid on the deny list, and reports them.
async fn deny(
    p: &Pull<'_>,
    invalid: Vec<(SyncKey, String)>,
    report: &mut PullReport,
) -> Result<(), NetError> {
    if invalid.is_empty() {
        return Ok(());
    }
    let keys: Vec<SyncKey> = invalid.iter().map(|(key, _)| *key).collect();
    p.node
        .reads
        .run(p.share(), move |store| {
            Ok(store
                .transfer()
                .deny_entries(&keys, DenyReason::InvalidContent)?)
        })
        .await?;
    report
        .refused
        .extend(invalid.into_iter().map(|(key, detail)| Refused {
            id: key.id,
            reason: Refusal::InvalidContent { detail },
        }));
    Ok(())
}

/// Splits off the entries whose file is in `bad` (file -> why its content is not taken).
fn split_off(
    mut entries: Vec<SignedEntry>,
    bad: &HashMap<FileRef, String>,
) -> (Vec<SignedEntry>, Vec<(SyncKey, String)>) {
    if bad.is_empty() {
        return (entries, Vec::new());
    }
    let out = take_out(
        &mut entries,
        |e| matches!(e.entry().value, EntryValue::File(f) if bad.contains_key(&f)),
    )
    .into_iter()
    .map(|e| {
        let EntryValue::File(f) = e.entry().value else {
            unreachable!("only files are taken out")
        };
        (e.sync_key(), bad[&f].clone())
    })
    .collect();
    (entries, out)
}

/// Takes the entries `out` picks out of `entries`, keeping the order of both. The common case,
/// none picked, copies nothing: a batch is the largest thing a pull holds.
fn take_out(
    entries: &mut Vec<SignedEntry>,
    out: impl Fn(&SignedEntry) -> bool,
) -> Vec<SignedEntry> {
    if !entries.iter().any(&out) {
        return Vec::new();
    }
    let (taken, kept) = std::mem::take(entries).into_iter().partition(out);
    *entries = kept;
    taken
}

/// Files whose content a batch could not take, and why.
#[derive(Debug, Default)]
struct LeftOut {
    /// A manifest that is not a valid manifest of its file: every entry naming the file is
    /// invalid for good.
    invalid: HashMap<FileRef, String>,
    /// A manifest the peer announced too long: not read; the entries are left out of this
    /// sync only.
    unfetched: HashMap<FileRef, String>,
}

/// Fetches what `files` lack: their missing manifests first (each checked as a manifest of its
/// file), then their missing chunks, a page at a time, each page reserved before it is asked
/// for. Returns the files left out, with why.
async fn fetch_content<C: PeerStreams>(
    p: &Pull<'_>,
    conn: &C,
    files: &[FileRef],
    report: &mut PullReport,
) -> Result<LeftOut, NetError> {
    let node = p.node;
    let mut left_out = LeftOut::default();
    // Manifests: their size is unknown until the peer says, so the longest a manifest of
    // their file can be is reserved.
    let (firsts, bad) = missing_pages(p, files).await?;
    left_out.invalid.extend(bad);
    let manifests: Vec<MissingBlob> = firsts
        .into_iter()
        .filter(|m| matches!(m.expected, Expected::ManifestOf(_)))
        .collect();
    // Verdicts by manifest hash, for every file that names one of them.
    let mut bad_manifests: HashMap<Hash, String> = HashMap::new();
    let mut unread_manifests: HashMap<Hash, String> = HashMap::new();
    for page in manifests.chunks(MISSING_PAGE) {
        let reserved: u64 = page
            .iter()
            .map(|m| m.expected.max_size())
            .fold(0, u64::saturating_add);
        let mut room = Reservation::new(node.ledger.clone(), p.peer);
        room.take(reserved, 0, &Usage::read(node, p.peer).await?)?;
        let outcome = fetch_blobs(p, conn, page.to_vec(), report).await?;
        drop(room);
        bad_manifests.extend(outcome.bad_manifests);
        unread_manifests.extend(outcome.oversized);
    }
    for f in files {
        let Some(m) = f.manifest else { continue };
        if let Some(why) = bad_manifests.get(&m) {
            left_out.invalid.insert(*f, why.clone());
        } else if let Some(why) = unread_manifests.get(&m) {
            left_out.unfetched.insert(*f, why.clone());
        }
    }
    let good: Vec<FileRef> = files
        .iter()
        .filter(|f| !left_out.invalid.contains_key(f) && !left_out.unfetched.contains_key(f))
        .copied()
        .collect();
    // Chunks (and whole small files): pages of missing blobs across the files.
    let mut cursor = PageCursor::new(good);
    loop {
        let page = cursor.next_page(p).await?;
        left_out.invalid.extend(std::mem::take(&mut cursor.invalid));
        if page.is_empty() {
            break;
        }
        if let Some(m) = page
            .iter()
            .find(|m| matches!(m.expected, Expected::ManifestOf(_)))
        {
            return Err(NetError::Protocol(format!(
                "the peer did not send manifest {}",
                m.hash
            )));
        }
        let needed: u64 = page
            .iter()
            .map(|m| m.expected.max_size())
            .fold(0, u64::saturating_add);
        let mut room = Reservation::new(node.ledger.clone(), p.peer);
        room.take(needed, 0, &Usage::read(node, p.peer).await?)?;
        Counters::add(&p.counters.bytes_expected, needed);
        fetch_blobs(p, conn, page, report).await?;
        // Imported and counted by the store now.
        drop(room);
    }
    Ok(left_out)
}

/// The scope content is judged in for this peer (see `Transfer::missing_content`).
fn with_scope<T>(
    read: &Access,
    transfer: &TransferGuard,
    f: impl FnOnce(Option<&PeerScope<'_>>) -> T,
) -> T {
    match read {
        Access::All => f(None),
        Access::Only(_) => {
            let allows = |c: &str| read.allows(c);
            f(Some(&PeerScope {
                may_read: &allows,
                transfer,
            }))
        }
    }
}

/// The first missing blob of each file (a missing manifest shows up alone), and the files
/// whose stored manifest does not describe them (invalid).
async fn missing_pages(
    p: &Pull<'_>,
    files: &[FileRef],
) -> Result<(Vec<MissingBlob>, HashMap<FileRef, String>), NetError> {
    let files = files.to_vec();
    let (read, transfer) = (p.read.clone(), p.transfer.clone());
    p.node
        .reads
        .run(p.share(), move |store| {
            let mut out = Vec::new();
            let mut invalid = HashMap::new();
            let mut seen = HashSet::new();
            let snapshot = store.transfer().content_snapshot()?;
            for f in &files {
                let page = with_scope(&read, &transfer, |scope| {
                    snapshot.missing_content(f, 0, 1, scope)
                });
                match page {
                    Ok(page) => out.extend(page.blobs.into_iter().filter(|m| seen.insert(m.hash))),
                    Err(TransferError::BadManifest { detail, .. }) => {
                        invalid.insert(*f, detail);
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Ok((out, invalid))
        })
        .await
}

/// Walks the missing blobs of many files a page at a time.
struct PageCursor {
    files: VecDeque<FileRef>,
    /// The chunk the current (first) file continues from.
    from: u64,
    seen: HashSet<Hash>,
    /// Files found invalid on the way (a stored manifest that does not describe them).
    invalid: HashMap<FileRef, String>,
}

impl PageCursor {
    fn new(files: Vec<FileRef>) -> Self {
        PageCursor {
            files: files.into(),
            from: 0,
            seen: HashSet::new(),
            invalid: HashMap::new(),
        }
    }

    /// Up to [`MISSING_PAGE`] missing blobs, each once; empty when all is here.
    async fn next_page(&mut self, p: &Pull<'_>) -> Result<Vec<MissingBlob>, NetError> {
        let (read, transfer) = (p.read.clone(), p.transfer.clone());
        let mut files = std::mem::take(&mut self.files);
        let mut from = self.from;
        let mut seen = std::mem::take(&mut self.seen);
        let (page, files, from, seen, invalid) = p
            .node
            .reads
            .run(p.share(), move |store| {
                let mut page = Vec::new();
                let mut invalid = HashMap::new();
                let snapshot = store.transfer().content_snapshot()?;
                while let Some(f) = files.front().copied() {
                    let room = MISSING_PAGE - page.len();
                    let part = with_scope(&read, &transfer, |scope| {
                        snapshot.missing_content(&f, from, room, scope)
                    });
                    let part = match part {
                        Ok(part) => part,
                        Err(TransferError::BadManifest { detail, .. }) => {
                            invalid.insert(f, detail);
                            files.pop_front();
                            from = 0;
                            continue;
                        }
                        Err(e) => return Err(e.into()),
                    };
                    page.extend(part.blobs.into_iter().filter(|m| seen.insert(m.hash)));
                    match part.next {
                        Some(n) => {
                            from = n;
                            break;
                        }
                        None => {
                            files.pop_front();
                            from = 0;
                        }
                    }
                    if page.len() >= MISSING_PAGE {
                        break;
                    }
                }
                // Memory: the set of hashes seen only needs the current page's worth.
                if seen.len() > 4 * MISSING_PAGE {
                    seen.clear();
                }
                Ok((page, files, from, seen, invalid))
            })
            .await?;
        self.files = files;
        self.from = from;
        self.seen = seen;
        self.invalid.extend(invalid);
        Ok(page)
    }
}

/// Fetches entries for one batch, taking ids off the end of `ids`: a few `GetEntries`
/// requests in flight, each reserved at the largest charge an entry can have, until the batch
/// holds `Limits::pull_batch` entries or [`BATCH_ENTRY_BYTES`]. Returns them with what they
/// hold in the ledger (their real charge), to give back once they are stored.
async fn fetch_entry_batch<C: PeerStreams>(
    p: &Pull<'_>,
    conn: &C,
    collection: &str,
    mut keys: Vec<SyncKey>,
    report: &mut PullReport,
) -> Result<(Vec<SignedEntry>, Reservation, Vec<SyncKey>), NetError> {
    let node = p.node;
    let t = node.limits.timeout;
    let mut held = Reservation::new(node.ledger.clone(), p.peer);
    // Requests in flight, polled in this task (each one's reservation is taken as it starts,
    // so this is not a plain buffered stream).
    let mut tasks = FuturesUnordered::new();
    // Room for every entry asked for, at once: growing by doubling would hold up to twice that.
    let mut entries: Vec<SignedEntry> = Vec::with_capacity(keys.len());
    let mut asked = 0usize;
    let mut bytes = 0u64;
    let batch_limit = node.limits.pull_batch.max(1);
    loop {
        while tasks.len() < node.limits.parallel_fetches.max(1)
            && !keys.is_empty()
            && asked < batch_limit
            && bytes < BATCH_ENTRY_BYTES
        {
            let want = MAX_ENTRY_IDS.min(keys.len()).min(batch_limit - asked);
            let now = Usage::read(node, p.peer).await?;
            let n = held.entries_that_fit(want, &now);
            if n == 0 {
                if tasks.is_empty() && entries.is_empty() {
                    return Err(held.full(&now));
                }
                break;
            }
            held.take(n as u64 * MAX_ENTRY_CHARGE, n as u64, &now)?;
            let request: Vec<SyncKey> = keys.drain(..n).collect();
            asked += n;
            tasks.push(fetch_entries(
                conn,
                &node.reads,
                collection.to_owned(),
                request,
                t,
            ));
        }
        let Some(done) = tasks.next().await else {
            break;
        };
        let (got, wire_bytes, asked_for) = done?;
        let charged: u64 = got.iter().map(SignedEntry::storage_charge).sum();
        held.give_back(
            asked_for as u64 * MAX_ENTRY_CHARGE - charged,
            (asked_for - got.len()) as u64,
        );
        bytes += wire_bytes;
        report.entries_received += got.len() as u64;
        report.bytes_received += wire_bytes;
        Counters::add(&p.counters.entries_received, got.len() as u64);
        p.counters
            .add_paced(&p.counters.bytes_received, wire_bytes)
            .await;
        entries.extend(got);
    }
    Ok((entries, held, keys))
}

/// One `GetEntries` request: the entries (signatures and names checked), the bytes they took
/// and how many were asked for.
async fn fetch_entries<C: PeerStreams>(
    conn: &C,
    reads: &crate::node::StoreReads,
    collection: String,
    batch: Vec<SyncKey>,
    t: std::time::Duration,
) -> Result<(Vec<SignedEntry>, u64, usize), NetError> {
    let (mut send, mut recv) = conn.open_bi().await?;
    let request = Request::GetEntries {
        collection: collection.clone(),
        keys: batch.clone(),
    };
    crate::wire::write_frame_within(&mut send, &request, t).await?;
    let _ = send.shutdown().await;
    let mut raw: Vec<Vec<u8>> = Vec::with_capacity(batch.len());
    let mut raw_certificates: Vec<Vec<u8>> = Vec::new();
    let mut answers = 0usize;
    loop {
        let reply: EntryReply = read_frame(&mut recv, MAX_ENTRY_REPLY_FRAME, t).await?;
        if let EntryReply::Certificate(bytes) = reply {
            if raw_certificates.len() == MAX_CERTIFICATES_PER_REPLY {
                return Err(NetError::Protocol(format!(
                    "sent more than {MAX_CERTIFICATES_PER_REPLY} certificates for one request"
                )));
            }
            if !raw.is_empty() {
                return Err(NetError::Protocol(
                    "sent a certificate after entries".into(),
                ));
            }
            raw_certificates.push(bytes);
            continue;
        }
        if !matches!(reply, EntryReply::End | EntryReply::Refused(_)) {
            // One answer per id asked: no more (a peer could otherwise keep the stream going).
            answers += 1;
            if answers > batch.len() {
                return Err(NetError::Protocol(
                    "sent more answers than ids asked".into(),
                ));
            }
        }
        match reply {
            EntryReply::Entry(bytes) => raw.push(bytes),
            EntryReply::Missing(id) => {
                tracing::debug!("peer lacks entry {id}");
            }
            EntryReply::End => break,
            EntryReply::Refused(why) => return Err(NetError::Refused(why)),
            EntryReply::Certificate(_) => unreachable!("taken above"),
        }
    }
    reads
        .run(None, move |_| {
            let asked = batch.len();
            let mut wanted: HashSet<SyncKey> = batch.into_iter().collect();
            let bytes = raw
                .iter()
                .chain(&raw_certificates)
                .map(|b| b.len() as u64)
                .sum();
            // One strict signature check per certificate instead of one per entry it lists.
            let certificates = raw_certificates
                .iter()
                .map(|b| Certificate::decode(b).map(Arc::new))
                .collect::<Result<Vec<_>, _>>()?;
            let mut entries = Vec::with_capacity(raw.len());
            for bytes in &raw {
                let e = SignedEntry::decode_vouched(bytes, &certificates)?;
                if !wanted.remove(&e.sync_key()) {
                    return Err(NetError::Protocol(format!(
                        "sent entry {} that was not asked for (or twice, or of another time)",
                        e.id()
                    )));
                }
                if e.entry().collection != collection {
                    return Err(NetError::Protocol(format!(
                        "sent entry {} of collection `{}` for `{collection}`",
                        e.id(),
                        e.entry().collection
                    )));
                }
                entries.push(e);
            }
            Ok((entries, bytes, asked))
        })
        .await
}

/// What fetching a list of blobs gave.
#[derive(Debug, Default)]
struct Fetched {
    /// Bytes of the blobs received (decoded sizes).
    bytes: u64,
    /// Manifests that arrived intact but are not valid manifests of their file: hash -> why.
    bad_manifests: Vec<(Hash, String)>,
    /// Manifests the peer announced longer than any manifest of their file: not read.
    oversized: Vec<(Hash, String)>,
}

/// Fetches `wanted` with a few requests in flight; their verified blobs are stored by one
/// importer as they come, so no request stops receiving while blobs are written.
async fn fetch_blobs<C: PeerStreams>(
    p: &Pull<'_>,
    conn: &C,
    wanted: Vec<MissingBlob>,
    report: &mut PullReport,
) -> Result<Fetched, NetError> {
    let (node, counters) = (p.node, p.counters);
    let mut requests: Vec<Vec<MissingBlob>> = Vec::new();
    let mut bytes = 0;
    for m in wanted {
        let size = m.expected.max_size();
        // A manifest goes alone: if the peer announces it longer than any manifest of its
        // file, that request is dropped without reading it and the others go on.
        let alone = |r: &Vec<MissingBlob>| {
            matches!(m.expected, Expected::ManifestOf(_))
                || r.iter()
                    .any(|x| matches!(x.expected, Expected::ManifestOf(_)))
        };
        match requests.last_mut() {
            Some(r)
                if r.len() < BLOBS_PER_REQUEST
                    && bytes + size <= BYTES_PER_REQUEST
                    && !alone(r) =>
            {
                r.push(m);
                bytes += size;
            }
            _ => {
                requests.push(vec![m]);
                bytes = size;
            }
        }
    }
    // Progress of the requests in flight, moved into `counters` and `report` as they finish.
    let shared = Counters::sharing_pace(counters);
    let memory = node.fetch_memory.clone();
    let mut fetched = Fetched::default();
    let to = Into {
        transfer: p.transfer.clone(),
        origin: p.peer,
        share: p.share.clone(),
    };
    let (shared, memory, to) = (&shared, &memory, &to);
    // Never more in flight than there are requests: the stream sizes its buffer by this, and
    // a limit of `usize::MAX` ("unlimited") must not become an allocation of that size.
    let in_flight = node.limits.parallel_fetches.clamp(1, requests.len().max(1));
    let (imports, arriving) = tokio::sync::mpsc::channel(IMPORT_QUEUE);
    let progress = &mut *report;
    let fetching = async move {
        // Dropped when every request is done: the importer then stores what is left and ends.
        let imports = imports;
        let mut requests = stream::iter(requests)
            .map(|request| fetch_request(node, conn, request, shared, memory, &imports))
            .buffered_unordered(in_flight);
        while let Some(done) = requests.next().await {
            let one = done?;
            fetched.bytes += one.bytes;
            fetched.bad_manifests.extend(one.bad_manifests);
            fetched.oversized.extend(one.oversized);
            sync_counters(shared, counters, progress);
        }
        Ok::<_, NetError>(fetched)
    };
    let (fetched, ()) = tokio::try_join!(fetching, import_arriving(node, arriving, to))?;
    sync_counters(shared, counters, report);
    Ok(fetched)
}

/// Stores verified blobs as they arrive: each transaction takes every blob that arrived while
/// the last one was written (up to [`IMPORT_GROUP`] bytes), so the slower the disk, the
/// larger and fewer the transactions, and the requests never wait for a write unless the
/// fetch memory is all held by blobs waiting for one.
async fn import_arriving(
    node: &Node,
    mut arriving: tokio::sync::mpsc::Receiver<(VerifiedBlob, Held)>,
    to: &Into,
) -> Result<(), NetError> {
    let mut group: Vec<(VerifiedBlob, Held)> = Vec::new();
    while let Some(first) = arriving.recv().await {
        let mut bytes = first.0.size();
        group.push(first);
        while bytes < IMPORT_GROUP {
            match arriving.try_recv() {
                Ok(next) => {
                    bytes += next.0.size();
                    group.push(next);
                }
                Err(_) => break,
            }
        }
        import(node, &mut group, to).await?;
    }
    Ok(())
}

/// Moves the per-fetch totals into the caller's counters and report.
fn sync_counters(shared: &Counters, counters: &Counters, report: &mut PullReport) {
    use std::sync::atomic::Ordering::Relaxed;
    let bytes = shared.bytes_received.swap(0, Relaxed);
    let blobs = shared.blobs_received.swap(0, Relaxed);
    Counters::add(&counters.bytes_received, bytes);
    report.bytes_received += bytes;
    report.blobs += blobs;
}

/// Where fetched blobs go: the transfer that keeps them from gc, and the peer they count for.
struct Into {
    transfer: Arc<TransferGuard>,
    origin: PeerId,
    /// Whose slots the import takes (see [`Pull::share`]).
    share: Option<Arc<PeerShare>>,
}

/// The memory budget of blob fetches, shared by every request of every pull of a node:
/// permits are bytes. A blob's encoding and its decoded copy are both counted while both
/// exist; the encoding's share is given back once it is verified, the rest once the blob is
/// stored.
#[derive(Debug, Clone)]
pub(crate) struct FetchMemory {
    bytes: Arc<tokio::sync::Semaphore>,
    total: usize,
}

/// Bytes a fetch holds for one blob, and how many of them are its encoding.
struct Held {
    permit: tokio::sync::OwnedSemaphorePermit,
    encoding: usize,
}

impl FetchMemory {
    pub(crate) fn new(total: usize) -> Self {
        let total = total.clamp(1, u32::MAX as usize);
        FetchMemory {
            bytes: Arc::new(tokio::sync::Semaphore::new(total)),
            total,
        }
    }

    /// Room for a blob of `size` bytes now, if there is.
    fn try_hold(&self, size: u64) -> Option<Held> {
        let (need, encoding) = self.need(size);
        let permit = self.bytes.clone().try_acquire_many_owned(need).ok()?;
        Some(Held { permit, encoding })
    }

    /// Room for a blob of `size` bytes, once there is.
    async fn hold(&self, size: u64) -> Held {
        let (need, encoding) = self.need(size);
        let permit = (self.bytes.clone().acquire_many_owned(need).await)
            .expect("the semaphore is never closed");
        Held { permit, encoding }
    }

    /// Permits for a blob (its encoding plus its decoded copy, at most the whole budget) and
    /// the encoding's share of them.
    fn need(&self, size: u64) -> (u32, usize) {
        let encoding = usize::try_from(encoded_len(size)).unwrap_or(usize::MAX);
        let need = encoding
            .saturating_add(usize::try_from(size).unwrap_or(usize::MAX))
            .min(self.total);
        (need as u32, encoding.min(need))
    }
}

impl Held {
    /// The blob is verified: its encoding is gone, give its share back.
    fn verified(&mut self) {
        drop(self.permit.split(self.encoding));
        self.encoding = 0;
    }
}

type Verifying = tokio::task::JoinHandle<Result<VerifiedBlob, TransferError>>;

async fn fetch_request<C: PeerStreams>(
    node: &Node,
    conn: &C,
    request: Vec<MissingBlob>,
    counters: &Counters,
    memory: &FetchMemory,
    imports: &tokio::sync::mpsc::Sender<(VerifiedBlob, Held)>,
) -> Result<Fetched, NetError> {
    let t = node.limits.timeout;
    let (mut send, mut recv) = conn.open_bi().await?;
    let hashes = request.iter().map(|m| m.hash).collect();
    crate::wire::write_frame_within(&mut send, &Request::GetBlobs { hashes }, t).await?;
    let _ = send.shutdown().await;
    let mut fetched = Fetched::default();
    let mut decoding: VecDeque<(Verifying, Held)> = VecDeque::with_capacity(DECODE_AHEAD);
    for m in &request {
        let header: BlobHeader = read_frame(&mut recv, MAX_CONTROL_FRAME, t).await?;
        let size = match header {
            BlobHeader::Found { size } => size,
            BlobHeader::Missing => {
                return Err(NetError::Protocol(format!(
                    "the peer lacks blob {} that one of its entries needs",
                    m.hash
                )))
            }
            BlobHeader::Refused(why) => return Err(NetError::Refused(why)),
        };
        // Refused before a byte of it is read: a size other than the manifest's, or a
        // manifest longer than any manifest of its file.
        let fits = size <= archive_core::transfer::MAX_TRANSFER_BLOB
            && match m.expected {
                Expected::Size(n) => size == n,
                Expected::ManifestOf(_) => size <= m.expected.max_size(),
            };
        if !fits {
            let why = format!(
                "the peer announced {size} bytes for blob {} ({})",
                m.hash,
                match m.expected {
                    Expected::Size(n) => format!("{n} expected"),
                    Expected::ManifestOf(f) => format!(
                        "a manifest of a {}-byte file has at most {}",
                        f.size,
                        m.expected.max_size()
                    ),
                }
            );
            if let (Expected::ManifestOf(_), 1) = (m.expected, request.len()) {
                // Not read: the stream is dropped, the files it names are left out.
                C::stop(&mut recv);
                fetched.oversized.push((m.hash, why));
                return Ok(fetched);
            }
            return Err(NetError::Protocol(why));
        }
        let held = match memory.try_hold(size) {
            Some(held) => held,
            None => {
                // Hand over what this request holds before waiting, so that no request
                // waits while holding memory that the importer could give back.
                while let Some(task) = decoding.pop_front() {
                    take_decoded(task, counters, imports, &mut fetched).await?;
                }
                memory.hold(size).await
            }
        };
        let mut encoded = vec![0u8; encoded_len(size) as usize];
        for piece in encoded.chunks_mut(READ_PIECE) {
            read_exact(&mut recv, piece, t).await?;
            counters
                .add_paced(&counters.bytes_received, piece.len() as u64)
                .await;
        }
        // Verify on a worker while the next blob arrives.
        if decoding.len() >= DECODE_AHEAD {
            let task = decoding.pop_front().expect("not empty");
            take_decoded(task, counters, imports, &mut fetched).await?;
        }
        let wanted = *m;
        let task = tokio::task::spawn_blocking(move || decode_expected(&wanted, size, &encoded));
        decoding.push_back((task, held));
    }
    while let Some(task) = decoding.pop_front() {
        take_decoded(task, counters, imports, &mut fetched).await?;
    }
    let _ = send.shutdown().await;
    Ok(fetched)
}

/// Stores verified blobs (in one transaction) and gives their memory back.
async fn import(
    node: &Node,
    verified: &mut Vec<(VerifiedBlob, Held)>,
    to: &Into,
) -> Result<(), NetError> {
    if verified.is_empty() {
        return Ok(());
    }
    let (blobs, held): (Vec<VerifiedBlob>, Vec<Held>) =
        std::mem::take(verified).into_iter().unzip();
    let (transfer, origin) = (to.transfer.clone(), to.origin);
    node.reads
        .run(to.share.as_deref(), move |store| {
            Ok(store
                .transfer()
                .import_blobs(blobs, &transfer, Some(&origin))?)
        })
        .await?;
    drop(held);
    Ok(())
}

/// The result of a blob's verification on a worker: a verified blob handed to the importer,
/// or a manifest that is no manifest of its file (recorded; the pull goes on without that
/// file).
async fn take_decoded(
    (task, mut held): (Verifying, Held),
    counters: &Counters,
    imports: &tokio::sync::mpsc::Sender<(VerifiedBlob, Held)>,
    fetched: &mut Fetched,
) -> Result<(), NetError> {
    let result = task.await.map_err(NetError::worker)?;
    match result {
        Ok(blob) => {
            held.verified();
            Counters::add(&counters.blobs_received, 1);
            fetched.bytes += blob.size();
            // A closed queue means the importer failed; its error is the fetch's (the
            // `try_join!` in `fetch_blobs` returns it and drops the requests).
            let _ = imports.send((blob, held)).await;
            Ok(())
        }
        Err(TransferError::BadManifest { hash, detail, .. }) => {
            fetched.bad_manifests.push((hash, detail));
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}
