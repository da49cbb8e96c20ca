//! Reconciliation messages, version 2: explicit structs and a hand-written compact codec.
//! Version 2 lists items as whole keys (time and id) where version 1 listed bare ids, so a
//! store can look an entry up by its key (its tables are ordered by time, not by id).
//!
//! ```text
//! frame       = version (0x01) || kind || body          at most the session's frame limit
//! kind 0x00   Ranges:     range* (to the end of the frame); together they cover all keys:
//!                         each range runs from the previous one's upper bound (first: the
//!                         lowest key) to its own upper bound; the last bound is infinity.
//! range       = header || [time] || [prefix] || payload
//!   header    bits 0-1 mode (0 Skip, 1 Fingerprint, 2 IdList, 3 Diff)
//!             bit 2 upper bound is infinity (no time, no prefix follow)
//!             bit 3 an id prefix follows the time
//!             bits 4-7 s: the time delta is stored shifted right by 4*s bits
//!   time      varint(delta >> 4s): delta from the previous bound's time (first: from 0)
//!   prefix    varint length (1..=32) || that many bytes of id; the bound's id is the prefix
//!             padded with zeros (absent: all zeros)
//!   payload   Skip: nothing | Fingerprint: 16 bytes | IdList: keys (the range's items)
//!             Diff: varint n || ceil(n/8) bytes bitfield || keys
//!             (answers an IdList of n items for the same range: bit i set = "I lack your
//!             item i", then the items in the range that only I have)
//!   keys      varint n || (n > 0: shift s, one byte 0..=15) || n * (varint(delta >> 4s)
//!             || 32-byte id): strictly ascending items; the first time is a delta from the
//!             range's lower bound (the previous range's upper bound, 0 for the first range),
//!             each next one from the item before; s is the largest shift that drops only zero
//!             bits from every nonzero delta (0 when all are zero); every item lies at or
//!             above the lower bound and below the upper bound
//! kind 0x01   FastRequest: varint your_seq || varint agreed_count || 16-byte agreed
//!             fingerprint || keys from 0 (what I added since we agreed)
//! kind 0x02   FastReply:   0x00 settled || varint n || ceil(n/8) bytes bitfield (which of
//!             your new items I lack) || keys from 0 (what I added that you lack)
//!             | 0x01 fall back to full reconciliation
//! varint      = unsigned LEB128, at most 10 bytes, canonical (no trailing zero groups)
//! ```
//! Every count is checked against the bytes left before anything is allocated.

use crate::entry::EntryId;
use crate::sync::{Fingerprint, SyncKey};

/// The version byte that starts every frame.
pub const WIRE_VERSION: u8 = 2;
/// No frame is ever larger than this, whatever the configuration.
pub const MAX_FRAME_LIMIT: usize = 16 * 1024 * 1024;

/// An upper bound of a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Bound {
    /// Below this key (the key itself excluded).
    Key(SyncKey),
    /// Everything.
    Infinity,
}

impl Bound {
    /// True when `key` lies below the bound.
    pub fn above(&self, key: &SyncKey) -> bool {
        match self {
            Bound::Infinity => true,
            Bound::Key(b) => key < b,
        }
    }
}

/// What a range says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Nothing to do for this range.
    Skip,
    /// The sender's fingerprint of the range.
    Fingerprint(Fingerprint),
    /// All the sender's items in the range, ascending.
    IdList(Vec<SyncKey>),
    /// The answer to an IdList of `lacked.len()` items.
    Diff {
        /// For each item of the IdList: true when the sender of the Diff lacks it.
        lacked: Vec<bool>,
        /// Items in the range that only the sender of the Diff has, ascending.
        only_here: Vec<SyncKey>,
    },
}

/// A range of a Ranges message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    /// Exclusive upper bound; the lower bound is the previous range's upper bound.
    pub upper: Bound,
    /// What to do with it.
    pub mode: Mode,
}

/// One reconciliation frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Ranges covering the whole key space.
    Ranges(Vec<Range>),
    /// Fast path: "since we last agreed, I added these".
    FastRequest {
        /// The receiver's insertion counter when the two last agreed.
        your_seq: u64,
        /// Number of items the sender had then.
        agreed_count: u64,
        /// Fingerprint of what the sender had then.
        agreed_fingerprint: Fingerprint,
        /// Items the sender added since, ascending.
        added: Vec<SyncKey>,
    },
    /// Fast path answer.
    FastReply(FastReply),
}

