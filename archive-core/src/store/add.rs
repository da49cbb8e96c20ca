//! Adding files and folders from disk.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};

use redb::ReadableDatabase;

use super::quick_check::{self, FileStat, QuickLookup};
use super::{EntryTables, Store};
use crate::blobs::{self, BlobTables, PreparedBlob};
use crate::entry::{EntryValue, FileMeta, FileRef, MessageFields, SignedEntry};
use crate::error::{AddError, EntryError, StorageError};
use crate::format::layout::{BLOBS, FILES, NO_MANIFEST, PACKED};
use crate::hash::Hash;
use crate::ingest::{ingest, IngestError, Ingested};
use crate::names::{validate_collection, validate_key};
use crate::walk::{walk, FoundFile, FoundFolder, Skipped, Walk};

/// Commit at least this often while adding (bytes read), so a crash loses little work and the
/// pending blob records stay small.
const BATCH_BYTES: u64 = 64 * 1024 * 1024;
/// ... or after this many files (each commit costs a `syncfs` and redb's fsyncs; see
/// ARCHITECTURE.md, "Durability and batching", for the measurement).
const BATCH_FILES: usize = 5_000;

/// Hears how an `add` is going (for a progress bar).
pub trait AddProgress {
    /// The walk is done: this many files and bytes will be read.
    fn start(&mut self, _files: u64, _bytes: u64) {}
    /// Bytes were read.
    fn bytes(&mut self, _n: u64) {}
    /// A file is done.
    fn file_done(&mut self, _key: &str) {}
}

/// Progress that goes nowhere.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;
impl AddProgress for NoProgress {}

/// A file that could not be added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedFile {
    /// The file.
    pub path: PathBuf,
    /// What went wrong.
    pub error: String,
}

/// What an `add` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddReport {
    /// Files that got a new entry (new keys, new content, or a new modification time or mode).
    pub added: u64,
    /// Files whose key already held the same content, time and mode: no entry written.
    pub unchanged: u64,
    /// Empty folders that got a folder entry (new, or with a new time or mode).
    pub folders_added: u64,
    /// Files whose content was read (the others were known unchanged by their `stat`: same
    /// device, inode, size, modification and change time as when last added).
    pub files_read: u64,
    /// Bytes read from disk.
    pub bytes_read: u64,
    /// Bytes of blobs the store did not have before (after deduplication).
    pub bytes_new: u64,
    /// Symbolic links, special files and unusable names, left out.
    pub skipped: Vec<Skipped>,
    /// Files that could not be read, or not placed (a file where the collection has a folder,
    /// or the reverse); everything else was added.
    pub failed: Vec<FailedFile>,
}

/// A file left out because it would collide with a folder (or the reverse): where it came
/// from, and why.
type Conflict = (PathBuf, EntryError);

/// A file's quick-check row key (its absolute path's bytes) and its `stat` from the walk.
type QuickKey = (Vec<u8>, FileStat);

/// Work read from disk but not yet committed.
#[derive(Default)]
struct Batch {
    blobs: Vec<PreparedBlob>,
    /// Key, file, its time and mode, and the blobs that hold it.
    files: Vec<(String, FileRef, FileMeta, Vec<Hash>)>,
    /// Empty folders, written with the last batch.
    folders: Vec<FoundFolder>,
    /// Where each file came from (for the report of files that could not be added).
    paths: Vec<PathBuf>,
    /// The quick-check row to write for each file once it is committed: its path's key and
    /// `stat` before it was read (`None`: not recorded, e.g. it changed too recently).
    quick: Vec<Option<QuickKey>>,
    bytes: u64,
}

