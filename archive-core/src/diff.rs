//! Comparing two views of a collection key by key.

use std::cmp::Ordering;

use crate::entry::FileRef;
use crate::error::StorageError;
use crate::hash::Hash;

/// How a key differs between two views.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeKind {
    /// Only in the newer view.
    Added,
    /// In both, with different content.
    Changed,
    /// Only in the older view.
    Removed,
}

impl ChangeKind {
    /// `added`, `changed` or `removed`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Changed => "changed",
            ChangeKind::Removed => "removed",
        }
    }
}

/// Content of a key on one side of a diff.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileSummary {
    /// BLAKE3 of the content.
    pub hash: Hash,
    /// Size in bytes.
    pub size: u64,
}

impl From<&FileRef> for FileSummary {
    fn from(f: &FileRef) -> Self {
        FileSummary {
            hash: f.hash,
            size: f.size,
        }
    }
}

/// One key that differs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Change {
    /// The key.
    pub key: String,
    /// How it differs.
    pub kind: ChangeKind,
    /// Its content in the older view.
    pub old: Option<FileSummary>,
    /// Its content in the newer view.
    pub new: Option<FileSummary>,
}

/// One side of a diff: (key, content) pairs in key order.
pub(crate) trait DiffSide {
    /// The next pair, or the error that ends the side.
    fn next_file(&mut self) -> Option<Result<(String, FileSummary), StorageError>>;
}

/// Pairs already in memory, in key order.
pub(crate) struct Sorted(pub(crate) std::vec::IntoIter<(String, FileSummary)>);

impl DiffSide for Sorted {
    fn next_file(&mut self) -> Option<Result<(String, FileSummary), StorageError>> {
        self.0.next().map(Ok)
    }
}

/// Merges two key-sorted sides into the changes from `old` to `new`, one at a time. Keys whose
/// content is equal do not appear, whatever entries carried them. After an error it ends.
#[derive(Debug)]
pub(crate) struct ChangeMerge<A, B> {
    old: A,
    new: B,
    old_head: Option<(String, FileSummary)>,
    new_head: Option<(String, FileSummary)>,
    old_done: bool,
    new_done: bool,
}

impl<A: DiffSide, B: DiffSide> ChangeMerge<A, B> {
    pub(crate) fn new(old: A, new: B) -> Self {
        ChangeMerge {
            old,
            new,
            old_head: None,
            new_head: None,
            old_done: false,
            new_done: false,
        }
    }

    /// Fills both heads where their side has more.
    fn fill(&mut self) -> Result<(), StorageError> {
        if self.old_head.is_none() && !self.old_done {
            match self.old.next_file() {
                Some(item) => self.old_head = Some(item.inspect_err(|_| self.end())?),
                None => self.old_done = true,
            }
        }
        if self.new_head.is_none() && !self.new_done {
            match self.new.next_file() {
                Some(item) => self.new_head = Some(item.inspect_err(|_| self.end())?),
                None => self.new_done = true,
            }
        }
        Ok(())
    }

    fn end(&mut self) {
        self.old_done = true;
        self.new_done = true;
    }
}

impl<A: DiffSide, B: DiffSide> Iterator for ChangeMerge<A, B> {
    type Item = Result<Change, StorageError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Err(e) = self.fill() {
                self.old_head = None;
                self.new_head = None;
                return Some(Err(e));
            }
            let order = match (&self.old_head, &self.new_head) {
                (None, None) => return None,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some((a, _)), Some((b, _))) => a.cmp(b),
            };
            let change = match order {
                Ordering::Less => {
                    let (key, o) = self.old_head.take()?;
                    Change {
                        key,
                        kind: ChangeKind::Removed,
                        old: Some(o),
                        new: None,
                    }
                }
                Ordering::Greater => {
                    let (key, n) = self.new_head.take()?;
                    Change {
                        key,
                        kind: ChangeKind::Added,
                        old: None,
                        new: Some(n),
                    }
                }
                Ordering::Equal => {
                    let (key, o) = self.old_head.take()?;
                    let (_, n) = self.new_head.take()?;
                    if o == n {
                        continue;
                    }
                    Change {
                        key,
                        kind: ChangeKind::Changed,
                        old: Some(o),
                        new: Some(n),
                    }
                }
            };
            return Some(Ok(change));
        }
    }
}
