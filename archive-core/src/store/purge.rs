//! Per-peer accounting, purging what a peer brought, and the deny list.
//!
//! Entries are kept forever, with two exceptions that go through here: `purge_peer` removes
//! every entry one peer delivered (a peer that flooded or poisoned this store), and `doctor`
//! removes entries dated past the absolute ceiling (a store poisoned before the time rule).
//! A removed entry leaves the view, the history and the sync index, and its id goes on the
//! deny list, so the next sync does not bring it back. Its blobs become garbage for `gc`.

use std::collections::BTreeSet;

use redb::{ReadableDatabase, ReadableTable};

use super::{decode_stored_entry, guarded, read_meta, sub_from_counter, Store, Touched};
use crate::clock::wall_clock_millis;
use crate::entry::{EntryId, SignedEntry};
use crate::error::StorageError;
use crate::format::layout::{
    COLLECTIONS, DENIED, ENTRIES, HISTORY, META, META_ENTRY_BYTES, ORIGINS, PEER_USAGE, VIEWS,
};
use crate::hash::Hash;
use crate::identity::PeerId;
use crate::store::sync_index::{forget_agreements, SyncTables};
use crate::sync::SyncKey;

/// Entries removed per transaction: bounds a purge's memory and each commit's size.
const PURGE_BATCH: usize = 4096;

/// What a peer has brought to this store since it was paired or last purged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerUsage {
    /// Entries it delivered that were new here.
    pub entries: u64,
    /// Their storage charge ([`SignedEntry::storage_charge`]).
    pub entry_bytes: u64,
    /// Bytes of blobs it delivered that were new here (not credited back by `gc`: content
    /// can be shared with other entries).
    pub blob_bytes: u64,
}

/// Why an entry is on the deny list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DenyReason {
    /// Removed by `purge_peer`.
    Purged,
    /// Its file's content cannot match it (a manifest that is not one, chunks that hash to
    /// something else): it can never become valid.
    InvalidContent,
    /// Dated past the absolute ceiling; removed by `doctor`.
    FarFuture,
    /// It breaks its collection's rules in a way that depends on the entry alone (see
    /// [`crate::RuleBreach::lasting`]).
    BrokeRules,
}

impl DenyReason {
    pub(crate) fn code(self) -> u8 {
        match self {
            DenyReason::Purged => 1,
            DenyReason::InvalidContent => 2,
            DenyReason::FarFuture => 3,
            DenyReason::BrokeRules => 4,
        }
    }
}

/// What a purge removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// Entries removed (now on the deny list).
    pub entries_removed: u64,
    /// The collections they were in.
    pub collections: BTreeSet<String>,
}

impl Store {
    /// What `peer` has brought to this store (see [`PeerUsage`]).
    pub fn peer_usage(&self, peer: &PeerId) -> Result<PeerUsage, StorageError> {
        guarded(|| {
            let tx = self.db.begin_read()?;
            let table = tx.open_table(PEER_USAGE)?;
            Ok(table
                .get(peer.as_bytes())?
                .map(|v| {
                    let (entries, entry_bytes, blob_bytes) = v.value();
                    PeerUsage {
                        entries,
                        entry_bytes,
                        blob_bytes,
                    }
                })
                .unwrap_or_default())
        })
    }

    /// True when the entry is on the deny list.
    pub(super) fn is_denied(&self, id: &EntryId) -> Result<bool, StorageError> {
        guarded(|| {
            let tx = self.db.begin_read()?;
            Ok(tx.open_table(DENIED)?.get(id.as_bytes())?.is_some())
        })
    }

    /// Removes the entries whose ids are on the deny list from `keys` (before asking a peer
    /// for them).
    pub(super) fn drop_denied(&self, keys: &mut Vec<SyncKey>) -> Result<u64, StorageError> {
        guarded(|| {
            let tx = self.db.begin_read()?;
            let denied = tx.open_table(DENIED)?;
            if redb::ReadableTableMetadata::is_empty(&denied)? {
                return Ok(0);
            }
            let before = keys.len();
            let mut failed = None;
            keys.retain(|k| match denied.get(k.id.as_bytes()) {
                Ok(row) => row.is_none(),
                Err(e) => {
                    failed = Some(e);
                    true
                }
            });
            if let Some(e) = failed {
                return Err(e.into());
            }
            Ok((before - keys.len()) as u64)
        })
    }

    /// Removes from `keys` the entries the store already holds; returns how many.
    pub(super) fn drop_held(&self, keys: &mut Vec<SyncKey>) -> Result<u64, StorageError> {
        guarded(|| {
            let tx = self.db.begin_read()?;
            let entries = tx.open_table(ENTRIES)?;
            let before = keys.len();
            let mut failed = None;
            keys.retain(|k| match entries.get(k.to_bytes()) {
                Ok(row) => row.is_none(),
                Err(e) => {
                    failed = Some(e);
                    true
                }
            });
            if let Some(e) = failed {
                return Err(e.into());
            }
            Ok((before - keys.len()) as u64)
        })
    }

    /// Puts entries on the deny list (removing those the store has, as a purge does): for
    /// entries that proved invalid, so no sync fetches them again.
    pub(super) fn deny_entries(
        &self,
        keys: &[SyncKey],
        reason: DenyReason,
    ) -> Result<u64, StorageError> {
        guarded(|| {
            let mut removed = 0;
            for chunk in keys.chunks(PURGE_BATCH) {
                removed += self.remove_entries(chunk, reason, |_, _| Ok(()))?.len() as u64;
            }
            Ok(removed)
        })
    }

