//! Full-text search over the messages a person may read: an SQLite FTS5 index beside the
//! store, fed from each room's arrivals (see ARCHITECTURE.md, "Search").
//!
//! The index is derived data: it holds, per message shown now, its words (no positions, no
//! text: a contentless FTS5 table) and where the message is (room, author, time). Whatever it
//! holds, every hit is checked against the room as it is now before it is returned, so a
//! stale or damaged index can hide a message but never show one a person may not read; and a
//! missing, outdated or unreadable index file is rebuilt from the store.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use archive_core::PublicKey;
use rusqlite::{params, Connection, OptionalExtension};

use crate::authority::Authority;
use crate::engine::{Chat, Message};
use crate::error::ChatError;
use crate::names::{ChatKey, ItemId, MessageId, Person, RoomId};

/// The longest query, in bytes.
pub const MAX_QUERY_LEN: usize = 256;
/// The most words a query may have.
pub const MAX_QUERY_WORDS: usize = 8;
/// The most hits one page returns.
pub const MAX_SEARCH_PAGE: usize = 100;
/// The most index rows one call looks at before it returns what it found (with a cursor to
/// go on), so a query over many rows a person may not read stays short.
const MAX_EXAMINED: usize = 5_000;
/// Words shorter than this (in characters) match whole words only: as prefixes they would
/// match thousands of words ("ba" in a million messages took 40-130 ms; see BENCHMARKS.md).
const MIN_PREFIX: usize = 3;
/// Entries indexed per transaction while catching up.
const CATCH_UP_BATCH: usize = 1_000;
/// A message's row is its time; messages of one time take the next free row, at most this
/// many after it (beyond, the message is not indexed: only a forger makes that many).
const SAME_TIME_ROWS: i64 = 1_024;
/// The layout below; a file with another is rebuilt.
const INDEX_VERSION: i64 = 1;

const SCHEMA: &str = "
    CREATE TABLE rooms(
        n INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        indexed INTEGER NOT NULL);
    CREATE TABLE people(
        n INTEGER PRIMARY KEY,
        server BLOB NOT NULL,
        account TEXT NOT NULL,
        UNIQUE(server, account));
    CREATE TABLE messages(
        at INTEGER PRIMARY KEY,
        room INTEGER NOT NULL,
        author INTEGER NOT NULL,
        time INTEGER NOT NULL);
    CREATE VIRTUAL TABLE words USING fts5(
        text, content = '', contentless_delete = 1, detail = none, prefix = '3',
        tokenize = 'unicode61 remove_diacritics 2');
";

/// One message found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchHit {
    /// Its room.
    pub room: RoomId,
    /// The message as the room shows it now.
    pub message: Message,
}

/// A page of hits, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchPage {
    /// The hits.
    pub hits: Vec<SearchHit>,
    /// Where the next page starts; `None` when there are no more.
    pub next: Option<SearchCursor>,
}

/// Where a page of [`Search::search`] goes on (its text form parses back, for a web page's
/// "more" link).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SearchCursor(i64);

impl std::fmt::Display for SearchCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::str::FromStr for SearchCursor {
    type Err = ChatError;

    fn from_str(s: &str) -> Result<Self, ChatError> {
        match s.parse::<i64>() {
            Ok(n) if n >= 0 => Ok(SearchCursor(n)),
            _ => Err(ChatError::Invalid(format!("not a search cursor: {s:?}"))),
        }
    }
}

/// Full-text search over a server's rooms.
///
/// Open it beside the store ([`Search::open`]); it indexes what arrives as it is asked
/// ([`Search::search`] and [`Search::catch_up`] first index every room's new entries) or as
/// it happens ([`Search::follow`]). After [`Chat::gc`], [`Search::gc`] rewrites the index so
/// deleted and edited-away words are gone from its file too.
#[derive(Debug, Clone)]
pub struct Search {
    chat: Chat,
    db: Arc<Mutex<Connection>>,
}

impl Search {
    /// The index at `path` (an SQLite file, created if missing) for `chat`'s rooms. A file
    /// that is not such an index, or one of another layout, is replaced by a new one, which
    /// then indexes every room again.
    pub fn open(chat: &Chat, path: &Path) -> Result<Search, ChatError> {
        let db = match open_index(path) {
            Ok(db) => db,
            Err(_) => {
                remove_index(path)?;
                open_index(path).map_err(index_error)?
            }
        };
        Ok(Search {
            chat: chat.clone(),
            db: Arc::new(Mutex::new(db)),
        })
    }

