//! The sync index's byte forms, version 1 (the tables are in `layout.rs`):
//!
//! ```text
//! item        = time (8 bytes, big-endian) || entry id (32 bytes)        40 bytes
//!               byte order = item order (time, then id): the redb key of blocks and logs
//! accumulator = sum (4 limbs of 8 bytes, little-endian, low limb first) || count (8 bytes,
//!               little-endian)                                            40 bytes
//!               also what a range fingerprint hashes: BLAKE3(accumulator)[..16]
//! block items = item*   (1..=1024 items, strictly ascending)             sync-block-items-v1
//! block       = count (4 bytes, little-endian) || accumulator of the block's items
//!               || last item                                             84 bytes, sync-blocks-v1
//!               (keyed by the block's first item)
//! ```

use crate::entry::EntryId;
use crate::error::StorageError;
use crate::sync::{Accumulator, SyncKey};

impl SyncKey {
    /// The 40-byte form whose byte order is the item order.
    #[inline]
    pub(crate) fn to_bytes(self) -> [u8; 40] {
        let mut out = [0u8; 40];
        out[..8].copy_from_slice(&self.time.to_be_bytes());
        out[8..].copy_from_slice(self.id.as_bytes());
        out
    }

    #[inline]
    pub(crate) fn from_bytes(b: &[u8; 40]) -> Self {
        let (time, id) = b.split_at(8);
        SyncKey {
            time: u64::from_be_bytes(time.try_into().unwrap_or_default()),
            id: EntryId::from_bytes(id.try_into().unwrap_or_default()),
        }
    }
}

impl Accumulator {
    /// The 40-byte form: the sum's limbs, then the count, little-endian.
    #[inline]
    pub(crate) fn to_bytes(self) -> [u8; 40] {
        let mut out = [0u8; 40];
        for (i, limb) in self.sum.iter().enumerate() {
            out[i * 8..i * 8 + 8].copy_from_slice(&limb.to_le_bytes());
        }
        out[32..].copy_from_slice(&self.count.to_le_bytes());
        out
    }

    #[inline]
    pub(crate) fn from_bytes(b: &[u8; 40]) -> Self {
        let word =
            |i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap_or_default());
        Accumulator {
            sum: [word(0), word(1), word(2), word(3)],
            count: word(4),
        }
    }
}

/// A block's summary: its first item (the row's key), its sum and count, its last item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlockSummary {
    pub(crate) first: SyncKey,
    pub(crate) last: SyncKey,
    pub(crate) acc: Accumulator,
}

impl BlockSummary {
    pub(crate) fn encode(&self) -> [u8; 84] {
        let mut out = [0u8; 84];
        out[..4].copy_from_slice(&(self.acc.count() as u32).to_le_bytes());
        out[4..44].copy_from_slice(&self.acc.to_bytes());
        out[44..].copy_from_slice(&self.last.to_bytes());
        out
    }

    pub(crate) fn decode(first: [u8; 40], v: &[u8; 84]) -> Result<Self, StorageError> {
        let (count, rest) = v.split_at(4);
        let (acc, last) = rest.split_at(40);
        let acc = Accumulator::from_bytes(acc.try_into().unwrap_or(&[0; 40]));
        let count = u32::from_le_bytes(count.try_into().unwrap_or_default());
        if u64::from(count) != acc.count() || count == 0 {
            return Err(StorageError::Damaged(
                "a sync index block has inconsistent counts".into(),
            ));
        }
        Ok(BlockSummary {
            first: SyncKey::from_bytes(&first),
            last: SyncKey::from_bytes(last.try_into().unwrap_or(&[0; 40])),
            acc,
        })
    }

    /// The summary of a block holding `keys` (not empty, ascending).
    pub(crate) fn of(keys: &[SyncKey]) -> Option<Self> {
        let mut acc = Accumulator::default();
        for k in keys {
            acc.add(&k.id);
        }
        Some(BlockSummary {
            first: *keys.first()?,
            last: *keys.last()?,
            acc,
        })
    }
}

