//! A server's secret key sealed with a passphrase (`archive key export` / `import`): what an
//! admin carries to a new SD card so the server keeps its identity (peers know it by its key,
//! and its entries are signed with it).
//!
//! Format v1 (ARCHITECTURE.md, "Key files"), 101 bytes:
//!
//! | bytes | field |
//! |---|---|
//! | 0..16 | magic `archive-key-v1\n\0` |
//! | 16..20 | Argon2id memory in KiB (u32 LE) |
//! | 20..24 | Argon2id passes (u32 LE) |
//! | 24..25 | Argon2id lanes (u8) |
//! | 25..41 | salt (16 random bytes) |
//! | 41..53 | AES-256-GCM nonce (12 random bytes) |
//! | 53..101 | AES-256-GCM of the 32-byte seed (32 + 16-byte tag), the header (0..53) as associated data |
//!
//! The key that seals it is Argon2id(passphrase, salt) with the stored costs; costs outside
//! [`MAX_MEMORY_KIB`] and [`MAX_PASSES`] are refused before any hashing, so a hostile file
//! cannot make `import` take gigabytes or hours. Every byte is authenticated: a wrong
//! passphrase and a changed byte give the same error.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use argon2::{Algorithm, Argon2, Params, Version};

const MAGIC: &[u8; 16] = b"archive-key-v1\n\0";
const HEADER_LEN: usize = 53;
/// The size of a key file.
pub(crate) const KEY_FILE_LEN: usize = HEADER_LEN + 32 + 16;
/// The costs `export` writes: 64 MiB, 3 passes (a file on a USB stick may be attacked offline
/// at leisure, so dearer than a sign-in's hash).
const MEMORY_KIB: u32 = 64 * 1024;
const PASSES: u32 = 3;
/// The most a file may ask for.
pub(crate) const MAX_MEMORY_KIB: u32 = 1024 * 1024;
pub(crate) const MAX_PASSES: u32 = 16;
/// A passphrase's length, in bytes.
pub(crate) const MIN_PASSPHRASE_LEN: usize = 12;

/// Why a key file cannot be opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum KeyFileError {
    #[error("not an archive key file (it is {0} bytes; a key file is {KEY_FILE_LEN} and starts with `archive-key-v1`)")]
    NotAKeyFile(usize),
    #[error("the key file asks for Argon2 costs this version refuses (memory {memory_kib} KiB, {passes} passes)")]
    Costs { memory_kib: u32, passes: u32 },
    #[error("wrong passphrase, or the key file was changed")]
    WrongPassphraseOrDamaged,
    #[error("a passphrase needs at least {MIN_PASSPHRASE_LEN} bytes")]
    ShortPassphrase,
}

fn sealing_key(
    passphrase: &str,
    salt: &[u8],
    memory_kib: u32,
    passes: u32,
    lanes: u8,
) -> Result<[u8; 32], KeyFileError> {
    let params = Params::new(memory_kib, passes, u32::from(lanes), Some(32))
        .map_err(|_| KeyFileError::Costs { memory_kib, passes })?;
    let mut key = [0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase.as_bytes(), salt, &mut key)
        .map_err(|_| KeyFileError::WrongPassphraseOrDamaged)?;
    Ok(key)
}

/// Seals `seed` with `passphrase` (random salt and nonce).
pub(crate) fn seal(seed: &[u8; 32], passphrase: &str) -> Result<Vec<u8>, KeyFileError> {
    let mut random = [0u8; 28];
    getrandom::fill(&mut random).expect("the operating system's random source");
    seal_with(seed, passphrase, &random, MEMORY_KIB, PASSES)
}

