//! Encoding and decoding of relay frames.
//!
//! Layout of every frame: `version: u8 = 1 | kind: u8 | body`, integers big-endian. Decoding is
//! total: any byte string yields either a frame or a [`FrameError`], never a panic.

use crate::mailbox::{CHALLENGE_LEN, MAX_ORIGIN_LEN, MailboxId, SIGNATURE_LEN};

/// Length of a bundle id: the name a relay stores a sealed invite bundle under.
pub const BUNDLE_ID_LEN: usize = 16;
/// Largest bundle a relay stores (a sealed invite is 1,543 bytes; docs/protocol.md §3.1).
pub const MAX_BUNDLE_LEN: usize = 2048;

/// The frame format version this crate speaks.
pub const PROTOCOL_VERSION: u8 = 1;

/// The kind byte of each frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    /// Client to relay: opens the conversation.
    Hello = 0x00,
    /// Relay to client: the challenge to sign and the relay's limits.
    Challenge = 0x01,
    /// Client to relay: subscribe to a mailbox with a proof of ownership.
    Subscribe = 0x02,
    /// Relay to client: the subscription is active.
    Subscribed = 0x03,
    /// Client to relay: store a blob in a mailbox.
    Deposit = 0x04,
    /// Relay to client: a deposit is durable.
    Deposited = 0x05,
    /// Relay to client: a stored blob for a subscribed mailbox.
    Deliver = 0x06,
    /// Client to relay: delete every blob of a mailbox up to a sequence number.
    Ack = 0x07,
    /// Relay to client: a request failed, or the connection is about to close.
    Error = 0x08,
    /// Either way: keep-alive request.
    Ping = 0x09,
    /// Either way: keep-alive answer.
    Pong = 0x0a,
    /// Client to relay: subscribe to many mailboxes at once, each with its proof.
    SubscribeBatch = 0x0b,
    /// Relay to client: the outcome of each subscription of a `SubscribeBatch`.
    SubscribedBatch = 0x0c,
    /// Client to relay: store an invite bundle under an id.
    PutBundle = 0x0d,
    /// Relay to client: a bundle is durable.
    BundleStored = 0x0e,
    /// Client to relay: fetch the bundle stored under an id.
    GetBundle = 0x0f,
    /// Relay to client: the bundle asked for.
    Bundle = 0x10,
    /// Client to relay: delete a bundle, proving the right to.
    DeleteBundle = 0x11,
    /// Relay to client: the bundle is gone.
    BundleDeleted = 0x12,
}

impl FrameKind {
    fn from_byte(byte: u8) -> Option<Self> {
        Some(match byte {
            0x00 => Self::Hello,
            0x01 => Self::Challenge,
            0x02 => Self::Subscribe,
            0x03 => Self::Subscribed,
            0x04 => Self::Deposit,
            0x05 => Self::Deposited,
            0x06 => Self::Deliver,
            0x07 => Self::Ack,
            0x08 => Self::Error,
            0x09 => Self::Ping,
            0x0a => Self::Pong,
            0x0b => Self::SubscribeBatch,
            0x0c => Self::SubscribedBatch,
            0x0d => Self::PutBundle,
            0x0e => Self::BundleStored,
            0x0f => Self::GetBundle,
            0x10 => Self::Bundle,
            0x11 => Self::DeleteBundle,
            0x12 => Self::BundleDeleted,
            _ => return None,
        })
    }
}

/// Stable error codes carried by [`Frame::Error`]. Numbers never change meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The frame could not be decoded.
    Malformed,
    /// The frame's version byte is not one the relay speaks.
    UnsupportedVersion,
    /// The frame is larger than the relay's maximum.
    FrameTooLarge,
    /// A frame arrived that is not allowed in the connection's current state.
    UnexpectedFrame,
    /// The subscribe proof did not verify.
    BadProof,
    /// The connection holds as many subscriptions as it may.
    TooManySubscriptions,
    /// Acknowledgement for a mailbox this connection is not subscribed to.
    NotSubscribed,
    /// The mailbox holds as many blobs as it may.
    MailboxFullCount,
    /// The mailbox holds as many bytes as it may.
    MailboxFullBytes,
    /// The relay's global storage quota is reached.
    RelayFull,
    /// The connection sends deposits faster than allowed.
    RateLimited,
    /// The relay holds as many connections as it may.
    TooManyConnections,
    /// The connection was idle too long.
    IdleTimeout,
    /// The relay could not store the deposit; nothing was stored.
    StorageFailure,
    /// The relay is shutting down.
    ShuttingDown,
    /// The subscribe proofs were made for another relay's origin.
    WrongOrigin,
    /// No bundle is stored under that id (never stored, deleted, or expired).
    NoSuchBundle,
    /// The connection stored as many bundles as it may.
    TooManyBundles,
    /// A code this version does not know (kept so decoding never fails on new codes).
    Unknown(u16),
}

