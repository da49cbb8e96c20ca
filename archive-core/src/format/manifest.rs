//! Chunk manifest, version 1: the blob that lists a chunked file's chunks in order.
//!
//! ```text
//! manifest = "archive-manifest-v1\n" || postcard(ManifestV1)
//! ManifestV1 = { size: varint, chunks: varint count, then per chunk { hash[32], len: varint } }
//! ```
//! Decoding checks the magic, canonical encoding, that the chunk lengths add up to `size`,
//! and that they are what content-defined chunking makes: every chunk but the last between
//! [`CHUNK_MIN`] and [`CHUNK_MAX`] bytes, the last between 1 and [`CHUNK_MAX`]. A manifest's
//! length is therefore bounded by the size of its file ([`max_manifest_len`]), which a
//! receiver knows from the entry before it fetches the manifest.
//!
//! [`ManifestReader`] walks the chunks without collecting them, so checking which chunks of a
//! very large file are missing holds one chunk at a time, not the whole list.

use crate::hash::Hash;
use crate::ingest::{CHUNK_MAX, CHUNK_MIN};

const MAGIC: &[u8] = b"archive-manifest-v1\n";
/// The largest manifest accepted: about 900,000 chunks, a file of ~200 GiB at the average size.
pub(crate) const MAX_MANIFEST_SIZE: usize = 32 * 1024 * 1024;
/// Bytes of one chunk's record at most: its hash and a varint length up to [`CHUNK_MAX`].
const MAX_CHUNK_RECORD: u64 = 32 + 3;

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

fn varint_len(mut v: u64) -> u64 {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a canonical LEB128 varint of at most `max` (postcard's integer encoding).
fn take_varint(bytes: &mut &[u8], max: u64, what: &str) -> Result<u64, ManifestError> {
    let mut value: u64 = 0;
    for i in 0..10 {
        let Some((&b, rest)) = bytes.split_first() else {
            return Err(ManifestError(format!("truncated in the {what}")));
        };
        *bytes = rest;
        let part = u64::from(b & 0x7f);
        if i == 9 && b > 1 {
            return Err(ManifestError(format!("the {what} overflows")));
        }
        value |= part << (7 * i);
        if b & 0x80 == 0 {
            if b == 0 && i > 0 {
                return Err(ManifestError(format!(
                    "the {what} is not in canonical encoding"
                )));
            }
            if value > max {
                return Err(ManifestError(format!("the {what} {value} exceeds {max}")));
            }
            return Ok(value);
        }
    }
    Err(ManifestError(format!("the {what} overflows")))
}

/// The longest valid manifest of a file of `file_size` bytes (at most [`MAX_MANIFEST_SIZE`]).
pub(crate) fn max_manifest_len(file_size: u64) -> u64 {
    let chunks = if file_size == 0 {
        0
    } else {
        (file_size - 1) / u64::from(CHUNK_MIN) + 1
    };
    let len = MAGIC.len() as u64
        + varint_len(file_size)
        + varint_len(chunks)
        + chunks.saturating_mul(MAX_CHUNK_RECORD);
    len.min(MAX_MANIFEST_SIZE as u64)
}

pub(crate) fn encode_manifest(size: u64, chunks: &[ChunkRef]) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAGIC.len() + 20 + chunks.len() * 35);
    out.extend_from_slice(MAGIC);
    put_varint(&mut out, size);
    put_varint(&mut out, chunks.len() as u64);
    for c in chunks {
        out.extend_from_slice(c.hash.as_bytes());
        put_varint(&mut out, u64::from(c.len));
    }
    out
}

/// Walks a manifest's chunks in order, checking each as it goes; the checks that need the
/// whole manifest (lengths add up, no trailing bytes) run when the last chunk is taken.
#[derive(Debug, Clone)]
pub(crate) struct ManifestReader<'a> {
    rest: &'a [u8],
    size: u64,
    count: u64,
    taken: u64,
    total: u64,
    failed: bool,
}

