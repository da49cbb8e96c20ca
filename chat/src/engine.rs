//! [`Chat`]: the messenger on one server's store.

use std::collections::BTreeMap;
use std::sync::Arc;

use archive_core::sync::SyncKey;
use archive_core::{Collection, MessageFields, PublicKey, SignedEntry, Store, ViewPoint};

use crate::authority::Authority;
use crate::error::ChatError;
use crate::format::{Event, MessageBody, RoomSettings, MAX_REACTION_LEN};
use crate::names::{ChatKey, EventId, ItemId, MessageId, Person, RoomId, COLLECTION_PREFIX};
use crate::rules::RoomRules;

/// A message as a room shows it: its latest version, with the reactions it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Its id: author and time, and its place in the room's order.
    pub id: MessageId,
    /// The text of its latest version.
    pub text: String,
    /// The message it answers.
    pub reply_to: Option<MessageId>,
    /// Whether the text was edited.
    pub edited: bool,
    /// Reactions, each with the people who gave it (sorted).
    pub reactions: BTreeMap<String, Vec<Person>>,
}

/// The messenger on one server: rooms, messages and their authority, kept as entries of the
/// server's archive store (see ARCHITECTURE.md, "The messenger").
///
/// The server signs for its people: every call names the account of this server it acts for.
/// Creating a `Chat` adds the room rules to the store, so from then on the store keeps only
/// chat entries that pass them, written here or received.
#[derive(Debug, Clone)]
pub struct Chat {
    store: Arc<Store>,
    rules: Arc<RoomRules>,
}

impl Chat {
    /// The messenger on `store`.
    pub fn new(store: Arc<Store>) -> Chat {
        let rules = Arc::new(RoomRules::default());
        store.add_rules(COLLECTION_PREFIX, rules.clone());
        Chat { store, rules }
    }

    /// The store.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// This server's key: its people are `account@` it.
    pub fn server(&self) -> PublicKey {
        self.store.author()
    }

    /// The person `account` of this server.
    pub fn person(&self, account: &str) -> Person {
        Person::new(self.server(), account)
    }

    /// Creates a room founded by `account`, who becomes its owner.
    pub fn create_room(&self, account: &str, settings: RoomSettings) -> Result<RoomId, ChatError> {
        let mut nonce = [0; 8];
        getrandom::fill(&mut nonce)
            .map_err(|e| ChatError::Invalid(format!("no randomness: {e}")))?;
        let room = RoomId {
            founder: self.server(),
            nonce,
        };
        self.post_event(&room, account, &Event::Settings(settings))?;
        Ok(room)
    }

    /// Writes an authority event as `account`: new settings, a role, a ban or its lifting.
    /// Refused when `account` may not make it (see [`Authority`]).
    pub fn post_event(
        &self,
        room: &RoomId,
        account: &str,
        event: &Event,
    ) -> Result<EventId, ChatError> {
        event.check().map_err(|e| ChatError::Invalid(e.0))?;
        let id = self.new_id(account)?;
        // The fold would ignore an event its signer may not make; refuse it here instead.
        let mut events = self.rules.events(&self.store, room)?;
        events.push((id.clone(), event.clone()));
        let trial = Authority::fold(room, events);
        if let Some((_, why)) = trial.ignored().iter().find(|(e, _)| *e == id) {
            return Err(ChatError::NotAllowed(why.clone()));
        }
        let collection = self.store.collection(&room.authority_collection())?;
        collection.write_message(
            &id.event_key(),
            Some(&event.encode()),
            &self.fields(account),
        )?;
        Ok(id)
    }

    /// Sends a message as `account`.
    pub fn send(
        &self,
        room: &RoomId,
        account: &str,
        body: &MessageBody,
    ) -> Result<MessageId, ChatError> {
        body.check().map_err(|e| ChatError::Invalid(e.0))?;
        self.known(room)?;
        let id = self.new_id(account)?;
        self.messages_collection(room)?.write_message(
            &id.message_key(),
            Some(&body.encode()),
            &self.fields(account),
        )?;
        Ok(id)
    }

    /// Replaces the text of a message of `account` (only its author edits a message). Returns
    /// the key of the version written: of a message's versions, every server shows the one
    /// with the greatest key (its time, then its entry id).
    pub fn edit(
        &self,
        room: &RoomId,
        account: &str,
        message: &MessageId,
        text: &str,
    ) -> Result<SyncKey, ChatError> {
        if message.author != self.person(account) {
            return Err(ChatError::NotAllowed(format!(
                "{} cannot edit a message of {}",
                self.person(account),
                message.author
            )));
        }
        let collection = self.messages_collection(room)?;
        let current = collection
            .get(&message.message_key())?
            .ok_or_else(|| ChatError::NoSuchMessage(message.message_key()))?;
        let mut body = self.read_body(&current.file)?;
        body.text = text.to_owned();
        body.check().map_err(|e| ChatError::Invalid(e.0))?;
        let fields = MessageFields {
            edit_of: Some(current.entry_key()),
            ..self.fields(account)
        };
        written(collection.write_message(&message.message_key(), Some(&body.encode()), &fields)?)
    }

