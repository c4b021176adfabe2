//! Invites: a signed, one-time, expiring prekey bundle that travels in a URL fragment or QR code.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ml_kem::array::Array;
use ml_kem::{KeyExport, ml_kem_768};
use rand_core::CryptoRng;
use sha2::{Digest, Sha256};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use doorless_frames::{MAX_ORIGIN_LEN, RelayOrigin};

use super::codec::Reader;
use super::envelope::KEM_ENCAPSULATION_KEY_LEN;
use super::identity::{IDENTITY_PUBLIC_LEN, Identity, IdentityError, IdentityPublic};

/// Version byte of the invite encoding without a relay (still read and written: an invite made
/// before the profile knows its home relay, and the invites of earlier releases).
pub const INVITE_VERSION: u8 = 1;
/// Version byte of the invite encoding that names the inviter's relay inside the signed part.
pub const INVITE_VERSION_RELAY: u8 = 2;
/// Version byte of the stored [`InviteSecret`] encoding.
pub const INVITE_SECRET_VERSION: u8 = 1;
/// Longest inviter display name, in bytes of UTF-8; longer names are cut at a character boundary.
pub const MAX_INVITER_NAME_LEN: usize = 64;
/// Domain separation for the inviter's signature over the invite.
pub const INVITE_SIGNATURE_CONTEXT: &[u8] = b"Doorless-v1 invite";
/// How long after expiry an inviter still answers an initial message: the joiner accepted before
/// expiry, but the message may have waited in the relay while the inviter was offline.
pub const INVITE_RESPONSE_GRACE_SECS: u64 = 7 * 24 * 60 * 60;
/// Length of an encoded [`InviteSecret`].
pub const INVITE_SECRET_LEN: usize = 1 + 32 + 64 + 32 + 8 + 32;

const SIGNED_FIXED_LEN: usize = 1 + IDENTITY_PUBLIC_LEN + 32 + KEM_ENCAPSULATION_KEY_LEN + 32 + 8 + 1;
/// Length of the longest version 1 invite encoding (a 64-byte name): 1,515 bytes. A short link
/// (§3.1) seals any invite up to this length.
pub const MAX_INVITE_LEN: usize = SIGNED_FIXED_LEN + MAX_INVITER_NAME_LEN + 64;
/// Length of the longest version 2 invite encoding (a 64-byte name, a 255-byte origin): 1,771 bytes.
pub const MAX_INVITE_V2_LEN: usize = MAX_INVITE_LEN + 1 + MAX_ORIGIN_LEN;

/// The length of the invite encoding that starts `bytes`, read from its version, name-length and
/// (version 2) origin-length bytes; `None` if `bytes` is too short to hold it or a length is over
/// its limit. Checks nothing else.
pub(crate) fn encoded_len(bytes: &[u8]) -> Option<usize> {
    let name_len = usize::from(*bytes.get(SIGNED_FIXED_LEN - 1)?);
    if name_len > MAX_INVITER_NAME_LEN {
        return None;
    }
    let origin_part = match *bytes.first()? {
        INVITE_VERSION_RELAY => 1 + usize::from(*bytes.get(SIGNED_FIXED_LEN + name_len)?),
        _ => 0,
    };
    let len = SIGNED_FIXED_LEN + name_len + origin_part + 64;
    (bytes.len() >= len).then_some(len)
}

/// Why an invite fragment was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InviteError {
    /// Not base64url, wrong length or structure, an invalid name or an invalid ML-KEM key.
    #[error("invite is corrupt")]
    Corrupt,
    /// The version byte is not one this build understands.
    #[error("invite has an unsupported version")]
    UnsupportedVersion,
    /// The inviter's identity or the invite signature does not verify.
    #[error("invite signature is invalid")]
    BadSignature,
    /// The invite's expiry time has passed.
    #[error("invite has expired")]
    Expired,
}

