//! Taking entries and their content from a peer: the receiving half, used by `sync` for a
//! pull and by the server for an offer (a push from the other side).
//!
//! Whatever the peer does, a pull stays inside fixed bounds:
//! - **Trust**: entries are taken only into collections the peer may write (`--write`), in
//!   either direction; ids on the deny list are never asked for.
//! - **Space**: free disk space, the store's quota and the peer's own quota and entry cap are
//!   reserved *before* any byte is fetched: entries at [`MAX_ENTRY_CHARGE`] each (settled to
//!   their real charge once they arrived), chunks at their size from the manifest, manifests
//!   at the longest a manifest of their file can be. A blob announced larger than expected is
//!   refused before its bytes are read.
//! - **Memory**: entries are taken a batch at a time, bounded by count and by bytes; a file's
//!   missing chunks are listed a page at a time; blob bytes in flight are bounded by
//!   `Limits::fetch_memory`.
//! - **Validity**: signatures are checked as entries are decoded, times against the store's
//!   time rule before any content is fetched, manifests as manifests of their file before they
//!   are stored, and each file's content against its hash before its entry is inserted.
//!   Entries that can never be valid are refused and denied; the rest of the pull goes on.
//!
//! An interrupted pull keeps every batch it inserted and every blob it imported; the next one
//! fetches only what is missing.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use archive_core::transfer::{decode_expected, encoded_len, VerifiedBlob};
use archive_core::{
    DenyReason, EntryValue, Expected, FileRef, Hash, MissingBlob, PublicKey, Refusal, Refused,
    SignedEntry, TransferError, MAX_ENCODED_ENTRY, MAX_ENTRY_CHARGE,
};
use tokio::io::AsyncWriteExt;

use crate::error::NetError;
use crate::node::{peer_key, Counters, Node};
use crate::streams::PeerStreams;
use crate::wire::{
    read_exact, read_frame, BlobHeader, EntryReply, Request, MAX_CONTROL_FRAME, MAX_ENTRY_IDS,
};

/// Blobs per request, and bytes per request (a request's blobs are imported together).
const BLOBS_PER_REQUEST: usize = 1024;
const BYTES_PER_REQUEST: u64 = 16 * 1024 * 1024;
/// Blobs of one request being verified while the next arrives.
const DECODE_AHEAD: usize = 2;
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
    /// Entries received but not inserted, and why.
    pub refused: Vec<Refused>,
    /// Keys the new entries made both a file and a folder (reported; export keeps the first).
    pub conflicts: Vec<archive_core::KeyConflict>,
}

pub(crate) async fn pull<C: PeerStreams>(
    node: &Node,
    conn: &C,
    collection: &str,
    mut ids: Vec<[u8; 32]>,
    counters: &Counters,
) -> Result<PullReport, NetError> {
    let peer = conn.remote_id();
    node.trust
        .check_write(&peer, collection)
        .map_err(NetError::NotAllowed)?;
    let _guard = node.store.begin_transfer();
    let mut report = PullReport::default();
    let store = node.store.clone();
    let (kept, denied) = node
        .reads
        .run(move || {
            let denied = store.drop_denied(&mut ids)?;
            Ok((ids, denied))
        })
        .await?;
    let mut ids = kept;
    report.denied_skipped = denied;
    let mut space = SpaceCheck::new(node, &peer_key(&peer)).await?;
    while !ids.is_empty() {
        let entries = fetch_entry_batch(
            node,
            conn,
            collection,
            &mut ids,
            counters,
            &mut space,
            &mut report,
        )
        .await?;
        // Ids taken off the end of the list give their memory back: the list of a large
        // first sync (32 MB for a million entries) shrinks as the pull goes.
        ids.shrink_to_fit();
        take_batch(node, conn, entries, counters, &mut space, &mut report).await?;
    }
    Ok(report)
}

