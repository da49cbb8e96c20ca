//! What a person invited later is shown of an invite-only room's past: everything by default
//! (`History::Whole`), or only what came after their invitation (`History::SinceInvited`).

use chat::{Access, Event, History, Role, RoomSettings};

use crate::common::{text, Server};

fn shown_to(s: &Server, account: &str, room: &chat::RoomId) -> Vec<String> {
    let messages = s.chat.messages_for(account, room).unwrap();
    messages.into_iter().map(|m| m.text).collect()
}

#[test]
fn a_room_chooses_what_newcomers_see_of_its_past() {
    let a = Server::new();
    for (history, bo_sees) in [
        (History::Whole, vec!["before", "after"]),
        (History::SinceInvited, vec!["after"]),
    ] {
        let settings = RoomSettings {
            name: "council".into(),
            topic: String::new(),
            access: Access::InviteOnly,
            servers: vec![],
            history,
        };
        let room = a.chat.create_room("ana", settings).unwrap();
        a.chat.send(&room, "ana", &text("before")).unwrap();
        let invite = |who: &str, role| Event::SetRole {
            person: a.chat.person(who),
            role,
        };
        a.chat
            .post_event(&room, "ana", &invite("bo", Role::Member))
            .unwrap();
        a.chat.send(&room, "ana", &text("after")).unwrap();
        assert_eq!(shown_to(&a, "bo", &room), bo_sees, "{history:?}");
        assert_eq!(a.chat.unread("bo", &room).unwrap(), bo_sees.len() as u64);
        // The owner sees everything; so does a moderator, whenever made one.
        assert_eq!(shown_to(&a, "ana", &room), ["before", "after"]);
        a.chat
            .post_event(&room, "ana", &invite("cy", Role::Moderator))
            .unwrap();
        assert_eq!(shown_to(&a, "cy", &room), ["before", "after"]);
        // Someone never invited sees nothing of an invite-only room, whatever its history.
        assert!(shown_to(&a, "dee", &room).is_empty());
        assert_eq!(a.chat.unread("dee", &room).unwrap(), 0);
        // The room itself (what servers hold and sync) is whole either way.
        assert_eq!(a.chat.messages(&room).unwrap().len(), 2);
    }
    // In an open room everyone sees everything.
    let settings = RoomSettings {
        name: "square".into(),
        topic: String::new(),
        access: Access::Open,
        servers: vec![],
        history: History::SinceInvited,
    };
    let open = a.chat.create_room("ana", settings).unwrap();
    a.chat.send(&open, "ana", &text("hello")).unwrap();
    assert_eq!(shown_to(&a, "dee", &open), ["hello"]);
}

/// A kick takes a person's role away: in an invite-only room they write and read nothing more
/// (what they wrote stays); in an open room only a ban stops someone.
#[test]
fn a_kicked_member_writes_no_more() {
    let a = Server::new();
    let settings = RoomSettings {
        name: "council".into(),
        topic: String::new(),
        access: Access::InviteOnly,
        servers: vec![],
        history: History::Whole,
    };
    let room = a.chat.create_room("ana", settings).unwrap();
    let role = |role| Event::SetRole {
        person: a.chat.person("bo"),
        role,
    };
    let err = a.chat.send(&room, "bo", &text("let me in")).unwrap_err();
    assert!(matches!(err, chat::ChatError::NotAllowed(_)), "{err}");
    a.chat
        .post_event(&room, "ana", &role(Role::Member))
        .unwrap();
    a.chat.send(&room, "bo", &text("thanks")).unwrap();
    // A member cannot kick; the owner can.
    let kick_ana = Event::SetRole {
        person: a.chat.person("ana"),
        role: Role::None,
    };
    assert!(a.chat.post_event(&room, "bo", &kick_ana).is_err());
    a.chat.post_event(&room, "ana", &role(Role::None)).unwrap();
    let err = a.chat.send(&room, "bo", &text("still here?")).unwrap_err();
    assert!(matches!(err, chat::ChatError::NotAllowed(_)), "{err}");
    assert_eq!(shown_to(&a, "ana", &room), ["thanks"]);
    // Nor do they read it any more.
    assert!(shown_to(&a, "bo", &room).is_empty());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(12))]

    /// A screen's first page (`latest_messages_for`) is the end of the whole list a person
    /// is shown (`messages_for`), before any message, with deletions, edits and reactions.
    #[test]
    fn the_latest_messages_are_the_end_of_the_whole_list(
        ops in proptest::collection::vec((0u8..4, 0usize..1000), 1..40),
        limit in 1usize..8,
        cut in 0usize..1000,
    ) {
        let a = Server::new();
        let room = a.chat.create_room("ana", crate::common::open_room("page", vec![])).unwrap();
        let mut sent = Vec::new();
        for (n, (op, pick)) in ops.into_iter().enumerate() {
            let who = if n % 2 == 0 { "ana" } else { "bo" };
            match op {
                0 | 1 => sent.push(a.chat.send(&room, "ana", &text(&format!("m{n}"))).unwrap()),
                2 if !sent.is_empty() => {
                    let id = &sent[pick % sent.len()];
                    let _ = a.chat.delete(&room, "ana", id);
                }
                3 if !sent.is_empty() => {
                    let id = &sent[pick % sent.len()];
                    let _ = a.chat.react(&room, who, id, "+", pick % 3 != 0);
                }
                _ => {}
            }
        }
        let all = a.chat.messages_for("bo", &room).unwrap();
        let befores: Vec<Option<chat::MessageId>> = vec![
            None,
            sent.get(cut % sent.len().max(1)).cloned(),
        ];
        for before in befores {
            let end = match &before {
                Some(b) => all.partition_point(|m| m.id < *b),
                None => all.len(),
            };
            let start = end.saturating_sub(limit);
            let (page, earlier) = a
                .chat
                .latest_messages_for("bo", &room, before.as_ref(), limit)
                .unwrap();
            proptest::prop_assert_eq!(&page[..], &all[start..end]);
            proptest::prop_assert_eq!(earlier, start > 0);
        }
    }
}
