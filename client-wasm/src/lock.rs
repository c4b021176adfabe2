//! The stored form of a profile, optionally locked with a passphrase.
//!
//! What the browser vault stores (itself encrypted under a non-extractable WebCrypto key):
//!
//! - `0x00 | snapshot` — unlocked;
//! - `0x01 | salt (16) | nonce (12) | ChaCha20-Poly1305(key, nonce, snapshot, aad = 0x01 | salt)` —
//!   locked, with `key = Argon2id(passphrase, salt, m = 19 MiB, t = 2, p = 1)` (OWASP's minimum
//!   recommendation). A fresh salt and a fresh random nonce for every write: the key changes with
//!   every salt, so a nonce is never reused under one key.

use argon2::{Algorithm, Argon2, Params, Version};
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::core::aead;

const UNLOCKED: u8 = 0x00;
const LOCKED: u8 = 0x01;
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 12;
/// Argon2id memory cost in KiB.
pub const ARGON2_M_KIB: u32 = 19 * 1024;
/// Argon2id iterations.
pub const ARGON2_T: u32 = 2;

/// Why stored state could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LockError {
    /// The passphrase is wrong (or the data was tampered with: deliberately indistinguishable).
    #[error("wrong passphrase")]
    WrongPassphrase,
    /// The stored bytes are not in this format.
    #[error("stored state is corrupt")]
    Corrupt,
    /// A passphrase is needed to open this state.
    #[error("locked with a passphrase")]
    Locked,
}

fn derive(passphrase: &str, salt: &[u8; SALT_LEN]) -> Result<Zeroizing<[u8; 32]>, LockError> {
    let params = Params::new(ARGON2_M_KIB, ARGON2_T, 1, Some(32)).map_err(|_| LockError::Corrupt)?;
    let mut key = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase.as_bytes(), salt, key.as_mut())
        .map_err(|_| LockError::Corrupt)?;
    Ok(key)
}

/// Wraps a snapshot for storage, locked if `passphrase` is given.
pub fn seal(
    snapshot: &[u8],
    passphrase: Option<&str>,
    rng: &mut impl CryptoRng,
) -> Result<Zeroizing<Vec<u8>>, LockError> {
    let Some(passphrase) = passphrase else {
        let mut out = Zeroizing::new(Vec::with_capacity(snapshot.len() + 1));
        out.push(UNLOCKED);
        out.extend_from_slice(snapshot);
        return Ok(out);
    };
    let mut salt = [0u8; SALT_LEN];
    rng.fill_bytes(&mut salt);
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    let key = derive(passphrase, &salt)?;
    let mut aad = vec![LOCKED];
    aad.extend_from_slice(&salt);
    let ciphertext = aead::seal(&key, &nonce, &aad, snapshot);
    let mut out = Zeroizing::new(aad);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

/// Whether stored bytes need a passphrase.
pub fn is_locked(stored: &[u8]) -> bool {
    stored.first() == Some(&LOCKED)
}

/// Opens stored bytes; `passphrase` is needed if they are locked.
pub fn open(stored: &[u8], passphrase: Option<&str>) -> Result<Zeroizing<Vec<u8>>, LockError> {
    match stored.split_first() {
        Some((&UNLOCKED, snapshot)) => Ok(Zeroizing::new(snapshot.to_vec())),
        Some((&LOCKED, rest)) => {
            let passphrase = passphrase.ok_or(LockError::Locked)?;
            let (salt, rest) = rest.split_first_chunk::<SALT_LEN>().ok_or(LockError::Corrupt)?;
            let (nonce, ciphertext) = rest.split_first_chunk::<NONCE_LEN>().ok_or(LockError::Corrupt)?;
            let key = derive(passphrase, salt)?;
            let mut aad = vec![LOCKED];
            aad.extend_from_slice(salt);
            aead::open(&key, nonce, &aad, ciphertext).map(Zeroizing::new).ok_or(LockError::WrongPassphrase)
        }
        _ => Err(LockError::Corrupt),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;

    #[test]
    fn locked_state_opens_only_with_its_passphrase() {
        let mut rng = rand_chacha::ChaCha20Rng::from_seed([3; 32]);
        let sealed = seal(b"snapshot", Some("correct horse"), &mut rng).unwrap();
        assert!(is_locked(&sealed));
        assert_eq!(open(&sealed, Some("correct horse")).unwrap().as_slice(), b"snapshot");
        assert_eq!(open(&sealed, Some("wrong")).unwrap_err(), LockError::WrongPassphrase);
        assert_eq!(open(&sealed, None).unwrap_err(), LockError::Locked);
        let mut tampered = sealed.to_vec();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(open(&tampered, Some("correct horse")).unwrap_err(), LockError::WrongPassphrase);
        assert_eq!(open(&sealed[..20], Some("correct horse")).unwrap_err(), LockError::Corrupt);
    }

    #[test]
    fn unlocked_state_round_trips_and_garbage_is_refused() {
        let mut rng = rand_chacha::ChaCha20Rng::from_seed([4; 32]);
        let sealed = seal(b"plain", None, &mut rng).unwrap();
        assert!(!is_locked(&sealed));
        assert_eq!(open(&sealed, None).unwrap().as_slice(), b"plain");
        assert_eq!(open(&[], None).unwrap_err(), LockError::Corrupt);
        assert_eq!(open(&[7, 1], None).unwrap_err(), LockError::Corrupt);
    }
}