    /// Deletes a message: its author, or a moderator of the room. Every server that takes the
    /// deletion stops showing the message, and its text goes at the next `gc`. Returns the
    /// key of the deletion (see [`Chat::edit`]: an edit with a greater key than a deletion
    /// shows the message again).
    pub fn delete(
        &self,
        room: &RoomId,
        account: &str,
        message: &MessageId,
    ) -> Result<SyncKey, ChatError> {
        self.known(room)?;
        let written_now = self.messages_collection(room)?.write_message(
            &message.message_key(),
            None,
            &self.fields(account),
        )?;
        written(written_now)
    }

    /// Adds (`on`) or takes back a reaction of `account` to a message.
    pub fn react(
        &self,
        room: &RoomId,
        account: &str,
        message: &MessageId,
        reaction: &str,
        on: bool,
    ) -> Result<(), ChatError> {
        if reaction.is_empty()
            || reaction.len() > MAX_REACTION_LEN
            || reaction.chars().any(char::is_control)
        {
            return Err(ChatError::Invalid(format!(
                "a reaction is 1 to {MAX_REACTION_LEN} bytes of text"
            )));
        }
        self.known(room)?;
        let key = ChatKey::Reaction {
            message: message.clone(),
            by: self.person(account),
            reaction: reaction.to_owned(),
        };
        let content: Option<&[u8]> = if on { Some(b"") } else { None };
        self.messages_collection(room)?.write_message(
            &key.to_key(),
            content,
            &self.fields(account),
        )?;
        Ok(())
    }

    /// The room's authority as this server knows it now.
    pub fn authority(&self, room: &RoomId) -> Result<Arc<Authority>, ChatError> {
        self.rules.authority(&self.store, room)
    }

    /// Every message of the room, in the room's order (time, server, account): the latest
    /// version of each, without the deleted ones and without any whose author was not
    /// allowed to post it by the authority as known now.
    pub fn messages(&self, room: &RoomId) -> Result<Vec<Message>, ChatError> {
        let authority = self.authority(room)?;
        let collection = self.messages_collection(room)?;
        let mut reactions: BTreeMap<MessageId, BTreeMap<String, Vec<Person>>> = BTreeMap::new();
        for item in collection.list(ViewPoint::Current, "r")? {
            let item = item?;
            if let Some(ChatKey::Reaction {
                message,
                by,
                reaction,
            }) = ChatKey::parse(&item.key)
            {
                let at = ItemId {
                    time: item.time,
                    author: by.clone(),
                };
                if authority.may_post(&at).is_ok() {
                    reactions
                        .entry(message)
                        .or_default()
                        .entry(reaction)
                        .or_default()
                        .push(by);
                }
            }
        }
        let mut out = Vec::new();
        for item in collection.list(ViewPoint::Current, "m")? {
            let item = item?;
            let Some(ChatKey::Message(id)) = ChatKey::parse(&item.key) else {
                continue;
            };
            if authority.may_post(&id).is_err() {
                continue;
            }
            let Ok(body) = self.read_body(&item.file) else {
                continue;
            };
            let mut reacted = reactions.remove(&id).unwrap_or_default();
            for people in reacted.values_mut() {
                people.sort();
            }
            out.push(Message {
                edited: item.message.edit_of.is_some(),
                id,
                text: body.text,
                reply_to: body.reply_to,
                reactions: reacted,
            });
        }
        Ok(out)
    }

    fn read_body(&self, file: &archive_core::FileRef) -> Result<MessageBody, ChatError> {
        let mut bytes = Vec::new();
        self.store.blobs().write_to(file, &mut bytes)?;
        MessageBody::decode(&bytes).map_err(|e| ChatError::Invalid(e.0))
    }

    fn known(&self, room: &RoomId) -> Result<(), ChatError> {
        if self.authority(room)?.exists() {
            Ok(())
        } else {
            Err(ChatError::NoSuchRoom(room.to_string()))
        }
    }

    fn messages_collection(&self, room: &RoomId) -> Result<Collection<'_>, ChatError> {
        Ok(self.store.collection(&room.messages_collection())?)
    }

    fn new_id(&self, account: &str) -> Result<ItemId, ChatError> {
        archive_core::validate_person(account)?;
        Ok(ItemId {
            time: self.store.next_time(),
            author: self.person(account),
        })
    }

    fn fields(&self, account: &str) -> MessageFields {
        MessageFields {
            person: Some(account.to_owned()),
            ..MessageFields::default()
        }
    }
}

/// The key of the entry a write made; a write that changed nothing (an edit to the same
/// text) is refused.
fn written(entry: Option<SignedEntry>) -> Result<SyncKey, ChatError> {
    entry
        .map(|e| e.sync_key())
        .ok_or_else(|| ChatError::Invalid("nothing changed: the message already says that".into()))
}