/// The public half of an invite, safe to show as a link or QR code.
#[derive(Clone, PartialEq, Eq)]
pub struct Invite {
    encoded: Vec<u8>,
    inviter: IdentityPublic,
    prekey: [u8; 32],
    kem_key_offset: usize,
    reply_mailbox: [u8; 32],
    expires_at: u64,
    inviter_name: String,
    /// The relay holding the reply mailbox (version 2); `None` in a version 1 invite.
    relay: Option<RelayOrigin>,
}

impl Invite {
    /// The encoded invite as base64url without padding, for a URL fragment.
    pub fn to_fragment(&self) -> String {
        URL_SAFE_NO_PAD.encode(&self.encoded)
    }

    /// The binary encoding (what [`Invite::to_fragment`] base64-encodes).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.encoded.clone()
    }

    /// Decodes a URL fragment, verifies the signatures and checks expiry against `now`.
    pub fn from_fragment(s: &str, now: u64) -> Result<Invite, InviteError> {
        let bytes = URL_SAFE_NO_PAD.decode(s.trim().as_bytes()).map_err(|_| InviteError::Corrupt)?;
        Self::from_bytes(&bytes, now)
    }

    /// Decodes the binary encoding; see [`Invite::from_fragment`].
    pub fn from_bytes(bytes: &[u8], now: u64) -> Result<Invite, InviteError> {
        let mut r = Reader::new(bytes);
        let version = r.u8().ok_or(InviteError::Corrupt)?;
        if version != INVITE_VERSION && version != INVITE_VERSION_RELAY {
            return Err(InviteError::UnsupportedVersion);
        }
        let inviter_bytes = r.take(IDENTITY_PUBLIC_LEN).ok_or(InviteError::Corrupt)?;
        let inviter = IdentityPublic::from_bytes(inviter_bytes).map_err(|e| match e {
            IdentityError::BadSignature => InviteError::BadSignature,
            IdentityError::Corrupt | IdentityError::UnsupportedVersion => InviteError::Corrupt,
        })?;
        let prekey = r.array::<32>().ok_or(InviteError::Corrupt)?;
        let kem_key_offset = 1 + IDENTITY_PUBLIC_LEN + 32;
        let kem_key = r.take(KEM_ENCAPSULATION_KEY_LEN).ok_or(InviteError::Corrupt)?;
        let reply_mailbox = r.array::<32>().ok_or(InviteError::Corrupt)?;
        let expires_at = r.u64().ok_or(InviteError::Corrupt)?;
        let name_len = usize::from(r.u8().ok_or(InviteError::Corrupt)?);
        if name_len > MAX_INVITER_NAME_LEN {
            return Err(InviteError::Corrupt);
        }
        let name = r.take(name_len).ok_or(InviteError::Corrupt)?;
        let mut signed_len = SIGNED_FIXED_LEN + name_len;
        let relay = if version == INVITE_VERSION_RELAY {
            let origin_len = usize::from(r.u8().ok_or(InviteError::Corrupt)?);
            let origin = r.take(origin_len).ok_or(InviteError::Corrupt)?;
            signed_len += 1 + origin_len;
            // Only the normalised form is accepted, so that one relay has one encoding.
            let origin = std::str::from_utf8(origin).map_err(|_| InviteError::Corrupt)?;
            let parsed = RelayOrigin::parse(origin).map_err(|_| InviteError::Corrupt)?;
            if parsed.as_str() != origin {
                return Err(InviteError::Corrupt);
            }
            Some(parsed)
        } else {
            None
        };
        let signature = r.array::<64>().ok_or(InviteError::Corrupt)?;
        if !r.is_empty() {
            return Err(InviteError::Corrupt);
        }
        let inviter_name = std::str::from_utf8(name).map_err(|_| InviteError::Corrupt)?.to_owned();
        parse_kem_key(kem_key).ok_or(InviteError::Corrupt)?;
        let signed = [INVITE_SIGNATURE_CONTEXT, &bytes[..signed_len]].concat();
        if !inviter.verify(&signed, &signature) {
            return Err(InviteError::BadSignature);
        }
        if now >= expires_at {
            return Err(InviteError::Expired);
        }
        Ok(Invite {
            encoded: bytes.to_vec(),
            inviter,
            prekey,
            kem_key_offset,
            reply_mailbox,
            expires_at,
            inviter_name,
            relay,
        })
    }

    /// The relay holding the reply mailbox, named by a version 2 invite (inside the signed part);
    /// `None` for a version 1 invite, whose reply mailbox is on the joiner's own relay.
    pub fn relay(&self) -> Option<&RelayOrigin> {
        self.relay.as_ref()
    }

    /// The inviter's display name (at most [`MAX_INVITER_NAME_LEN`] bytes). Chosen by the inviter:
    /// show it as a claim, not as a verified fact.
    pub fn inviter_name(&self) -> &str {
        &self.inviter_name
    }

    /// The mailbox where the initial message must be deposited.
    pub fn reply_mailbox(&self) -> [u8; 32] {
        self.reply_mailbox
    }

    /// Unix time (seconds) from which the invite is no longer accepted.
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// The inviter's identity.
    pub fn inviter(&self) -> &IdentityPublic {
        &self.inviter
    }

    /// The one-time X25519 prekey.
    pub(crate) fn prekey(&self) -> &[u8; 32] {
        &self.prekey
    }

    /// The ML-KEM-768 encapsulation key bytes.
    pub(crate) fn kem_key(&self) -> &[u8] {
        &self.encoded[self.kem_key_offset..self.kem_key_offset + KEM_ENCAPSULATION_KEY_LEN]
    }

    /// `SHA-256` of the binary encoding: binds the handshake to exactly this invite.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(&self.encoded).into()
    }
}