impl ErrorCode {
    /// The code's number on the wire.
    pub fn to_u16(self) -> u16 {
        match self {
            Self::Malformed => 1,
            Self::UnsupportedVersion => 2,
            Self::FrameTooLarge => 3,
            Self::UnexpectedFrame => 4,
            Self::BadProof => 5,
            Self::TooManySubscriptions => 6,
            Self::NotSubscribed => 7,
            Self::MailboxFullCount => 8,
            Self::MailboxFullBytes => 9,
            Self::RelayFull => 10,
            Self::RateLimited => 11,
            Self::TooManyConnections => 12,
            Self::IdleTimeout => 13,
            Self::StorageFailure => 14,
            Self::ShuttingDown => 15,
            Self::WrongOrigin => 16,
            Self::NoSuchBundle => 17,
            Self::TooManyBundles => 18,
            Self::Unknown(code) => code,
        }
    }

    /// The code for a number on the wire.
    pub fn from_u16(code: u16) -> Self {
        match code {
            1 => Self::Malformed,
            2 => Self::UnsupportedVersion,
            3 => Self::FrameTooLarge,
            4 => Self::UnexpectedFrame,
            5 => Self::BadProof,
            6 => Self::TooManySubscriptions,
            7 => Self::NotSubscribed,
            8 => Self::MailboxFullCount,
            9 => Self::MailboxFullBytes,
            10 => Self::RelayFull,
            11 => Self::RateLimited,
            12 => Self::TooManyConnections,
            13 => Self::IdleTimeout,
            14 => Self::StorageFailure,
            15 => Self::ShuttingDown,
            16 => Self::WrongOrigin,
            17 => Self::NoSuchBundle,
            18 => Self::TooManyBundles,
            other => Self::Unknown(other),
        }
    }

    /// A short, fixed, human-readable description (never contains user data).
    pub fn describe(self) -> &'static str {
        match self {
            Self::Malformed => "malformed frame",
            Self::UnsupportedVersion => "unsupported protocol version",
            Self::FrameTooLarge => "frame too large",
            Self::UnexpectedFrame => "unexpected frame",
            Self::BadProof => "invalid subscribe proof",
            Self::TooManySubscriptions => "too many subscriptions",
            Self::NotSubscribed => "not subscribed to that mailbox",
            Self::MailboxFullCount => "mailbox full (message count)",
            Self::MailboxFullBytes => "mailbox full (bytes)",
            Self::RelayFull => "relay storage full",
            Self::RateLimited => "rate limited",
            Self::TooManyConnections => "too many connections",
            Self::IdleTimeout => "idle timeout",
            Self::StorageFailure => "storage failure",
            Self::ShuttingDown => "relay shutting down",
            Self::WrongOrigin => "subscribe proofs made for another relay",
            Self::NoSuchBundle => "no such bundle",
            Self::TooManyBundles => "too many bundles",
            Self::Unknown(_) => "unknown error",
        }
    }
}

/// One mailbox's proof of ownership in a [`Frame::SubscribeBatch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailboxProof {
    /// The mailbox's Ed25519 public key.
    pub public_key: [u8; 32],
    /// Signature over [`crate::subscribe_proof_message`].
    pub signature: [u8; SIGNATURE_LEN],
}

impl MailboxProof {
    /// Bytes of one proof on the wire.
    pub const LEN: usize = 32 + SIGNATURE_LEN;
}

