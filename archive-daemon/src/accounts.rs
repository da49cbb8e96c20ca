//! Sign-in for the web UI: passwords, sessions and invites of this server's people, in
//! `accounts.redb` in the data folder. Local to this server: nothing here is an entry of
//! the store, so nothing here is ever offered to a peer. Who the people are (names, roles)
//! is the messenger's directory ([`chat::Chat::accounts`]); this file only says how each
//! signs in.
//!
//! Secrets are kept as their BLAKE3 hashes (session tokens, invite codes) or as Argon2id
//! PHC strings (passwords), so a copy of the file lets nobody sign in. Sessions do not slide:
//! a request reads its session and writes nothing, so an idle phone costs the SD card
//! nothing (ARCHITECTURE.md, "The web UI").

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

/// The file's name in the data folder.
pub(crate) const FILE: &str = "accounts.redb";

/// Shortest password accepted.
pub(crate) const MIN_PASSWORD_LEN: usize = 8;
/// Longest password accepted, in bytes (what reaches Argon2 is bounded).
pub(crate) const MAX_PASSWORD_LEN: usize = 256;
/// How long a session lasts from sign-in.
pub(crate) const SESSION_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);
/// How long an invite stays usable unless told otherwise.
pub(crate) const INVITE_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);
/// Open invites a server keeps at most (expired ones are dropped first).
pub(crate) const MAX_OPEN_INVITES: usize = 1000;

/// OWASP's Argon2id settings: 19 MiB, two passes, one lane.
const ARGON2_MEMORY_KIB: u32 = 19 * 1024;
const ARGON2_PASSES: u32 = 2;
const ARGON2_LANES: u32 = 1;

/// account -> PHC string.
const PASSWORDS: TableDefinition<&str, &str> = TableDefinition::new("passwords");
/// BLAKE3(session token) -> postcard [`Session`].
const SESSIONS: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("sessions");
/// BLAKE3(invite code) -> postcard [`Invite`].
const INVITES: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("invites");

/// What went wrong; each says what to do.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AccountsError {
    /// The password is too short or too long.
    #[error("a password needs {MIN_PASSWORD_LEN} to {MAX_PASSWORD_LEN} bytes; this one has {0}")]
    BadPassword(usize),
    /// Name and password do not match (or no such account): the same answer for both.
    #[error("wrong name or password")]
    WrongPassword,
    /// The invite code is unknown, used or expired: the same answer for all three.
    #[error("this invite code is not valid (unknown, already used or expired)")]
    BadInvite,
    /// Too many open invites.
    #[error("{MAX_OPEN_INVITES} invites are open already; remove some first")]
    TooManyInvites,
    /// The file could not be read or written.
    #[error("the sign-in file {path}: {message}")]
    Storage { path: String, message: String },
}

/// A signed-in browser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Session {
    /// Whose.
    pub(crate) account: String,
    /// The token its forms and scripts send back with every change (CSRF).
    pub(crate) csrf: String,
    /// When it was made and when it ends (Unix milliseconds).
    pub(crate) created_ms: u64,
    pub(crate) expires_ms: u64,
}

/// An invite that is still open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct Invite {
    /// The admin who made it.
    pub(crate) by: String,
    pub(crate) created_ms: u64,
    pub(crate) expires_ms: u64,
}

/// An open invite as an admin sees it: never its code (only its hash is kept).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub(crate) struct InviteInfo {
    /// The first characters of the code's hash: enough to tell invites apart and cancel one.
    pub(crate) id: String,
    #[serde(flatten)]
    pub(crate) invite: Invite,
}

/// The sign-in file.
pub(crate) struct Accounts {
    db: redb::Database,
    path: String,
    argon2: Argon2<'static>,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts")
            .field("path", &self.path)
            .finish()
    }
}