impl Store {
    /// Adds a file or folder (recursively) to `collection`. A file's key is `as_key` or its
    /// name; a folder's files go under `as_key` (empty: at the root) or the folder's name.
    /// Symbolic links and special files are skipped and reported; a file that cannot be read is
    /// reported in [`AddReport::failed`] while the rest is added.
    pub(super) fn add_path(
        &self,
        collection: &str,
        path: &Path,
        as_key: Option<&str>,
        progress: &mut dyn AddProgress,
    ) -> Result<AddReport, AddError> {
        validate_collection(collection).map_err(EntryError::from)?;
        let Walk {
            found,
            empty_folders,
            skipped,
            unreadable,
        } = walk(path, as_key)?;
        let mut report = AddReport {
            skipped,
            // An unreadable folder is a failure like an unreadable file: the rest is added.
            failed: unreadable
                .into_iter()
                .map(|u| FailedFile {
                    path: u.path,
                    error: u.reason,
                })
                .collect(),
            ..AddReport::default()
        };
        // Sparse files can claim sizes that add up past u64.
        let total = found.iter().fold(0u64, |t, f| t.saturating_add(f.size));
        progress.start(found.len() as u64, total);
        let _guard = self.gc_shared();
        // The store's wall clock (a test can move it): files that changed within two
        // seconds before this are read every time, not recorded.
        let started_ns = i64::try_from(self.clock().wall_millis())
            .unwrap_or(i64::MAX)
            .saturating_mul(1_000_000);
        let absolute = std::path::absolute(path).ok();
        let quick_key = |file: &FoundFile| {
            let key = quick_check::path_key(absolute.as_deref()?, path, &file.path)?;
            Some((key, file.stat?))
        };
        let unread = self.known_unchanged(collection, &found, &quick_key)?;
        // Files are read (hashed, appended to a pack) here while the batch before is signed
        // and committed on a second thread: the two halves of the work overlap.
        let committed = std::thread::scope(|scope| -> Result<AddReport, AddError> {
            let (to_commit, batches) = std::sync::mpsc::sync_channel::<Batch>(1);
            let committer = scope.spawn(move || -> Result<AddReport, AddError> {
                let mut part = AddReport::default();
                for batch in batches {
                    let (_, conflicts) =
                        self.commit_batch(collection, batch, &MessageFields::default(), &mut part)?;
                    part.failed
                        .extend(conflicts.into_iter().map(|(path, e)| FailedFile {
                            path,
                            error: e.to_string(),
                        }));
                }
                Ok(part)
            });
            let read = self.read_batches(
                &found,
                unread,
                &quick_key,
                started_ns,
                &mut report,
                progress,
                |batch| to_commit.send(batch).is_ok(),
            );
            let last = read.map(|mut batch| {
                batch.folders = empty_folders;
                let _ = to_commit.send(batch);
            });
            drop(to_commit);
            let part = committer
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            last?;
            part
        })?;
        report.added += committed.added;
        report.unchanged += committed.unchanged;
        report.folders_added += committed.folders_added;
        report.bytes_new += committed.bytes_new;
        report.failed.extend(committed.failed);
        Ok(report)
    }

    /// Reads the files not known unchanged into batches, handing each full one to `commit`
    /// (false: the committer failed; reading stops). Returns the last, partial batch.
    #[allow(clippy::too_many_arguments)]
    fn read_batches(
        &self,
        found: &[FoundFile],
        unread: Vec<bool>,
        quick_key: &dyn Fn(&FoundFile) -> Option<QuickKey>,
        started_ns: i64,
        report: &mut AddReport,
        progress: &mut dyn AddProgress,
        mut commit: impl FnMut(Batch) -> bool,
    ) -> Result<Batch, AddError> {
        let mut batch = Batch::default();
        // Blobs staged by this add (committed or on their way), so each is appended once.
        let mut staged: HashSet<Hash> = HashSet::new();
        for (file, unread) in found.iter().zip(unread) {
            if unread {
                report.unchanged += 1;
                progress.bytes(file.size);
                progress.file_done(&file.key);
                continue;
            }
            let quick = quick_key(file);
            match self.ingest_file(file, &staged, progress) {
                Ok(ingested) => {
                    report.files_read += 1;
                    report.bytes_read += ingested.file.size;
                    batch.bytes += ingested.file.size;
                    for blob in ingested.new_blobs {
                        if staged.insert(blob.hash) {
                            batch.blobs.push(blob);
                        }
                    }
                    batch
                        .files
                        .push((file.key.clone(), ingested.file, file.meta, ingested.reach));
                    batch.paths.push(file.path.clone());
                    // Recorded only if the file had settled before this add began and was
                    // the size it was read at.
                    batch.quick.push(quick.filter(|(_, stat)| {
                        stat.settled(started_ns) && stat.size == ingested.file.size
                    }));
                }
                Err(IngestError::Read(e)) => report.failed.push(FailedFile {
                    path: file.path.clone(),
                    error: format!("cannot read it: {e}"),
                }),
                Err(IngestError::Store(e)) => return Err(e.into()),
            }
            progress.file_done(&file.key);
            if (batch.bytes >= BATCH_BYTES || batch.files.len() >= BATCH_FILES)
                && !commit(std::mem::take(&mut batch))
            {
                break;
            }
        }
        Ok(batch)
    }

    /// Stores `data` as a file (chunked if large) and puts it at `key`. Returns the entry, or
    /// `None` if the key already held exactly this content.
    pub(super) fn add_bytes(
        &self,
        collection: &str,
        key: &str,
        data: &[u8],
        message: &MessageFields,
    ) -> Result<Option<SignedEntry>, AddError> {
        Ok(self
            .add_many_bytes(collection, &[(key, data)], message)?
            .into_iter()
            .next())
    }

