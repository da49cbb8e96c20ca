//! Arbitrary bytes as a signed entry (what a peer or a damaged database could hand us): never
//! a panic, and whatever decodes re-encodes to exactly the same bytes.
#![no_main]

use archive_core::SignedEntry;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(entry) = SignedEntry::decode(data) {
        assert_eq!(entry.encoded(), data);
        assert!(data.len() <= archive_core::MAX_ENCODED_ENTRY);
    }
});