impl Accounts {
    /// Opens (or creates) `accounts.redb` in `dir`.
    pub(crate) fn open(dir: &Path) -> Result<Accounts, AccountsError> {
        let path = dir.join(FILE);
        let shown = path.display().to_string();
        let db = redb::Database::create(&path).map_err(|e| storage(&shown, e))?;
        let accounts = Accounts {
            db,
            path: shown,
            argon2: argon2_id(),
        };
        // Tables exist from the start, so reads never meet a missing one.
        accounts.write(|tx| {
            tx.open_table(PASSWORDS)?;
            tx.open_table(SESSIONS)?;
            tx.open_table(INVITES)?;
            Ok(())
        })?;
        Ok(accounts)
    }

    /// Sets `account`'s password (a new account's, or a reset). Every session it had ends.
    /// Slow on purpose (Argon2id): callers bound how many run at once.
    pub(crate) fn set_password(&self, account: &str, password: &str) -> Result<(), AccountsError> {
        check_password(password)?;
        let phc = self
            .argon2
            .hash_password(password.as_bytes())
            .map_err(|e| storage(&self.path, e))?
            .to_string();
        self.write(|tx| {
            tx.open_table(PASSWORDS)?.insert(account, phc.as_str())?;
            end_sessions_of(tx, account)?;
            Ok(())
        })
    }

    /// Whether `account` has a password here.
    pub(crate) fn has_password(&self, account: &str) -> Result<bool, AccountsError> {
        let tx = self.db.begin_read().map_err(|e| storage(&self.path, e))?;
        let table = tx
            .open_table(PASSWORDS)
            .map_err(|e| storage(&self.path, e))?;
        Ok(table
            .get(account)
            .map_err(|e| storage(&self.path, e))?
            .is_some())
    }

    /// Checks `password` for `account`. Takes as long for an unknown account as for a
    /// known one, so timing does not tell which names exist. Slow on purpose (Argon2id).
    pub(crate) fn check_password(
        &self,
        account: &str,
        password: &str,
    ) -> Result<(), AccountsError> {
        if password.len() > MAX_PASSWORD_LEN {
            return Err(AccountsError::WrongPassword);
        }
        let stored = {
            let tx = self.db.begin_read().map_err(|e| storage(&self.path, e))?;
            let table = tx
                .open_table(PASSWORDS)
                .map_err(|e| storage(&self.path, e))?;
            let got = table.get(account).map_err(|e| storage(&self.path, e))?;
            got.map(|v| v.value().to_owned())
        };
        let Some(stored) = stored else {
            // The same work as a real check, thrown away.
            let _ = self.argon2.hash_password(password.as_bytes());
            return Err(AccountsError::WrongPassword);
        };
        let parsed = PasswordHash::new(&stored).map_err(|e| storage(&self.path, e))?;
        self.argon2
            .verify_password(password.as_bytes(), &parsed)
            .map_err(|_| AccountsError::WrongPassword)
    }

    /// Forgets `account`: its password and every session (when a person is removed).
    pub(crate) fn remove(&self, account: &str) -> Result<(), AccountsError> {
        self.write(|tx| {
            tx.open_table(PASSWORDS)?.remove(account)?;
            end_sessions_of(tx, account)?;
            Ok(())
        })
    }

    /// Starts a session for `account` (after its password was checked): the token for the
    /// cookie, and the session. `replaces`, the token the browser had, ends (rotation).
    pub(crate) fn start_session(
        &self,
        account: &str,
        replaces: Option<&str>,
    ) -> Result<(String, Session), AccountsError> {
        let token = random_code(32);
        let now = now_ms();
        let session = Session {
            account: account.to_owned(),
            csrf: random_code(16),
            created_ms: now,
            expires_ms: now.saturating_add(SESSION_LIFETIME.as_millis() as u64),
        };
        let bytes = postcard::to_stdvec(&session).map_err(|e| storage(&self.path, e))?;
        self.write(|tx| {
            let mut table = tx.open_table(SESSIONS)?;
            if let Some(old) = replaces {
                table.remove(hash(old))?;
            }
            table.insert(hash(&token), bytes.as_slice())?;
            Ok(())
        })?;
        Ok((token, session))
    }

