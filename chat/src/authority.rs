//! A room's authority: who founded it, its settings, roles and bans, as they stood at any
//! point of the room's order. A pure fold over the room's authority events (no I/O), so every
//! server that holds the same events reaches the same answers, whatever order they arrived in.
//!
//! Events are applied in id order (time, server, account). An event counts only if its signer
//! held the power to make it at that point; one that did not is kept aside with the reason
//! ([`Authority::ignored`]). What a message may do is judged against the state just before the
//! message's own id, so a ban stops what its target writes after it and nothing before.

use std::collections::HashMap;

use crate::format::{Access, Event, Role, RoomSettings};
use crate::names::{EventId, ItemId, Person, RoomId};

/// Why a person may not do something in a room.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Denial(pub String);

/// A room's authority events, folded (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct Authority {
    /// The founder's first settings event: the room begins there.
    genesis: Option<(EventId, Person)>,
    /// Every settings change that counted, in order.
    settings: Vec<(EventId, RoomSettings)>,
    /// Every role change that counted, per person, in order.
    roles: HashMap<Person, Vec<(EventId, Role)>>,
    /// Every ban (true) and lifted ban (false) that counted, per person, in order, with the
    /// reason.
    bans: HashMap<Person, Vec<(EventId, Option<String>)>>,
    /// Events that did not count, and why.
    ignored: Vec<(EventId, String)>,
    /// How many events were folded.
    events: usize,
}

impl Authority {
    /// Folds a room's events (in any order; duplicates count once).
    pub fn fold(room: &RoomId, events: impl IntoIterator<Item = (EventId, Event)>) -> Authority {
        let mut events: Vec<(EventId, Event)> = events.into_iter().collect();
        events.sort_by(|a, b| a.0.cmp(&b.0));
        events.dedup_by(|a, b| a.0 == b.0);
        let mut state = Authority {
            events: events.len(),
            ..Authority::default()
        };
        for (id, event) in events {
            if let Err(Denial(why)) = state.apply(room, &id, event) {
                state.ignored.push((id, why));
            }
        }
        state
    }

    fn apply(&mut self, room: &RoomId, id: &EventId, event: Event) -> Result<(), Denial> {
        let signer = &id.author;
        if self.genesis.is_none() {
            return match event {
                Event::Settings(settings) if signer.server == room.founder => {
                    self.genesis = Some((id.clone(), signer.clone()));
                    self.settings.push((id.clone(), settings));
                    Ok(())
                }
                _ => Err(Denial(
                    "comes before the room was created (its founder's first settings)".into(),
                )),
            };
        }
        self.takes_part(&signer.server, id)?;
        if let Some((since, reason)) = self.ban_at(signer, id) {
            return Err(Denial(format!(
                "{signer} has been banned since {}: {reason}",
                since.time
            )));
        }
        let power = self.role_at(signer, id);
        match event {
            Event::Settings(settings) => {
                need(power, Role::Owner, signer, "change the room's settings")?;
                self.settings.push((id.clone(), settings));
            }
            Event::SetRole { person, role } => {
                if self.is_founder(&person) {
                    return Err(Denial("the founder's role cannot change".into()));
                }
                let current = self.role_at(&person, id);
                // A moderator admits and removes members; an owner does everything.
                let needed = if role >= Role::Moderator || current >= Role::Moderator {
                    Role::Owner
                } else {
                    Role::Moderator
                };
                need(
                    power,
                    needed,
                    signer,
                    &format!("make {person} {}", role.named()),
                )?;
                self.roles
                    .entry(person)
                    .or_default()
                    .push((id.clone(), role));
            }
            Event::Ban { person, reason } => {
                self.may_act_on(power, signer, &person, id, "ban")?;
                self.bans
                    .entry(person)
                    .or_default()
                    .push((id.clone(), Some(reason)));
            }
            Event::Unban { person } => {
                self.may_act_on(power, signer, &person, id, "lift the ban of")?;
                self.bans
                    .entry(person)
                    .or_default()
                    .push((id.clone(), None));
            }
        }
        Ok(())
    }

    fn may_act_on(
        &self,
        power: Role,
        signer: &Person,
        person: &Person,
        at: &ItemId,
        what: &str,
    ) -> Result<(), Denial> {
        if self.is_founder(person) {
            return Err(Denial(format!("the founder cannot be {what}ned")));
        }
        let needed = if self.role_at(person, at) >= Role::Moderator {
            Role::Owner
        } else {
            Role::Moderator
        };
        need(power, needed, signer, &format!("{what} {person}"))
    }

    fn is_founder(&self, person: &Person) -> bool {
        self.genesis.as_ref().is_some_and(|(_, p)| p == person)
    }

    /// Whether the room exists here (its founder's first settings are known).
    pub fn exists(&self) -> bool {
        self.genesis.is_some()
    }

    /// Everyone who was ever given a role in the room, in no particular order.
    pub fn people(&self) -> impl Iterator<Item = &Person> {
        self.roles.keys()
    }

