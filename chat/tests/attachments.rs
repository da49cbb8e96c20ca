//! Attachments: files of any size that come with a message, fetched from a peer only when
//! someone opens them, verified, inserted whole or not at all, and gone with their message.

use std::time::Duration;

use crate::common::open_room;
use crate::live_common::{paired_pair, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachments_come_when_opened_and_go_with_their_message() {
    let (a, b) = paired_pair().await;
    let both = [&a, &b];
    let limit = Duration::from_secs(20);
    let room = a
        .chat
        .create_room("ana", open_room("photos", vec![b.chat.server()]))
        .unwrap();
    let notes = b"bring a ladder".to_vec();
    let photo = test_support::pseudo_random(3 * 1024 * 1024 + 5, 42);
    let files: [(&str, &[u8]); 2] = [("notes.txt", &notes), ("roof.jpg", &photo)];
    let sent = a
        .chat
        .send_with_files(&room, "ana", "the roof after the storm", None, &files)
        .unwrap();
    wait_for("the message on B", limit, &both, || {
        b.shown(&room).len() == 1
    })
    .await;

    // B shows the previews at once; the files themselves stay on A until opened.
    let on_b = b.chat.message(&room, &sent).unwrap().unwrap();
    let previews: Vec<_> = on_b
        .attachments
        .iter()
        .map(|x| (x.name.as_str(), x.size))
        .collect();
    assert_eq!(
        previews,
        [("notes.txt", 14), ("roof.jpg", photo.len() as u64)]
    );
    assert_eq!(on_b.attachments[1].hash, archive_core::Hash::of(&photo));
    assert_eq!(b.chat.attachment(&room, &sent, 1).unwrap(), None);
    let files_on_b = b.chat.store().collection(&room.files_collection()).unwrap();
    assert!(files_on_b.arrivals(0, 10).unwrap().entries.is_empty());
    assert!(!b
        .chat
        .store()
        .blobs()
        .contains(&archive_core::Hash::of(&photo))
        .unwrap());

    b.delivery.fetch_attachment(&room, &sent, 1).await.unwrap();
    assert_eq!(
        b.chat.attachment(&room, &sent, 1).unwrap().as_deref(),
        Some(&photo[..])
    );
    assert_eq!(
        b.chat.attachment(&room, &sent, 0).unwrap(),
        None,
        "only what was opened"
    );
    // Fetching again moves nothing; a missing index is an error.
    b.delivery.fetch_attachment(&room, &sent, 1).await.unwrap();
    let err = b
        .delivery
        .fetch_attachment(&room, &sent, 5)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no attachment 5"), "{err}");
    assert_eq!(
        a.chat.attachment(&room, &sent, 0).unwrap().as_deref(),
        Some(&notes[..])
    );

    // Deleted on A: after gc, the text and the files are gone from both servers.
    a.chat.delete(&room, "ana", &sent).unwrap();
    wait_for("the deletion on B", limit, &both, || {
        b.shown(&room).is_empty()
    })
    .await;
    for s in both {
        s.chat.gc().unwrap();
        let blobs = s.chat.store().blobs();
        for content in [&photo[..], &notes[..]] {
            assert!(!blobs.contains(&archive_core::Hash::of(content)).unwrap());
        }
        assert_eq!(s.chat.attachment(&room, &sent, 1).unwrap(), None);
    }
}

#[test]
fn only_its_author_attaches_files_to_a_message() {
    let a = crate::common::Server::new();
    let room = a
        .chat
        .create_room("ana", open_room("square", vec![]))
        .unwrap();
    let files: [(&str, &[u8]); 1] = [("a.txt", b"a")];
    let sent = a
        .chat
        .send_with_files(&room, "ana", "see", None, &files)
        .unwrap();
    // A hostile server adds a file to ana's message.
    let (_r, rogue) = crate::common::rogue_store();
    let key = chat::ChatKey::Attachment {
        message: sent,
        index: 1,
    };
    let fields = archive_core::MessageFields {
        person: Some("ana".into()),
        ..archive_core::MessageFields::default()
    };
    rogue
        .collection(&room.files_collection())
        .unwrap()
        .write_message(&key.to_key(), Some(b"malware"), &fields)
        .unwrap();
    let got = crate::common::exchange(&rogue, a.store(), &room.files_collection());
    assert_eq!(got.new, 0);
    assert!(
        got.refused[0]
            .reason
            .to_string()
            .contains("cannot write an attachment of ana@"),
        "{:?}",
        got.refused
    );
    // Names are checked before anything is written.
    let bad: [(&str, &[u8]); 1] = [("../etc/passwd", b"x")];
    assert!(a
        .chat
        .send_with_files(&room, "ana", "x", None, &bad)
        .is_err());
    let many: Vec<(&str, &[u8])> = (0..=chat::MAX_ATTACHMENTS)
        .map(|_| ("f", &b"x"[..]))
        .collect();
    assert!(a
        .chat
        .send_with_files(&room, "ana", "x", None, &many)
        .is_err());
}
