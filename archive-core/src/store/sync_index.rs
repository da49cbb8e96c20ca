//! The persisted sync index: range fingerprints in O(log n) without scanning a collection.
//!
//! Items are grouped into blocks, each stored packed in one `sync-block-items-v1` value (one
//! read per block), with its summary (count, sum, last item) in `sync-blocks-v1`; both are
//! updated in the same transaction as the entry insert (one block rewritten per insert). The
//! summaries of a collection are cached in memory (O(n / 256) entries, loaded once, then
//! patched at every commit, never rebuilt from items), so a fingerprint at a block boundary
//! costs two searches in memory.
//!
//! A session that needs a position inside a block reads that block once: in place, in redb's
//! page (no copy, no parse), with one pass that checks it against its summary and keeps a
//! running sum every [`CHECKPOINT_STRIDE`] items. A session's lookups ascend through the key
//! space, so every search starts from the block of the previous one.
//!
//! Block boundaries are content-defined (an id starting with a zero byte), so two servers'
//! blocks mostly coincide and the bounds one side sends fall on the other's block boundaries.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use redb::{ReadableDatabase, ReadableTable, Table};

use crate::entry::EntryId;
use crate::error::StorageError;
use crate::format::layout::{
    ENTRIES, SYNC_BLOCKS, SYNC_BLOCK_ITEMS, SYNC_LOG, SYNC_PEERS, SYNC_TOTALS,
};
use crate::sync::{even_split, Accumulator, Agreement, Bound, SyncIndex, SyncKey};

/// Blocks are cut in half above this many items (only ids chosen to avoid boundaries get here).
const BLOCK_MAX: u64 = 1024;

fn is_boundary(k: &SyncKey) -> bool {
    k.id.as_bytes()[0] == 0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BlockSummary {
    first: SyncKey,
    last: SyncKey,
    acc: Accumulator,
}

impl BlockSummary {
    fn encode(&self) -> [u8; 84] {
        let mut out = [0u8; 84];
        out[..4].copy_from_slice(&(self.acc.count() as u32).to_le_bytes());
        out[4..44].copy_from_slice(&self.acc.to_bytes());
        out[44..].copy_from_slice(&self.last.to_bytes());
        out
    }

    fn decode(first: [u8; 40], v: &[u8; 84]) -> Result<Self, StorageError> {
        let acc = Accumulator::from_bytes(v[4..44].try_into().expect("40 bytes"));
        let count = u32::from_le_bytes(v[..4].try_into().expect("4 bytes"));
        if u64::from(count) != acc.count() || count == 0 {
            return Err(StorageError::Damaged(
                "a sync index block has inconsistent counts".into(),
            ));
        }
        Ok(BlockSummary {
            first: SyncKey::from_bytes(&first),
            last: SyncKey::from_bytes(v[44..].try_into().expect("40 bytes")),
            acc,
        })
    }
}

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
}

fn pack(keys: &[SyncKey]) -> Vec<u8> {
    let mut out = Vec::with_capacity(keys.len() * 40);
    for k in keys {
        out.extend_from_slice(&k.to_bytes());
    }
    out
}

fn unpack(bytes: &[u8]) -> Result<Vec<SyncKey>, StorageError> {
    if !bytes.len().is_multiple_of(40) || bytes.is_empty() {
        return Err(StorageError::Damaged(
            "a sync index block has a torn item list".into(),
        ));
    }
    let keys: Vec<SyncKey> = bytes
        .chunks_exact(40)
        .map(|c| SyncKey::from_bytes(c.try_into().expect("40 bytes")))
        .collect();
    if keys.windows(2).any(|w| w[0] >= w[1]) {
        return Err(StorageError::Damaged(
            "a sync index block is not sorted".into(),
        ));
    }
    Ok(keys)
}

