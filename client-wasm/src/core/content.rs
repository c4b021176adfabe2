//! Typed message contents: what goes inside a ratchet message's plaintext.
//!
//! Encoding: `version(1) || type(1) || id(16) || sent_at(8, big-endian) || body`, where `body` is
//! - `Text` (type 1): `len(4) || UTF-8`;
//! - `Hello` (type 2): `len(1) || UTF-8 name || reply_mailbox(32)`, then, answering an invite
//!   that names its relay, `len(1) || UTF-8 relay origin` (len ≥ 1) naming the joiner's relay;
//! - `Receipt` (type 3): `count(2) || count × id(16)`;
//! - `Profile` (type 4): `len(1) || UTF-8 name`;
//! - `Inbox` (type 5): `format(1) = 1 || mailbox(32) || len(1) || UTF-8 relay origin` (len 0: the
//!   relay this message came through).
//! - `Attachment` (type 6): a file stored on a relay, see [`AttachmentRef`] for its body.

use rand_core::CryptoRng;

pub use super::attachment_ref::AttachmentRef;
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
/// Version of the `Inbox` body (its first byte), so later fields can be added.
pub const INBOX_FORMAT: u8 = 1;
/// Longest relay origin in `Inbox`, in bytes of UTF-8.
pub const MAX_ORIGIN_LEN: usize = 255;

const TYPE_TEXT: u8 = 1;
const TYPE_HELLO: u8 = 2;
const TYPE_RECEIPT: u8 = 3;
const TYPE_PROFILE: u8 = 4;
const TYPE_INBOX: u8 = 5;
const TYPE_ATTACHMENT: u8 = 6;

/// A 16-byte random message id, unique per message.
pub type MessageId = [u8; 16];

/// What a message says. `Debug` shows the kind and sizes only, never the text or names.
#[derive(Clone, PartialEq, Eq)]
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
        /// The relay holding `reply_mailbox` (its origin, as `https://host:port`); `None` for the
        /// relay this message came through (the only form a version 1 invite's answer has: an
        /// inviter of an earlier release refuses the longer one).
        relay: Option<String>,
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
    /// The sender reads this conversation from another mailbox from now on. The inviter sends it
    /// first, so that the mailbox printed in the invite link is used for the answer only.
    Inbox {
        /// The new mailbox id.
        mailbox: [u8; 32],
        /// The relay that holds it (its origin, as `https://host:port`); `None` for the relay this
        /// message came through. Reserved for addresses on other relays: this version sends
        /// `None` and does not follow an announcement naming another relay.
        relay: Option<String>,
    },
    /// A file, sent after its upload completed.
    Attachment(Box<AttachmentRef>),
}

impl std::fmt::Debug for Content {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Text { body } => f.debug_struct("Text").field("len", &body.len()).finish(),
            Self::Hello { .. } => f.write_str("Hello(..)"),
            Self::Receipt { delivered } => f.debug_struct("Receipt").field("ids", &delivered.len()).finish(),
            Self::Profile { .. } => f.write_str("Profile(..)"),
            Self::Inbox { .. } => f.write_str("Inbox(..)"),
            Self::Attachment(attachment) => attachment.fmt(f),
        }
    }
}

/// A content with its id and sending time: the unit that is encrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
// `Debug` is derived: the id and time are metadata, and `Content`'s `Debug` hides the rest.
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
            Content::Inbox { .. } => TYPE_INBOX,
            Content::Attachment(_) => TYPE_ATTACHMENT,
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
            Content::Hello { name, reply_mailbox, relay } => {
                push_name(&mut out, name)?;
                out.extend_from_slice(reply_mailbox);
                if let Some(origin) = relay.as_deref().filter(|o| !o.is_empty()) {
                    push_origin(&mut out, origin)?;
                }
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
            Content::Inbox { mailbox, relay } => {
                let origin = relay.as_deref().unwrap_or_default();
                out.push(INBOX_FORMAT);
                out.extend_from_slice(mailbox);
                push_origin(&mut out, origin)?;
            }
            Content::Attachment(attachment) => attachment.encode(&mut out)?,
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
                let reply_mailbox = r.array().ok_or(ContentError::Corrupt)?;
                let relay = if r.is_empty() {
                    None
                } else {
                    // Present means non-empty: one encoding for "the relay it came through".
                    let len = usize::from(r.u8().ok_or(ContentError::Corrupt)?);
                    if len == 0 {
                        return Err(ContentError::Corrupt);
                    }
                    Some(utf8(r.take(len))?)
                };
                Content::Hello { name, reply_mailbox, relay }
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
            TYPE_INBOX => {
                if r.u8().ok_or(ContentError::Corrupt)? != INBOX_FORMAT {
                    return Err(ContentError::UnsupportedVersion);
                }
                let mailbox = r.array().ok_or(ContentError::Corrupt)?;
                let len = usize::from(r.u8().ok_or(ContentError::Corrupt)?);
                let origin = utf8(r.take(len))?;
                Content::Inbox { mailbox, relay: (!origin.is_empty()).then_some(origin) }
            }
            TYPE_ATTACHMENT => Content::Attachment(Box::new(AttachmentRef::decode(&mut r)?)),
            _ => return Err(ContentError::UnknownType),
        };
        if !r.is_empty() {
            return Err(ContentError::Corrupt);
        }
        Ok(Self { id, sent_at, content })
    }
}

