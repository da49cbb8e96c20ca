//! People: the accounts of this server and the directory every server publishes (its
//! community's name, its people's display names and roles), which paired servers sync, so
//! people of other communities appear as `name@community`.
//!
//! An account's name is its stable id (it is in every message key it writes) and never
//! changes; its display name and role do. The first account made on a server is its admin;
//! only admins make, remove and promote accounts and name the community.

use archive_core::{EntryValue, MessageFields, PublicKey, SignedEntry, Store};

use crate::engine::Chat;
use crate::error::ChatError;
use crate::format::{CommunityProfile, Profile, ServerRole};
use crate::names::{directory_collection, DirectoryKey, Person};

/// An account of this server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Its name: its stable id, the `name` of `name@community`.
    pub name: String,
    /// What is published of it.
    pub profile: Profile,
}

impl Chat {
    /// Makes an account. The server's first account needs no `by` and becomes its admin;
    /// every later one is made by an admin (`by`) and starts as a member.
    pub fn create_account(
        &self,
        by: Option<&str>,
        account: &str,
        display_name: &str,
    ) -> Result<Account, ChatError> {
        archive_core::validate_person(account)?;
        let first = self.accounts()?.is_empty();
        let role = if first {
            ServerRole::Admin
        } else {
            self.admin(by)?;
            ServerRole::Member
        };
        if self.account(account)?.is_some() {
            return Err(ChatError::Invalid(format!("the account {account} exists")));
        }
        let profile = Profile {
            display_name: display_name.to_owned(),
            role,
            joined: self.store().next_time(),
        };
        self.write_profile(by.unwrap_or(account), account, &profile)?;
        Ok(Account {
            name: account.to_owned(),
            profile,
        })
    }

    /// Changes the display name of `account` (its own, or any, by an admin).
    pub fn set_display_name(&self, by: &str, account: &str, name: &str) -> Result<(), ChatError> {
        if by != account {
            self.admin(Some(by))?;
        }
        let mut profile = self.existing(account)?.profile;
        profile.display_name = name.to_owned();
        self.write_profile(by, account, &profile)
    }

    /// Changes the role of `account` on this server (by an admin; the last admin stays one).
    pub fn set_server_role(
        &self,
        by: &str,
        account: &str,
        role: ServerRole,
    ) -> Result<(), ChatError> {
        self.admin(Some(by))?;
        let mut profile = self.existing(account)?.profile;
        if profile.role == ServerRole::Admin && role != ServerRole::Admin {
            self.not_last_admin(account)?;
        }
        profile.role = role;
        self.write_profile(by, account, &profile)
    }

    /// Removes an account (by an admin; not the last admin). What it wrote stays; it can
    /// write nothing more, and its name cannot be given to anyone else (messages name it).
    pub fn remove_account(&self, by: &str, account: &str) -> Result<(), ChatError> {
        self.admin(Some(by))?;
        if self.existing(account)?.profile.role == ServerRole::Admin {
            self.not_last_admin(account)?;
        }
        let key = DirectoryKey::Person(account.to_owned()).to_key();
        // A removed account keeps a tombstone: `account` then finds nothing, and
        // `create_account` refuses the name (see `name_was_used`).
        self.directory()?.write_message(&key, None, &fields(by))?;
        Ok(())
    }

    /// Names the community (by an admin): what follows the `@` for its people elsewhere.
    pub fn set_community_name(&self, by: &str, name: &str) -> Result<(), ChatError> {
        self.admin(Some(by))?;
        let profile = CommunityProfile {
            name: name.to_owned(),
        };
        profile.check().map_err(|e| ChatError::Invalid(e.0))?;
        self.directory()?.write_message(
            &DirectoryKey::Community.to_key(),
            Some(&profile.encode()),
            &fields(by),
        )?;
        Ok(())
    }

    /// The account `name` of this server, if it exists.
    pub fn account(&self, name: &str) -> Result<Option<Account>, ChatError> {
        let Some(profile) = self.profile(&self.person(name))? else {
            return Ok(None);
        };
        Ok(Some(Account {
            name: name.to_owned(),
            profile,
        }))
    }

    /// Every account of this server, by name.
    pub fn accounts(&self) -> Result<Vec<Account>, ChatError> {
        let directory = self.directory()?;
        let mut out = Vec::new();
        for item in directory.list(archive_core::ViewPoint::Current, "p")? {
            let item = item?;
            let Some(DirectoryKey::Person(name)) = DirectoryKey::parse(&item.key) else {
                continue;
            };
            if let Some(profile) = read_profile(self.store(), &item.file) {
                out.push(Account { name, profile });
            }
        }
        Ok(out)
    }

    /// What `person`'s server publishes of them, if this server has it.
    pub fn profile(&self, person: &Person) -> Result<Option<Profile>, ChatError> {
        let collection = self
            .store()
            .collection(&directory_collection(&person.server))?;
        let key = DirectoryKey::Person(person.account.clone()).to_key();
        Ok(collection
            .get(&key)?
            .and_then(|item| read_profile(self.store(), &item.file)))
    }

