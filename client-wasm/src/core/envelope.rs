//! The byte-level envelope: what the relay carries, and the only thing it ever sees.
//!
//! Every envelope starts with `version(1) || kind(1)`. An ordinary message is
//! `prefix(2) || header_nonce(12) || encrypted_header(56) || body(padded plaintext + 16)`; an initial
//! (handshake) message is `prefix(2) || ephemeral(32) || kem_ciphertext(1088) || encrypted_identity(145)
//! || ordinary message`.

use super::aead::{NONCE_LEN, TAG_LEN};
use super::codec::Reader;
use super::identity::IDENTITY_PUBLIC_LEN;

/// The envelope format version this build writes. Version 2 derives each message's AEAD key and nonce
/// from the message key and the header nonce; the layout is that of version 1.
pub const ENVELOPE_VERSION: u8 = 2;
/// The oldest envelope version this build still reads (never writes): what a peer's tab sent before it
/// reloaded into this release.
pub const OLDEST_ENVELOPE_VERSION: u8 = 1;
/// Kind byte of an initial (handshake) message.
pub const KIND_INITIAL: u8 = 1;
/// Kind byte of an ordinary Double Ratchet message.
pub const KIND_MESSAGE: u8 = 2;
/// Length of the plaintext ratchet header: `dh(32) || pn(4, big-endian) || n(4, big-endian)`.
pub const HEADER_LEN: usize = 32 + 4 + 4;
/// Length of an encrypted header (ChaCha20-Poly1305 output, without its nonce).
pub const ENCRYPTED_HEADER_LEN: usize = HEADER_LEN + TAG_LEN;
/// Bytes of an ordinary message before its body: prefix, header nonce, encrypted header.
pub const MESSAGE_PREFIX_LEN: usize = 2 + NONCE_LEN + ENCRYPTED_HEADER_LEN;
/// Length of an ML-KEM-768 ciphertext.
pub const KEM_CIPHERTEXT_LEN: usize = 1088;
/// Length of an ML-KEM-768 encapsulation key.
pub const KEM_ENCAPSULATION_KEY_LEN: usize = 1184;
/// Length of the encrypted joiner identity in an initial message.
pub const ENCRYPTED_IDENTITY_LEN: usize = IDENTITY_PUBLIC_LEN + TAG_LEN;
/// Bytes of an initial message before the embedded ordinary message.
pub const INITIAL_PREFIX_LEN: usize = 2 + 32 + KEM_CIPHERTEXT_LEN + ENCRYPTED_IDENTITY_LEN;

/// Sizes that every padded plaintext is rounded up to (ISO/IEC 7816-4 padding: `0x80` then zeros, so a
/// plaintext needs one spare byte).
pub const PADDING_BUCKETS: [usize; 5] = [256, 1024, 4096, 16384, 65536];
/// The largest plaintext a message can carry.
pub const MAX_PLAINTEXT_LEN: usize = PADDING_BUCKETS[PADDING_BUCKETS.len() - 1] - 1;
/// Every possible length of an ordinary message envelope, one per padding bucket.
pub const MESSAGE_ENVELOPE_SIZES: [usize; 5] = [
    MESSAGE_PREFIX_LEN + PADDING_BUCKETS[0] + TAG_LEN,
    MESSAGE_PREFIX_LEN + PADDING_BUCKETS[1] + TAG_LEN,
    MESSAGE_PREFIX_LEN + PADDING_BUCKETS[2] + TAG_LEN,
    MESSAGE_PREFIX_LEN + PADDING_BUCKETS[3] + TAG_LEN,
    MESSAGE_PREFIX_LEN + PADDING_BUCKETS[4] + TAG_LEN,
];
/// Every possible length of an initial message envelope, one per padding bucket.
pub const INITIAL_ENVELOPE_SIZES: [usize; 5] = [
    INITIAL_PREFIX_LEN + MESSAGE_ENVELOPE_SIZES[0],
    INITIAL_PREFIX_LEN + MESSAGE_ENVELOPE_SIZES[1],
    INITIAL_PREFIX_LEN + MESSAGE_ENVELOPE_SIZES[2],
    INITIAL_PREFIX_LEN + MESSAGE_ENVELOPE_SIZES[3],
    INITIAL_PREFIX_LEN + MESSAGE_ENVELOPE_SIZES[4],
];