    /// The live session of a cookie's token, if any. Reads only.
    pub(crate) fn session(&self, token: &str) -> Result<Option<Session>, AccountsError> {
        if token.len() > 128 {
            return Ok(None);
        }
        let tx = self.db.begin_read().map_err(|e| storage(&self.path, e))?;
        let table = tx
            .open_table(SESSIONS)
            .map_err(|e| storage(&self.path, e))?;
        let Some(bytes) = table.get(hash(token)).map_err(|e| storage(&self.path, e))? else {
            return Ok(None);
        };
        let session: Session =
            postcard::from_bytes(bytes.value()).map_err(|e| storage(&self.path, e))?;
        Ok((session.expires_ms > now_ms()).then_some(session))
    }

    /// Ends one session (sign out).
    pub(crate) fn end_session(&self, token: &str) -> Result<(), AccountsError> {
        self.write(|tx| {
            tx.open_table(SESSIONS)?.remove(hash(token))?;
            Ok(())
        })
    }

    /// Ends every session of `account` (sign out everywhere); how many ended.
    pub(crate) fn end_sessions(&self, account: &str) -> Result<usize, AccountsError> {
        let mut ended = 0;
        self.write(|tx| {
            ended = end_sessions_of(tx, account)?;
            Ok(())
        })?;
        Ok(ended)
    }

    /// Makes an invite (by the admin `by`), valid for `lifetime`: its code, shown once.
    pub(crate) fn create_invite(
        &self,
        by: &str,
        lifetime: Duration,
    ) -> Result<String, AccountsError> {
        let code = random_code(10);
        let now = now_ms();
        let invite = Invite {
            by: by.to_owned(),
            created_ms: now,
            expires_ms: now.saturating_add(lifetime.as_millis() as u64),
        };
        let bytes = postcard::to_stdvec(&invite).map_err(|e| storage(&self.path, e))?;
        let mut full = false;
        self.write(|tx| {
            let mut table = tx.open_table(INVITES)?;
            let expired: Vec<[u8; 32]> = table
                .iter()?
                .filter_map(Result::ok)
                .filter(|(_, v)| {
                    postcard::from_bytes::<Invite>(v.value()).map_or(true, |i| i.expires_ms <= now)
                })
                .map(|(k, _)| k.value())
                .collect();
            for key in expired {
                table.remove(key)?;
            }
            if table.len()? as usize >= MAX_OPEN_INVITES {
                full = true;
                return Ok(());
            }
            table.insert(hash(&code), bytes.as_slice())?;
            Ok(())
        })?;
        if full {
            return Err(AccountsError::TooManyInvites);
        }
        Ok(code)
    }

    /// Uses up an invite: Ok (and it is gone) only if it is known and not expired.
    pub(crate) fn take_invite(&self, code: &str) -> Result<Invite, AccountsError> {
        let code = normalise_code(code);
        if code.is_empty() || code.len() > 64 {
            return Err(AccountsError::BadInvite);
        }
        let mut taken = None;
        self.write(|tx| {
            let mut table = tx.open_table(INVITES)?;
            let removed = table.remove(hash(&code))?;
            taken = removed.and_then(|v| postcard::from_bytes::<Invite>(v.value()).ok());
            Ok(())
        })?;
        taken
            .filter(|i| i.expires_ms > now_ms())
            .ok_or(AccountsError::BadInvite)
    }

    /// Puts back an invite taken by [`Accounts::take_invite`] when joining failed after it
    /// (the name was taken): the code stays usable.
    pub(crate) fn restore_invite(&self, code: &str, invite: &Invite) -> Result<(), AccountsError> {
        let code = normalise_code(code);
        let bytes = postcard::to_stdvec(invite).map_err(|e| storage(&self.path, e))?;
        self.write(|tx| {
            tx.open_table(INVITES)?
                .insert(hash(&code), bytes.as_slice())?;
            Ok(())
        })
    }

