//! The sans-IO reconciliation session: it consumes frames and yields frames. Whoever moves the
//! bytes (a test, a benchmark, `archive-net` over QUIC) calls [`Reconciler::initiate`] on one
//! side, then hands each frame to the other side's [`Reconciler::receive`] until one returns
//! `None`. Both sides then know exactly which items (entry time and id) they lack
//! ([`Reconciler::need`]) and which the other lacks ([`Reconciler::have`]).
//!
//! Each Ranges frame covers the whole key space. For each range the receiver answers:
//! matching fingerprint: Skip; mismatch: its own items split into `fanout` fingerprinted parts,
//! or, when at most `id_list_threshold` items, an IdList; IdList: a Diff (a bitfield of the ids
//! it lacks, and the ids only it has), so both sides learn that range's difference at once
//! (when that Diff would not fit in the frame, its items are split instead).
//! A side that sends or receives a frame with no question in it (no Fingerprint, no IdList) is
//! done. When a frame would exceed the limit, the rest of the key space goes as one
//! fingerprinted range: the result stays exact, it only takes more rounds.

use crate::entry::EntryId;

use super::fingerprint::{Accumulator, SyncKey};
use super::index::{even_split, SyncIndex};
use crate::error::SyncError;
use crate::format::sync_wire::{
    Bound, FastReply, Message, Mode, Range, RangesWriter, MAX_FRAME_LIMIT,
};

/// The smallest frame limit accepted: room for the largest single range.
pub const MIN_FRAME_LIMIT: usize = 4096;

/// Tuning of a session. Both sides may use different values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconcileConfig {
    /// Largest frame sent or accepted, in bytes.
    pub frame_limit: usize,
    /// Frames received before the session gives up.
    pub max_rounds: u32,
    /// Parts a mismatched range is split into.
    pub fanout: u64,
    /// Ranges with at most this many items are sent as id lists.
    pub id_list_threshold: u64,
    /// Most ids the fast path sends in one frame before falling back.
    pub fast_path_max_ids: usize,
}

/// The largest `id_list_threshold` a session accepts (a list of that many ids is 32 MiB).
pub const MAX_ID_LIST_THRESHOLD: u64 = 1 << 20;

impl Default for ReconcileConfig {
    fn default() -> Self {
        ReconcileConfig {
            frame_limit: 1024 * 1024,
            max_rounds: 4096,
            fanout: 16,
            id_list_threshold: 32,
            fast_path_max_ids: 1000,
        }
    }
}

/// What two servers last agreed on: each side's insertion counter at that moment. Stored per
/// (peer, collection) after a completed sync; it lets the next session use the fast path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Agreement {
    /// This side's insertion counter when the sets were equal.
    pub my_seq: u64,
    /// The other side's insertion counter at that moment.
    pub their_seq: u64,
}

/// Traffic of a session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Frames this side sent.
    pub frames_sent: u32,
    /// Frames this side received.
    pub frames_received: u32,
    /// Bytes sent.
    pub bytes_sent: u64,
    /// Bytes received.
    pub bytes_received: u64,
}

impl SyncStats {
    /// Round trips: every two frames, either way, make one.
    pub fn round_trips(&self) -> u32 {
        (self.frames_sent + self.frames_received).div_ceil(2)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing sent or received yet.
    Idle,
    /// The fast-path request is out; the answer decides what follows.
    AwaitingFastReply,
    /// Exchanging Ranges frames.
    Reconciling,
    /// Both sides know the difference.
    Done,
}

/// One side of a reconciliation session over a [`SyncIndex`].
#[derive(Debug)]
pub struct Reconciler<I> {
    index: I,
    config: ReconcileConfig,
    state: State,
    /// Items learnt so far, range by range (each range's in key order), possibly twice;
    /// deduplicated, in the order learnt, once done.
    have: Vec<SyncKey>,
    need: Vec<SyncKey>,
    stats: SyncStats,
    /// The items this side offered in its fast-path request, ascending.
    fast_added: Vec<SyncKey>,
    /// The fast path settled the session.
    settled_fast: bool,
}

impl<I: SyncIndex> Reconciler<I> {
    /// A session over `index`, which must not change while the session runs.
    pub fn new(index: I, config: ReconcileConfig) -> Result<Self, SyncError> {
        if config.frame_limit < MIN_FRAME_LIMIT || config.frame_limit > MAX_FRAME_LIMIT {
            return Err(SyncError::Config(format!(
                "frame limit {} is outside {MIN_FRAME_LIMIT}..={MAX_FRAME_LIMIT}",
                config.frame_limit
            )));
        }
        if !(2..=256).contains(&config.fanout)
            || !(1..=MAX_ID_LIST_THRESHOLD).contains(&config.id_list_threshold)
        {
            return Err(SyncError::Config(format!(
                "fanout must be 2..=256, id_list_threshold 1..={MAX_ID_LIST_THRESHOLD}"
            )));
        }
        Ok(Reconciler {
            index,
            config,
            state: State::Idle,
            have: Vec::new(),
            need: Vec::new(),
            stats: SyncStats::default(),
            fast_added: Vec::new(),
            settled_fast: false,
        })
    }

