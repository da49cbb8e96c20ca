//! `ban_and_delete_federate`: a ban and a deletion made on A take effect on B and C, where C
//! syncs only with B; a deleted message's text is gone from every server after `gc`.

use chat::{Event, Role};

use crate::common::{open_room, sync_room, text, Server};
use crate::live_common::{wait_for, NetServer};

#[test]
fn ban_and_delete_federate() {
    let (a, b, c) = (Server::new(), Server::new(), Server::new());
    let settings = open_room("commons", vec![b.chat.server(), c.chat.server()]);
    let room = a.chat.create_room("ana", settings).unwrap();
    // A's ana makes B's bo a moderator; C's carl and cy write.
    a.chat
        .post_event(
            &room,
            "ana",
            &Event::SetRole {
                person: b.chat.person("bo"),
                role: Role::Moderator,
            },
        )
        .unwrap();
    let chain = |servers: &[&Server]| {
        for pair in servers.windows(2) {
            sync_room(pair[0].store(), pair[1].store(), &room);
        }
    };
    chain(&[&a, &b, &c]);
    let spam = c
        .chat
        .send(&room, "carl", &text("buy cheap watches"))
        .unwrap();
    let fine = c
        .chat
        .send(&room, "cy", &text("the well pump is fixed"))
        .unwrap();
    chain(&[&c, &b, &a]);
    for s in [&a, &b, &c] {
        assert_eq!(s.chat.messages(&room).unwrap().len(), 2);
    }

    // On A: ban carl, delete his message. On B: the moderator bo deletes nothing yet.
    a.chat
        .post_event(
            &room,
            "ana",
            &Event::Ban {
                person: c.chat.person("carl"),
                reason: "spam".into(),
            },
        )
        .unwrap();
    a.chat.delete(&room, "ana", &spam).unwrap();
    // Meanwhile, on C, carl writes again (C does not know of the ban yet).
    let after_ban = c.chat.send(&room, "carl", &text("still here")).unwrap();
    chain(&[&a, &b, &c]);
    // B refuses carl's new message when C offers it: the ban predates it.
    let got = sync_room(c.store(), b.store(), &room);
    assert_eq!(got.new, 0);
    assert!(
        got.refused
            .iter()
            .any(|r| r.reason.to_string().contains("banned since")),
        "{:?}",
        got.refused
    );
    for s in [&a, &b, &c] {
        let shown: Vec<_> = s
            .chat
            .messages(&room)
            .unwrap()
            .into_iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(
            shown,
            vec![fine.clone()],
            "the ban and the deletion hold everywhere"
        );
    }
    assert!(c
        .chat
        .messages(&room)
        .unwrap()
        .iter()
        .all(|m| m.id != after_ban));
    // C, knowing the ban now, refuses carl's messages as they are written.
    let err = c.chat.send(&room, "carl", &text("one more")).unwrap_err();
    assert!(err.to_string().contains("banned"), "{err}");

    // The moderator on B deletes cy's message; it goes from A and C too.
    b.chat.delete(&room, "bo", &fine).unwrap();
    chain(&[&b, &a]);
    chain(&[&b, &c]);
    for s in [&a, &b, &c] {
        assert!(s.chat.messages(&room).unwrap().is_empty());
    }
    // A member who is no moderator cannot delete others' messages.
    let again = a.chat.send(&room, "ana", &text("new week")).unwrap();
    chain(&[&a, &b, &c]);
    let err = c.chat.delete(&room, "cy", &again).unwrap_err();
    assert!(
        err.to_string().contains("may not delete a message of ana@"),
        "{err}"
    );

    // After gc, the deleted texts are gone from every server's blobs.
    let spam_body = text("buy cheap watches").encode();
    let spam_hash = archive_core::Hash::of(&spam_body);
    let fine_hash = archive_core::Hash::of(&text("the well pump is fixed").encode());
    for s in [&a, &b, &c] {
        s.store().gc().unwrap();
        assert!(!s.store().blobs().contains(&spam_hash).unwrap());
        assert!(!s.store().blobs().contains(&fine_hash).unwrap());
    }
}