    /// The name a community's server gives itself, if this server has it.
    pub fn community_name(&self, server: &PublicKey) -> Result<Option<String>, ChatError> {
        let collection = self.store().collection(&directory_collection(server))?;
        let Some(item) = collection.get(&DirectoryKey::Community.to_key())? else {
            return Ok(None);
        };
        let mut bytes = Vec::new();
        self.store().blobs().write_to(&item.file, &mut bytes)?;
        Ok(CommunityProfile::decode(&bytes).ok().map(|c| c.name))
    }

    /// How `person` is named to this server's people: the account name for one of its own,
    /// `name@community` for anyone else (the community's own name when this server has its
    /// directory, else the first 8 hex digits of its key).
    pub fn handle(&self, person: &Person) -> Result<String, ChatError> {
        if person.server == self.server() {
            return Ok(person.account.clone());
        }
        Ok(match self.community_name(&person.server)? {
            Some(community) => format!("{}@{community}", person.account),
            None => person.to_string(),
        })
    }

    /// `account` must be an account of this server (every write names one).
    pub(crate) fn existing(&self, account: &str) -> Result<Account, ChatError> {
        archive_core::validate_person(account)?;
        self.account(account)?
            .ok_or_else(|| ChatError::NoSuchAccount(account.to_owned()))
    }

    fn admin(&self, by: Option<&str>) -> Result<(), ChatError> {
        let by = by.ok_or_else(|| {
            ChatError::NotAllowed("only an admin makes accounts once the first exists".into())
        })?;
        if self.existing(by)?.profile.role != ServerRole::Admin {
            return Err(ChatError::NotAllowed(format!("{by} is not an admin")));
        }
        Ok(())
    }

    fn not_last_admin(&self, account: &str) -> Result<(), ChatError> {
        let admins = self.accounts()?;
        let others = admins
            .iter()
            .filter(|a| a.profile.role == ServerRole::Admin && a.name != account)
            .count();
        if others == 0 {
            return Err(ChatError::NotAllowed(format!(
                "{account} is the last admin of this server"
            )));
        }
        Ok(())
    }

    fn write_profile(&self, by: &str, account: &str, profile: &Profile) -> Result<(), ChatError> {
        profile.check().map_err(|e| ChatError::Invalid(e.0))?;
        let key = DirectoryKey::Person(account.to_owned()).to_key();
        if self.name_was_used(&key)? && self.account(account)?.is_none() {
            return Err(ChatError::Invalid(format!(
                "the account name {account} was used before: messages name it"
            )));
        }
        self.directory()?
            .write_message(&key, Some(&profile.encode()), &fields(by))?;
        Ok(())
    }

    /// Whether any version of `key` exists in this server's directory (a removed account
    /// leaves a tombstone).
    fn name_was_used(&self, key: &str) -> Result<bool, ChatError> {
        Ok(self.directory()?.history(key).next().transpose()?.is_some())
    }

    fn directory(&self) -> Result<archive_core::Collection<'_>, ChatError> {
        Ok(self
            .store()
            .collection(&directory_collection(&self.server()))?)
    }
}

fn fields(by: &str) -> MessageFields {
    MessageFields {
        person: Some(by.to_owned()),
        ..MessageFields::default()
    }
}

fn read_profile(store: &Store, file: &archive_core::FileRef) -> Option<Profile> {
    let mut bytes = Vec::new();
    store.blobs().write_to(file, &mut bytes).ok()?;
    Profile::decode(&bytes).ok()
}

/// The lasting rules of a directory entry (see `rules.rs`): written by the directory's own
/// server, a directory key, no folders, a body within its limit that decodes.
pub(crate) fn check_directory_entry(
    store: &Store,
    server: &PublicKey,
    entry: &SignedEntry,
) -> Result<(), archive_core::RuleBreach> {
    use archive_core::RuleBreach;
    let e = entry.entry();
    if &e.author != server {
        return Err(RuleBreach::lasting(format!(
            "only {} writes its directory",
            &server.to_hex()[..8]
        )));
    }
    let key = DirectoryKey::parse(&e.key)
        .ok_or_else(|| RuleBreach::lasting(format!("`{}` is not a directory key", e.key)))?;
    match &e.value {
        EntryValue::Folder => Err(RuleBreach::lasting("a directory holds no folders")),
        EntryValue::Tombstone if key == DirectoryKey::Community => {
            Err(RuleBreach::lasting("a community's name cannot be removed"))
        }
        EntryValue::Tombstone => Ok(()),
        EntryValue::File(file) => {
            if file.size > crate::format::MAX_PROFILE_BODY || file.manifest.is_some() {
                return Err(RuleBreach::lasting(format!(
                    "a profile of {} bytes is larger than the limit",
                    file.size
                )));
            }
            let mut bytes = Vec::new();
            if store.blobs().write_to(file, &mut bytes).is_ok() {
                let decoded = match key {
                    DirectoryKey::Community => CommunityProfile::decode(&bytes).map(|_| ()),
                    DirectoryKey::Person(_) => Profile::decode(&bytes).map(|_| ()),
                };
                decoded.map_err(|err| RuleBreach::lasting(err.0))?;
            }
            Ok(())
        }
    }
}
