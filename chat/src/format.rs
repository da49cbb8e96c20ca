//! What the content of a chat entry is: a message's body, an authority event. Encoded with
//! postcard behind a version tag, with a size limit checked before decoding (the formats are
//! written down in ARCHITECTURE.md, "The messenger's formats", and pinned by tests).

use serde::{Deserialize, Serialize};

use crate::names::{ItemId, MessageId, Person, RoomId};

/// The longest text of a message, in bytes of UTF-8.
pub const MAX_TEXT_LEN: usize = 8 * 1024;
/// The longest encoded message body: the text, a reply and a few attachments.
pub const MAX_MESSAGE_BODY: u64 = 16 * 1024;
/// The longest encoded authority event.
pub const MAX_EVENT_BODY: u64 = 4 * 1024;
/// The longest reaction, in bytes (an emoji with modifiers fits).
pub const MAX_REACTION_LEN: usize = 32;
/// The longest room name and topic, in bytes.
pub const MAX_ROOM_NAME_LEN: usize = 200;
/// The most servers a room may be shared with.
pub const MAX_ROOM_SERVERS: usize = 64;
/// The longest reason given for a ban.
pub const MAX_REASON_LEN: usize = 500;

/// A message's content (the file its entry points at). Kept out of the entry so that a
/// deletion (a tombstone, newer than every version) leaves the text unreferenced and `gc`
/// removes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageBody {
    /// The text.
    pub text: String,
    /// The message this one answers.
    pub reply_to: Option<MessageId>,
    /// Files that come with it: what a room shows before anyone opens one (each is an entry
    /// of the room's files, fetched when opened).
    pub attachments: Vec<Attachment>,
}

/// An attachment as its message shows it: enough for a preview, and to fetch it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// Its file name.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its content's hash.
    pub hash: archive_core::Hash,
    /// The entry of the room's files that holds it (what a fetch asks a peer for).
    pub entry: archive_core::sync::SyncKey,
}

/// Most attachments of one message.
pub const MAX_ATTACHMENTS: usize = 16;
/// Longest attachment name, in bytes.
pub const MAX_ATTACHMENT_NAME_LEN: usize = 255;

/// Who may post in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Access {
    /// Every person of the room's servers.
    Open,
    /// Only people given a role (member, moderator, owner).
    InviteOnly,
}

/// A room's settings: the first authority event, and any later change by an owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomSettings {
    /// Shown as the room's title.
    pub name: String,
    /// Shown under it.
    pub topic: String,
    /// Who may post.
    pub access: Access,
    /// The servers besides the founder's that take part (their people may write, and they
    /// sync the room). Empty: the room stays on the founder's server.
    pub servers: Vec<archive_core::PublicKey>,
    /// What a person invited later is shown of what came before.
    pub history: History,
}

/// What an invite-only room shows a person of what was written before they were invited.
/// (Every server taking part holds the whole room either way: this is what people are
/// shown, not what servers keep.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum History {
    /// Everything: a newcomer sees the room's whole history.
    #[default]
    Whole,
    /// Only what was written once they had a role in the room (owners and moderators see
    /// everything). In an open room everyone sees everything.
    SinceInvited,
}

/// A person's role in a room, from least to most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    /// No role: may post in an open room only.
    None,
    /// May post in an invite-only room.
    Member,
    /// May delete others' messages, ban and kick members.
    Moderator,
    /// May change the room's settings and anyone's role.
    Owner,
}

impl Role {
    /// The role's name as a sentence uses it: "a moderator", "no role".
    pub fn named(self) -> &'static str {
        match self {
            Role::None => "no role",
            Role::Member => "a member",
            Role::Moderator => "a moderator",
            Role::Owner => "an owner",
        }
    }

    /// "has no role", "is a member".
    pub(crate) fn described(self) -> String {
        match self {
            Role::None => "has no role".into(),
            other => format!("is {}", other.named()),
        }
    }
}

/// What an authority event says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// The room's settings (the founder's first one creates the room).
    Settings(RoomSettings),
    /// Gives `person` a role (`Role::None` takes it away: a kick).
    SetRole {
        /// Whose role.
        person: Person,
        /// The new role.
        role: Role,
    },
    /// Bans `person`: nothing they write after the ban is kept.
    Ban {
        /// Who.
        person: Person,
        /// Why, shown to moderators and in the refusal.
        reason: String,
    },
    /// Lifts a ban.
    Unban {
        /// Who.
        person: Person,
    },
}

/// The first byte of every encoded body: the format's version.
/// A person's role on their own server (not in a room: see [`Role`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ServerRole {
    /// Writes and reads.
    Member,
    /// Also sees the report queue.
    Moderator,
    /// Also creates and removes accounts, names the community.
    Admin,
}

