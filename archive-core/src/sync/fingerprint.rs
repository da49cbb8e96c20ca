//! Items, their order, and range fingerprints.
//!
//! An item is an entry's `(time, id)`. Items are ordered by time, then id, so new items cluster
//! at the end. A range fingerprint is BLAKE3 over the *sum* of the ids (as 256-bit little-endian
//! integers, mod 2^256) and the count, truncated to 16 bytes. A sum, unlike XOR, cannot be
//! cancelled by sending an item twice, and it is additive: the fingerprint of any range is
//! computed from two prefix sums.

use crate::entry::EntryId;
use std::fmt;

/// One item of a reconciled set: an entry's time and id. The store keeps its entries by it,
/// and network requests name entries by it. With serde, a struct of the time and the id's
/// 32 bytes.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub struct SyncKey {
    /// Entry time (raw hybrid-logical-clock value).
    pub time: u64,
    /// Entry id.
    pub id: EntryId,
}

impl fmt::Debug for SyncKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{:02x}{:02x}{:02x}{:02x}",
            self.time,
            self.id.as_bytes()[0],
            self.id.as_bytes()[1],
            self.id.as_bytes()[2],
            self.id.as_bytes()[3]
        )
    }
}

/// A running sum and count of items.
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub struct Accumulator {
    pub(crate) sum: [u64; 4],
    pub(crate) count: u64,
}

impl Accumulator {
    /// Adds one id.
    pub fn add(&mut self, id: &EntryId) {
        self.add_bytes(id.as_bytes());
    }

    /// Adds one id given as its raw bytes.
    pub(crate) fn add_bytes(&mut self, id: &[u8; 32]) {
        let mut carry = 0u128;
        for (i, limb) in self.sum.iter_mut().enumerate() {
            let x = u64::from_le_bytes(id[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
            let s = *limb as u128 + x as u128 + carry;
            *limb = s as u64;
            carry = s >> 64;
        }
        self.count += 1;
    }

    /// Adds another accumulator.
    pub fn merge(&mut self, other: &Accumulator) {
        let mut carry = 0u128;
        for i in 0..4 {
            let s = self.sum[i] as u128 + other.sum[i] as u128 + carry;
            self.sum[i] = s as u64;
            carry = s >> 64;
        }
        self.count += other.count;
    }

    /// `self - other`: the items in `self` but not in `other`, when `other` is a subset.
    pub fn minus(&self, other: &Accumulator) -> Accumulator {
        let mut out = [0u64; 4];
        let mut borrow = 0u64;
        for (i, o) in out.iter_mut().enumerate() {
            let (d1, b1) = self.sum[i].overflowing_sub(other.sum[i]);
            let (d2, b2) = d1.overflowing_sub(borrow);
            *o = d2;
            borrow = u64::from(b1 || b2);
        }
        Accumulator {
            sum: out,
            count: self.count.wrapping_sub(other.count),
        }
    }

    /// Number of items.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The 16-byte fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        // BLAKE3 of the 40-byte form (see `format::sync_index`): the four limbs, then the
        // count, all little-endian.
        let digest = blake3::hash(&self.to_bytes());
        Fingerprint(digest.as_bytes()[..16].try_into().expect("16 bytes"))
    }
}

/// A range fingerprint: 16 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Fingerprint(pub [u8; 16]);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_wrap_mod_2_256_and_subtract_back() {
        let mut a = Accumulator::default();
        a.add_bytes(&[0xff; 32]);
        a.add_bytes(&[0x01; 32]);
        let mut b = Accumulator::default();
        b.add_bytes(&[0x01; 32]);
        let mut only_ff = Accumulator::default();
        only_ff.add_bytes(&[0xff; 32]);
        assert_eq!(a.minus(&b), only_ff);
        let mut merged = b;
        merged.merge(&only_ff);
        assert_eq!(merged, a);
        assert_eq!(Accumulator::from_bytes(&a.to_bytes()), a);
        // Order does not matter; count does.
        let mut c = Accumulator::default();
        c.add_bytes(&[0x01; 32]);
        c.add_bytes(&[0xff; 32]);
        assert_eq!(c.fingerprint(), a.fingerprint());
        assert_ne!(Accumulator::default().fingerprint(), {
            let mut z = Accumulator::default();
            z.add_bytes(&[0; 32]);
            z.fingerprint()
        });
    }
}
