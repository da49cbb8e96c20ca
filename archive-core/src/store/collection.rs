//! [`Collection`]: one collection of a store, its name checked once.

use std::path::Path;

use redb::ReadableDatabase;

use super::Store;
use crate::entry::{EntryValue, FileRef, MessageFields, SignedEntry};
use crate::error::{AddError, EntryError, ExportError, StorageError};
use crate::format::layout::{ENTRIES, SYNC_LOG};
use crate::identity::PeerId;
use crate::names::{validate_collection, NameError};
use crate::store::{AddProgress, AddReport, ExportReport, StoreSyncIndex, ViewPoint};
use crate::sync::Agreement;

/// A page of [`Collection::arrivals`].
#[derive(Debug, Clone, Default)]
pub struct Arrivals {
    /// The entries, in arrival order.
    pub entries: Vec<SignedEntry>,
    /// Where the next page starts (past the last entry returned; `from` if none was).
    pub next: u64,
}

/// One collection of a [`Store`]: what an embedding program reads and writes. Get it from
/// [`Store::collection`], which checks the name once.
///
/// A collection is a grow-only set of signed entries; its view shows, per key, the latest
/// entry's file. Writing means adding an entry ([`Collection::put`], [`Collection::remove`],
/// [`Collection::add_bytes`], [`Collection::add_path`]); reading comes a page at a time
/// ([`Collection::list`], [`Collection::diff`], [`Collection::history`]).
///
/// Cheap to clone; it borrows the store.
#[derive(Debug, Clone)]
pub struct Collection<'s> {
    pub(super) store: &'s Store,
    name: String,
}

impl Store {
    /// The collection named `name` (it need not have entries yet). Fails if the name breaks
    /// the naming rules (see [`validate_collection`]).
    pub fn collection(&self, name: &str) -> Result<Collection<'_>, NameError> {
        validate_collection(name)?;
        Ok(self.collection_unchecked(name))
    }

    /// A handle on a collection whose name this store already holds (it was checked when it
    /// was written, possibly by an earlier version with other rules).
    pub(crate) fn collection_unchecked(&self, name: &str) -> Collection<'_> {
        Collection {
            store: self,
            name: name.to_owned(),
        }
    }
}