/// One relay frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Client to relay, first frame of a connection.
    Hello,
    /// Relay to client, answer to `Hello`.
    Challenge {
        /// Random bytes the client signs to subscribe; fresh per connection.
        challenge: [u8; CHALLENGE_LEN],
        /// Largest frame the relay accepts, in bytes.
        max_frame_len: u32,
    },
    /// Client to relay: subscribe to the mailbox of `public_key`.
    Subscribe {
        /// Client-chosen id echoed in the answer.
        request: u32,
        /// The mailbox's Ed25519 public key.
        public_key: [u8; 32],
        /// Signature over [`crate::subscribe_proof_message`].
        signature: [u8; SIGNATURE_LEN],
    },
    /// Relay to client: the subscription is active; stored blobs follow as `Deliver`.
    Subscribed {
        /// The id of the `Subscribe` request.
        request: u32,
        /// The mailbox now subscribed.
        mailbox: MailboxId,
    },
    /// Client to relay: store `payload` in `mailbox`. Carries no sender identity.
    Deposit {
        /// Client-chosen id echoed in `Deposited` or `Error`.
        request: u32,
        /// Destination mailbox.
        mailbox: MailboxId,
        /// Opaque bytes.
        payload: Vec<u8>,
    },
    /// Relay to client: the deposit `request` is durable.
    Deposited {
        /// The id of the `Deposit` request.
        request: u32,
    },
    /// Relay to client: a stored blob.
    Deliver {
        /// The mailbox it was deposited in.
        mailbox: MailboxId,
        /// Per-mailbox sequence number, strictly increasing.
        seq: u64,
        /// Opaque bytes, as deposited.
        payload: Vec<u8>,
    },
    /// Client to relay: every blob of `mailbox` with a sequence number up to `seq` may be deleted.
    Ack {
        /// The mailbox.
        mailbox: MailboxId,
        /// Highest sequence number handled.
        seq: u64,
    },
    /// Relay to client: request `request` failed (0: the connection itself).
    Error {
        /// The failed request, or 0.
        request: u32,
        /// What went wrong.
        code: ErrorCode,
    },
    /// Keep-alive request.
    Ping {
        /// Echoed in `Pong`.
        nonce: u64,
    },
    /// Keep-alive answer.
    Pong {
        /// The `Ping`'s nonce.
        nonce: u64,
    },
    /// Client to relay: subscribe to the mailbox of each proof, all made for the relay at `origin`.
    SubscribeBatch {
        /// Client-chosen id echoed in the answer.
        request: u32,
        /// The relay origin the proofs were signed for, normalised ([`crate::RelayOrigin`]);
        /// printable ASCII, at most 255 bytes.
        origin: String,
        /// One proof per mailbox (at most 65,535).
        proofs: Vec<MailboxProof>,
    },
    /// Relay to client: the outcome of each proof of a `SubscribeBatch`, in the same order:
    /// `None` for a subscription now active, else why that one mailbox was refused. Stored blobs of
    /// the subscribed mailboxes follow as `Deliver`.
    SubscribedBatch {
        /// The id of the `SubscribeBatch` request.
        request: u32,
        /// One result per proof (at most 65,535).
        results: Vec<Option<ErrorCode>>,
    },
    /// Client to relay: store `bundle` (opaque, at most [`MAX_BUNDLE_LEN`] bytes) under `id` until
    /// it is deleted or expires. Only whoever knows the preimage of `delete_hash` may delete it.
    PutBundle {
        /// Client-chosen id echoed in `BundleStored` or `Error`.
        request: u32,
        /// The bundle's id.
        id: [u8; BUNDLE_ID_LEN],
        /// SHA-256 of the secret a `DeleteBundle` must show.
        delete_hash: [u8; 32],
        /// Opaque bytes.
        bundle: Vec<u8>,
    },
    /// Relay to client: the bundle of `PutBundle` `request` is durable.
    BundleStored {
        /// The id of the `PutBundle` request.
        request: u32,
    },
    /// Client to relay: send the bundle stored under `id` (answered with `Bundle`, or `Error`
    /// `NoSuchBundle`).
    GetBundle {
        /// Client-chosen id echoed in the answer.
        request: u32,
        /// The bundle's id.
        id: [u8; BUNDLE_ID_LEN],
    },
    /// Relay to client: the bundle of `GetBundle` `request`, as stored.
    Bundle {
        /// The id of the `GetBundle` request.
        request: u32,
        /// Opaque bytes.
        bundle: Vec<u8>,
    },
    /// Client to relay: delete the bundle under `id`; `delete_secret` must hash (SHA-256) to its
    /// `delete_hash`.
    DeleteBundle {
        /// Client-chosen id echoed in the answer.
        request: u32,
        /// The bundle's id.
        id: [u8; BUNDLE_ID_LEN],
        /// The preimage of the bundle's `delete_hash`.
        delete_secret: [u8; 32],
    },
    /// Relay to client: no bundle is stored under the id of `DeleteBundle` `request` any more.
    BundleDeleted {
        /// The id of the `DeleteBundle` request.
        request: u32,
    },
}

/// Why bytes are not a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Fewer than two bytes.
    #[error("frame too short")]
    Truncated,
    /// The version byte is not [`PROTOCOL_VERSION`].
    #[error("unsupported frame version")]
    UnsupportedVersion,
    /// The kind byte is unknown.
    #[error("unknown frame kind")]
    UnknownKind,
    /// The body's length does not fit the kind.
    #[error("frame body has the wrong length")]
    BadLength,
    /// A text field is empty, or not printable ASCII.
    #[error("frame text field is not printable ASCII")]
    BadText,
}

impl FrameError {
    /// The error code the relay answers this decoding error with.
    pub fn code(self) -> ErrorCode {
        match self {
            Self::UnsupportedVersion => ErrorCode::UnsupportedVersion,
            Self::Truncated | Self::UnknownKind | Self::BadLength | Self::BadText => ErrorCode::Malformed,
        }
    }
}

