//! Entries: the small signed records that make up a collection.

use std::sync::Arc;

use crate::certificate::Certificate;
use crate::clock::Timestamp;
use crate::format::entry::{
    EntryBody, EntryBodyV1, EntryBodyV2, MetaV2, ValueV1, ValueV2, MAX_ENCODED_ENTRY, MODE_BITS,
};
use crate::hash::Hash;
use crate::identity::{PublicKey, SecretKey};
use crate::names::{validate_collection, validate_key, validate_person, NameError};
use crate::EntryError;

crate::hash::id_type!(
    /// The id of an entry: the BLAKE3 hash of its encoded body. A distinct type from
    /// [`Hash`](struct@crate::Hash) (which names content), though both are BLAKE3.
    EntryId
);

impl EntryId {
    /// The id of an entry whose encoded body is `body`.
    pub(crate) fn of_body(body: &[u8]) -> Self {
        EntryId::from_bytes(*Hash::of(body).as_bytes())
    }
}

/// What a file's bytes are and how they are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileRef {
    /// BLAKE3 of the whole content, identical to `b3sum` of the file.
    pub hash: Hash,
    /// Length in bytes.
    pub size: u64,
    /// For a chunked file, the blob that lists its chunks; `None` when the content is one blob
    /// (named `hash`).
    pub manifest: Option<Hash>,
}

/// What an entry says about its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryValue {
    /// The key holds this file.
    File(FileRef),
    /// The key is a folder. Written for empty folders, so an export gives them back; a file
    /// at or beneath the key supersedes it (a folder entry never conflicts with anything).
    Folder,
    /// The key was removed.
    Tombstone,
}

/// What a file system says about a file or folder besides its bytes, restored by `export`.
/// Both are `None` when unknown (content put from memory, entries written before entry v2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FileMeta {
    /// Modification time, nanoseconds since the Unix epoch (negative before 1970).
    pub modified_ns: Option<i64>,
    /// Permission bits, at most `0o777` (set-id and sticky bits are never kept).
    pub mode: Option<u32>,
}

/// The messenger's fields of an entry; all `None` for archive files.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct MessageFields {
    /// The account, on the server that signed the entry, of the person who wrote it. A person
    /// is named by the signing server and this account, so no server can write as a person
    /// of another.
    pub person: Option<String>,
    /// The entry this one answers, by its key (time and id: what a store finds an entry by).
    pub reply_to: Option<crate::sync::SyncKey>,
    /// The entry this one replaces (an edit), by its key.
    pub edit_of: Option<crate::sync::SyncKey>,
}

/// An entry as its author wrote it, before or after signing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Entry {
    /// The collection it belongs to.
    pub collection: String,
    /// The key (a relative path with `/` separators).
    pub key: String,
    /// A file or a tombstone.
    pub value: EntryValue,
    /// Who wrote and signed it.
    pub author: PublicKey,
    /// When, on its author's hybrid logical clock.
    pub time: Timestamp,
    /// Modification time and permissions of a file or folder (must be empty for a tombstone).
    pub meta: FileMeta,
    /// The messenger's fields.
    pub message: MessageFields,
}

/// An entry with its id, proved authentic by its own signature or by a batch certificate of
/// its author. Immutable. Two are equal when their encodings are.
#[derive(Debug, Clone)]
pub struct SignedEntry {
    entry: Entry,
    id: EntryId,
    /// The canonical encoding: body followed by the 64-byte signature.
    encoded: Vec<u8>,
    /// The batch certificate that vouches for it, if one came with it.
    voucher: Option<Voucher>,
}

impl PartialEq for SignedEntry {
    fn eq(&self, other: &Self) -> bool {
        self.encoded == other.encoded
    }
}

impl Eq for SignedEntry {}

/// A certificate vouching for an entry, and whether the entry's own signature was checked too
/// (it was when the entry was signed here or decoded with [`SignedEntry::decode`]).
#[derive(Debug, Clone)]
pub(crate) struct Voucher {
    pub(crate) certificate: Arc<Certificate>,
    pub(crate) signature_checked: bool,
}

/// Bytes a store sets aside for an entry besides its encoding and the copies of its name:
/// its rows in the view, history, sync index and insertion log, and the database's overhead.
const ENTRY_OVERHEAD: u64 = 160;

