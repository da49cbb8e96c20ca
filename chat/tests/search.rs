//! Full-text search: what a person may read and nothing else, newest first, deleted and
//! edited-away words gone (from the index file too, after gc), bad queries refused, a damaged
//! index rebuilt.

use std::time::Duration;

use chat::{Access, ChatError, Event, History, Role, RoomSettings, Search, SearchCursor};
use proptest::prelude::*;

use crate::common::{open_room, sync_room, text, Server};

/// The texts `account` finds for `query`, newest first (every page).
fn found(search: &Search, account: &str, query: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = search.search(account, query, after, 2).unwrap();
        out.extend(page.hits.into_iter().map(|h| h.message.text));
        match page.next {
            Some(next) => after = Some(next),
            None => return out,
        }
    }
}

/// ana (the rooms' founder) gives `who` of the same server `role` in `room`.
fn give_role(s: &Server, room: &chat::RoomId, who: &str, role: Role) {
    let event = Event::SetRole {
        person: s.chat.person(who),
        role,
    };
    s.chat.post_event(room, "ana", &event).unwrap();
}

/// An open room of `s`'s own, made by ana.
fn square(s: &Server) -> chat::RoomId {
    s.chat
        .create_room("ana", open_room("square", vec![]))
        .unwrap()
}

fn council(history: History) -> RoomSettings {
    RoomSettings {
        name: "council".into(),
        topic: String::new(),
        access: Access::InviteOnly,
        servers: vec![],
        history,
    }
}

#[test]
fn search_finds_only_what_a_person_may_read() {
    let a = Server::new();
    let b = Server::new();
    let square = a
        .chat
        .create_room("ana", open_room("square", vec![b.chat.server()]))
        .unwrap();
    let secret = a.chat.create_room("ana", council(History::Whole)).unwrap();
    give_role(&a, &secret, "bo", Role::Member);
    a.chat
        .send(&square, "ana", &text("The water pump works again"))
        .unwrap();
    a.chat
        .send(&secret, "ana", &text("water budget: 40 coins"))
        .unwrap();
    a.chat
        .send(
            &square,
            "bo",
            &text("Água fresca na fonte; WATERING at six"),
        )
        .unwrap();
    b.chat
        .send(&square, "cy", &text("who fixed the water pump?"))
        .unwrap_err();
    // The room reaches B; cy on B writes; it comes back to A.
    sync_room(a.store(), b.store(), &square);
    b.chat
        .send(&square, "cy", &text("who fixed the water pump?"))
        .unwrap();
    sync_room(b.store(), a.store(), &square);

    let search = a.search();
    // Newest first; prefixes match ("wat" finds "water" and "WATERING"); case ignored.
    assert_eq!(
        found(&search, "cy", "wat"),
        [
            "who fixed the water pump?",
            "Água fresca na fonte; WATERING at six",
            "The water pump works again"
        ]
    );
    // Members of the invite-only room find its messages too; others do not.
    assert_eq!(found(&search, "bo", "water").len(), 4);
    assert_eq!(found(&search, "ana", "budget"), ["water budget: 40 coins"]);
    assert!(found(&search, "dee", "budget").is_empty());
    // Every word must match; accents are ignored.
    assert_eq!(
        found(&search, "dee", "water pump"),
        ["who fixed the water pump?", "The water pump works again"]
    );
    assert_eq!(
        found(&search, "dee", "agua FONTE"),
        ["Água fresca na fonte; WATERING at six"]
    );
    // Punctuation is not syntax: it separates words.
    assert_eq!(
        found(&search, "dee", "pump?!"),
        ["who fixed the water pump?", "The water pump works again"]
    );
    // Messages from another server are found on B too, once it indexes them.
    let on_b = b.search();
    assert_eq!(
        found(&on_b, "dee", "pump"),
        ["who fixed the water pump?", "The water pump works again"]
    );
    assert!(
        found(&on_b, "dee", "budget").is_empty(),
        "B never held the council"
    );

    // A kick ends reading: bo finds nothing of the council any more.
    give_role(&a, &secret, "bo", Role::None);
    assert!(found(&search, "bo", "budget").is_empty());
    // A blocked person's messages are hidden from search as from the room.
    a.chat.block("ana", &b.chat.person("cy"), "spam").unwrap();
    assert_eq!(
        found(&search, "dee", "pump"),
        ["The water pump works again"]
    );
}

#[test]
fn search_shows_what_a_since_invited_room_shows() {
    let a = Server::new();
    let room = a
        .chat
        .create_room("ana", council(History::SinceInvited))
        .unwrap();
    a.chat
        .send(&room, "ana", &text("harvest plans, draft"))
        .unwrap();
    give_role(&a, &room, "bo", Role::Member);
    a.chat
        .send(&room, "ana", &text("harvest plans, final"))
        .unwrap();
    let search = a.search();
    assert_eq!(found(&search, "bo", "harvest"), ["harvest plans, final"]);
    assert_eq!(
        found(&search, "ana", "harvest"),
        ["harvest plans, final", "harvest plans, draft"]
    );
}