    /// The first frame, from the side that starts. With an [`Agreement`] from an earlier sync
    /// with the same peer, it tries the fast path first.
    pub fn initiate(&mut self, agreement: Option<Agreement>) -> Result<Vec<u8>, SyncError> {
        if self.state != State::Idle {
            return Err(SyncError::Protocol("initiate called twice".into()));
        }
        if let Some(a) = agreement {
            if let Some(mut added) = self
                .index
                .added_since(a.my_seq, self.fast_path_id_budget(0))?
            {
                added.sort_unstable();
                let mut agreed = self.index.total()?;
                let mut new_sum = Accumulator::default();
                for k in &added {
                    new_sum.add(&k.id);
                }
                agreed = agreed.minus(&new_sum);
                let frame = Message::FastRequest {
                    your_seq: a.their_seq,
                    agreed_count: agreed.count(),
                    agreed_fingerprint: agreed.fingerprint(),
                    added: added.clone(),
                }
                .encode();
                self.fast_added = added;
                self.state = State::AwaitingFastReply;
                return self.send((frame, true));
            }
        }
        self.state = State::Reconciling;
        let frame = self.first_ranges()?;
        self.send(frame)
    }

    /// Handles a frame from the other side; returns the frame to send back, or `None` when the
    /// session is over (then [`Reconciler::is_done`] is true).
    pub fn receive(&mut self, frame: &[u8]) -> Result<Option<Vec<u8>>, SyncError> {
        if self.state == State::Done {
            return Err(SyncError::Protocol(
                "a frame arrived after the session ended".into(),
            ));
        }
        self.stats.frames_received += 1;
        self.stats.bytes_received += frame.len() as u64;
        if self.stats.frames_received > self.config.max_rounds {
            return Err(SyncError::TooManyRounds {
                limit: self.config.max_rounds,
            });
        }
        let message = Message::decode(frame, self.config.frame_limit)?;
        let reply = match (self.state, message) {
            (
                State::Idle,
                Message::FastRequest {
                    your_seq,
                    agreed_count,
                    agreed_fingerprint,
                    added,
                },
            ) => {
                Some(self.answer_fast_request(your_seq, agreed_count, agreed_fingerprint, added)?)
            }
            (State::AwaitingFastReply, Message::FastReply(reply)) => self.take_fast_reply(reply)?,
            (State::Idle | State::Reconciling, Message::Ranges(ranges)) => {
                self.state = State::Reconciling;
                self.answer_ranges(ranges)?
            }
            (state, m) => {
                return Err(SyncError::Protocol(format!(
                    "unexpected {} while {state:?}",
                    match m {
                        Message::Ranges(_) => "Ranges",
                        Message::FastRequest { .. } => "FastRequest",
                        Message::FastReply(_) => "FastReply",
                    }
                )))
            }
        };
        match reply {
            Some(f) => self.send(f).map(Some),
            None => {
                self.finish();
                Ok(None)
            }
        }
    }

    /// The session is over: drop repeats of the ids learnt, keeping the order learnt.
    fn finish(&mut self) {
        self.state = State::Done;
        for ids in [&mut self.have, &mut self.need] {
            dedup_in_order(ids);
        }
    }

    /// True when both sides know the difference.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Items this side has and the other lacks, each once when the session is done, in the
    /// order learnt: range by range, each range's items in key order (time, then id). A whole
    /// range learnt at once is contiguous in time, so fetching the list in pieces fetches
    /// entries written together together (and their batch certificates with them).
    ///
    /// An item of the other side's is what it said: a hostile peer may name an id with
    /// another time than its entry's. Whoever fetches it checks the entry against the key.
    pub fn have(&self) -> &[SyncKey] {
        &self.have
    }