/// What an incoming blob is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvelopeKind {
    /// A handshake message answering one of our invites: hand it to [`InviteSecret::respond`].
    ///
    /// [`InviteSecret::respond`]: super::InviteSecret::respond
    Initial,
    /// An ordinary message of an established session: hand it to [`Session::decrypt`].
    ///
    /// [`Session::decrypt`]: super::Session::decrypt
    Message,
}

/// Why a blob is not an envelope this build can route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The blob is shorter than the smallest envelope of its kind or has an impossible length.
    #[error("envelope is truncated or has an invalid length")]
    Malformed,
    /// The version byte is not one this build understands.
    #[error("envelope has an unsupported version")]
    UnsupportedVersion,
    /// The kind byte is unknown.
    #[error("envelope has an unknown kind")]
    UnknownKind,
}

/// Classifies an incoming blob by its first two bytes and checks that its length is possible.
pub fn envelope_kind(bytes: &[u8]) -> Result<EnvelopeKind, EnvelopeError> {
    let mut r = Reader::new(bytes);
    let version = r.u8().ok_or(EnvelopeError::Malformed)?;
    if !(OLDEST_ENVELOPE_VERSION..=ENVELOPE_VERSION).contains(&version) {
        return Err(EnvelopeError::UnsupportedVersion);
    }
    let kind = match r.u8().ok_or(EnvelopeError::Malformed)? {
        KIND_INITIAL => EnvelopeKind::Initial,
        KIND_MESSAGE => EnvelopeKind::Message,
        _ => return Err(EnvelopeError::UnknownKind),
    };
    let sizes = match kind {
        EnvelopeKind::Initial => &INITIAL_ENVELOPE_SIZES,
        EnvelopeKind::Message => &MESSAGE_ENVELOPE_SIZES,
    };
    if !sizes.contains(&bytes.len()) {
        return Err(EnvelopeError::Malformed);
    }
    Ok(kind)
}

/// A decrypted ratchet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The sender's current ratchet public key.
    pub dh: [u8; 32],
    /// Number of messages in the sender's previous sending chain.
    pub pn: u32,
    /// Index of this message in the sender's current sending chain.
    pub n: u32,
}

impl Header {
    /// Encodes as `dh(32) || pn(4) || n(4)`, integers big-endian.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..32].copy_from_slice(&self.dh);
        out[32..36].copy_from_slice(&self.pn.to_be_bytes());
        out[36..].copy_from_slice(&self.n.to_be_bytes());
        out
    }

    /// Decodes a plaintext header; `None` unless exactly [`HEADER_LEN`] bytes.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let mut r = Reader::new(bytes);
        let header = Self { dh: r.array()?, pn: r.u32()?, n: r.u32()? };
        r.is_empty().then_some(header)
    }
}

/// Pads `plaintext` to the smallest bucket that holds it plus the `0x80` marker; `None` if too long.
pub fn pad(plaintext: &[u8]) -> Option<Vec<u8>> {
    let bucket = *PADDING_BUCKETS.iter().find(|&&b| b > plaintext.len())?;
    let mut out = Vec::with_capacity(bucket);
    out.extend_from_slice(plaintext);
    out.push(0x80);
    out.resize(bucket, 0);
    Some(out)
}

/// Removes padding; `None` unless the input is one bucket long and correctly padded.
pub fn unpad(mut padded: Vec<u8>) -> Option<Vec<u8>> {
    if !PADDING_BUCKETS.contains(&padded.len()) {
        return None;
    }
    // Padding is only removed after the AEAD has authenticated the bytes, so this need not be
    // constant-time: a wrong layout here means the sender is not a conforming implementation.
    let end = padded.iter().rposition(|&b| b != 0)?;
    if padded[end] != 0x80 {
        return None;
    }
    padded.truncate(end);
    Some(padded)
}
