//! Blocklists: a community publishes the people it blocks, and another may follow that list.
//! A server refuses messages and reactions of anyone on its own list or on a list it follows
//! (for now: unblocked, they are taken again when offered), and hides what it already holds
//! of them.
//!
//! A community's list is the collection `chat/<server>/blocklist`, written only by that
//! server (lasting rule) and delivered to every peer like its directory; keys
//! `b/<server hex>/<account>` name the person blocked, the content says why; a tombstone
//! lifts the block. Which lists this server follows is its own business:
//! `local/chat/follows`, a key per followed server.

use std::collections::HashMap;

use archive_core::{EntryValue, PublicKey, RuleBreach, SignedEntry, Store, ViewPoint};

use crate::engine::Chat;
use crate::error::ChatError;
use crate::format::{Block, ServerRole, MAX_REPORT_BODY};
use crate::names::{Person, COLLECTION_PREFIX};

/// Which blocklists this server follows.
pub const FOLLOWS_COLLECTION: &str = "local/chat/follows";

/// The collection where `server` publishes its blocklist.
pub fn blocklist_collection(server: &PublicKey) -> String {
    format!("{COLLECTION_PREFIX}{server}/blocklist")
}

/// The server whose blocklist `collection` is, if it is one.
pub fn blocklist_of(collection: &str) -> Option<PublicKey> {
    let rest = collection.strip_prefix(COLLECTION_PREFIX)?;
    let (server, part) = rest.split_once('/')?;
    let server: PublicKey = server.parse().ok()?;
    (part == "blocklist" && blocklist_collection(&server) == collection).then_some(server)
}

fn block_key(person: &Person) -> String {
    format!("b/{}/{}", person.server, person.account)
}

/// The person a blocklist key names (only the spelling `block_key` writes).
fn parse_block_key(key: &str) -> Option<Person> {
    let rest = key.strip_prefix("b/")?;
    let (server, account) = rest.split_once('/')?;
    let server: PublicKey = server.parse().ok()?;
    archive_core::validate_person(account).ok()?;
    let person = Person::new(server, account);
    (block_key(&person) == key).then_some(person)
}

/// Who is blocked here: on this server's list or one it follows, with whose list and why.
pub(crate) type Blocked = HashMap<Person, (PublicKey, String)>;

/// Reads the blocked people of `own` and the lists it follows.
pub(crate) fn read_blocked(store: &Store, own: &PublicKey) -> Result<Blocked, ChatError> {
    let mut lists = vec![*own];
    lists.extend(followed(store)?);
    let mut out = Blocked::new();
    for server in lists {
        for (person, block) in read_list(store, &server)? {
            out.entry(person).or_insert((server, block.reason));
        }
    }
    Ok(out)
}

fn followed(store: &Store) -> Result<Vec<PublicKey>, ChatError> {
    let follows = store.collection(FOLLOWS_COLLECTION)?;
    let mut out = Vec::new();
    for item in follows.list(ViewPoint::Current, "")? {
        if let Ok(server) = item?.key.parse() {
            out.push(server);
        }
    }
    Ok(out)
}

fn read_list(store: &Store, server: &PublicKey) -> Result<Vec<(Person, Block)>, ChatError> {
    let list = store.collection(&blocklist_collection(server))?;
    let mut out = Vec::new();
    for item in list.list(ViewPoint::Current, "b")? {
        let item = item?;
        let Some(person) = parse_block_key(&item.key) else {
            continue;
        };
        let mut bytes = Vec::new();
        store.blobs().write_to(&item.file, &mut bytes)?;
        if let Ok(block) = Block::decode(&bytes) {
            out.push((person, block));
        }
    }
    Ok(out)
}

impl Chat {
    /// Puts `person` on this community's blocklist (by a moderator or admin of this server).
    pub fn block(&self, by: &str, person: &Person, reason: &str) -> Result<(), ChatError> {
        self.moderator(by)?;
        let block = Block {
            reason: reason.to_owned(),
        };
        let encoded = block.encode();
        Block::decode(&encoded).map_err(|e| ChatError::Invalid(e.0))?;
        self.own_list()?.write_message(
            &block_key(person),
            Some(&encoded),
            &self.admin_fields(by),
        )?;
        Ok(())
    }

    /// Takes `person` off this community's blocklist.
    pub fn unblock(&self, by: &str, person: &Person) -> Result<(), ChatError> {
        self.moderator(by)?;
        self.own_list()?
            .write_message(&block_key(person), None, &self.admin_fields(by))?;
        Ok(())
    }

    /// The blocklist `server` publishes, as this server holds it.
    pub fn blocklist(&self, server: &PublicKey) -> Result<Vec<(Person, Block)>, ChatError> {
        read_list(self.store(), server)
    }

    /// Follows (`on`) or stops following the blocklist of `server` (by an admin).
    pub fn follow_blocklist(
        &self,
        by: &str,
        server: &PublicKey,
        on: bool,
    ) -> Result<(), ChatError> {
        if self.existing(by)?.profile.role != ServerRole::Admin {
            return Err(ChatError::NotAllowed(format!("{by} is not an admin")));
        }
        let follows = self.store().collection(FOLLOWS_COLLECTION)?;
        let key = server.to_string();
        if on {
            follows.add_bytes(&key, b"")?;
        } else if follows.get(&key)?.is_some() {
            follows.remove(&[key])?;
        }
        Ok(())
    }

    /// The blocklists this server follows (besides its own).
    pub fn followed_blocklists(&self) -> Result<Vec<PublicKey>, ChatError> {
        followed(self.store())
    }

    /// Whether `person` is blocked here, and by whose list and why.
    pub fn blocked(&self, person: &Person) -> Result<Option<(PublicKey, String)>, ChatError> {
        Ok(self.blocked_people()?.get(person).cloned())
    }

    fn own_list(&self) -> Result<archive_core::Collection<'_>, ChatError> {
        Ok(self
            .store()
            .collection(&blocklist_collection(&self.server()))?)
    }

    fn admin_fields(&self, by: &str) -> archive_core::MessageFields {
        archive_core::MessageFields {
            person: Some(by.to_owned()),
            ..archive_core::MessageFields::default()
        }
    }
}

/// The lasting rules of a blocklist entry: written by the list's own server, a block key,
/// no folders, a reason within its limit.
pub(crate) fn check_blocklist_entry(
    store: &Store,
    server: &PublicKey,
    entry: &SignedEntry,
) -> Result<(), RuleBreach> {
    let e = entry.entry();
    if &e.author != server {
        return Err(RuleBreach::lasting(format!(
            "only {} writes its blocklist",
            &server.to_hex()[..8]
        )));
    }
    if parse_block_key(&e.key).is_none() {
        return Err(RuleBreach::lasting(format!(
            "`{}` is not a blocklist key",
            e.key
        )));
    }
    match &e.value {
        EntryValue::Folder => Err(RuleBreach::lasting("a blocklist holds no folders")),
        EntryValue::Tombstone => Ok(()),
        EntryValue::File(file) => {
            if file.size > MAX_REPORT_BODY || file.manifest.is_some() {
                return Err(RuleBreach::lasting("a block larger than the limit"));
            }
            let mut bytes = Vec::new();
            if store.blobs().write_to(file, &mut bytes).is_ok() {
                Block::decode(&bytes).map_err(|err| RuleBreach::lasting(err.0))?;
            }
            Ok(())
        }
    }
}
