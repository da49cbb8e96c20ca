//! Arbitrary text as a ticket (what a person pastes): never a panic; what parses prints back
//! to a ticket that parses to the same value.
#![no_main]

use archive_net::Ticket;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(t) = text.parse::<Ticket>() {
        let again: Ticket = t.to_string().parse().expect("a printed ticket parses");
        assert_eq!(again, t);
    }
});