    /// Stores each `(key, data)` as [`Store::add_bytes`] does, all in one commit: the entries
    /// written (none for a key that already held exactly its content). Keys must differ.
    pub(super) fn add_many_bytes(
        &self,
        collection: &str,
        items: &[(&str, &[u8])],
        message: &MessageFields,
    ) -> Result<Vec<SignedEntry>, AddError> {
        validate_collection(collection).map_err(EntryError::from)?;
        for (key, _) in items {
            validate_key(key).map_err(EntryError::from)?;
        }
        if let Some(person) = &message.person {
            crate::names::validate_person(person).map_err(EntryError::from)?;
        }
        let mut keys: Vec<&str> = items.iter().map(|(k, _)| *k).collect();
        keys.sort_unstable();
        if let Some(twice) = keys.windows(2).find(|w| w[0] == w[1]) {
            return Err(AddError::Entry(EntryError::FileFolderConflict {
                collection: collection.to_owned(),
                key: twice[0].to_owned(),
                reason: "the batch writes it twice".into(),
            }));
        }
        let _guard = self.gc_shared();
        let known = |h: &Hash| self.has_blob_in_place(h);
        let mut batch = Batch::default();
        let mut new_blobs = std::collections::HashSet::new();
        for (key, data) in items {
            let ingested = match ingest(*data, &self.files, &known, &mut |_| {}) {
                Ok(i) => i,
                Err(IngestError::Read(e)) => unreachable!("reading a slice cannot fail: {e}"),
                Err(IngestError::Store(e)) => return Err(e.into()),
            };
            // Two items of the same content bring its blob once.
            for blob in ingested.new_blobs {
                if new_blobs.insert(blob.hash) {
                    batch.blobs.push(blob);
                }
            }
            batch.files.push((
                (*key).to_owned(),
                ingested.file,
                FileMeta::default(),
                ingested.reach,
            ));
            batch.paths.push(PathBuf::from(key));
            batch.quick.push(None);
        }
        let mut report = AddReport::default();
        let (entries, mut conflicts) =
            self.commit_batch(collection, batch, message, &mut report)?;
        if let Some((_, conflict)) = conflicts.pop() {
            return Err(AddError::Entry(conflict));
        }
        Ok(entries)
    }

