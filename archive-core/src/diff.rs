//! Comparing two views of a collection key by key.

use std::cmp::Ordering;

use crate::entry::FileRef;
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

/// Merges two key-sorted lists of (key, content) into the changes from `old` to `new`.
/// Keys whose content is equal do not appear, whatever entries carried them.
pub(crate) fn diff_sorted<'a>(
    old: impl IntoIterator<Item = (&'a str, FileSummary)>,
    new: impl IntoIterator<Item = (&'a str, FileSummary)>,
) -> Vec<Change> {
    let mut old = old.into_iter().peekable();
    let mut new = new.into_iter().peekable();
    let mut out = Vec::new();
    loop {
        let order = match (old.peek(), new.peek()) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some((a, _)), Some((b, _))) => a.cmp(b),
        };
        match order {
            Ordering::Less => {
                let (k, o) = old.next().expect("peeked");
                out.push(Change {
                    key: k.to_owned(),
                    kind: ChangeKind::Removed,
                    old: Some(o),
                    new: None,
                });
            }
            Ordering::Greater => {
                let (k, n) = new.next().expect("peeked");
                out.push(Change {
                    key: k.to_owned(),
                    kind: ChangeKind::Added,
                    old: None,
                    new: Some(n),
                });
            }
            Ordering::Equal => {
                let (k, o) = old.next().expect("peeked");
                let (_, n) = new.next().expect("peeked");
                if o != n {
                    out.push(Change {
                        key: k.to_owned(),
                        kind: ChangeKind::Changed,
                        old: Some(o),
                        new: Some(n),
                    });
                }
            }
        }
    }
    out
}
