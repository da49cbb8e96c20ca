//! The block summaries of each collection, cached in memory (loaded once, then patched at
//! every commit, never rebuilt from items), and searched from the previous lookup outwards.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use redb::ReadableDatabase;

use crate::error::StorageError;
use crate::fault::{self, Point, WriteStep};
use crate::format::layout::SYNC_BLOCKS;
use crate::format::sync_index::BlockSummary;
use crate::sync::{Accumulator, SyncKey};

/// A collection's block summaries, ready for binary search.
#[derive(Debug, Default)]
pub(super) struct Summaries {
    pub(super) blocks: Vec<BlockSummary>,
    /// `cum_count[i]`: items before block i; one extra element at the end (the total).
    pub(super) cum_count: Vec<u64>,
    pub(super) cum_acc: Vec<Accumulator>,
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

    #[inline]
    pub(super) fn len(&self) -> u64 {
        *self.cum_count.last().expect("at least one element")
    }

    /// The block holding position `pos` (< len), searched from block `hint` outwards.
    #[inline]
    pub(super) fn block_of(&self, pos: u64, hint: usize) -> usize {
        partition_point_near(&self.cum_count, hint, |c| *c <= pos) - 1
    }

    /// The number of blocks that start below `bound`, searched from block `hint` outwards.
    #[inline]
    pub(super) fn blocks_below(&self, bound: &SyncKey, hint: usize) -> usize {
        partition_point_near(&self.blocks, hint, |blk| blk.first < *bound)
    }
}

/// `slice.partition_point(pred)`, found by galloping from `hint`: a session asks about
/// ascending positions, so the answer is nearly always at or next to the previous one, and a
/// few probes near it beat a binary search over the whole collection's blocks.
#[inline]
pub(super) fn partition_point_near<T>(
    slice: &[T],
    hint: usize,
    pred: impl Fn(&T) -> bool,
) -> usize {
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
        fault::point(Point::Write(WriteStep::Commit));
        tx.commit()?;
        fault::point(Point::Write(WriteStep::Committed));
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
    pub(super) fn snapshot(
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