/// The index file's bytes, with its write-ahead log.
fn index_bytes(s: &Server) -> Vec<u8> {
    let mut bytes = std::fs::read(s.search_path()).unwrap();
    let mut wal = s.search_path().into_os_string();
    wal.push("-wal");
    if let Ok(more) = std::fs::read(wal) {
        bytes.extend(more);
    }
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn deleted_and_edited_away_words_leave_the_index() {
    let a = Server::new();
    let room = square(&a);
    // Words no other word begins like, so the index stores each whole.
    a.chat
        .send(&room, "ana", &text("yellowhammer sighted"))
        .unwrap();
    let gone = a
        .chat
        .send(&room, "bo", &text("quokkaxylophone secret"))
        .unwrap();
    let edited = a
        .chat
        .send(&room, "bo", &text("jacarandaplum first"))
        .unwrap();
    let search = a.search();
    assert_eq!(
        found(&search, "cy", "quokkaxylophone"),
        ["quokkaxylophone secret"]
    );
    assert!(
        contains(&index_bytes(&a), "quokkaxylophone"),
        "the test must see a word in the file"
    );
    assert!(contains(&index_bytes(&a), "jacarandaplum"));

    a.chat.delete(&room, "bo", &gone).unwrap();
    a.chat
        .edit(&room, "bo", &edited, "zucchinifig second")
        .unwrap();
    // Gone from search at once.
    assert!(found(&search, "cy", "quokkaxylophone").is_empty());
    assert!(found(&search, "cy", "secret").is_empty());
    assert!(found(&search, "cy", "jacarandaplum").is_empty());
    assert_eq!(found(&search, "cy", "zucchini"), ["zucchinifig second"]);
    assert_eq!(search.indexed_messages().unwrap(), 2);
    // And from the file after gc: the words are not in its bytes any more.
    a.chat.gc().unwrap();
    search.gc().unwrap();
    let bytes = index_bytes(&a);
    assert!(!contains(&bytes, "quokkaxylophone"));
    assert!(!contains(&bytes, "jacarandaplum"));
    assert!(
        contains(&bytes, "yellowhammer"),
        "what is still said stays findable"
    );
    assert!(contains(&bytes, "zucchinifig"));
    assert_eq!(found(&search, "cy", "yellow"), ["yellowhammer sighted"]);
}

#[test]
fn bad_queries_get_clear_errors() {
    let a = Server::new();
    let room = square(&a);
    a.chat
        .send(&room, "ana", &text("NEAR the OR gate, AND a star*"))
        .unwrap();
    let search = a.search();
    let refused = |account: &str, query: &str| match search.search(account, query, None, 10) {
        Err(e @ (ChatError::Invalid(_) | ChatError::NoSuchAccount(_))) => e.to_string(),
        other => panic!("{query:?}: {other:?}"),
    };
    assert!(refused("ana", "").contains("at least one word"));
    assert!(refused("ana", " ?!* \"\" ").contains("at least one word"));
    assert!(refused("ana", &"a".repeat(chat::MAX_QUERY_LEN + 1)).contains("at most"));
    let words = ["w"; chat::MAX_QUERY_WORDS + 1].join(" ");
    assert!(refused("ana", &words).contains("at most"));
    assert!(refused("nobody", "gate").contains("no account"));
    let err = refused("../etc", "gate");
    assert!(err.contains("account") || err.contains("name"), "{err}");
    // FTS5's own syntax is only words here: none of it is an error or changes the meaning.
    for query in [
        "NEAR(gate star)",
        "OR",
        "gate OR nothing",
        "the:gate",
        "\"gate",
        "-gate",
        "star*",
        "^gate",
        "gate AND",
    ] {
        let hits = search.search("ana", query, None, 10).unwrap();
        let expect = usize::from(!query.contains("nothing"));
        assert_eq!(hits.hits.len(), expect, "{query:?}");
    }
    // A cursor from a page parses back; anything else is refused.
    assert!("12".parse::<SearchCursor>().is_ok());
    for bad in ["", "-1", "x", "99999999999999999999999"] {
        assert!(bad.parse::<SearchCursor>().is_err(), "{bad:?}");
    }
    // A limit of 0 or a huge one is clamped, not an error.
    assert_eq!(search.search("ana", "gate", None, 0).unwrap().hits.len(), 1);
    assert_eq!(
        search
            .search("ana", "gate", None, usize::MAX)
            .unwrap()
            .hits
            .len(),
        1
    );
}

#[test]
fn a_damaged_or_foreign_index_file_is_rebuilt() {
    let a = Server::new();
    let room = square(&a);
    a.chat
        .send(&room, "ana", &text("seed potatoes arrived"))
        .unwrap();
    assert_eq!(
        found(&a.search(), "bo", "potato"),
        ["seed potatoes arrived"]
    );
    // Garbage where the index was: opened anew, everything indexed again.
    std::fs::write(a.search_path(), vec![0x5a; 10_000]).unwrap();
    let _ = std::fs::remove_file(format!("{}-wal", a.search_path().display()));
    assert_eq!(
        found(&a.search(), "bo", "potato"),
        ["seed potatoes arrived"]
    );
    // An SQLite file of another kind (or an index of another layout): the same.
    let _ = std::fs::remove_file(format!("{}-wal", a.search_path().display()));
    let _ = std::fs::remove_file(format!("{}-shm", a.search_path().display()));
    std::fs::remove_file(a.search_path()).unwrap();
    let other = rusqlite::Connection::open(a.search_path()).unwrap();
    other
        .execute_batch("CREATE TABLE x(y); PRAGMA user_version = 77;")
        .unwrap();
    drop(other);
    let search = a.search();
    assert_eq!(found(&search, "bo", "potato"), ["seed potatoes arrived"]);
    assert_eq!(search.indexed_messages().unwrap(), 1);
    drop(search);
    // A room's arrivals counter that is not one, its rows gone: the room is read again.
    let damage = rusqlite::Connection::open(a.search_path()).unwrap();
    damage
        .execute_batch("UPDATE rooms SET indexed = -5; DELETE FROM words; DELETE FROM messages;")
        .unwrap();
    drop(damage);
    assert_eq!(
        found(&a.search(), "bo", "potato"),
        ["seed potatoes arrived"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_indexes_as_messages_arrive() {
    let a = Server::new();
    let room = square(&a);
    let search = a.search();
    let running = tokio::spawn({
        let search = search.clone();
        async move { search.follow().await }
    });
    for n in 1..=3u64 {
        a.chat
            .send(&room, "ana", &text(&format!("message {n}")))
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while search.indexed_messages().unwrap() < n {
            assert!(
                std::time::Instant::now() < deadline,
                "message {n} never indexed"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    assert!(!running.is_finished());
    running.abort();
}

#[derive(Debug, Clone)]
enum Op {
    Send { who: usize, words: Vec<usize> },
    Edit { nth: usize, words: Vec<usize> },
    Delete { nth: usize },
    Search { word: usize },
}

const WORDS: [&str; 6] = ["apple", "apricot", "bean", "beet", "carrot", "corn"];
const PEOPLE: [&str; 3] = ["ana", "bo", "cy"];

fn op() -> impl Strategy<Value = Op> {
    let words = || prop::collection::vec(0..WORDS.len(), 1..4);
    prop_oneof![
        3 => (0..PEOPLE.len(), words()).prop_map(|(who, words)| Op::Send { who, words }),
        1 => (any::<usize>(), words()).prop_map(|(nth, words)| Op::Edit { nth, words }),
        1 => any::<usize>().prop_map(|nth| Op::Delete { nth }),
        2 => (0..WORDS.len() + 2).prop_map(|word| Op::Search { word }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Search agrees with the simplest model: of the messages shown now, those with a word
    /// beginning with the query, newest first.
    #[test]
    fn search_agrees_with_a_scan_of_the_room(ops in prop::collection::vec(op(), 1..40)) {
        let a = Server::new();
        let room = square(&a);
        let search = a.search();
        // The model: (id, text) of every message shown, in send order.
        let mut model: Vec<(chat::MessageId, String)> = Vec::new();
        let say = |words: &[usize]| words.iter().map(|&w| WORDS[w]).collect::<Vec<_>>().join(" ");
        for op in ops {
            match op {
                Op::Send { who, words } => {
                    let id = a.chat.send(&room, PEOPLE[who], &text(&say(&words))).unwrap();
                    model.push((id, say(&words)));
                }
                Op::Edit { nth, words } if !model.is_empty() => {
                    let i = nth % model.len();
                    let (id, old) = model[i].clone();
                    if old != say(&words) {
                        a.chat.edit(&room, &id.author.account, &id, &say(&words)).unwrap();
                        model[i].1 = say(&words);
                    }
                }
                Op::Delete { nth } if !model.is_empty() => {
                    let (id, _) = model.remove(nth % model.len());
                    a.chat.delete(&room, "ana", &id).unwrap();
                }
                Op::Search { word } => {
                    // Two more queries than words: a prefix ("apr"), and a word too short
                    // to be one ("ap" finds only "ap").
                    let query = match word { 6 => "apr", 7 => "ap", w => WORDS[w] };
                    let matches = |w: &str| if query.len() < 3 { w == query } else { w.starts_with(query) };
                    let mut expect: Vec<_> = model
                        .iter()
                        .filter(|(_, t)| t.split(' ').any(matches))
                        .cloned()
                        .collect();
                    expect.sort_by(|x, y| y.0.cmp(&x.0));
                    let expect: Vec<String> = expect.into_iter().map(|(_, t)| t).collect();
                    prop_assert_eq!(found(&search, "dee", query), expect);
                }
                _ => {}
            }
        }
    }
}
