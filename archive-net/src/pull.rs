//! Taking entries and their content from a peer: the receiving half, used by `sync` for a
//! pull and by the server for an offer (a push from the other side).
//!
//! Order, for each batch of `Limits::pull_batch` entries: fetch the entries (signatures are
//! checked as they are decoded), decide which need content (the latest file version of each
//! key), fetch missing manifests, then missing chunks, importing each verified batch as it
//! arrives, and insert the entries last, after each file's content is complete and hashes to
//! the entry's file hash. Batches keep a pull's memory bounded whatever the collection's size;
//! free space and quota are checked before each batch's chunks. An interrupted pull keeps every
//! batch it inserted and every blob it imported; the next one fetches only what is missing.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use archive_core::transfer::{decode_blob, encoded_len, VerifiedBlob, MAX_TRANSFER_BLOB};
use archive_core::{EntryValue, FileRef, Hash, MissingBlob, SignedEntry, MAX_ENCODED_ENTRY};
use iroh::endpoint::Connection;
use tokio::io::AsyncWriteExt;

use crate::error::NetError;
use crate::node::{Counters, Node};
use crate::wire::{
    read_exact, read_frame, write_frame, BlobHeader, EntryReply, Request, MAX_CONTROL_FRAME,
    MAX_ENTRY_IDS,
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
}

pub(crate) async fn pull(
    node: &Node,
    conn: &Connection,
    collection: &str,
    mut ids: Vec<[u8; 32]>,
    counters: &Counters,
) -> Result<PullReport, NetError> {
    let _guard = node.store.begin_transfer();
    let mut report = PullReport::default();
    let mut space = SpaceCheck::new(node)?;
    let batch_size = node.limits.pull_batch.max(1);
    while !ids.is_empty() {
        // Batches come off the end of the list, which then gives their memory back: the list
        // of a large first sync (32 MB for a million entries) shrinks as the pull goes.
        let batch = ids.split_off(ids.len().saturating_sub(batch_size));
        ids.shrink_to_fit();
        pull_batch(
            node,
            conn,
            collection,
            &batch,
            counters,
            &mut space,
            &mut report,
        )
        .await?;
    }
    Ok(report)
}

/// Takes one batch of entries through the whole pipeline.
async fn pull_batch(
    node: &Node,
    conn: &Connection,
    collection: &str,
    ids: &[[u8; 32]],
    counters: &Counters,
    space: &mut SpaceCheck,
    report: &mut PullReport,
) -> Result<(), NetError> {
    let entries = fetch_entries(node, conn, collection, ids, counters, report).await?;

    let store = node.store.clone();
    let (entries, needs) = blocking(move || {
        let needs = store.needs_content(&entries)?;
        Ok::<_, NetError>((entries, needs))
    })
    .await?;
    let mut files: Vec<FileRef> = Vec::new();
    let mut seen = HashSet::new();
    for (e, needs) in entries.iter().zip(&needs) {
        if let (true, EntryValue::File(f)) = (needs, e.entry().value) {
            if seen.insert(f.hash) {
                files.push(f);
            }
        }
    }

    // Manifests first (their size is unknown until the peer says), then the chunks.
    let missing = missing_for(node, &files).await?;
    let manifests: Vec<MissingBlob> = missing
        .iter()
        .filter(|m| m.size.is_none())
        .copied()
        .collect();
    fetch_blobs(node, conn, manifests, counters, report).await?;
    let missing = missing_for(node, &files).await?;
    if let Some(m) = missing.iter().find(|m| m.size.is_none()) {
        return Err(NetError::Protocol(format!(
            "the peer did not send manifest {}",
            m.hash
        )));
    }
    space.reserve(node, &missing)?;
    Counters::add(
        &counters.bytes_expected,
        missing.iter().map(|m| m.size.unwrap_or(0)).sum(),
    );
    fetch_blobs(node, conn, missing, counters, report).await?;

    let store = node.store.clone();
    let new = blocking(move || {
        let mut new = 0;
        for (chunk, flags) in entries
            .chunks(ENTRIES_PER_INSERT)
            .zip(needs.chunks(ENTRIES_PER_INSERT))
        {
            new += store.insert_received(chunk, flags)?;
        }
        Ok::<_, NetError>(new)
    })
    .await?;
    report.entries_new += new;
    Ok(())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, NetError> + Send + 'static,
) -> Result<T, NetError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| NetError::Io(format!("a worker failed: {e}")))?
}

