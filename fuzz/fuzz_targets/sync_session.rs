//! Arbitrary sequences of frames fed to a session, as a hostile or broken peer would send
//! them: never a panic, every reply within the frame limit, and the round limit ends it.
#![no_main]

use archive_core::sync::{Agreement, MemoryIndex, ReconcileConfig, Reconciler, SyncKey, MIN_FRAME_LIMIT};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // First byte: shape of the local set and role; the rest: frames separated by 0xFF 0xFE.
    let Some((&shape, rest)) = data.split_first() else { return };
    let n = u64::from(shape & 0x3f) * 37;
    let items = (0..n).map(|i| SyncKey {
        time: i / 3,
        id: *blake3::hash(&i.to_le_bytes()).as_bytes(),
    });
    let config = ReconcileConfig {
        frame_limit: MIN_FRAME_LIMIT,
        max_rounds: 64,
        ..ReconcileConfig::default()
    };
    let mut session = Reconciler::new(MemoryIndex::new(items), config).expect("valid config");
    if shape & 0x40 != 0 {
        let agreement = (shape & 0x80 != 0).then_some(Agreement { my_seq: n / 2, their_seq: 5 });
        let first = session.initiate(agreement).expect("initiate never fails in memory");
        assert!(first.len() <= config.frame_limit);
    }
    for frame in rest.split(|b| *b == 0xFF) {
        match session.receive(frame) {
            Ok(Some(reply)) => assert!(reply.len() <= config.frame_limit),
            Ok(None) | Err(_) => break,
        }
    }
});