/// An account as its server publishes it in its directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// The name shown (the account name, its stable id, never changes).
    pub display_name: String,
    /// Its role on its server.
    pub role: ServerRole,
    /// When the account was made (its server's clock): how new it is, for slow mode.
    pub joined: archive_core::Timestamp,
}

/// A community as its server names it: what follows the `@` in `name@community`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommunityProfile {
    /// Its name.
    pub name: String,
}

/// Longest display name or community name, in bytes.
pub const MAX_DISPLAY_NAME_LEN: usize = 64;
/// Largest encoded profile.
pub const MAX_PROFILE_BODY: u64 = 1024;

impl Profile {
    /// The encoded profile.
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    /// Decodes and checks a profile.
    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        let profile: Profile = decode(bytes, MAX_PROFILE_BODY)?;
        profile.check()?;
        Ok(profile)
    }

    /// Whether the profile keeps this crate's limits.
    pub fn check(&self) -> Result<(), FormatError> {
        check_name("a display name", &self.display_name)
    }
}

impl CommunityProfile {
    /// The encoded profile.
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    /// Decodes and checks a community's profile.
    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        let profile: CommunityProfile = decode(bytes, MAX_PROFILE_BODY)?;
        profile.check()?;
        Ok(profile)
    }

    /// Whether the profile keeps this crate's limits.
    pub fn check(&self) -> Result<(), FormatError> {
        check_name("a community's name", &self.name)
    }
}

/// A name shown to people: 1 to [`MAX_DISPLAY_NAME_LEN`] bytes, no control characters, not
/// only spaces.
fn check_name(what: &str, name: &str) -> Result<(), FormatError> {
    check_text(what, name, MAX_DISPLAY_NAME_LEN)?;
    if name.trim().is_empty() || name.chars().any(char::is_control) {
        return Err(FormatError(format!(
            "{what} must have a visible character and no control characters"
        )));
    }
    Ok(())
}

/// A person's report of a message to their server's moderators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// The room.
    pub room: RoomId,
    /// The message reported.
    pub message: ItemId,
    /// Why, in the reporter's words.
    pub reason: String,
    /// How a moderator dealt with it, once one has.
    pub resolved: Option<Resolution>,
}

/// How a report was dealt with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolution {
    /// The moderator's account.
    pub by: String,
    /// What they did or decided.
    pub note: String,
}

/// Why a community blocks a person (an entry of its published blocklist).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// Shown to the communities that follow the list.
    pub reason: String,
}

/// Largest encoded report or block.
pub const MAX_REPORT_BODY: u64 = 2048;

impl Report {
    /// The encoded report.
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    /// Decodes and checks a report.
    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        let report: Report = decode(bytes, MAX_REPORT_BODY)?;
        report.check()?;
        Ok(report)
    }

    /// Whether the report keeps this crate's limits.
    pub fn check(&self) -> Result<(), FormatError> {
        check_person(&self.message.author)?;
        check_text("the reason", &self.reason, MAX_REASON_LEN)?;
        if let Some(r) = &self.resolved {
            archive_core::validate_person(&r.by).map_err(|e| FormatError(e.to_string()))?;
            check_text("the note", &r.note, MAX_REASON_LEN)?;
        }
        Ok(())
    }
}

impl Block {
    /// The encoded block.
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    /// Decodes and checks a block.
    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        let block: Block = decode(bytes, MAX_REPORT_BODY)?;
        check_text("the reason", &block.reason, MAX_REASON_LEN)?;
        Ok(block)
    }
}

const FORMAT_V1: u8 = 1;

/// Why bytes are not a valid body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FormatError(pub String);

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = vec![FORMAT_V1];
    out.extend(postcard::to_stdvec(value).expect("serialising to a Vec cannot fail"));
    out
}

fn decode<'a, T: Deserialize<'a> + Serialize>(
    bytes: &'a [u8],
    limit: u64,
) -> Result<T, FormatError> {
    if bytes.len() as u64 > limit {
        return Err(FormatError(format!(
            "{} bytes, more than the limit of {limit}",
            bytes.len()
        )));
    }
    let Some((&version, rest)) = bytes.split_first() else {
        return Err(FormatError("empty".into()));
    };
    if version != FORMAT_V1 {
        return Err(FormatError(format!("unknown format version {version}")));
    }
    let (value, tail) = postcard::take_from_bytes::<T>(rest)
        .map_err(|e| FormatError(format!("not a valid body: {e}")))?;
    if !tail.is_empty() {
        return Err(FormatError(format!("{} bytes after the body", tail.len())));
    }
    Ok(value)
}

