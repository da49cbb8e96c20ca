//! File shares: the community's shared folder and each person's own folder, on top of the
//! store, for a server's "Files" page (or any program that embeds the store).
//!
//! - The community's folder is the collection [`COMMUNITY_SHARE`]; it syncs with peers like any
//!   collection. A person's folder is `local/shares/<person>`: `local/` collections are never
//!   offered to peers, so it leaves the server only when its owner shares a file (moves it to
//!   the community's folder, [`Shares::share_with_community`]).
//! - Uploads arrive in parts ([`Shares::begin_upload`], [`Shares::write_part`],
//!   [`Shares::finish_upload`]): each part is appended to a file in the uploads folder, so an
//!   upload broken off resumes where it stopped ([`Shares::upload`] says where). A file's size
//!   is declared first and checked against the file limit and the folder's quota before a
//!   byte is stored.
//! - Replacing a file keeps the earlier version ([`Shares::versions`]) and removing one puts it
//!   in the trash ([`Shares::trash`]): the store keeps superseded versions of these
//!   collections for [`ShareLimits::keep`] ([`Store::keep_versions`]), and `gc` frees them
//!   after that. Two servers that change one file at the same time make two versions, never
//!   a conflict file: the later one is shown, the other is in its versions.

use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::entry::{EntryId, EntryValue, FileRef};
use crate::error::{AddError, EntryError, StorageError};
use crate::identity::PublicKey;
use crate::names::{validate_key, validate_person, NameError};
use crate::store::{KeepVersions, NoProgress, Store, ViewPoint};

/// The community's shared folder.
pub const COMMUNITY_SHARE: &str = "shares/community";
/// Where people's own folders are: `local/shares/<person>`.
pub const PERSON_SHARE_PREFIX: &str = "local/shares/";
/// Disk space an upload leaves free, for the store's own writes.
pub const DISK_RESERVE: u64 = 256 << 20;
/// Uploads one person may have under way (each reserves its declared size of a quota).
pub const MAX_UPLOADS_PER_PERSON: usize = 8;
/// Most entries a folder listing shows (the rest are counted).
pub const MAX_LISTED: usize = 2000;

/// Which folder.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Share {
    /// The community's, synced with peers.
    Community,
    /// One person's, never offered to peers.
    Person(String),
}

impl Share {
    /// Its collection.
    pub fn collection(&self) -> String {
        match self {
            Share::Community => COMMUNITY_SHARE.to_owned(),
            Share::Person(p) => format!("{PERSON_SHARE_PREFIX}{p}"),
        }
    }
}

/// Sizes and times a server chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShareLimits {
    /// The largest file.
    pub max_file: u64,
    /// Bytes a person's own folder may hold (uploads under way count).
    pub person_quota: u64,
    /// Bytes the community's folder may hold (uploads under way count).
    pub community_quota: u64,
    /// How long superseded versions and removed files are kept.
    pub keep: KeepVersions,
    /// How long an unfinished upload waits for its next part before it is deleted.
    pub upload_expiry_millis: u64,
}

impl Default for ShareLimits {
    fn default() -> Self {
        ShareLimits {
            max_file: 4 << 30,
            person_quota: 5 << 30,
            community_quota: 100 << 30,
            keep: KeepVersions {
                versions: 10,
                for_millis: 30 * DAY_MILLIS,
            },
            upload_expiry_millis: DAY_MILLIS,
        }
    }
}

const DAY_MILLIS: u64 = 24 * 60 * 60 * 1000;

