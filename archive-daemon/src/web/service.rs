//! The operations behind every page and API route, and the views they return (what the API
//! sends as JSON and the pages render). Each runs on a blocking thread ([`run`]): the store's
//! writes wait for the disk.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use chat::{Access, ChatKey, History, MessageBody, MessageId, Person, RoomId, RoomSettings};
use serde::{Deserialize, Serialize};

use super::{App, WebError};
use crate::accounts::InviteInfo;

/// Messages a room's page and `GET /api/rooms/{room}` show at once: the latest ones (or the
/// latest before `?before=`). Fifty keep a page under 100 KB with every message's forms.
pub(crate) const ROOM_PAGE_MESSAGES: usize = 50;

/// Runs `f` on a blocking thread.
pub(crate) async fn run<T: Send + 'static>(
    app: &Arc<App>,
    f: impl FnOnce(&App) -> Result<T, WebError> + Send + 'static,
) -> Result<T, WebError> {
    let app2 = app.clone();
    tokio::task::spawn_blocking(move || f(&app2))
        .await
        .map_err(|e| WebError::internal(app.text, e))?
}

/// A room in a list.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct RoomSummary {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) topic: String,
    pub(crate) invite_only: bool,
    pub(crate) unread: u64,
    /// For a direct room: who the other person is.
    pub(crate) with: Option<String>,
}

/// The rooms a person may read.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct RoomList {
    pub(crate) rooms: Vec<RoomSummary>,
    pub(crate) direct: Vec<RoomSummary>,
}

/// A message as shown.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct MessageView {
    /// Its id in links (`time-server-account`).
    pub(crate) id: String,
    /// The author's handle (`name`, or `name@community` for someone of another server).
    pub(crate) author: String,
    /// The author's display name.
    pub(crate) author_name: String,
    /// Whether the asking person wrote it.
    pub(crate) mine: bool,
    pub(crate) time_ms: u64,
    pub(crate) text: String,
    pub(crate) reply_to: Option<String>,
    pub(crate) edited: bool,
    /// Reaction -> how many gave it.
    pub(crate) reactions: BTreeMap<String, usize>,
    /// The reactions the asking person gave.
    pub(crate) my_reactions: Vec<String>,
    pub(crate) attachments: Vec<AttachmentView>,
}

/// An attachment's preview.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct AttachmentView {
    pub(crate) name: String,
    pub(crate) size: u64,
}

/// A room's page.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct RoomView {
    pub(crate) room: RoomSummary,
    /// The latest [`ROOM_PAGE_MESSAGES`] messages (before `before`, if given), oldest first.
    pub(crate) messages: Vec<MessageView>,
    /// When earlier messages exist: the `before=` that shows them.
    pub(crate) earlier: Option<String>,
    /// Where the room's live feed starts (`GET /api/rooms/{room}/events?from=`).
    pub(crate) resume: String,
}

/// A person of this server.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct PersonView {
    pub(crate) name: String,
    pub(crate) display_name: String,
    pub(crate) role: String,
}

/// A found message.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct HitView {
    pub(crate) room: String,
    pub(crate) room_name: String,
    pub(crate) message: MessageView,
}

/// A page of search results.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct SearchView {
    pub(crate) query: String,
    pub(crate) hits: Vec<HitView>,
    /// Where the next page starts (`after=`), when there is one.
    pub(crate) next: Option<String>,
}

/// What the admin page shows.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct AdminView {
    pub(crate) people: Vec<PersonView>,
    pub(crate) invites: Vec<InviteInfo>,
    pub(crate) reports: Vec<ReportView>,
    pub(crate) storage: StorageView,
    /// None when the server runs without live delivery.
    pub(crate) health: Option<HealthView>,
}

/// A report waiting for a moderator.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct ReportView {
    pub(crate) key: String,
    pub(crate) by: String,
    pub(crate) room: String,
    pub(crate) reason: String,
    /// The message reported (its id in links), and its text if it is still shown.
    pub(crate) message: String,
    pub(crate) text: Option<String>,
}

/// How live delivery to paired servers goes.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct HealthView {
    pub(crate) room_syncs: u64,
    pub(crate) failed_syncs: u64,
    pub(crate) last_failure: Option<String>,
    pub(crate) refused_entries: u64,
    pub(crate) recent_refusals: Vec<String>,
}