/// The most [`SignedEntry::storage_charge`] can be: what a quota sets aside for an entry before
/// its bytes are known.
pub const MAX_ENTRY_CHARGE: u64 = MAX_ENCODED_ENTRY as u64
    + 2 * (crate::names::MAX_KEY_LEN + crate::names::MAX_NAME_LEN) as u64
    + ENTRY_OVERHEAD;

/// Domain separation for entry signatures.
const SIGNATURE_CONTEXT: &[u8] = b"archive entry signature v1\0";

fn signed_message(body: &[u8]) -> Vec<u8> {
    crate::identity::domain_separated(SIGNATURE_CONTEXT, body)
}

impl SignedEntry {
    /// Signs `entry` with `key`. The entry's author must be `key`'s public half.
    pub fn sign(entry: Entry, key: &SecretKey) -> Result<Self, EntryError> {
        if entry.author != key.public() {
            return Err(EntryError::WrongAuthor {
                author: entry.author,
            });
        }
        check_names(&entry)?;
        check_meta(&entry)?;
        let body = EntryBodyV2::from_entry(&entry).encode();
        let signature = key.sign(&signed_message(&body));
        let id = EntryId::of_body(&body);
        let mut encoded = body;
        encoded.extend_from_slice(&signature);
        if encoded.len() > MAX_ENCODED_ENTRY {
            return Err(EntryError::TooLarge {
                size: encoded.len(),
            });
        }
        Ok(SignedEntry {
            entry,
            id,
            encoded,
            voucher: None,
        })
    }

    /// Decodes and verifies an encoded entry (from disk or from a peer). Refuses anything that
    /// is not canonical, not within the size limit, or not signed by its author.
    pub fn decode(bytes: &[u8]) -> Result<Self, EntryError> {
        let entry = Self::decode_unverified(bytes)?;
        check_names(&entry.entry)?;
        let body = &bytes[..bytes.len() - 64];
        let signature: [u8; 64] = bytes[bytes.len() - 64..].try_into().expect("64 bytes");
        if !entry.entry.author.verify(&signed_message(body), &signature) {
            return Err(EntryError::BadSignature { id: entry.id });
        }
        Ok(entry)
    }

    /// Decodes an entry from a peer that sent `certificates` (checked with
    /// [`Certificate::decode`]) with it: an entry one of them vouches for is accepted without
    /// checking its own signature; any other is checked as [`SignedEntry::decode`] does.
    /// Everything else (canonical encoding, size, names) is checked the same either way.
    pub fn decode_vouched(
        bytes: &[u8],
        certificates: &[Arc<Certificate>],
    ) -> Result<Self, EntryError> {
        let mut entry = Self::decode_unverified(bytes)?;
        let author = entry.entry.author;
        match certificates
            .iter()
            .find(|c| c.vouches_for(&entry.id, &author))
        {
            Some(certificate) => {
                check_names(&entry.entry)?;
                entry.voucher = Some(Voucher {
                    certificate: certificate.clone(),
                    signature_checked: false,
                });
                Ok(entry)
            }
            None => Self::decode(bytes),
        }
    }

    /// This entry with `certificate` vouching for it, so a store keeps the certificate and
    /// sends it on with the entry; `None` if the certificate does not vouch for it.
    pub fn with_certificate(mut self, certificate: Arc<Certificate>) -> Option<Self> {
        if !certificate.vouches_for(&self.id, &self.entry.author) {
            return None;
        }
        let signature_checked = self.voucher.as_ref().is_none_or(|v| v.signature_checked);
        self.voucher = Some(Voucher {
            certificate,
            signature_checked,
        });
        Some(self)
    }

    /// The certificate vouching for it, if one came with it.
    pub(crate) fn voucher(&self) -> Option<&Voucher> {
        self.voucher.as_ref()
    }

    /// The batch certificate that came with it (see [`SignedEntry::decode_vouched`]).
    pub fn certificate(&self) -> Option<&Arc<Certificate>> {
        self.voucher.as_ref().map(|v| &v.certificate)
    }

    /// Whether its own signature verifies (strictly), whatever vouches for it.
    pub(crate) fn signature_verifies(&self) -> bool {
        let (body, signature) = self.encoded.split_at(self.encoded.len() - 64);
        let signature: [u8; 64] = signature.try_into().expect("64 bytes");
        self.entry.author.verify(&signed_message(body), &signature)
    }

