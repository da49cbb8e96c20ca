//! `hostile_messages_refused`: what a hostile or modified server writes into a room, and
//! every rule-keeping server's answer.

use archive_core::{MessageFields, Refusal, Store};
use chat::{Event, ItemId, MessageBody, Person};

use crate::common::{exchange, open_room, rogue_store, sync_room, Server};
use crate::live_common::{wait_for, NetServer, RogueServer};

/// Writes a message entry the way a server that ignores the rules would: any key, any person,
/// any content, signed by `store`'s own key.
fn write_raw(store: &Store, collection: &str, id: &ItemId, account: &str, content: &[u8]) {
    let fields = MessageFields {
        person: Some(account.to_owned()),
        ..MessageFields::default()
    };
    store
        .collection(collection)
        .unwrap()
        .write_message(&id.message_key(), Some(content), &fields)
        .unwrap()
        .expect("a new entry");
}

fn body(text: &str) -> Vec<u8> {
    MessageBody {
        text: text.into(),
        reply_to: None,
        attachments: Vec::new(),
    }
    .encode()
}

fn refusal_reasons(refused: &[archive_core::Refused]) -> Vec<String> {
    refused.iter().map(|r| r.reason.to_string()).collect()
}

#[test]
fn hostile_messages_refused() {
    let a = Server::new();
    let b = Server::new();
    // H takes part in the room but ignores the rules; X does not take part at all.
    let (_h_dir, h) = rogue_store();
    let (_x_dir, x) = rogue_store();
    let settings = open_room("commons", vec![b.chat.server(), h.author()]);
    let room = a.chat.create_room("ana", settings).unwrap();
    let hello = a
        .chat
        .send(
            &room,
            "ana",
            &MessageBody {
                text: "hello".into(),
                reply_to: None,
                attachments: Vec::new(),
            },
        )
        .unwrap();
    a.chat
        .post_event(
            &room,
            "ana",
            &Event::Ban {
                person: Person::new(h.author(), "mallory"),
                reason: "spam".into(),
            },
        )
        .unwrap();
    sync_room(a.store(), b.store(), &room);
    exchange(a.store(), &h, &room.authority_collection());
    exchange(a.store(), &h, &room.messages_collection());
    let messages = room.messages_collection();

    // 1. Forged: H writes a message as ana of A, under ana's own kind of key.
    let forged = ItemId {
        time: h.next_time(),
        author: Person::new(a.chat.server(), "ana"),
    };
    write_raw(
        &h,
        &messages,
        &forged,
        "ana",
        &body("send your password to mallory"),
    );
    // 2. Oversized: one of H's own people, with a text over the limit.
    let oversized = ItemId {
        time: h.next_time(),
        author: Person::new(h.author(), "olga"),
    };
    write_raw(
        &h,
        &messages,
        &oversized,
        "olga",
        &body(&"x".repeat(chat::MAX_TEXT_LEN + 1)),
    );
    // 3. From a banned person, after the ban.
    let banned = ItemId {
        time: h.next_time(),
        author: Person::new(h.author(), "mallory"),
    };
    write_raw(&h, &messages, &banned, "mallory", &body("I am back"));
    // 4. From a server the room is not shared with.
    let outsider = ItemId {
        time: x.next_time(),
        author: Person::new(x.author(), "xena"),
    };
    write_raw(&x, &messages, &outsider, "xena", &body("let me in"));
    // 5. A deletion of ana's message by someone who is not a moderator.
    h.collection(&messages)
        .unwrap()
        .write_message(
            &hello.message_key(),
            None,
            &MessageFields {
                person: Some("olga".into()),
                ..MessageFields::default()
            },
        )
        .unwrap();

    for server in [&a, &b] {
        let from_h = exchange(&h, server.store(), &messages);
        let from_x = exchange(&x, server.store(), &messages);
        assert_eq!(from_h.new + from_x.new, 0, "nothing hostile is kept");
        let reasons = refusal_reasons(&from_h.refused);
        assert_eq!(reasons.len(), 4, "{reasons:#?}");
        let expect = [
            format!(
                "cannot write a message of ana@{}",
                &a.chat.server().to_hex()[..8]
            ),
            "the text is 8193 bytes, more than the limit of 8192".to_owned(),
            format!(
                "mallory@{} has been banned since",
                &h.author().to_hex()[..8]
            ),
            "may not delete a message of ana@".to_owned(),
        ];
        for want in &expect {
            assert!(
                reasons.iter().any(|r| r.contains(want.as_str())),
                "no refusal says `{want}`: {reasons:#?}"
            );
        }
        let outsider_says = refusal_reasons(&from_x.refused);
        assert_eq!(outsider_says.len(), 1);
        assert!(
            outsider_says[0].contains("does not take part in this room"),
            "{outsider_says:?}"
        );
        // Forged and oversized are refused for good; the rest could become acceptable if the
        // room's authority changed, so they are asked for again.
        let lasting: Vec<bool> = from_h
            .refused
            .iter()
            .map(|r| matches!(r.reason, Refusal::BrokeRules { lasting: true, .. }))
            .collect();
        assert_eq!(
            lasting.iter().filter(|l| **l).count(),
            2,
            "{:?}",
            from_h.refused
        );
        // The room shows only ana's message.
        let shown = server.chat.messages(&room).unwrap();
        assert_eq!(shown.len(), 1);
        assert_eq!(shown[0].id, hello);
        assert_eq!(shown[0].text, "hello");
    }

    // Local writes get the same answers: a banned person of B, a text over the limit.
    let bob = b.chat.person("bob");
    a.chat
        .post_event(
            &room,
            "ana",
            &Event::Ban {
                person: bob,
                reason: "flooding".into(),
            },
        )
        .unwrap();
    sync_room(a.store(), b.store(), &room);
    let err = b
        .chat
        .send(
            &room,
            "bob",
            &MessageBody {
                text: "hi".into(),
                reply_to: None,
                attachments: Vec::new(),
            },
        )
        .unwrap_err();
    assert!(matches!(err, chat::ChatError::NotAllowed(_)), "{err}");
    assert!(
        err.to_string().contains("banned since") && err.to_string().contains("flooding"),
        "{err}"
    );
    let long = MessageBody {
        text: "x".repeat(chat::MAX_TEXT_LEN + 1),
        reply_to: None,
        attachments: Vec::new(),
    };
    let err = b.chat.send(&room, "bo", &long).unwrap_err();
    assert!(err.to_string().contains("more than the limit"), "{err}");
}