/// The store's totals.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct StorageView {
    pub(crate) entries: u64,
    pub(crate) files: u64,
    pub(crate) blobs: u64,
    pub(crate) stored_bytes: u64,
    pub(crate) indexed_messages: u64,
}

/// A new room.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub(crate) struct NewRoom {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) topic: String,
    #[serde(default)]
    pub(crate) invite_only: bool,
    /// Paired servers (by their name in `archive peer ls`) whose people take part: the room
    /// is delivered to them. Empty: the room stays on this server.
    #[serde(default)]
    pub(crate) share_with: Vec<String>,
}

/// A message to send.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub(crate) struct NewMessage {
    pub(crate) text: String,
    #[serde(default)]
    pub(crate) reply_to: Option<String>,
}

pub(crate) fn room_id(app: &App, text: &str) -> Result<RoomId, WebError> {
    text.parse()
        .map_err(|_| WebError::new(StatusCode::NOT_FOUND, app.text.err_not_found))
}

/// A message's id as links carry it: `time-server-account`.
pub(crate) fn message_ref(id: &MessageId) -> String {
    format!(
        "{:016x}-{}-{}",
        id.time.raw(),
        id.author.server,
        id.author.account
    )
}

pub(crate) fn parse_message_ref(app: &App, text: &str) -> Result<MessageId, WebError> {
    let mut parts = text.splitn(3, '-');
    let (Some(t), Some(s), Some(a)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(WebError::new(StatusCode::NOT_FOUND, app.text.err_not_found));
    };
    match ChatKey::parse(&format!("m/{t}/{s}/{a}")) {
        Some(ChatKey::Message(id)) => Ok(id),
        _ => Err(WebError::new(StatusCode::NOT_FOUND, app.text.err_not_found)),
    }
}

impl App {
    fn chat_err(&self, e: chat::ChatError) -> WebError {
        WebError::from_chat(self.text, e)
    }

    /// The room, if `account` may read it; "not found" otherwise (a closed room's existence
    /// is not told).
    fn readable(&self, account: &str, room: &RoomId) -> Result<Arc<chat::Authority>, WebError> {
        let authority = self.chat.authority(room).map_err(|e| self.chat_err(e))?;
        if authority.exists() && authority.may_read_room(&self.chat.person(account)) {
            Ok(authority)
        } else {
            Err(WebError::new(
                StatusCode::NOT_FOUND,
                self.text.err_not_found,
            ))
        }
    }

    fn summary(
        &self,
        account: &str,
        room: &RoomId,
        authority: &chat::Authority,
        with: Option<&Person>,
    ) -> Result<RoomSummary, WebError> {
        let settings = authority.settings_at(None);
        let with = with.map(|p| self.chat.handle(p)).transpose();
        Ok(RoomSummary {
            id: room.to_string(),
            name: settings.map(|s| s.name.clone()).unwrap_or_default(),
            topic: settings.map(|s| s.topic.clone()).unwrap_or_default(),
            invite_only: settings.is_some_and(|s| s.access == Access::InviteOnly),
            unread: self
                .chat
                .unread(account, room)
                .map_err(|e| self.chat_err(e))?,
            with: with.map_err(|e| self.chat_err(e))?,
        })
    }

    pub(crate) fn rooms(&self, account: &str) -> Result<RoomList, WebError> {
        let direct: HashMap<RoomId, Person> = self
            .chat
            .direct_rooms(account)
            .map_err(|e| self.chat_err(e))?
            .into_iter()
            .collect();
        let me = self.chat.person(account);
        let mut list = RoomList {
            rooms: Vec::new(),
            direct: Vec::new(),
        };
        for room in self.chat.rooms().map_err(|e| self.chat_err(e))? {
            let authority = self.chat.authority(&room).map_err(|e| self.chat_err(e))?;
            if !authority.exists() || !authority.may_read_room(&me) {
                continue;
            }
            match direct.get(&room) {
                Some(other) => {
                    list.direct
                        .push(self.summary(account, &room, &authority, Some(other))?)
                }
                None => list
                    .rooms
                    .push(self.summary(account, &room, &authority, None)?),
            }
        }
        list.rooms.sort_by_key(|r| r.name.to_lowercase());
        list.direct.sort_by(|a, b| a.with.cmp(&b.with));
        Ok(list)
    }

