//! Read state: each person's read marker in each room, and unread counts. Private to the
//! person's server: kept in `local/chat/reads`, which no peer reconciles, reads or writes
//! (`archive_net::LOCAL_PREFIX`).
//!
//! A marker is the id of the last message the person has seen; it only moves forward (an
//! older id leaves it where it is). Unread messages are those after it, shown in the room
//! (not deleted, posted while allowed) and written by someone else.

use archive_core::{Page, ViewItem, ViewPoint};

use crate::engine::Chat;
use crate::error::ChatError;
use crate::names::{ChatKey, ItemId, MessageId, RoomId};

/// Where read markers are kept.
pub const READS_COLLECTION: &str = "local/chat/reads";

impl Chat {
    /// Marks `room` read by `account` up to `message` (and everything before it).
    pub fn mark_read(
        &self,
        account: &str,
        room: &RoomId,
        message: &MessageId,
    ) -> Result<(), ChatError> {
        self.existing(account)?;
        if !self.authority(room)?.exists() {
            return Err(ChatError::NoSuchRoom(room.to_string()));
        }
        if self
            .read_marker(account, room)?
            .is_some_and(|seen| &seen >= message)
        {
            return Ok(());
        }
        let marker = message.message_key();
        self.store()
            .collection(READS_COLLECTION)?
            .add_bytes(&marker_key(account, room), marker.as_bytes())?;
        Ok(())
    }

    /// The last message of `room` that `account` has marked read.
    pub fn read_marker(
        &self,
        account: &str,
        room: &RoomId,
    ) -> Result<Option<MessageId>, ChatError> {
        let reads = self.store().collection(READS_COLLECTION)?;
        let Some(item) = reads.get(&marker_key(account, room))? else {
            return Ok(None);
        };
        let mut bytes = Vec::new();
        self.store().blobs().write_to(&item.file, &mut bytes)?;
        let key = String::from_utf8(bytes).unwrap_or_default();
        Ok(match ChatKey::parse(&key) {
            Some(ChatKey::Message(id)) => Some(id),
            _ => None,
        })
    }

    /// How many messages of `room` `account` has not read: shown, after its marker (all of
    /// them without one), by someone else. Reads keys only, a page at a time.
    pub fn unread(&self, account: &str, room: &RoomId) -> Result<u64, ChatError> {
        let me = self.existing(account)?;
        let me = self.person(&me.name);
        let authority = self.authority(room)?;
        let messages = self.store().collection(&room.messages_collection())?;
        let mut after = self.read_marker(account, room)?.map(|m| m.message_key());
        let mut count = 0;
        loop {
            let page: Page<ViewItem> =
                messages.list_page(ViewPoint::Current, "m", after.as_deref(), 1024)?;
            for item in &page.items {
                if let Some(ChatKey::Message(id)) = ChatKey::parse(&item.key) {
                    if id.author != me && shown(&authority, &id) && authority.may_read(&me, &id) {
                        count += 1;
                    }
                }
            }
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(count),
            }
        }
    }
}

/// Whether the room shows a message by its id alone (as `Chat::messages` judges it, without
/// reading the body): its author was allowed to post it.
fn shown(authority: &crate::authority::Authority, id: &ItemId) -> bool {
    authority.may_post(id).is_ok()
}

/// A marker's key: the account, then the room.
fn marker_key(account: &str, room: &RoomId) -> String {
    format!("{account}/{room}")
}
