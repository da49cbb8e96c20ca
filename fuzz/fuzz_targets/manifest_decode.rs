//! Arbitrary bytes as a chunk manifest: never a panic; whatever decodes is canonical.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(round_trips) = archive_core::fuzz_api::manifest_round_trips(data) {
        assert!(round_trips);
    }
});
