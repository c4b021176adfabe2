//! The one AEAD of the protocol, ChaCha20-Poly1305 (RFC 8439), behind the two calls every encryption
//! and decryption of the core goes through (public so that RFC 8439 vectors can test them).

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce};

/// Length of a Poly1305 tag.
pub const TAG_LEN: usize = 16;
/// Length of a ChaCha20-Poly1305 nonce.
pub const NONCE_LEN: usize = 12;

/// Encrypts `plaintext` with `aad`; the output is ciphertext followed by the 16-byte tag.
pub fn seal(key: &[u8; 32], nonce: &[u8; NONCE_LEN], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    // A 32-byte key is always accepted, and encryption only fails for inputs longer than 2^38 bytes;
    // callers bound lengths far below that.
    ChaCha20Poly1305::new_from_slice(key)
        .ok()
        .and_then(|cipher| cipher.encrypt(&Nonce::from(*nonce), Payload { msg: plaintext, aad }).ok())
        .unwrap_or_default()
}

/// Decrypts and authenticates; `None` on any failure (deliberately no detail).
pub fn open(key: &[u8; 32], nonce: &[u8; NONCE_LEN], aad: &[u8], ciphertext: &[u8]) -> Option<Vec<u8>> {
    let cipher = ChaCha20Poly1305::new_from_slice(key).ok()?;
    cipher.decrypt(&Nonce::from(*nonce), Payload { msg: ciphertext, aad }).ok()
}
