//! Batch certificates: one signature by an author over the ids of many of its entries.
//!
//! Checking an entry's own Ed25519 signature strictly costs about 50 µs; a sync of a million
//! entries cannot afford one per entry. A server that writes a batch of entries also signs a
//! [`Certificate`] listing their ids; a receiver that has checked the certificate (one strict
//! check) accepts a listed entry of the same author without checking its own signature. An
//! entry id is the BLAKE3 hash of the entry's whole body, author included, so this proves as
//! much as the entry's own signature. Every entry keeps its own signature: a server that sends
//! a few entries of a large batch sends them alone, and the receiver checks each.
//!
//! How certificates travel and are kept (ARCHITECTURE.md, "Batch certificates"): a server
//! keeps the certificates that vouched for entries it accepted, so it can prove those entries
//! to the next server in turn.

use crate::entry::EntryId;
use crate::format::certificate::{CertificateBodyV1, MAX_CERTIFIED_IDS};
use crate::identity::{PublicKey, SecretKey};
use crate::EntryError;

crate::hash::id_type!(
    /// The id of a batch certificate: the BLAKE3 hash of its encoded body.
    CertificateId
);

/// Domain separation for certificate signatures (never valid as an entry signature).
const CERTIFICATE_CONTEXT: &[u8] = b"archive batch certificate v1\0";

/// A batch certificate whose signature has been checked (or made here). Immutable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    author: PublicKey,
    /// Strictly ascending.
    ids: Vec<EntryId>,
    id: CertificateId,
    encoded: Vec<u8>,
}

fn signed_message(body: &[u8]) -> Vec<u8> {
    crate::identity::domain_separated(CERTIFICATE_CONTEXT, body)
}

impl Certificate {
    /// Signs a certificate over `ids` (sorted and deduplicated here): between 1 and
    /// [`MAX_CERTIFIED_IDS`] distinct ids of entries written by `key`.
    pub fn sign(
        key: &SecretKey,
        ids: impl IntoIterator<Item = EntryId>,
    ) -> Result<Self, EntryError> {
        let mut ids: Vec<[u8; 32]> = ids.into_iter().map(|id| *id.as_bytes()).collect();
        ids.sort_unstable();
        ids.dedup();
        let body = CertificateBodyV1 {
            author: *key.public().as_bytes(),
            ids,
        };
        body.check()?;
        let encoded_body = body.encode();
        let signature = key.sign(&signed_message(&encoded_body));
        let id = CertificateId::from_bytes(*crate::Hash::of(&encoded_body).as_bytes());
        let mut encoded = encoded_body;
        encoded.extend_from_slice(&signature);
        Ok(Certificate {
            author: key.public(),
            ids: body.ids.into_iter().map(EntryId::from_bytes).collect(),
            id,
            encoded,
        })
    }

    /// Certificates over any number of distinct ids, [`MAX_CERTIFIED_IDS`] at a time in the
    /// order given: entries written one after another (close in time) share a certificate,
    /// so a peer that fetches them in time order gets whole certificates.
    pub(crate) fn sign_all(key: &SecretKey, ids: Vec<EntryId>) -> Vec<Self> {
        ids.chunks(MAX_CERTIFIED_IDS)
            .map(|part| {
                Certificate::sign(key, part.iter().copied())
                    .expect("1 to MAX_CERTIFIED_IDS distinct ids")
            })
            .collect()
    }

    /// Decodes a certificate from a peer and checks its signature strictly.
    pub fn decode(bytes: &[u8]) -> Result<Self, EntryError> {
        let cert = Self::decode_unverified(bytes)?;
        let body = &bytes[..bytes.len() - 64];
        let signature: [u8; 64] = bytes[bytes.len() - 64..].try_into().expect("64 bytes");
        if !cert.author.verify(&signed_message(body), &signature) {
            return Err(EntryError::BadCertificate { id: cert.id });
        }
        Ok(cert)
    }