/// Blobs still missing for `files`, each once.
async fn missing_for(node: &Node, files: &[FileRef]) -> Result<Vec<MissingBlob>, NetError> {
    let store = node.store.clone();
    let files = files.to_vec();
    blocking(move || {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for f in &files {
            for m in store.missing_blobs(f)? {
                if seen.insert(m.hash) {
                    out.push(m);
                }
            }
        }
        Ok(out)
    })
    .await
}

/// Free disk space and the quota, checked before each batch's content is fetched.
struct SpaceCheck {
    /// Bytes the quota still allows; `None` without a quota. Read once per pull (it takes a
    /// pass over the blob table) and counted down as batches reserve what they fetch.
    quota_left: Option<u64>,
}

impl SpaceCheck {
    fn new(node: &Node) -> Result<Self, NetError> {
        let quota_left = match node.limits.max_store_bytes {
            Some(quota) => Some(quota.saturating_sub(node.store.stats()?.stored_bytes)),
            None => None,
        };
        Ok(SpaceCheck { quota_left })
    }

    /// Room for `missing`, or `NoSpace`.
    fn reserve(&mut self, node: &Node, missing: &[MissingBlob]) -> Result<(), NetError> {
        let needed: u64 = missing.iter().map(|m| m.size.unwrap_or(0)).sum();
        // Keep a margin for the database and outboards (0.4 %) and the file system.
        let with_margin = needed + needed / 100 + 16 * 1024 * 1024;
        let available = node.store.available_space()?;
        if with_margin > available {
            return Err(NetError::NoSpace {
                needed,
                available,
                what: "free disk space",
            });
        }
        if let Some(left) = self.quota_left {
            if needed > left {
                return Err(NetError::NoSpace {
                    needed,
                    available: left,
                    what: "the configured quota",
                });
            }
            self.quota_left = Some(left - needed);
        }
        Ok(())
    }
}

async fn fetch_entries(
    node: &Node,
    conn: &Connection,
    collection: &str,
    ids: &[[u8; 32]],
    counters: &Counters,
    report: &mut PullReport,
) -> Result<Vec<SignedEntry>, NetError> {
    // A few batches in flight; each batch's signatures are checked on a worker, so checking
    // (about 50 µs an entry) overlaps with the network and uses every core.
    let batches: Vec<Vec<[u8; 32]>> = ids.chunks(MAX_ENTRY_IDS).map(<[_]>::to_vec).collect();
    let mut done: Vec<Option<(Vec<SignedEntry>, u64)>> = vec![None; batches.len()];
    let t = node.limits.timeout;
    in_flight(
        node.limits.parallel_fetches,
        batches.into_iter().enumerate(),
        |(i, batch)| {
            let (conn, collection) = (conn.clone(), collection.to_owned());
            async move { Ok((i, fetch_entry_batch(&conn, collection, batch, t).await?)) }
        },
        |(i, batch)| {
            report.entries_received += batch.0.len() as u64;
            report.bytes_received += batch.1;
            Counters::add(&counters.entries_received, batch.0.len() as u64);
            Counters::add(&counters.bytes_received, batch.1);
            done[i] = Some(batch);
        },
    )
    .await?;
    Ok(done.into_iter().flatten().flat_map(|(e, _)| e).collect())
}