fn seal_with(
    seed: &[u8; 32],
    passphrase: &str,
    random: &[u8; 28],
    memory_kib: u32,
    passes: u32,
) -> Result<Vec<u8>, KeyFileError> {
    if passphrase.len() < MIN_PASSPHRASE_LEN {
        return Err(KeyFileError::ShortPassphrase);
    }
    let mut out = Vec::with_capacity(KEY_FILE_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&memory_kib.to_le_bytes());
    out.extend_from_slice(&passes.to_le_bytes());
    out.push(1);
    out.extend_from_slice(random);
    let key = sealing_key(passphrase, &out[25..41], memory_kib, passes, 1)?;
    let cipher = Aes256Gcm::new_from_slice(&key).expect("a 32-byte key");
    let sealed = cipher
        .encrypt(
            Nonce::from_slice(&out[41..53]),
            Payload {
                msg: seed,
                aad: &out[..HEADER_LEN],
            },
        )
        .expect("sealing 32 bytes");
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Opens a key file: the 32-byte seed.
pub(crate) fn open(bytes: &[u8], passphrase: &str) -> Result<[u8; 32], KeyFileError> {
    if bytes.len() != KEY_FILE_LEN || &bytes[..16] != MAGIC {
        return Err(KeyFileError::NotAKeyFile(bytes.len()));
    }
    let memory_kib = u32::from_le_bytes(bytes[16..20].try_into().expect("4 bytes"));
    let passes = u32::from_le_bytes(bytes[20..24].try_into().expect("4 bytes"));
    let lanes = bytes[24];
    if memory_kib > MAX_MEMORY_KIB || passes > MAX_PASSES || lanes != 1 {
        return Err(KeyFileError::Costs { memory_kib, passes });
    }
    let key = sealing_key(passphrase, &bytes[25..41], memory_kib, passes, lanes)?;
    let cipher = Aes256Gcm::new_from_slice(&key).expect("a 32-byte key");
    let seed = cipher
        .decrypt(
            Nonce::from_slice(&bytes[41..53]),
            Payload {
                msg: &bytes[HEADER_LEN..],
                aad: &bytes[..HEADER_LEN],
            },
        )
        .map_err(|_| KeyFileError::WrongPassphraseOrDamaged)?;
    seed.try_into()
        .map_err(|_| KeyFileError::WrongPassphraseOrDamaged)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: [u8; 32] = [7; 32];
    const PASS: &str = "correct horse battery";
    /// The sealed seed of [`sealed`], written by this code once and checked since.
    const GOLDEN: &str =
        "45a3b3d140095a7622ab7292a2e67360cf4c058f2c90874e7dc860599567af17681b6f36582e26bc2fb927a34669a22d";

    /// Cheap costs for the tests (the format stores them).
    fn sealed() -> Vec<u8> {
        seal_with(&SEED, PASS, &[9; 28], 64, 1).unwrap()
    }

    #[test]
    fn the_format_is_pinned() {
        let bytes = sealed();
        assert_eq!(bytes.len(), KEY_FILE_LEN);
        assert_eq!(&bytes[..16], b"archive-key-v1\n\0");
        assert_eq!(&bytes[16..25], &[64, 0, 0, 0, 1, 0, 0, 0, 1]);
        assert_eq!(&bytes[25..53], &[9; 28]);
        // The sealed part, for this passphrase, salt and nonce: any change to the format or
        // the key derivation shows here.
        assert_eq!(data_encoding::HEXLOWER.encode(&bytes[53..]), GOLDEN);
        assert_eq!(open(&bytes, PASS).unwrap(), SEED);
    }

    #[test]
    fn wrong_passphrases_and_every_changed_byte_are_refused() {
        let bytes = sealed();
        assert_eq!(
            open(&bytes, "another passphrase"),
            Err(KeyFileError::WrongPassphraseOrDamaged)
        );
        for i in 0..bytes.len() {
            let mut changed = bytes.clone();
            changed[i] ^= 0x01;
            assert!(
                open(&changed, PASS).is_err(),
                "byte {i} changed and accepted"
            );
        }
        assert_eq!(
            open(&bytes[..bytes.len() - 1], PASS),
            Err(KeyFileError::NotAKeyFile(KEY_FILE_LEN - 1))
        );
        assert_eq!(open(b"", PASS), Err(KeyFileError::NotAKeyFile(0)));
    }

    #[test]
    fn hostile_costs_are_refused_before_hashing() {
        let mut bytes = sealed();
        bytes[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            open(&bytes, PASS),
            Err(KeyFileError::Costs { .. })
        ));
        let mut bytes = sealed();
        bytes[20..24].copy_from_slice(&1000u32.to_le_bytes());
        assert!(matches!(
            open(&bytes, PASS),
            Err(KeyFileError::Costs { .. })
        ));
        assert_eq!(
            seal_with(&SEED, "short", &[0; 28], 64, 1),
            Err(KeyFileError::ShortPassphrase)
        );
    }
}
