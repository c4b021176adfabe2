//! The PQXDH-style handshake that turns an invite into a [`Session`] on both sides.
//!
//! Inviter = Bob (publishes the bundle), joiner = Alice. Keys: `IK` identity X25519, `SPK` the invite's
//! one-time signed prekey, `PQSPK` the invite's ML-KEM-768 key, `EK` Alice's ephemeral key.
//! `DH1 = DH(IK_A, SPK_B)`, `DH2 = DH(EK_A, IK_B)`, `DH3 = DH(EK_A, SPK_B)`, `(CT, SS) = Encaps(PQSPK_B)`.

use ml_kem::array::Array;
use ml_kem::{Decapsulate, Encapsulate};
use rand_core::CryptoRng;
use zeroize::{Zeroize, Zeroizing};

use super::aead::{self, NONCE_LEN};
use super::codec::Reader;
use super::envelope::{
    ENCRYPTED_IDENTITY_LEN, ENVELOPE_VERSION, INITIAL_ENVELOPE_SIZES, KEM_CIPHERTEXT_LEN, KIND_INITIAL,
    MAX_PLAINTEXT_LEN, OLDEST_ENVELOPE_VERSION,
};
use super::identity::{Identity, IdentityPublic};
use super::invite::{INVITE_RESPONSE_GRACE_SECS, Invite, InviteSecret, parse_kem_key};
use super::kdf;
use super::session::{Role, Session, State};

/// Why a handshake step failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The invite has expired (for the inviter: more than the grace period ago).
    #[error("invite has expired")]
    Expired,
    /// The invite was created by this same identity.
    #[error("cannot accept your own invite")]
    OwnInvite,
    /// The first plaintext is longer than the maximum.
    #[error("plaintext is too long")]
    PlaintextTooLong,
    /// The invite's keys are unusable (a low-order point or an invalid ML-KEM key).
    #[error("invite keys are invalid")]
    InvalidInvite,
    /// The initial message has the wrong version, kind or length.
    #[error("initial message is malformed")]
    Malformed,
    /// The initial message did not authenticate (deliberately coarse).
    #[error("initial message is invalid")]
    Invalid,
}

use kdf::x25519 as dh;

/// The joiner's side: answers `invite` with an initial message that also carries `first_plaintext`
/// as the first ratchet message. Returns the new session and the initial message envelope.
pub fn accept_invite<R: CryptoRng + ?Sized>(
    identity: &Identity,
    invite: &Invite,
    first_plaintext: &[u8],
    now: u64,
    rng: &mut R,
) -> Result<(Session, Vec<u8>), HandshakeError> {
    if now >= invite.expires_at() {
        return Err(HandshakeError::Expired);
    }
    if identity.public_ref().ct_eq(invite.inviter()) {
        return Err(HandshakeError::OwnInvite);
    }
    if first_plaintext.len() > MAX_PLAINTEXT_LEN {
        return Err(HandshakeError::PlaintextTooLong);
    }
    let invite_hash = invite.hash();
    let kem_key = parse_kem_key(invite.kem_key()).ok_or(HandshakeError::InvalidInvite)?;

    let mut ek_bytes = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(ek_bytes.as_mut());
    let ek = &*ek_bytes;
    let ek_public = kdf::x25519_public(ek);
    let spk = invite.prekey();
    let ik_b = invite.inviter().x25519();
    let dh1 = dh(identity.dh_secret(), spk).ok_or(HandshakeError::InvalidInvite)?;
    let dh2 = dh(ek, ik_b).ok_or(HandshakeError::InvalidInvite)?;
    let dh3 = dh(ek, spk).ok_or(HandshakeError::InvalidInvite)?;
    let (ct, mut ss) = kem_key.encapsulate_with_rng(rng);
    let mut ss32 = Zeroizing::new([0u8; 32]);
    ss32.copy_from_slice(ss.as_slice());
    ss.as_mut_slice().zeroize();

    let (sk, hka, nhkb) = kdf::pqxdh(&dh1, &dh2, &dh3, &ss32, &invite_hash);
    let id_key = kdf::initial_identity_key(&dh3, &ss32, &invite_hash);
    let state = State::init_joiner(rng, &sk, spk, &hka, &nhkb).ok_or(HandshakeError::InvalidInvite)?;
    let mut session = Session::new(Role::Joiner, identity.public(), invite.inviter().clone(), state);
    let inner = session.encrypt(first_plaintext, rng).map_err(|_| HandshakeError::PlaintextTooLong)?;

    let mut out = Vec::with_capacity(INITIAL_ENVELOPE_SIZES[0] + inner.len());
    out.extend_from_slice(&[ENVELOPE_VERSION, KIND_INITIAL]);
    out.extend_from_slice(&ek_public);
    out.extend_from_slice(ct.as_slice());
    // The identity key is used for exactly one encryption (it depends on the fresh EK), so the
    // all-zero nonce is never reused.
    let sealed_identity = aead::seal(&id_key, &[0u8; NONCE_LEN], &out, &identity.public().to_bytes());
    out.extend_from_slice(&sealed_identity);
    out.extend_from_slice(&inner);
    Ok((session, out))
}

