//! The Double Ratchet with header encryption (Signal's Double Ratchet specification, section 4),
//! with one change that keeps `decrypt` free of randomness: the sending half of a DH ratchet step is
//! taken lazily, on the next `encrypt` (as vodozemac does), instead of inside `decrypt`.

use std::fmt;

use rand_core::CryptoRng;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::aead::{self, NONCE_LEN};
use super::codec::Reader;
use super::envelope::{
    self, ENCRYPTED_HEADER_LEN, ENVELOPE_VERSION, HEADER_LEN, Header, KIND_MESSAGE, MAX_PLAINTEXT_LEN,
    MESSAGE_ENVELOPE_SIZES, MESSAGE_PREFIX_LEN, OLDEST_ENVELOPE_VERSION,
};
use super::identity::{IDENTITY_PUBLIC_LEN, IdentityPublic};
use super::kdf;
use super::skipped::{MAX_JUMP, MAX_SKIP, Skipped};

/// Version byte of the stored session encoding this build writes. Version 1 (a flat list of skipped
/// keys) is still read.
pub const SESSION_VERSION: u8 = 2;

/// Why a message could not be encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The plaintext is longer than [`MAX_PLAINTEXT_LEN`].
    #[error("plaintext is too long")]
    PlaintextTooLong,
    /// The sending chain reached its maximum length (2^32 - 1 messages).
    #[error("sending chain is exhausted")]
    ChainExhausted,
    /// The session has no sending chain yet, or the peer's ratchet key is unusable.
    #[error("session cannot send")]
    CannotSend,
}

/// Why an envelope did not decrypt. Deliberately coarse; the session is unchanged after any error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecryptError {
    /// Not an ordinary message envelope of a supported version and size.
    #[error("message is malformed")]
    Malformed,
    /// Authentication failed, the keys are unknown, or the message was already received.
    #[error("message could not be decrypted")]
    Invalid,
    /// The message is more than [`MAX_JUMP`] messages ahead in its own chain.
    #[error("message skips too many keys")]
    TooManySkipped,
}

/// Why a stored session was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionStateError {
    /// The bytes have the wrong length or structure.
    #[error("session state is corrupt")]
    Corrupt,
    /// The version byte is not one this build understands.
    #[error("session state has an unsupported version")]
    UnsupportedVersion,
}

/// Which side of the handshake this session was created on; fixes the order of identities in the
/// associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Created the session from someone else's invite (`accept_invite`), "Alice" in the specs.
    Joiner,
    /// Created the invite and answered the initial message (`InviteSecret::respond`), "Bob".
    Inviter,
}

/// A decrypted message.
#[derive(Clone, PartialEq, Eq)]
pub struct Decrypted {
    /// The plaintext, padding removed.
    pub plaintext: Vec<u8>,
    /// How many message keys this decryption gave up for good: keys beyond what the skipped-key
    /// store keeps ([`MAX_SKIP`] per skip, [`MAX_JUMP`] for an old chain, [`MAX_STORED_SKIPPED`](super::MAX_STORED_SKIPPED)
    /// and [`MAX_RECEIVING_CHAINS`](super::MAX_RECEIVING_CHAINS) in total). Those messages, if they ever arrive, no longer decrypt.
    pub lost: u32,
}

impl fmt::Debug for Decrypted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decrypted")
            .field("plaintext_len", &self.plaintext.len())
            .field("lost", &self.lost)
            .finish()
    }
}

/// The ratchet variables, named as in the specification.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct State {
    dhs: [u8; 32],
    /// `DHs`'s public key, derived once per ratchet key instead of on every message (not stored).
    dhs_public: [u8; 32],
    dhr: Option<[u8; 32]>,
    rk: [u8; 32],
    cks: Option<[u8; 32]>,
    ckr: Option<[u8; 32]>,
    ns: u32,
    nr: u32,
    pn: u32,
    hks: Option<[u8; 32]>,
    hkr: Option<[u8; 32]>,
    nhks: [u8; 32],
    nhkr: [u8; 32],
    /// Set by a receiving DH ratchet step; the next `encrypt` generates a new `DHs` first.
    send_pending: bool,
    skipped: Skipped,
}