/// Takes one batch of verified entries through content and insertion.
async fn take_batch<C: PeerStreams>(
    node: &Node,
    conn: &C,
    entries: Vec<SignedEntry>,
    counters: &Counters,
    space: &mut SpaceCheck,
    report: &mut PullReport,
) -> Result<(), NetError> {
    // Dated past what this store accepts: refused before any content is fetched.
    let limit = node.store.time_limit();
    let (entries, late): (Vec<SignedEntry>, Vec<SignedEntry>) =
        entries.into_iter().partition(|e| e.entry().time <= limit);
    report.refused.extend(late.iter().map(|e| Refused {
        id: e.id(),
        reason: Refusal::TooFarAhead {
            time: e.entry().time,
            limit,
        },
    }));

    let store = node.store.clone();
    let (entries, needs) = node
        .reads
        .run(move || {
            let needs = store.needs_content(&entries)?;
            Ok::<_, NetError>((entries, needs))
        })
        .await?;
    let mut files: Vec<FileRef> = Vec::new();
    let mut seen = HashSet::new();
    for (e, needs) in entries.iter().zip(&needs) {
        if let (true, EntryValue::File(f)) = (needs, e.entry().value) {
            if seen.insert(f) {
                files.push(f);
            }
        }
    }

    let left_out = fetch_content(node, conn, &files, counters, space, report).await?;

    // Entries whose content was not taken: left out of this sync.
    let (entries, needs, unfetched) = split_off(entries, needs, &left_out.unfetched);
    report
        .refused
        .extend(unfetched.into_iter().map(|(id, detail)| Refused {
            id,
            reason: Refusal::Unfetchable { detail },
        }));
    // Entries whose file can never be valid: denied, the rest inserted.
    let (entries, needs, invalid) = split_off(entries, needs, &left_out.invalid);
    if !invalid.is_empty() {
        let ids: Vec<Hash> = invalid.iter().map(|(id, _)| *id).collect();
        let store = node.store.clone();
        node.reads
            .run(move || Ok(store.deny_entries(&ids, DenyReason::InvalidContent)?))
            .await?;
        report
            .refused
            .extend(invalid.into_iter().map(|(id, detail)| Refused {
                id,
                reason: Refusal::InvalidContent { detail },
            }));
    }
    let store = node.store.clone();
    let origin = peer_key(&conn.remote_id());
    let received = node
        .reads
        .run(move || {
            let mut all = archive_core::Received::default();
            for (chunk, flags) in entries
                .chunks(ENTRIES_PER_INSERT)
                .zip(needs.chunks(ENTRIES_PER_INSERT))
            {
                let r = store.insert_received(chunk, flags, Some(&origin))?;
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
    Ok(())
}

/// Entries with their "needs content" flags, and those refused with why.
type Split = (Vec<SignedEntry>, Vec<bool>, Vec<(Hash, String)>);

/// Splits off the entries whose file is in `bad` (file -> why its content was not taken).
fn split_off(entries: Vec<SignedEntry>, needs: Vec<bool>, bad: &HashMap<FileRef, String>) -> Split {
    if bad.is_empty() {
        return (entries, needs, Vec::new());
    }
    let mut keep = Vec::with_capacity(entries.len());
    let mut keep_needs = Vec::with_capacity(needs.len());
    let mut invalid = Vec::new();
    for (e, n) in entries.into_iter().zip(needs) {
        match e.entry().value {
            EntryValue::File(f) if bad.contains_key(&f) => {
                invalid.push((e.id(), bad[&f].clone()));
            }
            _ => {
                keep.push(e);
                keep_needs.push(n);
            }
        }
    }
    (keep, keep_needs, invalid)
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
    node: &Node,
    conn: &C,
    files: &[FileRef],
    counters: &Counters,
    space: &mut SpaceCheck,
    report: &mut PullReport,
) -> Result<LeftOut, NetError> {
    let mut left_out = LeftOut::default();
    // Manifests: their size is unknown until the peer says, so the longest a manifest of
    // their file can be is reserved.
    let first = missing_pages(node, files, true).await?;
    let manifests: Vec<MissingBlob> = first
        .into_iter()
        .filter(|m| matches!(m.expected, Expected::ManifestOf(_)))
        .collect();
    for page in manifests.chunks(MISSING_PAGE) {
        let reserved: u64 = page.iter().map(|m| m.expected.max_size()).sum();
        space.reserve(node, reserved, 0)?;
        let outcome = fetch_blobs(node, conn, page.to_vec(), counters, report).await?;
        space.release(reserved.saturating_sub(outcome.bytes), 0);
        let file_of = |hash: Hash| {
            page.iter()
                .find(|m| m.hash == hash)
                .and_then(|m| match m.expected {
                    Expected::ManifestOf(file) => Some(file),
                    Expected::Size(_) => None,
                })
        };
        for (manifest, detail) in outcome.bad_manifests {
            if let Some(file) = file_of(manifest) {
                left_out.invalid.insert(file, detail);
            }
        }
        for (manifest, detail) in outcome.oversized {
            if let Some(file) = file_of(manifest) {
                left_out.unfetched.insert(file, detail);
            }
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
        let page = cursor.next_page(node).await?;
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
        let needed: u64 = page.iter().map(|m| m.expected.max_size()).sum();
        space.reserve(node, needed, 0)?;
        Counters::add(&counters.bytes_expected, needed);
        let outcome = fetch_blobs(node, conn, page, counters, report).await?;
        space.release(needed.saturating_sub(outcome.bytes), 0);
    }
    Ok(left_out)
}

/// The first page of what each file lacks (a missing manifest shows up alone).
async fn missing_pages(
    node: &Node,
    files: &[FileRef],
    first_only: bool,
) -> Result<Vec<MissingBlob>, NetError> {
    let store = node.store.clone();
    let files = files.to_vec();
    node.reads
        .run(move || {
            let mut out = Vec::new();
            let mut seen = HashSet::new();
            for f in &files {
                let page =
                    store.missing_content(f, 0, if first_only { 1 } else { MISSING_PAGE })?;
                out.extend(page.blobs.into_iter().filter(|m| seen.insert(m.hash)));
            }
            Ok(out)
        })
        .await
}

/// Walks the missing blobs of many files a page at a time.
struct PageCursor {
    files: VecDeque<FileRef>,
    /// The chunk the current (first) file continues from.
    from: u64,
    seen: HashSet<Hash>,
}

impl PageCursor {
    fn new(files: Vec<FileRef>) -> Self {
        PageCursor {
            files: files.into(),
            from: 0,
            seen: HashSet::new(),
        }
    }

    /// Up to [`MISSING_PAGE`] missing blobs, each once; empty when all is here.
    async fn next_page(&mut self, node: &Node) -> Result<Vec<MissingBlob>, NetError> {
        let store = node.store.clone();
        let mut files = std::mem::take(&mut self.files);
        let mut from = self.from;
        let mut seen = std::mem::take(&mut self.seen);
        let (page, files, from, seen) = node
            .reads
            .run(move || {
                let mut page = Vec::new();
                while let Some(f) = files.front() {
                    let room = MISSING_PAGE - page.len();
                    let part = store.missing_content(f, from, room)?;
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
                Ok((page, files, from, seen))
            })
            .await?;
        self.files = files;
        self.from = from;
        self.seen = seen;
        Ok(page)
    }
}

/// Free disk space, the store's quota, and the peer's quota and entry cap: reserved before a
/// fetch, released for what it did not use.
struct SpaceCheck {
    /// Bytes the store's quota still allows; `None` without a quota.
    quota_left: Option<u64>,
    /// Bytes the peer's quota still allows.
    peer_bytes_left: Option<u64>,
    /// Entries the peer may still bring.
    peer_entries_left: Option<u64>,
}

impl SpaceCheck {
    async fn new(node: &Node, peer: &PublicKey) -> Result<Self, NetError> {
        let (store, peer, limits) = (node.store.clone(), *peer, node.limits);
        node.reads
            .run(move || {
                let quota_left = match limits.max_store_bytes {
                    Some(quota) => Some(quota.saturating_sub(store.quota_used()?)),
                    None => None,
                };
                let usage = store.peer_usage(&peer)?;
                Ok(SpaceCheck {
                    quota_left,
                    peer_bytes_left: limits
                        .peer_quota_bytes
                        .map(|q| q.saturating_sub(usage.entry_bytes + usage.blob_bytes)),
                    peer_entries_left: limits
                        .peer_max_entries
                        .map(|q| q.saturating_sub(usage.entries)),
                })
            })
            .await
    }

    /// How many entries (of `wanted`) can be reserved now.
    fn entries_that_fit(&self, wanted: usize) -> usize {
        let mut n = wanted as u64;
        for left in [self.quota_left, self.peer_bytes_left]
            .into_iter()
            .flatten()
        {
            n = n.min(left / MAX_ENTRY_CHARGE);
        }
        if let Some(left) = self.peer_entries_left {
            n = n.min(left);
        }
        n as usize
    }

    /// The error for "not one more entry fits", naming the limit reached.
    fn full(&self) -> NetError {
        if self.peer_entries_left == Some(0) {
            return NetError::TooManyEntries { limit: 0 };
        }
        match (self.quota_left, self.peer_bytes_left) {
            (Some(left), _) if left < MAX_ENTRY_CHARGE => NetError::NoSpace {
                needed: MAX_ENTRY_CHARGE,
                available: left,
                what: "the configured quota",
            },
            (_, Some(left)) => NetError::NoSpace {
                needed: MAX_ENTRY_CHARGE,
                available: left,
                what: "this peer's quota",
            },
            _ => NetError::TooManyEntries { limit: 0 },
        }
    }

    /// Room for `bytes` more and `entries` more, or `NoSpace`.
    fn reserve(&mut self, node: &Node, bytes: u64, entries: u64) -> Result<(), NetError> {
        // Keep a margin for the database and outboards (0.4 %) and the file system.
        let with_margin = bytes + bytes / 100 + 16 * 1024 * 1024;
        let available = node.store.available_space()?;
        if with_margin > available {
            return Err(NetError::NoSpace {
                needed: bytes,
                available,
                what: "free disk space",
            });
        }
        let check = |left: Option<u64>, what: &'static str| match left {
            Some(left) if bytes > left => Err(NetError::NoSpace {
                needed: bytes,
                available: left,
                what,
            }),
            _ => Ok(()),
        };
        check(self.quota_left, "the configured quota")?;
        check(self.peer_bytes_left, "this peer's quota")?;
        if let Some(left) = self.peer_entries_left {
            if entries > left {
                return Err(NetError::TooManyEntries { limit: left });
            }
        }
        for left in [&mut self.quota_left, &mut self.peer_bytes_left]
            .into_iter()
            .flatten()
        {
            *left -= bytes;
        }
        if let Some(left) = &mut self.peer_entries_left {
            *left -= entries;
        }
        Ok(())
    }

    /// Gives back what a reservation did not use.
    fn release(&mut self, bytes: u64, entries: u64) {
        for left in [&mut self.quota_left, &mut self.peer_bytes_left]
            .into_iter()
            .flatten()
        {
            *left += bytes;
        }
        if let Some(left) = &mut self.peer_entries_left {
            *left += entries;
        }
    }
}

/// Fetches entries for one batch, taking ids off the end of `ids`: a few `GetEntries`
/// requests in flight, each reserved at the largest charge an entry can have, until the batch
/// holds `Limits::pull_batch` entries or [`BATCH_ENTRY_BYTES`].
async fn fetch_entry_batch<C: PeerStreams>(
    node: &Node,
    conn: &C,
    collection: &str,
    ids: &mut Vec<[u8; 32]>,
    counters: &Counters,
    space: &mut SpaceCheck,
    report: &mut PullReport,
) -> Result<Vec<SignedEntry>, NetError> {
    let t = node.limits.timeout;
    let mut tasks = tokio::task::JoinSet::new();
    let mut entries: Vec<SignedEntry> = Vec::new();
    let mut asked = 0usize;
    let mut bytes = 0u64;
    let batch_limit = node.limits.pull_batch.max(1);
    loop {
        while tasks.len() < node.limits.parallel_fetches.max(1)
            && !ids.is_empty()
            && asked < batch_limit
            && bytes < BATCH_ENTRY_BYTES
        {
            let want = MAX_ENTRY_IDS.min(ids.len()).min(batch_limit - asked);
            let n = space.entries_that_fit(want);
            if n == 0 {
                if tasks.is_empty() && entries.is_empty() {
                    return Err(space.full());
                }
                break;
            }
            space.reserve(node, n as u64 * MAX_ENTRY_CHARGE, n as u64)?;
            let request = ids.split_off(ids.len() - n);
            asked += n;
            let (conn, collection, reads) =
                (conn.clone(), collection.to_owned(), node.reads.clone());
            tasks.spawn(async move { fetch_entries(&conn, &reads, collection, request, t).await });
        }
        let Some(done) = tasks.join_next().await else {
            break;
        };
        let (got, wire_bytes, asked_for) =
            done.map_err(|e| NetError::Io(format!("a worker failed: {e}")))??;
        let charged: u64 = got.iter().map(SignedEntry::storage_charge).sum();
        space.release(
            asked_for as u64 * MAX_ENTRY_CHARGE - charged,
            (asked_for - got.len()) as u64,
        );
        bytes += wire_bytes;
        report.entries_received += got.len() as u64;
        report.bytes_received += wire_bytes;
        Counters::add(&counters.entries_received, got.len() as u64);
        Counters::add(&counters.bytes_received, wire_bytes);
        entries.extend(got);
    }
    Ok(entries)
}

/// One `GetEntries` request: the entries (signatures and names checked), the bytes they took
/// and how many were asked for.
async fn fetch_entries<C: PeerStreams>(
    conn: &C,
    reads: &crate::node::StoreReads,
    collection: String,
    batch: Vec<[u8; 32]>,
    t: std::time::Duration,
) -> Result<(Vec<SignedEntry>, u64, usize), NetError> {
    let (mut send, mut recv) = conn.open_bi().await?;
    let request = Request::GetEntries {
        collection: collection.clone(),
        ids: batch.clone(),
    };
    crate::wire::write_frame_within(&mut send, &request, t).await?;
    let _ = send.shutdown().await;
    let mut raw: Vec<Vec<u8>> = Vec::with_capacity(batch.len());
    loop {
        let reply: EntryReply = read_frame(&mut recv, MAX_ENCODED_ENTRY + 64, t).await?;
        match reply {
            EntryReply::Entry(bytes) => {
                if raw.len() == batch.len() {
                    return Err(NetError::Protocol("sent more entries than asked".into()));
                }
                raw.push(bytes);
            }
            EntryReply::Missing(id) => {
                tracing::debug!("peer lacks entry {}", Hash::from_bytes(id));
            }
            EntryReply::End => break,
            EntryReply::Refused(why) => return Err(NetError::Refused(why)),
        }
    }
    reads
        .run(move || {
            let asked = batch.len();
            let mut wanted: HashSet<[u8; 32]> = batch.into_iter().collect();
            let bytes = raw.iter().map(|b| b.len() as u64).sum();
            let mut entries = Vec::with_capacity(raw.len());
            for bytes in &raw {
                let e = SignedEntry::decode(bytes)?;
                if !wanted.remove(e.id().as_bytes()) {
                    return Err(NetError::Protocol(format!(
                        "sent entry {} that was not asked for (or twice)",
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

/// Fetches `wanted` with a few requests in flight, importing each request's verified blobs.
async fn fetch_blobs<C: PeerStreams>(
    node: &Node,
    conn: &C,
    wanted: Vec<MissingBlob>,
    counters: &Counters,
    report: &mut PullReport,
) -> Result<Fetched, NetError> {
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
    let shared = Arc::new(Counters::default());
    let memory = FetchMemory::new(node.limits.fetch_memory);
    let mut fetched = Fetched::default();
    let mut tasks = tokio::task::JoinSet::new();
    let mut requests = requests.into_iter();
    loop {
        while tasks.len() < node.limits.parallel_fetches.max(1) {
            let Some(request) = requests.next() else {
                break;
            };
            let (node, conn, totals) = (node.clone(), conn.clone(), shared.clone());
            let memory = memory.clone();
            tasks
                .spawn(async move { fetch_request(&node, &conn, request, &totals, &memory).await });
        }
        let Some(done) = tasks.join_next().await else {
            break;
        };
        let one = done.map_err(|e| NetError::Io(format!("a worker failed: {e}")))??;
        fetched.bytes += one.bytes;
        fetched.bad_manifests.extend(one.bad_manifests);
        fetched.oversized.extend(one.oversized);
        sync_counters(&shared, counters, report);
    }
    sync_counters(&shared, counters, report);
    Ok(fetched)
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

/// The memory budget of one fetch, shared by its requests: permits are bytes. A blob's
/// encoding and its decoded copy are both counted while both exist; the encoding's share is
/// given back once it is verified, the rest once the blob is stored.
#[derive(Clone)]
struct FetchMemory {
    bytes: Arc<tokio::sync::Semaphore>,
    total: usize,
}

/// Bytes a fetch holds for one blob, and how many of them are its encoding.
struct Held {
    permit: tokio::sync::OwnedSemaphorePermit,
    encoding: usize,
}

impl FetchMemory {
    fn new(total: usize) -> Self {
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
        let encoding = encoded_len(size) as usize;
        let need = (encoding + size as usize).min(self.total);
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
) -> Result<Fetched, NetError> {
    let t = node.limits.timeout;
    let origin = peer_key(&conn.remote_id());
    let (mut send, mut recv) = conn.open_bi().await?;
    let hashes = request.iter().map(|m| *m.hash.as_bytes()).collect();
    crate::wire::write_frame_within(&mut send, &Request::GetBlobs { hashes }, t).await?;
    let _ = send.shutdown().await;
    let mut fetched = Fetched::default();
    let mut verified: Vec<(VerifiedBlob, Held)> = Vec::with_capacity(request.len());
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
        let fits = match m.expected {
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
                // Store what this request holds before waiting, so that no request waits
                // while holding memory that another one needs.
                while let Some(task) = decoding.pop_front() {
                    take_decoded(task, counters, &mut verified, &mut fetched).await?;
                }
                import(node, &mut verified, origin).await?;
                memory.hold(size).await
            }
        };
        let mut encoded = vec![0u8; encoded_len(size) as usize];
        for piece in encoded.chunks_mut(READ_PIECE) {
            read_exact(&mut recv, piece, t).await?;
            Counters::add(&counters.bytes_received, piece.len() as u64);
        }
        // Verify on a worker while the next blob arrives.
        if decoding.len() >= DECODE_AHEAD {
            let task = decoding.pop_front().expect("not empty");
            take_decoded(task, counters, &mut verified, &mut fetched).await?;
        }
        let wanted = *m;
        let task = tokio::task::spawn_blocking(move || decode_expected(&wanted, size, &encoded));
        decoding.push_back((task, held));
    }
    while let Some(task) = decoding.pop_front() {
        take_decoded(task, counters, &mut verified, &mut fetched).await?;
    }
    import(node, &mut verified, origin).await?;
    let _ = send.shutdown().await;
    Ok(fetched)
}

/// Stores verified blobs (in one transaction) and gives their memory back.
async fn import(
    node: &Node,
    verified: &mut Vec<(VerifiedBlob, Held)>,
    origin: PublicKey,
) -> Result<(), NetError> {
    if verified.is_empty() {
        return Ok(());
    }
    let (blobs, held): (Vec<VerifiedBlob>, Vec<Held>) =
        std::mem::take(verified).into_iter().unzip();
    let store = node.store.clone();
    node.reads
        .run(move || Ok(store.import_blobs(blobs, Some(&origin))?))
        .await?;
    drop(held);
    Ok(())
}

/// The result of a blob's verification on a worker: a verified blob to import, or a manifest
/// that is no manifest of its file (recorded; the pull goes on without that file).
async fn take_decoded(
    (task, mut held): (Verifying, Held),
    counters: &Counters,
    verified: &mut Vec<(VerifiedBlob, Held)>,
    fetched: &mut Fetched,
) -> Result<(), NetError> {
    let result = task
        .await
        .map_err(|e| NetError::Io(format!("a worker failed: {e}")))?;
    match result {
        Ok(blob) => {
            held.verified();
            Counters::add(&counters.blobs_received, 1);
            fetched.bytes += blob.size();
            verified.push((blob, held));
            Ok(())
        }
        Err(TransferError::BadManifest { hash, detail, .. }) => {
            fetched.bad_manifests.push((hash, detail));
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}
