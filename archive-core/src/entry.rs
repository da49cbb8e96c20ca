//! Entries: the small signed records that make up a collection.

use crate::clock::Timestamp;
use crate::format::entry::{EntryBodyV1, ValueV1, MAX_ENCODED_ENTRY};
use crate::hash::Hash;
use crate::identity::{PublicKey, SecretKey};
use crate::names::{validate_collection, validate_key, NameError};
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
    /// The key was removed.
    Tombstone,
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
}

/// An entry with its id and a verified signature. Immutable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedEntry {
    entry: Entry,
    id: EntryId,
    /// The canonical encoding: body followed by the 64-byte signature.
    encoded: Vec<u8>,
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
    let mut msg = Vec::with_capacity(SIGNATURE_CONTEXT.len() + body.len());
    msg.extend_from_slice(SIGNATURE_CONTEXT);
    msg.extend_from_slice(body);
    msg
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
        let body = EntryBodyV1::from_entry(&entry).encode();
        let signature = key.sign(&signed_message(&body));
        let id = EntryId::of_body(&body);
        let mut encoded = body;
        encoded.extend_from_slice(&signature);
        if encoded.len() > MAX_ENCODED_ENTRY {
            return Err(EntryError::TooLarge {
                size: encoded.len(),
            });
        }
        Ok(SignedEntry { entry, id, encoded })
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
        let entry = EntryBodyV1::decode(body)?.into_entry();
        Ok(SignedEntry {
            entry,
            id: EntryId::of_body(body),
            encoded: bytes.to_vec(),
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
    Ok(())
}

impl EntryBodyV1<'_> {
    fn from_entry(entry: &Entry) -> EntryBodyV1<'_> {
        EntryBodyV1 {
            collection: &entry.collection,
            key: &entry.key,
            author: *entry.author.as_bytes(),
            time: entry.time.raw(),
            value: match entry.value {
                EntryValue::Tombstone => ValueV1::Tombstone,
                EntryValue::File(f) => ValueV1::File {
                    hash: *f.hash.as_bytes(),
                    size: f.size,
                    manifest: f.manifest.map(|m| *m.as_bytes()),
                },
            },
        }
    }

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
        }
    }
}
