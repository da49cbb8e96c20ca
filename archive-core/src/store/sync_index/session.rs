//! A reconciliation session's view of one collection: one read transaction and the matching
//! summaries; blocks it needs inside are read once, in place, within a memory budget.

use std::sync::Arc;

use super::summaries::{Summaries, SummaryCache};
use crate::error::StorageError;
use crate::format::layout::{ENTRIES, SYNC_BLOCK_ITEMS, SYNC_LOG, SYNC_TOTALS};
use crate::format::sync_index::{packed_id, packed_item, packed_less};
use crate::store::guarded;
use crate::sync::{check_range, even_split, Accumulator, Bound, SyncIndex, SyncKey};

/// Items between two prefix checkpoints of a loaded block.
const CHECKPOINT_STRIDE: usize = 8;

/// Packed item bytes a session keeps loaded before it lets go of them (and reads again if
/// asked again): bounds the memory a session can hold, whatever the other side asks for.
const LOADED_BYTES_BUDGET: usize = 16 * 1024 * 1024;

/// A block read in this session: its packed items as stored, in redb's page (no copy, no
/// parse), and the running sum at every [`CHECKPOINT_STRIDE`]-th item.
struct LoadedBlock {
    items: redb::AccessGuard<'static, &'static [u8]>,
    /// `checkpoints[j]`: sum and count of the block's items `..j * CHECKPOINT_STRIDE`.
    checkpoints: Vec<Accumulator>,
}

impl LoadedBlock {
    fn bytes(&self) -> &[u8] {
        self.items.value()
    }

    fn len(&self) -> usize {
        self.bytes().len() / 40
    }

    fn item(&self, i: usize) -> &[u8; 40] {
        packed_item(self.bytes(), i)
    }

    fn key(&self, i: usize) -> SyncKey {
        SyncKey::from_bytes(self.item(i))
    }

    /// Items below `bound`, by binary search over the packed items.
    fn lower_bound(&self, bound: &[u8; 40]) -> usize {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if packed_less(self.item(mid), bound) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Sum and count of the block's items `..i`.
    fn prefix(&self, i: usize) -> Accumulator {
        let j = i / CHECKPOINT_STRIDE;
        let mut acc = self.checkpoints[j];
        for at in j * CHECKPOINT_STRIDE..i {
            acc.add_bytes(packed_id(self.item(at)));
        }
        acc
    }
}

impl std::fmt::Debug for LoadedBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedBlock")
            .field("items", &self.len())
            .finish()
    }
}

