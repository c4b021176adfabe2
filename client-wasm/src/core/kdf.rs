//! Every key derivation step of the protocol, exposed so that known-answer tests can pin each one.
//!
//! The info strings and constants here are part of the wire protocol (see `docs/protocol.md`);
//! changing any of them breaks compatibility with every existing session and invite.

use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

/// HKDF info for the PQXDH handshake secret (followed by the 32-byte invite hash).
pub const INFO_PQXDH: &[u8] = b"Doorless-v1 PQXDH X25519 SHA-256 ML-KEM-768";
/// HKDF info for the key that hides the joiner's identity in the initial message (followed by the
/// 32-byte invite hash).
pub const INFO_INITIAL_IDENTITY: &[u8] = b"Doorless-v1 initial identity";
/// HKDF info for the Double Ratchet root KDF.
pub const INFO_ROOT: &[u8] = b"Doorless-v1 root ratchet";
/// HKDF info for expanding a message key into an AEAD key and nonce in version 1 envelopes (still
/// read, never written).
pub const INFO_MESSAGE_KEYS: &[u8] = b"Doorless-v1 message keys";
/// HKDF info for expanding a message key and the envelope's header nonce into an AEAD key and nonce
/// (followed by the 12-byte header nonce), version 2 envelopes.
pub const INFO_MESSAGE_KEYS_V2: &[u8] = b"Doorless-v2 message keys";
/// HKDF info that derives a short invite link's bundle id and bundle key from its link key.
pub const INFO_SHORT_INVITE: &[u8] = b"Doorless-v2 short invite";
/// HKDF info that derives a short invite link's delete secret from its link key.
pub const INFO_SHORT_INVITE_DELETE: &[u8] = b"Doorless-v2 short invite delete";
/// HKDF info that derives an attachment's payload key and STREAM nonce prefix.
pub const INFO_ATTACHMENT: &[u8] = b"Doorless-v2 attachment";
/// The 32 bytes of `0xFF` prepended to the PQXDH key material (X3DH/PQXDH section 2.2 `F`).
pub const PQXDH_F: [u8; 32] = [0xFF; 32];
/// HMAC input that derives a message key from a chain key.
pub const CHAIN_MESSAGE_KEY_BYTE: u8 = 0x01;
/// HMAC input that derives the next chain key from a chain key.
pub const CHAIN_NEXT_KEY_BYTE: u8 = 0x02;

/// A 32-byte secret that is wiped when dropped.
pub type Secret32 = Zeroizing<[u8; 32]>;

/// HKDF-SHA256 (RFC 5869) with the info given as concatenated parts; fills `okm`. Returns `false` only
/// if `okm` is longer than 8160 bytes.
pub fn hkdf_sha256(salt: &[u8], ikm: &[u8], info: &[&[u8]], okm: &mut [u8]) -> bool {
    Hkdf::<Sha256>::new(Some(salt), ikm).expand_multi_info(info, okm).is_ok()
}

fn hkdf_expand<const N: usize>(salt: &[u8], ikm: &[u8], info: &[&[u8]]) -> Zeroizing<[u8; N]> {
    let mut okm = Zeroizing::new([0u8; N]);
    // N is at most 96 in this module, far below HKDF-SHA256's 8160-byte limit, so expansion cannot fail.
    let expanded = hkdf_sha256(salt, ikm, info, okm.as_mut());
    debug_assert!(expanded);
    okm
}

/// X25519 (RFC 7748) as every key agreement of the protocol performs it; `None` when the result is
/// not contributory (the peer's key is a low-order point), which the protocol always refuses.
pub fn x25519(secret: &[u8; 32], public: &[u8; 32]) -> Option<Secret32> {
    let shared = StaticSecret::from(*secret).diffie_hellman(&PublicKey::from(*public));
    shared.was_contributory().then(|| Zeroizing::new(shared.to_bytes()))
}

/// The X25519 public key of a secret scalar.
pub fn x25519_public(secret: &[u8; 32]) -> [u8; 32] {
    PublicKey::from(&StaticSecret::from(*secret)).to_bytes()
}

fn split3(okm: &[u8; 96]) -> (Secret32, Secret32, Secret32) {
    let mut a = Zeroizing::new([0u8; 32]);
    let mut b = Zeroizing::new([0u8; 32]);
    let mut c = Zeroizing::new([0u8; 32]);
    a.copy_from_slice(&okm[..32]);
    b.copy_from_slice(&okm[32..64]);
    c.copy_from_slice(&okm[64..]);
    (a, b, c)
}

/// The PQXDH KDF: `HKDF-SHA256(salt = 32 zero bytes, ikm = F || DH1 || DH2 || DH3 || SS,
/// info = INFO_PQXDH || invite_hash)`, 96 bytes split into
/// (root key `SK`, the joiner's first header key `HKa`, the inviter's first next-header key `NHKb`).
pub fn pqxdh(
    dh1: &[u8; 32],
    dh2: &[u8; 32],
    dh3: &[u8; 32],
    kem_ss: &[u8; 32],
    invite_hash: &[u8; 32],
) -> (Secret32, Secret32, Secret32) {
    let mut ikm = Zeroizing::new([0u8; 160]);
    ikm[..32].copy_from_slice(&PQXDH_F);
    ikm[32..64].copy_from_slice(dh1);
    ikm[64..96].copy_from_slice(dh2);
    ikm[96..128].copy_from_slice(dh3);
    ikm[128..].copy_from_slice(kem_ss);
    let okm = hkdf_expand::<96>(&[0u8; 32], ikm.as_ref(), &[INFO_PQXDH, invite_hash]);
    split3(&okm)
}

