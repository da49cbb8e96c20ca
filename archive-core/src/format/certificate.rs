//! Batch certificate encoding v1: one author's signature over the ids of many of its entries,
//! so a receiver checks one signature for a whole batch instead of one per entry.
//!
//! ```text
//! certificate = body || signature[64]
//! body        = 0x01 (version) || postcard(CertificateBodyV1)
//! id          = BLAKE3(body)
//! signed message = "archive batch certificate v1\0" || body   (Ed25519, strict verification)
//! ```
//! The ids are entry ids (BLAKE3 of an entry's body), strictly ascending, between 1 and
//! [`MAX_CERTIFIED_IDS`] of them. A certificate says "these entry bodies are mine": an entry
//! whose id it lists and whose author is the certificate's author is as authentic as one
//! whose own signature verifies (the id is a hash of the whole body, author included).
//! Canonical bytes only, as for entries.

use serde::{Deserialize, Serialize};

use crate::EntryError;

/// The version byte of batch certificates.
pub(crate) const CERTIFICATE_V1: u8 = 1;
/// The most entry ids one certificate lists (32 KiB of ids).
pub const MAX_CERTIFIED_IDS: usize = 1024;
/// The largest encoded certificate: version, author, the id count (a 2-byte varint at most),
/// the ids and the signature.
pub const MAX_ENCODED_CERTIFICATE: usize = 1 + 32 + 2 + 32 * MAX_CERTIFIED_IDS + 64;

/// Certificate body, version 1.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct CertificateBodyV1 {
    pub(crate) author: [u8; 32],
    pub(crate) ids: Vec<[u8; 32]>,
}

fn malformed(reason: String) -> EntryError {
    EntryError::Malformed {
        reason: format!("batch certificate: {reason}"),
    }
}

impl CertificateBodyV1 {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = vec![CERTIFICATE_V1];
        out.extend(postcard::to_stdvec(self).expect("certificate bodies always serialise"));
        out
    }

    /// Decodes a body: canonical bytes only, ids strictly ascending and within the limit.
    pub(crate) fn decode(body: &[u8]) -> Result<Self, EntryError> {
        match body.first() {
            None => return Err(malformed("empty body".into())),
            Some(&CERTIFICATE_V1) => {}
            Some(&v) => return Err(malformed(format!("unknown version {v}"))),
        }
        if body.len() > MAX_ENCODED_CERTIFICATE - 64 {
            return Err(malformed(format!("{} bytes is too long", body.len())));
        }
        let (decoded, rest): (Self, _) = postcard::take_from_bytes(&body[1..])
            .map_err(|e| malformed(format!("cannot decode: {e}")))?;
        if !rest.is_empty() {
            return Err(malformed(format!("{} trailing bytes", rest.len())));
        }
        if decoded.encode() != body {
            return Err(malformed("not in canonical encoding".into()));
        }
        decoded.check()?;
        Ok(decoded)
    }

    /// What the encoding allows but no certificate holds.
    pub(crate) fn check(&self) -> Result<(), EntryError> {
        if self.ids.is_empty() || self.ids.len() > MAX_CERTIFIED_IDS {
            return Err(malformed(format!(
                "{} ids (1 to {MAX_CERTIFIED_IDS} allowed)",
                self.ids.len()
            )));
        }
        if !self.ids.windows(2).all(|w| w[0] < w[1]) {
            return Err(malformed("ids are not strictly ascending".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CertificateBodyV1 {
        CertificateBodyV1 {
            author: [7; 32],
            ids: vec![[1; 32], [2; 32], [9; 32]],
        }
    }

    #[test]
    fn golden_bytes() {
        let encoded = sample().encode();
        let mut expected = vec![1u8];
        expected.extend([7u8; 32]);
        expected.push(3);
        for b in [1u8, 2, 9] {
            expected.extend([b; 32]);
        }
        assert_eq!(encoded, expected);
        assert_eq!(CertificateBodyV1::decode(&encoded).unwrap(), sample());
    }

    #[test]
    fn refuses_what_no_certificate_holds() {
        let good = sample().encode();
        let mut trailing = good.clone();
        trailing.push(0);
        let mut version2 = good.clone();
        version2[0] = 2;
        let unsorted = CertificateBodyV1 {
            author: [7; 32],
            ids: vec![[2; 32], [1; 32]],
        }
        .encode();
        let twice = CertificateBodyV1 {
            author: [7; 32],
            ids: vec![[2; 32], [2; 32]],
        }
        .encode();
        let empty = CertificateBodyV1 {
            author: [7; 32],
            ids: vec![],
        }
        .encode();
        let too_many = CertificateBodyV1 {
            author: [7; 32],
            ids: (0..=MAX_CERTIFIED_IDS as u32)
                .map(|i| {
                    let mut id = [0u8; 32];
                    id[..4].copy_from_slice(&i.to_be_bytes());
                    id
                })
                .collect(),
        }
        .encode();
        // A count written in two bytes where one would do.
        let mut long_count = good[..33].to_vec();
        long_count.extend([0x83, 0x00]);
        long_count.extend(&good[34..]);
        for bad in [
            &trailing[..],
            &version2,
            &unsorted,
            &twice,
            &empty,
            &too_many,
            &long_count,
            &[][..],
            &good[..40],
        ] {
            assert!(
                CertificateBodyV1::decode(bad).is_err(),
                "accepted {} bytes",
                bad.len()
            );
        }
    }
}