/// What a file share refused or failed to do.
#[derive(Debug, thiserror::Error)]
pub enum ShareError {
    /// A file or folder name is not a safe relative path.
    #[error(transparent)]
    Name(#[from] NameError),
    /// Nothing at that path (or in the trash, or no such version).
    #[error("`{0}` is not there")]
    NotFound(String),
    /// The file is larger than [`ShareLimits::max_file`].
    #[error("the file is {size} bytes; files may be {max} bytes at most")]
    TooLarge {
        /// Its declared size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The folder's quota would be exceeded.
    #[error("the folder would hold more than its quota of {quota} bytes ({free} bytes free)")]
    OverQuota {
        /// The quota.
        quota: u64,
        /// What is left of it.
        free: u64,
    },
    /// The disk has too little room left for the file (while it arrives it takes its size
    /// twice: the upload and the store's copy), keeping [`DISK_RESERVE`] free.
    #[error("the server's disk has {free} bytes free; this file needs {needed}")]
    DiskFull {
        /// Bytes the upload needs.
        needed: u64,
        /// Bytes free on the disk.
        free: u64,
    },
    /// A part did not start where the upload stands (the client resumes from `expected`).
    #[error("the upload has {expected} bytes; a part must start there")]
    WrongOffset {
        /// Bytes received so far.
        expected: u64,
    },
    /// A part would make the file larger than declared.
    #[error("the part goes past the declared size of {size} bytes")]
    PastDeclaredSize {
        /// The declared size.
        size: u64,
    },
    /// `finish_upload` before every byte arrived.
    #[error("the upload has {received} of {size} bytes")]
    Incomplete {
        /// Bytes received.
        received: u64,
        /// Bytes declared.
        size: u64,
    },
    /// The person has [`MAX_UPLOADS_PER_PERSON`] uploads under way.
    #[error("too many uploads under way; finish or cancel one first")]
    TooManyUploads,
    /// No upload with that id for this person (never begun, finished, cancelled or expired).
    #[error("no such upload (it may have expired: start it again)")]
    NoSuchUpload,
    /// The version's content was freed (it was kept for a limited time).
    #[error("that version of `{0}` is no longer kept")]
    Gone(String),
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Adding the upload to the store failed.
    #[error(transparent)]
    Add(#[from] AddError),
    /// Writing an entry failed.
    #[error(transparent)]
    Entry(#[from] EntryError),
    /// The uploads folder failed.
    #[error("uploads folder {}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// A file in a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareFile {
    /// Its path in the share (`folder/name`).
    pub path: String,
    /// Its content.
    pub file: FileRef,
    /// When it was put there (the writer's clock).
    pub time: Timestamp,
    /// Which server wrote it.
    pub author: PublicKey,
}

/// One level of a folder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FolderListing {
    /// The folders in it (names, not paths), in order.
    pub folders: Vec<String>,
    /// Its files, in path order.
    pub files: Vec<ShareFile>,
    /// Entries not listed past [`MAX_LISTED`].
    pub more: bool,
}

/// A version of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileVersion {
    /// The entry that wrote it (what [`Shares::restore_version`] takes).
    pub entry: EntryId,
    /// When.
    pub time: Timestamp,
    /// Which server.
    pub author: PublicKey,
    /// The file, or `None` for a removal.
    pub file: Option<FileRef>,
    /// Whether its content is still here (superseded versions are kept for a while).
    pub available: bool,
}

/// A removed file that can still be restored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrashedFile {
    /// Its path.
    pub path: String,
    /// When it was removed.
    pub removed: Timestamp,
    /// Its last content.
    pub file: FileRef,
}

/// An upload under way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// Its id (what the parts name).
    pub id: String,
    /// Where the file goes.
    pub share: Share,
    /// Its path there.
    pub path: String,
    /// The declared size.
    pub size: u64,
    /// Bytes received so far.
    pub received: u64,
}

/// What the uploads folder keeps next to an upload's bytes (`<id>.upload`; postcard).
#[derive(Debug, Serialize, Deserialize)]
struct UploadRecord {
    owner: String,
    collection: String,
    path: String,
    size: u64,
}

/// The file shares of one store.
#[derive(Debug)]
pub struct Shares {
    store: Arc<Store>,
    uploads: PathBuf,
    limits: ShareLimits,
    /// Held while an upload is begun, so two begun at once cannot both fit one quota.
    begin: std::sync::Mutex<()>,
}