    /// Indexes every room's entries that arrived since the last call: the number read.
    pub fn catch_up(&self) -> Result<u64, ChatError> {
        let mut read = 0;
        for room in self.chat.rooms()? {
            loop {
                let n = self.catch_up_room(&room)?;
                read += n as u64;
                if n < CATCH_UP_BATCH {
                    break;
                }
            }
        }
        Ok(read)
    }

    /// Indexes a batch of `room`'s new entries: how many were read.
    fn catch_up_room(&self, room: &RoomId) -> Result<usize, ChatError> {
        let mut db = self.lock();
        let from: Option<i64> = db
            .prepare_cached("SELECT indexed FROM rooms WHERE id = ?1")
            .and_then(|mut q| q.query_row([room.to_string()], |r| r.get(0)).optional())
            .map_err(index_error)?;
        let collection = self.chat.store().collection(&room.messages_collection())?;
        // A counter that is not one (a damaged file) starts the room over.
        let from = u64::try_from(from.unwrap_or(0)).unwrap_or(0);
        let arrived = collection.arrivals(from, CATCH_UP_BATCH)?;
        if arrived.entries.is_empty() {
            // Nothing new: no write (a search catches up first, every time).
            return Ok(0);
        }
        let tx = db.transaction().map_err(index_error)?;
        let room_n = room_row(&tx, room)?;
        let mut seen = std::collections::HashSet::new();
        for entry in &arrived.entries {
            let Some(ChatKey::Message(id)) = ChatKey::parse(&entry.entry().key) else {
                continue;
            };
            if !seen.insert(id.clone()) {
                continue;
            }
            // The index follows the room's view, not the entry: an older version arriving
            // after a newer one changes nothing.
            let text = match collection.get(&id.message_key())? {
                Some(item) => self.chat.read_body(&item.file).ok().map(|b| b.text),
                None => None,
            };
            unindex(&tx, room_n, &id)?;
            if let Some(text) = text {
                index(&tx, room_n, &id, &text)?;
            }
        }
        tx.execute(
            "UPDATE rooms SET indexed = ?1 WHERE n = ?2",
            params![to_row(arrived.next), room_n],
        )
        .map_err(index_error)?;
        tx.commit().map_err(index_error)?;
        Ok(arrived.entries.len())
    }

    /// The messages `account` may read that have every word of `query` (a word of three
    /// letters or more matches the words it begins: `wat` finds "water"; a shorter one matches
    /// itself; case and accents ignored), newest first, at
    /// most `limit` (up to [`MAX_SEARCH_PAGE`]), from `after` on (a page's
    /// [`SearchPage::next`]). Indexes what arrived first.
    pub fn search(
        &self,
        account: &str,
        query: &str,
        after: Option<SearchCursor>,
        limit: usize,
    ) -> Result<SearchPage, ChatError> {
        let person = self.chat.person(&self.chat.existing(account)?.name);
        let expression = match_expression(query)?;
        let limit = limit.clamp(1, MAX_SEARCH_PAGE);
        self.catch_up()?;
        let mut authorities: HashMap<RoomId, Arc<Authority>> = HashMap::new();
        for room in self.chat.rooms()? {
            let authority = self.chat.authority(&room)?;
            if authority.may_read_room(&person) {
                authorities.insert(room, authority);
            }
        }
        let db = self.lock();
        let readable = readable_rooms(&db, &authorities)?;
        let mut page = SearchPage {
            hits: Vec::new(),
            next: None,
        };
        if readable.is_empty() {
            return Ok(page);
        }
        let sql = format!(
            "SELECT w.rowid, r.id, p.server, p.account, m.time
             FROM words w JOIN messages m ON m.at = w.rowid
             JOIN rooms r ON r.n = m.room JOIN people p ON p.n = m.author
             WHERE w.words MATCH ?1 AND w.rowid < ?2 AND m.room IN ({})
             ORDER BY w.rowid DESC LIMIT ?3",
            readable.join(",")
        );
        let mut statement = db.prepare(&sql).map_err(index_error)?;
        let mut before = after.map_or(i64::MAX, |c| c.0);
        let mut examined = 0;
        while page.hits.len() < limit && examined < MAX_EXAMINED {
            let batch = (limit - page.hits.len()) * 2;
            let rows: Vec<(i64, String, Vec<u8>, String, i64)> = statement
                .query_map(params![expression, before, batch as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })
                .and_then(|rows| rows.collect())
                .map_err(index_error)?;
            let exhausted = rows.len() < batch;
            for (at, room, server, account, time) in rows {
                examined += 1;
                before = at;
                let Some(id) = message_id(&server, account, time) else {
                    continue;
                };
                let Ok(room) = room.parse::<RoomId>() else {
                    continue;
                };
                let Some(authority) = authorities.get(&room) else {
                    continue;
                };
                if !authority.may_read(&person, &id) {
                    continue;
                }
                if let Some(message) = self.chat.message(&room, &id)? {
                    page.hits.push(SearchHit { room, message });
                    if page.hits.len() == limit {
                        break;
                    }
                }
            }
            if exhausted && page.hits.len() < limit {
                return Ok(page);
            }
        }
        page.next = Some(SearchCursor(before));
        Ok(page)
    }