impl Frame {
    /// The frame's kind.
    pub fn kind(&self) -> FrameKind {
        match self {
            Self::Hello => FrameKind::Hello,
            Self::Challenge { .. } => FrameKind::Challenge,
            Self::Subscribe { .. } => FrameKind::Subscribe,
            Self::Subscribed { .. } => FrameKind::Subscribed,
            Self::Deposit { .. } => FrameKind::Deposit,
            Self::Deposited { .. } => FrameKind::Deposited,
            Self::Deliver { .. } => FrameKind::Deliver,
            Self::Ack { .. } => FrameKind::Ack,
            Self::Error { .. } => FrameKind::Error,
            Self::Ping { .. } => FrameKind::Ping,
            Self::Pong { .. } => FrameKind::Pong,
            Self::SubscribeBatch { .. } => FrameKind::SubscribeBatch,
            Self::SubscribedBatch { .. } => FrameKind::SubscribedBatch,
            Self::PutBundle { .. } => FrameKind::PutBundle,
            Self::BundleStored { .. } => FrameKind::BundleStored,
            Self::GetBundle { .. } => FrameKind::GetBundle,
            Self::Bundle { .. } => FrameKind::Bundle,
            Self::DeleteBundle { .. } => FrameKind::DeleteBundle,
            Self::BundleDeleted { .. } => FrameKind::BundleDeleted,
        }
    }

    /// The request id of a client request (`Subscribe`, `Deposit`, `SubscribeBatch`, and the
    /// bundle requests `PutBundle`, `GetBundle`, `DeleteBundle`) read from the
    /// start of `bytes`, even when the rest is not a valid frame: the version and kind bytes must
    /// be right and the four id bytes there. The relay answers a truncated, overlong or oversized
    /// request with this id.
    pub fn request_of(bytes: &[u8]) -> Option<u32> {
        let [PROTOCOL_VERSION, kind, id @ ..] = bytes else { return None };
        match FrameKind::from_byte(*kind)? {
            FrameKind::Subscribe
            | FrameKind::Deposit
            | FrameKind::SubscribeBatch
            | FrameKind::PutBundle
            | FrameKind::GetBundle
            | FrameKind::DeleteBundle => id.first_chunk::<4>().map(|id| u32::from_be_bytes(*id)),
            _ => None,
        }
    }

    /// Size of a `SubscribeBatch` for `origin_len` bytes of origin and `proofs` proofs.
    pub const fn subscribe_batch_len(origin_len: usize, proofs: usize) -> usize {
        2 + 4 + 1 + origin_len + 2 + proofs * MailboxProof::LEN
    }

    /// Size of the header and fixed fields of a `Deposit`, i.e. a frame's length minus its payload.
    pub const DEPOSIT_OVERHEAD: usize = 2 + 4 + 32;
    /// Size of the header and fixed fields of a `PutBundle`, i.e. a frame's length minus its bundle.
    pub const PUT_BUNDLE_OVERHEAD: usize = 2 + 4 + BUNDLE_ID_LEN + 32;
    /// Size of the header and fixed fields of a `Deliver`.
    pub const DELIVER_OVERHEAD: usize = 2 + 32 + 8;

    /// Everything of a `Deliver` frame before its payload: a `Deliver` is this, then the payload.
    /// The relay sends the two with one vectored write, so a payload it shares with its store is
    /// never copied into a frame; `Frame::Deliver { .. }.encode()` is built from this too.
    pub fn deliver_head(mailbox: &MailboxId, seq: u64) -> [u8; Self::DELIVER_OVERHEAD] {
        let mut head = [0; Self::DELIVER_OVERHEAD];
        head[..2].copy_from_slice(&[PROTOCOL_VERSION, FrameKind::Deliver as u8]);
        head[2..34].copy_from_slice(&mailbox.0);
        head[34..].copy_from_slice(&seq.to_be_bytes());
        head
    }

