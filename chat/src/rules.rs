//! The rules every server applies to a room's entries before keeping them (installed with
//! [`archive_core::Store::add_rules`] for every collection under `chat/`), and the cache of
//! each room's folded authority they judge by.
//!
//! Two kinds of rule. Those that depend on the entry alone are *lasting*: the key must be a
//! chat key of the right collection; a message, reaction or event must be signed by the server
//! its key names and carry the account its key names (so no server can write as a person it
//! does not host); sizes keep their limits. Those that depend on the room's authority (a ban,
//! a role, which servers take part) hold *for now*: the entry is refused and forgotten, and
//! taken when a peer offers it again if the authority then allows it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use archive_core::{EntryRules, EntryValue, RuleBreach, SignedEntry, Store};

use crate::authority::Authority;
use crate::blocklist::{blocklist_of, read_blocked, Blocked, FOLLOWS_COLLECTION};
use crate::error::ChatError;
use crate::format::{Event, MessageBody, MAX_EVENT_BODY, MAX_MESSAGE_BODY};
use crate::names::{ChatKey, EventId, ItemId, Person, RoomId, RoomPart};

/// What a server knows of one room's authority, and how far into the authority collection's
/// arrivals it has read.
#[derive(Debug, Default)]
struct Known {
    /// False until read, and again once the authority collection took new entries (the
    /// store's watcher says so): only then are its arrivals read again.
    fresh: bool,
    next: u64,
    events: Vec<(EventId, Event)>,
    authority: Arc<Authority>,
}

/// The rules of the messenger's collections (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct RoomRules {
    rooms: Mutex<HashMap<RoomId, Known>>,
    /// Who is blocked here, read again after a blocklist or the follows changed.
    blocked: Mutex<Option<Arc<Blocked>>>,
}

impl RoomRules {
    /// The room's authority, folded from every event this store holds (read incrementally:
    /// only events that arrived since the last call are read).
    pub(crate) fn authority(
        &self,
        store: &Store,
        room: &RoomId,
    ) -> Result<Arc<Authority>, ChatError> {
        self.with_known(store, room, |known| Arc::clone(&known.authority))
    }

    /// The room's authority events this store holds (valid or not), in arrival order.
    pub(crate) fn events(
        &self,
        store: &Store,
        room: &RoomId,
    ) -> Result<Vec<(EventId, Event)>, ChatError> {
        self.with_known(store, room, |known| known.events.clone())
    }

    /// The store took new entries into `collection`: if it is a room's authority, its
    /// cached fold is read again when next needed.
    pub(crate) fn collection_changed(&self, collection: &str) {
        if blocklist_of(collection).is_some() || collection == FOLLOWS_COLLECTION {
            *self
                .blocked
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
            return;
        }
        if let Some((room, RoomPart::Authority)) = RoomId::of_collection(collection) {
            let mut rooms = self
                .rooms
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(known) = rooms.get_mut(&room) {
                known.fresh = false;
            }
        }
    }

    /// Who is blocked on this server (its own list and those it follows).
    pub(crate) fn blocked(&self, store: &Store) -> Result<Arc<Blocked>, ChatError> {
        let mut cached = self
            .blocked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(blocked) = &*cached {
            return Ok(blocked.clone());
        }
        let blocked = Arc::new(read_blocked(store, &store.author())?);
        *cached = Some(blocked.clone());
        Ok(blocked)
    }

    /// The room's authority, and the point of the room's order `entry` is judged at: its
    /// time, as written by `signer` (an edit or deletion is judged when it was made).
    fn judged_at(
        &self,
        store: &Store,
        room: &RoomId,
        entry: &SignedEntry,
        signer: Person,
    ) -> Result<(Arc<Authority>, ItemId), RuleBreach> {
        let authority = self
            .authority(store, room)
            .map_err(|err| RuleBreach::for_now(err.to_string()))?;
        let at = ItemId {
            time: entry.entry().time,
            author: signer,
        };
        Ok((authority, at))
    }

