//! Entry encoding, version 1.
//!
//! ```text
//! entry  = body || signature[64]
//! body   = 0x01 (version) || postcard(EntryBodyV1)
//! id     = BLAKE3(body)
//! signed message = "archive entry signature v1\0" || body   (Ed25519, strict verification)
//! ```
//! postcard writes integers as LEB128 varints, strings as varint length + UTF-8, `[u8; 32]` as
//! 32 raw bytes, `Option` as 0x00 / 0x01 + value, and enums as a varint variant index (so
//! variants are only ever appended). Decoding accepts only the canonical encoding: the bytes
//! must re-encode to themselves.

use serde::{Deserialize, Serialize};

use crate::EntryError;

/// The version byte that starts every entry body.
pub(crate) const ENTRY_VERSION: u8 = 1;
/// The largest encoded entry (body and signature) accepted from anywhere.
pub const MAX_ENCODED_ENTRY: usize = 8 * 1024;

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct EntryBodyV1<'a> {
    pub(crate) collection: &'a str,
    pub(crate) key: &'a str,
    pub(crate) author: [u8; 32],
    pub(crate) time: u64,
    pub(crate) value: ValueV1,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) enum ValueV1 {
    /// Variant 0.
    Tombstone,
    /// Variant 1.
    File {
        hash: [u8; 32],
        size: u64,
        manifest: Option<[u8; 32]>,
    },
}

impl<'a> EntryBodyV1<'a> {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = vec![ENTRY_VERSION];
        out.extend(postcard::to_stdvec(self).expect("entry bodies always serialise"));
        out
    }

    pub(crate) fn decode(body: &'a [u8]) -> Result<Self, EntryError> {
        let malformed = |reason: String| EntryError::Malformed { reason };
        match body.first() {
            None => return Err(malformed("empty entry body".into())),
            Some(&ENTRY_VERSION) => {}
            Some(&v) => return Err(EntryError::UnknownVersion { version: v }),
        }
        let (decoded, rest): (EntryBodyV1<'a>, _) = postcard::take_from_bytes(&body[1..])
            .map_err(|e| malformed(format!("cannot decode entry body: {e}")))?;
        if !rest.is_empty() {
            return Err(malformed(format!(
                "{} trailing bytes after the entry body",
                rest.len()
            )));
        }
        if decoded.encode() != body {
            return Err(malformed("entry body is not in canonical encoding".into()));
        }
        Ok(decoded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> EntryBodyV1<'static> {
        EntryBodyV1 {
            collection: "library",
            key: "docs/a.txt",
            author: [7; 32],
            time: 0x0001_8f00_0000_0001,
            value: ValueV1::File {
                hash: [0xab; 32],
                size: 300,
                manifest: None,
            },
        }
    }

    /// Pins the v1 encoding byte for byte: a change here is a format change.
    #[test]
    fn golden_bytes() {
        let mut expected = vec![1u8, 7];
        expected.extend(b"library");
        expected.push(10);
        expected.extend(b"docs/a.txt");
        expected.extend([7; 32]);
        // 0x0001_8f00_0000_0001 as LEB128
        expected.extend([0x81, 0x80, 0x80, 0x80, 0x80, 0xe0, 0x63]);
        expected.push(1); // File
        expected.extend([0xab; 32]);
        expected.extend([0xac, 0x02]); // 300
        expected.push(0); // no manifest
        let encoded = sample().encode();
        assert_eq!(
            encoded
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>(),
            expected
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        let tomb = EntryBodyV1 {
            value: ValueV1::Tombstone,
            ..sample()
        };
        assert_eq!(*tomb.encode().last().unwrap(), 0);
    }

    #[test]
    fn decode_round_trips_and_refuses_non_canonical_bytes() {
        let encoded = sample().encode();
        assert_eq!(EntryBodyV1::decode(&encoded).unwrap(), sample());
        let mut trailing = encoded.clone();
        trailing.push(0);
        assert!(EntryBodyV1::decode(&trailing).is_err());
        let mut version2 = encoded.clone();
        version2[0] = 2;
        assert!(matches!(
            EntryBodyV1::decode(&version2),
            Err(EntryError::UnknownVersion { version: 2 })
        ));
        // An overlong varint for the size 300: same value, different bytes.
        let mut overlong = encoded[..encoded.len() - 3].to_vec();
        overlong.extend([0xac, 0x82, 0x00, 0x00]);
        assert!(EntryBodyV1::decode(&overlong).is_err());
    }
}
