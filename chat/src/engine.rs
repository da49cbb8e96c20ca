//! [`Chat`]: the messenger on one server's store.

use std::collections::BTreeMap;
use std::sync::Arc;

use archive_core::sync::SyncKey;
use archive_core::{Collection, MessageFields, PublicKey, SignedEntry, Store, ViewPoint};

use crate::authority::Authority;
use crate::error::ChatError;
use crate::format::{Event, MessageBody, RoomSettings, MAX_REACTION_LEN};
use crate::names::{
    ChatKey, EventId, ItemId, MessageId, Person, RoomId, RoomPart, COLLECTION_PREFIX,
};
use crate::pace::{PacePolicy, Pacer};
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
    /// Its attachments' previews (see [`Chat::attachment`]).
    pub attachments: Vec<crate::format::Attachment>,
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
    /// Woken after every commit that brought a chat collection new entries.
    changed: Arc<tokio::sync::Notify>,
    /// How fast this server's people may write.
    pace: Arc<std::sync::Mutex<Pacer>>,
}

impl Chat {
    /// The messenger on `store`.
    pub fn new(store: Arc<Store>) -> Chat {
        let rules = Arc::new(RoomRules::default());
        store.add_rules(COLLECTION_PREFIX, rules.clone());
        let changed = Arc::new(tokio::sync::Notify::new());
        let wake = changed.clone();
        let stale = rules.clone();
        store.watch_new_entries(Arc::new(move |collection: &str| {
            if collection.starts_with(COLLECTION_PREFIX) {
                stale.collection_changed(collection);
                wake.notify_waiters();
            } else if collection == crate::blocklist::FOLLOWS_COLLECTION {
                stale.collection_changed(collection);
            }
        }));
        Chat {
            store,
            rules,
            changed,
            pace: Arc::default(),
        }
    }

    /// Sets how fast this server's people may write (see [`PacePolicy`]; the default until
    /// called).
    pub fn set_pace(&self, policy: PacePolicy) {
        self.pacer().set_policy(policy);
    }

    fn pacer(&self) -> std::sync::MutexGuard<'_, Pacer> {
        self.pace
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts `n` writes of `account` against the pace, or says how long it must wait;
    /// the fields its entries carry when it may write (one read of its account for both).
    pub(crate) fn paced(&self, account: &str, n: usize) -> Result<MessageFields, ChatError> {
        let profile = self.existing(account)?.profile;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let age =
            std::time::Duration::from_millis(now_ms.saturating_sub(profile.joined.unix_millis()));
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        self.pacer()
            .admit(account, profile.role, age, n, std::time::Instant::now())
            .map_err(|wait| ChatError::TooFast {
                account: account.to_owned(),
                wait,
            })?;
        Ok(account_fields(account))
    }

    /// Woken after every commit that brought a chat collection new entries.
    pub(crate) fn changes(&self) -> Arc<tokio::sync::Notify> {
        self.changed.clone()
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
        if let (Event::SetRole { person, role }, Some((founder, other))) =
            (event, self.direct_partner(room)?)
        {
            if *role != crate::format::Role::None && person != &founder && person != &other {
                return Err(ChatError::NotAllowed(
                    "a direct room stays between its two people".into(),
                ));
            }
        }
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
            &self.fields(account)?,
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
        let fields = self.paced(account, 1)?;
        let id = self.new_id(account)?;
        self.messages_collection(room)?.write_message(
            &id.message_key(),
            Some(&body.encode()),
            &fields,
        )?;
        Ok(id)
    }