    /// Decodes without checking the signature: only for bytes this store verified before.
    /// (Names were checked when the entry was accepted; a store written by an earlier version
    /// may hold keys the current rule refuses, and those must still be readable, so only
    /// [`SignedEntry::decode`] and [`SignedEntry::sign`] apply the rule.)
    pub(crate) fn decode_unverified(bytes: &[u8]) -> Result<Self, EntryError> {
        if bytes.len() > MAX_ENCODED_ENTRY {
            return Err(EntryError::TooLarge { size: bytes.len() });
        }
        if bytes.len() < 64 {
            return Err(EntryError::Malformed {
                reason: format!("{} bytes is too short for an entry", bytes.len()),
            });
        }
        let body = &bytes[..bytes.len() - 64];
        let entry = match EntryBody::decode(body)? {
            EntryBody::V1(v1) => v1.into_entry(),
            EntryBody::V2(v2) => v2.into_entry(),
        };
        Ok(SignedEntry {
            entry,
            id: EntryId::of_body(body),
            encoded: bytes.to_vec(),
            voucher: None,
        })
    }

    /// The entry's content.
    pub fn entry(&self) -> &Entry {
        &self.entry
    }

    /// Its id: BLAKE3 of the encoded body.
    pub fn id(&self) -> EntryId {
        self.id
    }

    /// Its key in the store and in sync: its time, then its id.
    pub fn sync_key(&self) -> crate::sync::SyncKey {
        crate::sync::SyncKey {
            time: self.entry().time.raw(),
            id: self.id,
        }
    }

    /// The canonical encoding (body, then signature).
    pub fn encoded(&self) -> &[u8] {
        &self.encoded
    }

    /// What keeping this entry costs a store, in bytes, as quotas count it: its encoding,
    /// two more copies of its collection and key (the view and the history are keyed by
    /// them), and a fixed overhead for its index rows. At most [`MAX_ENTRY_CHARGE`].
    pub fn storage_charge(&self) -> u64 {
        let names = (self.entry.collection.len() + self.entry.key.len()) as u64;
        self.encoded.len() as u64 + 2 * names + ENTRY_OVERHEAD
    }
}

fn check_names(entry: &Entry) -> Result<(), EntryError> {
    let invalid = |e: NameError| EntryError::Malformed {
        reason: e.to_string(),
    };
    validate_collection(&entry.collection).map_err(invalid)?;
    validate_key(&entry.key).map_err(invalid)?;
    if let Some(person) = &entry.message.person {
        validate_person(person).map_err(invalid)?;
    }
    Ok(())
}

/// What the encoding could carry but no valid entry holds.
fn check_meta(entry: &Entry) -> Result<(), EntryError> {
    let malformed = |reason: String| Err(EntryError::Malformed { reason });
    if entry.value == EntryValue::Tombstone && entry.meta != FileMeta::default() {
        return malformed("a tombstone has no modification time or mode".into());
    }
    match entry.meta.mode {
        Some(mode) if mode & !MODE_BITS != 0 => malformed(format!(
            "mode {mode:o} has bits beyond the permission bits 777"
        )),
        _ => Ok(()),
    }
}

impl EntryBodyV1<'_> {
    fn into_entry(self) -> Entry {
        Entry {
            collection: self.collection.to_owned(),
            key: self.key.to_owned(),
            author: PublicKey::from_bytes(self.author),
            time: Timestamp::from_raw(self.time),
            value: match self.value {
                ValueV1::Tombstone => EntryValue::Tombstone,
                ValueV1::File {
                    hash,
                    size,
                    manifest,
                } => EntryValue::File(FileRef {
                    hash: Hash::from_bytes(hash),
                    size,
                    manifest: manifest.map(Hash::from_bytes),
                }),
            },
            meta: FileMeta::default(),
            message: MessageFields::default(),
        }
    }
}

