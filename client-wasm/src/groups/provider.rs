//! The crypto provider mls-rs runs on: one cipher suite,
//! `MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519` (3), on the crates the rest of the client
//! already uses (x25519-dalek, ed25519-dalek, chacha20poly1305, hkdf/hmac/sha2), so the bundle holds
//! one copy of each primitive and no P-256 or AES.
//!
//! HPKE (RFC 9180, base and PSK modes) is `mls-rs-crypto-hpke`, generic over the KEM, KDF and AEAD
//! given here: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305.
//!
//! Randomness is passed in: the provider draws every random byte mls-rs asks for (key generation,
//! HPKE ephemeral keys, reuse guards, path secrets) from a ChaCha20 stream seeded by the caller. mls-rs
//! itself draws none (its wasm32 dependency on getrandom is unused by this provider). Clones share
//! one stream, so two clones never hand out the same bytes; the stream state is zeroized on drop.

use std::sync::{Arc, Mutex};

use chacha20::ChaCha20Rng;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use mls_rs_core::crypto::{
    CipherSuite, CipherSuiteProvider, CryptoProvider, HpkeCiphertext, HpkePsk, HpkePublicKey, HpkeSecretKey,
    SignaturePublicKey, SignatureSecretKey,
};
use mls_rs_crypto_hpke::context::{ContextR, ContextS};
use mls_rs_crypto_hpke::dhkem::DhKem;
use mls_rs_crypto_hpke::hpke::{Hpke, HpkeError};
use mls_rs_crypto_traits::{AeadType, DhType, KdfType, SamplingMethod};
use rand_core::{CryptoRng, Rng, SeedableRng};
use sha2::{Digest, Sha256};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::core::aead;

/// The one cipher suite Doorless groups use.
pub const SUITE: CipherSuite = CipherSuite::CURVE25519_CHACHA;
/// RFC 9180 identifier of DHKEM(X25519, HKDF-SHA256).
const KEM_ID: u16 = 0x0020;
/// RFC 9180 identifier of HKDF-SHA256.
const KDF_ID: u16 = 0x0001;
/// RFC 9180 identifier of ChaCha20-Poly1305.
const AEAD_ID: u16 = 0x0003;
/// Length of X25519 keys, Ed25519 seeds and public keys, SHA-256 outputs and ChaCha20 keys.
const LEN: usize = 32;

/// Why a cryptographic operation of the provider failed. Deliberately coarse: no hint of which
/// check failed, and no key material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// A key, nonce or PRK has the wrong length or encoding.
    #[error("invalid key or nonce length")]
    InvalidLength,
    /// An AEAD or HPKE ciphertext did not authenticate.
    #[error("decryption failed")]
    Decrypt,
    /// A signature did not verify.
    #[error("invalid signature")]
    BadSignature,
    /// An X25519 exchange produced the all-zero secret (a small-order public key).
    #[error("non-contributory key exchange")]
    NonContributory,
    /// The HKDF output length asked for is beyond what HKDF-SHA256 can produce.
    #[error("KDF output too long")]
    KdfLength,
    /// HPKE failed (a wrapped failure of the KEM, KDF or AEAD above).
    #[error("HPKE operation failed")]
    Hpke,
}

super::into_any_error!(ProviderError);

impl From<HpkeError> for ProviderError {
    fn from(_: HpkeError) -> Self {
        // HpkeError carries the inner error's text, which may describe the input: keep it coarse.
        ProviderError::Hpke
    }
}

/// The random stream shared by a provider and all its clones.
#[derive(Clone)]
pub struct GroupRng(Arc<Mutex<ChaCha20Rng>>);

impl GroupRng {
    /// A stream seeded with 32 bytes from the caller's RNG.
    pub fn from_rng<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut seed = Zeroizing::new([0u8; LEN]);
        rng.fill_bytes(seed.as_mut());
        Self(Arc::new(Mutex::new(ChaCha20Rng::from_seed(*seed))))
    }

    fn fill(&self, out: &mut [u8]) {
        // A poisoned lock means a panic happened while the stream was borrowed; the ChaCha20
        // state is still a valid stream, so keep drawing from it.
        let mut rng = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        rng.fill_bytes(out);
    }
}