fn summarize(keys: &[SyncKey]) -> BlockSummary {
    let mut acc = Accumulator::default();
    for k in keys {
        acc.add(&k.id);
    }
    BlockSummary {
        first: keys[0],
        last: *keys.last().expect("blocks are never empty"),
        acc,
    }
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
        Ok(self.pending_totals.get_mut(c).expect("just inserted"))
    }

    /// Adds a new item (never one already present) of collection `c`, inserted as number `seq`.
    pub(crate) fn insert(&mut self, c: &str, k: SyncKey, seq: u64) -> Result<(), StorageError> {
        self.log.insert((c, seq), k.to_bytes())?;
        self.total_mut(c)?.add(&k.id);

        let kb = k.to_bytes();
        match self.block_first_at_or_before(c, &kb)? {
            Some(first) => {
                let mut keys = self.block_items(c, &first)?;
                let at = keys.partition_point(|x| *x < k);
                keys.insert(at, k);
                if is_boundary(&k) && at > 0 {
                    // k starts a block: it and the items above it move into a new one.
                    let upper = keys.split_off(at);
                    self.write_block(c, &keys)?;
                    self.write_block(c, &upper)?;
                    self.cut_if_oversized(c, upper)?;
                } else {
                    self.write_block(c, &keys)?;
                    self.cut_if_oversized(c, keys)?;
                }
            }
            None => {
                // k is below every block: it joins the first block unless that one starts at
                // a boundary item, in which case k is a block of its own.
                match self.next_block_first(c, &kb)? {
                    Some(first) if !is_boundary(&SyncKey::from_bytes(&first)) => {
                        let mut keys = self.block_items(c, &first)?;
                        self.remove_block(c, first)?;
                        keys.insert(0, k);
                        self.write_block(c, &keys)?;
                        self.cut_if_oversized(c, keys)?;
                    }
                    _ => self.write_block(c, &[k])?,
                }
            }
        }
        Ok(())
    }

    /// Removes an item of collection `c` that was inserted as number `seq` (a purge). Where the
    /// item started its block, the rest of the block joins the one before unless it starts at
    /// a boundary item itself, so blocks keep starting where another server's would.
    pub(crate) fn remove(&mut self, c: &str, k: SyncKey, seq: u64) -> Result<(), StorageError> {
        let missing = || StorageError::Damaged(format!("sync index item {k:?} is missing"));
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
                self.write_block(c, &merged)?;
                self.cut_if_oversized(c, merged)
            }
            None => self.write_block(c, &keys),
        }
    }

    /// Writes the running totals; call once, before the commit.
    pub(crate) fn finish(&mut self) -> Result<(), StorageError> {
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
        let summary = summarize(keys);
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

    /// Cuts a block in two halves when it has grown past [`BLOCK_MAX`].
    fn cut_if_oversized(&mut self, c: &str, mut keys: Vec<SyncKey>) -> Result<(), StorageError> {
        if keys.len() as u64 <= BLOCK_MAX {
            return Ok(());
        }
        let upper = keys.split_off(keys.len() / 2);
        self.write_block(c, &keys)?;
        self.write_block(c, &upper)
    }
}

/// A collection's block summaries, ready for binary search.
#[derive(Debug, Default)]
struct Summaries {
    blocks: Vec<BlockSummary>,
    /// `cum_count[i]`: items before block i; one extra element at the end (the total).
    cum_count: Vec<u64>,
    cum_acc: Vec<Accumulator>,
}

impl Summaries {
    fn from_map(map: &BTreeMap<[u8; 40], BlockSummary>) -> Self {
        let blocks: Vec<BlockSummary> = map.values().copied().collect();
        let mut cum_count = Vec::with_capacity(blocks.len() + 1);
        let mut cum_acc = Vec::with_capacity(blocks.len() + 1);
        let mut acc = Accumulator::default();
        cum_count.push(0);
        cum_acc.push(acc);
        for b in &blocks {
            acc.merge(&b.acc);
            cum_count.push(acc.count());
            cum_acc.push(acc);
        }
        Summaries {
            blocks,
            cum_count,
            cum_acc,
        }
    }

    fn len(&self) -> u64 {
        *self.cum_count.last().expect("at least one element")
    }

    /// The block holding position `pos` (< len), searched from block `hint` outwards.
    fn block_of(&self, pos: u64, hint: usize) -> usize {
        partition_point_near(&self.cum_count, hint, |c| *c <= pos) - 1
    }

    /// The number of blocks that start below `bound`, searched from block `hint` outwards.
    fn blocks_below(&self, bound: &SyncKey, hint: usize) -> usize {
        partition_point_near(&self.blocks, hint, |blk| blk.first < *bound)
    }
}

