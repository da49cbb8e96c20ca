//! Keeping the blocks in step with the entries: the block an item lands in is rewritten, cut
//! at content-defined boundaries (and in half when oversized), merged back when a purge
//! removes a block's first item. The block the last insert changed is held in memory until
//! an insert lands elsewhere (or the transaction ends), so a run of inserts into one block
//! (a batch in time order) reads and writes it once, not once per item.

use std::collections::{BTreeSet, HashMap};

use redb::{ReadableTable, Table};

use super::{is_boundary, BLOCK_MAX};
use crate::error::StorageError;
use crate::format::layout::{SYNC_BLOCKS, SYNC_BLOCK_ITEMS, SYNC_LOG, SYNC_TOTALS};
use crate::format::sync_index::{pack, unpack, BlockSummary};
use crate::sync::{Accumulator, SyncKey};

/// The sync tables of one write transaction, and which blocks it touched.
pub(crate) struct SyncTables<'txn> {
    items: Table<'txn, (&'static str, [u8; 40]), &'static [u8]>,
    blocks: Table<'txn, (&'static str, [u8; 40]), [u8; 84]>,
    totals: Table<'txn, &'static str, [u8; 40]>,
    log: Table<'txn, (&'static str, u64), [u8; 40]>,
    /// Running totals of the collections this transaction touched, written at the end.
    pending_totals: HashMap<String, Accumulator>,
    /// Block first keys written or removed, per collection.
    pub(crate) touched: HashMap<String, BTreeSet<[u8; 40]>>,
    /// The block the last insert changed, not written yet: its collection and items. Every
    /// other block is as the tables say; this one's first item may not be in them yet (a
    /// block just cut off), or may still name its items before the last inserts.
    pending: Option<(String, Vec<SyncKey>)>,
}

impl<'txn> SyncTables<'txn> {
    pub(crate) fn open(tx: &'txn redb::WriteTransaction) -> Result<Self, StorageError> {
        Ok(SyncTables {
            items: tx.open_table(SYNC_BLOCK_ITEMS)?,
            blocks: tx.open_table(SYNC_BLOCKS)?,
            totals: tx.open_table(SYNC_TOTALS)?,
            log: tx.open_table(SYNC_LOG)?,
            pending_totals: HashMap::new(),
            touched: HashMap::new(),
            pending: None,
        })
    }

    /// The running total of collection `c` in this transaction.
    fn total_mut(&mut self, c: &str) -> Result<&mut Accumulator, StorageError> {
        if !self.pending_totals.contains_key(c) {
            let stored = self
                .totals
                .get(c)?
                .map(|v| Accumulator::from_bytes(&v.value()))
                .unwrap_or_default();
            self.pending_totals.insert(c.to_owned(), stored);
        }
        Ok(self.pending_totals.get_mut(c).expect("inserted above"))
    }

    /// Adds a new item (never one already present) of collection `c`, inserted as number `seq`.
    pub(crate) fn insert(&mut self, c: &str, k: SyncKey, seq: u64) -> Result<(), StorageError> {
        self.log.insert((c, seq), k.to_bytes())?;
        self.total_mut(c)?.add(&k.id);

        let kb = k.to_bytes();
        let in_table = self.block_first_at_or_before(c, &kb)?;
        // k lands in the pending block when that block starts at or below k and no block of
        // the tables starts between its first item and k.
        let lands_in_pending = match &self.pending {
            Some((pc, keys)) => {
                pc == c && keys[0] <= k && in_table.is_none_or(|f| f <= keys[0].to_bytes())
            }
            None => false,
        };
        let keys = if lands_in_pending {
            let (_, mut keys) = self.pending.take().expect("checked above");
            let at = keys.partition_point(|x| *x < k);
            keys.insert(at, k);
            self.split_at_boundary(c, keys, at, &k)?
        } else {
            self.flush()?;
            match in_table {
                Some(first) => {
                    let mut keys = self.block_items(c, &first)?;
                    let at = keys.partition_point(|x| *x < k);
                    keys.insert(at, k);
                    self.split_at_boundary(c, keys, at, &k)?
                }
                None => {
                    // k is below every block: it joins the first block unless that one starts
                    // at a boundary item, in which case k is a block of its own.
                    match self.next_block_first(c, &kb)? {
                        Some(first) if !is_boundary(&SyncKey::from_bytes(&first)) => {
                            let mut keys = self.block_items(c, &first)?;
                            self.remove_block(c, first)?;
                            keys.insert(0, k);
                            keys
                        }
                        _ => vec![k],
                    }
                }
            }
        };
        let keys = self.cut_if_oversized(c, keys)?;
        self.pending = Some((c.to_owned(), keys));
        Ok(())
    }

    /// A block with k just inserted at `at`: if k starts a block, the items below it are
    /// written as their block and k's new block is returned; otherwise the whole block.
    fn split_at_boundary(
        &mut self,
        c: &str,
        mut keys: Vec<SyncKey>,
        at: usize,
        k: &SyncKey,
    ) -> Result<Vec<SyncKey>, StorageError> {
        if is_boundary(k) && at > 0 {
            let upper = keys.split_off(at);
            self.write_block(c, &keys)?;
            return Ok(upper);
        }
        Ok(keys)
    }