impl std::fmt::Debug for GroupRng {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GroupRng")
    }
}

/// X25519 as the Diffie-Hellman group of the KEM.
#[derive(Clone, Debug)]
pub struct X25519 {
    rng: GroupRng,
}

fn x25519_secret(key: &[u8]) -> Result<StaticSecret, ProviderError> {
    let bytes: [u8; LEN] = key.try_into().map_err(|_| ProviderError::InvalidLength)?;
    Ok(StaticSecret::from(bytes))
}

fn x25519_public(key: &[u8]) -> Result<PublicKey, ProviderError> {
    let bytes: [u8; LEN] = key.try_into().map_err(|_| ProviderError::InvalidLength)?;
    Ok(PublicKey::from(bytes))
}

impl DhType for X25519 {
    type Error = ProviderError;

    fn dh(&self, secret_key: &HpkeSecretKey, public_key: &HpkePublicKey) -> Result<Vec<u8>, Self::Error> {
        let shared = x25519_secret(secret_key)?.diffie_hellman(&x25519_public(public_key)?);
        if !shared.was_contributory() {
            return Err(ProviderError::NonContributory);
        }
        Ok(shared.as_bytes().to_vec())
    }

    fn generate(&self) -> Result<(HpkeSecretKey, HpkePublicKey), Self::Error> {
        let mut secret = Zeroizing::new([0u8; LEN]);
        self.rng.fill(secret.as_mut());
        let public = PublicKey::from(&StaticSecret::from(*secret));
        Ok((secret.to_vec().into(), public.as_bytes().to_vec().into()))
    }

    fn to_public(&self, secret_key: &HpkeSecretKey) -> Result<HpkePublicKey, Self::Error> {
        Ok(PublicKey::from(&x25519_secret(secret_key)?).as_bytes().to_vec().into())
    }

    fn bitmask_for_rejection_sampling(&self) -> SamplingMethod {
        // RFC 9180 §7.1.3: every 32-byte string is an X25519 secret, no rejection sampling.
        SamplingMethod::HpkeWithoutBitmask
    }

    fn secret_key_size(&self) -> usize {
        LEN
    }

    fn public_key_size(&self) -> usize {
        LEN
    }

    fn public_key_validate(&self, key: &HpkePublicKey) -> Result<(), Self::Error> {
        // Every 32-byte string decodes; small-order points are caught by `was_contributory`.
        x25519_public(key).map(|_| ())
    }
}

/// HKDF-SHA256 (RFC 5869).
#[derive(Clone, Copy, Debug, Default)]
pub struct HkdfSha256;

impl HkdfSha256 {
    fn extract(salt: &[u8], ikm: &[u8]) -> Zeroizing<Vec<u8>> {
        let (prk, _) = Hkdf::<Sha256>::extract(Some(salt), ikm);
        Zeroizing::new(prk.to_vec())
    }

    fn expand(prk: &[u8], info: &[u8], len: usize) -> Result<Zeroizing<Vec<u8>>, ProviderError> {
        let hkdf = Hkdf::<Sha256>::from_prk(prk).map_err(|_| ProviderError::InvalidLength)?;
        let mut okm = Zeroizing::new(vec![0u8; len]);
        hkdf.expand(info, &mut okm).map_err(|_| ProviderError::KdfLength)?;
        Ok(okm)
    }
}

impl KdfType for HkdfSha256 {
    type Error = ProviderError;

    fn kdf_id(&self) -> u16 {
        KDF_ID
    }

    fn expand(&self, prk: &[u8], info: &[u8], len: usize) -> Result<Vec<u8>, Self::Error> {
        Self::expand(prk, info, len).map(|okm| okm.to_vec())
    }