/// A block's items as stored.
pub(crate) fn pack(keys: &[SyncKey]) -> Vec<u8> {
    let mut out = Vec::with_capacity(keys.len() * 40);
    for k in keys {
        out.extend_from_slice(&k.to_bytes());
    }
    out
}

/// A block's items from their stored form, checked: whole items, at least one, ascending.
pub(crate) fn unpack(bytes: &[u8]) -> Result<Vec<SyncKey>, StorageError> {
    if !bytes.len().is_multiple_of(40) || bytes.is_empty() {
        return Err(StorageError::Damaged(
            "a sync index block has a torn item list".into(),
        ));
    }
    let keys: Vec<SyncKey> = bytes
        .chunks_exact(40)
        .filter_map(|c| c.try_into().ok().map(SyncKey::from_bytes))
        .collect();
    if keys.windows(2).any(|w| w[0] >= w[1]) {
        return Err(StorageError::Damaged(
            "a sync index block is not sorted".into(),
        ));
    }
    Ok(keys)
}

/// Item `i` of a packed block (`bytes` holds at least `i + 1` items).
#[inline]
pub(crate) fn packed_item(bytes: &[u8], i: usize) -> &[u8; 40] {
    bytes[i * 40..i * 40 + 40]
        .try_into()
        .expect("callers index within the block")
}

/// `a < b` for two packed items: the big-endian time first (one integer compare), the id
/// only when the times are equal.
#[inline]
pub(crate) fn packed_less(a: &[u8; 40], b: &[u8; 40]) -> bool {
    let time = |x: &[u8; 40]| u64::from_be_bytes(x[..8].try_into().unwrap_or_default());
    let (ta, tb) = (time(a), time(b));
    ta < tb || (ta == tb && a[8..] < b[8..])
}

/// The id bytes of a packed item.
#[inline]
pub(crate) fn packed_id(item: &[u8; 40]) -> &[u8; 32] {
    item[8..].try_into().expect("40 - 8 bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_bytes_sort_like_items() {
        let a = SyncKey {
            time: 1,
            id: EntryId::from_bytes([9; 32]),
        };
        let b = SyncKey {
            time: 256,
            id: EntryId::from_bytes([0; 32]),
        };
        assert!(a < b && a.to_bytes() < b.to_bytes());
        assert!(packed_less(&a.to_bytes(), &b.to_bytes()));
        assert_eq!(SyncKey::from_bytes(&b.to_bytes()), b);
    }

    /// Golden bytes: a change here is a change of the on-disk format (a new table version).
    #[test]
    fn golden_item_and_block_bytes() {
        let k = SyncKey {
            time: 0x0102_0304_0506_0708,
            id: EntryId::from_bytes([0xaa; 32]),
        };
        let mut expected_item = vec![1, 2, 3, 4, 5, 6, 7, 8];
        expected_item.extend([0xaa; 32]);
        assert_eq!(k.to_bytes().to_vec(), expected_item);

        let summary = BlockSummary::of(&[k]).unwrap();
        let bytes = summary.encode();
        assert_eq!(&bytes[..4], &[1, 0, 0, 0]);
        // The sum of one id is the id (little-endian limbs), then the count 1.
        assert_eq!(&bytes[4..36], &[0xaa; 32]);
        assert_eq!(&bytes[36..44], &[1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&bytes[44..], &expected_item[..]);
        assert_eq!(BlockSummary::decode(k.to_bytes(), &bytes).unwrap(), summary);
        let mut torn = bytes;
        torn[0] = 2;
        assert!(BlockSummary::decode(k.to_bytes(), &torn).is_err());
        assert_eq!(unpack(&pack(&[k])).unwrap(), vec![k]);
        assert!(unpack(&pack(&[k, k])).is_err(), "not ascending");
        assert!(unpack(&[0; 39]).is_err(), "torn");
        assert!(unpack(&[]).is_err(), "empty");
    }

    #[test]
    fn accumulator_bytes_round_trip() {
        let mut a = Accumulator::default();
        a.add_bytes(&[0xff; 32]);
        a.add_bytes(&[0x01; 32]);
        assert_eq!(Accumulator::from_bytes(&a.to_bytes()), a);
    }
}
