//! Short invite links: a link that names the inviter's relay and carries one 32-byte link key, from
//! which the joiner fetches the full invite (docs/protocol.md §3.1).
//!
//! The construction follows SimpleX's short links (2025): the link key is the hash of the data it
//! stands for, so it is at the same time the commitment that the fetched invite is the one the inviter
//! made; the relay's lookup id and the key that encrypts the invite at rest are derived from it with
//! HKDF. The relay learns the id only. A relay that changes the stored bundle fails the AEAD check (it
//! lacks the key) and, if it somehow knew the key, the hash check; a relay that withholds it is
//! noticed by the application's timeout.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use doorless_frames::{OriginError, RelayOrigin};
use rand_core::CryptoRng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::aead::{self, NONCE_LEN, TAG_LEN};
use super::invite::{Invite, InviteError, MAX_INVITE_LEN, encoded_len};
use super::kdf::{short_invite_delete_secret, short_invite_keys};

/// The version that starts a short link's fragment (`1/…`).
pub const SHORT_LINK_VERSION: &str = "1";
/// Length of a sealed invite bundle: nonce, the invite padded to [`MAX_INVITE_LEN`], tag (1,543 bytes).
pub const SEALED_INVITE_LEN: usize = NONCE_LEN + MAX_INVITE_LEN + TAG_LEN;
/// Length of a bundle id, the name the relay stores a sealed invite under.
pub const BUNDLE_ID_LEN: usize = 16;

/// Why a short link or the invite bundle fetched for it was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ShortLinkError {
    /// Not of the form `1/KEY/RELAY`, or the key is not 43 characters of base64url.
    #[error("the invite link is damaged")]
    Corrupt,
    /// The link starts with a version this build does not know.
    #[error("the invite link is from a newer version of Doorless")]
    UnsupportedVersion,
    /// The relay part of the link is not a relay address.
    #[error("the invite link names an invalid relay")]
    Relay(#[from] OriginError),
    /// The bundle the relay returned is not the invite the link stands for: changed, truncated, or
    /// another invite's.
    #[error("the relay returned an invite that does not match the link")]
    Tampered,
    /// The invite is longer than a sealed bundle holds ([`MAX_INVITE_LEN`]): a version 2 invite
    /// whose name and relay origin are both long. Make a version 1 invite for a short link.
    #[error("the invite is too long for a short link")]
    TooLong,
    /// The bundle matches the link but the invite inside is refused (expired, for instance).
    #[error(transparent)]
    Invite(#[from] InviteError),
}

/// A parsed short link: the inviter's relay and the link key, `SHA-256(invite encoding)`.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct ShortLink {
    #[zeroize(skip)]
    relay: RelayOrigin,
    link_key: [u8; 32],
}

impl ShortLink {
    /// The short link of `invite`, whose sealed bundle is stored on `relay`.
    pub fn for_invite(invite: &Invite, relay: RelayOrigin) -> Self {
        Self { relay, link_key: invite.hash() }
    }

    /// The short link of the invite whose hash is `link_key` (an inviter knows it from the
    /// invite's stored secret), on `relay`.
    pub fn from_link_key(link_key: [u8; 32], relay: RelayOrigin) -> Self {
        Self { relay, link_key }
    }

    /// The secret whose SHA-256 the relay stores with the bundle, and which deletes it
    /// (docs/protocol.md §3.1): only whoever has the link can delete the bundle.
    pub fn delete_secret(&self) -> Zeroizing<[u8; 32]> {
        short_invite_delete_secret(&self.link_key)
    }

    /// SHA-256 of [`ShortLink::delete_secret`], as the relay stores it.
    pub fn delete_hash(&self) -> [u8; 32] {
        Sha256::digest(*self.delete_secret()).into()
    }

    /// Parses a link fragment `1/KEY/RELAY`: `KEY` is the link key in base64url without padding (43
    /// characters), `RELAY` the relay's origin, written without `https://` when that is its scheme.
    /// Whitespace around the whole fragment is ignored.
    pub fn parse(fragment: &str) -> Result<Self, ShortLinkError> {
        let (version, rest) = fragment.trim().split_once('/').ok_or(ShortLinkError::Corrupt)?;
        if version != SHORT_LINK_VERSION {
            return Err(if !version.is_empty() && version.bytes().all(|b| b.is_ascii_digit()) {
                ShortLinkError::UnsupportedVersion
            } else {
                ShortLinkError::Corrupt
            });
        }
        let (key, relay) = rest.split_once('/').ok_or(ShortLinkError::Corrupt)?;
        let key =
            Zeroizing::new(URL_SAFE_NO_PAD.decode(key.as_bytes()).map_err(|_| ShortLinkError::Corrupt)?);
        let link_key: [u8; 32] = key.as_slice().try_into().map_err(|_| ShortLinkError::Corrupt)?;
        let relay = if relay.contains("://") {
            RelayOrigin::parse(relay)?
        } else {
            RelayOrigin::parse(&format!("https://{relay}"))?
        };
        Ok(Self { relay, link_key })
    }