    fn extract(&self, salt: &[u8], ikm: &[u8]) -> Result<Vec<u8>, Self::Error> {
        Ok(Self::extract(salt, ikm).to_vec())
    }

    fn extract_size(&self) -> usize {
        LEN
    }
}

/// ChaCha20-Poly1305 (RFC 8439), through the core's one AEAD.
#[derive(Clone, Copy, Debug, Default)]
pub struct ChaCha20Poly1305;

impl ChaCha20Poly1305 {
    fn seal(key: &[u8], data: &[u8], aad: Option<&[u8]>, nonce: &[u8]) -> Result<Vec<u8>, ProviderError> {
        let (key, nonce) = aead_key_nonce(key, nonce)?;
        Ok(aead::seal(&key, &nonce, aad.unwrap_or_default(), data))
    }

    fn open(
        key: &[u8],
        ciphertext: &[u8],
        aad: Option<&[u8]>,
        nonce: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, ProviderError> {
        let (key, nonce) = aead_key_nonce(key, nonce)?;
        aead::open(&key, &nonce, aad.unwrap_or_default(), ciphertext)
            .map(Zeroizing::new)
            .ok_or(ProviderError::Decrypt)
    }
}

fn aead_key_nonce(
    key: &[u8],
    nonce: &[u8],
) -> Result<(Zeroizing<[u8; LEN]>, [u8; aead::NONCE_LEN]), ProviderError> {
    let key: [u8; LEN] = key.try_into().map_err(|_| ProviderError::InvalidLength)?;
    let nonce = nonce.try_into().map_err(|_| ProviderError::InvalidLength)?;
    Ok((Zeroizing::new(key), nonce))
}

impl AeadType for ChaCha20Poly1305 {
    type Error = ProviderError;

    fn aead_id(&self) -> u16 {
        AEAD_ID
    }

    fn seal(
        &self,
        key: &[u8],
        data: &[u8],
        aad: Option<&[u8]>,
        nonce: &[u8],
    ) -> Result<Vec<u8>, Self::Error> {
        Self::seal(key, data, aad, nonce)
    }

    fn open(
        &self,
        key: &[u8],
        ciphertext: &[u8],
        aad: Option<&[u8]>,
        nonce: &[u8],
    ) -> Result<Vec<u8>, Self::Error> {
        Self::open(key, ciphertext, aad, nonce).map(|pt| pt.to_vec())
    }

    fn key_size(&self) -> usize {
        LEN
    }

    fn nonce_size(&self) -> usize {
        aead::NONCE_LEN
    }
}

/// HPKE for the suite: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305.
pub type SuiteHpke = Hpke<DhKem<X25519, HkdfSha256>, HkdfSha256, ChaCha20Poly1305>;

/// The HPKE of the suite, drawing ephemeral keys from `rng` (public for the RFC 9180 vector test).
pub fn suite_hpke(rng: GroupRng) -> SuiteHpke {
    let kem = DhKem::new(X25519 { rng }, HkdfSha256, KEM_ID, LEN);
    Hpke::new(kem, HkdfSha256, Some(ChaCha20Poly1305))
}

/// The cipher suite provider: every operation mls-rs asks of suite 3.
#[derive(Clone)]
pub struct SuiteProvider {
    rng: GroupRng,
    hpke: Arc<SuiteHpke>,
}

impl std::fmt::Debug for SuiteProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SuiteProvider").field("suite", &SUITE).finish_non_exhaustive()
    }
}

/// The Ed25519 signing key of an MLS signature secret: its 32-byte seed, or the seed followed by
/// the public key (64 bytes, as some implementations store it), which must then match.
fn signing_key(secret: &SignatureSecretKey) -> Result<SigningKey, ProviderError> {
    let bytes = secret.as_bytes();
    let seed: [u8; LEN] =
        bytes.get(..LEN).and_then(|s| s.try_into().ok()).ok_or(ProviderError::InvalidLength)?;
    let key = SigningKey::from_bytes(&seed);
    match bytes.len() {
        LEN => Ok(key),
        64 if key.verifying_key().as_bytes()[..] == bytes[LEN..] => Ok(key),
        _ => Err(ProviderError::InvalidLength),
    }
}