    /// The open (unexpired) invites.
    pub(crate) fn invites(&self) -> Result<Vec<InviteInfo>, AccountsError> {
        let tx = self.db.begin_read().map_err(|e| storage(&self.path, e))?;
        let table = tx.open_table(INVITES).map_err(|e| storage(&self.path, e))?;
        let now = now_ms();
        let mut out = Vec::new();
        for row in table.iter().map_err(|e| storage(&self.path, e))? {
            let (k, v) = row.map_err(|e| storage(&self.path, e))?;
            let Ok(invite) = postcard::from_bytes::<Invite>(v.value()) else {
                continue;
            };
            if invite.expires_ms > now {
                out.push(InviteInfo {
                    id: invite_id(&k.value()),
                    invite,
                });
            }
        }
        out.sort_by_key(|i| i.invite.created_ms);
        Ok(out)
    }

    /// Cancels the open invite whose id ([`InviteInfo::id`]) is `id`; whether one was.
    pub(crate) fn cancel_invite(&self, id: &str) -> Result<bool, AccountsError> {
        let mut found = false;
        self.write(|tx| {
            let mut table = tx.open_table(INVITES)?;
            let key = table
                .iter()?
                .filter_map(Result::ok)
                .map(|(k, _)| k.value())
                .find(|k| invite_id(k) == id);
            if let Some(key) = key {
                table.remove(key)?;
                found = true;
            }
            Ok(())
        })?;
        Ok(found)
    }

    fn write(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<(), redb::Error>,
    ) -> Result<(), AccountsError> {
        let tx = self.db.begin_write().map_err(|e| storage(&self.path, e))?;
        f(&tx).map_err(|e| storage(&self.path, e))?;
        tx.commit().map_err(|e| storage(&self.path, e))
    }
}

