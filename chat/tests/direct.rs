//! Direct messages: two-person rooms, found again from either side, closed to everyone else.

use std::time::Duration;

use chat::{ChatError, Event, Role};

use crate::common::text;
use crate::live_common::{paired_pair, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_room_is_two_people_on_two_servers() {
    let (a, b) = paired_pair().await;
    let (ana, bo) = (a.chat.person("ana"), b.chat.person("bo"));
    let room = a.chat.direct("ana", &bo).unwrap();
    assert_eq!(
        a.chat.direct("ana", &bo).unwrap(),
        room,
        "found again, not made twice"
    );
    a.chat
        .send(&room, "ana", &text("are you coming tonight?"))
        .unwrap();
    wait_for(
        "the direct room on B",
        Duration::from_secs(10),
        &[&a, &b],
        || b.shown(&room).len() == 1,
    )
    .await;
    // From B's side it is the same room, with ana as the other person.
    assert_eq!(
        b.chat.direct_rooms("bo").unwrap(),
        vec![(room, ana.clone())]
    );
    assert_eq!(b.chat.direct("bo", &ana).unwrap(), room);
    assert!(b.chat.direct_rooms("cy").unwrap().is_empty());
    b.chat.send(&room, "bo", &text("yes, with bread")).unwrap();
    wait_for(
        "bo's answer on A",
        Duration::from_secs(10),
        &[&a, &b],
        || a.shown(&room).len() == 2,
    )
    .await;

    // Nobody else writes in it, and nobody is added to it.
    let err = b.chat.send(&room, "cy", &text("me too?")).unwrap_err();
    assert!(matches!(err, ChatError::NotAllowed(_)), "{err}");
    let add = Event::SetRole {
        person: b.chat.person("cy"),
        role: Role::Member,
    };
    let err = a.chat.post_event(&room, "ana", &add).unwrap_err();
    assert!(err.to_string().contains("between its two people"), "{err}");
    // Not with oneself, nor for an unknown account.
    assert!(a.chat.direct("ana", &ana).is_err());
    assert!(matches!(
        a.chat.direct("ghost", &bo).unwrap_err(),
        ChatError::NoSuchAccount(_)
    ));
    // Two people of one server: a room that stays on it.
    let local = a.chat.direct("ana", &a.chat.person("dee")).unwrap();
    assert!(a.chat.sharing(&local).unwrap().is_empty());
    let mut mine = a.chat.direct_rooms("ana").unwrap();
    mine.sort();
    let mut want = vec![(room, bo), (local, a.chat.person("dee"))];
    want.sort();
    assert_eq!(mine, want);
}
