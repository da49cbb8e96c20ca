//! Arbitrary bytes as a peer's answers to a pull (issue 11): whatever the peer sends back on
//! each request's stream, the pull never panics, and what it stored verifies: every entry in
//! the view has its content complete, nothing dated past the time rule is inserted.
//!
//! The input's first byte picks the mode. Raw: the rest is the answer to every request.
//! Edit: a valid peer (a small file, a chunked file, a tombstone, a far-future entry) answers
//! from its store, after the rest of the input flipped bytes in its answers
//! (`[which answer, offset u16 LE, xor]` triples), so the fuzzer reaches the checks behind a
//! valid signature and a valid encoding.
#![no_main]

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use archive_core::sync::SyncKey;
use archive_core::{
    Certificate, Entry, EntryValue, Hash, SecretKey, SignedEntry, Store, Timestamp,
};
use archive_net::wire::{encode_frame, BlobHeader, EntryReply, Request};
use archive_net::{Limits, Node, PeerPolicy, Trust};
use libfuzzer_sys::fuzz_target;

/// The honest peer's answers: encoded entries by id, bao-encoded blobs by hash.
struct Peer {
    id: iroh::EndpointId,
    entries: Vec<(SyncKey, Vec<u8>)>,
    blobs: Vec<(Hash, u64, Vec<u8>)>,
    /// A batch certificate of the peer over all its entries, sent first when the input asks.
    certificate: Vec<u8>,
    _dir: tempfile::TempDir,
}

fn peer() -> &'static Peer {
    static PEER: OnceLock<Peer> = OnceLock::new();
    PEER.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::init(dir.path().join("peer")).unwrap();
        let small = store
            .collection("c")
            .unwrap()
            .add_bytes("a.txt", b"a small file")
            .unwrap()
            .unwrap();
        let mut big = vec![0u8; 1_300_000];
        let mut x = 7u64;
        for b in &mut big {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        let big = store
            .collection("c")
            .unwrap()
            .add_bytes("big.bin", &big)
            .unwrap()
            .unwrap();
        let gone = store
            .collection("c")
            .unwrap()
            .add_bytes("gone.txt", b"gone")
            .unwrap()
            .unwrap();
        let tomb = store
            .collection("c")
            .unwrap()
            .remove(&["gone.txt".to_owned()])
            .unwrap()
            .remove(0);
        let key = SecretKey::from_bytes(store.secret_key().to_bytes());
        let EntryValue::File(small_file) = small.entry().value else {
            unreachable!()
        };
        let far = SignedEntry::sign(
            Entry {
                collection: "c".into(),
                key: "far.txt".into(),
                value: EntryValue::File(small_file),
                author: key.public(),
                time: Timestamp::from_raw(u64::MAX),
                meta: archive_core::FileMeta::default(),
                message: archive_core::MessageFields::default(),
            },
            &key,
        )
        .unwrap();
        let mut entries = Vec::new();
        for e in [&small, &big, &gone, &tomb, &far] {
            entries.push((e.sync_key(), e.encoded().to_vec()));
        }
        let mut blobs = Vec::new();
        let mut hashes = vec![small_file.hash];
        if let EntryValue::File(f) = big.entry().value {
            hashes.push(f.manifest.unwrap());
        }
        let EntryValue::File(gone_file) = gone.entry().value else {
            unreachable!()
        };
        hashes.push(gone_file.hash);
        for h in hashes {
            let (size, encoded) = store.transfer().encode_blob(&h).unwrap().unwrap();
            blobs.push((h, size, encoded));
        }
        // Chunks of big.bin: every other blob the store holds (in its packs).
        for (h, _, _, _) in store.blob_places().unwrap() {
            if !blobs.iter().any(|(b, _, _)| *b == h) {
                let (size, encoded) = store.transfer().encode_blob(&h).unwrap().unwrap();
                blobs.push((h, size, encoded));
            }
        }
        let certificate = Certificate::sign(&key, entries.iter().map(|(k, _)| k.id))
            .unwrap()
            .encoded()
            .to_vec();
        let id = iroh::SecretKey::from_bytes(&key.to_bytes()).public();
        drop(store);
        Peer {
            id,
            entries,
            blobs,
            certificate,
            _dir: dir,
        }
    })
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    })
}

