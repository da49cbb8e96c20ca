//! Rules an embedding program adds for the collections it owns: who may write which key.
//!
//! The store checks signatures, names, times and content for every collection alike. A
//! program that gives a collection a meaning (the messenger: a message's key names its author,
//! only a moderator may delete another's message) adds its rules for a family of collections
//! with [`Store::add_rules`]; the store then asks them before it keeps any entry of those
//! collections, written here or received from a peer.

use std::sync::Arc;

use super::Store;
use crate::entry::SignedEntry;

/// Why an entry breaks a collection's rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleBreach {
    /// What is wrong, for a person to read.
    pub reason: String,
    /// Whether the entry can never become acceptable (it breaks a rule that depends on the
    /// entry alone). A lasting breach of a received entry puts it on the deny list; any other
    /// is forgotten, and the entry is checked again when a peer offers it again (the rules may
    /// accept it once more of the collection is known here).
    pub lasting: bool,
}

impl RuleBreach {
    /// A breach that depends on the entry alone.
    pub fn lasting(reason: impl Into<String>) -> Self {
        RuleBreach {
            reason: reason.into(),
            lasting: true,
        }
    }

    /// A breach that may go away once more is known (a role granted, a ban lifted).
    pub fn for_now(reason: impl Into<String>) -> Self {
        RuleBreach {
            reason: reason.into(),
            lasting: false,
        }
    }
}

/// What an embedding program checks before the store keeps an entry of its collections.
///
/// `check` is called outside any write transaction, with the store as it is before the entry
/// (and the entries that arrive with it) are inserted; it may read the store. The entry's
/// signature, names and time have been checked already. Its content may not be in the store
/// yet (a pull asks before fetching, so that what breaks the rules is not fetched): check what
/// the entry itself says.
pub trait EntryRules: Send + Sync + std::fmt::Debug {
    /// `Ok` if the store may keep `entry`.
    fn check(&self, store: &Store, entry: &SignedEntry) -> Result<(), RuleBreach>;
}

/// What an embedding program is told after entries were inserted: the collection's name,
/// once per committed transaction that inserted entries into it (written here or received).
pub type NewEntries = Arc<dyn Fn(&str) + Send + Sync>;

/// The rules added to a store, by collection name prefix, and who is told of new entries.
#[derive(Default)]
pub(crate) struct RuleBook {
    rules: std::sync::RwLock<Vec<(String, Arc<dyn EntryRules>)>>,
    watchers: std::sync::RwLock<Vec<NewEntries>>,
}

impl std::fmt::Debug for RuleBook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleBook")
            .field("rules", &self.read().len())
            .field("watchers", &self.watchers().len())
            .finish()
    }
}

impl RuleBook {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<(String, Arc<dyn EntryRules>)>> {
        self.rules
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The rules for `collection`, if any: those of the longest prefix that matches.
    fn for_collection(&self, collection: &str) -> Option<Arc<dyn EntryRules>> {
        self.read()
            .iter()
            .filter(|(prefix, _)| collection.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(_, rules)| Arc::clone(rules))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    fn watchers(&self) -> std::sync::RwLockReadGuard<'_, Vec<NewEntries>> {
        self.watchers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn has_watchers(&self) -> bool {
        !self.watchers().is_empty()
    }

    pub(crate) fn notify(&self, collection: &str) {
        for watcher in self.watchers().iter() {
            watcher(collection);
        }
    }
}

impl Store {
    /// Adds rules that every entry of a collection whose name starts with `prefix` must pass
    /// before this store keeps it: entries written here (the write fails with
    /// [`EntryError::BrokeRules`](crate::EntryError::BrokeRules)) and entries received from
    /// peers (refused with [`Refusal::BrokeRules`](crate::Refusal::BrokeRules), not fetched).
    /// Where two prefixes match, the longer one's rules apply. Adding rules for a prefix
    /// again replaces them.
    ///
    /// Entries already in the store are not checked again.
    pub fn add_rules(&self, prefix: &str, rules: Arc<dyn EntryRules>) {
        let mut book = self
            .rules
            .rules
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        book.retain(|(p, _)| p != prefix);
        book.push((prefix.to_owned(), rules));
    }

    /// Calls `watcher` with a collection's name after every committed transaction that
    /// inserted entries into it, written here or received. It runs on the thread that
    /// committed, so it must return at once (send on a channel, wake a task).
    pub fn watch_new_entries(&self, watcher: NewEntries) {
        self.rules
            .watchers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(watcher);
    }

    /// Checks `entry` against the rules of its collection (`Ok` when it has none).
    pub(crate) fn check_rules(&self, entry: &SignedEntry) -> Result<(), RuleBreach> {
        if self.rules.is_empty() {
            return Ok(());
        }
        match self.rules.for_collection(&entry.entry().collection) {
            Some(rules) => rules.check(self, entry),
            None => Ok(()),
        }
    }
}