/// `slice.partition_point(pred)`, found by galloping from `hint`: a session asks about
/// ascending positions, so the answer is nearly always at or next to the previous one, and a
/// few probes near it beat a binary search over the whole collection's blocks.
fn partition_point_near<T>(slice: &[T], hint: usize, pred: impl Fn(&T) -> bool) -> usize {
    let n = slice.len();
    let hint = hint.min(n.saturating_sub(1));
    if n == 0 {
        return 0;
    }
    // Narrow to lo <= hi such that everything before lo satisfies pred and nothing from hi on
    // does, with a window that doubles as it moves away from the hint.
    let (mut lo, mut hi);
    if pred(&slice[hint]) {
        lo = hint + 1;
        let mut step = 1;
        hi = lo;
        while hi < n && pred(&slice[hi]) {
            lo = hi + 1;
            hi = (hi + step).min(n);
            step *= 2;
        }
    } else {
        hi = hint;
        let mut step = 1;
        lo = hi;
        while lo > 0 && !pred(&slice[lo - 1]) {
            hi = lo - 1;
            lo = lo.saturating_sub(step);
            step *= 2;
        }
    }
    // Now every element before `lo` satisfies pred and none from `hi` on does.
    lo + slice[lo..hi].partition_point(&pred)
}

#[derive(Debug, Default)]
struct CachedCollection {
    map: BTreeMap<[u8; 40], BlockSummary>,
    built: Arc<Summaries>,
}

/// Block summaries per collection, shared by sessions; guarded so that a session's read
/// transaction and its summaries always show the same commit.
#[derive(Debug, Default)]
pub(crate) struct SummaryCache {
    collections: Mutex<HashMap<String, CachedCollection>>,
}

impl SummaryCache {
    /// Commits `tx` and patches the cached summaries of the blocks it touched.
    pub(crate) fn commit(
        &self,
        db: &redb::Database,
        tx: redb::WriteTransaction,
        touched: HashMap<String, BTreeSet<[u8; 40]>>,
    ) -> Result<(), StorageError> {
        let mut cache = self
            .collections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tx.commit()?;
        if touched.keys().all(|c| !cache.contains_key(c)) {
            return Ok(());
        }
        let read = db.begin_read()?;
        let blocks = read.open_table(SYNC_BLOCKS)?;
        for (c, firsts) in touched {
            let Some(cached) = cache.get_mut(&c) else {
                continue;
            };
            for first in firsts {
                match blocks.get((c.as_str(), first))? {
                    Some(v) => {
                        cached
                            .map
                            .insert(first, BlockSummary::decode(first, &v.value())?);
                    }
                    None => {
                        cached.map.remove(&first);
                    }
                }
            }
            cached.built = Arc::new(Summaries::from_map(&cached.map));
        }
        Ok(())
    }

    /// A read transaction and the matching summaries of `collection` (loaded on first use).
    fn snapshot(
        &self,
        db: &redb::Database,
        collection: &str,
    ) -> Result<(redb::ReadTransaction, Arc<Summaries>), StorageError> {
        let mut cache = self
            .collections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let tx = db.begin_read()?;
        if let Some(c) = cache.get(collection) {
            return Ok((tx, c.built.clone()));
        }
        let blocks = tx.open_table(SYNC_BLOCKS)?;
        let mut map = BTreeMap::new();
        for row in blocks.range((collection, [0u8; 40])..=(collection, [0xff; 40]))? {
            let (k, v) = row?;
            let first = k.value().1;
            map.insert(first, BlockSummary::decode(first, &v.value())?);
        }
        drop(blocks);
        let built = Arc::new(Summaries::from_map(&map));
        cache.insert(
            collection.to_owned(),
            CachedCollection {
                map,
                built: built.clone(),
            },
        );
        Ok((tx, built))
    }
}

/// Items between two prefix checkpoints of a loaded block.
const CHECKPOINT_STRIDE: usize = 8;

/// Packed item bytes a session keeps loaded before it lets go of them (and reads again if
/// asked again): bounds the memory a session can hold, whatever the other side asks for.
const LOADED_BYTES_BUDGET: usize = 16 * 1024 * 1024;