    /// Whether `person` may read the room at all: anyone an open room, only its members an
    /// invite-only one (its founder, and whoever holds a role now; a kick ends it).
    pub fn may_read_room(&self, person: &Person) -> bool {
        let Some(settings) = self.settings_at(None) else {
            return false;
        };
        settings.access != Access::InviteOnly
            || self.is_founder(person)
            || self
                .roles
                .get(person)
                .and_then(|changes| changes.last())
                .is_some_and(|(_, r)| *r >= Role::Member)
    }

    /// Whether the room shows `person` the message `id`: never if they may not read the room
    /// ([`Authority::may_read_room`]); in an invite-only room with `SinceInvited` history
    /// (see [`crate::History`]), only what was written after they were first given a role
    /// (owners and moderators see everything); otherwise always.
    pub fn may_read(&self, person: &Person, id: &ItemId) -> bool {
        if !self.may_read_room(person) {
            return false;
        }
        let Some(settings) = self.settings_at(None) else {
            return false;
        };
        if settings.access != Access::InviteOnly
            || settings.history == crate::format::History::Whole
            || self.is_founder(person)
        {
            return true;
        }
        let Some(changes) = self.roles.get(person) else {
            return false;
        };
        if changes.last().is_some_and(|(_, r)| *r >= Role::Moderator) {
            return true;
        }
        changes
            .iter()
            .find(|(_, r)| *r >= Role::Member)
            .is_some_and(|(given, _)| given < id)
    }

    /// The founder, once the room is known.
    pub fn founder(&self) -> Option<&Person> {
        self.genesis.as_ref().map(|(_, p)| p)
    }

    /// The settings in force just before `at` (the latest, for `None`).
    pub fn settings_at(&self, at: Option<&ItemId>) -> Option<&RoomSettings> {
        let n = match at {
            Some(at) => self.settings.partition_point(|(id, _)| id < at),
            None => self.settings.len(),
        };
        n.checked_sub(1).map(|i| &self.settings[i].1)
    }

    /// The role of `person` just before `at`.
    pub fn role_at(&self, person: &Person, at: &ItemId) -> Role {
        if self
            .genesis
            .as_ref()
            .is_some_and(|(g, p)| p == person && g < at)
        {
            return Role::Owner;
        }
        self.roles
            .get(person)
            .and_then(|changes| last_before(changes, at))
            .map_or(Role::None, |(_, r)| *r)
    }

    /// The ban in force on `person` just before `at`, with when and why.
    pub fn ban_at(&self, person: &Person, at: &ItemId) -> Option<(&EventId, &str)> {
        let (id, reason) = self.bans.get(person).and_then(|b| last_before(b, at))?;
        reason.as_deref().map(|r| (id, r))
    }

    fn takes_part(&self, server: &archive_core::PublicKey, at: &ItemId) -> Result<(), Denial> {
        let founder = self.genesis.as_ref().map(|(_, p)| p.server);
        let listed = self
            .settings_at(Some(at))
            .is_some_and(|s| s.servers.contains(server));
        if founder == Some(*server) || listed {
            Ok(())
        } else {
            Err(Denial(format!(
                "server {} does not take part in this room",
                &server.to_hex()[..8]
            )))
        }
    }

    /// Whether `author` may post the message `id` (its id names its author and time).
    pub fn may_post(&self, id: &ItemId) -> Result<(), Denial> {
        let author = &id.author;
        if !self.exists() {
            return Err(Denial("the room is not known here yet".into()));
        }
        self.takes_part(&author.server, id)?;
        if let Some((since, reason)) = self.ban_at(author, id) {
            return Err(Denial(format!(
                "{author} has been banned since {}: {reason}",
                since.time
            )));
        }
        let invite_only = self
            .settings_at(Some(id))
            .is_some_and(|s| s.access == Access::InviteOnly);
        if invite_only && self.role_at(author, id) < Role::Member {
            return Err(Denial(format!(
                "{author} may not write in this invite-only room"
            )));
        }
        Ok(())
    }

    /// Whether `by` may delete a message of `owner` at `at` (the deletion's own time and
    /// signer): its owner always, a moderator or owner of the room otherwise.
    pub fn may_delete(&self, by: &ItemId, owner: &Person) -> Result<(), Denial> {
        if &by.author == owner {
            return Ok(());
        }
        self.takes_part(&by.author.server, by)?;
        need(
            self.role_at(&by.author, by),
            Role::Moderator,
            &by.author,
            &format!("delete a message of {owner}"),
        )
    }

    /// Events that did not count, and why.
    pub fn ignored(&self) -> &[(EventId, String)] {
        &self.ignored
    }

    /// How many events were folded.
    pub fn events(&self) -> usize {
        self.events
    }
}

fn need(power: Role, needed: Role, signer: &Person, what: &str) -> Result<(), Denial> {
    if power >= needed {
        Ok(())
    } else {
        Err(Denial(format!(
            "{signer} {} here and may not {what} (that needs {})",
            power.described(),
            needed.named()
        )))
    }
}

fn last_before<'a, T>(changes: &'a [(ItemId, T)], at: &ItemId) -> Option<&'a (ItemId, T)> {
    let n = changes.partition_point(|(id, _)| id < at);
    n.checked_sub(1).map(|i| &changes[i])
}
