//! The persisted sync index: range fingerprints in O(log n) without scanning a collection.
//!
//! Items live in `sync-items-v1`; they are grouped into blocks whose summaries (count, sum,
//! last item) live in `sync-blocks-v1`, updated in the same transaction as the entry insert
//! (O(1) rows per insert, plus a scan of one block when a block is cut). The summaries of a
//! collection are cached in memory (O(n / 256) entries, loaded once, then patched at every
//! commit, never rebuilt from items), so a fingerprint at a block boundary costs two binary
//! searches, and one inside a block reads that block's rows once per session.
//!
//! Block boundaries are content-defined (an id starting with a zero byte), so two servers'
//! blocks mostly coincide and the bounds one side sends fall on the other's block boundaries.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use redb::{ReadableDatabase, ReadableTable, Table};

use crate::error::StorageError;
use crate::format::layout::{ENTRIES, SYNC_BLOCKS, SYNC_ITEMS, SYNC_LOG, SYNC_PEERS, SYNC_TOTALS};
use crate::sync::{even_split, Accumulator, Agreement, Bound, SyncIndex, SyncKey};

/// Blocks are cut in half above this many items (only ids chosen to avoid boundaries get here).
const BLOCK_MAX: u64 = 1024;

fn is_boundary(k: &SyncKey) -> bool {
    k.id[0] == 0
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
    items: Table<'txn, (&'static str, [u8; 40]), ()>,
    blocks: Table<'txn, (&'static str, [u8; 40]), [u8; 84]>,
    totals: Table<'txn, &'static str, [u8; 40]>,
    log: Table<'txn, (&'static str, u64), [u8; 40]>,
    /// Block first keys written or removed, per collection.
    pub(crate) touched: HashMap<String, BTreeSet<[u8; 40]>>,
}

impl<'txn> SyncTables<'txn> {
    pub(crate) fn open(tx: &'txn redb::WriteTransaction) -> Result<Self, StorageError> {
        Ok(SyncTables {
            items: tx.open_table(SYNC_ITEMS)?,
            blocks: tx.open_table(SYNC_BLOCKS)?,
            totals: tx.open_table(SYNC_TOTALS)?,
            log: tx.open_table(SYNC_LOG)?,
            touched: HashMap::new(),
        })
    }

    /// Adds a new item (never one already present) of collection `c`, inserted as number `seq`.
    pub(crate) fn insert(&mut self, c: &str, k: SyncKey, seq: u64) -> Result<(), StorageError> {
        let kb = k.to_bytes();
        self.items.insert((c, kb), ())?;
        self.log.insert((c, seq), kb)?;
        let mut total = self
            .totals
            .get(c)?
            .map(|v| Accumulator::from_bytes(&v.value()))
            .unwrap_or_default();
        total.add(&k.id);
        self.totals.insert(c, total.to_bytes())?;

        let prev = self.block_at_or_before(c, &kb)?;
        match prev {
            Some(mut block) if is_boundary(&k) => {
                // k starts a block: the items of `block` above k move into it.
                let next = self.next_block_first(c, &kb)?;
                let (moved, moved_last) = self.sum_items(c, &kb, next.as_ref())?;
                let mut new_acc = moved;
                new_acc.add(&k.id);
                let new_block = BlockSummary {
                    first: k,
                    last: moved_last.unwrap_or(k),
                    acc: new_acc,
                };
                if moved.count() > 0 {
                    block.acc = block.acc.minus(&moved);
                    block.last = self
                        .item_before(c, &kb)?
                        .expect("the block's first item is below k");
                }
                self.put_block(c, &block)?;
                self.put_block(c, &new_block)?;
            }
            Some(mut block) => {
                block.acc.add(&k.id);
                block.last = block.last.max(k);
                self.put_block(c, &block)?;
                self.cut_if_oversized(c, block)?;
            }
            None => {
                // k is below every block.
                let head = self.next_block_first(c, &kb)?;
                match head {
                    Some(first) if !is_boundary(&SyncKey::from_bytes(&first)) => {
                        let mut block = self.block(c, &first)?;
                        self.blocks.remove((c, first))?;
                        self.touch(c, first);
                        block.first = k;
                        block.acc.add(&k.id);
                        self.put_block(c, &block)?;
                        self.cut_if_oversized(c, block)?;
                    }
                    _ => self.put_block(
                        c,
                        &BlockSummary {
                            first: k,
                            last: k,
                            acc: {
                                let mut a = Accumulator::default();
                                a.add(&k.id);
                                a
                            },
                        },
                    )?,
                }
            }
        }
        Ok(())
    }

