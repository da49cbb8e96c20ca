//! `partition_heals_and_converges`: two servers in two network namespaces joined by a veth
//! pair; the link goes down, people on both sides keep chatting, the link comes back, and
//! both servers show the same messages in the same order, each once, within one catch-up
//! interval.
//!
//! Needs root and `ip` (iproute2); see `test_support::netns::Link::or_skip` for what happens
//! where namespaces cannot be created.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chat::DeliveryConfig;
use test_support::netns::{self, Link};
use tokio::runtime::Runtime;

use crate::common::{open_room, text};
use crate::live_common::{wait_for, NetServer};

/// A server whose runtime's threads (and so its sockets) live in a namespace.
struct InNamespace {
    server: Option<NetServer>,
    runtime: Runtime,
}

impl InNamespace {
    fn start(ns: &str, bind: SocketAddr, config: DeliveryConfig) -> InNamespace {
        let ns = ns.to_owned();
        std::thread::spawn(move || {
            netns::enter(&ns).unwrap();
            // Built on this thread, so its worker and blocking threads are born in `ns`.
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let server = runtime.block_on(NetServer::start_on(bind, config));
            InNamespace {
                server: Some(server),
                runtime,
            }
        })
        .join()
        .unwrap()
    }

    fn server(&self) -> &NetServer {
        self.server.as_ref().unwrap()
    }
}

impl Drop for InNamespace {
    fn drop(&mut self) {
        let _inside = self.runtime.enter();
        self.server = None;
    }
}

#[test]
fn partition_heals_and_converges() {
    let Some(link) = Link::or_skip("chat", [10, 78, 0]) else {
        return;
    };
    let interval = Duration::from_secs(3);
    let config = DeliveryConfig {
        interval,
        connect_timeout: Duration::from_secs(1),
        sync_timeout: Duration::from_secs(2),
        ..DeliveryConfig::default()
    };
    let a = InNamespace::start(&link.names[0], (link.addr(0), 0).into(), config);
    let b = InNamespace::start(&link.names[1], (link.addr(1), 0).into(), config);
    let (sa, sb) = (a.server(), b.server());
    sa.pair(sb);
    let settings = open_room("two villages", vec![sb.chat.server()]);
    let room = sa.chat.create_room("ana", settings).unwrap();
    let first = sa.chat.send(&room, "ana", &text("bridge is open")).unwrap();
    let both = [sa, sb];
    a.runtime.block_on(wait_for(
        "the room on B",
        Duration::from_secs(10),
        &both,
        || sb.shown(&room).len() == 1,
    ));

    link.set_up(false).unwrap();
    let mut sent = vec![first];
    for i in 0..20 {
        sent.push(
            sa.chat
                .send(&room, "ana", &text(&format!("west {i}")))
                .unwrap(),
        );
        sent.push(
            sb.chat
                .send(&room, "bo", &text(&format!("east {i}")))
                .unwrap(),
        );
    }
    // Deletions on both sides while cut off: one of each side's messages.
    sa.chat.delete(&room, "ana", &sent[1]).unwrap();
    sb.chat.delete(&room, "bo", &sent[2]).unwrap();
    // Long enough for both sides' deliveries to fail and back off.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(sa.shown(&room).len(), 20, "A sees only its side");
    assert_eq!(sb.shown(&room).len(), 20, "B sees only its side");
    assert!(sa.delivery.stats().failures > 0 && sb.delivery.stats().failures > 0);

    link.set_up(true).unwrap();
    let healed = Instant::now();
    a.runtime.block_on(wait_for(
        "both sides converge",
        Duration::from_secs(30),
        &both,
        || sa.shown(&room).len() == 39 && sb.shown(&room).len() == 39,
    ));
    let took = healed.elapsed();
    println!("converged {took:?} after the link came back");
    let on_a = sa.shown(&room);
    assert_eq!(on_a, sb.shown(&room), "same messages, same order");
    let ids: Vec<_> = on_a.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(
        ids.iter().collect::<BTreeSet<_>>().len(),
        39,
        "no duplicates"
    );
    let mut want: Vec<_> = sent
        .into_iter()
        .enumerate()
        .filter(|(i, _)| *i != 1 && *i != 2)
        .map(|(_, id)| id)
        .collect();
    want.sort();
    assert_eq!(ids, want);
    assert!(
        took <= interval + Duration::from_secs(1),
        "converged {took:?} after healing; the catch-up interval is {interval:?}"
    );
}
