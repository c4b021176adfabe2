//! The Doorless protocol core: identities, invites, the PQXDH-style handshake, the Double Ratchet with
//! header encryption, padding, envelopes, typed contents and safety numbers.
//!
//! The core is sans-IO: randomness and time are parameters, and every function maps bytes to bytes.
//! The full specification is `docs/protocol.md`.
//!
//! ```
//! use client_wasm::core::{accept_invite, create_invite, envelope_kind, EnvelopeKind, Identity};
//! use rand_chacha::ChaCha20Rng;
//! use rand_core::SeedableRng;
//!
//! let mut rng = ChaCha20Rng::from_seed([7; 32]);
//! let now = 1_700_000_000;
//! let alice = Identity::generate(&mut rng);
//! let bob = Identity::generate(&mut rng);
//!
//! // Bob invites; the fragment travels out of band (link or QR code).
//! let (invite, secret) = create_invite(&bob, [1; 32], "Bob", now, 3600, &mut rng);
//! let invite = client_wasm::core::Invite::from_fragment(&invite.to_fragment(), now)?;
//!
//! // Alice accepts and sends her first message inside the initial message.
//! let (mut alice_session, initial) = accept_invite(&alice, &invite, b"hi Bob", now, &mut rng)?;
//! assert_eq!(envelope_kind(&initial)?, EnvelopeKind::Initial);
//! let (mut bob_session, first) = secret.respond(&bob, &initial, now)?;
//! assert_eq!(first, b"hi Bob");
//!
//! let reply = bob_session.encrypt(b"hello Alice", &mut rng)?;
//! assert_eq!(alice_session.decrypt(&reply)?.plaintext, b"hello Alice");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod aead;
pub mod attachment;
pub mod attachment_ref;
mod codec;
pub mod content;
mod envelope;
mod handshake;
mod identity;
mod invite;
pub mod kdf;
mod safety;
mod session;
mod short_invite;
mod skipped;

pub use content::{Content, ContentError, MessageId, Payload};
pub use envelope::{
    ENCRYPTED_HEADER_LEN, ENVELOPE_VERSION, EnvelopeError, EnvelopeKind, HEADER_LEN, Header,
    INITIAL_ENVELOPE_SIZES, KIND_INITIAL, KIND_MESSAGE, MAX_PLAINTEXT_LEN, MESSAGE_ENVELOPE_SIZES,
    OLDEST_ENVELOPE_VERSION, PADDING_BUCKETS, envelope_kind, pad, unpad,
};
pub use handshake::{HandshakeError, accept_invite};
pub use identity::{IDENTITY_LEN, IDENTITY_PUBLIC_LEN, Identity, IdentityError, IdentityPublic};
pub use invite::{
    INVITE_RESPONSE_GRACE_SECS, INVITE_VERSION, INVITE_VERSION_RELAY, Invite, InviteError, InviteSecret,
    MAX_INVITE_LEN, MAX_INVITE_V2_LEN, MAX_INVITER_NAME_LEN, create_invite, create_invite_on,
};
pub use safety::{SafetyNumber, safety_number};
pub use session::{DecryptError, Decrypted, Role, SESSION_VERSION, Session, SessionError, SessionStateError};
pub use short_invite::{BUNDLE_ID_LEN, SEALED_INVITE_LEN, SHORT_LINK_VERSION, ShortLink, ShortLinkError};
pub use skipped::{MAX_JUMP, MAX_RECEIVING_CHAINS, MAX_SKIP, MAX_STORED_SKIPPED};
