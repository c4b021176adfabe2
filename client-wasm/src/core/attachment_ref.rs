//! The body of an attachment message (content type 6, docs/protocol.md §7 and §14): where a sealed
//! file is stored, how to read and open it, and what to call it.
//!
//! Encoding: `format(1) = 1 || len(1) || relay origin || blob id(16) || read capability(32) ||
//! K(32) || nonce(16) || length(8) || padded length(8) || digest(32) || len(1) || MIME type ||
//! len(1) || file name || len(2) || thumbnail || expires(8)`, integers big-endian.

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::attachment::{ATTACHMENT_NONCE_LEN, AttachmentSecret, Layout};
use super::codec::Reader;
use super::content::ContentError;
use doorless_frames::RelayOrigin;

/// Version of the attachment body (its first byte), so later fields can be added.
pub const ATTACHMENT_FORMAT: u8 = 1;
/// Longest MIME type, in bytes.
pub const MAX_MIME_LEN: usize = 127;
/// Longest file name, in bytes of UTF-8.
pub const MAX_FILE_NAME_LEN: usize = 255;
/// Largest thumbnail, in bytes (the message must fit in one envelope).
pub const MAX_THUMBNAIL_LEN: usize = 16 * 1024;
/// The name a file gets when nothing of its own name is left after sanitising.
pub const FALLBACK_FILE_NAME: &str = "file";
/// The MIME type of a file whose type is unknown or not a valid MIME type.
pub const OCTET_STREAM: &str = "application/octet-stream";

/// Where a sealed file is and how to open it: the body of [`super::Content::Attachment`].
///
/// Secret (the read capability and `K`): zeroized on drop; `Debug` prints sizes only.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct AttachmentRef {
    /// The relay holding the blob, as its normalised origin (`https://host[:port]`).
    pub relay: String,
    /// The blob id (the relay chose it).
    pub blob: [u8; 16],
    /// The blob's read capability.
    pub read: [u8; 32],
    /// The file's key `K`.
    pub key: [u8; 32],
    /// The file's nonce.
    pub nonce: [u8; ATTACHMENT_NONCE_LEN],
    /// The file's true length in bytes.
    pub len: u64,
    /// The padded length (must be `padded_len(len)`).
    pub padded: u64,
    /// SHA-256 over the sealed segments' SHA-256s.
    pub digest: [u8; 32],
    /// The MIME type the sender gave (lower case `type/subtype`); a hint, never trusted.
    pub mime: String,
    /// The file name, sanitised by [`sanitize_file_name`].
    pub name: String,
    /// A small preview image (JPEG, PNG or WebP) for images and videos; empty for none.
    pub thumbnail: Vec<u8>,
    /// When the relay deletes the blob, unix seconds.
    pub expires: u64,
}

impl std::fmt::Debug for AttachmentRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttachmentRef")
            .field("len", &self.len)
            .field("thumbnail", &self.thumbnail.len())
            .finish_non_exhaustive()
    }
}

impl AttachmentRef {
    /// The key and nonce to open the file with.
    pub fn secret(&self) -> AttachmentSecret {
        AttachmentSecret::from_parts(self.key, self.nonce)
    }

    /// The file's layout (sizes and segments).
    pub fn layout(&self) -> Result<Layout, ContentError> {
        Layout::with_padded(self.len, self.padded).map_err(|_| ContentError::Corrupt)
    }

