//! The Doorless relay frame format, version 1.
//!
//! One definition of every frame that crosses the relay's WebSocket, shared by the relay and the
//! client. The full, implementable description is `docs/relay-protocol.md`; this crate is its only
//! implementation in the project.
//!
//! ```
//! use doorless_frames::{Frame, MailboxId};
//!
//! let frame = Frame::Deposit { request: 7, mailbox: MailboxId([1; 32]), payload: b"opaque".to_vec() };
//! let bytes = frame.encode();
//! assert_eq!(Frame::decode(&bytes).unwrap(), frame);
//! ```
//!
//! The crate deliberately knows no encryption: the relay links it and must never be able to decrypt.
//! It does know Ed25519 signatures, because a mailbox's owner proves ownership by signing the relay's
//! challenge, bound to the relay's origin ([`RelayOrigin`]).
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::panic, clippy::expect_used))]

mod codec;
mod mailbox;

pub use codec::{
    BUNDLE_ID_LEN, ErrorCode, Frame, FrameError, FrameKind, MAX_BUNDLE_LEN, MailboxProof, PROTOCOL_VERSION,
};
pub use mailbox::{
    CHALLENGE_LEN, MAX_ORIGIN_LEN, MailboxId, OriginError, ProofError, RelayOrigin, SIGNATURE_LEN,
    subscribe_proof_message, verify_subscribe_proof,
};

/// The default maximum size of one frame, in bytes, header included (256 KiB).
pub const DEFAULT_MAX_FRAME_LEN: usize = 256 * 1024;
