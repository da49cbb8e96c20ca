//! The fuzz targets' seed inputs (`fuzz/seeds/TARGET/`), made here from the public API so they
//! are valid inputs of the current formats: signed v2 entries of each kind (with file metadata
//! and message fields), a batch certificate with an entry it vouches for, and every frame of
//! a reconciliation. From a valid input a fuzzer mutates its way into the decoders' deep
//! paths; from nothing it rarely gets past the first length check.
//!
//! The test fails when a committed seed is not what the current code makes (a format
//! changed): `ARCHIVE_WRITE_FUZZ_SEEDS=1 cargo test -p archive-core --test tests fuzz_seeds`
//! writes them again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use archive_core::sync::{MemoryIndex, Message, ReconcileConfig, Reconciler, SyncKey};
use archive_core::{
    Certificate, Entry, EntryId, EntryValue, FileMeta, FileRef, Hash, MessageFields, SecretKey,
    SignedEntry, Timestamp,
};

/// The key the `certificate_decode` target signs its certificates with.
const FUZZ_TARGET_KEY: [u8; 32] = [0x42; 32];

fn entry(author: &SecretKey, key: &str, value: EntryValue, meta: FileMeta) -> SignedEntry {
    SignedEntry::sign(
        Entry {
            collection: "library".into(),
            key: key.into(),
            value,
            author: author.public(),
            time: Timestamp::from_raw(0x0001_9000_0000_0000 + key.len() as u64),
            meta,
            message: MessageFields::default(),
        },
        author,
    )
    .unwrap()
}

fn file(size: u64, manifest: Option<Hash>) -> EntryValue {
    EntryValue::File(FileRef {
        hash: Hash::of(&size.to_le_bytes()),
        size,
        manifest,
    })
}

/// Target name -> seed name -> bytes.
fn seeds() -> BTreeMap<&'static str, BTreeMap<String, Vec<u8>>> {
    let author = SecretKey::from_bytes([7; 32]);
    let meta = FileMeta {
        modified_ns: Some(1_700_000_000_123_456_789),
        mode: Some(0o755),
    };
    let mut message = entry(&author, "chat/room/1", file(12, None), FileMeta::default());
    let with_fields = Entry {
        message: MessageFields {
            person: Some("ana".into()),
            reply_to: Some(message.sync_key()),
            edit_of: Some(message.sync_key()),
        },
        ..message.entry().clone()
    };
    message = SignedEntry::sign(with_fields, &author).unwrap();
    let entries = [
        ("file", entry(&author, "docs/a.txt", file(300, None), meta)),
        (
            "chunked-file",
            entry(
                &author,
                "big.iso",
                file(9 << 20, Some(Hash::of(b"m"))),
                meta,
            ),
        ),
        ("folder", entry(&author, "empty", EntryValue::Folder, meta)),
        (
            "tombstone",
            entry(
                &author,
                "old.txt",
                EntryValue::Tombstone,
                FileMeta::default(),
            ),
        ),
        ("message", message),
    ];
    let mut out = BTreeMap::new();
    out.insert(
        "entry_decode",
        entries
            .iter()
            .map(|(name, e)| (name.to_string(), e.encoded().to_vec()))
            .collect(),
    );

    // A certificate by the target's key, and an entry of that key it vouches for.
    let target_key = SecretKey::from_bytes(FUZZ_TARGET_KEY);
    let vouched = entry(&target_key, "docs/b.txt", file(40, None), meta);
    let certificate = Certificate::sign(
        &target_key,
        [vouched.id(), entries[0].1.id(), entries[1].1.id()],
    )
    .unwrap();
    out.insert(
        "certificate_decode",
        BTreeMap::from([
            ("certificate".to_owned(), certificate.encoded().to_vec()),
            ("vouched-entry".to_owned(), vouched.encoded().to_vec()),
        ]),
    );

    // Every frame of a reconciliation between two sets that differ here and there: the
    // first ranges, fingerprints, id lists and diffs.
    let keys = |range: std::ops::Range<u64>| {
        range.map(|i| SyncKey {
            time: 1_000 + i * 7,
            id: EntryId::from_bytes(*Hash::of(&i.to_le_bytes()).as_bytes()),
        })
    };
    let a = MemoryIndex::new(keys(0..800).filter(|k| k.time % 11 != 0));
    let b = MemoryIndex::new(keys(20..820).filter(|k| k.time % 13 != 0));
    let config = ReconcileConfig::default();
    let mut ra = Reconciler::new(a, config).unwrap();
    let mut rb = Reconciler::new(b, config).unwrap();
    let mut frames = BTreeMap::new();
    let mut frame = ra.initiate(None).unwrap();
    for round in 0.. {
        assert!(Message::decode(&frame, config.frame_limit).is_ok());
        frames.insert(format!("round-{round:02}"), frame.clone());
        let side = if round % 2 == 0 { &mut rb } else { &mut ra };
        match side.receive(&frame).unwrap() {
            Some(next) => frame = next,
            None => break,
        }
    }
    assert!(frames.len() >= 3, "a few rounds: {}", frames.len());
    out.insert("sync_frame_decode", frames);
    out
}

fn seeds_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds")
}

#[test]
fn the_committed_fuzz_seeds_are_valid_inputs_of_the_current_formats() {
    let all = seeds();
    // Each seed decodes and re-encodes to itself, as the targets check.
    for bytes in all["entry_decode"].values() {
        assert_eq!(SignedEntry::decode(bytes).unwrap().encoded(), &bytes[..]);
    }
    let certificate = &all["certificate_decode"]["certificate"];
    assert_eq!(
        Certificate::decode(certificate).unwrap().encoded(),
        &certificate[..]
    );
    for (target, files) in &all {
        test_support::check_fuzz_seeds(&seeds_dir().join(target), files);
    }
}