    /// Items the other side has and this side lacks, each once when the session is done, in
    /// the order learnt (see [`Reconciler::have`]).
    pub fn need(&self) -> &[SyncKey] {
        &self.need
    }

    /// The difference, moved out: (items only this side has, items only the other side has),
    /// in the order learnt (see [`Reconciler::have`]). 40 bytes an item, nothing copied.
    pub fn into_difference(self) -> (Vec<SyncKey>, Vec<SyncKey>) {
        (self.have, self.need)
    }

    /// True when the fast path settled the session (on the side that initiated it).
    pub fn settled_by_fast_path(&self) -> bool {
        self.settled_fast
    }

    /// Frames and bytes so far.
    pub fn stats(&self) -> SyncStats {
        self.stats
    }

    /// The index, back.
    pub fn into_index(self) -> I {
        self.index
    }

    /// How many items (at most 42 bytes each) a fast-path frame may carry besides
    /// `other_bytes`.
    fn fast_path_id_budget(&self, other_bytes: usize) -> usize {
        let room = self.config.frame_limit.saturating_sub(64 + other_bytes) / 42;
        self.config.fast_path_max_ids.min(room)
    }

    /// Counts an outgoing frame; a frame without a question ends the session for its sender.
    fn send(&mut self, (frame, asks): (Vec<u8>, bool)) -> Result<Vec<u8>, SyncError> {
        debug_assert!(
            frame.len() <= self.config.frame_limit,
            "frame of {} bytes",
            frame.len()
        );
        self.stats.frames_sent += 1;
        self.stats.bytes_sent += frame.len() as u64;
        if !asks {
            self.finish();
        }
        Ok(frame)
    }

    fn first_ranges(&mut self) -> Result<(Vec<u8>, bool), SyncError> {
        let n = self.index.len()?;
        let mut out = Output::new(self.config.frame_limit);
        self.emit_split(&mut out, 0, n, Bound::Infinity)?;
        Ok(out.finish(&mut self.index)?)
    }

    fn answer_fast_request(
        &mut self,
        your_seq: u64,
        agreed_count: u64,
        agreed_fingerprint: super::fingerprint::Fingerprint,
        their_added: Vec<SyncKey>,
    ) -> Result<(Vec<u8>, bool), SyncError> {
        let fallback = || Ok((Message::FastReply(FastReply::Fallback).encode(), true));
        // The reply carries a bitfield over their ids and our own new ids: both must fit.
        let budget = self.fast_path_id_budget(their_added.len().div_ceil(8));
        let Some(mut my_added) = self.index.added_since(your_seq, budget)? else {
            self.state = State::Reconciling;
            return fallback();
        };
        let mut new_sum = Accumulator::default();
        for k in &my_added {
            new_sum.add(&k.id);
        }
        let agreed = self.index.total()?.minus(&new_sum);
        if agreed.count() != agreed_count || agreed.fingerprint() != agreed_fingerprint {
            self.state = State::Reconciling;
            return fallback();
        }
        let mut lacked = Vec::with_capacity(their_added.len());
        for key in &their_added {
            let lack = !self.index.contains(key)?;
            if lack {
                self.need.push(*key);
            }
            lacked.push(lack);
        }
        // Both ascending (theirs by the wire's rule).
        my_added.sort_unstable();
        let only_mine: Vec<SyncKey> = my_added
            .into_iter()
            .filter(|k| their_added.binary_search(k).is_err())
            .collect();
        self.have.extend(only_mine.iter().copied());
        let reply = Message::FastReply(FastReply::Settled {
            lacked,
            added: only_mine,
        });
        Ok((reply.encode(), false))
    }

    fn take_fast_reply(&mut self, reply: FastReply) -> Result<Option<(Vec<u8>, bool)>, SyncError> {
        match reply {
            FastReply::Fallback => {
                self.state = State::Reconciling;
                Ok(Some(self.first_ranges()?))
            }
            FastReply::Settled { lacked, added } => {
                if lacked.len() != self.fast_added.len() {
                    return Err(SyncError::Protocol(format!(
                        "fast reply answers {} ids, {} were sent",
                        lacked.len(),
                        self.fast_added.len()
                    )));
                }
                for (k, lack) in self.fast_added.iter().zip(lacked) {
                    if lack {
                        self.have.push(*k);
                    }
                }
                for key in added {
                    if self.index.contains(&key)? {
                        return Err(SyncError::Protocol(
                            "fast reply offers an item this side has".into(),
                        ));
                    }
                    self.need.push(key);
                }
                self.settled_fast = true;
                Ok(None)
            }
        }
    }