    /// Writes the pending block, if any.
    fn flush(&mut self) -> Result<(), StorageError> {
        if let Some((c, keys)) = self.pending.take() {
            self.write_block(&c, &keys)?;
        }
        Ok(())
    }

    /// Removes an item of collection `c` that was inserted as number `seq` (a purge). Where the
    /// item started its block, the rest of the block joins the one before unless it starts at
    /// a boundary item itself, so blocks keep starting where another server's would.
    pub(crate) fn remove(&mut self, c: &str, k: SyncKey, seq: u64) -> Result<(), StorageError> {
        let missing = || StorageError::Damaged(format!("sync index item {k:?} is missing"));
        self.flush()?;
        self.log.remove((c, seq))?;
        let mut single = Accumulator::default();
        single.add(&k.id);
        let total = self.total_mut(c)?;
        *total = total.minus(&single);
        let kb = k.to_bytes();
        let first = self.block_first_at_or_before(c, &kb)?.ok_or_else(missing)?;
        let mut keys = self.block_items(c, &first)?;
        let at = keys.binary_search(&k).map_err(|_| missing())?;
        keys.remove(at);
        if at > 0 {
            return self.write_block(c, &keys);
        }
        self.remove_block(c, first)?;
        let Some(&new_first) = keys.first() else {
            return Ok(());
        };
        if is_boundary(&new_first) {
            return self.write_block(c, &keys);
        }
        match self.block_first_at_or_before(c, &new_first.to_bytes())? {
            Some(prev) => {
                let mut merged = self.block_items(c, &prev)?;
                merged.extend(keys);
                let last = self.cut_if_oversized(c, merged)?;
                self.write_block(c, &last)
            }
            None => self.write_block(c, &keys),
        }
    }

    /// Writes the pending block and the running totals; call once, before the commit.
    pub(crate) fn finish(&mut self) -> Result<(), StorageError> {
        self.flush()?;
        for (c, acc) in std::mem::take(&mut self.pending_totals) {
            if acc.count() == 0 {
                self.totals.remove(c.as_str())?;
            } else {
                self.totals.insert(c.as_str(), acc.to_bytes())?;
            }
        }
        Ok(())
    }

    fn touch(&mut self, c: &str, first: [u8; 40]) {
        self.touched.entry(c.to_owned()).or_default().insert(first);
    }

    fn write_block(&mut self, c: &str, keys: &[SyncKey]) -> Result<(), StorageError> {
        let summary = BlockSummary::of(keys)
            .ok_or_else(|| StorageError::Damaged("an empty sync index block".into()))?;
        let first = summary.first.to_bytes();
        self.items.insert((c, first), pack(keys).as_slice())?;
        self.blocks.insert((c, first), summary.encode())?;
        self.touch(c, first);
        Ok(())
    }

    fn remove_block(&mut self, c: &str, first: [u8; 40]) -> Result<(), StorageError> {
        self.items.remove((c, first))?;
        self.blocks.remove((c, first))?;
        self.touch(c, first);
        Ok(())
    }

    fn block_items(&self, c: &str, first: &[u8; 40]) -> Result<Vec<SyncKey>, StorageError> {
        let v = self
            .items
            .get((c, *first))?
            .ok_or_else(|| StorageError::Damaged("a sync index block is missing".into()))?;
        unpack(v.value())
    }

    fn block_first_at_or_before(
        &self,
        c: &str,
        kb: &[u8; 40],
    ) -> Result<Option<[u8; 40]>, StorageError> {
        match self.blocks.range((c, [0u8; 40])..=(c, *kb))?.next_back() {
            Some(row) => Ok(Some(row?.0.value().1)),
            None => Ok(None),
        }
    }

    fn next_block_first(&self, c: &str, kb: &[u8; 40]) -> Result<Option<[u8; 40]>, StorageError> {
        use std::ops::Bound as B;
        let mut range = self
            .blocks
            .range::<(&str, [u8; 40])>((B::Excluded((c, *kb)), B::Unbounded))?;
        match range.next() {
            Some(row) => {
                let (k, _) = row?;
                let (coll, first) = k.value();
                Ok((coll == c).then_some(first))
            }
            None => Ok(None),
        }
    }

    /// Cuts a block in two halves when it has grown past [`BLOCK_MAX`]: writes the lower
    /// half and returns the upper one (the whole block when it is within the limit), for the
    /// caller to write.
    fn cut_if_oversized(
        &mut self,
        c: &str,
        mut keys: Vec<SyncKey>,
    ) -> Result<Vec<SyncKey>, StorageError> {
        if keys.len() as u64 <= BLOCK_MAX {
            return Ok(keys);
        }
        let upper = keys.split_off(keys.len() / 2);
        self.write_block(c, &keys)?;
        Ok(upper)
    }
}