/// One collection's items, as of one moment, for a reconciliation session.
#[derive(Debug)]
pub struct StoreSyncIndex {
    collection: String,
    summaries: Arc<Summaries>,
    items: redb::ReadOnlyTable<(&'static str, [u8; 40]), &'static [u8]>,
    log: redb::ReadOnlyTable<(&'static str, u64), [u8; 40]>,
    entries: redb::ReadOnlyTable<[u8; 40], &'static [u8]>,
    total: Accumulator,
    /// Blocks read in this session, by block number.
    loaded: Vec<Option<Box<LoadedBlock>>>,
    /// Packed bytes of the blocks in `loaded`.
    loaded_bytes: usize,
    /// Most packed bytes kept in `loaded` ([`LOADED_BYTES_BUDGET`]; smaller in tests).
    loaded_budget: usize,
    /// The block of the last lookup: where the next search starts.
    hint: usize,
}

impl Drop for StoreSyncIndex {
    /// Lets go of the loaded blocks before the tables: they are guards on the read
    /// transaction's pages, and the tables hold the transaction open. Dropped the other way
    /// round (fields drop in order), the transaction ended while its pages were still held,
    /// and a commit in that instant could free them (redb's debug build asserts on it; a
    /// release build would keep reading the freed copy).
    fn drop(&mut self) {
        self.loaded.clear();
    }
}

impl StoreSyncIndex {
    pub(crate) fn open(
        db: &redb::Database,
        cache: &SummaryCache,
        collection: &str,
    ) -> Result<Self, StorageError> {
        let (tx, summaries) = cache.snapshot(db, collection)?;
        let total = tx
            .open_table(SYNC_TOTALS)?
            .get(collection)?
            .map(|v| Accumulator::from_bytes(&v.value()))
            .unwrap_or_default();
        if total.count() != summaries.len() {
            return Err(StorageError::Damaged(format!(
                "sync index of `{collection}`: blocks hold {} items, the total says {}",
                summaries.len(),
                total.count()
            )));
        }
        Ok(StoreSyncIndex {
            collection: collection.to_owned(),
            summaries,
            items: tx.open_table(SYNC_BLOCK_ITEMS)?,
            log: tx.open_table(SYNC_LOG)?,
            entries: tx.open_table(ENTRIES)?,
            total,
            loaded: Vec::new(),
            loaded_bytes: 0,
            loaded_budget: LOADED_BYTES_BUDGET,
            hint: 0,
        })
    }

    /// Block `i` (read once per session while the budget allows): one database read, then
    /// one pass over the stored bytes that checks order and sum against the block's summary
    /// and keeps a running sum every [`CHECKPOINT_STRIDE`] items.
    fn load(&mut self, i: usize) -> Result<&LoadedBlock, StorageError> {
        if self.loaded.len() <= i {
            self.loaded.resize_with(i + 1, || None);
        }
        if self.loaded[i].is_none() {
            // The one place a session reads the database: guarded, so a damaged file is an
            // error rather than a panic (the cached path below stays free of the guard).
            let block = guarded(|| self.read_block(i))?;
            let size = block.items.value().len();
            if self.loaded_bytes + size > self.loaded_budget {
                self.loaded.iter_mut().for_each(|b| *b = None);
                self.loaded_bytes = 0;
            }
            self.loaded_bytes += size;
            self.loaded[i] = Some(block);
        }
        Ok(self.loaded[i].as_deref().expect("just loaded"))
    }

    /// Reads block `i` and checks it against its summary.
    fn read_block(&self, i: usize) -> Result<Box<LoadedBlock>, StorageError> {
        let b = self.summaries.blocks[i];
        let c = self.collection.as_str();
        let damaged = || {
            StorageError::Damaged(format!(
                "sync index of `{c}`: a block's items disagree with its summary"
            ))
        };
        let items = self
            .items
            .get((c, b.first.to_bytes()))?
            .ok_or_else(damaged)?;
        let bytes = items.value();
        if bytes.is_empty() || bytes.len() as u64 != b.acc.count().saturating_mul(40) {
            return Err(damaged());
        }
        let mut checkpoints = Vec::with_capacity(bytes.len() / 40 / CHECKPOINT_STRIDE + 1);
        let mut acc = Accumulator::default();
        let mut prev: Option<&[u8; 40]> = None;
        for (n, item) in bytes.chunks_exact(40).enumerate() {
            let item: &[u8; 40] = item.try_into().expect("40 bytes");
            if n % CHECKPOINT_STRIDE == 0 {
                checkpoints.push(acc);
            }
            if prev.is_some_and(|p| !packed_less(p, item)) {
                return Err(damaged());
            }
            acc.add_bytes(packed_id(item));
            prev = Some(item);
        }
        let first = SyncKey::from_bytes(bytes[..40].try_into().expect("40 bytes"));
        let last = SyncKey::from_bytes(bytes[bytes.len() - 40..].try_into().expect("40"));
        if acc != b.acc || first != b.first || last != b.last {
            return Err(damaged());
        }
        Ok(Box::new(LoadedBlock { items, checkpoints }))
    }

    fn block_of(&mut self, pos: u64) -> usize {
        self.hint = self.summaries.block_of(pos, self.hint);
        self.hint
    }

    fn prefix(&mut self, pos: u64) -> Result<Accumulator, StorageError> {
        if pos >= self.summaries.len() {
            return Ok(*self.summaries.cum_acc.last().expect("non-empty"));
        }
        let i = self.block_of(pos);
        let start = self.summaries.cum_count[i];
        let base = self.summaries.cum_acc[i];
        if pos == start {
            return Ok(base);
        }
        let mut acc = base;
        acc.merge(&self.load(i)?.prefix((pos - start) as usize));
        Ok(acc)
    }
}

/// The index's reads. [`SyncIndex`] below checks the positions it is given first; the
/// database reads (`read_block`, `contains`, `added_since`) run inside [`guarded`].
impl StoreSyncIndex {
    fn read_len(&mut self) -> Result<u64, StorageError> {
        Ok(self.summaries.len())
    }

    fn read_lower_bound(&mut self, bound: &Bound) -> Result<u64, StorageError> {
        let Bound::Key(b) = bound else {
            return Ok(self.summaries.len());
        };
        let j = self.summaries.blocks_below(b, self.hint);
        self.hint = j.saturating_sub(1);
        if j == 0 {
            return Ok(0);
        }
        let i = j - 1;
        if self.summaries.blocks[i].last < *b {
            return Ok(self.summaries.cum_count[j]);
        }
        let start = self.summaries.cum_count[i];
        let bound = b.to_bytes();
        Ok(start + self.load(i)?.lower_bound(&bound) as u64)
    }

    fn read_key_at(&mut self, pos: u64) -> Result<SyncKey, StorageError> {
        let i = self.block_of(pos);
        let start = self.summaries.cum_count[i];
        if pos == start {
            return Ok(self.summaries.blocks[i].first);
        }
        if pos + 1 == self.summaries.cum_count[i + 1] {
            return Ok(self.summaries.blocks[i].last);
        }
        Ok(self.load(i)?.key((pos - start) as usize))
    }

    fn read_accumulate(&mut self, lo: u64, hi: u64) -> Result<Accumulator, StorageError> {
        let upper = self.prefix(hi)?;
        Ok(upper.minus(&self.prefix(lo)?))
    }

    fn read_keys(&mut self, lo: u64, hi: u64) -> Result<Vec<SyncKey>, StorageError> {
        let mut out = Vec::with_capacity((hi - lo) as usize);
        let mut pos = lo;
        while pos < hi {
            let i = self.block_of(pos);
            let start = self.summaries.cum_count[i];
            let end = self.summaries.cum_count[i + 1].min(hi);
            let block = self.load(i)?;
            out.extend(((pos - start) as usize..(end - start) as usize).map(|at| block.key(at)));
            pos = end;
        }
        Ok(out)
    }

    /// Prefers block starts (no block read needed on either side); splits inside blocks only
    /// when the range spans too few of them.
    fn read_split_points(
        &mut self,
        lo: u64,
        hi: u64,
        parts: u64,
    ) -> Result<Vec<u64>, StorageError> {
        let cc = &self.summaries.cum_count;
        let first = cc.partition_point(|c| *c <= lo);
        let last = cc.partition_point(|c| *c < hi);
        let starts = &cc[first..last];
        if (starts.len() as u64) < parts / 2 {
            return Ok(even_split(lo, hi, parts));
        }
        let mut out = Vec::with_capacity(parts as usize);
        for k in 1..parts {
            let target = lo + (hi - lo) * k / parts;
            let at = starts.partition_point(|s| *s < target);
            let pick = match (at.checked_sub(1).map(|x| starts[x]), starts.get(at)) {
                (Some(a), Some(b)) => {
                    if target - a <= b - target {
                        a
                    } else {
                        *b
                    }
                }
                (Some(a), None) => a,
                (None, Some(b)) => *b,
                (None, None) => continue,
            };
            if out.last() != Some(&pick) {
                out.push(pick);
            }
        }
        Ok(out)
    }

    fn read_contains(&mut self, key: &SyncKey) -> Result<bool, StorageError> {
        Ok(self.entries.get(key.to_bytes())?.is_some())
    }

    fn read_total(&mut self) -> Result<Accumulator, StorageError> {
        Ok(self.total)
    }

    fn read_added_since(
        &mut self,
        seq: u64,
        limit: usize,
    ) -> Result<Option<Vec<SyncKey>>, StorageError> {
        let c = self.collection.as_str();
        let mut out = Vec::new();
        for row in self.log.range((c, seq)..=(c, u64::MAX))? {
            if out.len() == limit {
                return Ok(None);
            }
            out.push(SyncKey::from_bytes(&row?.1.value()));
        }
        Ok(Some(out))
    }
}

impl SyncIndex for StoreSyncIndex {
    fn len(&mut self) -> Result<u64, StorageError> {
        self.read_len()
    }

    fn lower_bound(&mut self, bound: &Bound) -> Result<u64, StorageError> {
        self.read_lower_bound(bound)
    }

    fn key_at(&mut self, pos: u64) -> Result<SyncKey, StorageError> {
        check_range(pos, pos.saturating_add(1), self.summaries.len())?;
        self.read_key_at(pos)
    }

    fn accumulate(&mut self, lo: u64, hi: u64) -> Result<Accumulator, StorageError> {
        check_range(lo, hi, self.summaries.len())?;
        self.read_accumulate(lo, hi)
    }

    fn keys(&mut self, lo: u64, hi: u64) -> Result<Vec<SyncKey>, StorageError> {
        check_range(lo, hi, self.summaries.len())?;
        self.read_keys(lo, hi)
    }

    fn split_points(&mut self, lo: u64, hi: u64, parts: u64) -> Result<Vec<u64>, StorageError> {
        check_range(lo, hi, self.summaries.len())?;
        self.read_split_points(lo, hi, parts)
    }

    fn contains(&mut self, key: &SyncKey) -> Result<bool, StorageError> {
        guarded(|| self.read_contains(key))
    }

    fn total(&mut self) -> Result<Accumulator, StorageError> {
        self.read_total()
    }

    fn added_since(
        &mut self,
        seq: u64,
        limit: usize,
    ) -> Result<Option<Vec<SyncKey>>, StorageError> {
        guarded(|| self.read_added_since(seq, limit))
    }
}

#[cfg(test)]
mod tests {
    use super::super::summaries::partition_point_near;
    use crate::sync::{Bound, MemoryIndex, SyncIndex, SyncKey};
    use crate::StorageError;
    use crate::{Entry, EntryValue, SecretKey, SignedEntry, Store, Timestamp};
    use proptest::prelude::*;

    /// A store whose collection `c` holds `n` tombstones at the times `time(i)`, and the
    /// same items as a model.
    fn store_and_model(
        n: u64,
        time: impl Fn(u64) -> u64,
    ) -> (tempfile::TempDir, Store, MemoryIndex) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::init(dir.path()).unwrap();
        let key = SecretKey::from_bytes([7; 32]);
        let entries: Vec<SignedEntry> = (0..n)
            .map(|i| {
                let entry = Entry {
                    collection: "c".into(),
                    key: format!("k{i}"),
                    value: EntryValue::Tombstone,
                    author: key.public(),
                    time: Timestamp::from_raw(time(i)),
                    meta: crate::FileMeta::default(),
                    message: crate::MessageFields::default(),
                };
                SignedEntry::sign(entry, &key).unwrap()
            })
            .collect();
        store.insert_entries(&entries).unwrap();
        let model = MemoryIndex::new(entries.iter().map(|e| SyncKey {
            time: e.entry().time.raw(),
            id: e.id(),
        }));
        (dir, store, model)
    }

    #[test]
    fn a_session_over_its_memory_budget_reads_blocks_again_and_stays_exact() {
        let (_dir, store, mut model) = store_and_model(3_000, |i| 1_000 + (i * 7_919) % 3_000);
        let mut index = store.sync_index("c").unwrap();
        // Room for about two blocks: walking the collection twice evicts again and again.
        index.loaded_budget = 2 * 256 * 40;
        let n = model.len().unwrap();
        for _ in 0..2 {
            for p in (0..n).step_by(5) {
                assert_eq!(index.key_at(p).unwrap(), model.key_at(p).unwrap());
                assert_eq!(
                    index.accumulate(p / 2, p).unwrap(),
                    model.accumulate(p / 2, p).unwrap()
                );
                let k = model.key_at(p).unwrap();
                assert_eq!(
                    index.lower_bound(&Bound::Key(k)).unwrap(),
                    model.lower_bound(&Bound::Key(k)).unwrap()
                );
            }
        }
        // Blocks were let go of: fewer are held than exist, within the budget (a block larger
        // than the whole budget is held alone).
        let held = index.loaded.iter().flatten().count();
        assert!(
            held >= 1 && held < index.summaries.blocks.len(),
            "{held} held"
        );
        assert!(held == 1 || index.loaded_bytes <= index.loaded_budget);
    }

    #[test]
    fn positions_outside_the_index_are_errors_not_panics() {
        let (_dir, store, model) = store_and_model(600, |i| 1_000 + i);
        let store_index: Box<dyn SyncIndex> = Box::new(store.sync_index("c").unwrap());
        for mut index in [store_index, Box::new(model) as Box<dyn SyncIndex>] {
            let n = index.len().unwrap();
            assert_eq!(n, 600);
            let out_of_range = |r: Result<_, StorageError>| {
                matches!(r, Err(StorageError::OutOfRange { len: 600, .. }))
            };
            assert!(out_of_range(index.key_at(n).map(|_| ())));
            assert!(out_of_range(index.key_at(u64::MAX).map(|_| ())));
            assert!(out_of_range(index.keys(10, 5).map(|_| ())));
            assert!(out_of_range(index.keys(0, n + 1).map(|_| ())));
            assert!(out_of_range(index.accumulate(7, 3).map(|_| ())));
            assert!(out_of_range(index.accumulate(0, u64::MAX).map(|_| ())));
            // In range still works, up to the end.
            assert_eq!(index.keys(n - 2, n).unwrap().len(), 2);
            assert_eq!(index.accumulate(0, n).unwrap(), index.total().unwrap());
        }
    }

    proptest! {
        #[test]
        fn galloping_search_equals_partition_point_from_every_hint(
            mut values in proptest::collection::vec(0u32..64, 0..80),
            probe in 0u32..66,
        ) {
            values.sort_unstable();
            let expected = values.partition_point(|v| *v < probe);
            for hint in 0..values.len() + 2 {
                prop_assert_eq!(
                    partition_point_near(&values, hint, |v| *v < probe),
                    expected,
                    "hint {}", hint
                );
            }
        }
    }
}
