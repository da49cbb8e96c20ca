//! Batch certificates: one signature vouching for a batch of entries, kept and sent on by
//! every server that takes the batch, and never a way to take an entry its author did not
//! write.

use std::sync::Arc;

use archive_core::sync::SyncKey;
use archive_core::{
    Certificate, EntryError, EntryId, NoProgress, Outgoing, PeerId, Refusal, SecretKey,
    SignedEntry, Store,
};

use crate::common::new_store;

/// A store with `n` tombstones written in one batch (after adding `n` files to remove).
fn store_with_batch(n: usize) -> (tempfile::TempDir, Store, Vec<SignedEntry>) {
    let (dir, store) = new_store();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let keys: Vec<String> = (0..n).map(|i| format!("f{i:03}")).collect();
    for k in &keys {
        std::fs::write(src.join(k), k.as_bytes()).unwrap();
    }
    let c = store.collection("default").unwrap();
    c.add_path(&src, Some(""), &mut NoProgress).unwrap();
    let removed = c.remove(&keys).unwrap();
    assert_eq!(removed.len(), n);
    (dir, store, removed)
}

/// What `entries_to_send` gave, split: certificates (checked) and encoded entries.
fn split(out: Vec<Outgoing>) -> (Vec<Arc<Certificate>>, Vec<Vec<u8>>) {
    let (mut certs, mut entries) = (Vec::new(), Vec::new());
    for o in out {
        match o {
            Outgoing::Certificate(b) => {
                assert!(entries.is_empty(), "certificates come first");
                certs.push(Arc::new(Certificate::decode(&b).unwrap()));
            }
            Outgoing::Entry(b) => entries.push(b),
            Outgoing::Missing(id) => panic!("{id} missing"),
        }
    }
    (certs, entries)
}

/// The same entry with a broken signature (its id, a hash of the body, is unchanged).
fn broken_signature(encoded: &[u8]) -> Vec<u8> {
    let mut bad = encoded.to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 0x55;
    assert!(matches!(
        SignedEntry::decode(&bad),
        Err(EntryError::BadSignature { .. })
    ));
    bad
}

fn ids(entries: &[SignedEntry]) -> Vec<SyncKey> {
    entries.iter().map(SignedEntry::sync_key).collect()
}

#[test]
fn a_batch_travels_with_one_certificate_and_every_server_sends_it_on() {
    let (_a_dir, a, batch) = store_with_batch(40);
    let (certs, encoded) = split(
        a.transfer()
            .entries_to_send("default", &ids(&batch))
            .unwrap(),
    );
    assert_eq!(certs.len(), 1);
    assert_eq!(encoded.len(), 40);
    assert_eq!(certs[0].author(), a.secret_key().public());
    // The certificate alone proves them: with every own signature broken on the way, each
    // still decodes, and without the certificate none does.
    let broken: Vec<Vec<u8>> = encoded.iter().map(|e| broken_signature(e)).collect();
    let received: Vec<SignedEntry> = broken
        .iter()
        .map(|b| SignedEntry::decode_vouched(b, &certs).unwrap())
        .collect();
    assert!(broken
        .iter()
        .all(|b| SignedEntry::decode_vouched(b, &[]).is_err()));

    let (_b_dir, b) = new_store();
    let from_a = PeerId::from(a.secret_key().public());
    let r = b
        .transfer()
        .insert_received(&received, Some(&from_a))
        .unwrap();
    assert_eq!((r.new, r.refused.len()), (40, 0));
    // `verify` accepts them on their certificate too (their own signatures are broken).
    let report = b.verify().unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.entries_checked, 40);
    // B proves them to the next server with the same certificate.
    let (b_certs, b_encoded) = split(
        b.transfer()
            .entries_to_send("default", &ids(&batch))
            .unwrap(),
    );
    assert_eq!(b_certs, certs);
    let (_c_dir, c) = new_store();
    let at_c: Vec<SignedEntry> = b_encoded
        .iter()
        .map(|e| SignedEntry::decode_vouched(e, &b_certs).unwrap())
        .collect();
    let from_b = PeerId::from(b.secret_key().public());
    assert_eq!(
        c.transfer()
            .insert_received(&at_c, Some(&from_b))
            .unwrap()
            .new,
        40
    );
    // Asked for two of them, B sends the certificate anyway: their own signatures (never
    // checked here) do not verify, and every entry it sends must be provable.
    let two = &ids(&batch)[..2];
    let (certs_for_two, _) = split(b.transfer().entries_to_send("default", two).unwrap());
    assert_eq!(certs_for_two, certs);
}

#[test]
fn a_few_entries_of_a_large_batch_travel_with_their_own_signatures() {
    let (_dir, a, batch) = store_with_batch(40);
    // 5 of 40 is at least an eighth: the certificate goes; 4 is not.
    let (certs, _) = split(
        a.transfer()
            .entries_to_send("default", &ids(&batch)[..5])
            .unwrap(),
    );
    assert_eq!(certs.len(), 1);
    let (certs, encoded) = split(
        a.transfer()
            .entries_to_send("default", &ids(&batch)[..4])
            .unwrap(),
    );
    assert!(certs.is_empty());
    for e in &encoded {
        SignedEntry::decode(e).unwrap();
    }
    // A batch too small for a certificate never gets one.
    let (_dir2, small, few) = store_with_batch(15);
    let (certs, _) = split(
        small
            .transfer()
            .entries_to_send("default", &ids(&few))
            .unwrap(),
    );
    assert!(certs.is_empty());
}