impl<'s> Collection<'s> {
    /// The collection's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The store it belongs to.
    pub fn store(&self) -> &'s Store {
        self.store
    }

    /// Writes a signed entry that puts `file` at `key`. The file's blobs must be in the store
    /// (they are after [`Collection::add_bytes`] or [`Collection::add_path`] stored them
    /// under another key, or after a transfer).
    pub fn put(&self, key: &str, file: FileRef) -> Result<SignedEntry, EntryError> {
        let mut written = self.store.write_entries(
            &self.name,
            &[(key.to_owned(), EntryValue::File(file))],
            &MessageFields::default(),
        )?;
        written.pop().ok_or_else(|| {
            EntryError::Storage(StorageError::Damaged("a write returned no entry".into()))
        })
    }

    /// Removes keys by writing tombstones. Every key must currently hold a file; if one does
    /// not, nothing is written ([`EntryError::NoSuchKey`]).
    pub fn remove<K: AsRef<str>>(&self, keys: &[K]) -> Result<Vec<SignedEntry>, EntryError> {
        for key in keys {
            if self.get(key.as_ref())?.is_none() {
                return Err(EntryError::NoSuchKey {
                    collection: self.name.clone(),
                    key: key.as_ref().to_owned(),
                });
            }
        }
        let values: Vec<_> = keys
            .iter()
            .map(|k| (k.as_ref().to_owned(), EntryValue::Tombstone))
            .collect();
        self.store
            .write_entries(&self.name, &values, &MessageFields::default())
    }

    /// Stores `data` as a file (chunked if large) and puts it at `key`. Returns the entry, or
    /// `None` if the key already held exactly this content.
    pub fn add_bytes(&self, key: &str, data: &[u8]) -> Result<Option<SignedEntry>, AddError> {
        self.store
            .add_bytes(&self.name, key, data, &MessageFields::default())
    }

    /// Writes one entry with the messenger's fields: `content` stored as a file at `key`, or,
    /// for `None`, a tombstone. Unlike [`Collection::remove`], a tombstone may be written for
    /// a key that holds nothing here (a deletion may arrive before what it deletes). Returns
    /// `None` if the key already held exactly this content. The entry must pass the
    /// collection's rules ([`Store::add_rules`]).
    pub fn write_message(
        &self,
        key: &str,
        content: Option<&[u8]>,
        message: &MessageFields,
    ) -> Result<Option<SignedEntry>, AddError> {
        match content {
            Some(data) => self.store.add_bytes(&self.name, key, data, message),
            None => {
                let value = [(key.to_owned(), EntryValue::Tombstone)];
                let mut written = self.store.write_entries(&self.name, &value, message)?;
                Ok(written.pop())
            }
        }
    }

    /// Writes many files with the messenger's fields in one commit, as
    /// [`Collection::write_message`] writes one (an import, a bridge catching up): the
    /// entries written, none for a key that already held exactly its content. Keys must
    /// differ; every entry must pass the collection's rules, or nothing is written.
    pub fn write_messages(
        &self,
        items: &[(&str, &[u8])],
        message: &MessageFields,
    ) -> Result<Vec<SignedEntry>, AddError> {
        self.store.add_many_bytes(&self.name, items, message)
    }

    /// Entries in the order this store received them (or wrote them), starting at the
    /// insertion counter `from`, at most `limit` of them. [`Arrivals::next`] is where the next
    /// call starts: a resume token that stays valid across restarts (the counter only grows).
    pub fn arrivals(&self, from: u64, limit: usize) -> Result<Arrivals, StorageError> {
        crate::store::guarded(|| {
            let tx = self.store.db.begin_read()?;
            let log = tx.open_table(SYNC_LOG)?;
            let entries = tx.open_table(ENTRIES)?;
            let mut out = Arrivals {
                entries: Vec::new(),
                next: from,
            };
            let name = self.name.as_str();
            for row in log.range((name, from)..=(name, u64::MAX))?.take(limit) {
                let (seq, item) = row?;
                let key = crate::sync::SyncKey::from_bytes(&item.value());
                let entry = super::decode_stored_entry(&entries, (key.time, *key.id.as_bytes()))?;
                out.entries.push(entry);
                out.next = seq.value().1 + 1;
            }
            Ok(out)
        })
    }

    /// Where [`Collection::arrivals`] would start to return only what arrives from now on:
    /// one past the last insertion counter (0 for a collection that has received nothing).
    pub fn arrivals_end(&self) -> Result<u64, StorageError> {
        crate::store::guarded(|| {
            let tx = self.store.db.begin_read()?;
            let log = tx.open_table(SYNC_LOG)?;
            let name = self.name.as_str();
            let last = log.range((name, 0)..=(name, u64::MAX))?.next_back();
            Ok(match last {
                Some(row) => row?.0.value().1 + 1,
                None => 0,
            })
        })
    }

    /// Adds a file or folder (recursively). A file's key is `as_key` or its name; a folder's
    /// files go under `as_key` (empty: at the root) or the folder's name. Symbolic links and
    /// special files are skipped and reported; a file that cannot be read is reported in
    /// [`AddReport::failed`] while the rest is added.
    pub fn add_path(
        &self,
        path: &Path,
        as_key: Option<&str>,
        progress: &mut dyn AddProgress,
    ) -> Result<AddReport, AddError> {
        self.store.add_path(&self.name, path, as_key, progress)
    }

    /// Writes every file of a view under `dest` (created if missing), byte for byte.
    ///
    /// A file already there with the same content is left alone; one with different content
    /// (or a link where a file goes) is an error unless `overwrite`, and the export then
    /// writes nothing. Nothing is written outside `dest`: links below it are never followed.
    /// Keys that cannot be written safely (a link or a file where a folder goes, a key that is
    /// also a folder of other keys, a name the file system refuses) are skipped and listed
    /// in [`ExportReport::skipped`]; everything else is exported.
    pub fn export(
        &self,
        at: ViewPoint<'_>,
        dest: &Path,
        overwrite: bool,
    ) -> Result<ExportReport, ExportError> {
        self.store.export(self, at, dest, overwrite)
    }

    /// A consistent view of the collection's entries for a reconciliation session (see
    /// [`crate::sync`]). It holds a read transaction until dropped.
    pub fn sync_index(&self) -> Result<StoreSyncIndex, StorageError> {
        self.store.sync_index(&self.name)
    }

    /// What this store last agreed with `peer` about this collection.
    pub fn agreement(&self, peer: &PeerId) -> Result<Option<Agreement>, StorageError> {
        self.store.agreement(peer, &self.name)
    }

    /// Remembers that this store and `peer` held the same entries of this collection at
    /// these insertion counters (the next reconciliation can then take the fast path).
    pub fn record_agreement(
        &self,
        peer: &PeerId,
        agreement: Agreement,
    ) -> Result<(), StorageError> {
        self.store.record_agreement(peer, &self.name, agreement)
    }
}