use kdf::{x25519 as dh, x25519_public as public_of};

impl State {
    /// `RatchetInitAliceHE`: the joiner knows the inviter's ratchet key (the invite prekey).
    pub(crate) fn init_joiner<R: CryptoRng + ?Sized>(
        rng: &mut R,
        sk: &[u8; 32],
        bob_ratchet: &[u8; 32],
        shared_hka: &[u8; 32],
        shared_nhkb: &[u8; 32],
    ) -> Option<Self> {
        let mut dhs = [0u8; 32];
        rng.fill_bytes(&mut dhs);
        let out = dh(&dhs, bob_ratchet)?;
        let (rk, cks, nhks) = kdf::root(sk, &out);
        Some(Self {
            dhs_public: public_of(&dhs),
            dhs,
            dhr: Some(*bob_ratchet),
            rk: *rk,
            cks: Some(*cks),
            ckr: None,
            ns: 0,
            nr: 0,
            pn: 0,
            hks: Some(*shared_hka),
            hkr: None,
            nhks: *nhks,
            nhkr: *shared_nhkb,
            send_pending: false,
            skipped: Skipped::default(),
        })
    }

    /// `RatchetInitBobHE`: the inviter's first ratchet key pair is the invite prekey.
    pub(crate) fn init_inviter(
        sk: &[u8; 32],
        bob_ratchet_secret: &[u8; 32],
        shared_hka: &[u8; 32],
        shared_nhkb: &[u8; 32],
    ) -> Self {
        Self {
            dhs: *bob_ratchet_secret,
            dhs_public: public_of(bob_ratchet_secret),
            dhr: None,
            rk: *sk,
            cks: None,
            ckr: None,
            ns: 0,
            nr: 0,
            pn: 0,
            hks: None,
            hkr: None,
            nhks: *shared_nhkb,
            nhkr: *shared_hka,
            send_pending: false,
            skipped: Skipped::default(),
        }
    }

    /// `RatchetEncryptHE`, preceded by the lazy sending half of a DH ratchet step if one is due.
    pub(crate) fn encrypt<R: CryptoRng + ?Sized>(
        &mut self,
        ad: &[u8],
        plaintext: &[u8],
        rng: &mut R,
    ) -> Result<Vec<u8>, SessionError> {
        let padded = Zeroizing::new(envelope::pad(plaintext).ok_or(SessionError::PlaintextTooLong)?);
        if self.send_pending {
            let dhr = self.dhr.ok_or(SessionError::CannotSend)?;
            let mut fresh = Zeroizing::new([0u8; 32]);
            rng.fill_bytes(fresh.as_mut());
            let out = dh(&fresh, &dhr).ok_or(SessionError::CannotSend)?;
            let (rk, cks, nhks) = kdf::root(&self.rk, &out);
            self.dhs = *fresh;
            self.dhs_public = public_of(&self.dhs);
            self.rk = *rk;
            self.cks = Some(*cks);
            self.nhks = *nhks;
            self.send_pending = false;
        }
        let (Some(cks), Some(hks)) = (self.cks.as_ref(), self.hks.as_ref()) else {
            return Err(SessionError::CannotSend);
        };
        if self.ns == u32::MAX {
            return Err(SessionError::ChainExhausted);
        }
        let (next_ck, mk) = kdf::chain(cks);
        let header = Header { dh: self.dhs_public, pn: self.pn, n: self.ns };
        let mut header_nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut header_nonce);
        let prefix = [ENVELOPE_VERSION, KIND_MESSAGE];
        let header_ad = [&prefix[..], ad].concat();
        let encrypted_header = aead::seal(hks, &header_nonce, &header_ad, &header.encode());

        let mut out = Vec::with_capacity(MESSAGE_PREFIX_LEN + padded.len() + aead::TAG_LEN);
        out.extend_from_slice(&prefix);
        out.extend_from_slice(&header_nonce);
        out.extend_from_slice(&encrypted_header);
        let body_ad = [ad, &out[..]].concat();
        let (key, nonce) = kdf::message_keys_v2(&mk, &header_nonce);
        out.extend_from_slice(&aead::seal(&key, &nonce, &body_ad, &padded));