impl fmt::Debug for Invite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Invite")
            .field("inviter", &self.inviter)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

pub(crate) fn parse_kem_key(bytes: &[u8]) -> Option<ml_kem_768::EncapsulationKey> {
    let key = Array::try_from(bytes).ok()?;
    ml_kem_768::EncapsulationKey::new(&key).ok()
}

/// The private half of an invite: the one-time prekey and ML-KEM decapsulation seed. Answering an
/// initial message consumes it ([`InviteSecret::respond`]); storage must delete it at the same time.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct InviteSecret {
    pub(crate) prekey: [u8; 32],
    pub(crate) kem_seed: [u8; 64],
    pub(crate) invite_hash: [u8; 32],
    pub(crate) expires_at: u64,
    pub(crate) reply_mailbox: [u8; 32],
}

impl InviteSecret {
    /// The mailbox the invite asked joiners to answer on.
    pub fn reply_mailbox(&self) -> [u8; 32] {
        self.reply_mailbox
    }

    /// Unix time (seconds) at which the invite expires.
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// The hash of the public invite ([`Invite::hash`]), usable as a storage key.
    pub fn invite_hash(&self) -> [u8; 32] {
        self.invite_hash
    }

    /// Encodes for storage: `version(1) || prekey(32) || kem_seed(64) || invite_hash(32) ||
    /// expires_at(8) || reply_mailbox(32)`. Contains secrets.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(INVITE_SECRET_LEN));
        out.push(INVITE_SECRET_VERSION);
        out.extend_from_slice(&self.prekey);
        out.extend_from_slice(&self.kem_seed);
        out.extend_from_slice(&self.invite_hash);
        out.extend_from_slice(&self.expires_at.to_be_bytes());
        out.extend_from_slice(&self.reply_mailbox);
        out
    }

    /// Decodes a stored invite secret.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, InviteError> {
        let mut r = Reader::new(bytes);
        if r.u8().ok_or(InviteError::Corrupt)? != INVITE_SECRET_VERSION {
            return Err(InviteError::UnsupportedVersion);
        }
        let secret = Self {
            prekey: r.array().ok_or(InviteError::Corrupt)?,
            kem_seed: r.array().ok_or(InviteError::Corrupt)?,
            invite_hash: r.array().ok_or(InviteError::Corrupt)?,
            expires_at: r.u64().ok_or(InviteError::Corrupt)?,
            reply_mailbox: r.array().ok_or(InviteError::Corrupt)?,
        };
        if !r.is_empty() {
            return Err(InviteError::Corrupt);
        }
        Ok(secret)
    }

    pub(crate) fn kem_decapsulation_key(&self) -> ml_kem_768::DecapsulationKey {
        ml_kem_768::DecapsulationKey::from_seed(Array::from(self.kem_seed))
    }
}