/// The same over real endpoints on 127.0.0.1 with live delivery (A–B–C, C paired only with
/// B): a moderator on B, a ban and a deletion on A, each in effect on every server within
/// moments, and the deleted text gone from every server's blobs after `gc`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ban_and_delete_federate_over_the_network() {
    let config = chat::DeliveryConfig {
        interval: std::time::Duration::from_secs(600),
        ..chat::DeliveryConfig::default()
    };
    let a = NetServer::start(config).await;
    let b = NetServer::start(config).await;
    let c = NetServer::start(config).await;
    a.pair(&b);
    b.pair(&c);
    let all = [&a, &b, &c];
    let settings = open_room("commons", vec![b.chat.server(), c.chat.server()]);
    let room = a.chat.create_room("ana", settings).unwrap();
    let bo_moderates = Event::SetRole {
        person: b.chat.person("bo"),
        role: Role::Moderator,
    };
    a.chat.post_event(&room, "ana", &bo_moderates).unwrap();
    let limit = std::time::Duration::from_secs(10);
    let moderator_on_c = || {
        c.chat.rooms().unwrap().contains(&room)
            && c.chat
                .authority(&room)
                .unwrap()
                .role_at(&b.chat.person("bo"), &now(&c))
                == Role::Moderator
    };
    wait_for("bo is a moderator on C", limit, &all, moderator_on_c).await;
    let spam = c
        .chat
        .send(&room, "carl", &text("buy cheap watches"))
        .unwrap();
    let fine = c
        .chat
        .send(&room, "cy", &text("the well pump is fixed"))
        .unwrap();
    wait_for("both on A", limit, &all, || a.shown(&room).len() == 2).await;

    let ban = Event::Ban {
        person: c.chat.person("carl"),
        reason: "spam".into(),
    };
    a.chat.post_event(&room, "ana", &ban).unwrap();
    a.chat.delete(&room, "ana", &spam).unwrap();
    let only_fine = |s: &NetServer| {
        s.shown(&room)
            .iter()
            .map(|(id, _)| id.clone())
            .eq([fine.clone()])
    };
    wait_for("the deletion everywhere", limit, &all, || {
        all.iter().all(|s| only_fine(s))
    })
    .await;
    wait_for("the ban on C", limit, &all, || {
        c.chat
            .authority(&room)
            .unwrap()
            .ban_at(&c.chat.person("carl"), &now(&c))
            .is_some()
    })
    .await;
    let err = c.chat.send(&room, "carl", &text("still here")).unwrap_err();
    assert!(err.to_string().contains("banned since"), "{err}");

    // The moderator on B deletes cy's message: gone from A and C too.
    b.chat.delete(&room, "bo", &fine).unwrap();
    wait_for("the moderator's deletion everywhere", limit, &all, || {
        all.iter().all(|s| s.shown(&room).is_empty())
    })
    .await;
    let spam_hash = archive_core::Hash::of(&text("buy cheap watches").encode());
    for s in all {
        s.chat.store().gc().unwrap();
        assert!(!s.chat.store().blobs().contains(&spam_hash).unwrap());
    }
}

/// An id for "now" on `s`: what the authority says of a message written at this moment.
fn now(s: &NetServer) -> chat::ItemId {
    chat::ItemId {
        time: s.chat.store().next_time(),
        author: s.chat.person("observer"),
    }
}

#[test]
fn reports_reach_this_servers_moderators() {
    let a = Server::new();
    let chat = &a.chat;
    let settings = open_room("square", vec![]);
    let room = chat.create_room("ana", settings).unwrap();
    let spam = chat.send(&room, "carl", &text("buy watches")).unwrap();
    let key = chat.report("cy", &room, &spam, "spam").unwrap();
    // Only moderators and admins see the queue.
    let err = chat.reports("bo", false).unwrap_err();
    assert!(err.to_string().contains("not a moderator"), "{err}");
    chat.set_server_role("ana", "bo", chat::ServerRole::Moderator)
        .unwrap();
    let open = chat.reports("bo", false).unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(
        (open[0].key.as_str(), open[0].by.as_str()),
        (key.as_str(), "cy")
    );
    assert_eq!(open[0].report.message, spam);
    assert_eq!(open[0].report.reason, "spam");
    // A report names a message of the room, with a reason within its limit.
    let missing = chat::ItemId {
        time: chat.store().next_time(),
        author: chat.person("carl"),
    };
    assert!(matches!(
        chat.report("cy", &room, &missing, "?").unwrap_err(),
        chat::ChatError::NoSuchMessage(_)
    ));
    let long = "x".repeat(chat::MAX_REASON_LEN + 1);
    assert!(chat.report("cy", &room, &spam, &long).is_err());

    chat.resolve_report("bo", &key, "carl banned").unwrap();
    assert!(chat.reports("bo", false).unwrap().is_empty());
    let all = chat.reports("ana", true).unwrap();
    let resolution = all[0].report.resolved.as_ref().unwrap();
    assert_eq!(
        (resolution.by.as_str(), resolution.note.as_str()),
        ("bo", "carl banned")
    );
    // The queue is the server's own: never delivered to a peer.
    assert!(chat::REPORTS_COLLECTION.starts_with(archive_net::LOCAL_PREFIX));
}