/// `len(1) || UTF-8 origin`, at most [`MAX_ORIGIN_LEN`] bytes.
fn push_origin(out: &mut Vec<u8>, origin: &str) -> Result<(), ContentError> {
    push_short(out, origin, MAX_ORIGIN_LEN)
}

fn push_name(out: &mut Vec<u8>, name: &str) -> Result<(), ContentError> {
    push_short(out, name, MAX_NAME_LEN)
}

/// `len(1) || UTF-8`, at most `max` (≤ 255) bytes.
fn push_short(out: &mut Vec<u8>, text: &str, max: usize) -> Result<(), ContentError> {
    let len =
        u8::try_from(text.len()).ok().filter(|&len| usize::from(len) <= max).ok_or(ContentError::TooLong)?;
    out.push(len);
    out.extend_from_slice(text.as_bytes());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbox_announcements_round_trip_with_and_without_a_relay() {
        for relay in [None, Some("https://relay.example:8443".to_owned())] {
            let p = Payload { id: [5; 16], sent_at: 9, content: Content::Inbox { mailbox: [7; 32], relay } };
            let bytes = p.encode().unwrap();
            assert_eq!(Payload::decode(&bytes).unwrap(), p);
        }
        let p =
            Payload { id: [0; 16], sent_at: 0, content: Content::Inbox { mailbox: [7; 32], relay: None } };
        let bytes = p.encode().unwrap();
        // Exactly: header, format, mailbox, empty origin.
        assert_eq!(bytes.len(), CONTENT_HEADER_LEN + 1 + 32 + 1);
        assert_eq!(&bytes[..2], &[CONTENT_VERSION, TYPE_INBOX]);
        assert_eq!(bytes[CONTENT_HEADER_LEN], INBOX_FORMAT);
        let mut newer = bytes.clone();
        newer[CONTENT_HEADER_LEN] = 2;
        assert_eq!(Payload::decode(&newer), Err(ContentError::UnsupportedVersion));
        assert_eq!(Payload::decode(&bytes[..bytes.len() - 1]), Err(ContentError::Corrupt));
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert_eq!(Payload::decode(&trailing), Err(ContentError::Corrupt));
        let long = Content::Inbox { mailbox: [0; 32], relay: Some("x".repeat(MAX_ORIGIN_LEN + 1)) };
        assert_eq!(Payload { id: [0; 16], sent_at: 0, content: long }.encode(), Err(ContentError::TooLong));
    }

    #[test]
    fn a_hello_names_the_joiners_relay_and_the_old_form_is_still_read() {
        let old = Content::Hello { name: "Zoë".into(), reply_mailbox: [3; 32], relay: None };
        let old = Payload { id: [1; 16], sent_at: 2, content: old }.encode().unwrap();
        // The form of earlier releases, byte for byte: header, name, mailbox, nothing after.
        assert_eq!(old.len(), CONTENT_HEADER_LEN + 1 + "Zoë".len() + 32);
        let relay = Some("https://relay-two.example".to_owned());
        let new = Content::Hello { name: "Zoë".into(), reply_mailbox: [3; 32], relay: relay.clone() };
        let new = Payload { id: [1; 16], sent_at: 2, content: new };
        let bytes = new.encode().unwrap();
        assert_eq!(&bytes[..old.len()], &old[..]);
        assert_eq!(bytes[old.len()] as usize, "https://relay-two.example".len());
        assert_eq!(Payload::decode(&bytes).unwrap(), new);
        assert!(matches!(Payload::decode(&old).unwrap().content, Content::Hello { relay: None, .. }));
        // An empty origin has one encoding (absent); a present empty one, a cut one, trailing bytes
        // and an over-long one are refused.
        let mut empty = old.clone();
        empty.push(0);
        assert_eq!(Payload::decode(&empty), Err(ContentError::Corrupt));
        assert_eq!(Payload::decode(&bytes[..bytes.len() - 1]), Err(ContentError::Corrupt));
        let mut trailing = bytes.clone();
        trailing.push(b'x');
        assert_eq!(Payload::decode(&trailing), Err(ContentError::Corrupt));
        let long =
            Content::Hello { name: "Zoë".into(), reply_mailbox: [3; 32], relay: Some("x".repeat(256)) };
        assert_eq!(Payload { id: [0; 16], sent_at: 0, content: long }.encode(), Err(ContentError::TooLong));
    }

    #[test]
    fn debug_shows_no_text_or_names() {
        let text = Content::Text { body: "secret words".into() };
        let hello = Content::Hello { name: "Zelda".into(), reply_mailbox: [1; 32], relay: None };
        let printed = format!("{text:?} {hello:?} {:?}", Content::Profile { name: "Zelda".into() });
        assert!(!printed.contains("secret") && !printed.contains("Zelda"), "{printed}");
    }
}