    /// The fragment [`ShortLink::parse`] reads. An `https` relay is written without its scheme.
    pub fn to_fragment(&self) -> String {
        let relay = self.relay.as_str();
        let relay = relay.strip_prefix("https://").unwrap_or(relay);
        format!("{SHORT_LINK_VERSION}/{}/{relay}", URL_SAFE_NO_PAD.encode(self.link_key))
    }

    /// Whether a fragment is meant as a short link (contains `/`), not a full invite (base64url only).
    pub fn looks_like(fragment: &str) -> bool {
        fragment.contains('/')
    }

    /// The relay that holds the sealed invite.
    pub fn relay(&self) -> &RelayOrigin {
        &self.relay
    }

    /// The id under which the relay stores the sealed invite.
    pub fn bundle_id(&self) -> [u8; BUNDLE_ID_LEN] {
        short_invite_keys(&self.link_key).0
    }

    /// Seals `invite` for the relay: `nonce ‖ ChaCha20-Poly1305(bundle key, nonce, ad = bundle id,
    /// invite ‖ zero padding to MAX_INVITE_LEN)`, always [`SEALED_INVITE_LEN`] bytes. Returns
    /// `Tampered` if `invite` is not the invite this link stands for.
    pub fn seal(
        &self,
        invite: &Invite,
        rng: &mut (impl CryptoRng + ?Sized),
    ) -> Result<Vec<u8>, ShortLinkError> {
        if !bool::from(invite.hash().ct_eq(&self.link_key)) {
            return Err(ShortLinkError::Tampered);
        }
        let (id, key) = short_invite_keys(&self.link_key);
        let mut padded = Zeroizing::new(invite.to_bytes());
        if padded.len() > MAX_INVITE_LEN {
            return Err(ShortLinkError::TooLong);
        }
        padded.resize(MAX_INVITE_LEN, 0);
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let mut sealed = Vec::with_capacity(SEALED_INVITE_LEN);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&aead::seal(&key, &nonce, &id, &padded));
        Ok(sealed)
    }

    /// Opens a sealed invite fetched from the relay: decrypts it, checks that the padding is zero and
    /// that the invite hashes to the link key (constant time), then decodes it as
    /// [`Invite::from_bytes`] does (signatures, expiry against `now`).
    pub fn open(&self, sealed: &[u8], now: u64) -> Result<Invite, ShortLinkError> {
        if sealed.len() != SEALED_INVITE_LEN {
            return Err(ShortLinkError::Tampered);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| ShortLinkError::Tampered)?;
        let (id, key) = short_invite_keys(&self.link_key);
        let padded =
            Zeroizing::new(aead::open(&key, &nonce, &id, ciphertext).ok_or(ShortLinkError::Tampered)?);
        let len = encoded_len(&padded).ok_or(ShortLinkError::Tampered)?;
        let (encoded, padding) = padded.split_at(len);
        let hash: [u8; 32] = Sha256::digest(encoded).into();
        if padding.iter().any(|&b| b != 0) || !bool::from(hash.ct_eq(&self.link_key)) {
            return Err(ShortLinkError::Tampered);
        }
        Ok(Invite::from_bytes(encoded, now)?)
    }
}