impl MessageBody {
    /// The encoded body.
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    /// Decodes and checks a body.
    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        let body: MessageBody = decode(bytes, MAX_MESSAGE_BODY)?;
        body.check()?;
        Ok(body)
    }

    /// Whether the body keeps this crate's limits.
    pub fn check(&self) -> Result<(), FormatError> {
        check_text("the text", &self.text, MAX_TEXT_LEN)?;
        if self.attachments.len() > MAX_ATTACHMENTS {
            return Err(FormatError(format!(
                "{} attachments, more than {MAX_ATTACHMENTS}",
                self.attachments.len()
            )));
        }
        for a in &self.attachments {
            check_text("an attachment's name", &a.name, MAX_ATTACHMENT_NAME_LEN)?;
            if a.name.is_empty() || a.name.chars().any(|c| c.is_control() || c == '/') {
                return Err(FormatError(
                    "an attachment's name is not empty and has no `/` or control characters".into(),
                ));
            }
        }
        Ok(())
    }
}

impl Event {
    /// The encoded event.
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    /// Decodes and checks an event.
    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        let event: Event = decode(bytes, MAX_EVENT_BODY)?;
        event.check()?;
        Ok(event)
    }

    /// Whether the event keeps this crate's limits.
    pub fn check(&self) -> Result<(), FormatError> {
        match self {
            Event::Settings(s) => {
                check_text("the room's name", &s.name, MAX_ROOM_NAME_LEN)?;
                check_text("the room's topic", &s.topic, MAX_ROOM_NAME_LEN)?;
                if s.servers.len() > MAX_ROOM_SERVERS {
                    return Err(FormatError(format!(
                        "{} servers, more than {MAX_ROOM_SERVERS}",
                        s.servers.len()
                    )));
                }
                Ok(())
            }
            Event::SetRole { person, .. } | Event::Unban { person } => check_person(person),
            Event::Ban { person, reason } => {
                check_person(person)?;
                check_text("the reason", reason, MAX_REASON_LEN)
            }
        }
    }
}

fn check_person(person: &Person) -> Result<(), FormatError> {
    archive_core::validate_person(&person.account).map_err(|e| FormatError(e.to_string()))
}

fn check_text(what: &str, text: &str, limit: usize) -> Result<(), FormatError> {
    if text.len() > limit {
        return Err(FormatError(format!(
            "{what} is {} bytes, more than the limit of {limit}",
            text.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_are_pinned() {
        let body = MessageBody {
            text: "hi".into(),
            reply_to: None,
            attachments: Vec::new(),
        };
        // Version 1, text length 2, "hi", no reply, no attachments.
        assert_eq!(body.encode(), [1, 2, b'h', b'i', 0, 0]);
        assert_eq!(MessageBody::decode(&body.encode()), Ok(body));
        let ban = Event::Unban {
            person: Person::new(archive_core::PublicKey::from_bytes([9; 32]), "a"),
        };
        let mut expected = vec![1, 3];
        expected.extend([9; 32]);
        expected.extend([1, b'a']);
        assert_eq!(ban.encode(), expected);
        assert_eq!(Event::decode(&ban.encode()), Ok(ban));
    }

    #[test]
    fn profiles_are_pinned_and_checked() {
        let profile = Profile {
            display_name: "Ana".into(),
            role: ServerRole::Admin,
            joined: archive_core::Timestamp::from_raw(5),
        };
        // Version 1, name length 3, "Ana", Admin (2), time 5 (varint).
        assert_eq!(profile.encode(), [1, 3, b'A', b'n', b'a', 2, 5]);
        assert_eq!(Profile::decode(&profile.encode()), Ok(profile));
        let community = CommunityProfile {
            name: "Riverside".into(),
        };
        assert_eq!(CommunityProfile::decode(&community.encode()), Ok(community));
        for bad in ["", "   ", "a\u{7}b", &"x".repeat(MAX_DISPLAY_NAME_LEN + 1)] {
            let p = CommunityProfile { name: bad.into() };
            assert!(CommunityProfile::decode(&p.encode()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bad_bodies_are_refused_with_a_reason() {
        let good = MessageBody {
            text: "x".into(),
            reply_to: None,
            attachments: Vec::new(),
        }
        .encode();
        let mut trailing = good.clone();
        trailing.push(0);
        let mut v2 = good.clone();
        v2[0] = 2;
        let long = MessageBody {
            text: "x".repeat(MAX_TEXT_LEN + 1),
            reply_to: None,
            attachments: Vec::new(),
        }
        .encode();
        for (bad, says) in [
            (&[][..], "empty"),
            (&trailing[..], "after the body"),
            (&v2[..], "unknown format version 2"),
            (&good[..2], "not a valid body"),
            (&long[..], "more than the limit of 8192"),
        ] {
            let err = MessageBody::decode(bad).unwrap_err();
            assert!(err.0.contains(says), "{err} / {says}");
        }
        let huge = vec![1; MAX_MESSAGE_BODY as usize + 1];
        assert!(MessageBody::decode(&huge)
            .unwrap_err()
            .0
            .contains("more than the limit"));
    }
}
