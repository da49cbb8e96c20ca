//! Arbitrary bytes as a blob's bao encoding for an arbitrary hash and size (what a peer
//! sends after a blob header): never a panic, and anything accepted hashes to the hash.
#![no_main]

use archive_core::transfer::decode_blob;
use archive_core::Hash;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 33 {
        return;
    }
    let size = u64::from(data[0]) * 257 % 70_000;
    let body = &data[33..];
    // Half the time, the hash of the content the encoding would carry if it were plain data
    // (so the accepting path is reached for small blobs).
    let hash = if data[1] & 1 == 0 {
        Hash::from_bytes(data[1..33].try_into().unwrap())
    } else {
        Hash::of(body)
    };
    let size = if data[1] & 2 == 0 {
        size
    } else {
        body.len() as u64
    };
    if let Ok(blob) = decode_blob(hash, size, body) {
        assert_eq!(blob.hash(), hash);
        assert_eq!(blob.size(), size);
    }
});
