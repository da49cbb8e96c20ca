//! A room's feed of changes: `Chat::events` pages with a resume token, and `Chat::subscribe`,
//! which waits for the next change, whether written here or received from a peer.

use std::time::Duration;

use chat::{EventPage, ResumeToken, RoomEvent};
use n0_future::StreamExt;

use crate::common::{exchange, open_room, sync_room, text, Server};

/// Reads pages from a subscription until `n` events came; fails after 10 s without one.
async fn next_events(
    feed: &mut (impl n0_future::Stream<Item = Result<EventPage, chat::ChatError>> + Unpin),
    n: usize,
) -> Vec<RoomEvent> {
    let mut out = Vec::new();
    while out.len() < n {
        let page = tokio::time::timeout(Duration::from_secs(10), feed.next())
            .await
            .expect("a change within 10 s")
            .expect("the feed does not end")
            .unwrap();
        out.extend(page.events);
    }
    assert_eq!(out.len(), n, "{out:#?}");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_brings_every_change_once_in_order_and_resumes() {
    let a = Server::new();
    let b = Server::new();
    let settings = open_room("feed", vec![b.chat.server()]);
    let room = a.chat.create_room("ana", settings).unwrap();
    let mut feed = Box::pin(a.chat.subscribe(&room, ResumeToken::default()));
    assert_eq!(next_events(&mut feed, 1).await, [RoomEvent::Authority]);

    let first = a.chat.send(&room, "ana", &text("one")).unwrap();
    let second = a.chat.send(&room, "ana", &text("two")).unwrap();
    a.chat.edit(&room, "ana", &second, "two, edited").unwrap();
    a.chat.delete(&room, "ana", &first).unwrap();
    a.chat.react(&room, "ana", &second, "🌱", true).unwrap();
    let got = next_events(&mut feed, 5).await;
    let summary: Vec<(String, Option<String>)> = got
        .iter()
        .map(|e| match e {
            RoomEvent::Message { id, now } => (
                format!("message {}", if *id == first { 1 } else { 2 }),
                now.as_ref().map(|m| m.text.clone()),
            ),
            RoomEvent::Reactions { now, .. } => (
                "reactions".into(),
                now.as_ref()
                    .map(|m| format!("{:?}", m.reactions.keys().collect::<Vec<_>>())),
            ),
            RoomEvent::Authority => ("authority".into(), None),
        })
        .collect();
    // Each change once, in order; each carries the message as it shows now.
    assert_eq!(
        summary,
        [
            ("message 1".into(), None),
            ("message 2".into(), Some("two, edited".into())),
            ("message 2".into(), Some("two, edited".into())),
            ("message 1".into(), None),
            ("reactions".into(), Some("[\"🌱\"]".into())),
        ]
    );

    // A change received from a peer wakes the feed too.
    sync_room(a.store(), b.store(), &room);
    let from_b = b.chat.send(&room, "bo", &text("hello from B")).unwrap();
    exchange(b.store(), a.store(), &room.messages_collection());
    match &next_events(&mut feed, 1).await[0] {
        RoomEvent::Message { id, now } => {
            assert_eq!(*id, from_b);
            assert_eq!(now.as_ref().unwrap().text, "hello from B");
        }
        other => panic!("{other:?}"),
    }

    // The token of a page, kept as text, resumes after it: nothing missed, nothing twice.
    let all = a.chat.events(&room, ResumeToken::default(), 1000).unwrap();
    assert_eq!(all.events.len(), 1 + 5 + 1);
    let part = a.chat.events(&room, ResumeToken::default(), 3).unwrap();
    let kept = part.resume.to_string();
    let rest = a.chat.events(&room, kept.parse().unwrap(), 1000).unwrap();
    assert_eq!(part.events.len() + rest.events.len(), all.events.len());
    assert_eq!(rest.resume, all.resume);
    assert!(a
        .chat
        .events(&room, rest.resume, 10)
        .unwrap()
        .events
        .is_empty());
    // Where the room stands now is where the full read ended: a page shown now subscribes
    // from there and gets only later changes.
    assert_eq!(a.chat.resume_now(&room).unwrap(), all.resume);
    let later = a.chat.send(&room, "ana", &text("later")).unwrap();
    let after_now = a.chat.events(&room, all.resume, 10).unwrap();
    assert!(matches!(&after_now.events[..], [RoomEvent::Message { id, .. }] if *id == later));
    assert!("12".parse::<ResumeToken>().is_err());
    assert!("1.x".parse::<ResumeToken>().is_err());
}
