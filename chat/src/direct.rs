//! Direct messages: a room of two people, invite-only, founded by whichever of them wrote
//! first, on a nonce both sides can compute from the pair, so each finds it again.
//!
//! Two people who each open a conversation at the same moment, before either server has
//! the other's room, get two rooms (one founded on each server); `Chat::direct` then keeps
//! returning the first found, and `Chat::direct_rooms` lists both.

use archive_core::Hash;

use crate::engine::Chat;
use crate::error::ChatError;
use crate::format::{Access, Event, Role, RoomSettings};
use crate::names::{Person, RoomId};

impl Chat {
    /// The direct room of `account` (of this server) and `other`: an existing one, or a new
    /// one founded here (invite-only, `other` a member, shared with `other`'s server).
    pub fn direct(&self, account: &str, other: &Person) -> Result<RoomId, ChatError> {
        let me = self.person(&self.existing(account)?.name);
        if &me == other {
            return Err(ChatError::Invalid("a direct room needs two people".into()));
        }
        if let Some((room, _)) = self
            .direct_rooms(account)?
            .into_iter()
            .find(|(_, p)| p == other)
        {
            return Ok(room);
        }
        let room = RoomId {
            founder: self.server(),
            nonce: direct_nonce(&me, other),
        };
        let servers = if other.server == self.server() {
            vec![]
        } else {
            vec![other.server]
        };
        let settings = RoomSettings {
            name: String::new(),
            topic: String::new(),
            access: Access::InviteOnly,
            servers,
            history: Default::default(),
        };
        self.post_event(&room, account, &Event::Settings(settings))?;
        let member = Event::SetRole {
            person: other.clone(),
            role: Role::Member,
        };
        self.post_event(&room, account, &member)?;
        Ok(room)
    }

    /// The direct rooms `account` takes part in, each with the other person.
    pub fn direct_rooms(&self, account: &str) -> Result<Vec<(RoomId, Person)>, ChatError> {
        let me = self.person(&self.existing(account)?.name);
        let mut out = Vec::new();
        for room in self.rooms()? {
            if let Some(other) = self.direct_partner(&room)? {
                let pair = [other.0, other.1];
                if let Some(i) = pair.iter().position(|p| p == &me) {
                    out.push((room, pair[1 - i].clone()));
                }
            }
        }
        Ok(out)
    }

    /// The two people of a direct room (its founder, then the other), or `None` if `room`
    /// is not one: its nonce is not the pair's.
    pub(crate) fn direct_partner(
        &self,
        room: &RoomId,
    ) -> Result<Option<(Person, Person)>, ChatError> {
        let authority = self.authority(room)?;
        let Some(founder) = authority.founder().cloned() else {
            return Ok(None);
        };
        let Some(settings) = authority.settings_at(None) else {
            return Ok(None);
        };
        if settings.access != Access::InviteOnly || settings.servers.len() > 1 {
            return Ok(None);
        }
        for other in authority.people() {
            if other != &founder && room.nonce == direct_nonce(&founder, other) {
                return Ok(Some((founder, other.clone())));
            }
        }
        Ok(None)
    }
}

/// The nonce of the direct room `founder` opens with `other`: the first 8 bytes of the
/// BLAKE3 hash of `dm`, both servers and both accounts (the founder's first).
fn direct_nonce(founder: &Person, other: &Person) -> [u8; 8] {
    let mut input = b"dm\0".to_vec();
    for p in [founder, other] {
        input.extend(p.server.as_bytes());
        input.extend(p.account.as_bytes());
        input.push(0);
    }
    let hash = Hash::of(&input);
    let mut nonce = [0; 8];
    nonce.copy_from_slice(&hash.as_bytes()[..8]);
    nonce
}