impl EntryBodyV2<'_> {
    fn from_entry(entry: &Entry) -> EntryBodyV2<'_> {
        let meta = MetaV2 {
            modified_ns: entry.meta.modified_ns,
            mode: entry.meta.mode,
        };
        EntryBodyV2 {
            collection: &entry.collection,
            key: &entry.key,
            author: *entry.author.as_bytes(),
            time: entry.time.raw(),
            value: match entry.value {
                EntryValue::Tombstone => ValueV2::Tombstone,
                EntryValue::Folder => ValueV2::Folder { meta },
                EntryValue::File(f) => ValueV2::File {
                    hash: *f.hash.as_bytes(),
                    size: f.size,
                    manifest: f.manifest.map(|m| *m.as_bytes()),
                    meta,
                },
            },
            person: entry.message.person.as_deref(),
            reply_to: entry.message.reply_to.map(|k| (k.time, *k.id.as_bytes())),
            edit_of: entry.message.edit_of.map(|k| (k.time, *k.id.as_bytes())),
        }
    }

    fn into_entry(self) -> Entry {
        let (value, meta) = match self.value {
            ValueV2::Tombstone => (EntryValue::Tombstone, MetaV2::default()),
            ValueV2::Folder { meta } => (EntryValue::Folder, meta),
            ValueV2::File {
                hash,
                size,
                manifest,
                meta,
            } => (
                EntryValue::File(FileRef {
                    hash: Hash::from_bytes(hash),
                    size,
                    manifest: manifest.map(Hash::from_bytes),
                }),
                meta,
            ),
        };
        Entry {
            collection: self.collection.to_owned(),
            key: self.key.to_owned(),
            author: PublicKey::from_bytes(self.author),
            time: Timestamp::from_raw(self.time),
            value,
            meta: FileMeta {
                modified_ns: meta.modified_ns,
                mode: meta.mode,
            },
            message: MessageFields {
                person: self.person.map(str::to_owned),
                reply_to: self.reply_to.map(key_of),
                edit_of: self.edit_of.map(key_of),
            },
        }
    }
}

/// A (time, id) pair of the encoding as a key.
fn key_of((time, id): (u64, [u8; 32])) -> crate::sync::SyncKey {
    crate::sync::SyncKey {
        time,
        id: EntryId::from_bytes(id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An entry written before entry v2 (as format-1 stores and version-1 peers hold it) still
    /// decodes and verifies, under the id it always had: entries are never re-encoded.
    #[test]
    fn version_1_entries_stay_valid_under_their_old_id() {
        let key = SecretKey::from_bytes([3; 32]);
        let body = EntryBodyV1 {
            collection: "shared",
            key: "docs/a.txt",
            author: *key.public().as_bytes(),
            time: 1 << 16,
            value: ValueV1::File {
                hash: *Hash::of(b"x").as_bytes(),
                size: 1,
                manifest: None,
            },
        }
        .encode();
        let mut encoded = body.clone();
        encoded.extend(key.sign(&signed_message(&body)));
        let decoded = SignedEntry::decode(&encoded).unwrap();
        // The id the v1 golden test pinned before entry v2.
        assert_eq!(
            decoded.id().to_hex(),
            "245b73013186112ffc8fac0ff0a44cfdd3363d109be850f2f95d2380dd42685a"
        );
        assert_eq!(decoded.encoded(), encoded.as_slice());
        assert_eq!(decoded.entry().meta, FileMeta::default());
        assert_eq!(decoded.entry().message, MessageFields::default());
        // Signing the same entry today writes v2: another id.
        let today = SignedEntry::sign(decoded.entry().clone(), &key).unwrap();
        assert_eq!(today.encoded()[0], crate::format::entry::ENTRY_V2);
        assert_ne!(today.id(), decoded.id());
    }

    #[test]
    fn signing_refuses_what_no_valid_entry_holds() {
        let key = SecretKey::from_bytes([3; 32]);
        let entry = Entry {
            collection: "c".into(),
            key: "k".into(),
            value: EntryValue::Tombstone,
            author: key.public(),
            time: Timestamp::from_raw(1),
            meta: FileMeta {
                modified_ns: Some(1),
                mode: None,
            },
            message: MessageFields::default(),
        };
        assert!(SignedEntry::sign(entry.clone(), &key).is_err());
        let folder = Entry {
            value: EntryValue::Folder,
            meta: FileMeta {
                modified_ns: None,
                mode: Some(0o4755),
            },
            ..entry.clone()
        };
        assert!(SignedEntry::sign(folder, &key).is_err());
        let bad_person = Entry {
            message: MessageFields {
                person: Some("ana\n".into()),
                ..MessageFields::default()
            },
            meta: FileMeta::default(),
            ..entry
        };
        let err = SignedEntry::sign(bad_person.clone(), &key).unwrap_err();
        assert!(err.to_string().contains("person"), "{err}");
        let good_person = Entry {
            message: MessageFields {
                person: Some("ana".into()),
                ..MessageFields::default()
            },
            ..bad_person
        };
        let signed = SignedEntry::sign(good_person, &key).unwrap();
        assert_eq!(SignedEntry::decode(signed.encoded()).unwrap(), signed);
    }
}