    /// A for-now breach if `person` is blocked here.
    fn not_blocked(&self, store: &Store, person: &Person) -> Result<(), RuleBreach> {
        let blocked = self
            .blocked(store)
            .map_err(|err| RuleBreach::for_now(err.to_string()))?;
        match blocked.get(person) {
            Some((list, reason)) => Err(RuleBreach::for_now(format!(
                "{person} is on the blocklist of {}: {reason}",
                &list.to_hex()[..8]
            ))),
            None => Ok(()),
        }
    }

    fn with_known<T>(
        &self,
        store: &Store,
        room: &RoomId,
        read: impl FnOnce(&Known) -> T,
    ) -> Result<T, ChatError> {
        let collection = store.collection(&room.authority_collection())?;
        let mut rooms = self
            .rooms
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let known = rooms.entry(*room).or_default();
        if known.fresh {
            return Ok(read(known));
        }
        // Marked before reading: an arrival committed while we read marks it stale again.
        known.fresh = true;
        let mut changed = false;
        loop {
            let page = collection.arrivals(known.next, 1024)?;
            if page.entries.is_empty() {
                break;
            }
            known.next = page.next;
            for entry in page.entries {
                if let Some(event) = read_event(store, &entry) {
                    known.events.push(event);
                    changed = true;
                }
            }
        }
        if changed {
            known.authority = Arc::new(Authority::fold(room, known.events.iter().cloned()));
        }
        Ok(read(known))
    }
}

/// An authority entry's event, if its key, signer and content are all right (the rules kept
/// out every entry whose key or signer is wrong; content is checked here).
fn read_event(store: &Store, entry: &SignedEntry) -> Option<(EventId, Event)> {
    let Some(ChatKey::Event(id)) = ChatKey::parse(&entry.entry().key) else {
        return None;
    };
    let EntryValue::File(file) = entry.entry().value else {
        return None;
    };
    if file.size > MAX_EVENT_BODY {
        return None;
    }
    let mut bytes = Vec::new();
    store.blobs().write_to(&file, &mut bytes).ok()?;
    Some((id, Event::decode(&bytes).ok()?))
}

/// Whoever signed an entry: its server and the account it carries.
fn signer(entry: &SignedEntry) -> Result<Person, RuleBreach> {
    let e = entry.entry();
    let account = e.message.person.as_deref().ok_or_else(|| {
        RuleBreach::lasting("it names no person (every chat entry is a person's)")
    })?;
    Ok(Person::new(e.author, account))
}

fn written_by(entry: &SignedEntry, owner: &Person, what: &str) -> Result<(), RuleBreach> {
    let by = signer(entry)?;
    if &by != owner {
        return Err(RuleBreach::lasting(format!(
            "{by} cannot write {what} of {owner} (a server writes only for its own people)"
        )));
    }
    Ok(())
}

/// A File's content, when it is in the store already (after a fetch, or written here).
fn content_if_here(store: &Store, entry: &SignedEntry) -> Option<Vec<u8>> {
    let EntryValue::File(file) = entry.entry().value else {
        return None;
    };
    let mut bytes = Vec::new();
    store.blobs().write_to(&file, &mut bytes).ok()?;
    Some(bytes)
}

fn size_at_most(entry: &SignedEntry, limit: u64, what: &str) -> Result<(), RuleBreach> {
    if let EntryValue::File(file) = entry.entry().value {
        if file.size > limit || file.manifest.is_some() {
            return Err(RuleBreach::lasting(format!(
                "{what} of {} bytes is larger than the limit of {limit}",
                file.size
            )));
        }
    }
    Ok(())
}

fn for_now(denial: crate::authority::Denial) -> RuleBreach {
    RuleBreach::for_now(denial.0)
}

