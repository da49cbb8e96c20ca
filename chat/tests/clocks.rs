//! Servers with wrong dates (ARCHITECTURE.md, "Order and wrong clocks"): a room shows
//! messages by the time in their ids, which is the author's server's clock. A server whose
//! clock is behind places its people's messages earlier than they were written, one ahead
//! places them later; every server shows the same order either way. A server hears a later
//! time from its peers, so its next messages sort after what it has seen. A server more than
//! five years ahead is refused.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::common::{open_room, sync_room, text, Server};

const HOUR: u64 = 3_600_000;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn hour_behind() -> u64 {
    now_ms() - HOUR
}

fn hour_ahead() -> u64 {
    now_ms() + HOUR
}

fn six_years_ahead() -> u64 {
    now_ms() + 6 * 366 * 24 * HOUR
}

#[test]
fn wrong_clocks_move_their_messages_the_same_way_everywhere() {
    let (right, slow, fast) = (Server::new(), Server::new(), Server::new());
    slow.store().set_wall_clock(hour_behind);
    fast.store().set_wall_clock(hour_ahead);
    let settings = open_room("three clocks", vec![slow.chat.server(), fast.chat.server()]);
    let room = right.chat.create_room("ana", settings).unwrap();
    let all = [&right, &slow, &fast];
    let everywhere = || {
        for from in all {
            for to in all {
                if from.chat.server() != to.chat.server() {
                    sync_room(from.store(), to.store(), &room);
                }
            }
        }
    };
    everywhere();
    // Written in this order, in real time: right, fast, slow.
    right
        .chat
        .send(&room, "ana", &text("written first"))
        .unwrap();
    fast.chat
        .send(&room, "bo", &text("written second"))
        .unwrap();
    slow.chat.send(&room, "cy", &text("written third")).unwrap();
    everywhere();
    let shown: Vec<_> = right.shown_texts(&room);
    assert_eq!(shown, ["written third", "written first", "written second"]);
    for s in [&slow, &fast] {
        assert_eq!(
            s.shown_texts(&room),
            shown,
            "the same order on every server"
        );
    }
    // The slow server has now seen a time an hour ahead: what it writes next sorts last.
    slow.chat
        .send(&room, "cy", &text("written fourth"))
        .unwrap();
    everywhere();
    for s in all {
        assert_eq!(s.shown_texts(&room).last().unwrap(), "written fourth");
    }
}

#[test]
fn a_server_years_ahead_is_refused() {
    let (right, wild) = (Server::new(), Server::new());
    wild.store().set_wall_clock(six_years_ahead);
    let settings = open_room("calendar", vec![right.chat.server()]);
    let room = wild.chat.create_room("ana", settings).unwrap();
    wild.chat
        .send(&room, "ana", &text("from the future"))
        .unwrap();
    let authority =
        crate::common::exchange(wild.store(), right.store(), &room.authority_collection());
    assert_eq!(authority.new, 0);
    let reasons: Vec<_> = authority
        .refused
        .iter()
        .map(|r| r.reason.to_string())
        .collect();
    assert!(
        reasons
            .iter()
            .all(|r| r.contains("later than this server accepts")),
        "{reasons:?}"
    );
    assert!(!right.chat.rooms().unwrap().contains(&room));
}
