//! The stored form of a profile, optionally locked with a passphrase.
//!
//! What the browser vault stores (itself encrypted under a non-extractable WebCrypto key):
//!
//! - `0x00 | snapshot` — unlocked;
//! - `0x01 | salt (16) | nonce (12) | ChaCha20-Poly1305(key, nonce, snapshot, aad = 0x01 | salt)` —
//!   locked, with `key = Argon2id(passphrase, salt, m = 19 MiB, t = 2, p = 1)` (OWASP's minimum
//!   recommendation). The salt is fresh whenever a passphrase is set; the key is derived once per
//!   unlock and every write draws a fresh random 96-bit nonce (collision odds stay negligible far
//!   beyond any number of saves a profile makes).

use argon2::{Algorithm, Argon2, Params, Version};
use rand_core::CryptoRng;
use subtle::ConstantTimeEq;
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

/// The shortest passphrase [`check_strength`] accepts, in characters.
pub const MIN_PASSPHRASE_CHARS: usize = 12;
/// The fewest different characters [`check_strength`] accepts.
pub const MIN_DISTINCT_CHARS: usize = 6;

/// Why a new passphrase is refused (it is only ever checked when it is set, never when unlocking,
/// so a profile locked before this rule still opens).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RefusedPassphrase {
    /// Fewer than [`MIN_PASSPHRASE_CHARS`] characters.
    #[error("A passphrase needs at least 12 characters: three or four words are easy to remember.")]
    TooShort,
    /// Long enough, but made of a few repeated characters or a run along the alphabet, the digits
    /// or a keyboard row, which a guesser tries first.
    #[error(
        "This passphrase is too easy to guess (repeated characters or a simple sequence): use a few unrelated words."
    )]
    Predictable,
    /// The confirmation is not the same passphrase.
    #[error("The two passphrases differ: type the same one twice.")]
    Mismatch,
}

/// A new passphrase, typed twice: the two must be equal (compared in constant time) and the
/// passphrase must pass [`check_strength`].
pub fn check_new(passphrase: &str, confirmation: &str) -> Result<(), RefusedPassphrase> {
    check_strength(passphrase)?;
    if bool::from(passphrase.as_bytes().ct_eq(confirmation.as_bytes())) {
        Ok(())
    } else {
        Err(RefusedPassphrase::Mismatch)
    }
}

/// The minimum strength of a new passphrase: at least [`MIN_PASSPHRASE_CHARS`] characters, at
/// least [`MIN_DISTINCT_CHARS`] different ones, and not a run along the alphabet, the digits or a
/// keyboard row. This is a floor against the obvious, not an estimate of entropy: no word list is
/// shipped, so "password password" passes. (Measured with `cargo xtask dist`: the `zxcvbn` crate
/// 3.1.1, which ships such lists, took the release wasm from 224 KB to 829 KB brotli.)
/// The passphrase is the last protection of a copied browser profile against offline guessing
/// (Argon2id, [`ARGON2_M_KIB`] KiB, [`ARGON2_T`] passes, per guess).
pub fn check_strength(passphrase: &str) -> Result<(), RefusedPassphrase> {
    if passphrase.chars().count() < MIN_PASSPHRASE_CHARS {
        return Err(RefusedPassphrase::TooShort);
    }
    // Copies of the passphrase are wiped when dropped.
    let mut distinct: Zeroizing<Vec<char>> = Zeroizing::new(passphrase.chars().collect());
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < MIN_DISTINCT_CHARS {
        return Err(RefusedPassphrase::Predictable);
    }
    const RUNS: [&str; 4] = [
        "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz",
        "qwertyuiopasdfghjklzxcvbnmqwertyuiopasdfghjklzxcvbnm",
        "qwertzuiopasdfghjklyxcvbnmqwertzuiopasdfghjklyxcvbnm",
        "0123456789012345678901234567890123456789",
    ];
    let folded: Zeroizing<String> = Zeroizing::new(
        passphrase.chars().filter(|c| !c.is_whitespace()).flat_map(char::to_lowercase).collect(),
    );
    let reversed: Zeroizing<String> = Zeroizing::new(folded.chars().rev().collect());
    if RUNS.iter().any(|run| run.contains(folded.as_str()) || run.contains(reversed.as_str())) {
        return Err(RefusedPassphrase::Predictable);
    }
    Ok(())
}