        self.cks = Some(*next_ck);
        self.ns += 1;
        Ok(out)
    }

    /// `RatchetDecryptHE`, with the skipped-key policy of `docs/protocol.md` section 5.4. Returns the
    /// plaintext and how many message keys were given up. Mutates `self` even on failure: callers run
    /// it on a copy.
    pub(crate) fn decrypt(&mut self, ad: &[u8], envelope: &[u8]) -> Result<Decrypted, DecryptError> {
        if !MESSAGE_ENVELOPE_SIZES.contains(&envelope.len()) {
            return Err(DecryptError::Malformed);
        }
        let mut r = Reader::new(envelope);
        let prefix = r.take(2).ok_or(DecryptError::Malformed)?;
        let version = prefix[0];
        if !(OLDEST_ENVELOPE_VERSION..=ENVELOPE_VERSION).contains(&version) || prefix[1] != KIND_MESSAGE {
            return Err(DecryptError::Malformed);
        }
        let header_nonce = r.array::<NONCE_LEN>().ok_or(DecryptError::Malformed)?;
        let encrypted_header = r.take(ENCRYPTED_HEADER_LEN).ok_or(DecryptError::Malformed)?;
        let body = Body {
            version,
            header_nonce: &header_nonce,
            ad: [ad, &envelope[..MESSAGE_PREFIX_LEN]].concat(),
            sealed: r.rest(),
        };
        let header_ad = [prefix, ad].concat();
        let open_header = |hk: &[u8; 32]| {
            #[cfg(test)]
            tests::HEADER_OPENS.with(|c| c.set(c.get() + 1));
            aead::open(hk, &header_nonce, &header_ad, encrypted_header)
                .filter(|h| h.len() == HEADER_LEN)
                .and_then(|h| Header::decode(&h))
        };

        // TrySkippedMessageKeysHE: one header decryption per retained chain. A header that a stored
        // chain's key opens but whose number is not stored is a replay or a message beyond what was
        // skipped; it is refused, unless that chain is the current one (then it continues below).
        let mut current = None;
        let mut hkr_tried = false;
        for i in 0..self.skipped.chains() {
            let hk = *self.skipped.header_key(i);
            let hk_is_current = self.hkr.is_some_and(|hkr| bool::from(hkr.ct_eq(&hk)));
            hkr_tried |= hk_is_current;
            let Some(header) = open_header(&hk) else { continue };
            if let Some(mk) = self.skipped.take(i, header.n) {
                let plaintext = body.open(&mk)?;
                return Ok(Decrypted { plaintext, lost: 0 });
            }
            if !hk_is_current {
                return Err(DecryptError::Invalid);
            }
            current = Some(header);
            break;
        }

        // DecryptHeader: the current receiving header key, then the next one (a new ratchet key).
        if current.is_none() && !hkr_tried {
            current = self.hkr.as_ref().and_then(&open_header);
        }
        let (header, ratchet) = match current {
            Some(h) => (h, false),
            None => (open_header(&self.nhkr).ok_or(DecryptError::Invalid)?, true),
        };

        let mut lost = 0u32;
        if ratchet {
            lost = lost.saturating_add(self.skip(header.pn, true)?);
            self.ratchet_receive(&header)?;
        } else if header.n < self.nr {
            // Already received (its key is neither current nor stored as skipped): a replay.
            return Err(DecryptError::Invalid);
        }
        lost = lost.saturating_add(self.skip(header.n, false)?);
        let ckr = self.ckr.as_ref().ok_or(DecryptError::Invalid)?;
        let (next_ck, mk) = kdf::chain(ckr);
        self.ckr = Some(*next_ck);
        self.nr = self.nr.checked_add(1).ok_or(DecryptError::Invalid)?;
        let plaintext = body.open(&mk)?;
        Ok(Decrypted { plaintext, lost })
    }

    /// `SkipMessageKeysHE`: advances the receiving chain to message `until`, storing the keys of the
    /// newest [`MAX_SKIP`] messages passed over; returns how many keys were given up (passed over and
    /// not stored, or forgotten by the store's bounds). A gap over [`MAX_JUMP`] is refused for the
    /// current chain, and given up without deriving anything for an `old` chain (one that a new ratchet
    /// key is about to replace). Without a receiving chain there is nothing to skip or lose.
    fn skip(&mut self, until: u32, old: bool) -> Result<u32, DecryptError> {
        if until <= self.nr {
            return Ok(0);
        }
        let (Some(ck), Some(hk)) = (self.ckr, self.hkr) else {
            return Ok(0);
        };
        let gap = until - self.nr;
        if gap > MAX_JUMP {
            return if old { Ok(gap) } else { Err(DecryptError::TooManySkipped) };
        }
        let first_kept = until - gap.min(MAX_SKIP);
        let mut ck = Zeroizing::new(ck);
        for _ in self.nr..first_kept {
            ck = kdf::chain(&ck).0;
        }
        let kept = (first_kept..until).map(|n| {
            let (next, mk) = kdf::chain(&ck);
            ck = next;
            (n, *mk)
        });
        let forgotten = self.skipped.extend(&hk, kept);
        self.ckr = Some(*ck);
        self.nr = until;
        Ok((first_kept - (until - gap)).saturating_add(forgotten))
    }

    /// The receiving half of `DHRatchetHE`; the sending half waits for the next `encrypt`.
    fn ratchet_receive(&mut self, header: &Header) -> Result<(), DecryptError> {
        let out = dh(&self.dhs, &header.dh).ok_or(DecryptError::Invalid)?;
        if !self.send_pending {
            self.pn = self.ns;
            self.ns = 0;
            self.hks = Some(self.nhks);
        }
        self.nr = 0;
        self.hkr = Some(self.nhkr);
        self.dhr = Some(header.dh);
        let (rk, ckr, nhkr) = kdf::root(&self.rk, &out);
        self.rk = *rk;
        self.ckr = Some(*ckr);
        self.nhkr = *nhkr;
        self.cks = None;
        self.send_pending = true;
        Ok(())
    }

    fn write(&self, out: &mut Vec<u8>) {
        let flags = u8::from(self.dhr.is_some())
            | u8::from(self.cks.is_some()) << 1
            | u8::from(self.ckr.is_some()) << 2
            | u8::from(self.hks.is_some()) << 3
            | u8::from(self.hkr.is_some()) << 4
            | u8::from(self.send_pending) << 5;
        out.push(flags);
        out.extend_from_slice(&self.dhs);
        for opt in [&self.dhr, &self.cks, &self.ckr, &self.hks, &self.hkr] {
            out.extend_from_slice(opt.as_ref().unwrap_or(&[0u8; 32]));
        }
        out.extend_from_slice(&self.rk);
        out.extend_from_slice(&self.nhks);
        out.extend_from_slice(&self.nhkr);
        out.extend_from_slice(&self.ns.to_be_bytes());
        out.extend_from_slice(&self.nr.to_be_bytes());
        out.extend_from_slice(&self.pn.to_be_bytes());
        self.skipped.write(out);
    }

    /// Reads the state of a stored session of `version` 1 or 2 (they differ only in the skipped keys).
    fn read(r: &mut Reader<'_>, version: u8) -> Option<Self> {
        let flags = r.u8()?;
        if flags & !0x3f != 0 {
            return None;
        }
        let dhs = r.array()?;
        let mut opts = [None; 5];
        for (i, slot) in opts.iter_mut().enumerate() {
            let value: [u8; 32] = r.array()?;
            if flags & (1 << i) != 0 {
                *slot = Some(value);
            } else if !bool::from(value.ct_eq(&[0u8; 32])) {
                // An unset field is stored as zeros; anything else is not an encoding we wrote.
                return None;
            }
        }
        let [dhr, cks, ckr, hks, hkr] = opts;
        let mut state = Self {
            dhs_public: public_of(&dhs),
            dhs,
            dhr,
            rk: r.array()?,
            cks,
            ckr,
            ns: 0,
            nr: 0,
            pn: 0,
            hks,
            hkr,
            nhks: r.array()?,
            nhkr: r.array()?,
            send_pending: flags & (1 << 5) != 0,
            skipped: Skipped::default(),
        };
        state.ns = r.u32()?;
        state.nr = r.u32()?;
        state.pn = r.u32()?;
        state.skipped = if version == 1 { Skipped::read_v1(r)? } else { Skipped::read(r)? };
        Some(state)
    }
}