    /// Ok if `account` may read `room` now.
    pub(crate) fn room_readable(&self, account: &str, room: &str) -> Result<(), WebError> {
        self.readable(account, &room_id(self, room)?).map(|_| ())
    }

    pub(crate) fn room(
        &self,
        account: &str,
        room: &str,
        before: Option<&str>,
    ) -> Result<RoomView, WebError> {
        let room = room_id(self, room)?;
        let before = before
            .filter(|b| !b.is_empty())
            .map(|b| parse_message_ref(self, b))
            .transpose()?;
        let authority = self.readable(account, &room)?;
        // Before reading: a change in between then comes again on the feed (the page
        // replaces a message by id), never not at all.
        let resume = self.chat.resume_now(&room).map_err(|e| self.chat_err(e))?;
        let direct = self.direct_partner(account, &room)?;
        let summary = self.summary(account, &room, &authority, direct.as_ref())?;
        let (shown, earlier) = self
            .chat
            .latest_messages_for(account, &room, before.as_ref(), ROOM_PAGE_MESSAGES)
            .map_err(|e| self.chat_err(e))?;
        let mut names = Names::default();
        let messages = shown
            .iter()
            .map(|m| self.message_view(account, m, &mut names))
            .collect::<Result<_, _>>()?;
        Ok(RoomView {
            room: summary,
            messages,
            earlier: shown
                .first()
                .filter(|_| earlier)
                .map(|m| message_ref(&m.id)),
            resume: resume.to_string(),
        })
    }

    /// For a direct room of `account`'s: the other person.
    fn direct_partner(&self, account: &str, room: &RoomId) -> Result<Option<Person>, WebError> {
        Ok(self
            .chat
            .direct_rooms(account)
            .map_err(|e| self.chat_err(e))?
            .into_iter()
            .find(|(r, _)| r == room)
            .map(|(_, p)| p))
    }

    /// One message of a room `account` may read, and the room.
    pub(crate) fn one_message(
        &self,
        account: &str,
        room_text: &str,
        message: &str,
    ) -> Result<(RoomSummary, MessageView), WebError> {
        let room = room_id(self, room_text)?;
        let authority = self.readable(account, &room)?;
        let id = parse_message_ref(self, message)?;
        let shown = self
            .chat
            .message(&room, &id)
            .map_err(|e| self.chat_err(e))?
            .filter(|_| authority.may_read(&self.chat.person(account), &id))
            .ok_or_else(|| WebError::new(StatusCode::NOT_FOUND, self.text.err_not_found))?;
        let direct = self.direct_partner(account, &room)?;
        let summary = self.summary(account, &room, &authority, direct.as_ref())?;
        let view = self.message_view(account, &shown, &mut Names::default())?;
        Ok((summary, view))
    }

    pub(crate) fn message_view(
        &self,
        account: &str,
        m: &chat::Message,
        names: &mut Names,
    ) -> Result<MessageView, WebError> {
        let (author, author_name) = names.of(self, &m.id.author)?;
        Ok(MessageView {
            id: message_ref(&m.id),
            author,
            author_name,
            mine: m.id.author == self.chat.person(account),
            time_ms: m.id.time.unix_millis(),
            text: m.text.clone(),
            reply_to: m.reply_to.as_ref().map(message_ref),
            edited: m.edited,
            reactions: m
                .reactions
                .iter()
                .map(|(r, people)| (r.clone(), people.len()))
                .collect(),
            my_reactions: {
                let me = self.chat.person(account);
                m.reactions
                    .iter()
                    .filter(|(_, people)| people.contains(&me))
                    .map(|(r, _)| r.clone())
                    .collect()
            },
            attachments: m
                .attachments
                .iter()
                .map(|a| AttachmentView {
                    name: a.name.clone(),
                    size: a.size,
                })
                .collect(),
        })
    }

    /// The paired servers a room may be shared with, by name.
    pub(crate) fn paired(&self) -> Result<Vec<String>, WebError> {
        let peers =
            crate::peers::Peers::load(&self.dir).map_err(|e| WebError::internal(self.text, e))?;
        Ok(peers.peers.into_iter().map(|p| p.name).collect())
    }

