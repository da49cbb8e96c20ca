//! Arbitrary bytes as a batch certificate, and as an entry vouched for by one (what a peer
//! sends in answer to `GetEntries`): never a panic; whatever decodes re-encodes to the same
//! bytes; an entry is accepted through a certificate only if it lists the entry's id and was
//! signed by the entry's author.
#![no_main]

use std::sync::{Arc, OnceLock};

use archive_core::{Certificate, EntryId, Hash, SecretKey, SignedEntry};
use libfuzzer_sys::fuzz_target;

/// The fuzzing key: entries whose author bytes are its public key and whose id is listed by
/// the certificate made for them are accepted without their own signature.
fn key() -> &'static SecretKey {
    static KEY: OnceLock<SecretKey> = OnceLock::new();
    KEY.get_or_init(|| SecretKey::from_bytes([0x42; 32]))
}

fuzz_target!(|data: &[u8]| {
    if let Ok(cert) = Certificate::decode(data) {
        assert_eq!(cert.encoded(), data);
        assert!(data.len() <= archive_core::MAX_ENCODED_CERTIFICATE);
    }
    if data.len() >= 64 {
        let body = &data[..data.len() - 64];
        let id = EntryId::from_bytes(*Hash::of(body).as_bytes());
        let cert = Arc::new(Certificate::sign(key(), [id]).unwrap());
        if let Ok(entry) = SignedEntry::decode_vouched(data, &[cert]) {
            assert_eq!(entry.encoded(), data);
            assert_eq!(entry.id(), id);
            assert!(
                entry.entry().author == key().public() || SignedEntry::decode(data).is_ok(),
                "accepted an entry of another author without its signature"
            );
        }
    }
});
