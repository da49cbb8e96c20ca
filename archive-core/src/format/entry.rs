//! Entry encodings: version 2 (written today) and version 1 (still read: entries are signed,
//! so an entry stays in the encoding its author wrote).
//!
//! ```text
//! entry  = body || signature[64]
//! body   = 0x02 (version) || postcard(EntryBodyV2)      (or 0x01 || postcard(EntryBodyV1))
//! id     = BLAKE3(body)
//! signed message = "archive entry signature v1\0" || body   (Ed25519, strict verification)
//! ```
//! The version byte is part of the signed body, so the signature context stays the same.
//! postcard writes unsigned integers as LEB128 varints, signed ones zigzag-encoded first,
//! strings as varint length + UTF-8, `[u8; 32]` as 32 raw bytes, `Option` as 0x00 / 0x01 +
//! value, and enums as a varint variant index. Decoding accepts only the canonical encoding:
//! the bytes must re-encode to themselves.

use serde::{Deserialize, Serialize};

use crate::EntryError;

/// The version byte of entries written before entry v2.
pub(crate) const ENTRY_V1: u8 = 1;
/// The version byte of every entry written today.
pub(crate) const ENTRY_V2: u8 = 2;
/// The largest encoded entry (body and signature) accepted from anywhere.
pub const MAX_ENCODED_ENTRY: usize = 8 * 1024;
/// The permission bits an entry may carry: read, write and execute for owner, group and
/// others. Set-user-id, set-group-id and sticky bits never travel.
pub(crate) const MODE_BITS: u32 = 0o777;

/// Entry body, version 1 (read only).
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

/// Entry body, version 2.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct EntryBodyV2<'a> {
    pub(crate) collection: &'a str,
    pub(crate) key: &'a str,
    pub(crate) author: [u8; 32],
    pub(crate) time: u64,
    pub(crate) value: ValueV2,
    // The messenger's fields; `None` for archive files.
    /// The account on the author's server of the person who wrote it.
    pub(crate) person: Option<&'a str>,
    /// The entry this one answers: its time and id.
    pub(crate) reply_to: Option<(u64, [u8; 32])>,
    /// The entry this one replaces: its time and id.
    pub(crate) edit_of: Option<(u64, [u8; 32])>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) enum ValueV2 {
    /// Variant 0.
    Tombstone,
    /// Variant 1.
    File {
        hash: [u8; 32],
        size: u64,
        manifest: Option<[u8; 32]>,
        meta: MetaV2,
    },
    /// Variant 2: a folder (written for empty ones).
    Folder { meta: MetaV2 },
}

/// What a file system says about a file or folder besides its bytes.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, Clone, Copy, Default)]
pub(crate) struct MetaV2 {
    /// Modification time, nanoseconds since the Unix epoch (negative before 1970).
    pub(crate) modified_ns: Option<i64>,
    /// Permission bits, within [`MODE_BITS`].
    pub(crate) mode: Option<u32>,
}

/// A decoded entry body of either version.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum EntryBody<'a> {
    V1(EntryBodyV1<'a>),
    V2(EntryBodyV2<'a>),
}

fn malformed(reason: String) -> EntryError {
    EntryError::Malformed { reason }
}

fn encode_versioned<T: Serialize>(version: u8, body: &T) -> Vec<u8> {
    let mut out = vec![version];
    out.extend(postcard::to_stdvec(body).expect("entry bodies always serialise"));
    out
}

/// Decodes `body[1..]` as `T`, accepting only bytes that re-encode to themselves.
fn decode_canonical<'a, T>(body: &'a [u8]) -> Result<T, EntryError>
where
    T: Serialize + Deserialize<'a>,
{
    let (decoded, rest): (T, _) = postcard::take_from_bytes(&body[1..])
        .map_err(|e| malformed(format!("cannot decode entry body: {e}")))?;
    if !rest.is_empty() {
        return Err(malformed(format!(
            "{} trailing bytes after the entry body",
            rest.len()
        )));
    }
    if encode_versioned(body[0], &decoded) != body {
        return Err(malformed("entry body is not in canonical encoding".into()));
    }
    Ok(decoded)
}

impl EntryBodyV1<'_> {
    #[cfg(test)]
    pub(crate) fn encode(&self) -> Vec<u8> {
        encode_versioned(ENTRY_V1, self)
    }
}

impl EntryBodyV2<'_> {
    pub(crate) fn encode(&self) -> Vec<u8> {
        encode_versioned(ENTRY_V2, self)
    }
}

impl<'a> EntryBody<'a> {
    /// Decodes a body of either version: canonical bytes only, and (v2) permission bits within
    /// [`MODE_BITS`].
    pub(crate) fn decode(body: &'a [u8]) -> Result<Self, EntryError> {
        match body.first() {
            None => Err(malformed("empty entry body".into())),
            Some(&ENTRY_V1) => Ok(EntryBody::V1(decode_canonical(body)?)),
            Some(&ENTRY_V2) => {
                let decoded: EntryBodyV2<'a> = decode_canonical(body)?;
                decoded.check()?;
                Ok(EntryBody::V2(decoded))
            }
            Some(&v) => Err(EntryError::UnknownVersion { version: v }),
        }
    }
}

