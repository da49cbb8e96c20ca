//! Arbitrary bytes as a reconciliation frame: never a panic, and whatever decodes is canonical
//! (re-encodes to the same bytes).
#![no_main]

use archive_core::sync::Message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = Message::decode(data, 1 << 20) {
        assert_eq!(message.encode(), data);
    }
});
