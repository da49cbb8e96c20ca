//! Read markers and unread counts: per person, moving forward only, private to the server.

use std::time::Duration;

use chat::{Access, ChatError, DeliveryConfig, RoomSettings, READS_COLLECTION};

use crate::common::{text, Server};
use crate::live_common::{wait_for, NetServer};

fn settings(servers: Vec<archive_core::PublicKey>) -> RoomSettings {
    RoomSettings {
        name: "porch".into(),
        topic: String::new(),
        access: Access::Open,
        servers,
        history: Default::default(),
    }
}

#[test]
fn unread_counts_follow_the_marker_and_what_the_room_shows() {
    let a = Server::new();
    let chat = &a.chat;
    let room = chat.create_room("ana", settings(vec![])).unwrap();
    assert_eq!(chat.unread("ana", &room).unwrap(), 0);
    let sent: Vec<_> = (0..3)
        .map(|i| chat.send(&room, "bo", &text(&format!("bo {i}"))).unwrap())
        .collect();
    let own = chat.send(&room, "ana", &text("mine")).unwrap();
    // Her own message is not unread to her; all of bo's are.
    assert_eq!(chat.unread("ana", &room).unwrap(), 3);
    assert_eq!(chat.unread("bo", &room).unwrap(), 1);
    assert_eq!(chat.read_marker("ana", &room).unwrap(), None);

    chat.mark_read("ana", &room, &sent[1]).unwrap();
    assert_eq!(
        chat.read_marker("ana", &room).unwrap(),
        Some(sent[1].clone())
    );
    assert_eq!(chat.unread("ana", &room).unwrap(), 1);
    // A marker only moves forward.
    chat.mark_read("ana", &room, &sent[0]).unwrap();
    assert_eq!(
        chat.read_marker("ana", &room).unwrap(),
        Some(sent[1].clone())
    );
    // A deleted message is no longer unread.
    chat.delete(&room, "bo", &sent[2]).unwrap();
    assert_eq!(chat.unread("ana", &room).unwrap(), 0);
    chat.mark_read("ana", &room, &own).unwrap();
    assert_eq!(chat.unread("ana", &room).unwrap(), 0);
    // Markers are per person.
    assert_eq!(chat.unread("cy", &room).unwrap(), 3);

    let err = chat.unread("ghost", &room).unwrap_err();
    assert!(matches!(err, ChatError::NoSuchAccount(_)), "{err}");
    let elsewhere = chat::RoomId {
        founder: chat.server(),
        nonce: [9; 8],
    };
    let err = chat.mark_read("ana", &elsewhere, &own).unwrap_err();
    assert!(matches!(err, ChatError::NoSuchRoom(_)), "{err}");
}

#[test]
fn unread_counts_page_through_a_long_room() {
    let a = Server::new();
    let chat = &a.chat;
    let room = chat.create_room("ana", settings(vec![])).unwrap();
    let bodies: Vec<_> = (0..2_500).map(|i| text(&format!("{i}"))).collect();
    let ids = chat.send_many(&room, "bo", &bodies).unwrap();
    assert_eq!(chat.unread("ana", &room).unwrap(), 2_500);
    chat.mark_read("ana", &room, &ids[999]).unwrap();
    assert_eq!(chat.unread("ana", &room).unwrap(), 1_500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_markers_stay_on_their_server() {
    let config = DeliveryConfig {
        interval: Duration::from_millis(200),
        ..DeliveryConfig::default()
    };
    let a = NetServer::start(config).await;
    let b = NetServer::start(config).await;
    a.pair(&b);
    let room = a
        .chat
        .create_room("ana", settings(vec![b.chat.server()]))
        .unwrap();
    let hello = a.chat.send(&room, "ana", &text("hello")).unwrap();
    wait_for(
        "the message on B",
        Duration::from_secs(10),
        &[&a, &b],
        || b.shown(&room).len() == 1,
    )
    .await;
    a.chat.mark_read("bo", &room, &hello).unwrap();
    b.chat.mark_read("cy", &room, &hello).unwrap();
    // Several rounds later, neither server has the other's markers.
    tokio::time::sleep(Duration::from_millis(800)).await;
    for (s, mine, theirs) in [(&a, "bo", "cy"), (&b, "cy", "bo")] {
        assert_eq!(
            s.chat.read_marker(mine, &room).unwrap(),
            Some(hello.clone())
        );
        assert_eq!(s.chat.read_marker(theirs, &room).unwrap(), None);
        let reads = s.chat.store().collection(READS_COLLECTION).unwrap();
        let held = reads.arrivals(0, 100).unwrap().entries;
        assert_eq!(held.len(), 1, "only its own marker");
        assert_eq!(held[0].entry().author, s.chat.server());
    }
    assert_eq!(a.delivery.stats().failures, 0, "{:?}", a.delivery.stats());
}