impl EntryBodyV2<'_> {
    /// What the encoding allows but no valid entry holds.
    pub(crate) fn check(&self) -> Result<(), EntryError> {
        let meta = match &self.value {
            ValueV2::Tombstone => None,
            ValueV2::File { meta, .. } | ValueV2::Folder { meta } => Some(meta),
        };
        if let Some(mode) = meta.and_then(|m| m.mode) {
            if mode & !MODE_BITS != 0 {
                return Err(malformed(format!(
                    "mode {mode:o} has bits beyond the permission bits 777"
                )));
            }
        }
        Ok(())
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
        assert_eq!(hex(&sample().encode()), hex(&expected));
        let tomb = EntryBodyV1 {
            value: ValueV1::Tombstone,
            ..sample()
        };
        assert_eq!(*tomb.encode().last().unwrap(), 0);
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn decode_round_trips_and_refuses_non_canonical_bytes() {
        let encoded = sample().encode();
        assert_eq!(
            EntryBody::decode(&encoded).unwrap(),
            EntryBody::V1(sample())
        );
        let mut trailing = encoded.clone();
        trailing.push(0);
        assert!(EntryBody::decode(&trailing).is_err());
        let mut version3 = encoded.clone();
        version3[0] = 3;
        assert!(matches!(
            EntryBody::decode(&version3),
            Err(EntryError::UnknownVersion { version: 3 })
        ));
        // An overlong varint for the size 300: same value, different bytes.
        let mut overlong = encoded[..encoded.len() - 3].to_vec();
        overlong.extend([0xac, 0x82, 0x00, 0x00]);
        assert!(EntryBody::decode(&overlong).is_err());
        // v1 bytes under the v2 version byte are not a v2 body.
        let mut relabelled = encoded;
        relabelled[0] = ENTRY_V2;
        assert!(EntryBody::decode(&relabelled).is_err());
    }

    fn sample_v2() -> EntryBodyV2<'static> {
        EntryBodyV2 {
            collection: "library",
            key: "docs/a.txt",
            author: [7; 32],
            time: 300,
            value: ValueV2::File {
                hash: [0xab; 32],
                size: 300,
                manifest: None,
                meta: MetaV2 {
                    modified_ns: Some(-2),
                    mode: Some(0o755),
                },
            },
            person: Some("ana"),
            reply_to: Some((5, [0x11; 32])),
            edit_of: None,
        }
    }

    /// Pins the v2 encoding byte for byte: a change here is a format change.
    #[test]
    fn golden_bytes_v2() {
        let mut expected = vec![2u8, 7];
        expected.extend(b"library");
        expected.push(10);
        expected.extend(b"docs/a.txt");
        expected.extend([7; 32]);
        expected.extend([0xac, 0x02]); // time 300
        expected.push(1); // File
        expected.extend([0xab; 32]);
        expected.extend([0xac, 0x02]); // size 300
        expected.push(0); // no manifest
        expected.extend([1, 3]); // modified: Some(-2), zigzag 3
        expected.extend([1, 0xed, 0x03]); // mode: Some(0o755 = 493)
        expected.extend([1, 3]); // person: Some("ana")
        expected.extend(b"ana");
        expected.push(1); // reply_to: Some
        expected.push(5); // its time
        expected.extend([0x11; 32]);
        expected.push(0); // edit_of: None
        assert_eq!(hex(&sample_v2().encode()), hex(&expected));

        let folder = EntryBodyV2 {
            value: ValueV2::Folder {
                meta: MetaV2 {
                    modified_ns: None,
                    mode: None,
                },
            },
            person: None,
            reply_to: None,
            ..sample_v2()
        };
        let bytes = folder.encode();
        // ... time, then Folder (2), no mtime, no mode, no person, reply or edit.
        assert_eq!(hex(&bytes[bytes.len() - 6..]), "020000000000");
        let tomb = EntryBodyV2 {
            value: ValueV2::Tombstone,
            ..folder
        };
        let bytes = tomb.encode();
        // ... time, then Tombstone (0) with no metadata, then no person, reply or edit.
        assert_eq!(hex(&bytes[bytes.len() - 4..]), "00000000");
    }

    #[test]
    fn v2_decodes_canonical_bytes_with_valid_modes_only() {
        let encoded = sample_v2().encode();
        assert_eq!(
            EntryBody::decode(&encoded).unwrap(),
            EntryBody::V2(sample_v2())
        );
        let with_mode = |mode| EntryBodyV2 {
            value: ValueV2::Folder {
                meta: MetaV2 {
                    modified_ns: Some(0),
                    mode: Some(mode),
                },
            },
            ..sample_v2()
        };
        assert!(EntryBody::decode(&with_mode(0o777).encode()).is_ok());
        for refused in [0o1000, 0o4755, u32::MAX] {
            let err = EntryBody::decode(&with_mode(refused).encode()).unwrap_err();
            assert!(err.to_string().contains("permission bits"), "{err}");
        }
        let mut trailing = encoded;
        trailing.push(0);
        assert!(EntryBody::decode(&trailing).is_err());
    }
}
