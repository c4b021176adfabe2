//! A mailbox this profile owns: an Ed25519 key pair whose public key names the mailbox.

use doorless_frames::{Frame, MailboxId, MailboxProof, RelayOrigin, subscribe_proof_message};
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

    /// The proof of ownership of this mailbox for the relay at `origin` and its `challenge`.
    pub fn proof(&self, origin: &RelayOrigin, challenge: &[u8; 32]) -> MailboxProof {
        let public_key = self.key.verifying_key().to_bytes();
        let signature = self.key.sign(&subscribe_proof_message(origin, challenge, &public_key)).to_bytes();
        MailboxProof { public_key, signature }
    }
}

/// Most proofs in one `SubscribeBatch`: 256 × 96 bytes, about 24 KiB, far within any sensible
/// `max_frame_len`; a profile with more mailboxes sends several frames.
pub const SUBSCRIBE_BATCH: usize = 256;

/// The `SubscribeBatch` frame proving ownership of `inboxes` (at most [`SUBSCRIBE_BATCH`]) for the
/// relay at `origin` and its `challenge`.
pub fn subscribe_frame(
    request: u32,
    origin: &RelayOrigin,
    challenge: &[u8; 32],
    inboxes: &[Mailbox],
) -> Frame {
    Frame::SubscribeBatch {
        request,
        origin: origin.as_str().to_owned(),
        proofs: inboxes.iter().map(|inbox| inbox.proof(origin, challenge)).collect(),
    }
}

impl std::fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Mailbox(..)")
    }
}