/// The answer to a FastRequest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FastReply {
    /// Settled in one round trip.
    Settled {
        /// For each item the requester added: true when the replier lacks it.
        lacked: Vec<bool>,
        /// Items the replier added that the requester lacks, ascending.
        added: Vec<SyncKey>,
    },
    /// The fast path does not apply; the requester starts a full reconciliation.
    Fallback,
}

/// Bytes that are not a valid frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed sync frame: {0}")]
pub struct WireError(pub(crate) String);

fn err<T>(s: impl Into<String>) -> Result<T, WireError> {
    Err(WireError(s.into()))
}

const KIND_RANGES: u8 = 0;
const KIND_FAST_REQUEST: u8 = 1;
const KIND_FAST_REPLY: u8 = 2;

const MODE_SKIP: u8 = 0;
const MODE_FINGERPRINT: u8 = 1;
const MODE_ID_LIST: u8 = 2;
const MODE_DIFF: u8 = 3;
const FLAG_INFINITY: u8 = 1 << 2;
const FLAG_PREFIX: u8 = 1 << 3;

/// The shift (in units of 4 bits) a time delta is stored with.
fn canonical_shift(delta: u64) -> u32 {
    if delta == 0 {
        0
    } else {
        (delta.trailing_zeros() / 4).min(15)
    }
}

pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bits(out: &mut Vec<u8>, bits: &[bool]) {
    put_varint(out, bits.len() as u64);
    let start = out.len();
    out.resize(start + bits.len().div_ceil(8), 0);
    for (i, b) in bits.iter().enumerate() {
        if *b {
            out[start + i / 8] |= 1 << (i % 8);
        }
    }
}

/// The shift of a list's time deltas: the largest that drops only zero bits from each nonzero
/// one (entries of one millisecond on different clocks, or a second apart, share many).
fn list_shift(deltas: impl Iterator<Item = u64>) -> u32 {
    deltas
        .filter(|d| *d != 0)
        .map(canonical_shift)
        .min()
        .unwrap_or(0)
}

/// Encodes ascending keys, times as deltas from `base` and then from each other. Keys that do
/// not ascend (a message built by hand) wrap here and encode to bytes `decode` refuses.
fn put_keys(out: &mut Vec<u8>, base: u64, keys: &[SyncKey]) {
    put_varint(out, keys.len() as u64);
    if keys.is_empty() {
        return;
    }
    let deltas = || {
        let starts = std::iter::once(base).chain(keys.iter().map(|k| k.time));
        keys.iter()
            .zip(starts)
            .map(|(k, prev)| k.time.wrapping_sub(prev))
    };
    let shift = list_shift(deltas());
    out.push(shift as u8);
    for (k, delta) in keys.iter().zip(deltas()) {
        put_varint(out, delta >> (4 * shift));
        out.extend_from_slice(k.id.as_bytes());
    }
}

/// Encodes ranges incrementally so the session can watch the frame size as it goes.
pub(crate) struct RangesWriter {
    out: Vec<u8>,
    prev_time: u64,
}