/// `a < b` for two packed items: the big-endian time first (one integer compare), the id
/// only when the times are equal.
fn packed_less(a: &[u8; 40], b: &[u8; 40]) -> bool {
    let ta = u64::from_be_bytes(a[..8].try_into().expect("8 bytes"));
    let tb = u64::from_be_bytes(b[..8].try_into().expect("8 bytes"));
    ta < tb || (ta == tb && a[8..] < b[8..])
}

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
        self.bytes()[i * 40..i * 40 + 40]
            .try_into()
            .expect("40 bytes")
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
            acc.add_bytes(self.item(at)[8..].try_into().expect("32 bytes"));
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
    entries: redb::ReadOnlyTable<[u8; 32], &'static [u8]>,
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
            if bytes.len() as u64 != b.acc.count() * 40 {
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
                acc.add_bytes(item[8..].try_into().expect("32 bytes"));
                prev = Some(item);
            }
            let first = SyncKey::from_bytes(bytes[..40].try_into().expect("40 bytes"));
            let last = SyncKey::from_bytes(bytes[bytes.len() - 40..].try_into().expect("40"));
            if acc != b.acc || first != b.first || last != b.last {
                return Err(damaged());
            }
            let size = bytes.len();
            if self.loaded_bytes + size > self.loaded_budget {
                self.loaded.iter_mut().for_each(|b| *b = None);
                self.loaded_bytes = 0;
            }
            self.loaded_bytes += size;
            self.loaded[i] = Some(Box::new(LoadedBlock { items, checkpoints }));
        }
        Ok(self.loaded[i].as_deref().expect("just loaded"))
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

impl SyncIndex for StoreSyncIndex {
    fn len(&mut self) -> Result<u64, StorageError> {
        Ok(self.summaries.len())
    }

    fn lower_bound(&mut self, bound: &Bound) -> Result<u64, StorageError> {
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

    fn key_at(&mut self, pos: u64) -> Result<SyncKey, StorageError> {
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

    fn accumulate(&mut self, lo: u64, hi: u64) -> Result<Accumulator, StorageError> {
        let upper = self.prefix(hi)?;
        Ok(upper.minus(&self.prefix(lo)?))
    }

    fn keys(&mut self, lo: u64, hi: u64) -> Result<Vec<SyncKey>, StorageError> {
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
    fn split_points(&mut self, lo: u64, hi: u64, parts: u64) -> Result<Vec<u64>, StorageError> {
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

    fn contains_id(&mut self, id: &EntryId) -> Result<bool, StorageError> {
        Ok(self.entries.get(id.as_bytes())?.is_some())
    }

    fn total(&mut self) -> Result<Accumulator, StorageError> {
        Ok(self.total)
    }

    fn added_since(
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

/// Per-peer agreements.
pub(crate) fn read_agreement(
    tx: &redb::ReadTransaction,
    peer: &[u8; 32],
    collection: &str,
) -> Result<Option<Agreement>, StorageError> {
    let table = tx.open_table(SYNC_PEERS)?;
    Ok(table.get((*peer, collection))?.map(|v| {
        let (my_seq, their_seq) = v.value();
        Agreement { my_seq, their_seq }
    }))
}

/// Forgets every agreement about `collection` (its set lost entries, so "nothing changed
/// since" no longer holds).
pub(crate) fn forget_agreements(
    tx: &redb::WriteTransaction,
    collection: &str,
) -> Result<(), StorageError> {
    let mut table = tx.open_table(SYNC_PEERS)?;
    table.retain(|(_, c), _| c != collection)?;
    Ok(())
}

pub(crate) fn write_agreement(
    tx: &redb::WriteTransaction,
    peer: &[u8; 32],
    collection: &str,
    a: Agreement,
) -> Result<(), StorageError> {
    let mut table = tx.open_table(SYNC_PEERS)?;
    table.insert((*peer, collection), (a.my_seq, a.their_seq))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::partition_point_near;
    use crate::sync::{Bound, MemoryIndex, SyncIndex, SyncKey};
    use crate::{Entry, EntryValue, SecretKey, SignedEntry, Store, Timestamp};
    use proptest::prelude::*;

    #[test]
    fn a_session_over_its_memory_budget_reads_blocks_again_and_stays_exact() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::init(dir.path()).unwrap();
        let key = SecretKey::from_bytes([7; 32]);
        let entries: Vec<SignedEntry> = (0..3_000u64)
            .map(|i| {
                let entry = Entry {
                    collection: "c".into(),
                    key: format!("k{i}"),
                    value: EntryValue::Tombstone,
                    author: key.public(),
                    time: Timestamp::from_raw(1_000 + (i * 7_919) % 3_000),
                };
                SignedEntry::sign(entry, &key).unwrap()
            })
            .collect();
        store.insert_entries(&entries).unwrap();
        let mut model = MemoryIndex::new(entries.iter().map(|e| SyncKey {
            time: e.entry().time.raw(),
            id: e.id(),
        }));
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
