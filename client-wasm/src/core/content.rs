//! Typed message contents: what goes inside a ratchet message's plaintext.
//!
//! Encoding: `version(1) || type(1) || id(16) || sent_at(8, big-endian) || body`, where `body` is
//! - `Text` (type 1): `len(4) || UTF-8`;
//! - `Hello` (type 2): `len(1) || UTF-8 name || reply_mailbox(32)`;
//! - `Receipt` (type 3): `count(2) || count × id(16)`;
//! - `Profile` (type 4): `len(1) || UTF-8 name`.

use rand_core::CryptoRng;

use super::codec::Reader;
use super::envelope::MAX_PLAINTEXT_LEN;

/// Version byte of the content encoding.
pub const CONTENT_VERSION: u8 = 1;
/// Longest display name in `Hello` and `Profile`, in bytes of UTF-8.
pub const MAX_NAME_LEN: usize = 64;
/// Bytes before the variant body: version, type, id, sent_at.
pub const CONTENT_HEADER_LEN: usize = 1 + 1 + 16 + 8;
/// Longest `Text` body that still fits in one message.
pub const MAX_TEXT_LEN: usize = MAX_PLAINTEXT_LEN - CONTENT_HEADER_LEN - 4;
/// Most message ids one `Receipt` may carry.
pub const MAX_RECEIPT_IDS: usize = 1024;

const TYPE_TEXT: u8 = 1;
const TYPE_HELLO: u8 = 2;
const TYPE_RECEIPT: u8 = 3;
const TYPE_PROFILE: u8 = 4;

/// A 16-byte random message id, unique per message.
pub type MessageId = [u8; 16];

/// What a message says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// A chat message.
    Text {
        /// The text.
        body: String,
    },
    /// The joiner's first content: who they are and where the inviter should answer.
    Hello {
        /// The joiner's display name.
        name: String,
        /// The mailbox the joiner reads this conversation from.
        reply_mailbox: [u8; 32],
    },
    /// Delivery receipts for earlier messages.
    Receipt {
        /// Ids of the messages received.
        delivered: Vec<MessageId>,
    },
    /// A display-name change.
    Profile {
        /// The new display name.
        name: String,
    },
}

/// A content with its id and sending time: the unit that is encrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// Random unique id (receipts refer to it).
    pub id: MessageId,
    /// Sender's clock, unix seconds (informational: the peer's clock is not trusted).
    pub sent_at: u64,
    /// The content.
    pub content: Content,
}

/// Why a content could not be encoded or decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ContentError {
    /// The bytes are truncated, have trailing data or invalid UTF-8.
    #[error("content is corrupt")]
    Corrupt,
    /// The version byte is not one this build understands.
    #[error("content has an unsupported version")]
    UnsupportedVersion,
    /// The type byte is unknown (sent by a newer version).
    #[error("content has an unknown type")]
    UnknownType,
    /// A field exceeds its limit (text, name, number of receipts).
    #[error("content field is too long")]
    TooLong,
}

impl Payload {
    /// Wraps `content` with a fresh random id and `now` as the sending time.
    pub fn new<R: CryptoRng + ?Sized>(content: Content, now: u64, rng: &mut R) -> Self {
        let mut id = [0u8; 16];
        rng.fill_bytes(&mut id);
        Self { id, sent_at: now, content }
    }

    /// Encodes; fails only if a field is over its limit.
    pub fn encode(&self) -> Result<Vec<u8>, ContentError> {
        let mut out = Vec::with_capacity(64);
        out.push(CONTENT_VERSION);
        out.push(match self.content {
            Content::Text { .. } => TYPE_TEXT,
            Content::Hello { .. } => TYPE_HELLO,
            Content::Receipt { .. } => TYPE_RECEIPT,
            Content::Profile { .. } => TYPE_PROFILE,
        });
        out.extend_from_slice(&self.id);
        out.extend_from_slice(&self.sent_at.to_be_bytes());
        match &self.content {
            Content::Text { body } => {
                if body.len() > MAX_TEXT_LEN {
                    return Err(ContentError::TooLong);
                }
                out.extend_from_slice(&(body.len() as u32).to_be_bytes());
                out.extend_from_slice(body.as_bytes());
            }
            Content::Hello { name, reply_mailbox } => {
                push_name(&mut out, name)?;
                out.extend_from_slice(reply_mailbox);
            }
            Content::Receipt { delivered } => {
                if delivered.len() > MAX_RECEIPT_IDS {
                    return Err(ContentError::TooLong);
                }
                out.extend_from_slice(&(delivered.len() as u16).to_be_bytes());
                for id in delivered {
                    out.extend_from_slice(id);
                }
            }
            Content::Profile { name } => push_name(&mut out, name)?,
        }
        Ok(out)
    }

    /// Decodes; never panics on any input.
    pub fn decode(bytes: &[u8]) -> Result<Self, ContentError> {
        let mut r = Reader::new(bytes);
        if r.u8().ok_or(ContentError::Corrupt)? != CONTENT_VERSION {
            return Err(ContentError::UnsupportedVersion);
        }
        let kind = r.u8().ok_or(ContentError::Corrupt)?;
        let id = r.array::<16>().ok_or(ContentError::Corrupt)?;
        let sent_at = r.u64().ok_or(ContentError::Corrupt)?;
        let content = match kind {
            TYPE_TEXT => {
                let len = r.u32().ok_or(ContentError::Corrupt)? as usize;
                if len > MAX_TEXT_LEN {
                    return Err(ContentError::TooLong);
                }
                Content::Text { body: utf8(r.take(len))? }
            }
            TYPE_HELLO => {
                let name = read_name(&mut r)?;
                Content::Hello { name, reply_mailbox: r.array().ok_or(ContentError::Corrupt)? }
            }
            TYPE_RECEIPT => {
                let count = usize::from(r.u16().ok_or(ContentError::Corrupt)?);
                if count > MAX_RECEIPT_IDS {
                    return Err(ContentError::TooLong);
                }
                let mut delivered = Vec::with_capacity(count);
                for _ in 0..count {
                    delivered.push(r.array().ok_or(ContentError::Corrupt)?);
                }
                Content::Receipt { delivered }
            }
            TYPE_PROFILE => Content::Profile { name: read_name(&mut r)? },
            _ => return Err(ContentError::UnknownType),
        };
        if !r.is_empty() {
            return Err(ContentError::Corrupt);
        }
        Ok(Self { id, sent_at, content })
    }
}

fn push_name(out: &mut Vec<u8>, name: &str) -> Result<(), ContentError> {
    if name.len() > MAX_NAME_LEN {
        return Err(ContentError::TooLong);
    }
    // At most MAX_NAME_LEN (64) bytes: fits in one byte.
    out.push(name.len() as u8);
    out.extend_from_slice(name.as_bytes());
    Ok(())
}

fn read_name(r: &mut Reader<'_>) -> Result<String, ContentError> {
    let len = usize::from(r.u8().ok_or(ContentError::Corrupt)?);
    if len > MAX_NAME_LEN {
        return Err(ContentError::TooLong);
    }
    utf8(r.take(len))
}

fn utf8(bytes: Option<&[u8]>) -> Result<String, ContentError> {
    let bytes = bytes.ok_or(ContentError::Corrupt)?;
    Ok(std::str::from_utf8(bytes).map_err(|_| ContentError::Corrupt)?.to_owned())
}