impl RangesWriter {
    pub(crate) fn new() -> Self {
        RangesWriter {
            out: vec![WIRE_VERSION, KIND_RANGES],
            prev_time: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.out.len()
    }

    /// A point to roll back to if the next range does not fit.
    pub(crate) fn checkpoint(&self) -> (usize, u64) {
        (self.out.len(), self.prev_time)
    }

    pub(crate) fn rollback(&mut self, (len, prev_time): (usize, u64)) {
        self.out.truncate(len);
        self.prev_time = prev_time;
    }

    pub(crate) fn push(&mut self, range: &Range) {
        let mode = match range.mode {
            Mode::Skip => MODE_SKIP,
            Mode::Fingerprint(_) => MODE_FINGERPRINT,
            Mode::IdList(_) => MODE_ID_LIST,
            Mode::Diff { .. } => MODE_DIFF,
        };
        let lower_time = self.prev_time;
        match range.upper {
            Bound::Infinity => self.out.push(mode | FLAG_INFINITY),
            Bound::Key(k) => {
                // Bounds ascend in a well-formed message. One whose times go down (built by
                // hand) wraps here and encodes to a frame `decode` refuses ("bound time
                // overflows"), rather than panicking.
                let delta = k.time.wrapping_sub(self.prev_time);
                let shift = canonical_shift(delta) as u8;
                let prefix_len = 32
                    - k.id
                        .as_bytes()
                        .iter()
                        .rev()
                        .take_while(|b| **b == 0)
                        .count();
                let flags = if prefix_len > 0 { FLAG_PREFIX } else { 0 };
                self.out.push(mode | flags | (shift << 4));
                put_varint(&mut self.out, delta >> (4 * shift));
                if prefix_len > 0 {
                    put_varint(&mut self.out, prefix_len as u64);
                    self.out.extend_from_slice(&k.id.as_bytes()[..prefix_len]);
                }
                self.prev_time = k.time;
            }
        }
        match &range.mode {
            Mode::Skip => {}
            Mode::Fingerprint(fp) => self.out.extend_from_slice(&fp.0),
            Mode::IdList(keys) => put_keys(&mut self.out, lower_time, keys),
            Mode::Diff { lacked, only_here } => {
                put_bits(&mut self.out, lacked);
                put_keys(&mut self.out, lower_time, only_here);
            }
        }
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.out
    }
}

impl Message {
    /// The frame bytes. Bounds must ascend strictly (as [`Message::decode`] requires); a
    /// message whose bounds do not encodes to a frame that `decode` refuses.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Message::Ranges(ranges) => {
                let mut w = RangesWriter::new();
                for r in ranges {
                    w.push(r);
                }
                w.finish()
            }
            Message::FastRequest {
                your_seq,
                agreed_count,
                agreed_fingerprint,
                added,
            } => {
                let mut out = vec![WIRE_VERSION, KIND_FAST_REQUEST];
                put_varint(&mut out, *your_seq);
                put_varint(&mut out, *agreed_count);
                out.extend_from_slice(&agreed_fingerprint.0);
                put_keys(&mut out, 0, added);
                out
            }
            Message::FastReply(FastReply::Settled { lacked, added }) => {
                let mut out = vec![WIRE_VERSION, KIND_FAST_REPLY, 0];
                put_bits(&mut out, lacked);
                put_keys(&mut out, 0, added);
                out
            }
            Message::FastReply(FastReply::Fallback) => vec![WIRE_VERSION, KIND_FAST_REPLY, 1],
        }
    }

    /// Decodes a frame of at most `limit` bytes. Bounds must ascend strictly and the last
    /// range must end at infinity.
    pub fn decode(frame: &[u8], limit: usize) -> Result<Message, WireError> {
        if frame.len() > limit.min(MAX_FRAME_LIMIT) {
            return err(format!(
                "frame of {} bytes exceeds the limit of {limit}",
                frame.len()
            ));
        }
        let mut r = Reader { buf: frame };
        match r.byte()? {
            WIRE_VERSION => {}
            v => return err(format!("unknown version {v}")),
        }
        let msg = match r.byte()? {
            KIND_RANGES => Message::Ranges(decode_ranges(&mut r)?),
            KIND_FAST_REQUEST => Message::FastRequest {
                your_seq: r.varint()?,
                agreed_count: r.varint()?,
                agreed_fingerprint: Fingerprint(r.array()?),
                added: r.keys(None, Bound::Infinity)?,
            },
            KIND_FAST_REPLY => match r.byte()? {
                0 => Message::FastReply(FastReply::Settled {
                    lacked: r.bits()?,
                    added: r.keys(None, Bound::Infinity)?,
                }),
                1 => Message::FastReply(FastReply::Fallback),
                o => return err(format!("unknown fast reply outcome {o}")),
            },
            k => return err(format!("unknown message kind {k}")),
        };
        if !r.buf.is_empty() {
            return err(format!("{} trailing bytes", r.buf.len()));
        }
        Ok(msg)
    }
}