    fn touch(&mut self, c: &str, first: [u8; 40]) {
        self.touched.entry(c.to_owned()).or_default().insert(first);
    }

    fn put_block(&mut self, c: &str, b: &BlockSummary) -> Result<(), StorageError> {
        let first = b.first.to_bytes();
        self.blocks.insert((c, first), b.encode())?;
        self.touch(c, first);
        Ok(())
    }

    fn block(&self, c: &str, first: &[u8; 40]) -> Result<BlockSummary, StorageError> {
        let v = self
            .blocks
            .get((c, *first))?
            .ok_or_else(|| StorageError::Damaged("a sync index block is missing".into()))?
            .value();
        BlockSummary::decode(*first, &v)
    }

    fn block_at_or_before(
        &self,
        c: &str,
        kb: &[u8; 40],
    ) -> Result<Option<BlockSummary>, StorageError> {
        let Some(row) = self.blocks.range((c, [0u8; 40])..=(c, *kb))?.next_back() else {
            return Ok(None);
        };
        let (k, v) = row?;
        let (_, first) = k.value();
        Ok(Some(BlockSummary::decode(first, &v.value())?))
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

    fn item_before(&self, c: &str, kb: &[u8; 40]) -> Result<Option<SyncKey>, StorageError> {
        use std::ops::Bound as B;
        let mut range = self
            .items
            .range::<(&str, [u8; 40])>((B::Included((c, [0u8; 40])), B::Excluded((c, *kb))))?;
        match range.next_back() {
            Some(row) => Ok(Some(SyncKey::from_bytes(&row?.0.value().1))),
            None => Ok(None),
        }
    }

    /// Sum of the items strictly above `from` and below `to` (or to the collection's end), and
    /// the last of them.
    fn sum_items(
        &self,
        c: &str,
        from: &[u8; 40],
        to: Option<&[u8; 40]>,
    ) -> Result<(Accumulator, Option<SyncKey>), StorageError> {
        use std::ops::Bound as B;
        let upper = match to {
            Some(t) => B::Excluded((c, *t)),
            None => B::Included((c, [0xff; 40])),
        };
        let mut acc = Accumulator::default();
        let mut last = None;
        for row in self
            .items
            .range::<(&str, [u8; 40])>((B::Excluded((c, *from)), upper))?
        {
            let k = SyncKey::from_bytes(&row?.0.value().1);
            acc.add(&k.id);
            last = Some(k);
        }
        Ok((acc, last))
    }

    /// Cuts a block in two halves when it has grown past [`BLOCK_MAX`].
    fn cut_if_oversized(&mut self, c: &str, block: BlockSummary) -> Result<(), StorageError> {
        if block.acc.count() <= BLOCK_MAX {
            return Ok(());
        }
        let first = block.first.to_bytes();
        let last = block.last.to_bytes();
        let keys: Vec<SyncKey> = self
            .items
            .range((c, first)..=(c, last))?
            .map(|r| r.map(|(k, _)| SyncKey::from_bytes(&k.value().1)))
            .collect::<Result<_, _>>()?;
        let mid = keys.len() / 2;
        let mut left = Accumulator::default();
        keys[..mid].iter().for_each(|k| left.add(&k.id));
        let mut right = Accumulator::default();
        keys[mid..].iter().for_each(|k| right.add(&k.id));
        self.put_block(
            c,
            &BlockSummary {
                first: keys[0],
                last: keys[mid - 1],
                acc: left,
            },
        )?;
        self.put_block(
            c,
            &BlockSummary {
                first: keys[mid],
                last: *keys.last().expect("non-empty"),
                acc: right,
            },
        )?;
        Ok(())
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

    /// The block holding position `pos` (< len).
    fn block_of(&self, pos: u64) -> usize {
        self.cum_count.partition_point(|c| *c <= pos) - 1
    }
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
        let mut cache = self.collections.lock().expect("summary cache lock");
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
        let mut cache = self.collections.lock().expect("summary cache lock");
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

/// One collection's items, as of one moment, for a reconciliation session.
#[derive(Debug)]
pub struct StoreSyncIndex {
    collection: String,
    summaries: Arc<Summaries>,
    items: redb::ReadOnlyTable<(&'static str, [u8; 40]), ()>,
    log: redb::ReadOnlyTable<(&'static str, u64), [u8; 40]>,
    entries: redb::ReadOnlyTable<[u8; 32], &'static [u8]>,
    total: Accumulator,
    /// Blocks read in this session: keys and prefix sums.
    loaded: HashMap<usize, (Vec<SyncKey>, Vec<Accumulator>)>,
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
            items: tx.open_table(SYNC_ITEMS)?,
            log: tx.open_table(SYNC_LOG)?,
            entries: tx.open_table(ENTRIES)?,
            total,
            loaded: HashMap::new(),
        })
    }

    /// Reads block `i`'s items (once per session).
    fn load(&mut self, i: usize) -> Result<&(Vec<SyncKey>, Vec<Accumulator>), StorageError> {
        if !self.loaded.contains_key(&i) {
            let b = self.summaries.blocks[i];
            let c = self.collection.as_str();
            let mut keys = Vec::with_capacity(b.acc.count() as usize);
            for row in self
                .items
                .range((c, b.first.to_bytes())..=(c, b.last.to_bytes()))?
            {
                keys.push(SyncKey::from_bytes(&row?.0.value().1));
            }
            if keys.len() as u64 != b.acc.count() {
                return Err(StorageError::Damaged(format!(
                    "sync index of `{c}`: a block should hold {} items, holds {}",
                    b.acc.count(),
                    keys.len()
                )));
            }
            let mut prefix = Vec::with_capacity(keys.len() + 1);
            let mut acc = Accumulator::default();
            prefix.push(acc);
            for k in &keys {
                acc.add(&k.id);
                prefix.push(acc);
            }
            self.loaded.insert(i, (keys, prefix));
        }
        Ok(&self.loaded[&i])
    }

    fn prefix(&mut self, pos: u64) -> Result<Accumulator, StorageError> {
        if pos >= self.summaries.len() {
            return Ok(*self.summaries.cum_acc.last().expect("non-empty"));
        }
        let i = self.summaries.block_of(pos);
        let start = self.summaries.cum_count[i];
        let base = self.summaries.cum_acc[i];
        if pos == start {
            return Ok(base);
        }
        let (_, prefix) = self.load(i)?;
        let mut acc = base;
        acc.merge(&prefix[(pos - start) as usize]);
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
        let j = self.summaries.blocks.partition_point(|blk| blk.first < *b);
        if j == 0 {
            return Ok(0);
        }
        let i = j - 1;
        if self.summaries.blocks[i].last < *b {
            return Ok(self.summaries.cum_count[j]);
        }
        let start = self.summaries.cum_count[i];
        let (keys, _) = self.load(i)?;
        Ok(start + keys.partition_point(|k| k < b) as u64)
    }

    fn key_at(&mut self, pos: u64) -> Result<SyncKey, StorageError> {
        let i = self.summaries.block_of(pos);
        let start = self.summaries.cum_count[i];
        if pos == start {
            return Ok(self.summaries.blocks[i].first);
        }
        if pos + 1 == self.summaries.cum_count[i + 1] {
            return Ok(self.summaries.blocks[i].last);
        }
        let (keys, _) = self.load(i)?;
        Ok(keys[(pos - start) as usize])
    }

    fn accumulate(&mut self, lo: u64, hi: u64) -> Result<Accumulator, StorageError> {
        let upper = self.prefix(hi)?;
        Ok(upper.minus(&self.prefix(lo)?))
    }

    fn keys(&mut self, lo: u64, hi: u64) -> Result<Vec<SyncKey>, StorageError> {
        let mut out = Vec::with_capacity((hi - lo) as usize);
        let mut pos = lo;
        while pos < hi {
            let i = self.summaries.block_of(pos);
            let start = self.summaries.cum_count[i];
            let end = self.summaries.cum_count[i + 1].min(hi);
            let (keys, _) = self.load(i)?;
            out.extend_from_slice(&keys[(pos - start) as usize..(end - start) as usize]);
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

    fn contains_id(&mut self, id: &[u8; 32]) -> Result<bool, StorageError> {
        Ok(self.entries.get(id)?.is_some())
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
