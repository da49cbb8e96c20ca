//! Rules an embedding program sets for its collections: checked on local writes and on
//! received entries, lasting breaches denied for good, others forgotten.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use archive_core::{
    EntryError, EntryRules, EntryValue, MessageFields, PeerId, Refusal, RuleBreach, SignedEntry,
    Store,
};

use crate::common::new_store;

/// Keys under `own/` must be written by the person named after them; keys under `gate/` are
/// refused (not for good) while the gate is closed.
#[derive(Debug, Default)]
struct OwnKeys {
    gate_open: AtomicBool,
}

impl EntryRules for OwnKeys {
    fn check(&self, _store: &Store, entry: &SignedEntry) -> Result<(), RuleBreach> {
        let e = entry.entry();
        if let Some(owner) = e.key.strip_prefix("own/") {
            if e.message.person.as_deref() != Some(owner) {
                return Err(RuleBreach::lasting(format!(
                    "only {owner} writes `{}`",
                    e.key
                )));
            }
        }
        if e.key.starts_with("gate/") && !self.gate_open.load(Ordering::SeqCst) {
            return Err(RuleBreach::for_now("the gate is closed"));
        }
        Ok(())
    }
}

fn person(name: &str) -> MessageFields {
    MessageFields {
        person: Some(name.to_owned()),
        ..MessageFields::default()
    }
}

#[test]
fn local_writes_that_break_the_rules_fail_and_write_nothing() {
    let (_dir, store) = new_store();
    store.add_rules("rooms/", Arc::new(OwnKeys::default()));
    let room = store.collection("rooms/one").unwrap();
    let written = room
        .write_message("own/ana", Some(b"hello"), &person("ana"))
        .unwrap()
        .expect("a new entry");
    assert_eq!(written.entry().message.person.as_deref(), Some("ana"));

    let err = room
        .write_message("own/ana", Some(b"forged"), &person("bo"))
        .unwrap_err();
    assert!(
        err.to_string().contains("only ana writes `own/ana`"),
        "{err}"
    );
    let err = room
        .write_message("own/ana", None, &person("bo"))
        .unwrap_err();
    assert!(matches!(
        err,
        archive_core::AddError::Entry(EntryError::BrokeRules { .. })
    ));
    // `put` and `remove` go through the same rules.
    let file = room.get("own/ana").unwrap().unwrap().file;
    assert!(matches!(
        room.put("own/ana", file),
        Err(EntryError::BrokeRules { .. })
    ));
    assert!(matches!(
        room.remove(&["own/ana"]),
        Err(EntryError::BrokeRules { .. })
    ));
    // What is shown is still Ana's first message.
    let mut text = Vec::new();
    store
        .blobs()
        .write_to(&room.get("own/ana").unwrap().unwrap().file, &mut text)
        .unwrap();
    assert_eq!(text, b"hello");
    // Collections outside the prefix have no rules.
    let other = store.collection("notes").unwrap();
    other
        .write_message("own/ana", Some(b"free"), &person("bo"))
        .unwrap();
    // A tombstone may be written for a key that holds nothing (a deletion may arrive first).
    let gone = room.write_message("own/cy", None, &person("cy")).unwrap();
    assert_eq!(gone.unwrap().entry().value, EntryValue::Tombstone);
}

#[test]
fn received_entries_that_break_the_rules_are_refused_and_lasting_breaches_denied() {
    let (_a_dir, a) = new_store();
    let room = a.collection("rooms/one").unwrap();
    // Written on A, which has no rules.
    let forged = room
        .write_message("own/ana", Some(b"forged"), &person("bo"))
        .unwrap()
        .unwrap();
    let early = room
        .write_message("gate/1", Some(b"too early"), &person("bo"))
        .unwrap()
        .unwrap();
    let fine = room
        .write_message("own/bo", Some(b"mine"), &person("bo"))
        .unwrap()
        .unwrap();
    let all = [forged.clone(), early.clone(), fine.clone()];

    let (_b_dir, b) = new_store();
    let rules = Arc::new(OwnKeys::default());
    b.add_rules("rooms/", rules.clone());
    // A pull does not fetch the content of what breaks the rules.
    let plan = b.transfer().fetch_plan(&all).unwrap();
    let fine_file = match fine.entry().value {
        EntryValue::File(f) => f,
        other => panic!("{other:?}"),
    };
    assert_eq!(plan.files, vec![fine_file]);
    // The content of all three is there (as if fetched anyway): the rules still refuse.
    let from = PeerId::from(a.secret_key().public());
    let guard = b.transfer().begin();
    for e in &all {
        let EntryValue::File(f) = e.entry().value else {
            unreachable!()
        };
        let (_, encoded) = a.transfer().encode_blob(&f.hash).unwrap().unwrap();
        let blob = archive_core::transfer::decode_blob(f.hash, f.size, &encoded).unwrap();
        b.transfer()
            .import_blobs(vec![blob], &guard, Some(&from))
            .unwrap();
    }
    let got = b.transfer().insert_received(&all, Some(&from)).unwrap();
    assert_eq!(got.new, 1);
    let reasons: Vec<_> = got
        .refused
        .iter()
        .map(|r| (r.id, r.reason.clone()))
        .collect();
    assert_eq!(
        reasons,
        vec![
            (
                forged.id(),
                Refusal::BrokeRules {
                    reason: "only ana writes `own/ana`".into(),
                    lasting: true
                }
            ),
            (
                early.id(),
                Refusal::BrokeRules {
                    reason: "the gate is closed".into(),
                    lasting: false
                }
            ),
        ]
    );
    assert!(b.transfer().is_denied(&forged.id()).unwrap());
    assert!(!b.transfer().is_denied(&early.id()).unwrap());
    // Once the gate opens, the entry refused for now is taken; the forged one never is.
    rules.gate_open.store(true, Ordering::SeqCst);
    let again = b.transfer().insert_received(&all, Some(&from)).unwrap();
    assert_eq!(again.new, 1);
    assert_eq!(again.refused.len(), 1);
    assert_eq!(again.refused[0].id, forged.id());
    let b_room = b.collection("rooms/one").unwrap();
    assert!(b_room.get("own/ana").unwrap().is_none());
    assert!(b_room.get("gate/1").unwrap().is_some());
    // Entries inserted whole (all or nothing) obey the rules too.
    assert!(matches!(
        b.transfer().insert_entries(&[forged]),
        Err(EntryError::BrokeRules { .. })
    ));
}

