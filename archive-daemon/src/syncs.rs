//! Syncs with paired servers, started with `archive sync` or from the peers page, and the
//! record of how the last one of each peer and collection went (`syncs.json` in the data
//! folder, replaced atomically; read by the peers page).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use archive_net::{Counters, DiffReport, Endpoint, Node, SyncOptions, SyncReport};
use serde::{Deserialize, Serialize};

use crate::peers::{write_durably, Peer};

const FILE: &str = "syncs.json";
/// How long a peer has to answer before a sync or diff gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How the last sync of a collection with a peer went.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub(crate) struct SyncRecord {
    pub(crate) peer: String,
    pub(crate) collection: String,
    /// When it ended, Unix milliseconds.
    pub(crate) at: u64,
    /// Why it failed; `None` when it completed.
    pub(crate) error: Option<String>,
    pub(crate) entries_received: u64,
    pub(crate) entries_sent: u64,
    pub(crate) bytes_received: u64,
    pub(crate) bytes_sent: u64,
    /// When a sync of this collection with this peer last completed, Unix milliseconds
    /// (carried over by failures; set by [`record`]).
    #[serde(default)]
    pub(crate) last_success_at: Option<u64>,
    /// Failures since then (set by [`record`]).
    #[serde(default)]
    pub(crate) failures: u32,
}

impl SyncRecord {
    /// The record of a finished sync.
    pub(crate) fn of(peer: &str, collection: &str, outcome: &Result<SyncReport>) -> SyncRecord {
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut record = SyncRecord {
            peer: peer.to_owned(),
            collection: collection.to_owned(),
            at,
            error: None,
            entries_received: 0,
            entries_sent: 0,
            bytes_received: 0,
            bytes_sent: 0,
            last_success_at: None,
            failures: 0,
        };
        match outcome {
            Ok(r) => {
                record.entries_received = r.entries_received;
                record.entries_sent = r.entries_sent;
                record.bytes_received = r.bytes_received;
                record.bytes_sent = r.bytes_sent;
                if !r.refused.is_empty() {
                    record.error = Some(format!("{} entries refused", r.refused.len()));
                }
            }
            Err(e) => record.error = Some(format!("{e:#}")),
        }
        record
    }
}

/// Held while `syncs.json` is read and replaced (syncs end on several threads).
static LOCK: Mutex<()> = Mutex::new(());

/// The last sync of each peer and collection, oldest first.
pub(crate) fn load(dir: &Path) -> Result<Vec<SyncRecord>> {
    let path = dir.join(FILE);
    match std::fs::read(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        // A damaged record is not worth refusing to start over: it is history, not data.
        Ok(bytes) => Ok(serde_json::from_slice(&bytes).unwrap_or_default()),
    }
}

/// Keeps `record` as the last sync of its peer and collection, with when it last completed
/// and how many times it failed since (from the record it replaces).
pub(crate) fn record(dir: &Path, mut record: SyncRecord) -> Result<()> {
    let _lock = LOCK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut all = load(dir)?;
    let before = all
        .iter()
        .position(|r| r.peer == record.peer && r.collection == record.collection)
        .map(|i| all.remove(i));
    if record.error.is_none() {
        record.last_success_at = Some(record.at);
        record.failures = 0;
    } else {
        record.last_success_at = before.as_ref().and_then(|b| b.last_success_at);
        record.failures = before.map_or(0, |b| b.failures).saturating_add(1);
    }
    all.push(record);
    let path = dir.join(FILE);
    let bytes = serde_json::to_vec_pretty(&all).expect("records serialise");
    write_durably(&path, &bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// Forgets an unpaired peer's records.
pub(crate) fn forget(dir: &Path, peer: &str) -> Result<()> {
    let _lock = LOCK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut all = load(dir)?;
    all.retain(|r| r.peer != peer);
    let path = dir.join(FILE);
    let bytes = serde_json::to_vec_pretty(&all).expect("records serialise");
    write_durably(&path, &bytes).with_context(|| format!("cannot write {}", path.display()))
}

async fn connect(endpoint: &Endpoint, peer: &Peer) -> Result<archive_net::Connection> {
    let addr = peer.endpoint_addr()?;
    archive_net::connect(endpoint, addr, CONNECT_TIMEOUT)
        .await
        .with_context(|| format!("peer `{}`", peer.name))
}

/// Syncs `options.collection` with `peer` (both ways unless the options say otherwise).
pub(crate) async fn sync_with(
    endpoint: &Endpoint,
    node: &Node,
    peer: &Peer,
    options: &SyncOptions,
    counters: Arc<Counters>,
) -> Result<SyncReport> {
    let conn = connect(endpoint, peer).await?;
    let r = node.sync(&conn, options, counters).await;
    conn.close(0u32.into(), b"done");
    r.with_context(|| format!("sync with `{}`", peer.name))
}

/// What a sync of `collection` with `peer` would move (reconciliation only).
pub(crate) async fn diff_with(
    endpoint: &Endpoint,
    node: &Node,
    peer: &Peer,
    collection: &str,
) -> Result<DiffReport> {
    let conn = connect(endpoint, peer).await?;
    let r = node.diff(&conn, collection).await;
    conn.close(0u32.into(), b"done");
    r.with_context(|| format!("diff with `{}`", peer.name))
}
