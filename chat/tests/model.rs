//! `converges_like_sequential_model`: any interleaving of sends, edits, deletions,
//! reactions and partial syncs across three servers converges, once every server has synced
//! with every other, to the room a simple sequential model of the same operations gives.

use std::collections::BTreeMap;

use archive_core::sync::SyncKey;
use chat::{MessageBody, MessageId, Person};
use proptest::prelude::*;

use crate::common::{open_room, sync_room, Server};

#[derive(Debug, Clone)]
enum Op {
    /// A person of this server sends a message.
    Send { server: usize },
    /// The author edits one of their messages that their server shows.
    Edit { server: usize, pick: usize },
    /// The author deletes one of their messages, or the founder (an owner) deletes anyone's.
    Delete { server: usize, pick: usize },
    /// A person of this server reacts to a message their server shows, or takes it back.
    React {
        server: usize,
        pick: usize,
        on: bool,
    },
    /// One server pulls the room from another (servers not syncing are partitioned).
    Sync { from: usize, to: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..3usize).prop_map(|server| Op::Send { server }),
        2 => (0..3usize, any::<usize>()).prop_map(|(server, pick)| Op::Edit { server, pick }),
        1 => (0..3usize, any::<usize>()).prop_map(|(server, pick)| Op::Delete { server, pick }),
        1 => (0..3usize, any::<usize>(), any::<bool>())
            .prop_map(|(server, pick, on)| Op::React { server, pick, on }),
        3 => (0..3usize, 0..3usize).prop_map(|(from, to)| Op::Sync { from, to }),
    ]
}

/// The model: every message ever sent, with its text now (`None` once deleted), and who
/// reacted how. Operations apply in the order they were made, except that of two versions of
/// a message written on different servers without either knowing the other (an edit by its
/// author, a deletion by the founder), the one with the greater key wins.
#[derive(Debug, Default)]
struct Model {
    messages: BTreeMap<MessageId, (Option<SyncKey>, Option<String>)>,
    reactions: BTreeMap<MessageId, BTreeMap<String, Vec<Person>>>,
}

impl Model {
    fn write(&mut self, id: &MessageId, version: SyncKey, text: Option<String>) {
        let slot = self
            .messages
            .get_mut(id)
            .expect("a message the model knows");
        if slot.0.is_none_or(|latest| version > latest) {
            *slot = (Some(version), text);
        }
    }
}

const ACCOUNTS: [&str; 3] = ["ana", "bo", "cy"];

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn converges_like_sequential_model(ops in prop::collection::vec(op(), 1..40)) {
        let servers: Vec<Server> = (0..3).map(|_| Server::new()).collect();
        let settings = open_room("model", servers[1..].iter().map(|s| s.chat.server()).collect());
        let room = servers[0].chat.create_room(ACCOUNTS[0], settings).unwrap();
        for to in 1..3 {
            sync_room(servers[0].store(), servers[to].store(), &room);
        }
        let mut model = Model::default();
        let mut sent = 0;
        for op in ops {
            match op {
                Op::Send { server } => {
                    sent += 1;
                    let text = format!("message {sent}");
                    let body = MessageBody { text: text.clone(), reply_to: None, attachments: vec![] };
                    let id = servers[server].chat.send(&room, ACCOUNTS[server], &body).unwrap();
                    model.messages.insert(id, (None, Some(text)));
                }
                Op::Edit { server, pick } => {
                    let chat = &servers[server].chat;
                    let me = chat.person(ACCOUNTS[server]);
                    let mine: Vec<_> = chat.messages(&room).unwrap().into_iter()
                        .filter(|m| m.id.author == me).collect();
                    if mine.is_empty() { continue; }
                    let target = &mine[pick % mine.len()];
                    let text = format!("{} (edited)", target.text);
                    let version = chat.edit(&room, ACCOUNTS[server], &target.id, &text).unwrap();
                    model.write(&target.id, version, Some(text));
                }
                Op::Delete { server, pick } => {
                    let chat = &servers[server].chat;
                    let me = chat.person(ACCOUNTS[server]);
                    // The founder (server 0's ana) deletes anyone's message; others their own.
                    let shown: Vec<_> = chat.messages(&room).unwrap().into_iter()
                        .filter(|m| server == 0 || m.id.author == me).collect();
                    if shown.is_empty() { continue; }
                    let target = &shown[pick % shown.len()];
                    let version = chat.delete(&room, ACCOUNTS[server], &target.id).unwrap();
                    model.write(&target.id, version, None);
                }
                Op::React { server, pick, on } => {
                    let chat = &servers[server].chat;
                    let shown = chat.messages(&room).unwrap();
                    if shown.is_empty() { continue; }
                    let target = &shown[pick % shown.len()];
                    chat.react(&room, ACCOUNTS[server], &target.id, "👍", on).unwrap();
                    let people = model.reactions.entry(target.id.clone()).or_default()
                        .entry("👍".to_owned()).or_default();
                    let me = chat.person(ACCOUNTS[server]);
                    people.retain(|p| *p != me);
                    if on { people.push(me); }
                }
                Op::Sync { from, to } => {
                    if from != to {
                        let got = sync_room(servers[from].store(), servers[to].store(), &room);
                        prop_assert!(got.refused.is_empty(), "{:?}", got.refused);
                    }
                }
            }
        }
        // Heal: everyone syncs with everyone, twice (what one server brings, the next passes on).
        for _ in 0..2 {
            for from in 0..3 {
                for to in 0..3 {
                    if from != to {
                        sync_room(servers[from].store(), servers[to].store(), &room);
                    }
                }
            }
        }
        let expected: Vec<(MessageId, String, BTreeMap<String, Vec<Person>>)> = model.messages.iter()
            .filter_map(|(id, (_, text))| {
                let mut reactions = model.reactions.get(id).cloned().unwrap_or_default();
                reactions.retain(|_, people| !people.is_empty());
                for people in reactions.values_mut() { people.sort(); }
                text.clone().map(|t| (id.clone(), t, reactions))
            })
            .collect();
        for server in &servers {
            let shown: Vec<_> = server.chat.messages(&room).unwrap().into_iter()
                .map(|m| (m.id, m.text, m.reactions)).collect();
            prop_assert_eq!(&shown, &expected);
        }
    }
}
