//! How rooms, people, messages and authority events are named, and the keys and collection
//! names those names become in the archive (written down in ARCHITECTURE.md, "The messenger's
//! keys"). Parsing is strict: a key that does not parse back to what formatting it would give
//! is not a chat key.

use std::fmt;

use archive_core::{PublicKey, Timestamp};
use serde::{Deserialize, Serialize};

/// A room: the server that founded it and a random nonce. Its two collections are named after
/// it, so every server finds a room's founder in the room's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RoomId {
    /// The server whose person founded the room.
    pub founder: PublicKey,
    /// Random, chosen by the founder.
    pub nonce: [u8; 8],
}

/// Every chat collection's name starts with this.
pub const COLLECTION_PREFIX: &str = "chat/";

/// The collection where `server` publishes its community's name and its people (accounts,
/// display names, roles), written only by that server and synced with every paired server.
pub fn directory_collection(server: &PublicKey) -> String {
    format!("{COLLECTION_PREFIX}{server}/people")
}

/// The server whose directory `collection` is, if it is one.
pub fn directory_of(collection: &str) -> Option<PublicKey> {
    let rest = collection.strip_prefix(COLLECTION_PREFIX)?;
    let (server, part) = rest.split_once('/')?;
    let server: PublicKey = server.parse().ok()?;
    (part == "people" && directory_collection(&server) == collection).then_some(server)
}

/// A key of a directory: the community's profile, or one person's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectoryKey {
    /// `community`: the community's name.
    Community,
    /// `p/<account>`: an account's profile.
    Person(String),
}

impl DirectoryKey {
    /// The key in the directory collection.
    pub fn to_key(&self) -> String {
        match self {
            DirectoryKey::Community => "community".into(),
            DirectoryKey::Person(account) => format!("p/{account}"),
        }
    }

    /// Parses a directory key (only the spelling `to_key` writes).
    pub fn parse(key: &str) -> Option<DirectoryKey> {
        if key == "community" {
            return Some(DirectoryKey::Community);
        }
        let account = key.strip_prefix("p/")?;
        archive_core::validate_person(account).ok()?;
        Some(DirectoryKey::Person(account.to_owned()))
    }
}

impl RoomId {
    /// The collection of the room's authority events (settings, roles, bans): small, synced
    /// before the messages, since whether a message may be kept depends on them.
    pub fn authority_collection(&self) -> String {
        format!(
            "{COLLECTION_PREFIX}{}/{}/authority",
            self.founder,
            hex(&self.nonce)
        )
    }

    /// The collection of the room's messages and reactions.
    pub fn messages_collection(&self) -> String {
        format!(
            "{COLLECTION_PREFIX}{}/{}/messages",
            self.founder,
            hex(&self.nonce)
        )
    }

    /// The collection of the room's attachments: fetched one by one when someone opens them,
    /// never synced as a whole.
    pub fn files_collection(&self) -> String {
        format!(
            "{COLLECTION_PREFIX}{}/{}/files",
            self.founder,
            hex(&self.nonce)
        )
    }

    /// The room and which of its collections `collection` is, if it is one.
    pub fn of_collection(collection: &str) -> Option<(RoomId, RoomPart)> {
        let rest = collection.strip_prefix(COLLECTION_PREFIX)?;
        let mut parts = rest.split('/');
        let founder: PublicKey = parts.next()?.parse().ok()?;
        let nonce = parse_hex::<8>(parts.next()?)?;
        let part = match parts.next()? {
            "authority" => RoomPart::Authority,
            "messages" => RoomPart::Messages,
            "files" => RoomPart::Files,
            _ => return None,
        };
        let room = RoomId { founder, nonce };
        (parts.next().is_none() && room.collection(part) == collection).then_some((room, part))
    }

    /// The name of one of the room's collections.
    pub fn collection(&self, part: RoomPart) -> String {
        match part {
            RoomPart::Authority => self.authority_collection(),
            RoomPart::Messages => self.messages_collection(),
            RoomPart::Files => self.files_collection(),
        }
    }
}