    /// Rewrites the index without what deletions and edits took out, so their words are gone
    /// from its file (call it after [`Chat::gc`]). Indexes what arrived first.
    pub fn gc(&self) -> Result<(), ChatError> {
        self.catch_up()?;
        let db = self.lock();
        db.execute_batch(
            "INSERT INTO words(words) VALUES('optimize');
             PRAGMA wal_checkpoint(TRUNCATE);",
        )
        .map_err(index_error)
    }

    /// Keeps the index up to date: catches up, then again whenever a room changes. Runs until
    /// the index fails (its error is returned); spawn it beside the server.
    pub async fn follow(&self) -> Result<(), ChatError> {
        let changed = self.chat.changes();
        loop {
            let wait = changed.notified();
            tokio::pin!(wait);
            // Registered before catching up, so a change in between is not missed.
            wait.as_mut().enable();
            let search = self.clone();
            tokio::task::spawn_blocking(move || search.catch_up())
                .await
                .map_err(|e| ChatError::Index(e.to_string()))??;
            wait.await;
        }
    }

    /// How many messages the index holds (a health figure: it follows the rooms' messages).
    pub fn indexed_messages(&self) -> Result<u64, ChatError> {
        let db = self.lock();
        let n: i64 = db
            .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
            .map_err(index_error)?;
        Ok(n as u64)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding it leaves at worst an uncommitted transaction, rolled back.
        self.db.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn open_index(path: &Path) -> rusqlite::Result<Connection> {
    let db = Connection::open(path)?;
    db.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         PRAGMA secure_delete = ON;
         PRAGMA cache_size = -2048;",
    )?;
    let version: i64 = db.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version == 0 {
        let tx = db.unchecked_transaction()?;
        tx.execute_batch(SCHEMA)?;
        tx.execute_batch(&format!("PRAGMA user_version = {INDEX_VERSION}"))?;
        tx.commit()?;
    } else if version != INDEX_VERSION {
        return Err(rusqlite::Error::InvalidQuery);
    }
    // Reads every table once: a damaged file fails here, not in a search.
    db.query_row("SELECT count(*) FROM rooms", [], |_| Ok(()))?;
    Ok(db)
}

fn remove_index(path: &Path) -> Result<(), ChatError> {
    let mut wal = PathBuf::from(path).into_os_string();
    wal.push("-wal");
    let mut shm = PathBuf::from(path).into_os_string();
    shm.push("-shm");
    for file in [path.into(), PathBuf::from(wal), PathBuf::from(shm)] {
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(ChatError::Index(format!(
                    "cannot replace the search index {}: {e}",
                    file.display()
                )))
            }
        }
    }
    Ok(())
}

fn index_error(e: rusqlite::Error) -> ChatError {
    ChatError::Index(e.to_string())
}

/// The room's row number (a new one for a room not indexed yet).
fn room_row(tx: &rusqlite::Transaction<'_>, room: &RoomId) -> Result<i64, ChatError> {
    let id = room.to_string();
    tx.execute(
        "INSERT OR IGNORE INTO rooms(id, indexed) VALUES (?1, 0)",
        [&id],
    )
    .map_err(index_error)?;
    tx.query_row("SELECT n FROM rooms WHERE id = ?1", [&id], |r| r.get(0))
        .map_err(index_error)
}

fn person_row(tx: &rusqlite::Transaction<'_>, person: &Person) -> Result<i64, ChatError> {
    let server = person.server.as_bytes().as_slice();
    tx.execute(
        "INSERT OR IGNORE INTO people(server, account) VALUES (?1, ?2)",
        params![server, person.account],
    )
    .map_err(index_error)?;
    tx.query_row(
        "SELECT n FROM people WHERE server = ?1 AND account = ?2",
        params![server, person.account],
        |r| r.get(0),
    )
    .map_err(index_error)
}

