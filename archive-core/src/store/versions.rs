//! Earlier versions and removed keys: what a file share shows as "versions" and "trash".
//!
//! A collection keeps every entry, but `gc` frees the content of versions no view or snapshot
//! shows. [`Store::keep_versions`] names collections (by prefix) whose superseded versions keep
//! their content for a while: the last `versions` file versions of each key, each for `for_millis`
//! after a newer version (or the removal) replaced it. A removed key's last version is its
//! "trash" copy, and `gc` frees it once that time has passed.

use std::ops::Bound;

use redb::{ReadableDatabase, ReadableTable};

use super::{decode_stored_entry, guarded, Collection, Page, Store, Version};
use crate::clock::Timestamp;
use crate::entry::{EntryValue, FileRef};
use crate::error::StorageError;
use crate::format::layout::{ENTRIES, HISTORY, KEEP_VERSIONS};

/// How long superseded versions of a collection's keys keep their content (see
/// [`Store::keep_versions`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepVersions {
    /// Earlier file versions kept per key (the current one is not counted).
    pub versions: u32,
    /// How long each is kept after it was superseded or removed, in milliseconds.
    pub for_millis: u64,
}

/// A key whose latest entry removed it, with the last file it held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovedKey {
    /// The key.
    pub key: String,
    /// When it was removed (the remover's clock).
    pub removed: Timestamp,
    /// The last file version before the removal, if there was one.
    pub last: Option<Version>,
}

impl Store {
    /// Keeps the content of superseded versions in collections whose name starts with
    /// `prefix` (see [`KeepVersions`]); replaces an earlier rule for the same prefix. A rule
    /// with `versions == 0` removes it. Stored in the database, so every later `gc` honours it.
    pub fn keep_versions(&self, prefix: &str, rule: KeepVersions) -> Result<(), StorageError> {
        guarded(|| {
            let tx = self.db.begin_write()?;
            {
                let mut table = tx.open_table(KEEP_VERSIONS)?;
                if rule.versions == 0 {
                    table.remove(prefix)?;
                } else {
                    table.insert(prefix, (rule.versions, rule.for_millis))?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    /// The rules set with [`Store::keep_versions`], by prefix.
    pub fn kept_versions(&self) -> Result<Vec<(String, KeepVersions)>, StorageError> {
        guarded(|| {
            let tx = self.db.begin_read()?;
            let table = match tx.open_table(KEEP_VERSIONS) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(e.into()),
            };
            let mut rules = Vec::new();
            for row in table.iter()? {
                let (k, v) = row?;
                let (versions, for_millis) = v.value();
                rules.push((
                    k.value().to_owned(),
                    KeepVersions {
                        versions,
                        for_millis,
                    },
                ));
            }
            Ok(rules)
        })
    }

    /// Calls `keep` with every superseded file a rule of [`Store::keep_versions`] keeps now:
    /// what `gc` adds to the views' and snapshots' files.
    pub(crate) fn each_kept_version(
        &self,
        mut keep: impl FnMut(&str, FileRef) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        let rules = self.kept_versions()?;
        if rules.is_empty() {
            return Ok(());
        }
        let now = self.clock().wall_millis();
        for collection in self.collection_names_inner()? {
            // The longest matching prefix decides.
            let Some(rule) = rules
                .iter()
                .filter(|(p, _)| collection.starts_with(p.as_str()))
                .max_by_key(|(p, _)| p.len())
                .map(|(_, r)| *r)
            else {
                continue;
            };
            let tx = self.db.begin_read()?;
            let history = tx.open_table(HISTORY)?;
            let entries = tx.open_table(ENTRIES)?;
            let c = collection.as_str();
            let mut key_versions: Vec<(u64, [u8; 32])> = Vec::new();
            let mut current_key: Option<String> = None;
            let mut flush = |versions: &mut Vec<(u64, [u8; 32])>| -> Result<(), StorageError> {
                versions.sort_unstable_by(|a, b| b.cmp(a));
                let mut kept = 0;
                for pair in versions.windows(2) {
                    if kept == rule.versions {
                        break;
                    }
                    let (newer, older) = (pair[0], pair[1]);
                    let superseded = Timestamp::from_raw(newer.0).unix_millis();
                    if now.saturating_sub(superseded) >= rule.for_millis {
                        // Older versions were superseded earlier still.
                        break;
                    }
                    let signed = decode_stored_entry(&entries, older)?;
                    if let EntryValue::File(file) = signed.entry().value {
                        keep(c, file)?;
                        kept += 1;
                    }
                }
                versions.clear();
                Ok(())
            };
            for row in history
                .range::<(&str, &str, u64)>((Bound::Included((c, "", 0)), Bound::Unbounded))?
            {
                let (k, v) = row?;
                let (rc, key, _) = k.value();
                if rc != c {
                    break;
                }
                if current_key.as_deref() != Some(key) {
                    flush(&mut key_versions)?;
                    current_key = Some(key.to_owned());
                }
                key_versions.push(v.value());
            }
            flush(&mut key_versions)?;
        }
        Ok(())
    }
}

impl Collection<'_> {
    /// One page of the keys under `prefix` whose latest entry removed them, in key order,
    /// each with its last file version: at most `limit` after `after` (the `next` of the page
    /// before; `None` to start).
    pub fn removed_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<RemovedKey>, StorageError> {
        let limit = limit.max(1);
        let prefix = prefix.trim_matches('/');
        let mut removed: Vec<(String, Timestamp)> = Vec::new();
        let mut more = false;
        // The current view keeps tombstones: the removed keys are the ones it ends with one.
        self.visit_view(super::view::Point::Current, prefix, after, |key, signed| {
            if signed.entry().value != EntryValue::Tombstone {
                return true;
            }
            if removed.len() == limit {
                more = true;
                return false;
            }
            removed.push((key.to_owned(), signed.entry().time));
            true
        })?;
        let mut items = Vec::with_capacity(removed.len());
        for (key, time) in removed {
            let last = self.last_file_version(&key)?;
            items.push(RemovedKey {
                key,
                removed: time,
                last,
            });
        }
        let next = more.then(|| items.last().map(|i| i.key.clone())).flatten();
        Ok(Page { items, next })
    }

    /// Every version of `key`, newest first in the view's order (`(time, entry)`), as the
    /// view decides between them; at most `limit`.
    pub fn versions(&self, key: &str, limit: usize) -> Result<Vec<Version>, StorageError> {
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let page = self.history_page(key, after, super::PAGE_SIZE)?;
            all.extend(page.items);
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        all.sort_unstable_by_key(|v| std::cmp::Reverse((v.time, v.entry)));
        all.truncate(limit);
        Ok(all)
    }

    fn last_file_version(&self, key: &str) -> Result<Option<Version>, StorageError> {
        Ok(self
            .versions(key, usize::MAX)?
            .into_iter()
            .find(|v| matches!(v.value, EntryValue::File(_))))
    }
}