impl Shares {
    /// File shares over `store`, with unfinished uploads kept in `uploads` (created, private).
    /// Records the version-keeping rule of [`ShareLimits::keep`] for the share collections.
    pub fn open(
        store: Arc<Store>,
        uploads: PathBuf,
        limits: ShareLimits,
    ) -> Result<Shares, ShareError> {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&uploads)
            .map_err(|source| ShareError::Io {
                path: uploads.clone(),
                source,
            })?;
        store.keep_versions(COMMUNITY_SHARE, limits.keep)?;
        store.keep_versions(PERSON_SHARE_PREFIX, limits.keep)?;
        Ok(Shares {
            store,
            uploads,
            limits,
            begin: std::sync::Mutex::new(()),
        })
    }

    /// The limits it was opened with.
    pub fn limits(&self) -> ShareLimits {
        self.limits
    }

    /// The store.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The folders and files directly in `folder` (`""`: the top).
    pub fn list(&self, share: &Share, folder: &str) -> Result<FolderListing, ShareError> {
        let folder = clean_folder(folder)?;
        let collection = self.store.collection(&self.collection(share)?)?;
        let page = collection
            .list_folder(ViewPoint::Current, &folder, MAX_LISTED)
            .map_err(|e| ShareError::Storage(StorageError::Damaged(e.to_string())))?;
        Ok(FolderListing {
            folders: page.folders,
            files: page
                .files
                .into_iter()
                .map(|item| ShareFile {
                    path: item.key,
                    file: item.file,
                    time: item.time,
                    author: item.author,
                })
                .collect(),
            more: page.more,
        })
    }

    /// The file at `path`.
    pub fn get(&self, share: &Share, path: &str) -> Result<Option<ShareFile>, ShareError> {
        validate_key(path)?;
        let collection = self.store.collection(&self.collection(share)?)?;
        Ok(collection.get(path)?.map(|item| ShareFile {
            path: item.key,
            file: item.file,
            time: item.time,
            author: item.author,
        }))
    }

    /// Bytes the share holds now.
    pub fn used(&self, share: &Share) -> Result<u64, ShareError> {
        let collection = self.store.collection(&self.collection(share)?)?;
        let mut total = 0u64;
        for item in collection
            .list(ViewPoint::Current, "")
            .map_err(|e| ShareError::Storage(StorageError::Damaged(e.to_string())))?
        {
            total = total.saturating_add(item?.file.size);
        }
        Ok(total)
    }

    /// The quota of `share`.
    pub fn quota(&self, share: &Share) -> u64 {
        match share {
            Share::Community => self.limits.community_quota,
            Share::Person(_) => self.limits.person_quota,
        }
    }

    /// Starts an upload of `size` bytes to `path` for `owner` (the only one who may add parts
    /// to it). Refused when the file is too large or the share's quota would be exceeded.
    pub fn begin_upload(
        &self,
        owner: &str,
        share: &Share,
        path: &str,
        size: u64,
    ) -> Result<Upload, ShareError> {
        validate_key(path)?;
        validate_person(owner)?;
        let collection = self.collection(share)?;
        let _one_at_a_time = self
            .begin
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self
            .pending_uploads()?
            .iter()
            .filter(|(_, r)| r.owner == owner)
            .count()
            >= MAX_UPLOADS_PER_PERSON
        {
            return Err(ShareError::TooManyUploads);
        }
        self.check_fits(share, &collection, size)?;
        let id = random_id();
        let record = UploadRecord {
            owner: owner.to_owned(),
            collection,
            path: path.to_owned(),
            size,
        };
        let bytes = postcard::to_allocvec(&record).map_err(|e| {
            ShareError::Storage(StorageError::Damaged(format!("upload record: {e}")))
        })?;
        self.create_private(&self.data_path(&id), b"")?;
        self.create_private(&self.record_path(&id), &bytes)?;
        Ok(Upload {
            id,
            share: share.clone(),
            path: record.path,
            size,
            received: 0,
        })
    }

    /// Adds a whole file received some other way (a browser's form) to `path`, after the
    /// same checks as [`Shares::begin_upload`]. The caller keeps the file; it may be in
    /// [`Shares::uploads_dir`] (where [`Shares::expire_uploads`] deletes it if left behind).
    pub fn add_file(
        &self,
        share: &Share,
        path: &str,
        file: &std::path::Path,
    ) -> Result<ShareFile, ShareError> {
        validate_key(path)?;
        let collection = self.collection(share)?;
        let size = fs::metadata(file)
            .map_err(|source| ShareError::Io {
                path: file.to_owned(),
                source,
            })?
            .len();
        {
            let _one_at_a_time = self
                .begin
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            self.check_fits(share, &collection, size)?;
        }
        let collection = self.store.collection(&collection)?;
        collection.add_path(file, Some(path), &mut NoProgress)?;
        self.get(share, path)?
            .ok_or_else(|| ShareError::NotFound(path.to_owned()))
    }

    /// The folder that holds uploads under way.
    pub fn uploads_dir(&self) -> &std::path::Path {
        &self.uploads
    }

    /// Refuses a file of `size` bytes over the file limit, past `share`'s quota (uploads
    /// under way count) or the disk's free space.
    fn check_fits(&self, share: &Share, collection: &str, size: u64) -> Result<(), ShareError> {
        if size > self.limits.max_file {
            return Err(ShareError::TooLarge {
                size,
                max: self.limits.max_file,
            });
        }
        let pending: u64 = self
            .pending_uploads()?
            .iter()
            .filter(|(_, r)| r.collection == collection)
            .map(|(_, r)| r.size)
            .sum();
        let quota = self.quota(share);
        let used = self.used(share)?.saturating_add(pending);
        let free = quota.saturating_sub(used);
        if size > free {
            return Err(ShareError::OverQuota { quota, free });
        }
        let disk = self.store.transfer().available_space()?;
        let needed = size.saturating_mul(2).saturating_add(pending);
        if needed.saturating_add(DISK_RESERVE) > disk {
            return Err(ShareError::DiskFull { needed, free: disk });
        }
        Ok(())
    }

    /// Where `owner`'s upload `id` stands.
    pub fn upload(&self, owner: &str, id: &str) -> Result<Upload, ShareError> {
        let record = self.record(owner, id)?;
        let received = self.received(id)?;
        Ok(Upload {
            id: id.to_owned(),
            share: share_of(&record.collection),
            path: record.path,
            size: record.size,
            received,
        })
    }

    /// Appends `bytes` to `owner`'s upload `id` at `offset`, which must be the bytes received
    /// so far (a client that lost track asks [`Shares::upload`]). Returns the bytes received.
    pub fn write_part(
        &self,
        owner: &str,
        id: &str,
        offset: u64,
        bytes: &[u8],
    ) -> Result<u64, ShareError> {
        let record = self.record(owner, id)?;
        let received = self.received(id)?;
        if offset != received {
            return Err(ShareError::WrongOffset { expected: received });
        }
        if received.saturating_add(bytes.len() as u64) > record.size {
            return Err(ShareError::PastDeclaredSize { size: record.size });
        }
        let path = self.data_path(id);
        let io = |source| ShareError::Io {
            path: path.clone(),
            source,
        };
        let mut file = fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io)?;
        file.write_all(bytes).map_err(io)?;
        Ok(received + bytes.len() as u64)
    }

    /// Adds a complete upload to its share (a new version if the path holds a file) and
    /// deletes the upload's files.
    pub fn finish_upload(&self, owner: &str, id: &str) -> Result<ShareFile, ShareError> {
        let record = self.record(owner, id)?;
        let received = self.received(id)?;
        if received != record.size {
            return Err(ShareError::Incomplete {
                received,
                size: record.size,
            });
        }
        let collection = self.store.collection(&record.collection)?;
        collection.add_path(&self.data_path(id), Some(&record.path), &mut NoProgress)?;
        self.cancel_upload(owner, id)?;
        let item = collection
            .get(&record.path)?
            .ok_or_else(|| ShareError::NotFound(record.path.clone()))?;
        Ok(ShareFile {
            path: item.key,
            file: item.file,
            time: item.time,
            author: item.author,
        })
    }

    /// Deletes `owner`'s upload `id` and what it received.
    pub fn cancel_upload(&self, owner: &str, id: &str) -> Result<(), ShareError> {
        self.record(owner, id)?;
        for path in [self.data_path(id), self.record_path(id)] {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(ShareError::Io { path, source }),
            }
        }
        Ok(())
    }

    /// Deletes uploads that received nothing for [`ShareLimits::upload_expiry_millis`]
    /// (and stray files in the uploads folder). Returns how many were deleted.
    pub fn expire_uploads(&self) -> Result<u64, ShareError> {
        let io = |source| ShareError::Io {
            path: self.uploads.clone(),
            source,
        };
        let expiry = std::time::Duration::from_millis(self.limits.upload_expiry_millis);
        let mut deleted = 0;
        for entry in fs::read_dir(&self.uploads).map_err(io)? {
            let entry = entry.map_err(io)?;
            let Ok(meta) = entry.metadata() else { continue };
            let old = meta
                .modified()
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|age| age >= expiry);
            if old && fs::remove_file(entry.path()).is_ok() {
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    /// Moves a file to the trash.
    pub fn remove(&self, share: &Share, path: &str) -> Result<(), ShareError> {
        validate_key(path)?;
        let collection = self.store.collection(&self.collection(share)?)?;
        if collection.get(path)?.is_none() {
            return Err(ShareError::NotFound(path.to_owned()));
        }
        collection.remove(&[path])?;
        Ok(())
    }

    /// Moves a file from `person`'s folder to the community's, at the same path (a new
    /// version if one is there): from then on it syncs with the community's peers. The
    /// person's folder keeps it in its trash for the usual time (a private copy to restore).
    pub fn share_with_community(&self, person: &str, path: &str) -> Result<(), ShareError> {
        validate_key(path)?;
        let own = self
            .store
            .collection(&self.collection(&Share::Person(person.to_owned()))?)?;
        let item = own
            .get(path)?
            .ok_or_else(|| ShareError::NotFound(path.to_owned()))?;
        self.store
            .collection(COMMUNITY_SHARE)?
            .put(path, item.file)?;
        own.remove(&[path])?;
        Ok(())
    }

    /// Removed files whose content is still kept, newest removal first (at most
    /// [`MAX_LISTED`]).
    pub fn trash(&self, share: &Share) -> Result<Vec<TrashedFile>, ShareError> {
        let collection = self.store.collection(&self.collection(share)?)?;
        let blobs = self.store.blobs();
        let mut trashed = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = collection.removed_page("", after.as_deref(), 256)?;
            for removed in page.items {
                if let Some(version) = removed.last {
                    if let EntryValue::File(file) = version.value {
                        if blobs.file(&file.hash)?.is_some() {
                            trashed.push(TrashedFile {
                                path: removed.key,
                                removed: removed.removed,
                                file,
                            });
                        }
                    }
                }
            }
            match page.next {
                Some(n) if trashed.len() < MAX_LISTED => after = Some(n),
                _ => break,
            }
        }
        trashed.sort_by(|a, b| b.removed.cmp(&a.removed).then(a.path.cmp(&b.path)));
        Ok(trashed)
    }

    /// Puts a removed file back (its last version).
    pub fn restore(&self, share: &Share, path: &str) -> Result<(), ShareError> {
        validate_key(path)?;
        let found = self
            .trash(share)?
            .into_iter()
            .find(|t| t.path == path)
            .ok_or_else(|| ShareError::NotFound(path.to_owned()))?;
        self.store
            .collection(&self.collection(share)?)?
            .put(path, found.file)?;
        Ok(())
    }

    /// The versions of a file, newest first (the current one first).
    pub fn versions(&self, share: &Share, path: &str) -> Result<Vec<FileVersion>, ShareError> {
        validate_key(path)?;
        let collection = self.store.collection(&self.collection(share)?)?;
        let blobs = self.store.blobs();
        let mut out = Vec::new();
        for v in collection.versions(path, MAX_LISTED)? {
            let file = match v.value {
                EntryValue::File(f) => Some(f),
                _ => None,
            };
            let available = match &file {
                Some(f) => blobs.file(&f.hash)?.is_some(),
                None => false,
            };
            out.push(FileVersion {
                entry: v.entry,
                time: v.time,
                author: v.author,
                file,
                available,
            });
        }
        if out.is_empty() {
            return Err(ShareError::NotFound(path.to_owned()));
        }
        Ok(out)
    }

    /// Makes an earlier version of a file the current one (a new version with its content).
    pub fn restore_version(
        &self,
        share: &Share,
        path: &str,
        entry: &EntryId,
    ) -> Result<(), ShareError> {
        let version = self
            .versions(share, path)?
            .into_iter()
            .find(|v| v.entry == *entry)
            .ok_or_else(|| ShareError::NotFound(format!("{path} ({entry})")))?;
        match (version.file, version.available) {
            (Some(file), true) => {
                self.store
                    .collection(&self.collection(share)?)?
                    .put(path, file)?;
                Ok(())
            }
            _ => Err(ShareError::Gone(path.to_owned())),
        }
    }

    fn collection(&self, share: &Share) -> Result<String, ShareError> {
        if let Share::Person(p) = share {
            validate_person(p)?;
        }
        Ok(share.collection())
    }

    fn data_path(&self, id: &str) -> PathBuf {
        self.uploads.join(format!("{id}.part"))
    }

    fn record_path(&self, id: &str) -> PathBuf {
        self.uploads.join(format!("{id}.upload"))
    }

    fn create_private(&self, path: &std::path::Path, bytes: &[u8]) -> Result<(), ShareError> {
        use std::os::unix::fs::OpenOptionsExt;
        let io = |source| ShareError::Io {
            path: path.to_owned(),
            source,
        };
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        file.write_all(bytes).map_err(io)
    }

    /// `owner`'s upload `id`; another person's is "no such upload".
    fn record(&self, owner: &str, id: &str) -> Result<UploadRecord, ShareError> {
        if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ShareError::NoSuchUpload);
        }
        let bytes = match fs::read(self.record_path(id)) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ShareError::NoSuchUpload)
            }
            Err(source) => {
                return Err(ShareError::Io {
                    path: self.record_path(id),
                    source,
                })
            }
        };
        let record: UploadRecord =
            postcard::from_bytes(&bytes).map_err(|_| ShareError::NoSuchUpload)?;
        if record.owner != owner {
            return Err(ShareError::NoSuchUpload);
        }
        Ok(record)
    }

    fn received(&self, id: &str) -> Result<u64, ShareError> {
        let path = self.data_path(id);
        match fs::metadata(&path) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ShareError::NoSuchUpload),
            Err(source) => Err(ShareError::Io { path, source }),
        }
    }

    fn pending_uploads(&self) -> Result<Vec<(String, UploadRecord)>, ShareError> {
        let io = |source| ShareError::Io {
            path: self.uploads.clone(),
            source,
        };
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.uploads).map_err(io)? {
            let entry = entry.map_err(io)?;
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".upload")) else {
                continue;
            };
            if let Ok(bytes) = fs::read(entry.path()) {
                if let Ok(record) = postcard::from_bytes::<UploadRecord>(&bytes) {
                    out.push((id.to_owned(), record));
                }
            }
        }
        Ok(out)
    }
}

/// The share a collection name belongs to.
fn share_of(collection: &str) -> Share {
    match collection.strip_prefix(PERSON_SHARE_PREFIX) {
        Some(person) => Share::Person(person.to_owned()),
        None => Share::Community,
    }
}

/// A folder path without surrounding slashes; `""` is the top.
fn clean_folder(folder: &str) -> Result<String, ShareError> {
    let folder = folder.trim_matches('/');
    if !folder.is_empty() {
        validate_key(folder)?;
    }
    Ok(folder.to_owned())
}

/// 128 random bits in hex: an upload's id.
fn random_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system's random source");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