    /// Encodes the frame.
    ///
    /// A `SubscribeBatch` or `SubscribedBatch` with more than 65,535 entries, or an origin longer
    /// than 255 bytes, cannot be encoded; their count is cut to what fits (build them with
    /// [`crate::RelayOrigin`] and at most `u16::MAX` entries).
    pub fn encode(&self) -> Vec<u8> {
        if let Self::Deliver { mailbox, seq, payload } = self {
            return [&Self::deliver_head(mailbox, *seq)[..], payload].concat();
        }
        let mut out = Vec::with_capacity(64);
        out.push(PROTOCOL_VERSION);
        out.push(self.kind() as u8);
        match self {
            Self::Hello => {}
            Self::Challenge { challenge, max_frame_len } => {
                out.extend_from_slice(challenge);
                out.extend_from_slice(&max_frame_len.to_be_bytes());
            }
            Self::Subscribe { request, public_key, signature } => {
                out.extend_from_slice(&request.to_be_bytes());
                out.extend_from_slice(public_key);
                out.extend_from_slice(signature);
            }
            Self::Subscribed { request, mailbox } => {
                out.extend_from_slice(&request.to_be_bytes());
                out.extend_from_slice(&mailbox.0);
            }
            Self::Deposit { request, mailbox, payload } => {
                out.reserve(payload.len() + 36);
                out.extend_from_slice(&request.to_be_bytes());
                out.extend_from_slice(&mailbox.0);
                out.extend_from_slice(payload);
            }
            Self::Deposited { request } => out.extend_from_slice(&request.to_be_bytes()),
            // Encoded above, from borrowed parts.
            Self::Deliver { .. } => {}
            Self::Ack { mailbox, seq } => {
                out.extend_from_slice(&mailbox.0);
                out.extend_from_slice(&seq.to_be_bytes());
            }
            Self::Error { request, code } => {
                out.extend_from_slice(&request.to_be_bytes());
                out.extend_from_slice(&code.to_u16().to_be_bytes());
            }
            Self::Ping { nonce } | Self::Pong { nonce } => out.extend_from_slice(&nonce.to_be_bytes()),
            Self::SubscribeBatch { request, origin, proofs } => {
                let origin = &origin.as_bytes()[..origin.len().min(MAX_ORIGIN_LEN)];
                let count = proofs.len().min(usize::from(u16::MAX));
                out.reserve(Self::subscribe_batch_len(origin.len(), count));
                out.extend_from_slice(&request.to_be_bytes());
                out.push(origin.len() as u8);
                out.extend_from_slice(origin);
                out.extend_from_slice(&(count as u16).to_be_bytes());
                for proof in &proofs[..count] {
                    out.extend_from_slice(&proof.public_key);
                    out.extend_from_slice(&proof.signature);
                }
            }
            Self::SubscribedBatch { request, results } => {
                let count = results.len().min(usize::from(u16::MAX));
                out.extend_from_slice(&request.to_be_bytes());
                out.extend_from_slice(&(count as u16).to_be_bytes());
                for result in &results[..count] {
                    out.extend_from_slice(&result.map_or(0, ErrorCode::to_u16).to_be_bytes());
                }
            }
            Self::PutBundle { request, id, delete_hash, bundle } => {
                out.reserve(Self::PUT_BUNDLE_OVERHEAD + bundle.len());
                out.extend_from_slice(&request.to_be_bytes());
                out.extend_from_slice(id);
                out.extend_from_slice(delete_hash);
                out.extend_from_slice(bundle);
            }
            Self::BundleStored { request } | Self::BundleDeleted { request } => {
                out.extend_from_slice(&request.to_be_bytes())
            }
            Self::GetBundle { request, id } => {
                out.extend_from_slice(&request.to_be_bytes());
                out.extend_from_slice(id);
            }
            Self::Bundle { request, bundle } => {
                out.extend_from_slice(&request.to_be_bytes());
                out.extend_from_slice(bundle);
            }
            Self::DeleteBundle { request, id, delete_secret } => {
                out.extend_from_slice(&request.to_be_bytes());
                out.extend_from_slice(id);
                out.extend_from_slice(delete_secret);
            }
        }
        out
    }

    /// Decodes one frame. Never panics.
    pub fn decode(bytes: &[u8]) -> Result<Self, FrameError> {
        let [version, kind, body @ ..] = bytes else {
            return Err(FrameError::Truncated);
        };
        if *version != PROTOCOL_VERSION {
            return Err(FrameError::UnsupportedVersion);
        }
        let kind = FrameKind::from_byte(*kind).ok_or(FrameError::UnknownKind)?;
        let mut r = Reader(body);
        let frame = match kind {
            FrameKind::Hello => Self::Hello,
            FrameKind::Challenge => Self::Challenge { challenge: r.array()?, max_frame_len: r.u32()? },
            FrameKind::Subscribe => {
                Self::Subscribe { request: r.u32()?, public_key: r.array()?, signature: r.array()? }
            }
            FrameKind::Subscribed => Self::Subscribed { request: r.u32()?, mailbox: MailboxId(r.array()?) },
            FrameKind::Deposit => {
                Self::Deposit { request: r.u32()?, mailbox: MailboxId(r.array()?), payload: r.rest() }
            }
            FrameKind::Deposited => Self::Deposited { request: r.u32()? },
            FrameKind::Deliver => {
                Self::Deliver { mailbox: MailboxId(r.array()?), seq: r.u64()?, payload: r.rest() }
            }
            FrameKind::Ack => Self::Ack { mailbox: MailboxId(r.array()?), seq: r.u64()? },
            FrameKind::Error => Self::Error { request: r.u32()?, code: ErrorCode::from_u16(r.u16()?) },
            FrameKind::Ping => Self::Ping { nonce: r.u64()? },
            FrameKind::Pong => Self::Pong { nonce: r.u64()? },
            FrameKind::SubscribeBatch => {
                let request = r.u32()?;
                let origin_len = r.array::<1>()?[0];
                let origin = r.take(usize::from(origin_len))?;
                if origin.is_empty() || !origin.iter().all(|b| b.is_ascii_graphic()) {
                    return Err(FrameError::BadText);
                }
                let origin = origin.iter().map(|&b| char::from(b)).collect();
                let count = usize::from(r.u16()?);
                if r.0.len() != count * MailboxProof::LEN {
                    return Err(FrameError::BadLength);
                }
                let proofs = (0..count)
                    .map(|_| Ok(MailboxProof { public_key: r.array()?, signature: r.array()? }))
                    .collect::<Result<_, FrameError>>()?;
                Self::SubscribeBatch { request, origin, proofs }
            }
            FrameKind::SubscribedBatch => {
                let request = r.u32()?;
                let count = usize::from(r.u16()?);
                if r.0.len() != count * 2 {
                    return Err(FrameError::BadLength);
                }
                let results = (0..count)
                    .map(|_| r.u16().map(|code| (code != 0).then(|| ErrorCode::from_u16(code))))
                    .collect::<Result<_, FrameError>>()?;
                Self::SubscribedBatch { request, results }
            }
            FrameKind::PutBundle => Self::PutBundle {
                request: r.u32()?,
                id: r.array()?,
                delete_hash: r.array()?,
                bundle: r.rest(),
            },
            FrameKind::BundleStored => Self::BundleStored { request: r.u32()? },
            FrameKind::GetBundle => Self::GetBundle { request: r.u32()?, id: r.array()? },
            FrameKind::Bundle => Self::Bundle { request: r.u32()?, bundle: r.rest() },
            FrameKind::DeleteBundle => {
                Self::DeleteBundle { request: r.u32()?, id: r.array()?, delete_secret: r.array()? }
            }
            FrameKind::BundleDeleted => Self::BundleDeleted { request: r.u32()? },
        };
        if !r.0.is_empty() {
            return Err(FrameError::BadLength);
        }
        Ok(frame)
    }
}

