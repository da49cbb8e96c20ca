//! `chat`: the community messenger's engine. Rooms are pairs of collections of the server's
//! archive store (authority events, messages), so storage, signatures, reconciliation and
//! blob transfer are the archive's; this crate adds what they mean: people, rooms, roles,
//! bans, messages, edits, deletions and reactions, and the rules every server applies before
//! it keeps a room's entry. A library: no HTTP, no terminal.
//!
//! A server signs for its people: a message is an entry signed by the server that hosts its
//! author, carrying the author's account, under a key that names both, so no server can
//! write as a person it does not host (ARCHITECTURE.md, "The messenger").
//!
//! ```
//! use std::sync::Arc;
//!
//! use chat::{Access, Chat, History, MessageBody, RoomSettings};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let store = Arc::new(archive_core::Store::init(dir.path().join("archive"))?);
//! let chat = Chat::new(store);
//! // The server's first account is its admin; the admin makes the others.
//! chat.create_account(None, "ana", "Ana")?;
//! chat.create_account(Some("ana"), "bo", "Bo")?;
//! let settings = RoomSettings {
//!     name: "garden".into(),
//!     topic: "who waters what".into(),
//!     access: Access::Open,
//!     servers: vec![],
//!     history: History::Whole,
//! };
//! let room = chat.create_room("ana", settings)?;
//! let body = MessageBody { text: "tomatoes need water".into(), reply_to: None, attachments: vec![] };
//! let first = chat.send(&room, "ana", &body)?;
//! chat.react(&room, "bo", &first, "👍", true)?;
//! let shown = chat.messages(&room)?;
//! assert_eq!(shown[0].text, "tomatoes need water");
//! assert_eq!(shown[0].reactions["👍"], vec![chat.person("bo")]);
//! # Ok(()) }
//! ```
#![warn(missing_docs, unreachable_pub)]

mod authority;
mod blocklist;
mod delivery;
mod direct;
mod engine;
mod error;
mod format;
mod names;
mod pace;
mod people;
mod reads;
mod reports;
mod rules;
mod search;

pub use authority::{Authority, Denial};
pub use blocklist::{blocklist_collection, blocklist_of, FOLLOWS_COLLECTION};
pub use delivery::{Delivery, DeliveryConfig, DeliveryStats, RECENT_REFUSALS};
pub use engine::{Chat, EventPage, Message, ResumeToken, RoomEvent};
pub use error::ChatError;
pub use format::{
    Access, Attachment, Block, CommunityProfile, Event, FormatError, History, MessageBody, Profile,
    Report, Resolution, Role, RoomSettings, ServerRole, MAX_ATTACHMENTS, MAX_ATTACHMENT_NAME_LEN,
    MAX_DISPLAY_NAME_LEN, MAX_EVENT_BODY, MAX_MESSAGE_BODY, MAX_PROFILE_BODY, MAX_REACTION_LEN,
    MAX_REASON_LEN, MAX_REPORT_BODY, MAX_ROOM_NAME_LEN, MAX_ROOM_SERVERS, MAX_TEXT_LEN,
};
pub use names::{
    directory_collection, directory_of, ChatKey, DirectoryKey, EventId, ItemId, MessageId, Person,
    RoomId, RoomPart, COLLECTION_PREFIX,
};
pub use pace::PacePolicy;
pub use people::Account;
pub use reads::READS_COLLECTION;
pub use reports::{QueuedReport, REPORTS_COLLECTION};
pub use search::{
    Search, SearchCursor, SearchHit, SearchPage, MAX_QUERY_LEN, MAX_QUERY_WORDS, MAX_SEARCH_PAGE,
};