    /// Sends many messages as `account` in one commit, in order (an import, or a bridge
    /// catching up): one write instead of one per message. All are sent, or none.
    pub fn send_many(
        &self,
        room: &RoomId,
        account: &str,
        bodies: &[MessageBody],
    ) -> Result<Vec<MessageId>, ChatError> {
        for body in bodies {
            body.check().map_err(|e| ChatError::Invalid(e.0))?;
        }
        self.known(room)?;
        let fields = self.paced(account, bodies.len())?;
        let mut ids = Vec::with_capacity(bodies.len());
        let mut items = Vec::with_capacity(bodies.len());
        for body in bodies {
            let id = self.new_id(account)?;
            items.push((id.message_key(), body.encode()));
            ids.push(id);
        }
        let items: Vec<(&str, &[u8])> = items
            .iter()
            .map(|(key, body)| (key.as_str(), body.as_slice()))
            .collect();
        self.messages_collection(room)?
            .write_messages(&items, &fields)?;
        Ok(ids)
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
        let fields = self.paced(account, 1)?;
        let collection = self.messages_collection(room)?;
        let current = collection
            .get(&message.message_key())?
            .ok_or_else(|| ChatError::NoSuchMessage(message.message_key()))?;
        let mut body = self.read_body(&current.file)?;
        body.text = text.to_owned();
        body.check().map_err(|e| ChatError::Invalid(e.0))?;
        let fields = MessageFields {
            edit_of: Some(current.entry_key()),
            ..fields
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
        let attachments = match self.message(room, message)? {
            Some(shown) => shown.attachments.len(),
            None => 0,
        };
        let fields = self.fields(account)?;
        let written_now =
            self.messages_collection(room)?
                .write_message(&message.message_key(), None, &fields)?;
        // Its attachments go with it here (other servers drop theirs at `Chat::gc`).
        let files = self.store.collection(&room.files_collection())?;
        for index in 0..attachments {
            let key = ChatKey::Attachment {
                message: message.clone(),
                index: index as u8,
            };
            files.write_message(&key.to_key(), None, &fields)?;
        }
        written(written_now)
    }

    /// Sends a message with files as `account`: each file becomes an entry of the room's
    /// files (any size; other servers fetch it when someone opens it), the message carries
    /// their previews. The files are written first, so a message never names a file its
    /// server does not hold.
    pub fn send_with_files(
        &self,
        room: &RoomId,
        account: &str,
        text: &str,
        reply_to: Option<MessageId>,
        files: &[(&str, &[u8])],
    ) -> Result<MessageId, ChatError> {
        let mut body = MessageBody {
            text: text.to_owned(),
            reply_to,
            attachments: files
                .iter()
                .map(|(name, data)| crate::format::Attachment {
                    name: (*name).to_owned(),
                    size: data.len() as u64,
                    hash: archive_core::Hash::of(b""),
                    entry: SyncKey::default(),
                })
                .collect(),
        };
        body.check().map_err(|e| ChatError::Invalid(e.0))?;
        self.known(room)?;
        let fields = self.paced(account, 1)?;
        let id = self.new_id(account)?;
        let keys: Vec<String> = (0..files.len())
            .map(|index| {
                ChatKey::Attachment {
                    message: id.clone(),
                    index: index as u8,
                }
                .to_key()
            })
            .collect();
        let items: Vec<(&str, &[u8])> = keys
            .iter()
            .zip(files)
            .map(|(key, (_, data))| (key.as_str(), *data))
            .collect();
        let written = self
            .store
            .collection(&room.files_collection())?
            .write_messages(&items, &fields)?;
        for (attachment, key) in body.attachments.iter_mut().zip(&keys) {
            let entry = written
                .iter()
                .find(|e| &e.entry().key == key)
                .ok_or_else(|| ChatError::Invalid(format!("attachment {key} was not written")))?;
            if let archive_core::EntryValue::File(file) = &entry.entry().value {
                attachment.hash = file.hash;
            }
            attachment.entry = entry.sync_key();
        }
        self.messages_collection(room)?.write_message(
            &id.message_key(),
            Some(&body.encode()),
            &fields,
        )?;
        Ok(id)
    }

    /// The content of attachment `index` of `message`, if this server holds it (an attachment
    /// written elsewhere is here once fetched: `Delivery::fetch_attachment`).
    pub fn attachment(
        &self,
        room: &RoomId,
        message: &MessageId,
        index: u8,
    ) -> Result<Option<Vec<u8>>, ChatError> {
        let key = ChatKey::Attachment {
            message: message.clone(),
            index,
        };
        let files = self.store.collection(&room.files_collection())?;
        let Some(item) = files.get(&key.to_key())? else {
            return Ok(None);
        };
        let mut bytes = Vec::new();
        self.store.blobs().write_to(&item.file, &mut bytes)?;
        Ok(Some(bytes))
    }

    /// Drops the attachments of deleted messages that this server fetched (their deletion
    /// reached it through the messages; the files are never synced as a whole), then
    /// collects the store's garbage: after it, a deleted message's text and files are gone.
    pub fn gc(&self) -> Result<archive_core::GcReport, ChatError> {
        for room in self.rooms()? {
            let files = self.store.collection(&room.files_collection())?;
            let messages = self.messages_collection(&room)?;
            let mut orphans = Vec::new();
            for item in files.list(ViewPoint::Current, "f")? {
                let item = item?;
                if let Some(ChatKey::Attachment { message, .. }) = ChatKey::parse(&item.key) {
                    if messages.get(&message.message_key())?.is_none() {
                        orphans.push(item.entry_key());
                    }
                }
            }
            if !orphans.is_empty() {
                self.store
                    .transfer()
                    .deny_entries(&orphans, archive_core::DenyReason::Purged)?;
            }
        }
        Ok(self.store.gc()?)
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
        let fields = self.paced(account, 1)?;
        let key = ChatKey::Reaction {
            message: message.clone(),
            by: self.person(account),
            reaction: reaction.to_owned(),
        };
        let content: Option<&[u8]> = if on { Some(b"") } else { None };
        self.messages_collection(room)?
            .write_message(&key.to_key(), content, &fields)?;
        Ok(())
    }

    /// The rooms this store holds (any it founded or took from a peer), in order.
    pub fn rooms(&self) -> Result<Vec<RoomId>, ChatError> {
        let names = self.store.collection_names()?;
        Ok(names
            .iter()
            .filter_map(|name| match RoomId::of_collection(name) {
                Some((room, RoomPart::Authority)) => Some(room),
                _ => None,
            })
            .collect())
    }

    /// The servers that take part in `room` besides this one: the founder's and those its
    /// settings name. Live delivery syncs the room with those of them that are paired.
    pub fn sharing(&self, room: &RoomId) -> Result<Vec<PublicKey>, ChatError> {
        let authority = self.authority(room)?;
        let mut servers = vec![room.founder];
        if let Some(settings) = authority.settings_at(None) {
            servers.extend(settings.servers.iter().copied());
        }
        servers.sort_by_key(|s| *s.as_bytes());
        servers.dedup();
        servers.retain(|s| *s != self.server());
        Ok(servers)
    }

    /// Who is blocked here (this server's blocklist and those it follows).
    pub(crate) fn blocked_people(&self) -> Result<Arc<crate::blocklist::Blocked>, ChatError> {
        self.rules.blocked(&self.store)
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
        let mut reactions = reactions_under(&collection, "r", &authority)?;
        let mut out = Vec::new();
        for item in collection.list(ViewPoint::Current, "m")? {
            let item = item?;
            let Some(ChatKey::Message(id)) = ChatKey::parse(&item.key) else {
                continue;
            };
            let reacted = reactions.remove(&id).unwrap_or_default();
            if let Some(message) = self.shown(&authority, id, &item, reacted) {
                out.push(message);
            }
        }
        Ok(out)
    }

    /// The messages of `room` that the room shows `account` (see [`crate::History`]): what
    /// a person's screen lists.
    pub fn messages_for(&self, account: &str, room: &RoomId) -> Result<Vec<Message>, ChatError> {
        let person = self.person(&self.existing(account)?.name);
        let authority = self.authority(room)?;
        let mut all = self.messages(room)?;
        all.retain(|m| authority.may_read(&person, &m.id));
        Ok(all)
    }

    /// The last `limit` messages of `room` that `account` is shown (as
    /// [`Chat::messages_for`] lists them) before `before`, or the latest ones, oldest first;
    /// and whether earlier ones exist. What a screen shows first: it reads the room's keys
    /// and only these messages' bodies and reactions, so its cost does not grow with the
    /// room's text.
    pub fn latest_messages_for(
        &self,
        account: &str,
        room: &RoomId,
        before: Option<&MessageId>,
        limit: usize,
    ) -> Result<(Vec<Message>, bool), ChatError> {
        let person = self.person(&self.existing(account)?.name);
        let authority = self.authority(room)?;
        let blocked = self.blocked_people()?;
        let collection = self.messages_collection(room)?;
        let limit = limit.max(1);
        // Judged by their keys, as `shown` judges them (the body is read only to be shown).
        let mut window = std::collections::VecDeque::with_capacity(limit + 1);
        let mut earlier = false;
        for item in collection.list(ViewPoint::Current, "m")? {
            let item = item?;
            let Some(ChatKey::Message(id)) = ChatKey::parse(&item.key) else {
                continue;
            };
            if before.is_some_and(|b| &id >= b) {
                break;
            }
            if authority.may_post(&id).is_err()
                || blocked.contains_key(&id.author)
                || !authority.may_read(&person, &id)
            {
                continue;
            }
            window.push_back((id, item));
            if window.len() > limit {
                window.pop_front();
                earlier = true;
            }
        }
        let mut out = Vec::with_capacity(window.len());
        for (id, item) in window {
            let prefix = format!("r/{}", id.key_suffix());
            let reacted = reactions_under(&collection, &prefix, &authority)?
                .remove(&id)
                .unwrap_or_default();
            if let Some(message) = self.shown(&authority, id, &item, reacted) {
                out.push(message);
            }
        }
        Ok((out, earlier))
    }

    /// One message as the room shows it now; `None` if it is not shown (deleted, never
    /// here, or its author was not allowed to post it).
    pub fn message(&self, room: &RoomId, id: &MessageId) -> Result<Option<Message>, ChatError> {
        let authority = self.authority(room)?;
        let collection = self.messages_collection(room)?;
        let Some(item) = collection.get(&id.message_key())? else {
            return Ok(None);
        };
        let prefix = format!("r/{}", id.key_suffix());
        let reacted = reactions_under(&collection, &prefix, &authority)?
            .remove(id)
            .unwrap_or_default();
        Ok(self.shown(&authority, id.clone(), &item, reacted))
    }

    fn shown(
        &self,
        authority: &Authority,
        id: MessageId,
        item: &archive_core::ViewItem,
        reactions: BTreeMap<String, Vec<Person>>,
    ) -> Option<Message> {
        authority.may_post(&id).ok()?;
        if self.blocked_people().ok()?.contains_key(&id.author) {
            return None;
        }
        let body = self.read_body(&item.file).ok()?;
        Some(Message {
            edited: item.message.edit_of.is_some(),
            id,
            text: body.text,
            reply_to: body.reply_to,
            reactions,
            attachments: body.attachments,
        })
    }

    /// What changed in the room since `from`, in the order this server learnt it, at most
    /// about `limit` changes; [`EventPage::resume`] is where the next call starts. A client
    /// that keeps the token across restarts misses nothing and sees nothing twice.
    pub fn events(
        &self,
        room: &RoomId,
        from: ResumeToken,
        limit: usize,
    ) -> Result<EventPage, ChatError> {
        let mut page = EventPage {
            events: Vec::new(),
            resume: from,
        };
        let authority_log = self.store.collection(&room.authority_collection())?;
        let arrived = authority_log.arrivals(from.authority, limit)?;
        if !arrived.entries.is_empty() {
            page.events.push(RoomEvent::Authority);
        }
        page.resume.authority = arrived.next;
        let log = self.messages_collection(room)?;
        let arrived = log.arrivals(from.messages, limit)?;
        page.resume.messages = arrived.next;
        for entry in arrived.entries {
            let event = match ChatKey::parse(&entry.entry().key) {
                Some(ChatKey::Message(id)) => RoomEvent::Message {
                    now: self.message(room, &id)?,
                    id,
                },
                Some(ChatKey::Reaction { message, .. }) => RoomEvent::Reactions {
                    now: self.message(room, &message)?,
                    id: message,
                },
                _ => continue,
            };
            page.events.push(event);
        }
        Ok(page)
    }

    /// Where the room's changes stand now: [`Chat::events`] from here returns only what
    /// changes after this call (a page shown now subscribes from here).
    pub fn resume_now(&self, room: &RoomId) -> Result<ResumeToken, ChatError> {
        Ok(ResumeToken {
            authority: self
                .store
                .collection(&room.authority_collection())?
                .arrivals_end()?,
            messages: self.messages_collection(room)?.arrivals_end()?,
        })
    }

    /// The room's changes from `from` on, as they happen: a stream of pages (see
    /// [`Chat::events`]) that waits for the next change when it has caught up. Written here
    /// or received from a peer, every change comes once, in the order this server learnt it.
    pub fn subscribe(
        &self,
        room: &RoomId,
        from: ResumeToken,
    ) -> impl n0_future::Stream<Item = Result<EventPage, ChatError>> + Send + 'static {
        let chat = self.clone();
        let room = *room;
        n0_future::stream::unfold(Some(from), move |token| {
            let chat = chat.clone();
            async move {
                let mut token = token?;
                loop {
                    let changed = chat.changed.notified();
                    tokio::pin!(changed);
                    // Registered before reading, so a change in between is not missed.
                    changed.as_mut().enable();
                    match chat.events(&room, token, PAGE) {
                        Err(e) => return Some((Err(e), None)),
                        Ok(page) if !page.events.is_empty() => {
                            let next = page.resume;
                            return Some((Ok(page), Some(next)));
                        }
                        Ok(page) => token = page.resume,
                    }
                    changed.await;
                }
            }
        })
    }

