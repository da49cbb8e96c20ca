//! Blocklists: one community publishes whom it blocks, another follows the list; both then
//! hide and refuse what the blocked person writes, until the block is lifted.

use std::time::Duration;

use archive_core::MessageFields;
use chat::{blocklist_collection, Block, ChatError};

use crate::common::{exchange, open_room, rogue_store, text};
use crate::live_common::{paired_pair, wait_for, NetServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_followed_blocklist_hides_and_refuses_until_lifted() {
    let (a, b) = paired_pair().await;
    let both = [&a, &b];
    let limit = Duration::from_secs(10);
    let settings = open_room("market", vec![b.chat.server()]);
    let room = a.chat.create_room("ana", settings).unwrap();
    wait_for("the room on B", limit, &both, || {
        b.chat.rooms().unwrap().contains(&room)
    })
    .await;
    b.chat.send(&room, "carl", &text("cheap watches")).unwrap();
    b.chat.send(&room, "cy", &text("fresh eggs")).unwrap();
    wait_for("both on A", limit, &both, || a.shown(&room).len() == 2).await;

    // Only moderators block; only admins follow.
    let carl = b.chat.person("carl");
    let err = a.chat.block("bo", &carl, "spam").unwrap_err();
    assert!(matches!(err, ChatError::NotAllowed(_)), "{err}");
    let err = b
        .chat
        .follow_blocklist("cy", &a.chat.server(), true)
        .unwrap_err();
    assert!(matches!(err, ChatError::NotAllowed(_)), "{err}");

    a.chat.block("ana", &carl, "sells fake watches").unwrap();
    let texts = |s: &NetServer| {
        s.shown(&room)
            .into_iter()
            .map(|(_, t)| t)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        texts(&a),
        ["fresh eggs"],
        "hidden on the list's own server at once"
    );
    // B holds A's list, but does not follow it yet.
    wait_for("A's list on B", limit, &both, || {
        b.chat.blocklist(&a.chat.server()).unwrap().len() == 1
    })
    .await;
    assert_eq!(texts(&b).len(), 2);
    b.chat
        .follow_blocklist("ana", &a.chat.server(), true)
        .unwrap();
    assert_eq!(b.chat.followed_blocklists().unwrap(), [a.chat.server()]);
    assert_eq!(texts(&b), ["fresh eggs"]);
    let (list, reason) = b.chat.blocked(&carl).unwrap().unwrap();
    assert_eq!(
        (list, reason.as_str()),
        (a.chat.server(), "sells fake watches")
    );
    // Carl can write nothing more on B, and A refuses what B would relay.
    let err = b.chat.send(&room, "carl", &text("still here")).unwrap_err();
    assert!(err.to_string().contains("on the blocklist of"), "{err}");

    // Lifted on A: shown again on both, and carl writes again.
    a.chat.unblock("ana", &carl).unwrap();
    wait_for("the lift on B", limit, &both, || {
        b.chat.blocked(&carl).unwrap().is_none()
    })
    .await;
    b.chat.send(&room, "carl", &text("sorry")).unwrap();
    wait_for("carl's messages everywhere", limit, &both, || {
        both.iter().all(|s| s.shown(&room).len() == 3)
    })
    .await;
    // Unfollowing is the follower's choice alone.
    b.chat
        .follow_blocklist("ana", &a.chat.server(), false)
        .unwrap();
    assert!(b.chat.followed_blocklists().unwrap().is_empty());
}

#[test]
fn a_blocklist_is_written_only_by_its_server() {
    let a = crate::common::Server::new();
    let (_r, rogue) = rogue_store();
    let fields = MessageFields {
        person: Some("mallory".into()),
        ..MessageFields::default()
    };
    let forged = Block {
        reason: "I say so".into(),
    };
    let key = format!("b/{}/ana", a.chat.server());
    rogue
        .collection(&blocklist_collection(&a.chat.server()))
        .unwrap()
        .write_message(&key, Some(&forged.encode()), &fields)
        .unwrap();
    let got = exchange(&rogue, a.store(), &blocklist_collection(&a.chat.server()));
    assert_eq!(got.new, 0);
    assert!(
        got.refused[0]
            .reason
            .to_string()
            .contains("writes its blocklist"),
        "{:?}",
        got.refused
    );
    assert!(a.chat.blocked(&a.chat.person("ana")).unwrap().is_none());
}