    fn answer_ranges(&mut self, ranges: Vec<Range>) -> Result<Option<(Vec<u8>, bool)>, SyncError> {
        let asked = ranges
            .iter()
            .any(|r| matches!(r.mode, Mode::Fingerprint(_) | Mode::IdList(_)));
        let mut out = Output::new(self.config.frame_limit);
        let mut lo = 0u64;
        for range in ranges {
            let hi = self.index.lower_bound(&range.upper)?;
            if hi < lo {
                return Err(SyncError::Protocol("range bounds go backwards".into()));
            }
            match range.mode {
                Mode::Skip => out.skip(range.upper),
                Mode::Fingerprint(fp) => {
                    if out.full() {
                        // the tail fingerprint already covers this range
                    } else if self.index.accumulate(lo, hi)?.fingerprint() == fp {
                        out.skip(range.upper);
                    } else {
                        self.emit_split(&mut out, lo, hi, range.upper)?;
                    }
                }
                Mode::IdList(theirs) if hi - lo > (self.config.frame_limit / 32) as u64 => {
                    // More of ours than any frame could list: learn from their items by lookup
                    // and split ours, without reading them all. (The wire's decoder made sure
                    // their items ascend inside the range, so none repeats.)
                    for key in theirs {
                        if !self.index.contains(&key)? {
                            self.need.push(key);
                        }
                    }
                    self.emit_split(&mut out, lo, hi, range.upper)?;
                }
                Mode::IdList(theirs) => {
                    let ours = self.index.keys(lo, hi)?;
                    self.learn_from_id_list(&ours, &theirs, &mut out, lo, hi, range.upper)?;
                }
                Mode::Diff { lacked, only_here } => {
                    // Check the count before reading anything: a Diff only ever answers our
                    // own IdList, so a range with other counts is a lie, however large.
                    if lacked.len() as u64 != hi - lo {
                        return Err(SyncError::Protocol(format!(
                            "a Diff answers {} ids where this side has {}",
                            lacked.len(),
                            hi - lo
                        )));
                    }
                    let ours = self.index.keys(lo, hi)?;
                    for (k, lack) in ours.iter().zip(&lacked) {
                        if *lack {
                            self.have.push(*k);
                        }
                    }
                    for key in only_here {
                        if ours.binary_search(&key).is_ok() {
                            return Err(SyncError::Protocol(
                                "a Diff offers an item this side has".into(),
                            ));
                        }
                        self.need.push(key);
                    }
                    out.skip(range.upper);
                }
            }
            lo = hi;
        }
        if !asked {
            return Ok(None);
        }
        Ok(Some(out.finish(&mut self.index)?))
    }

    fn learn_from_id_list(
        &mut self,
        ours: &[SyncKey],
        theirs: &[SyncKey],
        out: &mut Output,
        lo: u64,
        hi: u64,
        upper: Bound,
    ) -> Result<(), SyncError> {
        // Both lists ascend (ours from the index, theirs by the wire's rule).
        let lacked: Vec<bool> = theirs
            .iter()
            .map(|k| ours.binary_search(k).is_err())
            .collect();
        for (key, lack) in theirs.iter().zip(&lacked) {
            if *lack {
                self.need.push(*key);
            }
        }
        if out.full() {
            return Ok(());
        }
        let only_here: Vec<SyncKey> = ours
            .iter()
            .filter(|k| theirs.binary_search(k).is_err())
            .copied()
            .collect();
        // Answer with a Diff whenever it fits in this frame, even with many items of ours (a
        // cluster of new entries); otherwise split our items so the other side asks in parts.
        let range = Range {
            upper,
            mode: Mode::Diff {
                lacked,
                only_here: only_here.clone(),
            },
        };
        if out.push(range) {
            self.have.extend(only_here);
        } else if only_here.len() as u64 > 2 * self.config.id_list_threshold {
            self.emit_split(out, lo, hi, upper)?;
        } else {
            out.make_tail(lo);
        }
        Ok(())
    }

