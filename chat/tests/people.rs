//! People: accounts of a server, their roles on it, and the directory that makes people of
//! other communities appear as `name@community`.

use std::time::Duration;

use archive_core::MessageFields;
use chat::{directory_collection, ChatError, MessageBody, Profile, ServerRole};

use crate::common::{exchange, open_room, rogue_store};
use crate::live_common::{paired_pair, wait_for};

fn fresh() -> (tempfile::TempDir, chat::Chat) {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(archive_core::Store::init(dir.path().join("a")).unwrap());
    (dir, chat::Chat::new(store))
}

#[test]
fn the_first_account_is_admin_and_admins_make_the_rest() {
    let (_dir, chat) = fresh();
    let ana = chat.create_account(None, "ana", "Ana").unwrap();
    assert_eq!(ana.profile.role, ServerRole::Admin);
    let err = chat.create_account(None, "eve", "Eve").unwrap_err();
    assert!(err.to_string().contains("only an admin"), "{err}");
    let bo = chat.create_account(Some("ana"), "bo", "Bo").unwrap();
    assert_eq!(bo.profile.role, ServerRole::Member);
    assert!(bo.profile.joined > ana.profile.joined);
    let err = chat.create_account(Some("bo"), "cy", "Cy").unwrap_err();
    assert!(err.to_string().contains("bo is not an admin"), "{err}");
    let err = chat
        .create_account(Some("ana"), "bo", "Bo again")
        .unwrap_err();
    assert!(err.to_string().contains("exists"), "{err}");
    for bad in ["", "has space", "a/b", &"x".repeat(200)] {
        assert!(
            chat.create_account(Some("ana"), bad, "X").is_err(),
            "{bad:?}"
        );
    }
    let err = chat.create_account(Some("ana"), "cy", "\u{7}").unwrap_err();
    assert!(err.to_string().contains("control"), "{err}");

    // A person changes their own display name; an admin changes anyone's; no one else.
    chat.set_display_name("bo", "bo", "Bo from the bakery")
        .unwrap();
    let err = chat.set_display_name("bo", "ana", "Not Ana").unwrap_err();
    assert!(matches!(err, ChatError::NotAllowed(_)), "{err}");
    assert_eq!(
        chat.account("bo").unwrap().unwrap().profile.display_name,
        "Bo from the bakery"
    );

    // The last admin stays one.
    let err = chat
        .set_server_role("ana", "ana", ServerRole::Member)
        .unwrap_err();
    assert!(err.to_string().contains("last admin"), "{err}");
    chat.set_server_role("ana", "bo", ServerRole::Admin)
        .unwrap();
    chat.set_server_role("bo", "ana", ServerRole::Member)
        .unwrap();
    let names: Vec<_> = chat
        .accounts()
        .unwrap()
        .into_iter()
        .map(|a| (a.name, a.profile.role))
        .collect();
    assert_eq!(
        names,
        [
            ("ana".to_owned(), ServerRole::Member),
            ("bo".to_owned(), ServerRole::Admin)
        ]
    );
}

#[test]
fn only_accounts_write_and_removed_names_are_never_reused() {
    let (_dir, chat) = fresh();
    chat.create_account(None, "ana", "Ana").unwrap();
    chat.create_account(Some("ana"), "bo", "Bo").unwrap();
    let settings = open_room("square", vec![]);
    let room = chat.create_room("ana", settings).unwrap();
    let body = MessageBody {
        text: "hello".into(),
        reply_to: None,
        attachments: Vec::new(),
    };
    let err = chat.send(&room, "ghost", &body).unwrap_err();
    assert!(
        matches!(err, ChatError::NoSuchAccount(ref a) if a == "ghost"),
        "{err}"
    );
    let first = chat.send(&room, "bo", &body).unwrap();

    chat.remove_account("ana", "bo").unwrap();
    assert!(chat.account("bo").unwrap().is_none());
    let err = chat.send(&room, "bo", &body).unwrap_err();
    assert!(matches!(err, ChatError::NoSuchAccount(_)), "{err}");
    // What bo wrote stays; the name cannot go to someone else.
    assert_eq!(chat.messages(&room).unwrap()[0].id, first);
    let err = chat
        .create_account(Some("ana"), "bo", "New Bo")
        .unwrap_err();
    assert!(err.to_string().contains("was used before"), "{err}");
    let err = chat.remove_account("ana", "ana").unwrap_err();
    assert!(err.to_string().contains("last admin"), "{err}");
}