/// Argon2id with OWASP's settings.
fn argon2_id() -> Argon2<'static> {
    let params = Params::new(ARGON2_MEMORY_KIB, ARGON2_PASSES, ARGON2_LANES, None)
        .expect("OWASP's Argon2 settings are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Refuses a password that is too short or too long.
pub(crate) fn check_password(password: &str) -> Result<(), AccountsError> {
    if (MIN_PASSWORD_LEN..=MAX_PASSWORD_LEN).contains(&password.len()) {
        Ok(())
    } else {
        Err(AccountsError::BadPassword(password.len()))
    }
}

fn end_sessions_of(tx: &redb::WriteTransaction, account: &str) -> Result<usize, redb::Error> {
    let mut table = tx.open_table(SESSIONS)?;
    let theirs: Vec<[u8; 32]> = table
        .iter()?
        .filter_map(Result::ok)
        .filter(|(_, v)| {
            postcard::from_bytes::<Session>(v.value()).map_or(true, |s| s.account == account)
        })
        .map(|(k, _)| k.value())
        .collect();
    for key in &theirs {
        table.remove(*key)?;
    }
    Ok(theirs.len())
}

fn hash(secret: &str) -> [u8; 32] {
    *blake3::hash(secret.as_bytes()).as_bytes()
}

fn invite_id(key: &[u8; 32]) -> String {
    data_encoding::HEXLOWER.encode(&key[..4])
}

/// Invite codes are read aloud and typed on phones: case and spaces and dashes do not count.
fn normalise_code(code: &str) -> String {
    code.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// `bytes` random bytes as lowercase base32 (no padding): easy to type, safe in a cookie.
fn random_code(bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    getrandom::fill(&mut raw).expect("the system's random source works");
    data_encoding::BASE32_NOPAD
        .encode(&raw)
        .to_ascii_lowercase()
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn storage(path: &str, e: impl std::fmt::Display) -> AccountsError {
    AccountsError::Storage {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accounts() -> (tempfile::TempDir, Accounts) {
        let dir = tempfile::tempdir().unwrap();
        let accounts = Accounts::open(dir.path()).unwrap();
        (dir, accounts)
    }

    #[test]
    fn passwords_check_and_reset_ends_sessions() {
        let (_dir, a) = accounts();
        a.set_password("ana", "correct horse").unwrap();
        a.check_password("ana", "correct horse").unwrap();
        assert!(matches!(
            a.check_password("ana", "correct horsf"),
            Err(AccountsError::WrongPassword)
        ));
        assert!(matches!(
            a.check_password("nobody", "correct horse"),
            Err(AccountsError::WrongPassword)
        ));
        let (token, _) = a.start_session("ana", None).unwrap();
        assert!(a.session(&token).unwrap().is_some());
        a.set_password("ana", "battery staple").unwrap();
        assert!(
            a.session(&token).unwrap().is_none(),
            "a reset ends sessions"
        );
        a.check_password("ana", "battery staple").unwrap();
        assert!(matches!(
            a.set_password("ana", "short"),
            Err(AccountsError::BadPassword(5))
        ));
        let long = "x".repeat(MAX_PASSWORD_LEN + 1);
        assert!(a.set_password("ana", &long).is_err());
        assert!(a.check_password("ana", &long).is_err());
    }

    #[test]
    fn the_file_keeps_no_secret_in_the_clear() {
        let (dir, a) = accounts();
        a.set_password("ana", "correct horse").unwrap();
        let (token, session) = a.start_session("ana", None).unwrap();
        let code = a.create_invite("ana", INVITE_LIFETIME).unwrap();
        drop(a);
        let bytes = std::fs::read(dir.path().join(FILE)).unwrap();
        let contains = |needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
        assert!(contains("ana"), "the account name is there to be found");
        for secret in ["correct horse", token.as_str(), code.as_str()] {
            assert!(!contains(secret), "{secret} is in the file");
        }
        // The CSRF token is a per-session value the page already shows: it may be stored.
        assert!(!session.csrf.is_empty());
    }

    #[test]
    fn sessions_rotate_and_end_everywhere() {
        let (_dir, a) = accounts();
        let (first, _) = a.start_session("ana", None).unwrap();
        let (second, _) = a.start_session("ana", Some(&first)).unwrap();
        assert!(a.session(&first).unwrap().is_none(), "rotated away");
        let (phone, _) = a.start_session("ana", None).unwrap();
        let (other, _) = a.start_session("bo", None).unwrap();
        assert_eq!(a.end_sessions("ana").unwrap(), 2);
        assert!(a.session(&second).unwrap().is_none());
        assert!(a.session(&phone).unwrap().is_none());
        assert_eq!(a.session(&other).unwrap().unwrap().account, "bo");
        a.end_session(&other).unwrap();
        assert!(a.session(&other).unwrap().is_none());
        assert!(a.session(&"z".repeat(10_000)).unwrap().is_none());
    }

    #[test]
    fn invites_are_single_use_and_expire() {
        let (_dir, a) = accounts();
        let code = a.create_invite("ana", INVITE_LIFETIME).unwrap();
        assert_eq!(a.invites().unwrap().len(), 1);
        // Typed on a phone: upper case, spaces and dashes are the same code.
        let typed = format!(" {}-{} ", &code[..4].to_uppercase(), &code[4..]);
        let invite = a.take_invite(&typed).unwrap();
        assert_eq!(invite.by, "ana");
        assert!(matches!(
            a.take_invite(&code),
            Err(AccountsError::BadInvite)
        ));
        a.restore_invite(&code, &invite).unwrap();
        a.take_invite(&code).unwrap();

        let expired = a.create_invite("ana", Duration::ZERO).unwrap();
        assert!(a.invites().unwrap().is_empty());
        assert!(matches!(
            a.take_invite(&expired),
            Err(AccountsError::BadInvite)
        ));
        assert!(matches!(a.take_invite(""), Err(AccountsError::BadInvite)));

        let cancel = a.create_invite("ana", INVITE_LIFETIME).unwrap();
        let id = a.invites().unwrap()[0].id.clone();
        assert!(a.cancel_invite(&id).unwrap());
        assert!(!a.cancel_invite(&id).unwrap());
        assert!(a.take_invite(&cancel).is_err());
    }

    #[test]
    fn removing_a_person_forgets_password_and_sessions() {
        let (_dir, a) = accounts();
        a.set_password("bo", "correct horse").unwrap();
        let (token, _) = a.start_session("bo", None).unwrap();
        a.remove("bo").unwrap();
        assert!(a.session(&token).unwrap().is_none());
        assert!(!a.has_password("bo").unwrap());
        assert!(a.check_password("bo", "correct horse").is_err());
    }
}