/// Which of a room's two collections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomPart {
    /// Settings, roles, bans.
    Authority,
    /// Messages and reactions.
    Messages,
    /// Attachments, fetched lazily.
    Files,
}

/// `founder-nonce`, as a room is named in links and on the command line.
impl fmt::Display for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.founder, hex(&self.nonce))
    }
}

impl std::str::FromStr for RoomId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("`{s}` is not a room id (the founder's key, `-`, 16 hex digits)");
        let (founder, nonce) = s.split_once('-').ok_or_else(bad)?;
        Ok(RoomId {
            founder: founder.parse().map_err(|_| bad())?,
            nonce: parse_hex::<8>(nonce).ok_or_else(bad)?,
        })
    }
}

/// A person: an account on a server. The server signs for its people, so a person's
/// messages are entries signed by that server carrying the account name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Person {
    /// The server that hosts the account.
    pub server: PublicKey,
    /// The account name (see [`archive_core::validate_person`]).
    pub account: String,
}

impl Person {
    /// The person `account` of `server`.
    pub fn new(server: PublicKey, account: &str) -> Self {
        Person {
            server,
            account: account.to_owned(),
        }
    }
}

/// `account@` and the first 8 hex digits of the server's key (the community's name, once
/// known, is what a client shows instead).
impl fmt::Display for Person {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.account, &self.server.to_hex()[..8])
    }
}

/// A message or an authority event: when its author's server wrote it, which server, which
/// person. Unique (a server's clock never gives one time twice) and totally ordered: the
/// order a room shows, identical on every server.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ItemId {
    /// On the author's server's clock.
    pub time: Timestamp,
    /// The author.
    pub author: Person,
}

/// A message's id.
pub type MessageId = ItemId;
/// An authority event's id.
pub type EventId = ItemId;

impl ItemId {
    /// `<time: 16 hex digits>/<server: 64 hex digits>/<account>`: sorts by time, then server,
    /// then account, as the ids do.
    pub(crate) fn key_suffix(&self) -> String {
        format!(
            "{:016x}/{}/{}",
            self.time.raw(),
            self.author.server,
            self.author.account
        )
    }

    /// Parses what [`ItemId::key_suffix`] wrote (three components); `None` for anything else.
    pub(crate) fn parse_suffix<'k>(parts: &mut impl Iterator<Item = &'k str>) -> Option<Self> {
        let time = parts.next()?;
        let server = parts.next()?;
        let account = parts.next()?;
        if time.len() != 16
            || !time
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        {
            return None;
        }
        let time = Timestamp::from_raw(u64::from_str_radix(time, 16).ok()?);
        let server: PublicKey = server.parse().ok()?;
        archive_core::validate_person(account).ok()?;
        Some(ItemId {
            time,
            author: Person::new(server, account),
        })
    }

    /// The key of a message (in the messages collection).
    pub fn message_key(&self) -> String {
        format!("m/{}", self.key_suffix())
    }

    /// The key of an authority event (in the authority collection).
    pub fn event_key(&self) -> String {
        format!("e/{}", self.key_suffix())
    }
}

/// What a key of a room's collections names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatKey {
    /// `m/<id>`: a message (its versions: the first, edits, a deletion).
    Message(MessageId),
    /// `r/<message id>/<reactor's server>/<reactor's account>/<reaction as hex>`: one
    /// person's reaction to a message (a tombstone takes it back).
    Reaction {
        /// The message reacted to.
        message: MessageId,
        /// Who reacts.
        by: Person,
        /// The reaction (an emoji), at most [`crate::MAX_REACTION_LEN`] bytes.
        reaction: String,
    },
    /// `e/<id>`: an authority event (written once, never changed).
    Event(EventId),
    /// `f/<message id>/<index>`: an attachment of a message (in the room's files).
    Attachment {
        /// The message it belongs to.
        message: MessageId,
        /// Its place among the message's attachments.
        index: u8,
    },
}

