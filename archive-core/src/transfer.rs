//! Moving blobs between stores: the bao encoding a server sends and the checks a receiver
//! makes before anything is stored.
//!
//! A blob travels as its size (sent ahead by the transport) followed by the bao encoding of
//! the whole blob with 16 KiB chunk groups: the data interleaved with the hash tree's parent
//! nodes, so the receiver verifies every 16 KiB group against the requested hash. Only a
//! [`VerifiedBlob`] can be imported into a store, and only [`decode_blob`] makes one.

use bao_tree::io::outboard::PostOrderMemOutboard;
use bao_tree::io::sync::{DecodeResponseIter, OutboardMut};
use bao_tree::io::BaoContentItem;
use bao_tree::{BaoTree, ChunkRanges};

use crate::blobs::{PreparedBlob, BLOCK_SIZE};
use crate::error::TransferError;
use crate::format::layout::INLINE_MAX;
use crate::format::manifest::MAX_MANIFEST_SIZE;
use crate::hash::Hash;

/// The largest blob that travels in one piece: the largest manifest. Chunks are at most
/// [`crate::CHUNK_MAX`]; whole small files at most [`crate::CHUNKING_THRESHOLD`].
pub const MAX_TRANSFER_BLOB: u64 = MAX_MANIFEST_SIZE as u64;

/// Bytes of the bao encoding of a whole blob of `size` bytes: the data plus 64 bytes for each
/// parent node of the tree over 16 KiB groups.
pub fn encoded_len(size: u64) -> u64 {
    let groups = size.div_ceil(BLOCK_SIZE.bytes() as u64).max(1);
    // Saturates for sizes near u64::MAX, which no real blob has.
    size.saturating_add(64u64.saturating_mul(groups - 1))
}

/// A blob whose bytes were checked against its hash. Only [`decode_blob`] makes one.
pub struct VerifiedBlob(pub(crate) PreparedBlob);

impl VerifiedBlob {
    /// Its hash.
    pub fn hash(&self) -> Hash {
        self.0.hash
    }

    /// Its length in bytes.
    pub fn size(&self) -> u64 {
        self.0.size
    }
}

impl std::fmt::Debug for VerifiedBlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VerifiedBlob({}, {} bytes)", self.0.hash, self.0.size)
    }
}

/// The bao encoding of a whole stored blob, as a server sends it after the size.
pub(crate) fn encode_whole(
    hash: &Hash,
    data: &[u8],
    outboard: &[u8],
) -> Result<Vec<u8>, TransferError> {
    let size = data.len() as u64;
    let ob = PostOrderMemOutboard {
        root: blake3::Hash::from_bytes(*hash.as_bytes()),
        tree: BaoTree::new(size, BLOCK_SIZE),
        data: outboard.to_vec(),
    };
    let mut encoded = Vec::with_capacity(encoded_len(size) as usize);
    bao_tree::io::sync::encode_ranges_validated(data, &ob, &ChunkRanges::all(), &mut encoded)
        .map_err(|e| TransferError::Verification {
            hash: *hash,
            detail: format!("the stored copy does not verify: {e}"),
        })?;
    Ok(encoded)
}

/// Checks the bao encoding of a whole blob of `size` bytes against `hash`. Fails on the
/// first 16 KiB group or parent node that does not verify, on a wrong length, or on a blob
/// larger than [`MAX_TRANSFER_BLOB`].
pub fn decode_blob(hash: Hash, size: u64, encoded: &[u8]) -> Result<VerifiedBlob, TransferError> {
    if size > MAX_TRANSFER_BLOB {
        return Err(TransferError::TooLarge {
            hash,
            size,
            limit: MAX_TRANSFER_BLOB,
        });
    }
    if encoded.len() as u64 != encoded_len(size) {
        return Err(TransferError::Verification {
            hash,
            detail: format!(
                "{} encoded bytes for a blob of {size} bytes, {} expected",
                encoded.len(),
                encoded_len(size)
            ),
        });
    }
    let tree = BaoTree::new(size, BLOCK_SIZE);
    let root = blake3::Hash::from_bytes(*hash.as_bytes());
    let mut data = Vec::with_capacity(size as usize);
    // The verified parent nodes are the outboard a file blob needs: keep them rather than
    // hash the data a second time.
    let as_file = size > INLINE_MAX;
    let mut outboard = PostOrderMemOutboard {
        root,
        tree,
        data: vec![
            0u8;
            if as_file {
                tree.outboard_size() as usize
            } else {
                0
            }
        ],
    };
    let ranges = ChunkRanges::all();
    let decoder = DecodeResponseIter::new(root, tree, std::io::Cursor::new(encoded), &ranges);
    let bad = |detail: String| TransferError::Verification { hash, detail };
    for item in decoder {
        match item.map_err(|e| bad(e.to_string()))? {
            BaoContentItem::Leaf(leaf) => {
                if leaf.offset != data.len() as u64 {
                    return Err(bad("leaves out of order".into()));
                }
                data.extend_from_slice(&leaf.data);
            }
            BaoContentItem::Parent(parent) if as_file => {
                outboard
                    .save(parent.node, &parent.pair)
                    .map_err(|e| bad(format!("parent node: {e}")))?;
            }
            BaoContentItem::Parent(_) => {}
        }
    }
    if data.len() as u64 != size {
        return Err(bad(format!(
            "{} bytes decoded, {size} expected",
            data.len()
        )));
    }
    Ok(VerifiedBlob(PreparedBlob {
        hash,
        size,
        data,
        outboard: as_file.then_some(outboard.data),
        packed: None,
    }))
}