/// The key that encrypts the joiner's identity inside the initial message:
/// `HKDF-SHA256(salt = 32 zero bytes, ikm = DH3 || SS, info = INFO_INITIAL_IDENTITY || invite_hash)`.
pub fn initial_identity_key(dh3: &[u8; 32], kem_ss: &[u8; 32], invite_hash: &[u8; 32]) -> Secret32 {
    let mut ikm = Zeroizing::new([0u8; 64]);
    ikm[..32].copy_from_slice(dh3);
    ikm[32..].copy_from_slice(kem_ss);
    hkdf_expand::<32>(&[0u8; 32], ikm.as_ref(), &[INFO_INITIAL_IDENTITY, invite_hash])
}

/// A short invite link's bundle id (the name under which the relay holds the sealed invite) and
/// bundle key: `HKDF-SHA256(salt = 32 zero bytes, ikm = link_key, info = INFO_SHORT_INVITE)`, 48 bytes
/// split 16 + 32. The relay learns the id, never the link key, so it cannot derive the key.
pub fn short_invite_keys(link_key: &[u8; 32]) -> ([u8; 16], Secret32) {
    let okm = hkdf_expand::<48>(&[0u8; 32], link_key, &[INFO_SHORT_INVITE]);
    let mut id = [0u8; 16];
    id.copy_from_slice(&okm[..16]);
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&okm[16..]);
    (id, key)
}

/// The secret that deletes a short link's bundle at the relay: `HKDF-SHA256(salt = 32 zero bytes,
/// ikm = link_key, info = INFO_SHORT_INVITE_DELETE)`, 32 bytes. The relay stores its SHA-256 only.
pub fn short_invite_delete_secret(link_key: &[u8; 32]) -> Secret32 {
    hkdf_expand::<32>(&[0u8; 32], link_key, &[INFO_SHORT_INVITE_DELETE])
}

/// An attachment's payload key and STREAM nonce prefix: `HKDF-SHA256(salt = nonce, ikm = K,
/// info = INFO_ATTACHMENT)`, 39 bytes split 32 + 7.
pub fn attachment_keys(key: &[u8; 32], nonce: &[u8; 16]) -> (Secret32, [u8; 7]) {
    let okm = hkdf_expand::<39>(nonce, key, &[INFO_ATTACHMENT]);
    let mut payload_key = Zeroizing::new([0u8; 32]);
    payload_key.copy_from_slice(&okm[..32]);
    let mut prefix = [0u8; 7];
    prefix.copy_from_slice(&okm[32..]);
    (payload_key, prefix)
}

/// `KDF_RK_HE(rk, dh_out)`: `HKDF-SHA256(salt = rk, ikm = dh_out, info = INFO_ROOT)`, 96 bytes split into
/// (next root key, chain key, next header key).
pub fn root(rk: &[u8; 32], dh_out: &[u8; 32]) -> (Secret32, Secret32, Secret32) {
    let okm = hkdf_expand::<96>(rk, dh_out, &[INFO_ROOT]);
    split3(&okm)
}

fn hmac32(key: &[u8; 32], byte: u8) -> Secret32 {
    let mut out = Zeroizing::new([0u8; 32]);
    // HMAC accepts keys of any length, so this constructor cannot fail for a 32-byte key.
    if let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) {
        mac.update(&[byte]);
        out.copy_from_slice(&mac.finalize().into_bytes());
    }
    out
}

/// The next chain key alone, `HMAC(ck, 0x02)`: for chain steps whose message key is given up anyway.
pub fn chain_next(ck: &[u8; 32]) -> Secret32 {
    hmac32(ck, CHAIN_NEXT_KEY_BYTE)
}

/// `KDF_CK(ck)`: returns (next chain key `HMAC(ck, 0x02)`, message key `HMAC(ck, 0x01)`).
pub fn chain(ck: &[u8; 32]) -> (Secret32, Secret32) {
    (hmac32(ck, CHAIN_NEXT_KEY_BYTE), hmac32(ck, CHAIN_MESSAGE_KEY_BYTE))
}

/// Version 1 envelopes: expands a message key into a ChaCha20-Poly1305 key and nonce:
/// `HKDF-SHA256(salt = 32 zero bytes, ikm = mk, info = INFO_MESSAGE_KEYS)`, 44 bytes split 32 + 12.
pub fn message_keys(mk: &[u8; 32]) -> (Secret32, [u8; 12]) {
    split_message_keys(&hkdf_expand::<44>(&[0u8; 32], mk, &[INFO_MESSAGE_KEYS]))
}

/// Version 2 envelopes: expands a message key and the envelope's random header nonce into a
/// ChaCha20-Poly1305 key and nonce: `HKDF-SHA256(salt = 32 zero bytes, ikm = mk,
/// info = INFO_MESSAGE_KEYS_V2 || header_nonce)`, 44 bytes split 32 + 12. A state rolled back to reuse
/// `mk` still draws a fresh header nonce, so it never encrypts twice under one key and nonce.
pub fn message_keys_v2(mk: &[u8; 32], header_nonce: &[u8; 12]) -> (Secret32, [u8; 12]) {
    split_message_keys(&hkdf_expand::<44>(&[0u8; 32], mk, &[INFO_MESSAGE_KEYS_V2, header_nonce]))
}

fn split_message_keys(okm: &[u8; 44]) -> (Secret32, [u8; 12]) {
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&okm[..32]);
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&okm[32..]);
    (key, nonce)
}