    pub(crate) fn read_body(&self, file: &archive_core::FileRef) -> Result<MessageBody, ChatError> {
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

    /// The fields of an entry written for `account`, which must be an account here.
    fn fields(&self, account: &str) -> Result<MessageFields, ChatError> {
        self.existing(account)?;
        Ok(account_fields(account))
    }
}

/// What an entry written for `account` carries.
fn account_fields(account: &str) -> MessageFields {
    MessageFields {
        person: Some(account.to_owned()),
        ..MessageFields::default()
    }
}

/// The key of the entry a write made; a write that changed nothing (an edit to the same
/// text) is refused.
fn written(entry: Option<SignedEntry>) -> Result<SyncKey, ChatError> {
    entry
        .map(|e| e.sync_key())
        .ok_or_else(|| ChatError::Invalid("nothing changed: the message already says that".into()))
}

/// Reactions of the view under `prefix`, per message, each with who gave it (sorted),
/// counting only those whose giver could post at the time.
fn reactions_under(
    collection: &Collection<'_>,
    prefix: &str,
    authority: &Authority,
) -> Result<BTreeMap<MessageId, BTreeMap<String, Vec<Person>>>, ChatError> {
    let mut out: BTreeMap<MessageId, BTreeMap<String, Vec<Person>>> = BTreeMap::new();
    for item in collection.list(ViewPoint::Current, prefix)? {
        let item = item?;
        let Some(ChatKey::Reaction {
            message,
            by,
            reaction,
        }) = ChatKey::parse(&item.key)
        else {
            continue;
        };
        let at = ItemId {
            time: item.time,
            author: by.clone(),
        };
        if authority.may_post(&at).is_ok() {
            out.entry(message)
                .or_default()
                .entry(reaction)
                .or_default()
                .push(by);
        }
    }
    for people in out.values_mut().flat_map(|m| m.values_mut()) {
        people.sort();
    }
    Ok(out)
}

/// Changes a page of a subscription reads at most (per collection).
const PAGE: usize = 256;

/// Where a room's feed of changes resumes: how far into each of the room's two collections'
/// arrivals it has read. Keep it across restarts (its text form, `A.M`, parses back).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct ResumeToken {
    /// Into the authority collection's arrivals.
    pub authority: u64,
    /// Into the messages collection's arrivals.
    pub messages: u64,
}

