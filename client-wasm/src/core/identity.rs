//! Long-term identities: an Ed25519 signing key and an X25519 key whose public half it signs.

use std::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rand_core::CryptoRng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize, Zeroizing};

use super::codec::Reader;

/// Version byte of the stored [`Identity`] encoding.
pub const IDENTITY_VERSION: u8 = 1;
/// Version byte of the [`IdentityPublic`] encoding.
pub const IDENTITY_PUBLIC_VERSION: u8 = 1;
/// Length of an encoded [`IdentityPublic`]: version, Ed25519 key, X25519 key, signature.
pub const IDENTITY_PUBLIC_LEN: usize = 1 + 32 + 32 + 64;
/// Length of an encoded [`Identity`]: version, Ed25519 seed, X25519 secret.
pub const IDENTITY_LEN: usize = 1 + 32 + 32;
/// Domain separation for the signature over the X25519 identity key.
pub const IDENTITY_SIGNATURE_CONTEXT: &[u8] = b"Doorless-v1 identity X25519 key";
/// Domain separation for [`IdentityPublic::fingerprint`].
pub const FINGERPRINT_CONTEXT: &[u8] = b"Doorless-v1 fingerprint";

/// Why an encoded identity was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The bytes have the wrong length or structure.
    #[error("identity encoding is corrupt")]
    Corrupt,
    /// The version byte is not one this build understands.
    #[error("identity encoding has an unsupported version")]
    UnsupportedVersion,
    /// The Ed25519 key is invalid or weak, or its signature over the X25519 key does not verify.
    #[error("identity signature is invalid")]
    BadSignature,
}

/// The public half of an identity, as peers see it.
#[derive(Clone, PartialEq, Eq)]
pub struct IdentityPublic {
    ed25519: [u8; 32],
    x25519: [u8; 32],
    signature: [u8; 64],
}

fn signed_message(ed: &[u8; 32], x: &[u8; 32]) -> Vec<u8> {
    [IDENTITY_SIGNATURE_CONTEXT, ed, x].concat()
}

impl IdentityPublic {
    /// The Ed25519 public key.
    pub fn ed25519(&self) -> &[u8; 32] {
        &self.ed25519
    }

    /// The X25519 public key (signed by the Ed25519 key).
    pub fn x25519(&self) -> &[u8; 32] {
        &self.x25519
    }

    pub(crate) fn verify(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        match VerifyingKey::from_bytes(&self.ed25519) {
            Ok(vk) => vk.verify_strict(message, &Signature::from_bytes(signature)).is_ok(),
            Err(_) => false,
        }
    }

    /// Encodes as `version(1) || ed25519(32) || x25519(32) || signature(64)`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(IDENTITY_PUBLIC_LEN);
        out.push(IDENTITY_PUBLIC_VERSION);
        out.extend_from_slice(&self.ed25519);
        out.extend_from_slice(&self.x25519);
        out.extend_from_slice(&self.signature);
        out
    }

    /// Decodes and verifies the signature over the X25519 key.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, IdentityError> {
        let mut r = Reader::new(bytes);
        let version = r.u8().ok_or(IdentityError::Corrupt)?;
        if version != IDENTITY_PUBLIC_VERSION {
            return Err(IdentityError::UnsupportedVersion);
        }
        let ed25519 = r.array::<32>().ok_or(IdentityError::Corrupt)?;
        let x25519 = r.array::<32>().ok_or(IdentityError::Corrupt)?;
        let signature = r.array::<64>().ok_or(IdentityError::Corrupt)?;
        if !r.is_empty() {
            return Err(IdentityError::Corrupt);
        }
        let vk = VerifyingKey::from_bytes(&ed25519).map_err(|_| IdentityError::BadSignature)?;
        if vk.is_weak() {
            return Err(IdentityError::BadSignature);
        }
        let public = Self { ed25519, x25519, signature };
        if !public.verify(&signed_message(&ed25519, &x25519), &signature) {
            return Err(IdentityError::BadSignature);
        }
        Ok(public)
    }

    /// `SHA-256(FINGERPRINT_CONTEXT || ed25519 || x25519)`: a stable id for this identity.
    pub fn fingerprint(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(FINGERPRINT_CONTEXT);
        h.update(self.ed25519);
        h.update(self.x25519);
        h.finalize().into()
    }

    /// Constant-time equality of the public keys (identities are public, but comparing in constant
    /// time costs nothing and keeps one rule for all key comparisons).
    pub fn ct_eq(&self, other: &Self) -> bool {
        bool::from(self.ed25519.ct_eq(&other.ed25519) & self.x25519.ct_eq(&other.x25519))
    }
}

impl fmt::Debug for IdentityPublic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fp = self.fingerprint();
        write!(f, "IdentityPublic({:02x}{:02x}{:02x}{:02x}…)", fp[0], fp[1], fp[2], fp[3])
    }
}

/// A private identity: the Ed25519 signing key and the X25519 static key. Wiped on drop.
pub struct Identity {
    signing: SigningKey,
    dh: StaticSecret,
    public: IdentityPublic,
}

impl Identity {
    /// Generates a fresh identity.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        let mut dh = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seed.as_mut());
        rng.fill_bytes(dh.as_mut());
        Self::from_secrets(&seed, &dh)
    }

    fn from_secrets(seed: &[u8; 32], dh: &[u8; 32]) -> Self {
        let signing = SigningKey::from_bytes(seed);
        let dh = StaticSecret::from(*dh);
        let ed25519 = signing.verifying_key().to_bytes();
        let x25519 = PublicKey::from(&dh).to_bytes();
        let signature = signing.sign(&signed_message(&ed25519, &x25519)).to_bytes();
        Self { signing, dh, public: IdentityPublic { ed25519, x25519, signature } }
    }

    /// The public half.
    pub fn public(&self) -> IdentityPublic {
        self.public.clone()
    }

    pub(crate) fn public_ref(&self) -> &IdentityPublic {
        &self.public
    }

    pub(crate) fn dh_secret(&self) -> &[u8; 32] {
        self.dh.as_bytes()
    }

    pub(crate) fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }

    /// Encodes for storage as `version(1) || ed25519 seed(32) || x25519 secret(32)`.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(IDENTITY_LEN));
        out.push(IDENTITY_VERSION);
        out.extend_from_slice(self.signing.as_bytes());
        out.extend_from_slice(self.dh.as_bytes());
        out
    }

    /// Decodes a stored identity.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, IdentityError> {
        let mut r = Reader::new(bytes);
        let version = r.u8().ok_or(IdentityError::Corrupt)?;
        if version != IDENTITY_VERSION {
            return Err(IdentityError::UnsupportedVersion);
        }
        let mut seed = Zeroizing::new(r.array::<32>().ok_or(IdentityError::Corrupt)?);
        let mut dh = Zeroizing::new(r.array::<32>().ok_or(IdentityError::Corrupt)?);
        if !r.is_empty() {
            return Err(IdentityError::Corrupt);
        }
        let identity = Self::from_secrets(&seed, &dh);
        seed.zeroize();
        dh.zeroize();
        Ok(identity)
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity").field("public", &self.public).finish_non_exhaustive()
    }
}