impl fmt::Debug for InviteSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InviteSecret").field("expires_at", &self.expires_at).finish_non_exhaustive()
    }
}

fn truncate_name(name: &str) -> &str {
    let mut end = name.len().min(MAX_INVITER_NAME_LEN);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

/// Creates a one-time version 1 invite (no relay named) valid until `now + ttl_secs`. The name is
/// cut to [`MAX_INVITER_NAME_LEN`] bytes at a character boundary.
pub fn create_invite<R: CryptoRng + ?Sized>(
    identity: &Identity,
    reply_mailbox: [u8; 32],
    inviter_name: &str,
    now: u64,
    ttl_secs: u64,
    rng: &mut R,
) -> (Invite, InviteSecret) {
    make_invite(identity, reply_mailbox, None, inviter_name, now, ttl_secs, rng)
}

/// As [`create_invite`], a version 2 invite whose reply mailbox is on the relay at `relay`.
pub fn create_invite_on<R: CryptoRng + ?Sized>(
    identity: &Identity,
    reply_mailbox: [u8; 32],
    relay: &RelayOrigin,
    inviter_name: &str,
    now: u64,
    ttl_secs: u64,
    rng: &mut R,
) -> (Invite, InviteSecret) {
    make_invite(identity, reply_mailbox, Some(relay), inviter_name, now, ttl_secs, rng)
}

fn make_invite<R: CryptoRng + ?Sized>(
    identity: &Identity,
    reply_mailbox: [u8; 32],
    relay: Option<&RelayOrigin>,
    inviter_name: &str,
    now: u64,
    ttl_secs: u64,
    rng: &mut R,
) -> (Invite, InviteSecret) {
    let mut prekey_secret = [0u8; 32];
    rng.fill_bytes(&mut prekey_secret);
    let mut kem_seed = [0u8; 64];
    rng.fill_bytes(&mut kem_seed);
    let prekey = PublicKey::from(&StaticSecret::from(prekey_secret)).to_bytes();
    let dk = ml_kem_768::DecapsulationKey::from_seed(Array::from(kem_seed));
    let kem_key = dk.encapsulation_key().to_bytes();
    let name = truncate_name(inviter_name);
    let expires_at = now.saturating_add(ttl_secs);

    let inviter = identity.public();
    let mut encoded = Vec::with_capacity(MAX_INVITE_V2_LEN);
    encoded.push(if relay.is_some() { INVITE_VERSION_RELAY } else { INVITE_VERSION });
    encoded.extend_from_slice(&inviter.to_bytes());
    encoded.extend_from_slice(&prekey);
    let kem_key_offset = encoded.len();
    encoded.extend_from_slice(kem_key.as_slice());
    encoded.extend_from_slice(&reply_mailbox);
    encoded.extend_from_slice(&expires_at.to_be_bytes());
    // `name` is at most MAX_INVITER_NAME_LEN (64) bytes, so its length fits in one byte.
    encoded.push(name.len() as u8);
    encoded.extend_from_slice(name.as_bytes());
    if let Some(relay) = relay {
        // A `RelayOrigin` is at most MAX_ORIGIN_LEN (255) bytes: its length fits in one byte.
        encoded.push(relay.as_str().len() as u8);
        encoded.extend_from_slice(relay.as_str().as_bytes());
    }
    let signature = identity.sign(&[INVITE_SIGNATURE_CONTEXT, &encoded].concat());
    encoded.extend_from_slice(&signature);

    let invite = Invite {
        encoded,
        inviter,
        prekey,
        kem_key_offset,
        reply_mailbox,
        expires_at,
        inviter_name: name.to_owned(),
        relay: relay.cloned(),
    };
    let secret = InviteSecret {
        prekey: prekey_secret,
        kem_seed,
        invite_hash: invite.hash(),
        expires_at,
        reply_mailbox,
    };
    prekey_secret.zeroize();
    kem_seed.zeroize();
    (invite, secret)
}