/// `authority.messages`, as a client keeps it (a web page's `Last-Event-ID`).
impl std::fmt::Display for ResumeToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.authority, self.messages)
    }
}

impl std::str::FromStr for ResumeToken {
    type Err = ChatError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad =
            || ChatError::Invalid(format!("`{s}` is not a resume token (two numbers: `A.M`)"));
        let (a, m) = s.split_once('.').ok_or_else(bad)?;
        Ok(ResumeToken {
            authority: a.parse().map_err(|_| bad())?,
            messages: m.parse().map_err(|_| bad())?,
        })
    }
}

/// One change of a room, in the order this server learnt of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomEvent {
    /// A message was sent, edited or deleted: how it shows now (`None`: not shown).
    Message {
        /// Which message.
        id: MessageId,
        /// Its state now.
        now: Option<Message>,
    },
    /// A message's reactions changed: how it shows now.
    Reactions {
        /// Which message.
        id: MessageId,
        /// Its state now.
        now: Option<Message>,
    },
    /// The room's settings, roles or bans changed: what is shown may have changed anywhere
    /// (a client reads the room again).
    Authority,
}

/// A page of a room's changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventPage {
    /// The changes.
    pub events: Vec<RoomEvent>,
    /// Where the next page starts.
    pub resume: ResumeToken,
}