impl<'a> ManifestReader<'a> {
    /// Reads the header.
    pub(crate) fn new(bytes: &'a [u8]) -> Result<Self, ManifestError> {
        if bytes.len() > MAX_MANIFEST_SIZE {
            return Err(ManifestError(format!(
                "{} bytes exceeds the limit of {MAX_MANIFEST_SIZE}",
                bytes.len()
            )));
        }
        let Some(mut rest) = bytes.strip_prefix(MAGIC) else {
            return Err(ManifestError(
                "missing the `archive-manifest-v1` header".into(),
            ));
        };
        let size = take_varint(&mut rest, u64::MAX, "file size")?;
        let count = take_varint(&mut rest, u64::MAX, "chunk count")?;
        if count > rest.len() as u64 / 33 {
            return Err(ManifestError(format!(
                "{count} chunks cannot fit in {} bytes",
                rest.len()
            )));
        }
        if (size == 0) != (count == 0) {
            return Err(ManifestError(format!(
                "{count} chunks for a file of {size} bytes"
            )));
        }
        // With chunks, trailing bytes are found when the last one is taken.
        if count == 0 && !rest.is_empty() {
            return Err(ManifestError(format!("{} trailing bytes", rest.len())));
        }
        Ok(ManifestReader {
            rest,
            size,
            count,
            taken: 0,
            total: 0,
            failed: false,
        })
    }

    /// The file's size, as the header says.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// The number of chunks, as the header says.
    pub(crate) fn chunk_count(&self) -> u64 {
        self.count
    }

    fn take(&mut self) -> Result<ChunkRef, ManifestError> {
        let Some((hash, mut rest)) = self.rest.split_first_chunk::<32>() else {
            return Err(ManifestError("truncated in a chunk hash".into()));
        };
        let len = take_varint(&mut rest, u64::from(CHUNK_MAX), "chunk length")?;
        self.rest = rest;
        self.taken += 1;
        let last = self.taken == self.count;
        let min = if last { 1 } else { u64::from(CHUNK_MIN) };
        if len < min {
            return Err(ManifestError(format!(
                "chunk {} has {len} bytes; chunks other than the last have at least {CHUNK_MIN}, \
                 the last at least 1",
                self.taken
            )));
        }
        self.total += len;
        if self.total > self.size {
            return Err(ManifestError(format!(
                "the chunks add up to more than the {} bytes the header says",
                self.size
            )));
        }
        if last {
            if self.total != self.size {
                return Err(ManifestError(format!(
                    "chunks add up to {} bytes, header says {}",
                    self.total, self.size
                )));
            }
            if !self.rest.is_empty() {
                return Err(ManifestError(format!("{} trailing bytes", self.rest.len())));
            }
        }
        Ok(ChunkRef {
            hash: Hash::from_bytes(*hash),
            len: len as u32,
        })
    }
}

impl Iterator for ManifestReader<'_> {
    type Item = Result<ChunkRef, ManifestError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.taken == self.count {
            return None;
        }
        let item = self.take();
        self.failed = item.is_err();
        Some(item)
    }
}

/// Decodes a whole manifest: the file's size and its chunks.
pub(crate) fn decode_manifest(bytes: &[u8]) -> Result<(u64, Vec<ChunkRef>), ManifestError> {
    let reader = ManifestReader::new(bytes)?;
    let size = reader.size();
    let chunks = reader.collect::<Result<Vec<_>, _>>()?;
    Ok((size, chunks))
}