    /// Appends the encoding; fails if a field is over its limit or not in its canonical form.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<(), ContentError> {
        self.write(out, Self::check)
    }

    fn write(
        &self,
        out: &mut Vec<u8>,
        check: impl Fn(&Self) -> Result<(), ContentError>,
    ) -> Result<(), ContentError> {
        check(self)?;
        out.push(ATTACHMENT_FORMAT);
        out.push(self.relay.len() as u8);
        out.extend_from_slice(self.relay.as_bytes());
        out.extend_from_slice(&self.blob);
        out.extend_from_slice(&self.read);
        out.extend_from_slice(&self.key);
        out.extend_from_slice(&self.nonce);
        out.extend_from_slice(&self.len.to_be_bytes());
        out.extend_from_slice(&self.padded.to_be_bytes());
        out.extend_from_slice(&self.digest);
        out.push(self.mime.len() as u8);
        out.extend_from_slice(self.mime.as_bytes());
        out.push(self.name.len() as u8);
        out.extend_from_slice(self.name.as_bytes());
        out.extend_from_slice(&(self.thumbnail.len() as u16).to_be_bytes());
        out.extend_from_slice(&self.thumbnail);
        out.extend_from_slice(&self.expires.to_be_bytes());
        Ok(())
    }

    /// The encoding without the checks (tests make refused forms with it).
    #[cfg(test)]
    fn encode_unchecked(&self, out: &mut Vec<u8>) {
        let check = |_: &Self| Ok(());
        self.write(out, check).unwrap_or_default();
    }

    /// Reads the encoding; never panics.
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, ContentError> {
        if r.u8().ok_or(ContentError::Corrupt)? != ATTACHMENT_FORMAT {
            return Err(ContentError::UnsupportedVersion);
        }
        let relay = short_text(r)?;
        let blob = r.array().ok_or(ContentError::Corrupt)?;
        let read = r.array().ok_or(ContentError::Corrupt)?;
        let key = r.array().ok_or(ContentError::Corrupt)?;
        let nonce = r.array().ok_or(ContentError::Corrupt)?;
        let len = r.u64().ok_or(ContentError::Corrupt)?;
        let padded = r.u64().ok_or(ContentError::Corrupt)?;
        let digest = r.array().ok_or(ContentError::Corrupt)?;
        let mime = short_text(r)?;
        let name = short_text(r)?;
        let thumbnail_len = usize::from(r.u16().ok_or(ContentError::Corrupt)?);
        if thumbnail_len > MAX_THUMBNAIL_LEN {
            return Err(ContentError::TooLong);
        }
        let thumbnail = r.take(thumbnail_len).ok_or(ContentError::Corrupt)?.to_vec();
        let expires = r.u64().ok_or(ContentError::Corrupt)?;
        let attachment =
            Self { relay, blob, read, key, nonce, len, padded, digest, mime, name, thumbnail, expires };
        attachment.check()?;
        Ok(attachment)
    }

    /// Every field in its one accepted form: a normalised relay origin, sizes that make a layout, a
    /// valid lower-case MIME type, a sanitised file name, a thumbnail within its limit.
    fn check(&self) -> Result<(), ContentError> {
        if self.mime.len() > MAX_MIME_LEN || self.thumbnail.len() > MAX_THUMBNAIL_LEN {
            return Err(ContentError::TooLong);
        }
        if self.name.len() > MAX_FILE_NAME_LEN || self.relay.len() > usize::from(u8::MAX) {
            return Err(ContentError::TooLong);
        }
        let origin_ok = RelayOrigin::parse(&self.relay).is_ok_and(|o| o.as_str() == self.relay);
        if !origin_ok || !is_mime_type(&self.mime) || sanitize_file_name(&self.name) != self.name {
            return Err(ContentError::Corrupt);
        }
        self.layout().map(|_| ())
    }
}

/// `len(1) || UTF-8`.
fn short_text(r: &mut Reader<'_>) -> Result<String, ContentError> {
    let len = usize::from(r.u8().ok_or(ContentError::Corrupt)?);
    let bytes = r.take(len).ok_or(ContentError::Corrupt)?;
    Ok(std::str::from_utf8(bytes).map_err(|_| ContentError::Corrupt)?.to_owned())
}

/// Whether `mime` is `type/subtype` in lower case, each a non-empty RFC 6838 name (letters,
/// digits and `!#$&-^_.+`), without parameters.
pub fn is_mime_type(mime: &str) -> bool {
    let name = |part: &str| {
        !part.is_empty()
            && part.len() <= 63
            && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$&-^_.+".contains(&b))
    };
    mime.len() <= MAX_MIME_LEN && mime.split_once('/').is_some_and(|(t, s)| name(t) && name(s))
}

/// The MIME type to send for a file the browser typed `mime`: lower case, without parameters, and
/// [`OCTET_STREAM`] if it is not a valid type.
pub fn normalize_mime(mime: &str) -> String {
    let bare = mime.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    if is_mime_type(&bare) { bare } else { OCTET_STREAM.to_owned() }
}