impl ChatKey {
    /// Parses a key; `None` when it is not exactly how this crate writes one.
    pub fn parse(key: &str) -> Option<ChatKey> {
        let mut parts = key.split('/');
        let parsed = match parts.next()? {
            "m" => ChatKey::Message(ItemId::parse_suffix(&mut parts)?),
            "e" => ChatKey::Event(ItemId::parse_suffix(&mut parts)?),
            "f" => ChatKey::Attachment {
                message: ItemId::parse_suffix(&mut parts)?,
                index: parts.next()?.parse().ok()?,
            },
            "r" => {
                let message = ItemId::parse_suffix(&mut parts)?;
                let server: PublicKey = parts.next()?.parse().ok()?;
                let account = parts.next()?;
                archive_core::validate_person(account).ok()?;
                let bytes = parse_hex_vec(parts.next()?)?;
                let reaction = String::from_utf8(bytes).ok()?;
                if reaction.is_empty()
                    || reaction.len() > crate::MAX_REACTION_LEN
                    || reaction.chars().any(char::is_control)
                {
                    return None;
                }
                ChatKey::Reaction {
                    message,
                    by: Person::new(server, account),
                    reaction,
                }
            }
            _ => return None,
        };
        (parts.next().is_none() && parsed.to_key() == key).then_some(parsed)
    }

    /// The key as the archive stores it.
    pub fn to_key(&self) -> String {
        match self {
            ChatKey::Message(id) => id.message_key(),
            ChatKey::Event(id) => id.event_key(),
            ChatKey::Attachment { message, index } => {
                format!("f/{}/{index}", message.key_suffix())
            }
            ChatKey::Reaction {
                message,
                by,
                reaction,
            } => format!(
                "r/{}/{}/{}/{}",
                message.key_suffix(),
                by.server,
                by.account,
                hex(reaction.as_bytes())
            ),
        }
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex_vec(s: &str) -> Option<Vec<u8>> {
    if s.len() & 1 == 1
        || !s
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

fn parse_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    parse_hex_vec(s)?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(n: u8) -> PublicKey {
        archive_core::SecretKey::from_bytes([n; 32]).public()
    }

    #[test]
    fn keys_parse_back_to_what_wrote_them() {
        let id = ItemId {
            time: Timestamp::from_raw(0x0123_4567_89ab_cdef),
            author: Person::new(server(1), "ana"),
        };
        let reaction = ChatKey::Reaction {
            message: id.clone(),
            by: Person::new(server(2), "bo.b"),
            reaction: "👍".into(),
        };
        for key in [
            ChatKey::Message(id.clone()),
            ChatKey::Event(id.clone()),
            reaction,
        ] {
            assert_eq!(ChatKey::parse(&key.to_key()), Some(key.clone()));
            archive_core::validate_key(&key.to_key()).unwrap();
        }
        let room = RoomId {
            founder: server(3),
            nonce: [7; 8],
        };
        for (name, part) in [
            (room.authority_collection(), RoomPart::Authority),
            (room.messages_collection(), RoomPart::Messages),
        ] {
            archive_core::validate_collection(&name).unwrap();
            assert_eq!(RoomId::of_collection(&name), Some((room, part)));
        }
        assert_eq!(room.to_string().parse::<RoomId>(), Ok(room));
    }

    #[test]
    fn other_spellings_are_not_chat_keys() {
        let id = ItemId {
            time: Timestamp::from_raw(5),
            author: Person::new(server(1), "ana"),
        };
        let good = id.message_key();
        for bad in [
            good.to_uppercase(),
            good.replacen("m/", "x/", 1),
            format!("{good}/extra"),
            good.replacen("0000000000000005", "5", 1),
            good.replace("/ana", "/an a"),
            format!("r/{}/{}/ana/", id.key_suffix(), server(2)),
            format!("r/{}/{}/ana/0a", id.key_suffix(), server(2)),
            format!("r/{}/{}/ana/zz", id.key_suffix(), server(2)),
        ] {
            assert_eq!(ChatKey::parse(&bad), None, "{bad}");
        }
        assert_eq!(RoomId::of_collection("chat/x/y/messages"), None);
        assert_eq!(RoomId::of_collection("docs"), None);
    }
}