#[test]
fn a_directory_is_written_only_by_its_server() {
    let (_dir, chat) = fresh();
    chat.create_account(None, "ana", "Ana").unwrap();
    let (_r, rogue) = rogue_store();
    // The rogue server publishes a profile in ana's server's directory, and one in its own
    // that does not decode.
    let theirs = directory_collection(&chat.server());
    let fake = Profile {
        display_name: "Ana (really)".into(),
        role: ServerRole::Admin,
        joined: rogue.next_time(),
    };
    let fields = MessageFields {
        person: Some("mallory".into()),
        ..MessageFields::default()
    };
    rogue
        .collection(&theirs)
        .unwrap()
        .write_message("p/ana2", Some(&fake.encode()), &fields)
        .unwrap();
    let own = directory_collection(&rogue.author());
    rogue
        .collection(&own)
        .unwrap()
        .write_message("p/mallory", Some(b"\x01garbage"), &fields)
        .unwrap();
    for collection in [&theirs, &own] {
        let got = exchange(&rogue, chat.store(), collection);
        assert_eq!(got.new, 0);
        let reasons: Vec<_> = got.refused.iter().map(|r| r.reason.to_string()).collect();
        assert_eq!(reasons.len(), 1, "{reasons:?}");
        let want = if collection == &theirs {
            "writes its directory"
        } else {
            "not a valid body"
        };
        assert!(reasons[0].contains(want), "{reasons:?}");
    }
    assert!(chat.account("ana2").unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_of_a_paired_community_appear_as_name_at_community() {
    let (a, b) = paired_pair().await;
    let ana = a.chat.person("ana");
    assert_eq!(a.chat.handle(&ana).unwrap(), "ana");
    a.chat.set_community_name("ana", "Riverside").unwrap();
    wait_for(
        "A's directory on B",
        Duration::from_secs(10),
        &[&a, &b],
        || b.chat.handle(&ana).unwrap() == "ana@Riverside",
    )
    .await;
    assert_eq!(b.chat.profile(&ana).unwrap().unwrap().display_name, "Ana");
    // A change is delivered at once, like a message.
    a.chat
        .set_display_name("ana", "ana", "Ana the baker")
        .unwrap();
    wait_for(
        "the new name on B",
        Duration::from_secs(10),
        &[&a, &b],
        || b.chat.profile(&ana).unwrap().unwrap().display_name == "Ana the baker",
    )
    .await;
    // Before B knows a community's name, its people show with the server's short key.
    let stranger = chat::Person::new(archive_core::PublicKey::from_bytes([7; 32]), "zed");
    assert_eq!(b.chat.handle(&stranger).unwrap(), stranger.to_string());
}

#[test]
fn people_keep_the_pace_and_new_accounts_go_slowly() {
    let (_dir, chat) = fresh();
    chat.create_account(None, "ana", "Ana").unwrap();
    chat.create_account(Some("ana"), "bo", "Bo").unwrap();
    let settings = open_room("square", vec![]);
    let room = chat.create_room("ana", settings).unwrap();
    let body = MessageBody {
        text: "hello".into(),
        reply_to: None,
        attachments: Vec::new(),
    };
    // Slow mode: bo's account is new (the default policy: a day), one write per 10 s.
    let first = chat.send(&room, "bo", &body).unwrap();
    let err = chat.send(&room, "bo", &body).unwrap_err();
    assert!(
        matches!(err, ChatError::TooFast { ref account, wait } if account == "bo" && wait <= Duration::from_secs(10)),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("slow down: bo may write again in"),
        "{err}"
    );
    let err = chat.react(&room, "bo", &first, "👍", true).unwrap_err();
    assert!(matches!(err, ChatError::TooFast { .. }), "{err}");
    // The rate limit: three a minute, whatever the account's age.
    chat.set_pace(chat::PacePolicy {
        per_minute: 3,
        new_account_for: Duration::ZERO,
        new_account_every: Duration::ZERO,
    });
    chat.send(&room, "bo", &body).unwrap();
    chat.edit(&room, "bo", &first, "hello again").unwrap();
    let err = chat.send(&room, "bo", &body).unwrap_err();
    assert!(matches!(err, ChatError::TooFast { .. }), "{err}");
    let err = chat
        .send_many(&room, "bo", &[body.clone(), body.clone()])
        .unwrap_err();
    assert!(matches!(err, ChatError::TooFast { .. }), "{err}");
    // The admin is not paced; what was refused was not written.
    for _ in 0..10 {
        chat.send(&room, "ana", &body).unwrap();
    }
    let by_bo = chat
        .messages(&room)
        .unwrap()
        .into_iter()
        .filter(|m| m.id.author.account == "bo")
        .count();
    assert_eq!(by_bo, 2);
}