    /// The keys of the paired servers named `names`.
    fn servers_named(&self, names: &[String]) -> Result<Vec<archive_core::PublicKey>, WebError> {
        let peers =
            crate::peers::Peers::load(&self.dir).map_err(|e| WebError::internal(self.text, e))?;
        names
            .iter()
            .map(|name| {
                let peer = peers
                    .find(name)
                    .map_err(|e| WebError::bad_request(e.to_string()))?;
                let id = peer
                    .endpoint_id()
                    .map_err(|e| WebError::internal(self.text, e))?;
                Ok(archive_core::PublicKey::from_bytes(*id.as_bytes()))
            })
            .collect()
    }

    pub(crate) fn create_room(&self, account: &str, new: &NewRoom) -> Result<String, WebError> {
        let settings = RoomSettings {
            name: new.name.trim().to_owned(),
            topic: new.topic.trim().to_owned(),
            access: if new.invite_only {
                Access::InviteOnly
            } else {
                Access::Open
            },
            servers: self.servers_named(&new.share_with)?,
            history: History::Whole,
        };
        if settings.name.is_empty() {
            return Err(WebError::bad_request("a room needs a name"));
        }
        let room = self
            .chat
            .create_room(account, settings)
            .map_err(|e| self.chat_err(e))?;
        Ok(room.to_string())
    }

    pub(crate) fn send(
        &self,
        account: &str,
        room: &str,
        new: &NewMessage,
    ) -> Result<String, WebError> {
        let room = room_id(self, room)?;
        self.readable(account, &room)?;
        let text = new.text.trim();
        if text.is_empty() {
            return Err(WebError::bad_request("an empty message is not sent"));
        }
        let reply_to = match new.reply_to.as_deref().filter(|r| !r.is_empty()) {
            Some(r) => Some(parse_message_ref(self, r)?),
            None => None,
        };
        let body = MessageBody {
            text: text.to_owned(),
            reply_to,
            attachments: vec![],
        };
        let id = self
            .chat
            .send(&room, account, &body)
            .map_err(|e| self.chat_err(e))?;
        // What one writes, one has read.
        let _ = self.chat.mark_read(account, &room, &id);
        Ok(message_ref(&id))
    }