/// The same hostile entries, offered over real endpoints on 127.0.0.1 by a rogue server that
/// takes part in the room: A and B (each paired with it, and with each other) refuse them
/// with the same reasons, recorded in their delivery statistics, and show only ana's message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_messages_refused_over_the_network() {
    let config = chat::DeliveryConfig {
        interval: std::time::Duration::from_secs(1),
        ..chat::DeliveryConfig::default()
    };
    let a = NetServer::start(config).await;
    let b = NetServer::start(config).await;
    let h = RogueServer::start().await;
    let (_x_dir, x) = rogue_store();
    a.pair(&b);
    a.pair_rogue(&h);
    b.pair_rogue(&h);
    let settings = open_room("commons", vec![b.chat.server(), h.store.author()]);
    let room = a.chat.create_room("ana", settings).unwrap();
    let hello_body = MessageBody {
        text: "hello".into(),
        reply_to: None,
        attachments: Vec::new(),
    };
    let hello = a.chat.send(&room, "ana", &hello_body).unwrap();
    a.chat
        .post_event(
            &room,
            "ana",
            &Event::Ban {
                person: Person::new(h.store.author(), "mallory"),
                reason: "spam".into(),
            },
        )
        .unwrap();
    let (messages, authority) = (room.messages_collection(), room.authority_collection());
    let held = |collection: &str| {
        h.store
            .collection(collection)
            .unwrap()
            .arrivals(0, 100)
            .unwrap()
            .entries
            .len()
    };
    wait_for(
        "the room on H",
        std::time::Duration::from_secs(10),
        &[&a],
        || held(&authority) == 2 && held(&messages) == 1,
    )
    .await;

    let person = |account: &str| Person::new(h.store.author(), account);
    let forged = ItemId {
        time: h.store.next_time(),
        author: Person::new(a.chat.server(), "ana"),
    };
    write_raw(
        &h.store,
        &messages,
        &forged,
        "ana",
        &body("send your password"),
    );
    let oversized = ItemId {
        time: h.store.next_time(),
        author: person("olga"),
    };
    let long = "x".repeat(chat::MAX_TEXT_LEN + 1);
    write_raw(&h.store, &messages, &oversized, "olga", &body(&long));
    let banned = ItemId {
        time: h.store.next_time(),
        author: person("mallory"),
    };
    write_raw(&h.store, &messages, &banned, "mallory", &body("I am back"));
    let outsider = ItemId {
        time: x.next_time(),
        author: Person::new(x.author(), "xena"),
    };
    write_raw(&x, &messages, &outsider, "xena", &body("let me in"));
    exchange(&x, &h.store, &messages);

    let expect = [
        format!(
            "cannot write a message of ana@{}",
            &a.chat.server().to_hex()[..8]
        ),
        "the text is 8193 bytes, more than the limit of 8192".to_owned(),
        format!(
            "mallory@{} has been banned since",
            &h.store.author().to_hex()[..8]
        ),
        "does not take part in this room".to_owned(),
    ];
    for server in [&a, &b] {
        wait_for(
            "every hostile entry refused",
            std::time::Duration::from_secs(20),
            &[server],
            || {
                let said = server.delivery.stats().recent_refusals;
                expect
                    .iter()
                    .all(|want| said.iter().any(|r| r.contains(want.as_str())))
            },
        )
        .await;
        let shown = server.chat.messages(&room).unwrap();
        assert_eq!(shown.len(), 1);
        assert_eq!((&shown[0].id, shown[0].text.as_str()), (&hello, "hello"));
    }
}