/// The HPKE contexts of the suite (export and the multi-shot AEAD).
pub type SuiteContextS = ContextS<HkdfSha256, ChaCha20Poly1305>;
/// See [`SuiteContextS`].
pub type SuiteContextR = ContextR<HkdfSha256, ChaCha20Poly1305>;

impl CipherSuiteProvider for SuiteProvider {
    type Error = ProviderError;
    type HpkeContextS = SuiteContextS;
    type HpkeContextR = SuiteContextR;

    fn cipher_suite(&self) -> CipherSuite {
        SUITE
    }

    fn hash(&self, data: &[u8]) -> Result<Vec<u8>, Self::Error> {
        Ok(Sha256::digest(data).to_vec())
    }

    fn mac(&self, key: &[u8], data: &[u8]) -> Result<Vec<u8>, Self::Error> {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).map_err(|_| ProviderError::InvalidLength)?;
        mac.update(data);
        Ok(mac.finalize().into_bytes().to_vec())
    }

    fn aead_seal(
        &self,
        key: &[u8],
        data: &[u8],
        aad: Option<&[u8]>,
        nonce: &[u8],
    ) -> Result<Vec<u8>, Self::Error> {
        ChaCha20Poly1305::seal(key, data, aad, nonce)
    }

    fn aead_open(
        &self,
        key: &[u8],
        ciphertext: &[u8],
        aad: Option<&[u8]>,
        nonce: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, Self::Error> {
        ChaCha20Poly1305::open(key, ciphertext, aad, nonce)
    }

    fn aead_key_size(&self) -> usize {
        LEN
    }

    fn aead_nonce_size(&self) -> usize {
        aead::NONCE_LEN
    }

    fn kdf_extract(&self, salt: &[u8], ikm: &[u8]) -> Result<Zeroizing<Vec<u8>>, Self::Error> {
        Ok(HkdfSha256::extract(salt, ikm))
    }

    fn kdf_expand(&self, prk: &[u8], info: &[u8], len: usize) -> Result<Zeroizing<Vec<u8>>, Self::Error> {
        HkdfSha256::expand(prk, info, len)
    }

    fn kdf_extract_size(&self) -> usize {
        LEN
    }

    fn hpke_seal(
        &self,
        remote_key: &HpkePublicKey,
        info: &[u8],
        aad: Option<&[u8]>,
        pt: &[u8],
    ) -> Result<HpkeCiphertext, Self::Error> {
        Ok(self.hpke.seal(remote_key, info, None, aad, pt)?)
    }

    fn hpke_seal_psk(
        &self,
        remote_key: &HpkePublicKey,
        info: &[u8],
        aad: Option<&[u8]>,
        pt: &[u8],
        psk: HpkePsk<'_>,
    ) -> Result<HpkeCiphertext, Self::Error> {
        Ok(self.hpke.seal(remote_key, info, Some(psk), aad, pt)?)
    }

    fn hpke_open(
        &self,
        ciphertext: &HpkeCiphertext,
        local_secret: &HpkeSecretKey,
        local_public: &HpkePublicKey,
        info: &[u8],
        aad: Option<&[u8]>,
    ) -> Result<Zeroizing<Vec<u8>>, Self::Error> {
        Ok(self.hpke.open(ciphertext, local_secret, local_public, info, None, aad)?)
    }

    fn hpke_open_psk(
        &self,
        ciphertext: &HpkeCiphertext,
        local_secret: &HpkeSecretKey,
        local_public: &HpkePublicKey,
        info: &[u8],
        aad: Option<&[u8]>,
        psk: HpkePsk<'_>,
    ) -> Result<Zeroizing<Vec<u8>>, Self::Error> {
        Ok(self.hpke.open(ciphertext, local_secret, local_public, info, Some(psk), aad)?)
    }

    fn hpke_setup_s(
        &self,
        remote_key: &HpkePublicKey,
        info: &[u8],
    ) -> Result<(Vec<u8>, Self::HpkeContextS), Self::Error> {
        Ok(self.hpke.setup_sender(remote_key, info, None)?)
    }

    fn hpke_setup_r(
        &self,
        kem_output: &[u8],
        local_secret: &HpkeSecretKey,
        local_public: &HpkePublicKey,
        info: &[u8],
    ) -> Result<Self::HpkeContextR, Self::Error> {
        Ok(self.hpke.setup_receiver(kem_output, local_secret, local_public, info, None)?)
    }

    fn kem_derive(&self, ikm: &[u8]) -> Result<(HpkeSecretKey, HpkePublicKey), Self::Error> {
        Ok(self.hpke.derive(ikm)?)
    }

    fn kem_generate(&self) -> Result<(HpkeSecretKey, HpkePublicKey), Self::Error> {
        Ok(self.hpke.generate()?)
    }

    fn kem_public_key_validate(&self, key: &HpkePublicKey) -> Result<(), Self::Error> {
        Ok(self.hpke.public_key_validate(key)?)
    }

    fn random_bytes(&self, out: &mut [u8]) -> Result<(), Self::Error> {
        self.rng.fill(out);
        Ok(())
    }

    fn signature_key_generate(&self) -> Result<(SignatureSecretKey, SignaturePublicKey), Self::Error> {
        let mut seed = Zeroizing::new([0u8; LEN]);
        self.rng.fill(seed.as_mut());
        let key = SigningKey::from_bytes(&seed);
        Ok((seed.to_vec().into(), key.verifying_key().as_bytes().to_vec().into()))
    }

    fn signature_key_derive_public(
        &self,
        secret_key: &SignatureSecretKey,
    ) -> Result<SignaturePublicKey, Self::Error> {
        Ok(signing_key(secret_key)?.verifying_key().as_bytes().to_vec().into())
    }

    fn sign(&self, secret_key: &SignatureSecretKey, data: &[u8]) -> Result<Vec<u8>, Self::Error> {
        Ok(signing_key(secret_key)?.sign(data).to_bytes().to_vec())
    }

    fn verify(
        &self,
        public_key: &SignaturePublicKey,
        signature: &[u8],
        data: &[u8],
    ) -> Result<(), Self::Error> {
        let key: [u8; LEN] = public_key.as_bytes().try_into().map_err(|_| ProviderError::InvalidLength)?;
        let key = VerifyingKey::from_bytes(&key).map_err(|_| ProviderError::BadSignature)?;
        let signature = Signature::from_slice(signature).map_err(|_| ProviderError::BadSignature)?;
        // Strict verification (RFC 8032 §5.1.7 with canonical encodings, no small-order keys), as
        // for every other Doorless signature.
        key.verify_strict(data, &signature).map_err(|_| ProviderError::BadSignature)
    }
}

/// The crypto provider handed to mls-rs: suite 3 only.
#[derive(Clone, Debug)]
pub struct DoorlessCrypto {
    suite: SuiteProvider,
}

impl DoorlessCrypto {
    /// A provider drawing its randomness from a stream seeded by `rng`.
    pub fn new<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let rng = GroupRng::from_rng(rng);
        let hpke = Arc::new(suite_hpke(rng.clone()));
        Self { suite: SuiteProvider { rng, hpke } }
    }

    /// The suite's provider (for direct use, e.g. signing a credential or testing).
    pub fn suite(&self) -> &SuiteProvider {
        &self.suite
    }
}

impl CryptoProvider for DoorlessCrypto {
    type CipherSuiteProvider = SuiteProvider;

    fn supported_cipher_suites(&self) -> Vec<CipherSuite> {
        vec![SUITE]
    }

    fn cipher_suite_provider(&self, cipher_suite: CipherSuite) -> Option<Self::CipherSuiteProvider> {
        (cipher_suite == SUITE).then(|| self.suite.clone())
    }
}