    /// Sends a message with files (the text may then be empty).
    pub(crate) fn send_with_files(
        &self,
        account: &str,
        room: &str,
        text: &str,
        reply_to: Option<&str>,
        files: Vec<(String, Vec<u8>)>,
    ) -> Result<String, WebError> {
        if files.is_empty() {
            let new = NewMessage {
                text: text.to_owned(),
                reply_to: reply_to.map(str::to_owned),
            };
            return self.send(account, room, &new);
        }
        let room = room_id(self, room)?;
        self.readable(account, &room)?;
        let reply_to = match reply_to.filter(|r| !r.is_empty()) {
            Some(r) => Some(parse_message_ref(self, r)?),
            None => None,
        };
        let files: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(n, b)| (n.as_str(), b.as_slice()))
            .collect();
        let id = self
            .chat
            .send_with_files(&room, account, text.trim(), reply_to, &files)
            .map_err(|e| self.chat_err(e))?;
        let _ = self.chat.mark_read(account, &room, &id);
        Ok(message_ref(&id))
    }

    /// Attachment `index` of a message `account` may read: its name, and its bytes when this
    /// server holds them.
    pub(crate) fn attachment(
        &self,
        account: &str,
        room_text: &str,
        message: &str,
        index: u8,
    ) -> Result<(String, Option<Vec<u8>>), WebError> {
        let (_, view) = self.one_message(account, room_text, message)?;
        let name = view
            .attachments
            .get(usize::from(index))
            .map(|a| a.name.clone())
            .ok_or_else(|| WebError::new(StatusCode::NOT_FOUND, self.text.err_not_found))?;
        let room = room_id(self, room_text)?;
        let id = parse_message_ref(self, message)?;
        let bytes = self
            .chat
            .attachment(&room, &id, index)
            .map_err(|e| self.chat_err(e))?;
        Ok((name, bytes))
    }

    pub(crate) fn edit(
        &self,
        account: &str,
        room: &str,
        message: &str,
        text: &str,
    ) -> Result<(), WebError> {
        let room = room_id(self, room)?;
        self.readable(account, &room)?;
        let id = parse_message_ref(self, message)?;
        self.chat
            .edit(&room, account, &id, text.trim())
            .map_err(|e| self.chat_err(e))?;
        Ok(())
    }

    pub(crate) fn delete(&self, account: &str, room: &str, message: &str) -> Result<(), WebError> {
        let room = room_id(self, room)?;
        self.readable(account, &room)?;
        let id = parse_message_ref(self, message)?;
        self.chat
            .delete(&room, account, &id)
            .map_err(|e| self.chat_err(e))?;
        Ok(())
    }

    /// Gives (`on`) or takes back a reaction.
    pub(crate) fn react(
        &self,
        account: &str,
        room: &str,
        message: &str,
        reaction: &str,
        on: bool,
    ) -> Result<(), WebError> {
        let room = room_id(self, room)?;
        self.readable(account, &room)?;
        let id = parse_message_ref(self, message)?;
        if self
            .chat
            .message(&room, &id)
            .map_err(|e| self.chat_err(e))?
            .is_none()
        {
            return Err(WebError::new(
                StatusCode::NOT_FOUND,
                self.text.err_not_found,
            ));
        }
        self.chat
            .react(&room, account, &id, reaction, on)
            .map_err(|e| self.chat_err(e))
    }

    /// Gives a reaction, or takes it back if `account` gave it already.
    pub(crate) fn toggle_reaction(
        &self,
        account: &str,
        room_text: &str,
        message: &str,
        reaction: &str,
    ) -> Result<(), WebError> {
        let room = room_id(self, room_text)?;
        self.readable(account, &room)?;
        let id = parse_message_ref(self, message)?;
        let me = self.chat.person(account);
        let given = self
            .chat
            .message(&room, &id)
            .map_err(|e| self.chat_err(e))?
            .ok_or_else(|| WebError::new(StatusCode::NOT_FOUND, self.text.err_not_found))?
            .reactions
            .get(reaction)
            .is_some_and(|people| people.contains(&me));
        self.react(account, room_text, message, reaction, !given)
    }

    pub(crate) fn mark_read(
        &self,
        account: &str,
        room: &str,
        message: &str,
    ) -> Result<(), WebError> {
        let room = room_id(self, room)?;
        self.readable(account, &room)?;
        let id = parse_message_ref(self, message)?;
        self.chat
            .mark_read(account, &room, &id)
            .map_err(|e| self.chat_err(e))
    }

    pub(crate) fn people(&self) -> Result<Vec<PersonView>, WebError> {
        Ok(self
            .chat
            .accounts()
            .map_err(|e| self.chat_err(e))?
            .into_iter()
            .map(|a| PersonView {
                role: format!("{:?}", a.profile.role).to_lowercase(),
                display_name: a.profile.display_name,
                name: a.name,
            })
            .collect())
    }

    pub(crate) fn direct(&self, account: &str, other: &str) -> Result<String, WebError> {
        if self
            .chat
            .account(other)
            .map_err(|e| self.chat_err(e))?
            .is_none()
            || other == account
        {
            return Err(WebError::new(
                StatusCode::NOT_FOUND,
                self.text.err_not_found,
            ));
        }
        let room = self
            .chat
            .direct(account, &self.chat.person(other))
            .map_err(|e| self.chat_err(e))?;
        Ok(room.to_string())
    }

    pub(crate) fn search(
        &self,
        account: &str,
        query: &str,
        after: Option<&str>,
    ) -> Result<SearchView, WebError> {
        let after = match after.filter(|a| !a.is_empty()) {
            Some(a) => Some(
                a.parse::<chat::SearchCursor>()
                    .map_err(|e| self.chat_err(e))?,
            ),
            None => None,
        };
        let page = self
            .search
            .search(account, query, after, 20)
            .map_err(|e| self.chat_err(e))?;
        let mut names = Names::default();
        let mut room_names: HashMap<RoomId, String> = HashMap::new();
        let mut hits = Vec::new();
        for hit in page.hits {
            let room_name = match room_names.get(&hit.room) {
                Some(n) => n.clone(),
                None => {
                    let authority = self
                        .chat
                        .authority(&hit.room)
                        .map_err(|e| self.chat_err(e))?;
                    let n = authority
                        .settings_at(None)
                        .map(|s| s.name.clone())
                        .unwrap_or_default();
                    room_names.insert(hit.room, n.clone());
                    n
                }
            };
            hits.push(HitView {
                room: hit.room.to_string(),
                room_name,
                message: self.message_view(account, &hit.message, &mut names)?,
            });
        }
        Ok(SearchView {
            query: query.to_owned(),
            hits,
            next: page.next.map(|c| c.to_string()),
        })
    }

    pub(crate) fn admin_view(&self, account: &str) -> Result<AdminView, WebError> {
        let stats = self
            .chat
            .store()
            .stats()
            .map_err(|e| WebError::internal(self.text, e))?;
        let reports = self
            .chat
            .reports(account, false)
            .map_err(|e| self.chat_err(e))?
            .into_iter()
            .map(|r| ReportView {
                text: self
                    .chat
                    .message(&r.report.room, &r.report.message)
                    .ok()
                    .flatten()
                    .map(|m| m.text),
                message: message_ref(&r.report.message),
                key: r.key,
                by: r.by,
                room: r.report.room.to_string(),
                reason: r.report.reason,
            })
            .collect();
        let health = self.delivery.as_ref().map(|d| {
            let s = d.stats();
            HealthView {
                room_syncs: s.syncs,
                failed_syncs: s.failures,
                last_failure: s.last_failure,
                refused_entries: s.refused,
                recent_refusals: s.recent_refusals,
            }
        });
        Ok(AdminView {
            people: self.people()?,
            invites: self
                .accounts
                .invites()
                .map_err(|e| WebError::from_accounts(self.text, e))?,
            reports,
            health,
            storage: StorageView {
                entries: stats.entries,
                files: stats.files,
                blobs: stats.blobs,
                stored_bytes: stats.stored_bytes,
                indexed_messages: self.search.indexed_messages().unwrap_or(0),
            },
        })
    }

    /// Reports a message of a room `account` reads to this server's moderators.
    pub(crate) fn report(
        &self,
        account: &str,
        room: &str,
        message: &str,
        reason: &str,
    ) -> Result<String, WebError> {
        let (_, _) = self.one_message(account, room, message)?;
        let room = room_id(self, room)?;
        let id = parse_message_ref(self, message)?;
        self.chat
            .report(account, &room, &id, reason.trim())
            .map_err(|e| self.chat_err(e))
    }

    /// Closes a report with what the moderator did.
    pub(crate) fn resolve_report(&self, by: &str, key: &str, note: &str) -> Result<(), WebError> {
        self.chat
            .resolve_report(by, key, note.trim())
            .map_err(|e| self.chat_err(e))
    }

    /// Sets a person's role on this server (`member`, `moderator` or `admin`).
    pub(crate) fn set_role(&self, admin: &str, account: &str, role: &str) -> Result<(), WebError> {
        let role = match role {
            "member" => chat::ServerRole::Member,
            "moderator" => chat::ServerRole::Moderator,
            "admin" => chat::ServerRole::Admin,
            other => {
                return Err(WebError::bad_request(format!(
                    "`{other}` is not a role: member, moderator or admin"
                )))
            }
        };
        self.chat
            .set_server_role(admin, account, role)
            .map_err(|e| self.chat_err(e))
    }

    pub(crate) fn create_invite(&self, admin: &str) -> Result<String, WebError> {
        self.accounts
            .create_invite(admin, crate::accounts::INVITE_LIFETIME)
            .map_err(|e| WebError::from_accounts(self.text, e))
    }

    pub(crate) fn cancel_invite(&self, id: &str) -> Result<(), WebError> {
        match self.accounts.cancel_invite(id) {
            Ok(true) => Ok(()),
            Ok(false) => Err(WebError::new(
                StatusCode::NOT_FOUND,
                self.text.err_not_found,
            )),
            Err(e) => Err(WebError::from_accounts(self.text, e)),
        }
    }

    /// Removes a person: their account (what they wrote stays) and every session.
    pub(crate) fn remove_person(&self, admin: &str, account: &str) -> Result<(), WebError> {
        self.chat
            .remove_account(admin, account)
            .map_err(|e| self.chat_err(e))?;
        self.accounts
            .remove(account)
            .map_err(|e| WebError::from_accounts(self.text, e))
    }
}