/// A key derived from a passphrase, kept in memory while the profile is open so that saving does
/// not pay for Argon2id every time. Zeroized on drop.
pub struct LockKey {
    salt: [u8; SALT_LEN],
    key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for LockKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LockKey(..)")
    }
}

impl LockKey {
    /// Derives a key for `passphrase` with a fresh salt.
    pub fn new(passphrase: &str, rng: &mut impl CryptoRng) -> Result<Self, LockError> {
        let mut salt = [0u8; SALT_LEN];
        rng.fill_bytes(&mut salt);
        Self::derive(passphrase, salt)
    }

    fn derive(passphrase: &str, salt: [u8; SALT_LEN]) -> Result<Self, LockError> {
        let params = Params::new(ARGON2_M_KIB, ARGON2_T, 1, Some(32)).map_err(|_| LockError::Corrupt)?;
        let mut key = Zeroizing::new([0u8; 32]);
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into(passphrase.as_bytes(), &salt, key.as_mut())
            .map_err(|_| LockError::Corrupt)?;
        Ok(Self { salt, key })
    }

    fn aad(&self) -> Vec<u8> {
        let mut aad = vec![LOCKED];
        aad.extend_from_slice(&self.salt);
        aad
    }
}

/// Wraps a snapshot for storage, locked if a key is given. Each call draws a fresh random nonce.
pub fn seal(snapshot: &[u8], key: Option<&LockKey>, rng: &mut impl CryptoRng) -> Zeroizing<Vec<u8>> {
    let Some(key) = key else {
        let mut out = Zeroizing::new(Vec::with_capacity(snapshot.len() + 1));
        out.push(UNLOCKED);
        out.extend_from_slice(snapshot);
        return out;
    };
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    let aad = key.aad();
    let ciphertext = aead::seal(&key.key, &nonce, &aad, snapshot);
    let mut out = Zeroizing::new(aad);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    out
}

/// Whether stored bytes need a passphrase.
pub fn is_locked(stored: &[u8]) -> bool {
    stored.first() == Some(&LOCKED)
}

/// Opens stored bytes; `passphrase` is needed if they are locked, and the derived key is returned
/// for later saves and for [`open_with`].
pub fn open(
    stored: &[u8],
    passphrase: Option<&str>,
) -> Result<(Zeroizing<Vec<u8>>, Option<LockKey>), LockError> {
    match stored.split_first() {
        Some((&LOCKED, rest)) => {
            let passphrase = passphrase.ok_or(LockError::Locked)?;
            let (salt, _) = rest.split_first_chunk::<SALT_LEN>().ok_or(LockError::Corrupt)?;
            let key = LockKey::derive(passphrase, *salt)?;
            Ok((open_with(stored, Some(&key))?, Some(key)))
        }
        _ => Ok((open_with(stored, None)?, None)),
    }
}