#[test]
fn a_certificate_is_kept_only_for_enough_of_its_entries_and_the_rest_are_checked() {
    let (_a_dir, a, batch) = store_with_batch(40);
    let all = a
        .transfer()
        .entries_to_send("default", &ids(&batch))
        .unwrap();
    let (certs, encoded) = split(all);
    // A peer sends two of the forty with the certificate: one intact, one with a broken
    // signature. Keeping 1.3 KiB of certificate for two entries is refused, so each must
    // prove itself.
    let intact = SignedEntry::decode_vouched(&encoded[0], &certs).unwrap();
    let broken = SignedEntry::decode_vouched(&broken_signature(&encoded[1]), &certs).unwrap();
    let (_b_dir, b) = new_store();
    let from = PeerId::from(SecretKey::from_bytes([9; 32]).public());
    let r = b
        .transfer()
        .insert_received(&[intact.clone(), broken.clone()], Some(&from))
        .unwrap();
    assert_eq!(r.new, 1);
    assert_eq!(r.refused.len(), 1);
    assert_eq!(r.refused[0].id, broken.id());
    assert_eq!(r.refused[0].reason, Refusal::BadSignature);
    assert!(b.entry(&broken.sync_key()).unwrap().is_none());
    // B holds the intact one by its own signature, and sends it without a certificate.
    let (certs_b, _) = split(
        b.transfer()
            .entries_to_send("default", &[intact.sync_key()])
            .unwrap(),
    );
    assert!(certs_b.is_empty());
    // Once more than half of the batch comes, the certificate is kept, and from then on it
    // proves the rest of the batch even a few at a time.
    let half: Vec<SignedEntry> = encoded[2..22]
        .iter()
        .map(|e| SignedEntry::decode_vouched(&broken_signature(e), &certs).unwrap())
        .collect();
    assert_eq!(
        b.transfer()
            .insert_received(&half, Some(&from))
            .unwrap()
            .new,
        20
    );
    let late = SignedEntry::decode_vouched(&broken_signature(&encoded[30]), &certs).unwrap();
    let r = b.transfer().insert_received(&[late], Some(&from)).unwrap();
    assert_eq!((r.new, r.refused.len()), (1, 0));
}

#[test]
fn a_certificate_vouches_only_for_its_authors_entries() {
    let (_a_dir, a, batch) = store_with_batch(20);
    let (_, encoded) = split(
        a.transfer()
            .entries_to_send("default", &ids(&batch))
            .unwrap(),
    );
    let broken = broken_signature(&encoded[0]);
    // Another server lists the entry's id in a certificate of its own: that proves nothing.
    let other = SecretKey::from_bytes([7; 32]);
    let batch_ids: Vec<EntryId> = batch.iter().map(SignedEntry::id).collect();
    let theirs = Arc::new(Certificate::sign(&other, batch_ids.clone()).unwrap());
    assert!(matches!(
        SignedEntry::decode_vouched(&broken, &[theirs]),
        Err(EntryError::BadSignature { .. })
    ));
    // The author's certificate for other ids proves nothing about this one either.
    let unrelated = Arc::new(Certificate::sign(a.secret_key(), batch_ids[1..].to_vec()).unwrap());
    assert!(SignedEntry::decode_vouched(&broken, &[unrelated]).is_err());
}

#[test]
fn purging_the_entries_lets_gc_remove_their_certificate() {
    let (_a_dir, a, batch) = store_with_batch(40);
    let (certs, encoded) = split(
        a.transfer()
            .entries_to_send("default", &ids(&batch))
            .unwrap(),
    );
    let received: Vec<SignedEntry> = encoded
        .iter()
        .map(|e| SignedEntry::decode_vouched(e, &certs).unwrap())
        .collect();
    let (_b_dir, b) = new_store();
    let from = PeerId::from(a.secret_key().public());
    assert_eq!(
        b.transfer()
            .insert_received(&received, Some(&from))
            .unwrap()
            .new,
        40
    );
    // Still proving entries: kept.
    assert_eq!(b.gc().unwrap().certificates_removed, 0);
    let (kept, _) = split(
        b.transfer()
            .entries_to_send("default", &ids(&batch))
            .unwrap(),
    );
    assert_eq!(kept, certs);
    assert_eq!(b.purge_peer(&from).unwrap().entries_removed, 40);
    assert_eq!(b.gc().unwrap().certificates_removed, 1);
    assert_eq!(b.gc().unwrap().certificates_removed, 0);
    // A's own certificate stays: its entries are still there.
    assert_eq!(a.gc().unwrap().certificates_removed, 0);
    let out = b
        .transfer()
        .entries_to_send("default", &ids(&batch))
        .unwrap();
    assert!(out.iter().all(|o| matches!(o, Outgoing::Missing(_))));
}

/// A peer names entries by key (time and id): a key with the right id and another time finds
/// nothing, and neither does one of another collection, so a peer cannot fish for entries by id.
#[test]
fn an_entry_asked_for_with_another_time_or_collection_is_missing() {
    let (_dir, a, batch) = store_with_batch(3);
    let real = batch[1].sync_key();
    for time in [real.time - 1, real.time + 1, 0, u64::MAX] {
        let lying = archive_core::sync::SyncKey { time, ..real };
        let out = a.transfer().entries_to_send("default", &[lying]).unwrap();
        assert_eq!(out, vec![Outgoing::Missing(real.id)], "time {time}");
        assert!(a.entry(&lying).unwrap().is_none());
    }
    let out = a.transfer().entries_to_send("other", &[real]).unwrap();
    assert_eq!(out, vec![Outgoing::Missing(real.id)]);
    // The true key finds it.
    let (_, entries) = split(a.transfer().entries_to_send("default", &[real]).unwrap());
    assert_eq!(entries, vec![batch[1].encoded().to_vec()]);
    assert_eq!(a.entry(&real).unwrap().as_ref(), Some(&batch[1]));
}