    /// For each file, whether the quick check knows it unchanged (its key already holds it):
    /// looked up before anything is read, on a few threads, each with its own read
    /// transaction, which ends before the first batch commits.
    fn known_unchanged(
        &self,
        collection: &str,
        found: &[FoundFile],
        quick_key: &(dyn Fn(&FoundFile) -> Option<QuickKey> + Sync),
    ) -> Result<Vec<bool>, StorageError> {
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 4);
        let per_thread = found.len().div_ceil(threads).max(1);
        let parts: Vec<Result<Vec<bool>, StorageError>> = std::thread::scope(|scope| {
            let workers: Vec<_> = found
                .chunks(per_thread)
                .map(|files| {
                    scope.spawn(move || {
                        let mut lookup = QuickLookup::open(self)?;
                        files
                            .iter()
                            .map(|file| match quick_key(file) {
                                Some((path_key, stat)) => lookup.holds_unread(
                                    self, collection, &file.key, &path_key, &stat, &file.meta,
                                ),
                                None => Ok(false),
                            })
                            .collect()
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        let mut all = Vec::with_capacity(found.len());
        for part in parts {
            all.extend(part?);
        }
        Ok(all)
    }

    fn ingest_file(
        &self,
        file: &FoundFile,
        staged: &HashSet<Hash>,
        progress: &mut dyn AddProgress,
    ) -> Result<Ingested, IngestError> {
        let f = File::open(&file.path).map_err(IngestError::Read)?;
        // Staged by this add, or recorded with its bytes in place (a recorded blob whose bytes
        // were lost is written again).
        let known = |h: &Hash| staged.contains(h) || self.has_blob_in_place(h);
        ingest(f, &self.files, &known, &mut |n| progress.bytes(n))
    }

    /// True when the blob is recorded and its bytes are where the record says.
    fn has_blob_in_place(&self, hash: &Hash) -> bool {
        let check = || -> Result<bool, StorageError> {
            let tx = self.db.begin_read()?;
            let table = tx.open_table(BLOBS)?;
            match blobs::lookup(&table, hash)? {
                None => Ok(false),
                Some((size, location)) => {
                    let packed = tx.open_table(PACKED)?;
                    blobs::in_place(&self.files, &packed, hash, size, location)
                }
            }
        };
        // Unknown on any failure (a damaged database included): the blob is written again.
        crate::store::guarded(check).unwrap_or(false)
    }

    /// The entries a batch would write, one per file and then one per folder, signed on up to
    /// two threads (an Ed25519 signature is most of an entry's cost).
    fn sign_batch(
        &self,
        collection: &str,
        batch: &Batch,
        message: &MessageFields,
    ) -> Result<Vec<SignedEntry>, EntryError> {
        let mut unsigned: Vec<_> = batch
            .files
            .iter()
            .map(|(key, file, meta, _)| {
                self.new_entry(collection, key, EntryValue::File(*file), *meta, message)
            })
            .collect();
        unsigned.extend(batch.folders.iter().map(|folder| {
            self.new_entry(
                collection,
                &folder.key,
                EntryValue::Folder,
                folder.meta,
                message,
            )
        }));
        let sign = |part: Vec<crate::entry::Entry>| -> Result<Vec<SignedEntry>, EntryError> {
            part.into_iter()
                .map(|e| SignedEntry::sign(e, &self.key))
                .collect()
        };
        if unsigned.len() < 64 {
            return sign(unsigned);
        }
        let second = unsigned.split_off(unsigned.len() / 2);
        std::thread::scope(|scope| {
            let other = scope.spawn(|| sign(second));
            let mut first = sign(unsigned)?;
            first.extend(
                other
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p))?,
            );
            Ok(first)
        })
    }

    /// Makes the batch's blob files durable, then records blobs, files and entries in one
    /// transaction. Keys whose view already holds the same content get no new entry; a file
    /// that would collide with a folder of the view (or the reverse) is reported in
    /// [`AddReport::failed`] and left out.
    fn commit_batch(
        &self,
        collection: &str,
        batch: Batch,
        message: &MessageFields,
        report: &mut AddReport,
    ) -> Result<(Vec<SignedEntry>, Vec<Conflict>), AddError> {
        if batch.files.is_empty() && batch.blobs.is_empty() && batch.folders.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        if !batch.blobs.is_empty() {
            self.files.make_durable()?;
        }
        // Signed before the transaction, on a few threads: one per file and folder, though a
        // key found holding the same content (or a conflict) leaves its entry unused.
        let signed = self.sign_batch(collection, &batch, message)?;
        self.check_rules_each(&signed)?;
        let mut signed = signed.into_iter();
        crate::store::guarded(|| {
            let tx = self.db.begin_write().map_err(StorageError::from)?;
            let mut written = Vec::new();
            let mut conflicts = Vec::new();
            let touched = {
                let mut blob_bytes = 0;
                let mut blob_tables = BlobTables::open(&tx)?;
                for blob in &batch.blobs {
                    blob_bytes += blobs::record(&mut blob_tables, blob)?;
                }
                report.bytes_new += blob_bytes;
                let mut files = tx.open_table(FILES).map_err(StorageError::from)?;
                let mut entries = EntryTables::open(&tx, None)?;
                entries.blob_bytes = blob_bytes;
                let mut quick_rows = tx
                    .open_table(crate::format::layout::QUICK_CHECK)
                    .map_err(StorageError::from)?;
                for (((key, file, meta, reach), path), quick) in
                    batch.files.into_iter().zip(batch.paths).zip(batch.quick)
                {
                    let entry = signed.next().expect("one signed entry per file");
                    let held = entries.current(collection, &key)?.filter(|e| {
                        e.entry().meta == meta
                            && matches!(e.entry().value, EntryValue::File(f) if f.hash == file.hash && f.size == file.size)
                    });
                    // The entry the key ends up holding, for the quick check's fast path.
                    let mut holding = held.as_ref().map(SignedEntry::id);
                    if held.is_some() {
                        report.unchanged += 1;
                    } else if let Err(e) = entries.check_placement(collection, &key) {
                        conflicts.push((path, e));
                    } else {
                        let manifest = file.manifest.map(|m| *m.as_bytes()).unwrap_or(NO_MANIFEST);
                        files
                            .insert(file.hash.as_bytes(), (file.size, manifest))
                            .map_err(StorageError::from)?;
                        entries.add_refs(collection, reach)?;
                        entries.insert(&entry)?;
                        holding = Some(entry.id());
                        written.push(entry);
                        report.added += 1;
                    }
                    if let Some((path_key, stat)) = &quick {
                        quick_check::record(
                            &mut quick_rows,
                            path_key,
                            stat,
                            &file.hash,
                            holding.as_ref(),
                        )?;
                    }
                }
                // A folder entry never conflicts: a file at or above its key supersedes it.
                for folder in batch.folders {
                    let entry = signed.next().expect("one signed entry per folder");
                    let held = entries.current(collection, &folder.key)?.is_some_and(|e| {
                        e.entry().value == EntryValue::Folder && e.entry().meta == folder.meta
                    });
                    if !held {
                        entries.insert(&entry)?;
                        written.push(entry);
                        report.folders_added += 1;
                    }
                }
                entries.certify(&self.key, &written)?;
                drop(quick_rows);
                drop(files);
                drop(blob_tables);
                entries.finish(&self.clock())?
            };
            self.commit_entries(tx, touched)?;
            Ok((written, conflicts))
        })
    }
}
