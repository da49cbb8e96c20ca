//! Servers in one process, and the in-process exchange of a room's entries that stands for a
//! sync (what archive-net's pull does, without the network: the entries the receiver lacks,
//! the content it must fetch, `insert_received`).

use std::sync::Arc;

use archive_core::{transfer::decode_blob, PeerId, Received, Store};
use chat::{Chat, RoomId};

pub(crate) struct Server {
    _dir: tempfile::TempDir,
    pub(crate) chat: Chat,
}

impl Server {
    pub(crate) fn new() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::init(dir.path().join("archive")).unwrap());
        let chat = Chat::new(store);
        with_people(&chat);
        Server { _dir: dir, chat }
    }

    /// The search index beside the store (opened again: the same file each time).
    pub(crate) fn search(&self) -> chat::Search {
        chat::Search::open(&self.chat, &self.search_path()).unwrap()
    }

    pub(crate) fn search_path(&self) -> std::path::PathBuf {
        self._dir.path().join("search.sqlite")
    }

    pub(crate) fn store(&self) -> &Store {
        self.chat.store()
    }

    /// The texts the room shows, in its order.
    pub(crate) fn shown_texts(&self, room: &RoomId) -> Vec<String> {
        let messages = self.chat.messages(room).unwrap();
        messages.into_iter().map(|m| m.text).collect()
    }
}

/// A store without the messenger's rules: what a hostile (or modified) server writes.
pub(crate) fn rogue_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::init(dir.path().join("archive")).unwrap();
    (dir, store)
}

/// Brings every entry of `collection` that `from` holds and `to` lacks over to `to`, with the
/// content it must have, as a pull would. Returns what `to` did with them.
pub(crate) fn exchange(from: &Store, to: &Store, collection: &str) -> Received {
    let source = from.collection(collection).unwrap();
    let mut entries = Vec::new();
    let mut next = 0;
    loop {
        let page = source.arrivals(next, 4096).unwrap();
        if page.entries.is_empty() {
            break;
        }
        next = page.next;
        entries.extend(page.entries);
    }
    let transfer = to.transfer();
    let plan = transfer.fetch_plan(&entries).unwrap();
    let guard = transfer.begin();
    let origin = PeerId::from(from.author());
    for file in plan.files {
        assert!(file.manifest.is_none(), "chat content is small");
        let Some((_, encoded)) = from.transfer().encode_blob(&file.hash).unwrap() else {
            continue;
        };
        let blob = decode_blob(file.hash, file.size, &encoded).unwrap();
        transfer
            .import_blobs(vec![blob], &guard, Some(&origin))
            .unwrap();
    }
    transfer.insert_received(&entries, Some(&origin)).unwrap()
}

/// A room's sync from one server to another: authority first, then messages. Returns what
/// the messages' receiver refused.
pub(crate) fn sync_room(from: &Store, to: &Store, room: &RoomId) -> Received {
    let authority = exchange(from, to, &room.authority_collection());
    assert!(authority.refused.is_empty(), "{:?}", authority.refused);
    exchange(from, to, &room.messages_collection())
}

/// The accounts the tests write as, on every server (ana, the first, is its admin), and no
/// pace to keep (tests of the pace set their own).
pub(crate) fn with_people(chat: &Chat) {
    chat.set_pace(chat::PacePolicy {
        per_minute: u32::MAX,
        new_account_for: std::time::Duration::ZERO,
        new_account_every: std::time::Duration::ZERO,
    });
    chat.create_account(None, "ana", "Ana").unwrap();
    for name in ["bo", "bob", "cy", "carl", "dee"] {
        chat.create_account(Some("ana"), name, &name.to_uppercase())
            .unwrap();
    }
}

/// A message body of plain text.
pub(crate) fn text(t: &str) -> chat::MessageBody {
    chat::MessageBody {
        text: t.into(),
        reply_to: None,
        attachments: Vec::new(),
    }
}

/// The settings of an open room (anyone may write) shared with `servers`, its whole history
/// shown to newcomers.
pub(crate) fn open_room(name: &str, servers: Vec<archive_core::PublicKey>) -> chat::RoomSettings {
    chat::RoomSettings {
        name: name.into(),
        topic: String::new(),
        access: chat::Access::Open,
        servers,
        history: chat::History::Whole,
    }
}