impl fmt::Debug for ShortLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShortLink").field("relay", &self.relay).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::core::{Identity, create_invite};

    const NOW: u64 = 1_700_000_000;

    fn invite(name: &str, rng: &mut ChaCha20Rng) -> Invite {
        let bob = Identity::generate(rng);
        create_invite(&bob, [1; 32], name, NOW, 3600, rng).0
    }

    fn relay(url: &str) -> RelayOrigin {
        RelayOrigin::parse(url).expect("relay origin")
    }

    #[test]
    fn a_sealed_invite_opens_to_the_same_invite_whatever_its_name_length() {
        let mut rng = ChaCha20Rng::from_seed([3; 32]);
        for name in ["", "Bob", &"é".repeat(32)] {
            let invite = invite(name, &mut rng);
            let link = ShortLink::for_invite(&invite, relay("https://relay.example"));
            let sealed = link.seal(&invite, &mut rng).expect("seal");
            assert_eq!(sealed.len(), SEALED_INVITE_LEN, "every bundle has one size, whatever the name");
            let parsed = ShortLink::parse(&link.to_fragment()).expect("parse");
            assert_eq!(parsed, link);
            assert_eq!(parsed.open(&sealed, NOW).expect("open"), invite);
        }
    }

    #[test]
    fn the_fragment_is_short_and_names_the_relay() {
        let mut rng = ChaCha20Rng::from_seed([4; 32]);
        let invite = invite("Bob", &mut rng);
        let https = ShortLink::for_invite(&invite, relay("wss://Relay.Example:443/ws"));
        let fragment = https.to_fragment();
        assert!(fragment.starts_with("1/") && fragment.ends_with("/relay.example"), "{fragment}");
        assert_eq!(fragment.len(), 2 + 43 + 1 + "relay.example".len());
        let loopback = ShortLink::for_invite(&invite, relay("ws://127.0.0.1:8080/ws"));
        let fragment = loopback.to_fragment();
        assert!(fragment.ends_with("/http://127.0.0.1:8080"), "{fragment}");
        assert_eq!(ShortLink::parse(&fragment).expect("parse").relay(), &relay("http://127.0.0.1:8080"));
        assert!(ShortLink::looks_like(&fragment) && !ShortLink::looks_like(&invite.to_fragment()));
    }

    #[test]
    fn damaged_links_are_refused() {
        let mut rng = ChaCha20Rng::from_seed([5; 32]);
        let fragment =
            ShortLink::for_invite(&invite("Bob", &mut rng), relay("https://r.example")).to_fragment();
        let key = &fragment[2..45];
        for (bad, expected) in [
            (String::new(), ShortLinkError::Corrupt),
            (format!("2/{key}/r.example"), ShortLinkError::UnsupportedVersion),
            (format!("x/{key}/r.example"), ShortLinkError::Corrupt),
            (format!("1/{}/r.example", &key[1..]), ShortLinkError::Corrupt),
            (format!("1/{key}A/r.example"), ShortLinkError::Corrupt),
            (format!("1/{key}=/r.example"), ShortLinkError::Corrupt),
            (format!("1/{key}"), ShortLinkError::Corrupt),
            (format!("1/{key}/"), ShortLinkError::Relay(OriginError::Host)),
            (format!("1/{key}/r.example:0"), ShortLinkError::Relay(OriginError::Port)),
            (format!("1/{key}/ftp://r.example"), ShortLinkError::Relay(OriginError::Scheme)),
        ] {
            assert_eq!(ShortLink::parse(&bad), Err(expected), "{bad:?}");
        }
    }

    #[test]
    fn a_changed_truncated_or_foreign_bundle_is_tampered() {
        let mut rng = ChaCha20Rng::from_seed([6; 32]);
        let invite_a = invite("Bob", &mut rng);
        let invite_b = invite("Bob", &mut rng);
        let link = ShortLink::for_invite(&invite_a, relay("https://r.example"));
        let sealed = link.seal(&invite_a, &mut rng).expect("seal");
        for i in [0, NONCE_LEN, SEALED_INVITE_LEN / 2, SEALED_INVITE_LEN - 1] {
            let mut changed = sealed.clone();
            changed[i] ^= 1;
            assert_eq!(link.open(&changed, NOW), Err(ShortLinkError::Tampered), "byte {i}");
        }
        assert_eq!(link.open(&sealed[..SEALED_INVITE_LEN - 1], NOW), Err(ShortLinkError::Tampered));
        assert_eq!(link.open(&[], NOW), Err(ShortLinkError::Tampered));
        // Another invite, sealed correctly under its own link: refused for this one.
        let other = ShortLink::for_invite(&invite_b, relay("https://r.example"));
        let foreign = other.seal(&invite_b, &mut rng).expect("seal");
        assert_eq!(link.open(&foreign, NOW), Err(ShortLinkError::Tampered));
        // Someone who knows the link key seals another invite under it: the hash check refuses it.
        let (id, key) = short_invite_keys(&link.link_key);
        let mut padded = invite_b.to_bytes();
        padded.resize(MAX_INVITE_LEN, 0);
        let forged = [&[0u8; NONCE_LEN][..], &aead::seal(&key, &[0; NONCE_LEN], &id, &padded)].concat();
        assert_eq!(link.open(&forged, NOW), Err(ShortLinkError::Tampered));
        // The right invite with non-zero padding is refused too.
        let mut padded = invite_a.to_bytes();
        padded.resize(MAX_INVITE_LEN, 1);
        let padded_wrong = [&[0u8; NONCE_LEN][..], &aead::seal(&key, &[0; NONCE_LEN], &id, &padded)].concat();
        assert_eq!(link.open(&padded_wrong, NOW), Err(ShortLinkError::Tampered));
        assert_eq!(link.seal(&invite_b, &mut rng), Err(ShortLinkError::Tampered));
    }

    #[test]
    fn an_expired_invite_behind_a_good_link_says_expired() {
        let mut rng = ChaCha20Rng::from_seed([7; 32]);
        let invite = invite("Bob", &mut rng);
        let link = ShortLink::for_invite(&invite, relay("https://r.example"));
        let sealed = link.seal(&invite, &mut rng).expect("seal");
        assert_eq!(link.open(&sealed, NOW + 3600), Err(ShortLinkError::Invite(InviteError::Expired)));
    }

    #[test]
    fn debug_does_not_print_the_link_key() {
        let mut rng = ChaCha20Rng::from_seed([8; 32]);
        let link = ShortLink::for_invite(&invite("Bob", &mut rng), relay("https://r.example"));
        let key = URL_SAFE_NO_PAD.encode(link.link_key);
        assert!(!format!("{link:?}").contains(&key));
        assert!(!format!("{link:?}").contains(&format!("{:?}", link.link_key)));
    }
}