/// Handles and display names, read once per person per request.
#[derive(Debug, Default)]
pub(crate) struct Names(HashMap<Person, (String, String)>);

impl Names {
    fn of(&mut self, app: &App, person: &Person) -> Result<(String, String), WebError> {
        if let Some(n) = self.0.get(person) {
            return Ok(n.clone());
        }
        let handle = app.chat.handle(person).map_err(|e| app.chat_err(e))?;
        let display = app
            .chat
            .profile(person)
            .map_err(|e| app.chat_err(e))?
            .map(|p| p.display_name)
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| handle.clone());
        self.0
            .insert(person.clone(), (handle.clone(), display.clone()));
        Ok((handle, display))
    }
}

/// How long a sign-in waits for a permit to hash before the server says it is busy.
pub(crate) const HASH_WAIT: Duration = Duration::from_secs(10);

/// Checks `password` for `account` (rate-limited by the caller), with a hashing permit.
pub(crate) async fn check_password(
    app: &Arc<App>,
    account: String,
    password: String,
) -> Result<(), WebError> {
    let _permit = hashing_permit(app).await?;
    run(app, move |app| {
        app.accounts
            .check_password(&account, &password)
            .map_err(|e| WebError::from_accounts(app.text, e))
    })
    .await
}

/// Sets a password, with a hashing permit.
pub(crate) async fn set_password(
    app: &Arc<App>,
    account: String,
    password: String,
) -> Result<(), WebError> {
    crate::accounts::check_password(&password).map_err(|e| WebError::from_accounts(app.text, e))?;
    let _permit = hashing_permit(app).await?;
    run(app, move |app| {
        app.accounts
            .set_password(&account, &password)
            .map_err(|e| WebError::from_accounts(app.text, e))
    })
    .await
}

