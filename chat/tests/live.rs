//! Live delivery over real iroh endpoints on 127.0.0.1: `three_servers_live_delivery`,
//! `burst_of_10000_arrives_complete`, `newcomer_gets_full_history`.

use std::collections::BTreeSet;
use std::time::Duration;

use chat::{Access, RoomSettings};

use crate::common::{open_room, text};
use crate::live_common::{live_only, wait_for, NetServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_servers_live_delivery() {
    let a = NetServer::start(live_only()).await;
    let b = NetServer::start(live_only()).await;
    let c = NetServer::start(live_only()).await;
    a.pair(&b);
    b.pair(&c);
    let settings = RoomSettings {
        name: "market".into(),
        topic: "what is for sale".into(),
        access: Access::Open,
        servers: vec![b.chat.server(), c.chat.server()],
        history: Default::default(),
    };
    let room = a.chat.create_room("ana", settings).unwrap();
    let all = [&a, &b, &c];
    wait_for("the room reaches C", Duration::from_secs(10), &all, || {
        c.chat.rooms().unwrap().contains(&room)
    })
    .await;

    let sent = a.chat.send(&room, "ana", &text("eggs at noon")).unwrap();
    let took = wait_for("A's message on C", Duration::from_secs(10), &all, || {
        c.shown(&room).iter().any(|(id, _)| *id == sent)
    })
    .await;
    println!("A to C through B: {took:?}");

    c.chat.send(&room, "cy", &text("two dozen please")).unwrap();
    b.chat.send(&room, "bo", &text("me too")).unwrap();
    wait_for(
        "three messages everywhere",
        Duration::from_secs(10),
        &all,
        || all.iter().all(|s| s.shown(&room).len() == 3),
    )
    .await;
    let on_a = a.shown(&room);
    assert_eq!(on_a, b.shown(&room));
    assert_eq!(on_a, c.shown(&room));
    assert_eq!(on_a[0].1, "eggs at noon");
    let texts: BTreeSet<&str> = on_a.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(
        texts,
        BTreeSet::from(["eggs at noon", "two dozen please", "me too"])
    );
    // The order is the room's: by time, then author.
    let ids: Vec<_> = on_a.iter().map(|(id, _)| id.clone()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);
    // A is not paired with C: what C wrote came through B.
    assert!(a.delivery.stats().syncs > 0 && c.delivery.stats().syncs > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_of_10000_arrives_complete() {
    let a = NetServer::start(live_only()).await;
    let b = NetServer::start(live_only()).await;
    a.pair(&b);
    let settings = open_room("burst", vec![b.chat.server()]);
    let room = a.chat.create_room("ana", settings).unwrap();
    let chat = a.chat.clone();
    let started = std::time::Instant::now();
    let sent = tokio::task::spawn_blocking(move || {
        (0..10_000)
            .map(|i| {
                chat.send(&room, "ana", &text(&format!("burst {i}")))
                    .unwrap()
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    println!("10,000 sent in {:?}", started.elapsed());
    let took = wait_for(
        "10,000 messages on B",
        Duration::from_secs(120),
        &[&a, &b],
        || b.shown(&room).len() >= 10_000,
    )
    .await;
    println!("complete on B {took:?} after the last send");
    let on_b: Vec<_> = b.shown(&room).into_iter().map(|(id, _)| id).collect();
    assert_eq!(on_b.len(), 10_000);
    let mut ids = sent.clone();
    ids.sort();
    assert_eq!(on_b, ids, "every id, once, in the room's order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newcomer_gets_full_history() {
    let a = NetServer::start(live_only()).await;
    let mut settings = open_room("the whole story", vec![]);
    let room = a.chat.create_room("ana", settings.clone()).unwrap();
    // 100,000 messages by four people, written in batches of 5,000.
    let chat = a.chat.clone();
    let sent = tokio::task::spawn_blocking(move || {
        let mut sent = Vec::new();
        for batch in 0..20 {
            let who = ["ana", "bo", "cy", "dee"][batch % 4];
            let bodies: Vec<_> = (0..5_000)
                .map(|i| text(&format!("{who} says {}", batch * 5_000 + i)))
                .collect();
            sent.extend(chat.send_many(&room, who, &bodies).unwrap());
        }
        sent
    })
    .await
    .unwrap();
    assert_eq!(sent.len(), 100_000);

    // The newcomer: paired, then named in the room's settings.
    let n = NetServer::start(live_only()).await;
    a.pair(&n);
    settings.servers = vec![n.chat.server()];
    a.chat
        .post_event(&room, "ana", &chat::Event::Settings(settings))
        .unwrap();
    let took = wait_for(
        "100,000 messages on the newcomer",
        Duration::from_secs(240),
        &[&a, &n],
        || n.shown(&room).len() == 100_000,
    )
    .await;
    let shown: Vec<_> = n.shown(&room).into_iter().map(|(id, _)| id).collect();
    println!("newcomer complete in {took:?}: {:?}", n.delivery.stats());
    let mut want = sent;
    want.sort();
    assert_eq!(shown, want);
    assert_eq!(a.shown(&room), n.shown(&room));
}
