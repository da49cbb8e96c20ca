//! Chunk manifest, version 1: the blob that lists a chunked file's chunks in order.
//!
//! ```text
//! manifest = "archive-manifest-v1\n" || postcard(ManifestV1)
//! ManifestV1 = { size: varint, chunks: varint count, then per chunk { hash[32], len: varint } }
//! ```
//! Decoding checks the magic, canonical encoding, the chunk count and sizes against limits, and
//! that the chunk lengths add up to `size`.

use serde::{Deserialize, Serialize};

use crate::hash::Hash;

const MAGIC: &[u8] = b"archive-manifest-v1\n";
/// The largest manifest accepted: about 800,000 chunks, a file of ~200 GiB at the average size.
pub(crate) const MAX_MANIFEST_SIZE: usize = 32 * 1024 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct ManifestV1 {
    size: u64,
    chunks: Vec<ChunkV1>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
struct ChunkV1 {
    hash: [u8; 32],
    len: u32,
}

/// A chunk of a file: its blob and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChunkRef {
    pub(crate) hash: Hash,
    pub(crate) len: u32,
}

/// Why manifest bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid chunk manifest: {0}")]
pub(crate) struct ManifestError(String);

pub(crate) fn encode_manifest(size: u64, chunks: &[ChunkRef]) -> Vec<u8> {
    let m = ManifestV1 {
        size,
        chunks: chunks
            .iter()
            .map(|c| ChunkV1 {
                hash: *c.hash.as_bytes(),
                len: c.len,
            })
            .collect(),
    };
    let mut out = MAGIC.to_vec();
    out.extend(postcard::to_stdvec(&m).expect("manifests always serialise"));
    out
}

pub(crate) fn decode_manifest(bytes: &[u8]) -> Result<(u64, Vec<ChunkRef>), ManifestError> {
    let fail = |s: String| Err(ManifestError(s));
    if bytes.len() > MAX_MANIFEST_SIZE {
        return fail(format!(
            "{} bytes exceeds the limit of {MAX_MANIFEST_SIZE}",
            bytes.len()
        ));
    }
    let Some(payload) = bytes.strip_prefix(MAGIC) else {
        return fail("missing the `archive-manifest-v1` header".into());
    };
    let (m, rest): (ManifestV1, _) = match postcard::take_from_bytes(payload) {
        Ok(v) => v,
        Err(e) => return fail(format!("cannot decode: {e}")),
    };
    if !rest.is_empty() {
        return fail(format!("{} trailing bytes", rest.len()));
    }
    let total: u64 = m.chunks.iter().map(|c| u64::from(c.len)).sum();
    if total != m.size {
        return fail(format!(
            "chunks add up to {total} bytes, header says {}",
            m.size
        ));
    }
    if m.chunks.iter().any(|c| c.len == 0) {
        return fail("a chunk has length 0".into());
    }
    let chunks: Vec<ChunkRef> = m
        .chunks
        .iter()
        .map(|c| ChunkRef {
            hash: Hash::from_bytes(c.hash),
            len: c.len,
        })
        .collect();
    let out = (m.size, chunks);
    if encode_manifest(out.0, &out.1) != bytes {
        return fail("not in canonical encoding".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_bytes_and_round_trip() {
        let chunks = [
            ChunkRef {
                hash: Hash::from_bytes([1; 32]),
                len: 70_000,
            },
            ChunkRef {
                hash: Hash::from_bytes([2; 32]),
                len: 5,
            },
        ];
        let bytes = encode_manifest(70_005, &chunks);
        let mut expected = MAGIC.to_vec();
        expected.extend([0xf5, 0xa2, 0x04]); // 70_005
        expected.push(2);
        expected.extend([1; 32]);
        expected.extend([0xf0, 0xa2, 0x04]); // 70_000
        expected.extend([2; 32]);
        expected.push(5);
        assert_eq!(bytes, expected);
        assert_eq!(decode_manifest(&bytes).unwrap(), (70_005, chunks.to_vec()));
    }

    #[test]
    fn refuses_inconsistent_or_truncated_manifests() {
        let chunks = [ChunkRef {
            hash: Hash::from_bytes([1; 32]),
            len: 10,
        }];
        let bytes = encode_manifest(11, &chunks);
        assert!(decode_manifest(&bytes).is_err());
        let good = encode_manifest(10, &chunks);
        for cut in 0..good.len() {
            assert!(decode_manifest(&good[..cut]).is_err());
        }
    }
}