/// Runs a sign-in (`account: Some`) or join attempt within the limits: its tokens are taken
/// first (so parallel attempts count) and given back if it succeeds, so only failures count.
pub(crate) async fn limited<T>(
    app: &App,
    client: &super::limits::ClientKey,
    account: Option<&str>,
    attempt: impl std::future::Future<Output = Result<T, WebError>>,
) -> Result<T, WebError> {
    let now = std::time::Instant::now();
    let limits = &app.limits;
    let account = account.map(str::to_owned);
    let too_many = || WebError::new(StatusCode::TOO_MANY_REQUESTS, app.text.err_too_many);
    if !limits.sign_ins.take(client, now) {
        return Err(too_many());
    }
    if let Some(a) = &account {
        if !limits.account_sign_ins.take(a, now) {
            limits.sign_ins.refund(client);
            return Err(too_many());
        }
    }
    let result = attempt.await;
    if result.is_ok() {
        limits.sign_ins.refund(client);
        if let Some(a) = &account {
            limits.account_sign_ins.refund(a);
        }
    }
    result
}

/// A join by invite.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub(crate) struct JoinRequest {
    pub(crate) code: String,
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) display_name: String,
    pub(crate) password: String,
}

/// Joins with an invite: checks everything that can be checked before the invite is used,
/// then makes the account (by the admin who made the invite) and sets its password.
pub(crate) async fn join(app: &Arc<App>, join: JoinRequest) -> Result<(), WebError> {
    let name = join.name.trim().to_owned();
    archive_core::validate_person(&name).map_err(|e| WebError::bad_request(e.to_string()))?;
    crate::accounts::check_password(&join.password)
        .map_err(|e| WebError::from_accounts(app.text, e))?;
    let display = if join.display_name.trim().is_empty() {
        name.clone()
    } else {
        join.display_name.trim().to_owned()
    };
    // The permit first: once the invite is used, nothing but the disk can fail.
    let _permit = hashing_permit(app).await?;
    run(app, move |app| {
        let invite = app
            .accounts
            .take_invite(&join.code)
            .map_err(|e| WebError::from_accounts(app.text, e))?;
        if let Err(e) = app.chat.create_account(Some(&invite.by), &name, &display) {
            // The name was taken (or the inviter is no longer an admin): the code stays
            // usable for another try.
            let _ = app.accounts.restore_invite(&join.code, &invite);
            return Err(app.chat_err(e));
        }
        app.accounts
            .set_password(&name, &join.password)
            .map_err(|e| WebError::from_accounts(app.text, e))
    })
    .await
}

/// A permit to hash a password; "busy" after [`HASH_WAIT`].
async fn hashing_permit(app: &Arc<App>) -> Result<tokio::sync::SemaphorePermit<'_>, WebError> {
    tokio::time::timeout(HASH_WAIT, app.hashing.acquire())
        .await
        .map_err(|_| WebError::new(StatusCode::SERVICE_UNAVAILABLE, app.text.err_busy))?
        .map_err(|e| WebError::internal(app.text, e))
}