/// The encrypted body of a message envelope and what its keys depend on.
struct Body<'a> {
    version: u8,
    header_nonce: &'a [u8; NONCE_LEN],
    ad: Vec<u8>,
    sealed: &'a [u8],
}

impl Body<'_> {
    fn open(&self, mk: &[u8; 32]) -> Result<Vec<u8>, DecryptError> {
        let (key, nonce) = if self.version == OLDEST_ENVELOPE_VERSION {
            kdf::message_keys(mk)
        } else {
            kdf::message_keys_v2(mk, self.header_nonce)
        };
        let padded = aead::open(&key, &nonce, &self.ad, self.sealed).ok_or(DecryptError::Invalid)?;
        envelope::unpad(padded).ok_or(DecryptError::Invalid)
    }
}

/// An established end-to-end encrypted conversation with one peer.
pub struct Session {
    role: Role,
    own: IdentityPublic,
    peer: IdentityPublic,
    state: State,
}

impl Session {
    pub(crate) fn new(role: Role, own: IdentityPublic, peer: IdentityPublic, state: State) -> Self {
        Self { role, own, peer, state }
    }

    /// Associated data of every message: `joiner identity || inviter identity`, each in its
    /// [`IdentityPublic::to_bytes`] encoding.
    pub(crate) fn associated_data(role: Role, own: &IdentityPublic, peer: &IdentityPublic) -> Vec<u8> {
        let (joiner, inviter) = match role {
            Role::Joiner => (own, peer),
            Role::Inviter => (peer, own),
        };
        [joiner.to_bytes(), inviter.to_bytes()].concat()
    }

