//! Mailbox ids, relay origins, and the proof of ownership a subscriber gives.

use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};

/// Length of the relay's subscribe challenge, in bytes.
pub const CHALLENGE_LEN: usize = 32;
/// Length of an Ed25519 signature, in bytes.
pub const SIGNATURE_LEN: usize = 64;
/// Longest relay origin, in bytes (its length is one byte on the wire and in the proof).
pub const MAX_ORIGIN_LEN: usize = 255;

/// Domain separation for deriving a mailbox id from its public key.
const MAILBOX_ID_DOMAIN: &[u8] = b"doorless/relay/mailbox-id/v1";
/// Domain separation for the subscribe proof. Version 2 binds the relay's origin; a version 1 proof
/// (domain, challenge, key) never verifies as a version 2 one.
const SUBSCRIBE_DOMAIN: &[u8] = b"doorless/relay/subscribe/v2";

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

/// Why a string is not a relay origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OriginError {
    /// The scheme is not `http`, `https`, `ws` or `wss`.
    #[error("a relay origin starts with http://, https://, ws:// or wss://")]
    Scheme,
    /// The host is missing, carries user information, or has characters no host name has.
    #[error("a relay origin needs a plain host name or IP address")]
    Host,
    /// The port is not a number from 1 to 65535.
    #[error("a relay origin's port is a number from 1 to 65535")]
    Port,
    /// The origin is longer than [`MAX_ORIGIN_LEN`] bytes.
    #[error("the relay origin is too long")]
    TooLong,
}

/// The origin of a relay, normalised: `http://host[:port]` or `https://host[:port]`, in lower case,
/// without a default port (80, 443), path, query or fragment. This is what a browser's
/// `location.origin` shows for a page the relay serves, and what a subscribe proof is bound to.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RelayOrigin(String);

impl RelayOrigin {
    /// Normalises a relay URL or origin. `ws://` counts as `http://` and `wss://` as `https://`
    /// (the WebSocket URL `wss://relay.example/ws` is on the origin `https://relay.example`);
    /// anything after the host and port (path, query, fragment) is dropped.
    pub fn parse(url: &str) -> Result<Self, OriginError> {
        let (scheme, rest) = url.trim().split_once("://").ok_or(OriginError::Scheme)?;
        let (scheme, default_port) = match scheme.to_ascii_lowercase().as_str() {
            "http" | "ws" => ("http", 80),
            "https" | "wss" => ("https", 443),
            _ => return Err(OriginError::Scheme),
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let (host, port) = match authority.strip_prefix('[') {
            // An IPv6 literal: `[` address `]`, then perhaps `:port`.
            Some(literal) => {
                let (inside, after) = literal.split_once(']').ok_or(OriginError::Host)?;
                if inside.is_empty() || !inside.chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
                {
                    return Err(OriginError::Host);
                }
                let port = match after {
                    "" => None,
                    _ => Some(after.strip_prefix(':').ok_or(OriginError::Host)?),
                };
                (format!("[{inside}]"), port)
            }
            None => {
                let (host, port) = match authority.split_once(':') {
                    Some((host, port)) => (host, Some(port)),
                    None => (authority, None),
                };
                let valid = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
                if host.is_empty() || !host.chars().all(valid) {
                    return Err(OriginError::Host);
                }
                (host.to_owned(), port)
            }
        };
        let port = match port {
            None => None,
            Some(digits) => {
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(OriginError::Port);
                }
                match digits.parse::<u16>() {
                    Ok(0) | Err(_) => return Err(OriginError::Port),
                    Ok(port) if port == default_port => None,
                    Ok(port) => Some(port),
                }
            }
        };
        let mut origin = format!("{scheme}://{}", host.to_ascii_lowercase());
        if let Some(port) = port {
            origin.push_str(&format!(":{port}"));
        }
        if origin.len() > MAX_ORIGIN_LEN {
            return Err(OriginError::TooLong);
        }
        Ok(Self(origin))
    }

    /// The normalised origin.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for RelayOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RelayOrigin({})", self.0)
    }
}

impl std::fmt::Display for RelayOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The exact bytes a mailbox owner signs to subscribe: domain, the relay's origin (length byte,
/// then its ASCII bytes), challenge, public key.
pub fn subscribe_proof_message(
    origin: &RelayOrigin,
    challenge: &[u8; CHALLENGE_LEN],
    public_key: &[u8; 32],
) -> Vec<u8> {
    let origin = origin.as_str().as_bytes();
    let mut message = Vec::with_capacity(SUBSCRIBE_DOMAIN.len() + 1 + origin.len() + CHALLENGE_LEN + 32);
    message.extend_from_slice(SUBSCRIBE_DOMAIN);
    // At most MAX_ORIGIN_LEN (255) bytes, as `RelayOrigin::parse` guarantees.
    message.push(u8::try_from(origin.len()).unwrap_or(u8::MAX));
    message.extend_from_slice(origin);
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
    /// The signature does not verify under the key for this relay and challenge.
    #[error("invalid subscribe signature")]
    BadSignature,
}

