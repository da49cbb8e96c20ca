//! Arbitrary bytes as every frame type of the network protocol (what a peer can send): never
//! a panic, and whatever decodes encodes and decodes back to the same value.
#![no_main]

use archive_net::wire::{
    decode_body, encode_frame, AgreeReply, BlobHeader, EntryReply, OfferReply, ReconcileStep,
    Request,
};
use libfuzzer_sys::fuzz_target;

fn round_trip<T>(body: &[u8])
where
    T: serde::Serialize + for<'de> serde::Deserialize<'de> + PartialEq + std::fmt::Debug,
{
    if let Ok(v) = decode_body::<T>(body) {
        let frame = encode_frame(&v);
        let again: T = decode_body(&frame[4..]).expect("an encoded frame decodes");
        assert_eq!(again, v);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    match kind % 6 {
        0 => round_trip::<Request>(body),
        1 => round_trip::<ReconcileStep>(body),
        2 => round_trip::<EntryReply>(body),
        3 => round_trip::<BlobHeader>(body),
        4 => round_trip::<OfferReply>(body),
        _ => round_trip::<AgreeReply>(body),
    }
});