/// Checks a blob received for `wanted`: the bao encoding against its hash (as
/// [`decode_blob`]), then what it must be: exactly the expected size, or for a manifest, a
/// valid manifest of that very file (so a blob sent as a manifest that is not one is never
/// stored). [`TransferError::BadManifest`] means every entry naming that file is invalid.
pub fn decode_expected(
    wanted: &crate::MissingBlob,
    size: u64,
    encoded: &[u8],
) -> Result<VerifiedBlob, TransferError> {
    let max = wanted.expected.max_size();
    let fits = match wanted.expected {
        crate::Expected::Size(n) => size == n,
        crate::Expected::ManifestOf(_) => size <= max,
    };
    if !fits {
        return Err(TransferError::TooLarge {
            hash: wanted.hash,
            size,
            limit: max,
        });
    }
    let blob = decode_blob(wanted.hash, size, encoded)?;
    if let crate::Expected::ManifestOf(file) = wanted.expected {
        crate::format::manifest::check_manifest(&blob.0.data, file.size).map_err(|e| {
            TransferError::BadManifest {
                hash: wanted.hash,
                file: file.hash,
                detail: e.to_string(),
            }
        })?;
    }
    Ok(blob)
}

/// Checks what an entry says of its file against what this software ever makes: a file
/// stored as one blob is at most [`crate::CHUNKING_THRESHOLD`] bytes (larger ones are chunked),
/// so a received entry claiming a larger single blob can never be honest, and its announced
/// size could make a receiver reserve or read without bound.
pub fn check_file_ref(file: &crate::FileRef) -> Result<(), String> {
    if file.manifest.is_none() && file.size > crate::CHUNKING_THRESHOLD {
        return Err(format!(
            "a file of {} bytes in one blob (files over {} bytes are always chunked)",
            file.size,
            crate::CHUNKING_THRESHOLD
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(data: &[u8]) -> (Hash, Vec<u8>) {
        let ob = PostOrderMemOutboard::create(data, BLOCK_SIZE);
        let hash: Hash = ob.root.into();
        (hash, encode_whole(&hash, data, &ob.data).unwrap())
    }

    #[test]
    fn round_trip_at_group_boundaries() {
        for size in [0usize, 1, 1024, 16 * 1024, 16 * 1024 + 1, 100_000, 1 << 20] {
            let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
            let (hash, encoded) = encode(&data);
            assert_eq!(
                encoded.len() as u64,
                encoded_len(size as u64),
                "size {size}"
            );
            assert_eq!(hash, Hash::of(&data));
            let blob = decode_blob(hash, size as u64, &encoded).unwrap();
            assert_eq!(blob.0.data, data);
            assert_eq!(blob.size(), size as u64);
            // The outboard kept from the stream is the one hashing the data would give.
            let expected = PreparedBlob::new(data);
            assert_eq!(blob.0.outboard, expected.outboard, "size {size}");
        }
    }

    #[test]
    fn any_flipped_byte_is_caught() {
        let data: Vec<u8> = (0..50_000).map(|i| (i % 13) as u8).collect();
        let (hash, encoded) = encode(&data);
        for pos in [0, 100, 16 * 1024, encoded.len() / 2, encoded.len() - 1] {
            let mut bad = encoded.clone();
            bad[pos] ^= 1;
            assert!(
                matches!(
                    decode_blob(hash, data.len() as u64, &bad),
                    Err(TransferError::Verification { .. })
                ),
                "flip at {pos} went unnoticed"
            );
        }
        let other = Hash::of(b"other");
        assert!(decode_blob(other, data.len() as u64, &encoded).is_err());
        assert!(decode_blob(hash, data.len() as u64 - 1, &encoded).is_err());
        assert!(decode_blob(hash, data.len() as u64, &encoded[1..]).is_err());
        assert!(matches!(
            decode_blob(hash, MAX_TRANSFER_BLOB + 1, &encoded),
            Err(TransferError::TooLarge { .. })
        ));
    }
}