#[test]
fn arrivals_come_in_insertion_order_and_resume_where_they_stopped() {
    let (_dir, store) = new_store();
    let room = store.collection("rooms/one").unwrap();
    let other = store.collection("rooms/two").unwrap();
    let mut written = Vec::new();
    for i in 0..7 {
        let key = format!("m/{i}");
        written.push(
            room.write_message(&key, Some(key.as_bytes()), &person("ana"))
                .unwrap()
                .unwrap(),
        );
        other.add_bytes(&key, b"elsewhere").unwrap();
    }
    let mut seen = Vec::new();
    let mut from = 0;
    loop {
        let page = room.arrivals(from, 3).unwrap();
        assert!(page.entries.len() <= 3);
        if page.entries.is_empty() {
            assert_eq!(page.next, from);
            break;
        }
        from = page.next;
        seen.extend(page.entries);
    }
    assert_eq!(seen, written);
    // Nothing new: the token stays; something new: it comes next.
    let late = room
        .write_message("m/late", Some(b"late"), &person("ana"))
        .unwrap()
        .unwrap();
    assert_eq!(room.arrivals(from, 10).unwrap().entries, vec![late]);
}

#[test]
fn watchers_hear_of_new_entries_once_they_are_committed() {
    let (_a_dir, a) = new_store();
    let (_b_dir, b) = new_store();
    let heard = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = heard.clone();
    b.watch_new_entries(Arc::new(move |c: &str| {
        sink.lock().unwrap().push(c.to_owned())
    }));
    b.collection("rooms/one")
        .unwrap()
        .write_message("own/bo", Some(b"local"), &person("bo"))
        .unwrap();
    let written = a
        .collection("rooms/two")
        .unwrap()
        .write_message("x", None, &person("ana"))
        .unwrap()
        .unwrap();
    let from = PeerId::from(a.secret_key().public());
    let got = b
        .transfer()
        .insert_received(std::slice::from_ref(&written), Some(&from))
        .unwrap();
    assert_eq!(got.new, 1);
    // Nothing new: nobody is told.
    b.transfer()
        .insert_received(&[written], Some(&from))
        .unwrap();
    assert_eq!(*heard.lock().unwrap(), ["rooms/one", "rooms/two"]);
}

#[test]
fn a_batch_of_messages_is_written_whole_or_not_at_all() {
    let (_dir, store) = new_store();
    store.add_rules("rooms/", Arc::new(OwnKeys::default()));
    let room = store.collection("rooms/one").unwrap();
    let same = b"same words".as_slice();
    let written = room
        .write_messages(
            &[
                ("own/ana", b"first".as_slice()),
                ("note/1", same),
                ("note/2", same),
            ],
            &person("ana"),
        )
        .unwrap();
    assert_eq!(written.len(), 3);
    for (key, want) in [
        ("own/ana", b"first".as_slice()),
        ("note/1", same),
        ("note/2", same),
    ] {
        let file = room.get(key).unwrap().expect(key).file;
        let mut bytes = Vec::new();
        store.blobs().write_to(&file, &mut bytes).unwrap();
        assert_eq!(bytes, want, "{key}");
    }
    // One entry that breaks the rules: none of the batch is written.
    let err = room
        .write_messages(
            &[("note/3", b"fine".as_slice()), ("own/bo", b"forged")],
            &person("ana"),
        )
        .unwrap_err();
    assert!(err.to_string().contains("only bo writes"), "{err}");
    assert!(room.get("note/3").unwrap().is_none());
    // A key twice in one batch is refused before anything is written.
    let err = room
        .write_messages(
            &[("note/4", b"a".as_slice()), ("note/4", b"b")],
            &person("ana"),
        )
        .unwrap_err();
    assert!(err.to_string().contains("twice"), "{err}");
    assert!(room.get("note/4").unwrap().is_none());
    // Content already held at its key writes nothing new.
    let again = room
        .write_messages(&[("note/1", same)], &person("ana"))
        .unwrap();
    assert!(again.is_empty());
}