/// Checks a subscribe proof made for the relay at `origin` and returns the mailbox it opens.
///
/// Uses `verify_strict`, which rejects small-order keys and non-canonical signatures, so a proof
/// cannot be malleated into a second valid one.
pub fn verify_subscribe_proof(
    origin: &RelayOrigin,
    challenge: &[u8; CHALLENGE_LEN],
    public_key: &[u8; 32],
    signature: &[u8; SIGNATURE_LEN],
) -> Result<MailboxId, ProofError> {
    let key = VerifyingKey::from_bytes(public_key).map_err(|_| ProofError::BadKey)?;
    let signature = Signature::from_bytes(signature);
    key.verify_strict(&subscribe_proof_message(origin, challenge, public_key), &signature)
        .map_err(|_| ProofError::BadSignature)?;
    Ok(MailboxId::from_public_key(public_key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    fn origin(url: &str) -> RelayOrigin {
        RelayOrigin::parse(url).unwrap()
    }

    #[test]
    fn proof_verifies_only_for_its_relay_challenge_and_key() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let public = key.verifying_key().to_bytes();
        let challenge = [1; CHALLENGE_LEN];
        let relay_a = origin("https://relay-a.example");
        let signature = key.sign(&subscribe_proof_message(&relay_a, &challenge, &public)).to_bytes();
        assert_eq!(
            verify_subscribe_proof(&relay_a, &challenge, &public, &signature),
            Ok(MailboxId::from_public_key(&public))
        );
        // Relay B, given the same challenge, cannot use the proof made for relay A.
        let relay_b = origin("https://relay-b.example");
        assert_eq!(
            verify_subscribe_proof(&relay_b, &challenge, &public, &signature),
            Err(ProofError::BadSignature)
        );
        assert_eq!(
            verify_subscribe_proof(&relay_a, &[2; CHALLENGE_LEN], &public, &signature),
            Err(ProofError::BadSignature)
        );
        let other = SigningKey::from_bytes(&[8; 32]).verifying_key().to_bytes();
        assert_eq!(
            verify_subscribe_proof(&relay_a, &challenge, &other, &signature),
            Err(ProofError::BadSignature)
        );
        let mut flipped = signature;
        flipped[10] ^= 1;
        assert!(verify_subscribe_proof(&relay_a, &challenge, &public, &flipped).is_err());
    }

    #[test]
    fn known_proof_message() {
        let message = subscribe_proof_message(&origin("http://127.0.0.1:8080"), &[0xcc; 32], &[0xdd; 32]);
        let mut expected = b"doorless/relay/subscribe/v2".to_vec();
        expected.push(21);
        expected.extend_from_slice(b"http://127.0.0.1:8080");
        expected.extend_from_slice(&[0xcc; 32]);
        expected.extend_from_slice(&[0xdd; 32]);
        assert_eq!(message, expected);
    }

    #[test]
    fn origins_are_normalised() {
        let cases = [
            ("https://relay.example", "https://relay.example"),
            ("HTTPS://Relay.Example:443/", "https://relay.example"),
            ("wss://relay.example/ws", "https://relay.example"),
            ("ws://127.0.0.1:8080/ws", "http://127.0.0.1:8080"),
            ("http://localhost:80", "http://localhost"),
            ("http://relay.example:8443?x#y", "http://relay.example:8443"),
            ("https://[::1]:9000/ws", "https://[::1]:9000"),
            ("http://[2001:DB8::1]", "http://[2001:db8::1]"),
            (" https://relay.example ", "https://relay.example"),
        ];
        for (input, expected) in cases {
            assert_eq!(RelayOrigin::parse(input).map(|o| o.0), Ok(expected.to_owned()), "{input}");
        }
        let refused = [
            ("relay.example", OriginError::Scheme),
            ("ftp://relay.example", OriginError::Scheme),
            ("https://", OriginError::Host),
            ("https://user@relay.example", OriginError::Host),
            ("https://relay example", OriginError::Host),
            ("https://[::1", OriginError::Host),
            ("https://[]:80", OriginError::Host),
            ("https://relay.example:", OriginError::Port),
            ("https://relay.example:0", OriginError::Port),
            ("https://relay.example:65536", OriginError::Port),
            ("https://relay.example:+80", OriginError::Port),
            ("https://a:1:2", OriginError::Port),
        ];
        for (input, error) in refused {
            assert_eq!(RelayOrigin::parse(input), Err(error), "{input}");
        }
        let long = format!("https://{}.example", "a".repeat(250));
        assert_eq!(RelayOrigin::parse(&long), Err(OriginError::TooLong));
    }

    #[test]
    fn mailbox_id_debug_hides_the_id() {
        assert_eq!(format!("{:?}", MailboxId([0xab; 32])), "MailboxId(..)");
    }
}