/// A file name safe to show and to save under: no path separators or characters Windows refuses
/// (`/ \ : * ? " < > |`, replaced by `_`), no control or bidirectional-override characters
/// (removed), no leading or trailing spaces or dots (so no hidden file and no `..`), at most
/// [`MAX_FILE_NAME_LEN`] bytes (cut at a character boundary); [`FALLBACK_FILE_NAME`] if nothing is
/// left. Applying it twice changes nothing.
pub fn sanitize_file_name(name: &str) -> String {
    let mut clean: String = name
        .chars()
        .filter(|&c| !c.is_control() && !is_bidi_control(c))
        .map(|c| if matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|') { '_' } else { c })
        .collect();
    loop {
        let trimmed = clean.trim_matches(|c: char| c.is_whitespace() || c == '.');
        let mut end = trimmed.len().min(MAX_FILE_NAME_LEN);
        while !trimmed.is_char_boundary(end) {
            end -= 1;
        }
        let next = trimmed[..end].to_owned();
        if next == clean {
            break;
        }
        clean = next;
    }
    if clean.is_empty() { FALLBACK_FILE_NAME.to_owned() } else { clean }
}

/// Characters that reorder text around them (a name like `txt.exe` shown as `exe.txt`).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{061C}')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{Content, Payload};

    fn sample() -> AttachmentRef {
        AttachmentRef {
            relay: "https://relay.example:8443".into(),
            blob: [1; 16],
            read: [2; 32],
            key: [3; 32],
            nonce: [4; 16],
            len: 70_000,
            padded: crate::core::attachment::padded_len(70_000).unwrap(),
            digest: [5; 32],
            mime: "image/png".into(),
            name: "photo.png".into(),
            thumbnail: vec![6; 10],
            expires: 1_700_000_000,
        }
    }

    fn encode(a: AttachmentRef) -> Result<Vec<u8>, ContentError> {
        Payload { id: [9; 16], sent_at: 7, content: Content::Attachment(Box::new(a)) }.encode()
    }

    #[test]
    fn attachments_round_trip_in_one_exact_form() {
        let bytes = encode(sample()).unwrap();
        let header = crate::core::content::CONTENT_HEADER_LEN;
        let body = 1 + 1 + 26 + 16 + 32 + 32 + 16 + 8 + 8 + 32 + 1 + 9 + 1 + 9 + 2 + 10 + 8;
        assert_eq!(bytes.len(), header + body);
        assert_eq!((bytes[1], bytes[header]), (6, ATTACHMENT_FORMAT));
        let decoded = Payload::decode(&bytes).unwrap();
        assert_eq!(decoded.content, Content::Attachment(Box::new(sample())));
        assert_eq!(decoded.encode().unwrap(), bytes);
        let mut newer = bytes.clone();
        newer[header] = 2;
        assert_eq!(Payload::decode(&newer), Err(ContentError::UnsupportedVersion));
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert_eq!(Payload::decode(&trailing), Err(ContentError::Corrupt));
        for cut in header..bytes.len() {
            assert!(Payload::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        // Without a thumbnail, the largest message still fits one envelope.
        let mut big = sample();
        big.thumbnail = vec![0; MAX_THUMBNAIL_LEN];
        big.name = "n".repeat(MAX_FILE_NAME_LEN);
        assert!(encode(big).unwrap().len() <= crate::core::MAX_PLAINTEXT_LEN);
    }

    #[test]
    fn attachments_with_a_field_out_of_form_are_refused() {
        let refused = |change: fn(&mut AttachmentRef), error| {
            let mut a = sample();
            change(&mut a);
            assert_eq!(encode(a.clone()), Err(error));
            // The same bytes made by hand are refused when read.
            let mut bytes = encode(sample()).unwrap();
            let header = crate::core::content::CONTENT_HEADER_LEN;
            bytes.truncate(header);
            a.encode_unchecked(&mut bytes);
            assert_eq!(Payload::decode(&bytes), Err(error));
        };
        refused(|a| a.relay = "https://Relay.example:8443".into(), ContentError::Corrupt);
        refused(|a| a.relay = "wss://relay.example/ws".into(), ContentError::Corrupt);
        refused(|a| a.relay = String::new(), ContentError::Corrupt);
        refused(|a| a.padded = 70_000, ContentError::Corrupt);
        refused(|a| a.len = (1 << 30) + 1, ContentError::Corrupt);
        refused(|a| a.mime = "Image/PNG".into(), ContentError::Corrupt);
        refused(|a| a.mime = String::new(), ContentError::Corrupt);
        refused(|a| a.name = "../x".into(), ContentError::Corrupt);
        refused(|a| a.name = String::new(), ContentError::Corrupt);
        refused(|a| a.thumbnail = vec![0; MAX_THUMBNAIL_LEN + 1], ContentError::TooLong);
    }

    #[test]
    fn file_names_are_sanitised_once_and_for_all() {
        for (raw, clean) in [
            ("photo.jpg", "photo.jpg"),
            ("../../etc/passwd", "_.._etc_passwd"),
            (".bashrc", "bashrc"),
            ("  a:b*c?.txt. ", "a_b_c_.txt"),
            ("evil\u{202E}gpj.exe", "evilgpj.exe"),
            ("tab\there", "tabhere"),
            ("...", FALLBACK_FILE_NAME),
            ("", FALLBACK_FILE_NAME),
        ] {
            assert_eq!(sanitize_file_name(raw), clean, "{raw:?}");
            assert_eq!(sanitize_file_name(clean), clean);
        }
        let long = format!("{}.bin", "é".repeat(200));
        let cut = sanitize_file_name(&long);
        assert!(cut.len() <= MAX_FILE_NAME_LEN && cut.chars().all(|c| c == 'é'), "{cut}");
        assert_eq!(sanitize_file_name(&cut), cut);
    }

    #[test]
    fn mime_types_are_normalised() {
        assert_eq!(normalize_mime("Image/PNG"), "image/png");
        assert_eq!(normalize_mime("text/plain; charset=utf-8"), "text/plain");
        assert_eq!(normalize_mime(""), OCTET_STREAM);
        assert_eq!(normalize_mime("no slash"), OCTET_STREAM);
        assert_eq!(normalize_mime("a/b/c"), OCTET_STREAM);
        assert!(is_mime_type("application/vnd.openxmlformats-officedocument.wordprocessingml.document"));
    }
}
