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

impl PublicKey {
    /// Checks `signature` over `message`, rejecting malleable signatures and weak keys.
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        let Ok(key) = VerifyingKey::from_bytes(self.as_bytes()) else {
            return false;
        };
        let sig = ed25519_dalek::Signature::from_bytes(signature);
        key.verify_strict(message, &sig).is_ok()
    }
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