/// One `GetEntries` request: the entries (signatures checked) and the bytes they took.
async fn fetch_entry_batch(
    conn: &Connection,
    collection: String,
    batch: Vec<[u8; 32]>,
    t: std::time::Duration,
) -> Result<(Vec<SignedEntry>, u64), NetError> {
    let (mut send, mut recv) = conn.open_bi().await.map_err(NetError::from)?;
    let request = Request::GetEntries {
        collection: collection.clone(),
        ids: batch.clone(),
    };
    write_frame(&mut send, &request).await?;
    let _ = send.finish();
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
    blocking(move || {
        let wanted: HashSet<[u8; 32]> = batch.into_iter().collect();
        let bytes = raw.iter().map(|b| b.len() as u64).sum();
        let mut entries = Vec::with_capacity(raw.len());
        for bytes in &raw {
            let e = SignedEntry::decode(bytes)?;
            if !wanted.contains(e.id().as_bytes()) {
                return Err(NetError::Protocol(format!(
                    "sent entry {} that was not asked for",
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
        Ok((entries, bytes))
    })
    .await
}

/// Fetches `wanted` with a few requests in flight, importing each request's verified blobs.
async fn fetch_blobs(
    node: &Node,
    conn: &Connection,
    wanted: Vec<MissingBlob>,
    counters: &Counters,
    report: &mut PullReport,
) -> Result<(), NetError> {
    let mut requests: Vec<Vec<MissingBlob>> = Vec::new();
    let mut bytes = 0;
    for m in wanted {
        let size = m.size.unwrap_or(MAX_TRANSFER_BLOB / 8);
        match requests.last_mut() {
            Some(r) if r.len() < BLOBS_PER_REQUEST && bytes + size <= BYTES_PER_REQUEST => {
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
    in_flight(
        node.limits.parallel_fetches,
        requests,
        |request| {
            let (node, conn, totals) = (node.clone(), conn.clone(), shared.clone());
            let memory = memory.clone();
            async move { fetch_request(&node, &conn, request, &totals, &memory).await }
        },
        |()| sync_counters(&shared, counters, report),
    )
    .await?;
    sync_counters(&shared, counters, report);
    Ok(())
}

/// Runs `start(job)` for every job with at most `limit` running at once, handing each result
/// to `finished` as it comes; stops at the first failure.
async fn in_flight<J, T, Fut>(
    limit: usize,
    jobs: impl IntoIterator<Item = J>,
    start: impl Fn(J) -> Fut,
    mut finished: impl FnMut(T),
) -> Result<(), NetError>
where
    T: Send + 'static,
    Fut: std::future::Future<Output = Result<T, NetError>> + Send + 'static,
{
    let slots = Arc::new(tokio::sync::Semaphore::new(limit.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let joined = |r: Result<Result<T, NetError>, tokio::task::JoinError>| {
        r.map_err(|e| NetError::Io(format!("a worker failed: {e}")))?
    };
    for job in jobs {
        let slot = slots.clone().acquire_owned().await.expect("semaphore open");
        let work = start(job);
        tasks.spawn(async move {
            let r = work.await;
            drop(slot);
            r
        });
        while let Some(done) = tasks.try_join_next() {
            finished(joined(done)?);
        }
    }
    while let Some(done) = tasks.join_next().await {
        finished(joined(done)?);
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

type Verifying = tokio::task::JoinHandle<Result<VerifiedBlob, archive_core::TransferError>>;

async fn fetch_request(
    node: &Node,
    conn: &Connection,
    request: Vec<MissingBlob>,
    counters: &Counters,
    memory: &FetchMemory,
) -> Result<(), NetError> {
    let t = node.limits.timeout;
    let (mut send, mut recv) = conn.open_bi().await.map_err(NetError::from)?;
    let hashes = request.iter().map(|m| *m.hash.as_bytes()).collect();
    write_frame(&mut send, &Request::GetBlobs { hashes }).await?;
    let _ = send.finish();
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
        if size > MAX_TRANSFER_BLOB || m.size.is_some_and(|s| s != size) {
            return Err(NetError::Protocol(format!(
                "announced {size} bytes for blob {} ({})",
                m.hash,
                match m.size {
                    Some(s) => format!("{s} expected"),
                    None => format!("limit {MAX_TRANSFER_BLOB}"),
                }
            )));
        }
        let held = match memory.try_hold(size) {
            Some(held) => held,
            None => {
                // Store what this request holds before waiting, so that no request waits
                // while holding memory that another one needs.
                while let Some(task) = decoding.pop_front() {
                    verified.push(decoded(task, counters).await?);
                }
                import(node, &mut verified).await?;
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
            verified.push(decoded(decoding.pop_front().expect("not empty"), counters).await?);
        }
        let hash = m.hash;
        let task = tokio::task::spawn_blocking(move || decode_blob(hash, size, &encoded));
        decoding.push_back((task, held));
    }
    while let Some(task) = decoding.pop_front() {
        verified.push(decoded(task, counters).await?);
    }
    import(node, &mut verified).await?;
    let _ = send.shutdown().await;
    Ok(())
}

/// Stores verified blobs (in one transaction) and gives their memory back.
async fn import(node: &Node, verified: &mut Vec<(VerifiedBlob, Held)>) -> Result<(), NetError> {
    if verified.is_empty() {
        return Ok(());
    }
    let (blobs, held): (Vec<VerifiedBlob>, Vec<Held>) =
        std::mem::take(verified).into_iter().unzip();
    let store = node.store.clone();
    blocking(move || Ok(store.import_blobs(blobs)?)).await?;
    drop(held);
    Ok(())
}

/// The result of a blob's verification on a worker.
async fn decoded(
    (task, mut held): (Verifying, Held),
    counters: &Counters,
) -> Result<(VerifiedBlob, Held), NetError> {
    let blob = task
        .await
        .map_err(|e| NetError::Io(format!("a worker failed: {e}")))??;
    held.verified();
    Counters::add(&counters.blobs_received, 1);
    Ok((blob, held))
}
