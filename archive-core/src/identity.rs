//! The server's signing identity: an Ed25519 key pair.
//!
//! The same 32-byte secret becomes the iroh endpoint identity in `archive-net`, so a server's
//! endpoint id and the author of its entries are one public key.

use std::fmt;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};

crate::hash::id_type!(
    /// The public half of a server's identity: the author of its entries. (Its bytes are also
    /// the server's [`PeerId`], the iroh endpoint id peers dial.)
    PublicKey
);

/// What an author signs: a context naming the kind of message, then the message's body, so a
/// signature over one kind (an entry, a batch certificate) is never valid as another.
pub(crate) fn domain_separated(context: &[u8], body: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(context.len() + body.len());
    message.extend_from_slice(context);
    message.extend_from_slice(body);
    message
}

impl PublicKey {
    /// Checks `signature` over `message`, rejecting malleable signatures and weak keys.
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        let Some(key) = decoded_key(self.as_bytes()) else {
            return false;
        };
        let sig = ed25519_dalek::Signature::from_bytes(signature);
        key.verify_strict(message, &sig).is_ok()
    }
}

/// Decoded keys a thread saw last, by the low bits of their first byte: a sync checks
/// thousands of entries by a handful of authors, and decoding a key (a square root in the
/// field) is about a seventh of checking a signature.
const KEY_CACHE_SLOTS: usize = 8;

/// A key's bytes and its decoded point.
type CachedKey = ([u8; 32], VerifyingKey);

/// The point of a public key, from a small per-thread cache (the same `VerifyingKey` that
/// `VerifyingKey::from_bytes` returns: the check itself is unchanged); `None` if the bytes
/// are not a key.
fn decoded_key(bytes: &[u8; 32]) -> Option<VerifyingKey> {
    use std::cell::RefCell;
    thread_local! {
        static KEYS: RefCell<[Option<CachedKey>; KEY_CACHE_SLOTS]> =
            const { RefCell::new([const { None }; KEY_CACHE_SLOTS]) };
    }
    let slot = usize::from(bytes[0]) % KEY_CACHE_SLOTS;
    KEYS.with(|keys| {
        if let Some((cached, key)) = &keys.borrow()[slot] {
            if cached == bytes {
                return Some(*key);
            }
        }
        let key = VerifyingKey::from_bytes(bytes).ok()?;
        keys.borrow_mut()[slot] = Some((*bytes, key));
        Some(key)
    })
}

crate::hash::id_type!(
    /// A server as a peer: its iroh endpoint id, which is its store's [`PublicKey`]. The
    /// store records per peer what it delivered, its usage and the last agreement with it.
    PeerId
);

impl From<PublicKey> for PeerId {
    fn from(key: PublicKey) -> Self {
        PeerId::from_bytes(*key.as_bytes())
    }
}

/// A server's secret signing key. Its `Debug` never prints the secret.
#[derive(Clone)]
pub struct SecretKey(SigningKey);

impl SecretKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> std::io::Result<Self> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(std::io::Error::other)?;
        Ok(Self::from_bytes(seed))
    }

    /// The key whose 32-byte seed is `seed`.
    pub fn from_bytes(seed: [u8; 32]) -> Self {
        SecretKey(SigningKey::from_bytes(&seed))
    }

    /// The 32-byte seed (keep it secret).
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The matching public key.
    pub fn public(&self) -> PublicKey {
        PublicKey::from_bytes(self.0.verifying_key().to_bytes())
    }

    pub(crate) fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.0.sign(message).to_bytes()
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(public: {})", self.public())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_cache_never_mixes_up_authors() {
        // More authors than cache slots, so slots are shared and replaced as they alternate.
        let keys: Vec<SecretKey> = (0..3 * KEY_CACHE_SLOTS as u8)
            .map(|i| SecretKey::from_bytes([i; 32]))
            .collect();
        for round in 0..3 {
            for (i, key) in keys.iter().enumerate() {
                let message = format!("entry {i} round {round}");
                let signature = key.sign(message.as_bytes());
                assert!(key.public().verify(message.as_bytes(), &signature));
                // Another author's key, a changed message or signature: refused.
                let other = &keys[(i + 1) % keys.len()];
                assert!(!other.public().verify(message.as_bytes(), &signature));
                assert!(!key.public().verify(b"something else", &signature));
                let mut bad = signature;
                bad[5] ^= 1;
                assert!(!key.public().verify(message.as_bytes(), &bad));
            }
        }
    }

    #[test]
    fn bytes_that_are_not_a_key_never_verify() {
        // y = 2 is not the y-coordinate of a curve point: no key decodes from it.
        let mut not_a_point = [0u8; 32];
        not_a_point[0] = 2;
        assert!(VerifyingKey::from_bytes(&not_a_point).is_err());
        let key = PublicKey::from_bytes(not_a_point);
        let signer = SecretKey::from_bytes([1; 32]);
        let signature = signer.sign(b"m");
        for _ in 0..2 {
            assert!(!key.verify(b"m", &signature));
        }
    }
}
