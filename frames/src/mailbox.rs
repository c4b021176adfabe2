//! Mailbox ids and the proof of ownership a subscriber gives.

use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};

/// Length of the relay's subscribe challenge, in bytes.
pub const CHALLENGE_LEN: usize = 32;
/// Length of an Ed25519 signature, in bytes.
pub const SIGNATURE_LEN: usize = 64;

/// Domain separation for deriving a mailbox id from its public key.
const MAILBOX_ID_DOMAIN: &[u8] = b"doorless/relay/mailbox-id/v1";
/// Domain separation for the subscribe proof.
const SUBSCRIBE_DOMAIN: &[u8] = b"doorless/relay/subscribe/v1";

/// A mailbox address: SHA-256 over a domain string and the mailbox's Ed25519 public key.
///
/// Anyone who knows the id may deposit; only the holder of the matching private key may subscribe.
/// The id is random-looking and says nothing about who owns it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MailboxId(pub [u8; 32]);

impl MailboxId {
    /// Derives the id of the mailbox owned by `public_key` (an Ed25519 verifying key).
    pub fn from_public_key(public_key: &[u8; 32]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(MAILBOX_ID_DOMAIN);
        hasher.update(public_key);
        Self(hasher.finalize().into())
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for MailboxId {
    /// Mailbox ids must not reach logs; `Debug` prints only that one is there.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MailboxId(..)")
    }
}

/// The exact bytes a mailbox owner signs to subscribe: domain, challenge, public key.
pub fn subscribe_proof_message(challenge: &[u8; CHALLENGE_LEN], public_key: &[u8; 32]) -> Vec<u8> {
    let mut message = Vec::with_capacity(SUBSCRIBE_DOMAIN.len() + CHALLENGE_LEN + 32);
    message.extend_from_slice(SUBSCRIBE_DOMAIN);
    message.extend_from_slice(challenge);
    message.extend_from_slice(public_key);
    message
}

/// Why a subscribe proof was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The public key is not a valid Ed25519 point.
    #[error("invalid mailbox public key")]
    BadKey,
    /// The signature does not verify under the key for this challenge.
    #[error("invalid subscribe signature")]
    BadSignature,
}

/// Checks a subscribe proof and returns the mailbox it opens.
///
/// Uses `verify_strict`, which rejects small-order keys and non-canonical signatures, so a proof
/// cannot be malleated into a second valid one.
pub fn verify_subscribe_proof(
    challenge: &[u8; CHALLENGE_LEN],
    public_key: &[u8; 32],
    signature: &[u8; SIGNATURE_LEN],
) -> Result<MailboxId, ProofError> {
    let key = VerifyingKey::from_bytes(public_key).map_err(|_| ProofError::BadKey)?;
    let signature = Signature::from_bytes(signature);
    key.verify_strict(&subscribe_proof_message(challenge, public_key), &signature)
        .map_err(|_| ProofError::BadSignature)?;
    Ok(MailboxId::from_public_key(public_key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    #[test]
    fn proof_verifies_only_for_its_challenge_and_key() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let public = key.verifying_key().to_bytes();
        let challenge = [1; CHALLENGE_LEN];
        let signature = key.sign(&subscribe_proof_message(&challenge, &public)).to_bytes();
        assert_eq!(
            verify_subscribe_proof(&challenge, &public, &signature),
            Ok(MailboxId::from_public_key(&public))
        );
        assert_eq!(
            verify_subscribe_proof(&[2; CHALLENGE_LEN], &public, &signature),
            Err(ProofError::BadSignature)
        );
        let other = SigningKey::from_bytes(&[8; 32]).verifying_key().to_bytes();
        assert_eq!(verify_subscribe_proof(&challenge, &other, &signature), Err(ProofError::BadSignature));
        let mut flipped = signature;
        flipped[10] ^= 1;
        assert!(verify_subscribe_proof(&challenge, &public, &flipped).is_err());
    }

    #[test]
    fn mailbox_id_debug_hides_the_id() {
        assert_eq!(format!("{:?}", MailboxId([0xab; 32])), "MailboxId(..)");
    }
}
