//! The messenger's decoders of untrusted bytes (issue 14): message bodies, authority events,
//! chat keys and room collection names, profiles, community names, directory keys and
//! directory collection names, reports and blocks, blocklist names, as a peer's entries or a
//! server's own files carry them. The first byte picks
//! the decoder. Whatever decodes keeps its limits and survives a round trip.
#![no_main]

use chat::{
    blocklist_collection, blocklist_of, directory_collection, directory_of, Block, ChatKey,
    CommunityProfile, DirectoryKey, Event, MessageBody, Profile, Report, RoomId,
    MAX_DISPLAY_NAME_LEN, MAX_EVENT_BODY, MAX_MESSAGE_BODY, MAX_PROFILE_BODY, MAX_REASON_LEN,
    MAX_REPORT_BODY, MAX_TEXT_LEN,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 9 {
        0 => {
            if let Ok(body) = MessageBody::decode(rest) {
                assert!(rest.len() as u64 <= MAX_MESSAGE_BODY);
                assert!(body.text.len() <= MAX_TEXT_LEN);
                assert_eq!(MessageBody::decode(&body.encode()), Ok(body));
            }
        }
        1 => {
            if let Ok(event) = Event::decode(rest) {
                assert!(rest.len() as u64 <= MAX_EVENT_BODY);
                assert_eq!(Event::decode(&event.encode()), Ok(event));
            }
        }
        2 => {
            let Ok(key) = std::str::from_utf8(rest) else {
                return;
            };
            if let Some(parsed) = ChatKey::parse(key) {
                // Only the spelling this crate writes parses, and it is a valid archive key.
                assert_eq!(parsed.to_key(), key);
                archive_core::validate_key(key).unwrap();
            }
        }
        3 => {
            let Ok(name) = std::str::from_utf8(rest) else {
                return;
            };
            if let Some((room, part)) = RoomId::of_collection(name) {
                assert_eq!(room.collection(part), name);
                archive_core::validate_collection(name).unwrap();
            }
        }
        4 => {
            if let Ok(profile) = Profile::decode(rest) {
                assert!(rest.len() as u64 <= MAX_PROFILE_BODY);
                assert!(profile.display_name.len() <= MAX_DISPLAY_NAME_LEN);
                assert_eq!(Profile::decode(&profile.encode()), Ok(profile));
            }
        }
        5 => {
            if let Ok(community) = CommunityProfile::decode(rest) {
                assert!(community.name.len() <= MAX_DISPLAY_NAME_LEN);
                assert_eq!(CommunityProfile::decode(&community.encode()), Ok(community));
            }
        }
        7 => {
            if let Ok(report) = Report::decode(rest) {
                assert!(rest.len() as u64 <= MAX_REPORT_BODY);
                assert!(report.reason.len() <= MAX_REASON_LEN);
                assert_eq!(Report::decode(&report.encode()), Ok(report));
            }
        }
        8 => {
            if let Ok(block) = Block::decode(rest) {
                assert!(block.reason.len() <= MAX_REASON_LEN);
                assert_eq!(Block::decode(&block.encode()), Ok(block));
            }
        }
        _ => {
            let Ok(text) = std::str::from_utf8(rest) else {
                return;
            };
            if let Some(server) = blocklist_of(text) {
                assert_eq!(blocklist_collection(&server), text);
                archive_core::validate_collection(text).unwrap();
            }
            if let Some(key) = DirectoryKey::parse(text) {
                assert_eq!(key.to_key(), text);
                archive_core::validate_key(text).unwrap();
            }
            if let Some(server) = directory_of(text) {
                assert_eq!(directory_collection(&server), text);
                archive_core::validate_collection(text).unwrap();
            }
        }
    }
});