fn decode_ranges(r: &mut Reader<'_>) -> Result<Vec<Range>, WireError> {
    let mut ranges = Vec::new();
    let mut prev_time = 0u64;
    let mut prev_bound: Option<SyncKey> = None;
    let mut ended = false;
    while !r.buf.is_empty() {
        if ended {
            return err("a range follows the one that ends at infinity");
        }
        let header = r.byte()?;
        let mode = header & 3;
        let lower = prev_bound;
        let upper = if header & FLAG_INFINITY != 0 {
            if header & !(3 | FLAG_INFINITY) != 0 {
                return err("an infinite bound with time or prefix flags");
            }
            ended = true;
            Bound::Infinity
        } else {
            let shift = 4 * u32::from(header >> 4);
            let stored = r.varint()?;
            let delta = stored
                .checked_shl(shift)
                .filter(|d| d >> shift == stored)
                .ok_or_else(|| WireError("time delta overflows".into()))?;
            if u32::from(header >> 4) != canonical_shift(delta) {
                return err("time delta not in canonical shifted form");
            }
            let time = prev_time
                .checked_add(delta)
                .ok_or_else(|| WireError("bound time overflows".into()))?;
            let mut id = [0u8; 32];
            if header & FLAG_PREFIX != 0 {
                let len = r.varint()? as usize;
                if len == 0 || len > 32 {
                    return err(format!("id prefix of {len} bytes"));
                }
                let bytes = r.take(len)?;
                if bytes[len - 1] == 0 {
                    return err("id prefix ends in a zero byte (not canonical)");
                }
                id[..len].copy_from_slice(bytes);
            }
            let key = SyncKey {
                time,
                id: EntryId::from_bytes(id),
            };
            if prev_bound.is_some_and(|p| key <= p) {
                return err("range bounds do not ascend");
            }
            prev_bound = Some(key);
            prev_time = time;
            Bound::Key(key)
        };
        let mode = match mode {
            MODE_SKIP => Mode::Skip,
            MODE_FINGERPRINT => Mode::Fingerprint(Fingerprint(r.array()?)),
            MODE_ID_LIST => Mode::IdList(r.keys(lower, upper)?),
            _ => Mode::Diff {
                lacked: r.bits()?,
                only_here: r.keys(lower, upper)?,
            },
        };
        ranges.push(Range { upper, mode });
    }
    if !ended {
        return err("the ranges do not end at infinity");
    }
    Ok(ranges)
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if n > self.buf.len() {
            return err(format!("needs {n} more bytes, {} left", self.buf.len()));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }

    fn varint(&mut self) -> Result<u64, WireError> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = self.byte()?;
            if i == 9 && b > 1 {
                return err("varint overflows 64 bits");
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                if i > 0 && b == 0 {
                    return err("varint not in canonical form");
                }
                return Ok(v);
            }
        }
        err("varint longer than 10 bytes")
    }

    /// Keys as `put_keys` writes them, each at or above `lower` (none: from time 0) and below
    /// `upper`, strictly ascending.
    fn keys(&mut self, lower: Option<SyncKey>, upper: Bound) -> Result<Vec<SyncKey>, WireError> {
        let n = self.varint()?;
        if n > (self.buf.len() / 33) as u64 {
            return err(format!("{n} keys announced, {} bytes left", self.buf.len()));
        }
        if n == 0 {
            return Ok(Vec::new());
        }
        let shift = u32::from(self.byte()?);
        if shift > 15 {
            return err(format!("time shift {shift} in a list of items"));
        }
        let mut keys: Vec<SyncKey> = Vec::with_capacity(n as usize);
        let mut deltas = Vec::with_capacity(n as usize);
        let mut time = lower.map_or(0, |k| k.time);
        for _ in 0..n {
            let stored = self.varint()?;
            let delta = stored
                .checked_shl(4 * shift)
                .filter(|d| d >> (4 * shift) == stored)
                .ok_or_else(|| WireError("item time delta overflows".into()))?;
            deltas.push(delta);
            time = time
                .checked_add(delta)
                .ok_or_else(|| WireError("item time overflows".into()))?;
            let key = SyncKey {
                time,
                id: EntryId::from_bytes(self.array()?),
            };
            let floor = keys.last().copied().or(lower);
            if floor.is_some_and(|f| key < f) || keys.last() == Some(&key) {
                return err("items do not ascend from the range's lower bound");
            }
            if !upper.above(&key) {
                return err("an item lies at or above its range's upper bound");
            }
            keys.push(key);
        }
        if list_shift(deltas.into_iter()) != shift {
            return err("item time deltas not in canonical shifted form");
        }
        Ok(keys)
    }

    fn bits(&mut self) -> Result<Vec<bool>, WireError> {
        let n = self.varint()?;
        let bytes = (n as usize).div_ceil(8);
        if n > (self.buf.len() as u64) * 8 {
            return err(format!("{n} bits announced, {} bytes left", self.buf.len()));
        }
        let raw = self.take(bytes)?;
        if n % 8 != 0 && raw[bytes - 1] >> (n % 8) != 0 {
            return err("bitfield has bits set past its length");
        }
        Ok((0..n as usize)
            .map(|i| raw[i / 8] & (1 << (i % 8)) != 0)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    fn sample() -> Message {
        let mut id = [0u8; 32];
        id[0] = 0xab;
        Message::Ranges(vec![
            Range {
                upper: Bound::Key(SyncKey {
                    time: 0x3_0000,
                    id: EntryId::from_bytes([0; 32]),
                }),
                mode: Mode::Skip,
            },
            Range {
                upper: Bound::Key(SyncKey {
                    time: 0x3_0000,
                    id: EntryId::from_bytes(id),
                }),
                mode: Mode::Fingerprint(Fingerprint([0x11; 16])),
            },
            Range {
                upper: Bound::Key(SyncKey {
                    time: 0x3_0005,
                    id: EntryId::from_bytes([0; 32]),
                }),
                mode: Mode::IdList(vec![SyncKey {
                    time: 0x3_0002,
                    id: EntryId::from_bytes([0x22; 32]),
                }]),
            },
            Range {
                upper: Bound::Infinity,
                mode: Mode::Diff {
                    lacked: vec![true, false, true],
                    only_here: vec![SyncKey {
                        time: 0x3_0007,
                        id: EntryId::from_bytes([0x44; 32]),
                    }],
                },
            },
        ])
    }

    /// Pins the v2 encoding: a change here is a protocol change.
    #[test]
    fn golden_bytes() {
        let bytes = sample().encode();
        let expected = [
            "0200", // version 2, Ranges
            "40",
            "03", // Skip, shift 16 bits: 0x30000 >> 16 = 3
            "09",
            "00",
            "01",
            "ab",                               // Fingerprint, prefix, delta 0, len 1, ab
            "11111111111111111111111111111111", // fingerprint
            "02",
            "05",
            "01", // IdList, bound delta 5, one item
            "00", // shift 0
            "02", // its time: 2 above the lower bound's
            "2222222222222222222222222222222222222222222222222222222222222222",
            "07",
            "03",
            "05", // Diff to infinity: 3 bits 101
            "01",
            "00", // one item of its own (shift 0)
            "02", // 2 above the lower bound (0x3_0005)
            "4444444444444444444444444444444444444444444444444444444444444444",
        ]
        .concat();
        assert_eq!(hex(&bytes), expected);
        assert_eq!(Message::decode(&bytes, 1 << 20).unwrap(), sample());

        let fast = Message::FastRequest {
            your_seq: 300,
            agreed_count: 2,
            agreed_fingerprint: Fingerprint([0x33; 16]),
            added: vec![SyncKey {
                time: 0x81,
                id: EntryId::from_bytes([0x55; 32]),
            }],
        };
        assert_eq!(
            hex(&fast.encode()),
            "0201ac020233333333333333333333333333333333".to_owned()
                + "01" // one item
                + "00" // shift 0
                + "8101" // its time from 0
                + &"55".repeat(32)
        );
        let reply = Message::FastReply(FastReply::Settled {
            lacked: vec![false, true],
            added: vec![],
        });
        assert_eq!(hex(&reply.encode()), "0202000202".to_owned() + "00");
        assert_eq!(
            hex(&Message::FastReply(FastReply::Fallback).encode()),
            "020201"
        );
        for m in [fast, reply] {
            assert_eq!(Message::decode(&m.encode(), 1 << 20).unwrap(), m);
        }
    }

    #[test]
    fn malformed_frames_are_refused() {
        let good = sample().encode();
        for cut in 0..good.len() {
            assert!(
                Message::decode(&good[..cut], 1 << 20).is_err(),
                "prefix of {cut} accepted"
            );
        }
        assert!(
            Message::decode(&good, good.len() - 1).is_err(),
            "over the limit"
        );
        let mut unordered = Message::Ranges(vec![
            Range {
                upper: Bound::Key(SyncKey {
                    time: 5,
                    id: EntryId::from_bytes([0; 32]),
                }),
                mode: Mode::Skip,
            },
            Range {
                upper: Bound::Key(SyncKey {
                    time: 5,
                    id: EntryId::from_bytes([0; 32]),
                }),
                mode: Mode::Skip,
            },
            Range {
                upper: Bound::Infinity,
                mode: Mode::Skip,
            },
        ])
        .encode();
        assert!(Message::decode(&unordered, 1 << 20).is_err());
        unordered.truncate(2);
        assert!(Message::decode(&unordered, 1 << 20).is_err(), "no infinity");
        // A count that promises more ids than bytes left.
        let lying = [2, 0, 0x06, 0xff, 0xff, 0x03];
        assert!(Message::decode(&lying, 1 << 20).is_err());
        // Non-canonical varint.
        assert!(Message::decode(&[2, 1, 0x80, 0x00, 0, 0], 1 << 20).is_err());
        // A version 1 frame.
        let v1 = Message::decode(&[1, 2, 1], 1 << 20).unwrap_err();
        assert_eq!(v1.to_string(), "malformed sync frame: unknown version 1");
    }

    #[test]
    fn listed_items_must_ascend_within_their_range() {
        let key = |time, b| SyncKey {
            time,
            id: EntryId::from_bytes([b; 32]),
        };
        let list = |items: Vec<SyncKey>| {
            Message::Ranges(vec![
                Range {
                    upper: Bound::Key(key(10, 0)),
                    mode: Mode::Skip,
                },
                Range {
                    upper: Bound::Key(key(20, 0)),
                    mode: Mode::IdList(items),
                },
                Range {
                    upper: Bound::Infinity,
                    mode: Mode::Skip,
                },
            ])
        };
        let good = list(vec![key(10, 0), key(12, 1), key(12, 2), key(19, 0xff)]);
        assert_eq!(Message::decode(&good.encode(), 1 << 20).unwrap(), good);
        // Times a whole number of 16-bit steps apart travel shifted: one byte each.
        let shifted = Message::FastRequest {
            your_seq: 0,
            agreed_count: 0,
            agreed_fingerprint: Fingerprint([0; 16]),
            added: vec![key(3 << 16, 1), key(4 << 16, 1), key(4 << 16, 2)],
        };
        let bytes = shifted.encode();
        let items = &bytes[2 + 1 + 1 + 16..];
        assert_eq!(&items[..3], [3, 4, 3]); // three items, shift 4 nibbles, 3 << 16 from 0
        assert_eq!(items[35], 1); // then 1 << 16 later
        assert_eq!(items[68], 0); // then the same time
        assert_eq!(Message::decode(&bytes, 1 << 20).unwrap(), shifted);
        // The same deltas with a smaller shift than they allow: not canonical.
        let mut unshifted = bytes[..2 + 1 + 1 + 16].to_vec();
        unshifted.extend([3, 0]);
        for (delta, id) in [(3u64 << 16, 1u8), (1 << 16, 1), (0, 2)] {
            put_varint(&mut unshifted, delta);
            unshifted.extend([id; 32]);
        }
        assert!(Message::decode(&unshifted, 1 << 20).is_err());
        for bad in [
            vec![key(9, 0xff)],           // below the lower bound
            vec![key(20, 0)],             // at the upper bound
            vec![key(12, 2), key(12, 1)], // falling
            vec![key(12, 2), key(12, 2)], // repeated
            vec![key(15, 0), key(11, 0)], // falling time (wraps when encoded)
        ] {
            let frame = list(bad.clone()).encode();
            assert!(
                Message::decode(&frame, 1 << 20).is_err(),
                "{bad:?} accepted"
            );
        }
        let falling = Message::FastRequest {
            your_seq: 0,
            agreed_count: 0,
            agreed_fingerprint: Fingerprint([0; 16]),
            added: vec![key(5, 0), key(4, 0)],
        };
        assert!(Message::decode(&falling.encode(), 1 << 20).is_err());
    }

    #[test]
    fn a_hand_built_message_with_falling_times_encodes_to_a_refused_frame() {
        let bound = |time| {
            Bound::Key(SyncKey {
                time,
                id: EntryId::from_bytes([0; 32]),
            })
        };
        let falling = Message::Ranges(vec![
            Range {
                upper: bound(1 << 20),
                mode: Mode::Skip,
            },
            Range {
                upper: bound(5),
                mode: Mode::Skip,
            },
            Range {
                upper: Bound::Infinity,
                mode: Mode::Skip,
            },
        ]);
        let frame = falling.encode(); // no panic, even in a debug build
        assert!(Message::decode(&frame, 1 << 20).is_err());
    }

    /// The kind of a range, its items to be filled in from the keys that fall in it.
    #[derive(Debug, Clone)]
    enum ModeKind {
        Skip,
        Fingerprint([u8; 16]),
        IdList,
        Diff(Vec<bool>),
    }

    fn arb_mode_kind() -> impl Strategy<Value = ModeKind> {
        prop_oneof![
            Just(ModeKind::Skip),
            any::<[u8; 16]>().prop_map(ModeKind::Fingerprint),
            Just(ModeKind::IdList),
            prop::collection::vec(any::<bool>(), 0..20).prop_map(ModeKind::Diff),
        ]
    }

    /// A key: times from a small range too, so that equal times (ids decide) are common.
    fn arb_key() -> impl Strategy<Value = SyncKey> {
        let time = prop_oneof![0u64..4, any::<u64>()];
        (time, 0usize..=32, any::<[u8; 32]>()).prop_map(|(t, n, mut id)| {
            id[n..].fill(0);
            SyncKey {
                time: t,
                id: EntryId::from_bytes(id),
            }
        })
    }

    fn sorted_keys(n: std::ops::Range<usize>) -> impl Strategy<Value = Vec<SyncKey>> {
        prop::collection::vec(arb_key(), n).prop_map(|mut keys| {
            keys.sort();
            keys.dedup();
            keys
        })
    }

    fn arb_message() -> impl Strategy<Value = Message> {
        // Sorted keys, each either a range's upper bound or an item of the range it falls in.
        let points = prop::collection::vec((arb_key(), prop::option::of(arb_mode_kind())), 0..12);
        let ranges = (points, arb_mode_kind()).prop_map(|(mut points, last)| {
            points.sort_by_key(|(k, _)| *k);
            points.dedup_by_key(|(k, _)| *k);
            let mut ranges = Vec::new();
            let mut items = Vec::new();
            let range = |upper, kind: ModeKind, items: &mut Vec<SyncKey>| {
                let items = std::mem::take(items);
                let mode = match kind {
                    ModeKind::Skip => Mode::Skip,
                    ModeKind::Fingerprint(f) => Mode::Fingerprint(Fingerprint(f)),
                    ModeKind::IdList => Mode::IdList(items),
                    ModeKind::Diff(lacked) => Mode::Diff {
                        lacked,
                        only_here: items,
                    },
                };
                Range { upper, mode }
            };
            for (k, kind) in points {
                match kind {
                    Some(kind) => ranges.push(range(Bound::Key(k), kind, &mut items)),
                    None => items.push(k),
                }
            }
            ranges.push(range(Bound::Infinity, last, &mut items));
            Message::Ranges(ranges)
        });
        prop_oneof![
            ranges,
            (
                any::<u64>(),
                any::<u64>(),
                any::<[u8; 16]>(),
                sorted_keys(0..4)
            )
                .prop_map(|(s, c, f, added)| Message::FastRequest {
                    your_seq: s,
                    agreed_count: c,
                    agreed_fingerprint: Fingerprint(f),
                    added,
                }),
            (
                prop::collection::vec(any::<bool>(), 0..20),
                sorted_keys(0..4)
            )
                .prop_map(|(lacked, added)| Message::FastReply(FastReply::Settled {
                    lacked,
                    added
                })),
            Just(Message::FastReply(FastReply::Fallback)),
        ]
    }

    proptest! {
        /// Every valid message round-trips, and its bytes are the only ones that decode to it
        /// (checked on the way: decode accepts only canonical bytes, and re-encodes to them).
        #[test]
        fn messages_round_trip(m in arb_message()) {
            let bytes = m.encode();
            let back = Message::decode(&bytes, MAX_FRAME_LIMIT).unwrap();
            prop_assert_eq!(back.encode(), bytes);
            prop_assert_eq!(back, m);
        }
    }
}