/// The answers after the edits: entry encodings, then blobs (header size and encoding).
struct Answers {
    /// Sent before the entries of each `GetEntries` answer, when there is one.
    certificate: Option<Vec<u8>>,
    entries: HashMap<SyncKey, Vec<u8>>,
    blobs: HashMap<Hash, (u64, Vec<u8>)>,
}

fn edited(peer: &Peer, with_certificate: bool, edits: &[u8]) -> Answers {
    let mut certificate = peer.certificate.clone();
    let mut entries: Vec<(SyncKey, Vec<u8>)> = peer.entries.clone();
    let mut blobs: Vec<(Hash, u64, Vec<u8>)> = peer.blobs.clone();
    for e in edits.chunks_exact(4) {
        let which = e[0] as usize;
        let offset = u16::from_le_bytes([e[1], e[2]]) as usize;
        let (ne, nb) = (entries.len(), blobs.len());
        match which % (ne + 1 + 2 * nb) {
            i if i == ne + 2 * nb => {
                let at = offset % certificate.len();
                certificate[at] ^= e[3];
            }
            i if i < ne => {
                let bytes = &mut entries[i].1;
                if !bytes.is_empty() {
                    let at = offset % bytes.len();
                    bytes[at] ^= e[3];
                }
            }
            i if i < ne + nb => {
                let bytes = &mut blobs[i - ne].2;
                if !bytes.is_empty() {
                    let at = offset % bytes.len();
                    bytes[at] ^= e[3];
                }
            }
            i => {
                let size = &mut blobs[i - ne - nb].1;
                *size ^= u64::from(e[3]) << (offset % 40);
            }
        }
    }
    Answers {
        certificate: with_certificate.then_some(certificate),
        entries: entries.into_iter().collect(),
        blobs: blobs.into_iter().map(|(h, s, e)| (h, (s, e))).collect(),
    }
}

fn answer(answers: &Answers, request: &Request) -> Vec<u8> {
    let mut out = Vec::new();
    match request {
        Request::GetEntries { keys, .. } => {
            if let Some(c) = &answers.certificate {
                out.extend(encode_frame(&EntryReply::Certificate(c.clone())));
            }
            for key in keys {
                match answers.entries.get(key) {
                    Some(e) => out.extend(encode_frame(&EntryReply::Entry(e.clone()))),
                    None => out.extend(encode_frame(&EntryReply::Missing(key.id))),
                }
            }
            out.extend(encode_frame(&EntryReply::End));
        }
        Request::GetBlobs { hashes } => {
            for h in hashes {
                match answers.blobs.get(h) {
                    Some((size, encoded)) => {
                        out.extend(encode_frame(&BlobHeader::Found { size: *size }));
                        out.extend_from_slice(encoded);
                    }
                    None => out.extend(encode_frame(&BlobHeader::Missing)),
                }
            }
        }
        _ => {}
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let peer = peer();
    // On tmpfs where there is one: the store's fsyncs are then free, and runs many more.
    let dir = tempfile::tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .unwrap();
    let store = Arc::new(Store::init(dir.path().join("victim")).unwrap());
    let trust = Trust::default();
    trust.set(peer.id, PeerPolicy::default());
    let limits = Limits {
        timeout: std::time::Duration::from_millis(200),
        ..Limits::default()
    };
    let node = Node::new(store.clone(), trust, limits);
    let keys: Vec<SyncKey> = peer.entries.iter().map(|(k, _)| *k).collect();
    let raw = rest.to_vec();
    // Odd modes answer as the honest peer would, edited by the input (with the certificate
    // when bit 1 is set); even ones answer every request with the raw input.
    let answers = (mode % 2 == 1).then(|| edited(peer, mode & 2 != 0, rest));
    let result = runtime().block_on(archive_net::fuzz_api::pull_scripted(
        &node,
        peer.id,
        "c",
        keys,
        move |request| match &answers {
            Some(a) => answer(a, request),
            None => raw.clone(),
        },
    ));
    // Whatever happened, what is stored verifies and is complete.
    let report = store.verify().unwrap();
    assert!(report.is_ok(), "{report:?} after {result:?}");
    let limit = store.time_limit();
    for item in store
        .collection("c")
        .unwrap()
        .list(archive_core::ViewPoint::Current, "")
        .unwrap()
    {
        let item = item.unwrap();
        assert!(item.time <= limit, "{item:?}");
        let mut content = Vec::new();
        store.blobs().write_to(&item.file, &mut content).unwrap();
        assert_eq!(Hash::of(&content), item.file.hash);
    }
    drop(node);
    drop(store);
});
