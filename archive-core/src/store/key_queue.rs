//! The keys a pull has still to fetch, kept on the store's disk when there are many: a first
//! sync of a million-entry collection learns 40 MB of keys in a few round trips and then
//! fetches them for minutes, and a small server should not hold them in memory all along.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use crate::error::StorageError;
use crate::sync::SyncKey;

/// Keys held in memory at most; a longer list keeps the rest in a scratch file.
pub(crate) const KEYS_IN_MEMORY: usize = 32 * 1024;
/// Bytes of a key in the scratch file: `SyncKey::to_bytes`, its time (big-endian) and its id.
const RECORD: usize = 40;

/// A first-in, first-out queue of [`SyncKey`]s: the first 32,768 in memory, the
/// rest in an unlinked file in the store's scratch folder (gone when the queue is dropped or
/// the process dies), read back a piece at a time. Made by [`Transfer::queue_keys`].
///
/// The file is the store's own scratch space: it is on the store's disk (not a RAM-backed
/// `/tmp`), and nothing but this queue reads it, so its records are not checked again when
/// read back beyond their length.
///
/// [`Transfer::queue_keys`]: crate::Transfer::queue_keys
#[derive(Debug)]
pub struct KeyQueue {
    /// Keys to hand out before any of the file's, in order.
    front: std::collections::VecDeque<SyncKey>,
    spilled: Option<Spilled>,
}

#[derive(Debug)]
struct Spilled {
    file: File,
    /// For errors: the folder the file was made in.
    dir: PathBuf,
    /// Records read back so far.
    next: u64,
    /// Records in the file.
    len: u64,
}

impl KeyQueue {
    /// Queues `keys` in their order, writing all but the first [`KEYS_IN_MEMORY`] to a scratch
    /// file made in `dir`.
    pub(crate) fn new(mut keys: Vec<SyncKey>, dir: PathBuf) -> Result<Self, StorageError> {
        if keys.len() <= KEYS_IN_MEMORY {
            return Ok(KeyQueue {
                front: keys.into(),
                spilled: None,
            });
        }
        let io = |source| StorageError::Io {
            path: dir.clone(),
            source,
        };
        let file = tempfile::tempfile_in(&dir).map_err(io)?;
        // Written from the list itself, then cut off: a copy of the rest would double what
        // this is here to save.
        let mut out = BufWriter::with_capacity(1 << 20, &file);
        for key in &keys[KEYS_IN_MEMORY..] {
            out.write_all(&key.to_bytes()).map_err(io)?;
        }
        out.flush().map_err(io)?;
        drop(out);
        let len = (keys.len() - KEYS_IN_MEMORY) as u64;
        keys.truncate(KEYS_IN_MEMORY);
        keys.shrink_to_fit();
        Ok(KeyQueue {
            front: keys.into(),
            spilled: Some(Spilled {
                file,
                dir,
                next: 0,
                len,
            }),
        })
    }

    /// Keys left.
    pub fn len(&self) -> u64 {
        self.front.len() as u64 + self.spilled.as_ref().map_or(0, |s| s.len - s.next)
    }

    /// True when no key is left.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes up to `n` keys off the front, in the order queued.
    pub fn take(&mut self, n: usize) -> Result<Vec<SyncKey>, StorageError> {
        let mut out: Vec<SyncKey> = Vec::with_capacity(n.min(self.len() as usize));
        let from_front = n.min(self.front.len());
        out.extend(self.front.drain(..from_front));
        if self.front.is_empty() && self.front.capacity() > 0 {
            self.front = Default::default();
        }
        let Some(s) = &mut self.spilled else {
            return Ok(out);
        };
        let want = ((n - out.len()) as u64).min(s.len - s.next) as usize;
        if want > 0 {
            let mut buf = vec![0u8; want * RECORD];
            s.file
                .read_exact_at(&mut buf, s.next * RECORD as u64)
                .map_err(|source| StorageError::Io {
                    path: s.dir.clone(),
                    source,
                })?;
            out.extend(
                buf.chunks_exact(RECORD)
                    .map(|r| SyncKey::from_bytes(r.try_into().expect("a whole record"))),
            );
            s.next += want as u64;
        }
        if s.next == s.len {
            self.spilled = None;
        }
        Ok(out)
    }

    /// Puts keys back at the front (ones taken and not used), before every key left.
    pub fn put_back(&mut self, keys: Vec<SyncKey>) {
        for key in keys.into_iter().rev() {
            self.front.push_front(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(i: u64) -> SyncKey {
        let mut id = [0u8; 32];
        id[..8].copy_from_slice(&i.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes());
        SyncKey {
            time: i ^ 0xff00_0000_0000_00ff,
            id: crate::entry::EntryId::from_bytes(id),
        }
    }

    #[test]
    fn a_long_list_is_kept_on_disk_and_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let n = KEYS_IN_MEMORY as u64 * 3 + 17;
        let keys: Vec<SyncKey> = (0..n).map(key).collect();
        let mut q = KeyQueue::new(keys.clone(), dir.path().to_owned()).unwrap();
        assert!(q.spilled.is_some(), "a list this long is spilled");
        assert_eq!(q.front.len(), KEYS_IN_MEMORY);
        // The scratch file is unlinked: nothing is left in the folder.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let mut got = Vec::new();
        while !q.is_empty() {
            let before = q.len();
            let piece = q.take(10_000).unwrap();
            assert_eq!(q.len(), before - piece.len() as u64);
            got.extend(piece);
        }
        assert_eq!(got, keys);
        assert!(q.take(5).unwrap().is_empty());
    }

    #[test]
    fn a_folder_that_cannot_hold_the_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("not-there");
        let keys: Vec<SyncKey> = (0..KEYS_IN_MEMORY as u64 + 1).map(key).collect();
        match KeyQueue::new(keys, missing.clone()) {
            Err(StorageError::Io { path, .. }) => assert_eq!(path, missing),
            other => panic!("expected an I/O error, got {other:?}"),
        }
        // A short list never touches the disk.
        let short: Vec<SyncKey> = (0..10).map(key).collect();
        let mut q = KeyQueue::new(short.clone(), missing).unwrap();
        assert_eq!(q.take(100).unwrap(), short);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Against a `VecDeque`: any mix of takes and put-backs hands out the same keys.
        #[test]
        fn behaves_as_a_deque(
            n in 0u64..(KEYS_IN_MEMORY as u64 * 2 + 100),
            ops in proptest::collection::vec((1usize..20_000, 0usize..5), 1..40),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let keys: Vec<SyncKey> = (0..n).map(key).collect();
            let mut model: std::collections::VecDeque<SyncKey> = keys.iter().copied().collect();
            let mut q = KeyQueue::new(keys, dir.path().to_owned()).unwrap();
            for (take, back) in ops {
                let got = q.take(take).unwrap();
                let want: Vec<SyncKey> = model.drain(..take.min(model.len())).collect();
                prop_assert_eq!(&got, &want);
                let back = back.min(got.len());
                let returned = got[..back].to_vec();
                for k in returned.iter().rev() {
                    model.push_front(*k);
                }
                q.put_back(returned);
                prop_assert_eq!(q.len(), model.len() as u64);
            }
            let rest = q.take(usize::MAX >> 8).unwrap();
            prop_assert_eq!(rest, model.into_iter().collect::<Vec<_>>());
        }
    }
}
