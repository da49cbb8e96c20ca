//! Arbitrary sequences of frames fed to a session, as a hostile or broken peer would send
//! them: never a panic, every reply within the frame limit, and the round limit ends it.
//! The session runs over an in-memory index, or over a real store's persisted index (its
//! blocks read in place from the database), so hostile bounds reach the store's searches too.
#![no_main]

use std::sync::OnceLock;

use archive_core::sync::{
    Agreement, MemoryIndex, ReconcileConfig, Reconciler, SyncIndex, SyncKey, MIN_FRAME_LIMIT,
};
use archive_core::{Entry, EntryValue, SecretKey, SignedEntry, Store, Timestamp};
use libfuzzer_sys::fuzz_target;

/// Size code of the store-backed session (the others: an in-memory set of code * 37 items).
const STORE_CODE: u8 = 0x3f;
/// Entries in the store: several content-defined blocks of ~256 items.
const STORE_ENTRIES: u64 = 1_500;

fn config() -> ReconcileConfig {
    ReconcileConfig {
        frame_limit: MIN_FRAME_LIMIT,
        max_rounds: 64,
        ..ReconcileConfig::default()
    }
}

/// One store per fuzzing process, built at the first input that asks for it. Sessions only
/// read its database through the file it holds open, so its folder is removed at once and
/// nothing is left behind.
fn store() -> &'static Store {
    static STORE: OnceLock<Store> = OnceLock::new();
    STORE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("archive-fuzz-sync-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::init(&dir).expect("a store in the temporary folder");
        let key = SecretKey::from_bytes([9; 32]);
        let entries: Vec<SignedEntry> = (0..STORE_ENTRIES)
            .map(|i| {
                let entry = Entry {
                    collection: "c".into(),
                    key: format!("k{i}"),
                    value: EntryValue::Tombstone,
                    author: key.public(),
                    time: Timestamp::from_raw(1_000 + i / 3),
                    meta: archive_core::FileMeta::default(),
                    message: archive_core::MessageFields::default(),
                };
                SignedEntry::sign(entry, &key).expect("sign")
            })
            .collect();
        store.transfer().insert_entries(&entries).expect("insert");
        std::fs::remove_dir_all(&dir).expect("remove the store's folder");
        store
    })
}

fn run<I: SyncIndex>(index: I, shape: u8, n: u64, frames: &[u8]) {
    let config = config();
    let mut session = Reconciler::new(index, config).expect("valid config");
    if shape & 0x40 != 0 {
        let agreement = (shape & 0x80 != 0).then_some(Agreement {
            my_seq: n / 2,
            their_seq: 5,
        });
        let first = session
            .initiate(agreement)
            .expect("initiate never fails on a sound index");
        assert!(first.len() <= config.frame_limit);
    }
    for frame in frames.split(|b| *b == 0xFF) {
        match session.receive(frame) {
            Ok(Some(reply)) => assert!(reply.len() <= config.frame_limit),
            Ok(None) | Err(_) => break,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // First byte: bits 0-5 the local set (STORE_CODE: the store), bit 6 initiate, bit 7 with an
    // agreement; the rest: frames separated by 0xFF.
    let Some((&shape, rest)) = data.split_first() else {
        return;
    };
    if shape & 0x3f == STORE_CODE {
        let index = store()
            .collection("c")
            .unwrap()
            .sync_index()
            .expect("the store's index opens");
        run(index, shape, STORE_ENTRIES, rest);
    } else {
        let n = u64::from(shape & 0x3f) * 37;
        let items = (0..n).map(|i| SyncKey {
            time: i / 3,
            id: archive_core::EntryId::from_bytes(*blake3::hash(&i.to_le_bytes()).as_bytes()),
        });
        run(MemoryIndex::new(items), shape, n, rest);
    }
});