/// The row holding message `id` of room `room_n`, if it is indexed.
fn message_row(
    tx: &rusqlite::Transaction<'_>,
    room_n: i64,
    id: &MessageId,
) -> Result<Option<i64>, ChatError> {
    let Some(time) = time_row(id) else {
        return Ok(None);
    };
    tx.query_row(
        "SELECT m.at FROM messages m JOIN people p ON p.n = m.author
         WHERE m.at >= ?1 AND m.at < ?1 + ?2 AND m.time = ?1 AND m.room = ?3
           AND p.server = ?4 AND p.account = ?5",
        params![
            time,
            SAME_TIME_ROWS,
            room_n,
            id.author.server.as_bytes().as_slice(),
            id.author.account
        ],
        |r| r.get(0),
    )
    .optional()
    .map_err(index_error)
}

fn unindex(tx: &rusqlite::Transaction<'_>, room_n: i64, id: &MessageId) -> Result<(), ChatError> {
    if let Some(at) = message_row(tx, room_n, id)? {
        tx.execute("DELETE FROM words WHERE rowid = ?1", [at])
            .map_err(index_error)?;
        tx.execute("DELETE FROM messages WHERE at = ?1", [at])
            .map_err(index_error)?;
    }
    Ok(())
}

fn index(
    tx: &rusqlite::Transaction<'_>,
    room_n: i64,
    id: &MessageId,
    text: &str,
) -> Result<(), ChatError> {
    let Some(time) = time_row(id) else {
        return Ok(());
    };
    // The first free row from the message's time on (taken only by messages of the same
    // time from other authors, or of the next times' counters).
    let mut taken = tx
        .prepare_cached("SELECT at FROM messages WHERE at >= ?1 AND at < ?1 + ?2 ORDER BY at")
        .map_err(index_error)?;
    let mut at = time;
    let rows = taken
        .query_map(params![time, SAME_TIME_ROWS], |r| r.get::<_, i64>(0))
        .map_err(index_error)?;
    for row in rows {
        if row.map_err(index_error)? != at {
            break;
        }
        at += 1;
    }
    if at >= time + SAME_TIME_ROWS {
        return Ok(());
    }
    let author = person_row(tx, &id.author)?;
    tx.execute(
        "INSERT INTO messages(at, room, author, time) VALUES (?1, ?2, ?3, ?4)",
        params![at, room_n, author, time],
    )
    .map_err(index_error)?;
    tx.execute(
        "INSERT INTO words(rowid, text) VALUES (?1, ?2)",
        params![at, text],
    )
    .map_err(index_error)?;
    Ok(())
}

/// A message's time as a row number (`None` past what a row can hold: only a forger's).
fn time_row(id: &ItemId) -> Option<i64> {
    i64::try_from(id.time.raw())
        .ok()
        .filter(|t| *t <= i64::MAX - SAME_TIME_ROWS)
}

fn to_row(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn message_id(server: &[u8], account: String, time: i64) -> Option<MessageId> {
    let server: [u8; 32] = server.try_into().ok()?;
    Some(ItemId {
        time: archive_core::Timestamp::from_raw(u64::try_from(time).ok()?),
        author: Person {
            server: PublicKey::from_bytes(server),
            account,
        },
    })
}

/// The row numbers of the rooms in `authorities`, for an SQL list.
fn readable_rooms(
    db: &Connection,
    authorities: &HashMap<RoomId, Arc<Authority>>,
) -> Result<Vec<String>, ChatError> {
    let mut statement = db
        .prepare_cached("SELECT n FROM rooms WHERE id = ?1")
        .map_err(index_error)?;
    let mut out = Vec::new();
    for room in authorities.keys() {
        let n: Option<i64> = statement
            .query_row([room.to_string()], |r| r.get(0))
            .optional()
            .map_err(index_error)?;
        out.extend(n.map(|n| n.to_string()));
    }
    Ok(out)
}

/// The FTS5 expression for a person's query: every word quoted (so nothing they type is
/// FTS5 syntax), and matched as a prefix when it is long enough to be one.
fn match_expression(query: &str) -> Result<String, ChatError> {
    if query.len() > MAX_QUERY_LEN {
        return Err(ChatError::Invalid(format!(
            "a search is at most {MAX_QUERY_LEN} bytes long"
        )));
    }
    let words: Vec<&str> = query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    if words.is_empty() {
        return Err(ChatError::Invalid(
            "a search needs at least one word (letters or digits)".into(),
        ));
    }
    if words.len() > MAX_QUERY_WORDS {
        return Err(ChatError::Invalid(format!(
            "a search has at most {MAX_QUERY_WORDS} words"
        )));
    }
    Ok(words
        .iter()
        .map(|w| {
            if w.chars().count() < MIN_PREFIX {
                format!("\"{w}\"")
            } else {
                format!("\"{w}\"*")
            }
        })
        .collect::<Vec<_>>()
        .join(" "))
}
