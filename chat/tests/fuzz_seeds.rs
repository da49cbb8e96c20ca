//! The `chat_decode` fuzz target's seed inputs (`fuzz/seeds/chat_decode/`), made here from the
//! public API so they are valid inputs of the current formats: a message body with a reply,
//! each kind of authority event, each kind of key, a room's collection names, a profile, a
//! community's name, directory keys and a directory's name, a report, a block, a blocklist's
//! name. The target's first byte picks the decoder (0 body, 1 event, 2 key, 3 collection
//! name, 4 profile, 5 community, 6 directory key or name or blocklist name, 7 report, 8
//! block).
//!
//! The test fails when a committed seed is not what the current code makes (a format
//! changed): `ARCHIVE_WRITE_FUZZ_SEEDS=1 cargo test -p chat --test tests fuzz_seeds` writes
//! them again.

use std::collections::BTreeMap;
use std::path::Path;

use archive_core::{SecretKey, Timestamp};
use chat::{
    directory_collection, directory_of, Access, ChatKey, CommunityProfile, DirectoryKey, Event,
    ItemId, MessageBody, Person, Profile, Role, RoomId, RoomSettings, ServerRole,
};

fn seeds() -> BTreeMap<String, Vec<u8>> {
    let server = SecretKey::from_bytes([7; 32]).public();
    let ana = Person::new(server, "ana");
    let id = ItemId {
        time: Timestamp::from_raw(0x0001_9000_0000_0001),
        author: ana.clone(),
    };
    let id_again = id.clone();
    let room = RoomId {
        founder: server,
        nonce: [1, 2, 3, 4, 5, 6, 7, 8],
    };
    let with = |tag: u8, bytes: Vec<u8>| {
        let mut out = vec![tag];
        out.extend(bytes);
        out
    };
    let mut out = BTreeMap::new();
    let body = MessageBody {
        text: "the well pump is fixed".into(),
        reply_to: Some(id.clone()),
        attachments: vec![chat::Attachment {
            name: "pump.jpg".into(),
            size: 123_456,
            hash: archive_core::Hash::of(b"pump"),
            entry: archive_core::sync::SyncKey {
                time: 0x0001_9000_0000_0001,
                id: archive_core::EntryId::from_bytes([5; 32]),
            },
        }],
    };
    out.insert("body".into(), with(0, body.encode()));
    let events = [
        (
            "event-settings",
            Event::Settings(RoomSettings {
                name: "commons".into(),
                topic: "everything".into(),
                access: Access::InviteOnly,
                servers: vec![server],
                history: Default::default(),
            }),
        ),
        (
            "event-role",
            Event::SetRole {
                person: ana.clone(),
                role: Role::Moderator,
            },
        ),
        (
            "event-ban",
            Event::Ban {
                person: ana.clone(),
                reason: "spam".into(),
            },
        ),
        (
            "event-unban",
            Event::Unban {
                person: ana.clone(),
            },
        ),
    ];
    for (name, event) in events {
        out.insert(name.into(), with(1, event.encode()));
    }
    let keys = [
        ("key-message", ChatKey::Message(id.clone())),
        ("key-event", ChatKey::Event(id.clone())),
        (
            "key-attachment",
            ChatKey::Attachment {
                message: id.clone(),
                index: 3,
            },
        ),
        (
            "key-reaction",
            ChatKey::Reaction {
                message: id,
                by: ana,
                reaction: "👍".into(),
            },
        ),
    ];
    for (name, key) in keys {
        out.insert(name.into(), with(2, key.to_key().into_bytes()));
    }
    out.insert(
        "collection".into(),
        with(3, room.messages_collection().into_bytes()),
    );
    let profile = Profile {
        display_name: "Ana from the bakery".into(),
        role: ServerRole::Moderator,
        joined: Timestamp::from_raw(0x0001_9000_0000_0001),
    };
    out.insert("profile".into(), with(4, profile.encode()));
    let community = CommunityProfile {
        name: "Riverside".into(),
    };
    out.insert("community".into(), with(5, community.encode()));
    for (name, text) in [
        (
            "directory-person",
            DirectoryKey::Person("ana".into()).to_key(),
        ),
        ("directory-community", DirectoryKey::Community.to_key()),
        ("directory-collection", directory_collection(&server)),
    ] {
        out.insert(name.into(), with(6, text.into_bytes()));
    }
    out.insert(
        "blocklist-collection".into(),
        with(6, chat::blocklist_collection(&server).into_bytes()),
    );
    let report = chat::Report {
        room,
        message: id_again,
        reason: "spam".into(),
        resolved: Some(chat::Resolution {
            by: "bo".into(),
            note: "banned".into(),
        }),
    };
    out.insert("report".into(), with(7, report.encode()));
    let block = chat::Block {
        reason: "sells fake watches".into(),
    };
    out.insert("block".into(), with(8, block.encode()));
    out
}

#[test]
fn fuzz_seeds() {
    let seeds = seeds();
    // Each seed decodes, as the target's deep paths need.
    for (name, bytes) in &seeds {
        let rest = &bytes[1..];
        let ok = match bytes[0] {
            0 => MessageBody::decode(rest).is_ok(),
            1 => Event::decode(rest).is_ok(),
            2 => ChatKey::parse(std::str::from_utf8(rest).unwrap()).is_some(),
            3 => RoomId::of_collection(std::str::from_utf8(rest).unwrap()).is_some(),
            4 => Profile::decode(rest).is_ok(),
            5 => CommunityProfile::decode(rest).is_ok(),
            7 => chat::Report::decode(rest).is_ok(),
            8 => chat::Block::decode(rest).is_ok(),
            _ => {
                let text = std::str::from_utf8(rest).unwrap();
                DirectoryKey::parse(text).is_some()
                    || directory_of(text).is_some()
                    || chat::blocklist_of(text).is_some()
            }
        };
        assert!(ok, "{name}");
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/chat_decode");
    test_support::check_fuzz_seeds(&dir, &seeds);
}