    /// Decodes without checking the signature: only for bytes this store checked before.
    pub(crate) fn decode_unverified(bytes: &[u8]) -> Result<Self, EntryError> {
        if bytes.len() < 64 {
            return Err(EntryError::Malformed {
                reason: format!("{} bytes is too short for a certificate", bytes.len()),
            });
        }
        let body = &bytes[..bytes.len() - 64];
        let decoded = CertificateBodyV1::decode(body)?;
        Ok(Certificate {
            author: PublicKey::from_bytes(decoded.author),
            ids: decoded.ids.into_iter().map(EntryId::from_bytes).collect(),
            id: CertificateId::from_bytes(*crate::Hash::of(body).as_bytes()),
            encoded: bytes.to_vec(),
        })
    }

    /// Whether this certificate vouches for the entry `id` written by `author`.
    pub fn vouches_for(&self, id: &EntryId, author: &PublicKey) -> bool {
        self.author == *author && self.ids.binary_search(id).is_ok()
    }

    /// The author whose entries it vouches for.
    pub fn author(&self) -> PublicKey {
        self.author
    }

    /// The entry ids it lists, ascending.
    pub fn ids(&self) -> &[EntryId] {
        &self.ids
    }

    /// Its id: BLAKE3 of the encoded body.
    pub fn id(&self) -> CertificateId {
        self.id
    }

    /// The encoding (body, then signature).
    pub fn encoded(&self) -> &[u8] {
        &self.encoded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u32) -> Vec<EntryId> {
        (0..n)
            .map(|i| EntryId::from_bytes(*crate::Hash::of(&i.to_le_bytes()).as_bytes()))
            .collect()
    }

    #[test]
    fn a_certificate_vouches_for_its_ids_of_its_author_only() {
        let key = SecretKey::from_bytes([3; 32]);
        let other = SecretKey::from_bytes([4; 32]);
        let listed = ids(10);
        let cert = Certificate::sign(&key, listed.iter().rev().copied()).unwrap();
        let decoded = Certificate::decode(cert.encoded()).unwrap();
        assert_eq!(decoded, cert);
        for id in &listed {
            assert!(decoded.vouches_for(id, &key.public()));
            assert!(!decoded.vouches_for(id, &other.public()));
        }
        assert!(!decoded.vouches_for(&ids(11)[10], &key.public()));
    }

    #[test]
    fn a_changed_byte_or_another_signer_is_refused() {
        let key = SecretKey::from_bytes([3; 32]);
        let cert = Certificate::sign(&key, ids(3)).unwrap();
        for i in 0..cert.encoded().len() {
            let mut bad = cert.encoded().to_vec();
            bad[i] ^= 0x10;
            assert!(Certificate::decode(&bad).is_err(), "byte {i} flipped");
        }
        // An entry signature over the same body bytes is not a certificate signature.
        let body = &cert.encoded()[..cert.encoded().len() - 64];
        let mut as_entry = body.to_vec();
        as_entry.extend(key.sign(&[b"archive entry signature v1\0".as_slice(), body].concat()));
        assert!(matches!(
            Certificate::decode(&as_entry),
            Err(EntryError::BadCertificate { .. })
        ));
    }

    #[test]
    fn sign_all_splits_at_the_limit() {
        let key = SecretKey::from_bytes([3; 32]);
        let all = ids(MAX_CERTIFIED_IDS as u32 * 2 + 5);
        let certs = Certificate::sign_all(&key, all.clone());
        assert_eq!(
            certs.iter().map(|c| c.ids().len()).collect::<Vec<_>>(),
            [MAX_CERTIFIED_IDS, MAX_CERTIFIED_IDS, 5]
        );
        for id in &all {
            assert_eq!(
                certs
                    .iter()
                    .filter(|c| c.vouches_for(id, &key.public()))
                    .count(),
                1
            );
        }
        assert!(Certificate::sign(&key, []).is_err());
        assert!(Certificate::sign(&key, ids(MAX_CERTIFIED_IDS as u32 + 1)).is_err());
    }
}