    /// Describes our items in `lo..hi` (ending at `upper`): an IdList when few, else `fanout`
    /// fingerprinted parts.
    fn emit_split(
        &mut self,
        out: &mut Output,
        lo: u64,
        hi: u64,
        upper: Bound,
    ) -> Result<(), SyncError> {
        if out.full() {
            return Ok(());
        }
        if hi - lo <= self.config.id_list_threshold {
            let keys = self.index.keys(lo, hi)?;
            if !out.push(Range {
                upper,
                mode: Mode::IdList(keys),
            }) {
                out.make_tail(lo);
            }
            return Ok(());
        }
        // The final split: ranges up to the size of the largest block (1,024 items with the
        // defaults) are cut evenly into parts of about half the id-list threshold, so that
        // each part is listed next round even if the other side has a few more items in it.
        // It ignores the index's preferred cut points: parts of a whole block would be too
        // large to list and cost another round. Larger ranges are cut where the index prefers.
        let count = hi - lo;
        let t = self.config.id_list_threshold;
        let cuts = if count <= self.config.fanout * t * 2 {
            let parts = self.config.fanout.max(count.div_ceil((t / 2).max(1)));
            even_split(lo, hi, parts)
        } else {
            self.index.split_points(lo, hi, self.config.fanout)?
        };
        let mut start = lo;
        for end in cuts.into_iter().chain(std::iter::once(hi)) {
            if end <= start || end > hi {
                continue;
            }
            let bound = if end == hi {
                upper
            } else {
                let before = self.index.key_at(end - 1)?;
                let after = self.index.key_at(end)?;
                Bound::Key(minimal_bound(&before, &after))
            };
            let fp = self.index.accumulate(start, end)?.fingerprint();
            if !out.push(Range {
                upper: bound,
                mode: Mode::Fingerprint(fp),
            }) {
                out.make_tail(start);
                return Ok(());
            }
            start = end;
        }
        Ok(())
    }
}

/// The shortest bound `b` with `before < b <= after`: the time with the most trailing zero
/// bits in `(before.time, after.time]`, or, for equal times, the shortest id prefix.
pub(crate) fn minimal_bound(before: &SyncKey, after: &SyncKey) -> SyncKey {
    if before >= after {
        // Only an index whose items are out of order (damaged) gets here; `after` is still a
        // bound, and the session's sums then disagree and say so.
        return *after;
    }
    if before.time < after.time {
        let mut shift = 63;
        loop {
            let t = (after.time >> shift) << shift;
            if t > before.time {
                return SyncKey {
                    time: t,
                    id: EntryId::default(),
                };
            }
            shift -= 1;
        }
    }
    let first_diff = before
        .id
        .as_bytes()
        .iter()
        .zip(after.id.as_bytes())
        .position(|(a, b)| a != b)
        .expect("distinct keys with equal times have distinct ids");
    let mut id = [0u8; 32];
    id[..=first_diff].copy_from_slice(&after.id.as_bytes()[..=first_diff]);
    SyncKey {
        time: after.time,
        id: EntryId::from_bytes(id),
    }
}

/// The frame being built: coalesces Skips, watches the size limit, and once full covers the
/// rest of the key space with one fingerprint.
struct Output {
    writer: RangesWriter,
    limit: usize,
    /// A Skip not yet written (consecutive Skips become one).
    pending_skip: Option<Bound>,
    /// True once a Fingerprint or IdList is written.
    asks: bool,
    /// Position where the tail starts, once the frame is full.
    tail_from: Option<u64>,
}

/// Room kept for the pending Skip and the tail fingerprint.
const TAIL_RESERVE: usize = 96;

impl Output {
    fn new(limit: usize) -> Self {
        Output {
            writer: RangesWriter::new(),
            limit,
            pending_skip: None,
            asks: false,
            tail_from: None,
        }
    }

    fn full(&self) -> bool {
        self.tail_from.is_some()
    }

    fn skip(&mut self, upper: Bound) {
        if !self.full() {
            self.pending_skip = Some(upper);
        }
    }