impl InviteSecret {
    /// The inviter's side: consumes the one-time secret, checks the initial message and returns the
    /// session plus the joiner's first plaintext. The secret is gone afterwards even on error, so a
    /// failed or replayed initial message cannot be retried against it.
    pub fn respond(
        self,
        identity: &Identity,
        initial_message: &[u8],
        now: u64,
    ) -> Result<(Session, Vec<u8>), HandshakeError> {
        if now > self.expires_at.saturating_add(INVITE_RESPONSE_GRACE_SECS) {
            return Err(HandshakeError::Expired);
        }
        if !INITIAL_ENVELOPE_SIZES.contains(&initial_message.len()) {
            return Err(HandshakeError::Malformed);
        }
        let mut r = Reader::new(initial_message);
        let version = r.u8().ok_or(HandshakeError::Malformed)?;
        if !(OLDEST_ENVELOPE_VERSION..=ENVELOPE_VERSION).contains(&version) || r.u8() != Some(KIND_INITIAL) {
            return Err(HandshakeError::Malformed);
        }
        let ek_public = r.array::<32>().ok_or(HandshakeError::Malformed)?;
        let ct = r.take(KEM_CIPHERTEXT_LEN).ok_or(HandshakeError::Malformed)?;
        let identity_aad_len = 2 + 32 + KEM_CIPHERTEXT_LEN;
        let sealed_identity = r.take(ENCRYPTED_IDENTITY_LEN).ok_or(HandshakeError::Malformed)?;
        let inner = r.rest();
        // The embedded message is of the same version as the initial message around it.
        if inner.first() != Some(&version) {
            return Err(HandshakeError::Malformed);
        }

        let ct = Array::try_from(ct).map_err(|_| HandshakeError::Malformed)?;
        let mut ss = self.kem_decapsulation_key().decapsulate(&ct);
        let mut ss32 = Zeroizing::new([0u8; 32]);
        ss32.copy_from_slice(ss.as_slice());
        ss.as_mut_slice().zeroize();

        let spk = &self.prekey;
        let dh3 = dh(spk, &ek_public).ok_or(HandshakeError::Invalid)?;
        let id_key = kdf::initial_identity_key(&dh3, &ss32, &self.invite_hash);
        let joiner_bytes =
            aead::open(&id_key, &[0u8; NONCE_LEN], &initial_message[..identity_aad_len], sealed_identity)
                .ok_or(HandshakeError::Invalid)?;
        let joiner = IdentityPublic::from_bytes(&joiner_bytes).map_err(|_| HandshakeError::Invalid)?;
        if joiner.ct_eq(identity.public_ref()) {
            return Err(HandshakeError::OwnInvite);
        }
        let dh1 = dh(spk, joiner.x25519()).ok_or(HandshakeError::Invalid)?;
        let dh2 = dh(identity.dh_secret(), &ek_public).ok_or(HandshakeError::Invalid)?;
        let (sk, hka, nhkb) = kdf::pqxdh(&dh1, &dh2, &dh3, &ss32, &self.invite_hash);
        let state = State::init_inviter(&sk, &self.prekey, &hka, &nhkb);
        let mut session = Session::new(Role::Inviter, identity.public(), joiner, state);
        let first = session.decrypt(inner).map_err(|_| HandshakeError::Invalid)?.plaintext;
        Ok((session, first))
    }
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::{Rng as _, SeedableRng};

    use super::*;
    use crate::core::invite::create_invite;

    /// PQXDH's point, tested end to end rather than only by the known-answer vectors: an adversary
    /// who holds every X25519 secret of a handshake (what a quantum computer would give them from
    /// recorded public keys) but not the ML-KEM shared secret derives keys that open neither the
    /// joiner's sealed identity nor the first message. The control run, with the right KEM secret
    /// and the same steps, opens both.
    #[test]
    fn every_x25519_secret_without_the_kem_secret_opens_nothing() {
        let mut rng = ChaCha20Rng::seed_from_u64(42);
        let alice = Identity::generate(&mut rng);
        let bob = Identity::generate(&mut rng);
        let (invite, secret) = create_invite(&bob, [1; 32], "Bob", 1_000, 3_600, &mut rng);
        let (_, initial) = accept_invite(&alice, &invite, b"attack at dawn", 1_000, &mut rng).unwrap();

        let aad_len = 2 + 32 + KEM_CIPHERTEXT_LEN;
        let ek_public: [u8; 32] = initial[2..34].try_into().unwrap();
        let sealed_identity = &initial[aad_len..aad_len + ENCRYPTED_IDENTITY_LEN];
        let inner = &initial[aad_len + ENCRYPTED_IDENTITY_LEN..];
        let dh1 = dh(&secret.prekey, alice.public_ref().x25519()).unwrap();
        let dh2 = dh(bob.dh_secret(), &ek_public).unwrap();
        let dh3 = dh(&secret.prekey, &ek_public).unwrap();

        let ct = Array::try_from(&initial[34..aad_len]).unwrap();
        let right: [u8; 32] = secret.kem_decapsulation_key().decapsulate(&ct).as_slice().try_into().unwrap();
        let mut guessed = [0u8; 32];
        rng.fill_bytes(&mut guessed);
        let mut one_bit_off = right;
        one_bit_off[31] ^= 0x80;
        for (kem_secret, opens) in [(right, true), (guessed, false), (one_bit_off, false)] {
            let id_key = kdf::initial_identity_key(&dh3, &kem_secret, &secret.invite_hash);
            let identity = aead::open(&id_key, &[0u8; NONCE_LEN], &initial[..aad_len], sealed_identity);
            assert_eq!(identity.as_deref() == Some(&alice.public().to_bytes()[..]), opens);
            let (sk, hka, nhkb) = kdf::pqxdh(&dh1, &dh2, &dh3, &kem_secret, &secret.invite_hash);
            let state = State::init_inviter(&sk, &secret.prekey, &hka, &nhkb);
            let mut session = Session::new(Role::Inviter, bob.public(), alice.public(), state);
            let first = session.decrypt(inner).map(|d| d.plaintext);
            assert_eq!(first.as_deref().ok() == Some(&b"attack at dawn"[..]), opens);
        }
    }
}
