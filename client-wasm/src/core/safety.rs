//! Safety numbers: a 60-digit number and a QR payload derived from two identities, identical on both
//! sides, in the manner of Signal's numeric fingerprints.

use std::fmt;

use sha2::{Digest, Sha512};
use subtle::ConstantTimeEq;

use super::identity::IdentityPublic;

/// Version of the safety number derivation (first byte of the QR payload, and hashed in).
pub const SAFETY_NUMBER_VERSION: u8 = 1;
/// SHA-512 iterations per identity (as Signal's numeric fingerprint), to make grinding for a
/// colliding identity expensive.
pub const SAFETY_NUMBER_ITERATIONS: usize = 5200;
/// Length of the QR payload: version, then both 32-byte fingerprints in sorted order.
pub const QR_PAYLOAD_LEN: usize = 1 + 32 + 32;

/// The safety number of a pair of identities.
#[derive(Clone, PartialEq, Eq)]
pub struct SafetyNumber {
    /// The two per-identity 30-digit halves, sorted.
    digits: String,
    qr: [u8; QR_PAYLOAD_LEN],
}

/// The iterated hash of one identity: `h0 = SHA-512(version(2, big-endian) || ed25519 || x25519)`,
/// `h(i+1) = SHA-512(h(i) || ed25519 || x25519)`, 5200 rounds.
fn iterated(id: &IdentityPublic) -> [u8; 64] {
    let mut hash: [u8; 64] = {
        let mut h = Sha512::new();
        h.update(u16::from(SAFETY_NUMBER_VERSION).to_be_bytes());
        h.update(id.ed25519());
        h.update(id.x25519());
        h.finalize().into()
    };
    for _ in 1..SAFETY_NUMBER_ITERATIONS {
        let mut h = Sha512::new();
        h.update(hash);
        h.update(id.ed25519());
        h.update(id.x25519());
        hash = h.finalize().into();
    }
    hash
}

/// 30 digits from the first 30 bytes: six 5-byte big-endian chunks, each mod 100000.
fn thirty_digits(hash: &[u8; 64]) -> String {
    let mut out = String::with_capacity(30);
    for chunk in hash[..30].chunks(5) {
        let value = chunk.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        out.push_str(&format!("{:05}", value % 100_000));
    }
    out
}

/// The safety number of `a` and `b`; `safety_number(a, b) == safety_number(b, a)`.
pub fn safety_number(a: &IdentityPublic, b: &IdentityPublic) -> SafetyNumber {
    let (ha, hb) = (iterated(a), iterated(b));
    let (da, db) = (thirty_digits(&ha), thirty_digits(&hb));
    let (first, second) = if ha[..32] <= hb[..32] { ((da, ha), (db, hb)) } else { ((db, hb), (da, ha)) };
    let mut qr = [0u8; QR_PAYLOAD_LEN];
    qr[0] = SAFETY_NUMBER_VERSION;
    qr[1..33].copy_from_slice(&first.1[..32]);
    qr[33..].copy_from_slice(&second.1[..32]);
    SafetyNumber { digits: format!("{}{}", first.0, second.0), qr }
}

impl SafetyNumber {
    /// The 60 digits in 12 groups of 5, separated by spaces.
    pub fn digits(&self) -> String {
        let groups: Vec<&str> =
            (0..12).map(|i| self.digits.get(i * 5..i * 5 + 5).unwrap_or_default()).collect();
        groups.join(" ")
    }

    /// The 60 digits without separators.
    pub fn raw_digits(&self) -> &str {
        &self.digits
    }

    /// The bytes to put in a QR code: `version(1) || fingerprint(32) || fingerprint(32)`, sorted.
    pub fn qr_payload(&self) -> Vec<u8> {
        self.qr.to_vec()
    }

    /// Whether a scanned QR payload matches, compared in constant time.
    pub fn matches_scanned(&self, payload: &[u8]) -> bool {
        payload.len() == QR_PAYLOAD_LEN && bool::from(self.qr.as_slice().ct_eq(payload))
    }
}

impl fmt::Debug for SafetyNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SafetyNumber({})", self.digits())
    }
}