    fn ad(&self) -> Vec<u8> {
        Self::associated_data(self.role, &self.own, &self.peer)
    }

    /// Encrypts and pads one plaintext into a message envelope (one of [`MESSAGE_ENVELOPE_SIZES`]).
    pub fn encrypt<R: CryptoRng + ?Sized>(
        &mut self,
        plaintext: &[u8],
        rng: &mut R,
    ) -> Result<Vec<u8>, SessionError> {
        if plaintext.len() > MAX_PLAINTEXT_LEN {
            return Err(SessionError::PlaintextTooLong);
        }
        let ad = self.ad();
        let mut next = self.state.clone();
        let out = next.encrypt(&ad, plaintext, rng)?;
        self.state = next;
        Ok(out)
    }

    /// Decrypts a message envelope. On any error the session is left exactly as it was, so replays,
    /// forgeries and corrupted blobs cannot damage it. [`Decrypted::lost`] says how many earlier
    /// messages this step gave up (a gap the application can show).
    pub fn decrypt(&mut self, envelope: &[u8]) -> Result<Decrypted, DecryptError> {
        let ad = self.ad();
        let mut next = self.state.clone();
        let decrypted = next.decrypt(&ad, envelope)?;
        self.state = next;
        Ok(decrypted)
    }

    /// The peer's identity, fixed for the life of the session.
    pub fn peer_identity(&self) -> &IdentityPublic {
        &self.peer
    }

    /// Our own identity as bound into this session.
    pub fn own_identity(&self) -> &IdentityPublic {
        &self.own
    }

    /// Which side of the handshake created this session.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Number of skipped message keys currently stored.
    pub fn skipped_keys(&self) -> usize {
        self.state.skipped.len()
    }

