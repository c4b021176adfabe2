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
    MESSAGE_ENVELOPE_SIZES, MESSAGE_PREFIX_LEN,
};
use super::identity::{IDENTITY_PUBLIC_LEN, IdentityPublic};
use super::kdf;

/// Most message keys one chain may skip in a single step (a larger gap is refused).
pub const MAX_SKIP: u32 = 1000;
/// Most skipped message keys kept in total; one message needing more is refused, and when older
/// entries push the store past this, the oldest are forgotten first.
pub const MAX_STORED_SKIPPED: usize = 1500;
/// Version byte of the stored session encoding.
pub const SESSION_VERSION: u8 = 1;

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
    /// The message would require skipping more than [`MAX_SKIP`] keys in one chain or storing more
    /// than [`MAX_STORED_SKIPPED`] keys at once.
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

#[derive(Clone, Zeroize, ZeroizeOnDrop)]
struct SkippedKey {
    hk: [u8; 32],
    n: u32,
    mk: [u8; 32],
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
    skipped: Vec<SkippedKey>,
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
            skipped: Vec::new(),
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
            skipped: Vec::new(),
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
        let (key, nonce) = kdf::message_keys(&mk);
        out.extend_from_slice(&aead::seal(&key, &nonce, &body_ad, &padded));

        self.cks = Some(*next_ck);
        self.ns += 1;
        Ok(out)
    }

    /// `RatchetDecryptHE`. Mutates `self` even on failure: callers run it on a copy.
    pub(crate) fn decrypt(&mut self, ad: &[u8], envelope: &[u8]) -> Result<Vec<u8>, DecryptError> {
        if !MESSAGE_ENVELOPE_SIZES.contains(&envelope.len()) {
            return Err(DecryptError::Malformed);
        }
        let mut r = Reader::new(envelope);
        let prefix = r.take(2).ok_or(DecryptError::Malformed)?;
        if prefix != [ENVELOPE_VERSION, KIND_MESSAGE] {
            return Err(DecryptError::Malformed);
        }
        let header_nonce = r.array::<NONCE_LEN>().ok_or(DecryptError::Malformed)?;
        let encrypted_header = r.take(ENCRYPTED_HEADER_LEN).ok_or(DecryptError::Malformed)?;
        let body = r.rest();
        let header_ad = [prefix, ad].concat();
        let body_ad = [ad, &envelope[..MESSAGE_PREFIX_LEN]].concat();
        let open_header = |hk: &[u8; 32]| {
            aead::open(hk, &header_nonce, &header_ad, encrypted_header)
                .filter(|h| h.len() == HEADER_LEN)
                .and_then(|h| Header::decode(&h))
        };

        // TrySkippedMessageKeysHE.
        let mut tried: Vec<[u8; 32]> = Vec::new();
        for i in 0..self.skipped.len() {
            let hk = self.skipped[i].hk;
            if tried.iter().any(|t| bool::from(t.ct_eq(&hk))) {
                continue;
            }
            tried.push(hk);
            if let Some(header) = open_header(&hk) {
                let found = self.skipped.iter().position(|s| bool::from(s.hk.ct_eq(&hk)) && s.n == header.n);
                if let Some(pos) = found {
                    let entry = self.skipped.remove(pos);
                    tried.zeroize();
                    return open_body(&entry.mk, &body_ad, body);
                }
            }
        }
        tried.zeroize();

        // DecryptHeader: the current receiving header key, then the next one (a new ratchet key).
        let (header, ratchet) = if let Some(h) = self.hkr.as_ref().and_then(&open_header) {
            (h, false)
        } else if let Some(h) = open_header(&self.nhkr) {
            (h, true)
        } else {
            return Err(DecryptError::Invalid);
        };

        let mut budget = MAX_STORED_SKIPPED;
        if ratchet {
            self.skip(header.pn, &mut budget)?;
            self.ratchet_receive(&header)?;
        } else if header.n < self.nr {
            // Already received (its key is neither current nor stored as skipped): a replay.
            return Err(DecryptError::Invalid);
        }
        self.skip(header.n, &mut budget)?;
        let ckr = self.ckr.as_ref().ok_or(DecryptError::Invalid)?;
        let (next_ck, mk) = kdf::chain(ckr);
        self.ckr = Some(*next_ck);
        self.nr = self.nr.checked_add(1).ok_or(DecryptError::Invalid)?;
        let plaintext = open_body(&mk, &body_ad, body)?;
        if self.skipped.len() > MAX_STORED_SKIPPED {
            let excess = self.skipped.len() - MAX_STORED_SKIPPED;
            self.skipped.drain(..excess);
        }
        Ok(plaintext)
    }

    /// `SkipMessageKeysHE`: stores the keys of messages `nr..until` of the current receiving chain.
    fn skip(&mut self, until: u32, budget: &mut usize) -> Result<(), DecryptError> {
        if until <= self.nr {
            return Ok(());
        }
        let gap = until - self.nr;
        if gap > MAX_SKIP || gap as usize > *budget {
            return Err(DecryptError::TooManySkipped);
        }
        let (Some(mut ck), Some(hk)) = (self.ckr, self.hkr) else {
            return Ok(());
        };
        *budget -= gap as usize;
        while self.nr < until {
            let (next_ck, mk) = kdf::chain(&ck);
            self.skipped.push(SkippedKey { hk, n: self.nr, mk: *mk });
            ck = *next_ck;
            self.nr += 1;
        }
        self.ckr = Some(ck);
        ck.zeroize();
        Ok(())
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
        // The count fits: the store never exceeds MAX_STORED_SKIPPED (< 2^16) entries.
        out.extend_from_slice(&(self.skipped.len() as u16).to_be_bytes());
        for s in &self.skipped {
            out.extend_from_slice(&s.hk);
            out.extend_from_slice(&s.n.to_be_bytes());
            out.extend_from_slice(&s.mk);
        }
    }

    fn read(r: &mut Reader<'_>) -> Option<Self> {
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
            skipped: Vec::new(),
        };
        state.ns = r.u32()?;
        state.nr = r.u32()?;
        state.pn = r.u32()?;
        let count = usize::from(r.u16()?);
        if count > MAX_STORED_SKIPPED {
            return None;
        }
        for _ in 0..count {
            state.skipped.push(SkippedKey { hk: r.array()?, n: r.u32()?, mk: r.array()? });
        }
        Some(state)
    }
}

fn open_body(mk: &[u8; 32], body_ad: &[u8], body: &[u8]) -> Result<Vec<u8>, DecryptError> {
    let (key, nonce) = kdf::message_keys(mk);
    let padded = aead::open(&key, &nonce, body_ad, body).ok_or(DecryptError::Invalid)?;
    envelope::unpad(padded).ok_or(DecryptError::Invalid)
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
    /// forgeries and corrupted blobs cannot damage it.
    pub fn decrypt(&mut self, envelope: &[u8]) -> Result<Vec<u8>, DecryptError> {
        let ad = self.ad();
        let mut next = self.state.clone();
        let plaintext = next.decrypt(&ad, envelope)?;
        self.state = next;
        Ok(plaintext)
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
        if r.u8().ok_or(SessionStateError::Corrupt)? != SESSION_VERSION {
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
        let state = State::read(&mut r).ok_or(SessionStateError::Corrupt)?;
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