    /// Removes every entry `peer` delivered from views, history and the sync index, puts them
    /// on the deny list, and sets its usage back to zero. Their blobs are left for `gc`.
    /// Agreements about the collections they were in are forgotten (a full reconciliation
    /// runs next time).
    pub fn purge_peer(&self, peer: &PeerId) -> Result<PurgeReport, StorageError> {
        guarded(|| {
            let mut report = PurgeReport::default();
            loop {
                let rows: Vec<(u64, [u8; 40])> = {
                    let tx = self.db.begin_read()?;
                    let origins = tx.open_table(ORIGINS)?;
                    let from = (*peer.as_bytes(), 0u64);
                    let to = (*peer.as_bytes(), u64::MAX);
                    let mut rows = Vec::new();
                    for row in origins.range(from..=to)? {
                        let (k, v) = row?;
                        rows.push((k.value().1, v.value()));
                        if rows.len() == PURGE_BATCH {
                            break;
                        }
                    }
                    rows
                };
                if rows.is_empty() {
                    break;
                }
                let keys: Vec<SyncKey> = rows.iter().map(|(_, k)| SyncKey::from_bytes(k)).collect();
                let removed = self.remove_entries(&keys, DenyReason::Purged, |tx, charged| {
                    let mut origins = tx.open_table(ORIGINS)?;
                    for (seq, _) in &rows {
                        origins.remove((*peer.as_bytes(), *seq))?;
                    }
                    // Counted down in the same transaction, so entries a pull still running
                    // inserts meanwhile stay counted (and the next loop finds them).
                    let mut usage = tx.open_table(PEER_USAGE)?;
                    let (n, bytes, _) = usage
                        .get(peer.as_bytes())?
                        .map(|v| v.value())
                        .unwrap_or_default();
                    let gone = rows.len() as u64;
                    usage.insert(
                        peer.as_bytes(),
                        (n.saturating_sub(gone), bytes.saturating_sub(charged), 0),
                    )?;
                    Ok(())
                })?;
                report.entries_removed += removed.len() as u64;
                report.collections.extend(removed);
            }
            Ok(report)
        })
    }

    /// Removes these entries (those the store has) and puts every one of them on the deny
    /// list, in one transaction that also runs `also`. Returns the collection of each
    /// removed entry.
    pub(crate) fn remove_entries(
        &self,
        keys: &[SyncKey],
        reason: DenyReason,
        also: impl FnOnce(&redb::WriteTransaction, u64) -> Result<(), StorageError>,
    ) -> Result<Vec<String>, StorageError> {
        let _gc = self.gc_shared();
        let tx = self.db.begin_write()?;
        let mut removed = Vec::new();
        let mut charged = 0;
        let touched: Touched = {
            let mut entries = tx.open_table(ENTRIES)?;
            let mut views = tx.open_table(VIEWS)?;
            let mut history = tx.open_table(HISTORY)?;
            let mut collections = tx.open_table(COLLECTIONS)?;
            let mut denied = tx.open_table(DENIED)?;
            let mut meta = tx.open_table(META)?;
            let mut entry_certificates =
                tx.open_table(crate::format::layout::ENTRY_CERTIFICATES)?;
            let mut sync = SyncTables::open(&tx)?;
            let now = wall_clock_millis();
            for item in keys {
                let id = item.id.as_bytes();
                denied.insert(id, (now, reason.code()))?;
                let row = item.to_bytes();
                if entries.get(row)?.is_none() {
                    continue;
                }
                let entry: SignedEntry = decode_stored_entry(&entries, (item.time, *id))?;
                let e = entry.entry();
                let (c, k) = (e.collection.as_str(), e.key.as_str());
                // Its history row names its insertion number, which the sync log is keyed by.
                let mut seq = None;
                let mut best: Option<(u64, [u8; 32])> = None;
                for row in history.range((c, k, 0)..=(c, k, u64::MAX))? {
                    let (key, value) = row?;
                    let version = value.value();
                    if version.1 == *id {
                        seq = Some(key.value().2);
                    } else if best.is_none_or(|b| version > b) {
                        best = Some(version);
                    }
                }
                let seq = seq.ok_or_else(|| {
                    StorageError::Damaged(format!(
                        "entry {} has no history row",
                        Hash::from_bytes(*id)
                    ))
                })?;
                history.remove((c, k, seq))?;
                let shown = views.get((c, k))?.map(|v| v.value().1);
                if shown == Some(*id) {
                    match best {
                        Some(version) => views.insert((c, k), version)?,
                        None => views.remove((c, k))?,
                    };
                }
                sync.remove(c, *item, seq)?;
                let count = collections.get(c)?.map(|v| v.value()).unwrap_or(1);
                if count <= 1 {
                    collections.remove(c)?;
                } else {
                    collections.insert(c, count - 1)?;
                }
                charged += entry.storage_charge();
                entries.remove(row)?;
                entry_certificates.remove(row)?;
                removed.push(c.to_owned());
            }
            sub_from_counter(&mut meta, META_ENTRY_BYTES, charged)?;
            // The counter must exist for the store to be consistent.
            let _: [u8; 8] = read_meta(&meta, META_ENTRY_BYTES)?;
            sync.finish()?;
            std::mem::take(&mut sync.touched)
        };
        let gone: BTreeSet<&String> = removed.iter().collect();
        for c in gone {
            forget_agreements(&tx, c)?;
        }
        also(&tx, charged)?;
        self.commit_entries(tx, touched)?;
        Ok(removed)
    }
}
