//! A mailbox this profile owns: an Ed25519 key pair whose public key names the mailbox.

use doorless_frames::{Frame, MailboxId, subscribe_proof_message};
use ed25519_dalek::{Signer, SigningKey};
use rand_core::CryptoRng;

/// One of our mailboxes. Each contact relation gets its own, so ids cannot be linked.
#[derive(Clone)]
pub struct Mailbox {
    key: SigningKey,
}

impl Mailbox {
    /// A fresh mailbox.
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let key = SigningKey::from_bytes(&seed);
        zeroize::Zeroize::zeroize(&mut seed);
        Self { key }
    }

    /// The private seed, for storage.
    pub(crate) fn seed(&self) -> zeroize::Zeroizing<[u8; 32]> {
        zeroize::Zeroizing::new(self.key.to_bytes())
    }

    /// A mailbox from its stored seed.
    pub(crate) fn from_seed(seed: &[u8; 32]) -> Self {
        Self { key: SigningKey::from_bytes(seed) }
    }

    /// The mailbox id others deposit to.
    pub fn id(&self) -> MailboxId {
        MailboxId::from_public_key(&self.key.verifying_key().to_bytes())
    }

    /// The `Subscribe` frame proving ownership for the relay's `challenge`.
    pub fn subscribe_frame(&self, request: u32, challenge: &[u8; 32]) -> Frame {
        let public_key = self.key.verifying_key().to_bytes();
        let signature = self.key.sign(&subscribe_proof_message(challenge, &public_key)).to_bytes();
        Frame::Subscribe { request, public_key, signature }
    }
}

impl std::fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Mailbox(..)")
    }
}