    /// Writes a range; false (nothing written) if it does not fit.
    fn push(&mut self, range: Range) -> bool {
        if self.full() {
            return false;
        }
        let checkpoint = self.writer.checkpoint();
        if let Some(b) = self.pending_skip {
            self.writer.push(&Range {
                upper: b,
                mode: Mode::Skip,
            });
        }
        self.writer.push(&range);
        if self.writer.len() + TAIL_RESERVE > self.limit {
            self.writer.rollback(checkpoint);
            return false;
        }
        self.pending_skip = None;
        self.asks |= matches!(range.mode, Mode::Fingerprint(_) | Mode::IdList(_));
        true
    }

    /// From here on, the rest of the key space (from position `from`) is one fingerprint.
    fn make_tail(&mut self, from: u64) {
        if !self.full() {
            self.tail_from = Some(from);
        }
    }

    /// The frame, and whether it asks the other side anything.
    fn finish(
        mut self,
        index: &mut impl SyncIndex,
    ) -> Result<(Vec<u8>, bool), crate::error::StorageError> {
        if let Some(b) = self.pending_skip.take() {
            self.writer.push(&Range {
                upper: b,
                mode: Mode::Skip,
            });
        }
        if let Some(from) = self.tail_from {
            let n = index.len()?;
            let fp = index.accumulate(from, n)?.fingerprint();
            self.writer.push(&Range {
                upper: Bound::Infinity,
                mode: Mode::Fingerprint(fp),
            });
            self.asks = true;
        }
        Ok((self.writer.finish(), self.asks))
    }
}

/// Drops repeated items, keeping each first occurrence where it was (4 bytes of memory an
/// item).
fn dedup_in_order<T: Ord + Copy>(ids: &mut Vec<T>) {
    let mut by_id: Vec<u32> = (0..ids.len() as u32).collect();
    by_id.sort_unstable_by_key(|&i| (ids[i as usize], i));
    let mut keep = vec![true; ids.len()];
    for pair in by_id.windows(2) {
        if ids[pair[0] as usize] == ids[pair[1] as usize] {
            keep[pair[1] as usize] = false;
        }
    }
    let mut k = keep.iter();
    ids.retain(|_| *k.next().expect("one flag per id"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_in_order_keeps_first_occurrences_in_place() {
        let id = |b: u8| EntryId::from_bytes([b; 32]);
        for input in [
            vec![],
            vec![3],
            vec![5, 1, 5, 2, 1, 9, 2],
            vec![7, 7, 7],
            vec![9, 8, 7, 6],
        ] {
            let mut ids: Vec<EntryId> = input.iter().map(|&b| id(b)).collect();
            dedup_in_order(&mut ids);
            let mut seen = std::collections::HashSet::new();
            let model: Vec<EntryId> = input
                .iter()
                .map(|&b| id(b))
                .filter(|i| seen.insert(*i))
                .collect();
            assert_eq!(ids, model, "{input:?}");
        }
    }

    fn key(time: u64, first: u8) -> SyncKey {
        let mut id = [0u8; 32];
        id[0] = first;
        SyncKey {
            time,
            id: EntryId::from_bytes(id),
        }
    }

    #[test]
    fn minimal_bound_lies_between_its_neighbours() {
        for (before, after) in [
            (key(5, 0), key(9, 0)),
            (key(8, 1), key(8, 0x80)),
            (key(0, 0), key(u64::MAX, 0xff)),
        ] {
            let b = minimal_bound(&before, &after);
            assert!(before < b && b <= after, "{before:?} {b:?} {after:?}");
        }
    }

    #[test]
    fn minimal_bound_of_out_of_order_neighbours_does_not_panic() {
        // Neighbours from a damaged index: equal, or the wrong way round.
        assert_eq!(minimal_bound(&key(7, 3), &key(7, 3)), key(7, 3));
        assert_eq!(minimal_bound(&key(9, 0), &key(2, 0)), key(2, 0));
    }

    #[test]
    fn a_config_outside_the_limits_is_refused() {
        for config in [
            ReconcileConfig {
                id_list_threshold: MAX_ID_LIST_THRESHOLD + 1,
                ..ReconcileConfig::default()
            },
            ReconcileConfig {
                id_list_threshold: 0,
                ..ReconcileConfig::default()
            },
            ReconcileConfig {
                fanout: 1,
                ..ReconcileConfig::default()
            },
        ] {
            assert!(matches!(
                Reconciler::new(crate::sync::MemoryIndex::default(), config),
                Err(SyncError::Config(_))
            ));
        }
    }
}