/// A cursor over a frame body whose reads fail instead of panicking.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], FrameError> {
        let (head, tail) = self.0.split_at_checked(len).ok_or(FrameError::BadLength)?;
        self.0 = tail;
        Ok(head)
    }
}

impl Reader<'_> {
    fn array<const N: usize>(&mut self) -> Result<[u8; N], FrameError> {
        let (head, tail) = self.0.split_first_chunk::<N>().ok_or(FrameError::BadLength)?;
        self.0 = tail;
        Ok(*head)
    }
    fn u16(&mut self) -> Result<u16, FrameError> {
        self.array().map(u16::from_be_bytes)
    }
    fn u32(&mut self) -> Result<u32, FrameError> {
        self.array().map(u32::from_be_bytes)
    }
    fn u64(&mut self) -> Result<u64, FrameError> {
        self.array().map(u64::from_be_bytes)
    }
    fn rest(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.0).to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Frame> {
        let mailbox = MailboxId([9; 32]);
        vec![
            Frame::Hello,
            Frame::Challenge { challenge: [3; CHALLENGE_LEN], max_frame_len: 262_144 },
            Frame::Subscribe { request: 1, public_key: [4; 32], signature: [5; SIGNATURE_LEN] },
            Frame::Subscribed { request: 1, mailbox },
            Frame::Deposit { request: 2, mailbox, payload: vec![1, 2, 3] },
            Frame::Deposit { request: 2, mailbox, payload: vec![] },
            Frame::Deposited { request: 2 },
            Frame::Deliver { mailbox, seq: 77, payload: vec![8; 100] },
            Frame::Ack { mailbox, seq: 77 },
            Frame::Error { request: 0, code: ErrorCode::RateLimited },
            Frame::Error { request: 5, code: ErrorCode::Unknown(999) },
            Frame::Ping { nonce: u64::MAX },
            Frame::Pong { nonce: 0 },
            Frame::SubscribeBatch { request: 3, origin: "https://relay.example".into(), proofs: vec![] },
            Frame::SubscribeBatch {
                request: 4,
                origin: "http://127.0.0.1:8080".into(),
                proofs: vec![
                    MailboxProof { public_key: [6; 32], signature: [7; SIGNATURE_LEN] },
                    MailboxProof { public_key: [8; 32], signature: [9; SIGNATURE_LEN] },
                ],
            },
            Frame::SubscribedBatch { request: 4, results: vec![] },
            Frame::PutBundle {
                request: 5,
                id: [1; BUNDLE_ID_LEN],
                delete_hash: [2; 32],
                bundle: vec![3; 1543],
            },
            Frame::PutBundle { request: 5, id: [1; BUNDLE_ID_LEN], delete_hash: [2; 32], bundle: vec![] },
            Frame::BundleStored { request: 5 },
            Frame::GetBundle { request: 6, id: [4; BUNDLE_ID_LEN] },
            Frame::Bundle { request: 6, bundle: vec![5; 10] },
            Frame::DeleteBundle { request: 7, id: [4; BUNDLE_ID_LEN], delete_secret: [6; 32] },
            Frame::BundleDeleted { request: 7 },
            Frame::SubscribedBatch {
                request: 4,
                results: vec![None, Some(ErrorCode::BadProof), Some(ErrorCode::TooManySubscriptions), None],
            },
        ]
    }

    #[test]
    fn every_kind_round_trips() {
        for frame in samples() {
            assert_eq!(Frame::decode(&frame.encode()), Ok(frame));
        }
    }

    #[test]
    fn known_layout_of_a_deposit() {
        let frame =
            Frame::Deposit { request: 0x0102_0304, mailbox: MailboxId([0xaa; 32]), payload: vec![0xff] };
        let mut expected = vec![1, 4, 1, 2, 3, 4];
        expected.extend_from_slice(&[0xaa; 32]);
        expected.push(0xff);
        assert_eq!(frame.encode(), expected);
        assert_eq!(frame.encode().len(), Frame::DEPOSIT_OVERHEAD + 1);
    }

    #[test]
    fn known_layout_of_a_deliver() {
        let mailbox = MailboxId([0xbb; 32]);
        let frame = Frame::Deliver { mailbox, seq: 0x0a0b_0c0d_0e0f_1011, payload: vec![0xee, 0xef] };
        let mut expected = vec![1, 6];
        expected.extend_from_slice(&[0xbb; 32]);
        expected.extend_from_slice(&[0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0xee, 0xef]);
        assert_eq!(frame.encode(), expected);
        assert_eq!(
            Frame::deliver_head(&mailbox, 0x0a0b_0c0d_0e0f_1011)[..],
            expected[..Frame::DELIVER_OVERHEAD]
        );
        assert_eq!(frame.encode().len(), Frame::DELIVER_OVERHEAD + 2);
    }

    #[test]
    fn truncations_and_extensions_are_rejected() {
        for frame in samples() {
            let bytes = frame.encode();
            let has_payload = matches!(
                frame,
                Frame::Deposit { .. }
                    | Frame::Deliver { .. }
                    | Frame::PutBundle { .. }
                    | Frame::Bundle { .. }
            );
            for cut in 0..bytes.len() {
                let short = Frame::decode(&bytes[..cut]);
                // A payload-carrying frame cut inside its payload is a valid, shorter frame.
                let fixed = match frame {
                    Frame::Deposit { .. } => Frame::DEPOSIT_OVERHEAD,
                    Frame::Deliver { .. } => Frame::DELIVER_OVERHEAD,
                    Frame::PutBundle { .. } => Frame::PUT_BUNDLE_OVERHEAD,
                    Frame::Bundle { .. } => 6,
                    _ => usize::MAX,
                };
                if !(has_payload && cut >= fixed) {
                    assert!(short.is_err(), "{frame:?} cut at {cut} decoded");
                }
            }
            if !has_payload {
                let mut long = bytes.clone();
                long.push(0);
                assert_eq!(Frame::decode(&long), Err(FrameError::BadLength));
            }
        }
    }

    #[test]
    fn known_layout_of_a_subscribe_batch_and_its_answer() {
        let proof = MailboxProof { public_key: [0xaa; 32], signature: [0xbb; SIGNATURE_LEN] };
        let frame =
            Frame::SubscribeBatch { request: 0x0102_0304, origin: "http://a:1".into(), proofs: vec![proof] };
        let mut expected = vec![1, 0x0b, 1, 2, 3, 4, 10];
        expected.extend_from_slice(b"http://a:1");
        expected.extend_from_slice(&[0, 1]);
        expected.extend_from_slice(&[0xaa; 32]);
        expected.extend_from_slice(&[0xbb; 64]);
        assert_eq!(frame.encode(), expected);
        assert_eq!(frame.encode().len(), Frame::subscribe_batch_len(10, 1));
        let answer = Frame::SubscribedBatch {
            request: 9,
            results: vec![None, Some(ErrorCode::TooManySubscriptions), Some(ErrorCode::Unknown(300))],
        };
        assert_eq!(answer.encode(), [1, 0x0c, 0, 0, 0, 9, 0, 3, 0, 0, 0, 6, 1, 44]);
    }

    #[test]
    fn subscribe_batch_refuses_bad_origins_and_counts() {
        let good = Frame::SubscribeBatch {
            request: 1,
            origin: "http://a".into(),
            proofs: vec![MailboxProof { public_key: [1; 32], signature: [2; SIGNATURE_LEN] }],
        }
        .encode();
        // Origin bytes at offset 7..15: a space, a non-ASCII byte.
        for (at, byte) in [(9, b' '), (10, 0xc3)] {
            let mut bad = good.clone();
            bad[at] = byte;
            assert_eq!(Frame::decode(&bad), Err(FrameError::BadText));
        }
        // An empty origin.
        let empty = [&[1, 0x0b, 0, 0, 0, 1, 0][..], &[0, 0]].concat();
        assert_eq!(Frame::decode(&empty), Err(FrameError::BadText));
        // The count says two proofs, one is there; and one proof too many.
        let mut short = good.clone();
        short[16] = 2;
        assert_eq!(Frame::decode(&short), Err(FrameError::BadLength));
        let long = [&good[..], &[0; 96]].concat();
        assert_eq!(Frame::decode(&long), Err(FrameError::BadLength));
        // An answer whose count does not match its codes.
        assert_eq!(Frame::decode(&[1, 0x0c, 0, 0, 0, 1, 0, 2, 0, 0]), Err(FrameError::BadLength));
    }

    #[test]
    fn request_id_of_broken_requests() {
        let subscribe = Frame::Subscribe { request: 77, public_key: [1; 32], signature: [2; 64] }.encode();
        assert_eq!(Frame::request_of(&subscribe[..6]), Some(77));
        assert_eq!(Frame::request_of(&subscribe[..5]), None);
        let deposit = Frame::Deposit { request: 78, mailbox: MailboxId([0; 32]), payload: vec![] }.encode();
        assert_eq!(Frame::request_of(&deposit[..20]), Some(78));
        let batch = Frame::SubscribeBatch { request: 79, origin: "http://a".into(), proofs: vec![] }.encode();
        assert_eq!(Frame::request_of(&[&batch[..], &[0]].concat()), Some(79));
        // Not a request, or another version: no id to read.
        assert_eq!(Frame::request_of(&Frame::Deposited { request: 5 }.encode()), None);
        assert_eq!(Frame::request_of(&[2, 4, 0, 0, 0, 1]), None);
    }

    #[test]
    fn known_layout_of_the_bundle_frames() {
        let put = Frame::PutBundle {
            request: 0x0102_0304,
            id: [0xaa; BUNDLE_ID_LEN],
            delete_hash: [0xbb; 32],
            bundle: vec![0xcc, 0xdd],
        };
        let expected = [&[1, 0x0d, 1, 2, 3, 4][..], &[0xaa; 16], &[0xbb; 32], &[0xcc, 0xdd]].concat();
        assert_eq!(put.encode(), expected);
        assert_eq!(put.encode().len(), Frame::PUT_BUNDLE_OVERHEAD + 2);
        assert_eq!(Frame::BundleStored { request: 9 }.encode(), [1, 0x0e, 0, 0, 0, 9]);
        let get = Frame::GetBundle { request: 9, id: [0xaa; BUNDLE_ID_LEN] };
        assert_eq!(get.encode(), [&[1, 0x0f, 0, 0, 0, 9][..], &[0xaa; 16]].concat());
        assert_eq!(Frame::Bundle { request: 9, bundle: vec![7] }.encode(), [1, 0x10, 0, 0, 0, 9, 7]);
        let delete = Frame::DeleteBundle { request: 9, id: [0xaa; BUNDLE_ID_LEN], delete_secret: [0xee; 32] };
        assert_eq!(delete.encode(), [&[1, 0x11, 0, 0, 0, 9][..], &[0xaa; 16], &[0xee; 32]].concat());
        assert_eq!(Frame::BundleDeleted { request: 9 }.encode(), [1, 0x12, 0, 0, 0, 9]);
        // The requests are answered with their id even when broken.
        assert_eq!(Frame::request_of(&put.encode()[..6]), Some(0x0102_0304));
        assert_eq!(Frame::request_of(&get.encode()[..7]), Some(9));
        assert_eq!(Frame::request_of(&delete.encode()[..8]), Some(9));
        assert_eq!(ErrorCode::NoSuchBundle.to_u16(), 17);
        assert_eq!(ErrorCode::TooManyBundles.to_u16(), 18);
    }

    #[test]
    fn bad_version_and_kind() {
        assert_eq!(Frame::decode(&[2, 0]), Err(FrameError::UnsupportedVersion));
        assert_eq!(Frame::decode(&[1, 0x7f]), Err(FrameError::UnknownKind));
        assert_eq!(Frame::decode(&[]), Err(FrameError::Truncated));
        assert_eq!(Frame::decode(&[1]), Err(FrameError::Truncated));
    }

    #[test]
    fn error_codes_are_stable() {
        assert_eq!(ErrorCode::WrongOrigin.to_u16(), 16);
        for n in 0..=20u16 {
            assert_eq!(ErrorCode::from_u16(n).to_u16(), n);
        }
        assert_eq!(ErrorCode::RateLimited.to_u16(), 11);
    }

    #[cfg(not(target_arch = "wasm32"))]
    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 2000, rng_seed: proptest::test_runner::RngSeed::Fixed(0xd00d), ..proptest::prelude::ProptestConfig::default() })]
        #[test]
        fn decode_never_panics_and_round_trips(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            if let Ok(frame) = Frame::decode(&bytes) {
                proptest::prop_assert_eq!(frame.encode(), bytes);
            }
        }
    }
}