/// Checks a whole manifest without keeping its chunks: valid, and for a file of `file_size`.
pub(crate) fn check_manifest(bytes: &[u8], file_size: u64) -> Result<(), ManifestError> {
    let reader = ManifestReader::new(bytes)?;
    if reader.size() != file_size {
        return Err(ManifestError(format!(
            "it describes a file of {} bytes, the entry one of {file_size}",
            reader.size()
        )));
    }
    for chunk in reader {
        chunk?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u32 = CHUNK_MIN;

    fn chunk(n: u8, len: u32) -> ChunkRef {
        ChunkRef {
            hash: Hash::from_bytes([n; 32]),
            len,
        }
    }

    #[test]
    fn golden_bytes_and_round_trip() {
        let chunks = [chunk(1, 70_000), chunk(2, 5)];
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
        assert!(check_manifest(&bytes, 70_005).is_ok());
        assert!(check_manifest(&bytes, 70_006).is_err());
    }

    #[test]
    fn refuses_inconsistent_or_truncated_manifests() {
        let chunks = [chunk(1, 10)];
        assert!(decode_manifest(&encode_manifest(11, &chunks)).is_err());
        let good = encode_manifest(10, &chunks);
        assert!(decode_manifest(&good).is_ok());
        for cut in 0..good.len() {
            assert!(decode_manifest(&good[..cut]).is_err());
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(decode_manifest(&trailing).is_err());
    }

    /// Found by the `manifest_decode` fuzz target: the manifest of an empty file followed by
    /// bytes decoded (trailing bytes were only looked for after the last chunk).
    #[test]
    fn regression_trailing_bytes_after_an_empty_manifest() {
        let mut bytes = encode_manifest(0, &[]);
        assert!(decode_manifest(&bytes).is_ok());
        bytes.extend_from_slice(b"\0\0\0\0t-v1\n");
        assert!(decode_manifest(&bytes).is_err());
        assert!(check_manifest(&bytes, 0).is_err());
    }

    #[test]
    fn chunk_lengths_are_what_chunking_makes() {
        // Small chunks before the last: not what FastCDC makes, and the way a peer would
        // blow a manifest up to its limit for a small file.
        let bad = encode_manifest(20, &[chunk(1, 10), chunk(2, 10)]);
        assert!(decode_manifest(&bad)
            .unwrap_err()
            .to_string()
            .contains("at least"));
        let too_long = encode_manifest(u64::from(CHUNK_MAX) + 1, &[chunk(1, CHUNK_MAX + 1)]);
        assert!(decode_manifest(&too_long).is_err());
        let zero = encode_manifest(MIN as u64, &[chunk(1, MIN), chunk(2, 0)]);
        assert!(decode_manifest(&zero).is_err());
        let fine = encode_manifest(u64::from(MIN) + 1, &[chunk(1, MIN), chunk(2, 1)]);
        assert!(decode_manifest(&fine).is_ok());
        assert!(decode_manifest(&encode_manifest(0, &[])).is_ok());
        assert!(decode_manifest(&encode_manifest(5, &[])).is_err());
    }

    #[test]
    fn non_canonical_varints_are_refused() {
        let mut bytes = MAGIC.to_vec();
        bytes.extend([0x85, 0x00]); // 5, overlong
        bytes.push(1);
        bytes.extend([1; 32]);
        bytes.push(5);
        assert!(decode_manifest(&bytes).is_err());
    }

    #[test]
    fn the_bound_holds_for_the_longest_valid_manifests() {
        for size in [
            1,
            2,
            100,
            u64::from(MIN),
            u64::from(MIN) + 1,
            10 * u64::from(MIN) + 7,
        ] {
            // As many chunks as the rule allows: all of the minimum length, the rest last.
            let mut chunks = Vec::new();
            let mut left = size;
            while left > u64::from(MIN) {
                chunks.push(chunk(chunks.len() as u8, MIN));
                left -= u64::from(MIN);
            }
            chunks.push(chunk(0xee, left as u32));
            let bytes = encode_manifest(size, &chunks);
            assert!(decode_manifest(&bytes).is_ok(), "size {size}");
            assert!(bytes.len() as u64 <= max_manifest_len(size), "size {size}");
        }
        assert_eq!(max_manifest_len(1 << 50), MAX_MANIFEST_SIZE as u64);
    }
}