    /// Number of receiving chains whose skipped keys are kept (each costs one header decryption per
    /// incoming blob); at most [`MAX_RECEIVING_CHAINS`](super::MAX_RECEIVING_CHAINS).
    pub fn retained_chains(&self) -> usize {
        self.state.skipped.chains()
    }

    /// Encodes for storage: `version(1) || role(1) || own identity(129) || peer identity(129) ||
    /// ratchet state` (layout in `docs/protocol.md`). Contains secrets: store it encrypted.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(1024));
        out.push(SESSION_VERSION);
        out.push(match self.role {
            Role::Joiner => 0,
            Role::Inviter => 1,
        });
        out.extend_from_slice(&self.own.to_bytes());
        out.extend_from_slice(&self.peer.to_bytes());
        self.state.write(&mut out);
        out
    }

    /// Decodes a stored session.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SessionStateError> {
        let mut r = Reader::new(bytes);
        let version = r.u8().ok_or(SessionStateError::Corrupt)?;
        if !(1..=SESSION_VERSION).contains(&version) {
            return Err(SessionStateError::UnsupportedVersion);
        }
        let role = match r.u8() {
            Some(0) => Role::Joiner,
            Some(1) => Role::Inviter,
            _ => return Err(SessionStateError::Corrupt),
        };
        let mut identity = || {
            r.take(IDENTITY_PUBLIC_LEN)
                .and_then(|b| IdentityPublic::from_bytes(b).ok())
                .ok_or(SessionStateError::Corrupt)
        };
        let own = identity()?;
        let peer = identity()?;
        let state = State::read(&mut r, version).ok_or(SessionStateError::Corrupt)?;
        if !r.is_empty() {
            return Err(SessionStateError::Corrupt);
        }
        Ok(Self { role, own, peer, state })
    }
}