/// Opens stored bytes with a key [`open`] already derived (the other records of one profile are
/// sealed under the same key, so Argon2id runs once per unlock, not once per record).
pub fn open_with(stored: &[u8], key: Option<&LockKey>) -> Result<Zeroizing<Vec<u8>>, LockError> {
    match stored.split_first() {
        Some((&UNLOCKED, snapshot)) => Ok(Zeroizing::new(snapshot.to_vec())),
        Some((&LOCKED, rest)) => {
            let key = key.ok_or(LockError::Locked)?;
            let (salt, rest) = rest.split_first_chunk::<SALT_LEN>().ok_or(LockError::Corrupt)?;
            let (nonce, ciphertext) = rest.split_first_chunk::<NONCE_LEN>().ok_or(LockError::Corrupt)?;
            if *salt != key.salt {
                return Err(LockError::WrongPassphrase);
            }
            let snapshot =
                aead::open(&key.key, nonce, &key.aad(), ciphertext).ok_or(LockError::WrongPassphrase)?;
            Ok(Zeroizing::new(snapshot))
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
        let key = LockKey::new("correct horse", &mut rng).unwrap();
        let sealed = seal(b"snapshot", Some(&key), &mut rng);
        assert!(is_locked(&sealed));
        let (opened, reopened_key) = open(&sealed, Some("correct horse")).unwrap();
        assert_eq!(opened.as_slice(), b"snapshot");
        // The key recovered on unlock seals again (fresh nonce), and that opens too.
        let again = seal(b"second", reopened_key.as_ref(), &mut rng);
        assert_ne!(again[17..29], sealed[17..29]);
        assert_eq!(open(&again, Some("correct horse")).unwrap().0.as_slice(), b"second");
        assert_eq!(open(&sealed, Some("wrong")).unwrap_err(), LockError::WrongPassphrase);
        assert_eq!(open(&sealed, None).unwrap_err(), LockError::Locked);
        let mut tampered = sealed.to_vec();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(open(&tampered, Some("correct horse")).unwrap_err(), LockError::WrongPassphrase);
        assert_eq!(open(&sealed[..20], Some("correct horse")).unwrap_err(), LockError::Corrupt);
        // Other records of the profile open with the derived key, without Argon2id.
        let key = reopened_key.unwrap();
        assert_eq!(open_with(&again, Some(&key)).unwrap().as_slice(), b"second");
        assert_eq!(open_with(&again, None).unwrap_err(), LockError::Locked);
        let other = LockKey::new("correct horse", &mut rng).unwrap();
        assert_eq!(open_with(&again, Some(&other)).unwrap_err(), LockError::WrongPassphrase);
    }

    #[test]
    fn unlocked_state_round_trips_and_garbage_is_refused() {
        let mut rng = rand_chacha::ChaCha20Rng::from_seed([4; 32]);
        let sealed = seal(b"plain", None, &mut rng);
        assert!(!is_locked(&sealed));
        assert_eq!(open(&sealed, None).unwrap().0.as_slice(), b"plain");
        assert_eq!(open(&[], None).unwrap_err(), LockError::Corrupt);
        assert_eq!(open(&[7, 1], None).unwrap_err(), LockError::Corrupt);
    }

    #[test]
    fn a_new_passphrase_needs_twelve_characters_no_obvious_pattern_and_a_matching_confirmation() {
        assert_eq!(check_strength("a"), Err(RefusedPassphrase::TooShort));
        assert_eq!(check_strength("elevenchars"), Err(RefusedPassphrase::TooShort));
        // Twelve characters counted as characters, not bytes.
        assert_eq!(check_strength("ééééééééééé"), Err(RefusedPassphrase::TooShort));
        assert_eq!(check_strength("aaaaaaaaaaaaaaaa"), Err(RefusedPassphrase::Predictable));
        assert_eq!(check_strength("abababababab"), Err(RefusedPassphrase::Predictable));
        assert_eq!(check_strength("abcdefghijklmnop"), Err(RefusedPassphrase::Predictable));
        assert_eq!(check_strength("QWERTY uiop asdf"), Err(RefusedPassphrase::Predictable));
        assert_eq!(check_strength("9876543210987"), Err(RefusedPassphrase::Predictable));
        assert_eq!(check_strength("xyzabcdefghij"), Err(RefusedPassphrase::Predictable));
        assert_eq!(check_strength("correct horse battery"), Ok(()));
        assert_eq!(check_strength("purple elephant marmalade"), Ok(()));
        assert_eq!(check_strength("Brücke über den Fluß"), Ok(()));
        assert_eq!(check_new("correct horse battery", "correct horse battery"), Ok(()));
        assert_eq!(
            check_new("correct horse battery", "correct horse batery"),
            Err(RefusedPassphrase::Mismatch)
        );
        // Strength first: a weak passphrase typed twice the same is still refused.
        assert_eq!(check_new("a", "a"), Err(RefusedPassphrase::TooShort));
    }
}
