//! What the reconciliation session needs from a set of items: counts, keys and fingerprints by
//! position, and the fast-path bookkeeping. [`MemoryIndex`] is the simple in-memory version
//! (tests, fuzzing, small embedders); the store's persisted index lives in `store/sync_index.rs`.

use crate::entry::EntryId;
use std::collections::HashSet;

use super::fingerprint::{Accumulator, SyncKey};
use crate::error::StorageError;
use crate::format::sync_wire::Bound;

/// A sorted set of items the session reads by position (0-based, in item order).
pub trait SyncIndex {
    /// Number of items.
    fn len(&mut self) -> Result<u64, StorageError>;
    /// True when there are no items.
    fn is_empty(&mut self) -> Result<bool, StorageError> {
        Ok(self.len()? == 0)
    }
    /// Number of items below `bound`.
    ///
    /// Positions and ranges passed to the methods below lie within `0..=len` (`lo <= hi`);
    /// others get [`StorageError::OutOfRange`].
    fn lower_bound(&mut self, bound: &Bound) -> Result<u64, StorageError>;
    /// The item at `pos` (`pos < len`).
    fn key_at(&mut self, pos: u64) -> Result<SyncKey, StorageError>;
    /// Sum and count of the items at positions `lo..hi`.
    fn accumulate(&mut self, lo: u64, hi: u64) -> Result<Accumulator, StorageError>;
    /// The items at positions `lo..hi`.
    fn keys(&mut self, lo: u64, hi: u64) -> Result<Vec<SyncKey>, StorageError>;
    /// Up to `parts - 1` ascending positions strictly inside `lo..hi` that cut it into parts of
    /// similar size. An index may prefer positions that are cheap for it (block starts).
    fn split_points(&mut self, lo: u64, hi: u64, parts: u64) -> Result<Vec<u64>, StorageError> {
        Ok(even_split(lo, hi, parts))
    }
    /// True when this item (time and id) is in the set.
    fn contains(&mut self, key: &SyncKey) -> Result<bool, StorageError>;
    /// Sum and count of all items.
    fn total(&mut self) -> Result<Accumulator, StorageError> {
        let n = self.len()?;
        self.accumulate(0, n)
    }
    /// The items inserted at or after the insertion counter `seq`, or `None` if there are
    /// more than `limit`.
    fn added_since(&mut self, seq: u64, limit: usize)
        -> Result<Option<Vec<SyncKey>>, StorageError>;
}

pub(crate) fn even_split(lo: u64, hi: u64, parts: u64) -> Vec<u64> {
    let n = u128::from(hi.saturating_sub(lo));
    let mut out: Vec<u64> = (1..parts)
        .map(|i| lo + (n * u128::from(i) / u128::from(parts)) as u64)
        .filter(|p| *p > lo && *p < hi)
        .collect();
    out.dedup();
    out
}

/// An in-memory set of items: a sorted vector with prefix sums.
#[derive(Debug, Clone, Default)]
pub struct MemoryIndex {
    keys: Vec<SyncKey>,
    /// `prefix[i]` = accumulator of `keys[..i]`.
    prefix: Vec<Accumulator>,
    ids: HashSet<EntryId>,
    /// Items in insertion order; position = insertion counter.
    log: Vec<SyncKey>,
}

impl MemoryIndex {
    /// An index of these items (duplicates are dropped).
    pub fn new(items: impl IntoIterator<Item = SyncKey>) -> Self {
        let mut index = MemoryIndex::default();
        index.insert_all(items);
        index
    }

    /// Adds items (already present ones are ignored).
    pub fn insert_all(&mut self, items: impl IntoIterator<Item = SyncKey>) {
        for k in items {
            if self.ids.insert(k.id) {
                self.keys.push(k);
                self.log.push(k);
            }
        }
        self.keys.sort_unstable();
        self.prefix.clear();
        self.prefix.push(Accumulator::default());
        let mut acc = Accumulator::default();
        for k in &self.keys {
            acc.add(&k.id);
            self.prefix.push(acc);
        }
    }

    /// The insertion counter: how many items were ever inserted.
    pub fn seq(&self) -> u64 {
        self.log.len() as u64
    }

    /// All items, sorted.
    pub fn items(&self) -> &[SyncKey] {
        &self.keys
    }
}

/// Checks that `lo..hi` is a range of positions of an index of `len` items.
pub(crate) fn check_range(lo: u64, hi: u64, len: u64) -> Result<(), StorageError> {
    if lo <= hi && hi <= len {
        Ok(())
    } else {
        Err(StorageError::OutOfRange { lo, hi, len })
    }
}

impl SyncIndex for MemoryIndex {
    fn len(&mut self) -> Result<u64, StorageError> {
        Ok(self.keys.len() as u64)
    }

    fn lower_bound(&mut self, bound: &Bound) -> Result<u64, StorageError> {
        Ok(match bound {
            Bound::Infinity => self.keys.len(),
            Bound::Key(b) => self.keys.partition_point(|k| k < b),
        } as u64)
    }

    fn key_at(&mut self, pos: u64) -> Result<SyncKey, StorageError> {
        check_range(pos, pos.saturating_add(1), self.keys.len() as u64)?;
        Ok(self.keys[pos as usize])
    }

    fn accumulate(&mut self, lo: u64, hi: u64) -> Result<Accumulator, StorageError> {
        check_range(lo, hi, self.keys.len() as u64)?;
        Ok(self.prefix[hi as usize].minus(&self.prefix[lo as usize]))
    }

    fn keys(&mut self, lo: u64, hi: u64) -> Result<Vec<SyncKey>, StorageError> {
        check_range(lo, hi, self.keys.len() as u64)?;
        Ok(self.keys[lo as usize..hi as usize].to_vec())
    }

    fn contains(&mut self, key: &SyncKey) -> Result<bool, StorageError> {
        Ok(self.keys.binary_search(key).is_ok())
    }

    fn added_since(
        &mut self,
        seq: u64,
        limit: usize,
    ) -> Result<Option<Vec<SyncKey>>, StorageError> {
        let new = self.log.get(seq as usize..).unwrap_or(&[]);
        Ok((new.len() <= limit).then(|| new.to_vec()))
    }
}