impl Clone for Session {
    fn clone(&self) -> Self {
        Self { role: self.role, own: self.own.clone(), peer: self.peer.clone(), state: self.state.clone() }
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("role", &self.role)
            .field("peer", &self.peer)
            .field("sent_in_chain", &self.state.ns)
            .field("received_in_chain", &self.state.nr)
            .field("skipped_keys", &self.state.skipped.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::core::{Identity, MAX_RECEIVING_CHAINS, accept_invite, create_invite};

    thread_local! {
        pub(super) static HEADER_OPENS: Cell<u64> = const { Cell::new(0) };
    }

    fn pair(seed: u8) -> (Session, Session, ChaCha20Rng) {
        let mut rng = ChaCha20Rng::from_seed([seed; 32]);
        let a = Identity::generate(&mut rng);
        let b = Identity::generate(&mut rng);
        let (invite, secret) = create_invite(&b, [1; 32], "B", 1_000, 3_600, &mut rng);
        let (alice, initial) = accept_invite(&a, &invite, b"hi", 1_000, &mut rng).unwrap();
        let (bob, _) = secret.respond(&b, &initial, 1_000).unwrap();
        (alice, bob, rng)
    }

    /// What a modified client can do: start a new sending chain without having received anything.
    fn force_step(s: &mut Session) {
        s.state.pn = s.state.ns;
        s.state.ns = 0;
        s.state.hks = Some(s.state.nhks);
        s.state.send_pending = true;
    }

    #[test]
    fn forced_ratchet_steps_do_not_multiply_header_trials() {
        let (mut alice, mut bob, mut rng) = pair(1);
        for _ in 0..100 {
            // Each chain: message 1 arrives, message 0 never does (one skipped key per chain).
            let _lost = alice.encrypt(b"0", &mut rng).unwrap();
            let env = alice.encrypt(b"1", &mut rng).unwrap();
            bob.decrypt(&env).unwrap();
            force_step(&mut alice);
        }
        let garbage = {
            let mut g = alice.encrypt(b"x", &mut rng).unwrap();
            g[20] ^= 1;
            g
        };
        HEADER_OPENS.with(|c| c.set(0));
        assert!(bob.decrypt(&garbage).is_err());
        let opens = HEADER_OPENS.with(Cell::get);
        assert!(opens <= MAX_RECEIVING_CHAINS as u64 + 2, "{opens} header decryptions for one blob");
    }

    /// A message more than MAX_JUMP ahead in its own chain is refused (nothing changes); an old chain
    /// that far behind is given up without deriving a single key, and the new chain works.
    #[test]
    fn jumps_beyond_max_jump() {
        let (mut alice, mut bob, mut rng) = pair(3);
        let first = alice.encrypt(b"0", &mut rng).unwrap();
        bob.decrypt(&first).unwrap();
        // A modified sender skips MAX_JUMP + 1 numbers (its chain key is not what that number needs,
        // but the check comes before any derivation).
        assert_eq!(bob.state.nr, alice.state.ns);
        alice.state.ns += MAX_JUMP + 1;
        let far = alice.encrypt(b"far", &mut rng).unwrap();
        let before = bob.to_bytes();
        assert_eq!(bob.decrypt(&far), Err(DecryptError::TooManySkipped));
        assert_eq!(*bob.to_bytes(), *before);
        // The sender moves to a new chain; the rest of the old one (MAX_JUMP + 2 numbers) is given up.
        force_step(&mut alice);
        let next = alice.encrypt(b"next", &mut rng).unwrap();
        let d = bob.decrypt(&next).unwrap();
        assert_eq!((d.plaintext.as_slice(), d.lost), (&b"next"[..], MAX_JUMP + 2));
        assert_eq!(bob.skipped_keys(), 0);
    }

    /// Without a receiving chain (the inviter before the first message) there is nothing to skip: a
    /// header's `pn` is ignored, whatever it says, and nothing counts as lost.
    #[test]
    fn header_pn_is_ignored_without_a_receiving_chain() {
        let mut rng = ChaCha20Rng::from_seed([4; 32]);
        let a = Identity::generate(&mut rng);
        let b = Identity::generate(&mut rng);
        let bob_ratchet = [5u8; 32];
        let (sk, hka, nhkb) = ([6u8; 32], [7u8; 32], [8u8; 32]);
        let joiner =
            State::init_joiner(&mut rng, &sk, &kdf::x25519_public(&bob_ratchet), &hka, &nhkb).unwrap();
        let mut alice = Session::new(Role::Joiner, a.public(), b.public(), joiner);
        let inviter = State::init_inviter(&sk, &bob_ratchet, &hka, &nhkb);
        let mut bob = Session::new(Role::Inviter, b.public(), a.public(), inviter);
        assert!(!bob.state.send_pending && bob.state.ckr.is_none());
        alice.state.pn = u32::MAX;
        let env = alice.encrypt(b"first", &mut rng).unwrap();
        assert_eq!(bob.decrypt(&env).unwrap(), Decrypted { plaintext: b"first".to_vec(), lost: 0 });
        assert_eq!(bob.skipped_keys(), 0);
    }

    #[test]
    fn a_used_skipped_key_leaves_no_copy_behind() {
        let (mut alice, mut bob, mut rng) = pair(2);
        let envs: Vec<_> = (0..4).map(|_| alice.encrypt(b"m", &mut rng).unwrap()).collect();
        bob.decrypt(&envs[3]).unwrap();
        let mk = bob.state.skipped.newest_key();
        bob.decrypt(&envs[2]).unwrap();
        let bytes = bob.state.skipped.spare_bytes();
        assert!(!bytes.is_empty());
        assert!(!bytes.windows(32).any(|w| w == mk), "the used message key is still in memory");
        // The last key of a chain takes the chain with it; neither its key nor its header key stays.
        let hk = *bob.state.skipped.header_key(0);
        let mk = bob.state.skipped.newest_key();
        bob.decrypt(&envs[1]).unwrap();
        let mk0 = bob.state.skipped.newest_key();
        bob.decrypt(&envs[0]).unwrap();
        assert_eq!(bob.skipped_keys(), 0);
        let bytes = bob.state.skipped.spare_bytes();
        for secret in [hk, mk, mk0] {
            assert!(!bytes.windows(32).any(|w| w == secret), "a removed secret is still in memory");
        }
    }
}