impl EntryRules for RoomRules {
    fn check(&self, store: &Store, entry: &SignedEntry) -> Result<(), RuleBreach> {
        let e = entry.entry();
        if let Some(server) = crate::names::directory_of(&e.collection) {
            return crate::people::check_directory_entry(store, &server, entry);
        }
        if let Some(server) = blocklist_of(&e.collection) {
            return crate::blocklist::check_blocklist_entry(store, &server, entry);
        }
        let (room, part) = RoomId::of_collection(&e.collection)
            .ok_or_else(|| RuleBreach::lasting("not a room's collection"))?;
        let key = ChatKey::parse(&e.key)
            .ok_or_else(|| RuleBreach::lasting(format!("`{}` is not a chat key", e.key)))?;
        if e.value == EntryValue::Folder {
            return Err(RuleBreach::lasting("a room holds no folders"));
        }
        let signed_by = signer(entry)?;
        match (part, key) {
            (RoomPart::Authority, ChatKey::Event(id)) => {
                written_by(entry, &id.author, "an event")?;
                if e.value == EntryValue::Tombstone {
                    return Err(RuleBreach::lasting("an authority event cannot be removed"));
                }
                not_before(&id, entry)?;
                size_at_most(entry, MAX_EVENT_BODY, "an event")?;
                if let Some(bytes) = content_if_here(store, entry) {
                    Event::decode(&bytes).map_err(|err| RuleBreach::lasting(err.0))?;
                }
                Ok(())
            }
            (RoomPart::Messages, ChatKey::Message(id)) => {
                not_before(&id, entry)?;
                let (authority, at) = self.judged_at(store, &room, entry, signed_by)?;
                if e.value == EntryValue::Tombstone {
                    return authority.may_delete(&at, &id.author).map_err(for_now);
                }
                written_by(entry, &id.author, "a message")?;
                size_at_most(entry, MAX_MESSAGE_BODY, "a message")?;
                self.not_blocked(store, &id.author)?;
                if let Some(bytes) = content_if_here(store, entry) {
                    MessageBody::decode(&bytes).map_err(|err| RuleBreach::lasting(err.0))?;
                }
                // Posted while allowed, and edited while allowed.
                authority.may_post(&id).map_err(for_now)?;
                authority.may_post(&at).map_err(for_now)
            }
            (RoomPart::Messages, ChatKey::Reaction { by, .. }) => {
                written_by(entry, &by, "a reaction")?;
                size_at_most(entry, 0, "a reaction")?;
                self.not_blocked(store, &by)?;
                let (authority, at) = self.judged_at(store, &room, entry, by)?;
                authority.may_post(&at).map_err(for_now)
            }
            (RoomPart::Files, ChatKey::Attachment { message, .. }) => {
                // Written just before its message, by the message's author (any size: the
                // peer's quotas bound it); deleted with it, by whoever may delete it.
                not_before(&message, entry)?;
                let (authority, at) = self.judged_at(store, &room, entry, signed_by)?;
                if e.value == EntryValue::Tombstone {
                    return authority.may_delete(&at, &message.author).map_err(for_now);
                }
                written_by(entry, &message.author, "an attachment")?;
                self.not_blocked(store, &message.author)?;
                authority.may_post(&message).map_err(for_now)
            }
            (RoomPart::Files, _) => Err(RuleBreach::lasting(format!(
                "`{}` is not an attachment key",
                e.key
            ))),
            (_, ChatKey::Attachment { .. }) => Err(RuleBreach::lasting(format!(
                "`{}` is an attachment key outside the room's files",
                e.key
            ))),
            (RoomPart::Authority, _) => Err(RuleBreach::lasting(format!(
                "`{}` is not an authority key",
                e.key
            ))),
            (RoomPart::Messages, ChatKey::Event(_)) => Err(RuleBreach::lasting(format!(
                "`{}` is an authority key in the messages",
                e.key
            ))),
        }
    }
}

/// An item's id cannot be later than the entry that first writes it.
fn not_before(id: &ItemId, entry: &SignedEntry) -> Result<(), RuleBreach> {
    if id.time > entry.entry().time {
        return Err(RuleBreach::lasting(format!(
            "its id is dated {}, after the entry that wrote it ({})",
            id.time,
            entry.entry().time
        )));
    }
    Ok(())
}
