//! Attachment blobs: encrypted files uploaded in segments over HTTP, behind one trait.
//!
//! A blob is what an attachment is to the relay: a declared number of sealed segments (4 MiB of
//! ciphertext plus its tags each, the last one shorter) that its uploader writes one at a time and
//! then marks complete, and that anyone holding its read capability downloads segment by segment.
//! The relay never learns what a blob holds, who uploaded it or who reads it: only its padded size,
//! its timing and how often segments are fetched. The routes are in [`routes`] (specified in
//! docs/relay-protocol.md, "Attachment blobs").
//!
//! Storage is behind [`BlobStore`]: [`DiskBlobStore`] (segment files under `--data-dir`, metadata
//! in a redb file of its own) is the default, [`MemoryBlobStore`] the test double, and `S3BlobStore`
//! (feature `s3`) keeps them in an S3-compatible bucket that several relays share. The trait is
//! shaped for an object store as well: a segment is written whole under its own key, only after its
//! hash is checked, and never replaced by different bytes (a conditional write).

pub mod disk;
pub mod memory;
pub mod routes;
#[cfg(feature = "s3")]
pub mod s3;

use std::future::Future;
use std::pin::Pin;

use base64::Engine as _;
use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use tokio::io::{AsyncWrite, AsyncWriteExt as _};
use zeroize::{Zeroize, ZeroizeOnDrop};

pub use disk::DiskBlobStore;
pub use memory::MemoryBlobStore;
pub use routes::{BlobService, ServiceLimits};
#[cfg(feature = "s3")]
pub use s3::{S3BlobStore, S3Options};

/// A boxed, sendable future, so that [`BlobStore`] stays object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The body of a segment upload, as it arrives from the network.
pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// The bytes of a stored segment, read as they are sent.
pub type SegmentStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send + Sync>>;

/// Plaintext bytes in one chunk of the attachment format.
pub const CHUNK_LEN: u64 = 64 * 1024;
/// The AEAD tag sealed with each chunk.
pub const TAG_LEN: u64 = 16;
/// Chunks in one segment.
pub const CHUNKS_PER_SEGMENT: u64 = 64;
/// Bytes of a full sealed segment: 64 chunks of 64 KiB, each with its tag (4 MiB + 1 KiB).
pub const SEGMENT_LEN: u64 = CHUNKS_PER_SEGMENT * (CHUNK_LEN + TAG_LEN);
/// Most segments of one blob: a file of 1 GiB padded by the 5 % rule seals into 271 segments.
pub const MAX_SEGMENTS: u16 = 271;
/// The largest blob the format can produce (271 full segments), the default per-blob limit.
pub const MAX_BLOB_LEN: u64 = MAX_SEGMENTS as u64 * SEGMENT_LEN;

/// Random bytes of a blob id.
pub const ID_LEN: usize = 16;
/// Random bytes of a capability.
pub const CAPABILITY_LEN: usize = 32;

/// What the blob store keeps, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobLimits {
    /// Largest declared size of one blob, in sealed bytes (at most [`MAX_BLOB_LEN`]).
    pub max_blob_bytes: u64,
    /// Most bytes reserved by all blobs together (declared sizes, finished or not).
    pub max_stored_bytes: u64,
    /// Lifetime of a blob that is not complete, from its creation, in milliseconds.
    pub upload_ttl_ms: u64,
    /// Lifetime of a complete blob, from its completion, in milliseconds.
    pub blob_ttl_ms: u64,
}

impl Default for BlobLimits {
    fn default() -> Self {
        Self {
            max_blob_bytes: MAX_BLOB_LEN,
            max_stored_bytes: 8 * 1024 * 1024 * 1024,
            upload_ttl_ms: 24 * 3600 * 1000,
            blob_ttl_ms: 7 * 24 * 3600 * 1000,
        }
    }
}

/// A blob's id: 16 random bytes, written in base64url without padding (22 characters).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobId(pub [u8; ID_LEN]);

impl BlobId {
    /// A fresh random id.
    pub fn random() -> Result<Self, BlobError> {
        let mut id = [0; ID_LEN];
        getrandom::fill(&mut id).map_err(|_| BlobError::Backend("no randomness".into()))?;
        Ok(Self(id))
    }

    /// The id in its text form.
    pub fn encode(&self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.0)
    }

    /// Parses the text form; `None` for anything else.
    pub fn decode(text: &str) -> Option<Self> {
        decode_fixed(text).map(Self)
    }
}

/// Not printed: an id in a log would link the log line to a message that names the blob.
impl std::fmt::Debug for BlobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlobId(..)")
    }
}

/// A write or read capability: 32 random bytes that the relay keeps only as a SHA-256.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Capability([u8; CAPABILITY_LEN]);

impl Capability {
    /// A fresh random capability.
    pub fn random() -> Result<Self, BlobError> {
        let mut cap = [0; CAPABILITY_LEN];
        getrandom::fill(&mut cap).map_err(|_| BlobError::Backend("no randomness".into()))?;
        Ok(Self(cap))
    }

    /// The capability in its text form (base64url without padding, 43 characters).
    pub fn encode(&self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.0)
    }

    /// Parses the text form; `None` for anything else.
    pub fn decode(text: &str) -> Option<Self> {
        decode_fixed(text).map(Self)
    }

    /// What the relay stores: SHA-256 of the 32 bytes.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.0).into()
    }

    /// Whether this capability is the one whose hash is `stored`, in constant time.
    pub fn matches(&self, stored: &[u8; 32]) -> bool {
        self.hash().ct_eq(stored).into()
    }
}

impl std::fmt::Debug for Capability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Capability(..)")
    }
}

fn decode_fixed<const N: usize>(text: &str) -> Option<[u8; N]> {
    // Only the canonical length: base64 of N bytes without padding.
    if text.len() != (N * 4).div_ceil(3) {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).ok()?;
    bytes.try_into().ok()
}

/// A blob to create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewBlob {
    /// Number of segments (1 to [`MAX_SEGMENTS`]).
    pub segments: u16,
    /// Total sealed size: every segment but the last is [`SEGMENT_LEN`] bytes.
    pub size: u64,
    /// SHA-256 of the write capability.
    pub write_hash: [u8; 32],
    /// SHA-256 of the read capability.
    pub read_hash: [u8; 32],
}

impl NewBlob {
    /// Checks the declared shape against the format and `limits`.
    pub fn check(&self, limits: &BlobLimits) -> Result<(), BlobError> {
        if self.segments == 0 || self.segments > MAX_SEGMENTS {
            return Err(BlobError::Invalid("segments must be 1 to 271"));
        }
        let full = u64::from(self.segments - 1) * SEGMENT_LEN;
        if self.size <= full || self.size > full + SEGMENT_LEN {
            return Err(BlobError::Invalid("size does not match the number of segments"));
        }
        if self.size > limits.max_blob_bytes.min(MAX_BLOB_LEN) {
            return Err(BlobError::TooLarge);
        }
        Ok(())
    }
}

/// What the store knows of one blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    /// Number of segments.
    pub segments: u16,
    /// Total sealed size.
    pub size: u64,
    /// Whether the uploader marked it complete (then it is readable and no longer writable).
    pub complete: bool,
    /// When the store deletes it, ms since the Unix epoch.
    pub expires_ms: u64,
    /// SHA-256 of the write capability.
    pub write_hash: [u8; 32],
    /// SHA-256 of the read capability.
    pub read_hash: [u8; 32],
    /// The SHA-256 of each stored segment, by index (`None`: not stored).
    pub stored: Vec<Option<[u8; 32]>>,
}

impl BlobInfo {
    /// A blob just created (nothing stored yet).
    pub fn new(new: &NewBlob, expires_ms: u64) -> Self {
        Self {
            segments: new.segments,
            size: new.size,
            complete: false,
            expires_ms,
            write_hash: new.write_hash,
            read_hash: new.read_hash,
            stored: vec![None; usize::from(new.segments)],
        }
    }

    /// The length segment `index` must have, or `None` past the last segment.
    pub fn segment_len(&self, index: u16) -> Option<u64> {
        segment_len(self.segments, self.size, index)
    }

    /// Bytes of the segments stored so far.
    pub fn stored_bytes(&self) -> u64 {
        (0..self.segments)
            .filter(|&i| self.stored.get(usize::from(i)).is_some_and(Option::is_some))
            .filter_map(|i| self.segment_len(i))
            .sum()
    }

    /// Indices of the segments not stored yet.
    pub fn missing(&self) -> Vec<u16> {
        (0..self.segments).filter(|&i| self.stored.get(usize::from(i)).is_none_or(Option::is_none)).collect()
    }

    /// Where an upload of segment `index` with hash `sha256` stands before any byte is read:
    /// `Ok(true)` if it is already stored with that hash, `Ok(false)` if it may be written.
    pub fn check_put(&self, index: u16, sha256: &[u8; 32]) -> Result<bool, BlobError> {
        if self.complete {
            return Err(BlobError::Complete);
        }
        match self.stored.get(usize::from(index)) {
            None => Err(BlobError::NoSuchSegment),
            Some(None) => Ok(false),
            Some(Some(stored)) if stored == sha256 => Ok(true),
            Some(Some(_)) => Err(BlobError::SegmentConflict),
        }
    }
}

/// The length of segment `index` of a blob of `segments` segments and `size` bytes.
pub fn segment_len(segments: u16, size: u64, index: u16) -> Option<u64> {
    if index >= segments {
        return None;
    }
    if index + 1 < segments { Some(SEGMENT_LEN) } else { Some(size - u64::from(segments - 1) * SEGMENT_LEN) }
}

/// How a segment upload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// The segment is now stored.
    Stored,
    /// The same segment (same hash) was already stored; nothing changed.
    AlreadyStored,
}

/// A stored segment, ready to be sent.
pub struct SegmentRead {
    /// Its length in bytes.
    pub len: u64,
    /// Its bytes.
    pub body: SegmentStream,
}

/// Totals of what is stored (never which blobs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlobStats {
    /// Blobs held, finished or not.
    pub blobs: u64,
    /// Of those, blobs not complete yet.
    pub uploading: u64,
    /// Bytes reserved: the declared sizes of every blob held.
    pub reserved_bytes: u64,
    /// Bytes of segments actually stored.
    pub stored_bytes: u64,
    /// Blobs deleted by expiry since start.
    pub expired: u64,
}

impl BlobStats {
    /// The totals in Prometheus text exposition format (appended to `/metrics`).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(768);
        let mut line = |name: &str, kind: &str, help: &str, value: u64| {
            use std::fmt::Write as _;
            let _ = writeln!(
                out,
                "# HELP doorless_{name} {help}\n# TYPE doorless_{name} {kind}\ndoorless_{name} {value}"
            );
        };
        line("blobs", "gauge", "Attachment blobs held, finished or not.", self.blobs);
        line("blobs_uploading", "gauge", "Attachment blobs not complete yet.", self.uploading);
        line("blob_reserved_bytes", "gauge", "Bytes reserved by attachment blobs.", self.reserved_bytes);
        line("blob_stored_bytes", "gauge", "Bytes of attachment segments stored.", self.stored_bytes);
        line("blobs_expired_total", "counter", "Attachment blobs deleted by expiry.", self.expired);
        out
    }
}

/// Why a blob operation failed. Never carries an id, a capability or content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlobError {
    /// The request is not well formed (the text says which part, never what it held).
    #[error("invalid request: {0}")]
    Invalid(&'static str),
    /// No capability was presented, or it is not this blob's.
    #[error("missing or wrong capability")]
    BadCapability,
    /// No such blob (never created, cancelled, or expired).
    #[error("no such blob")]
    NotFound,
    /// The segment index is past the blob's last segment.
    #[error("no such segment")]
    NoSuchSegment,
    /// The declared size is above the relay's per-blob limit.
    #[error("blob larger than this relay accepts")]
    TooLarge,
    /// Reserving the blob would exceed the relay's storage quota; nothing was reserved.
    #[error("relay blob quota reached")]
    QuotaExceeded,
    /// The uploaded segment is not as long as the blob's shape says; nothing was stored.
    #[error("segment has the wrong length")]
    WrongLength,
    /// The uploaded bytes do not have the stated SHA-256; nothing was stored.
    #[error("segment does not match its hash")]
    HashMismatch,
    /// The segment is already stored with another hash; it is never replaced.
    #[error("segment already stored with another hash")]
    SegmentConflict,
    /// Another upload of the same segment is in progress.
    #[error("segment upload already in progress")]
    SegmentBusy,
    /// The blob is complete: no more segments can be written.
    #[error("blob already complete")]
    Complete,
    /// The blob is not complete: segments are missing (listed), so it cannot be completed or read.
    #[error("blob incomplete ({} segments missing)", missing.len())]
    Incomplete {
        /// Indices of the missing segments.
        missing: Vec<u16>,
    },
    /// This connection created blobs faster than the relay allows; retry later.
    #[error("too many blobs created on this connection")]
    RateLimited,
    /// The relay is handling as many uploads as it allows; retry later.
    #[error("too many uploads in progress")]
    Busy,
    /// The disk is full (or a file size limit was hit); nothing from this upload was kept.
    #[error("relay disk full")]
    DiskFull,
    /// The upload's body ended early or broke; nothing was stored.
    #[error("request body ended early")]
    BodyAborted,
    /// The storage backend failed; nothing from this operation was stored.
    #[error("storage backend failure: {0}")]
    Backend(String),
}

/// Maps an I/O error of the storage to a [`BlobError`]: a full disk is its own case.
pub(crate) fn storage_error(err: &std::io::Error) -> BlobError {
    use std::io::ErrorKind;
    match err.kind() {
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded | ErrorKind::FileTooLarge => BlobError::DiskFull,
        _ => BlobError::Backend(err.to_string()),
    }
}

/// Most bytes of a request body the relay reads and discards to answer a refused upload cleanly.
/// A client whose body is not read sees its connection reset instead of the answer (and would
/// retry); a body past this is not read, and the connection is closed after the answer.
pub const DRAIN_LIMIT: u64 = SEGMENT_LEN + CHUNK_LEN;

/// Reads and discards what is left of `body`, up to [`DRAIN_LIMIT`] bytes in all counting
/// `already` read.
pub(crate) async fn drain(body: &mut BodyStream, already: u64) {
    let mut read = already;
    while read <= DRAIN_LIMIT {
        match body.next().await {
            Some(Ok(chunk)) => read = read.saturating_add(chunk.len() as u64),
            Some(Err(_)) | None => return,
        }
    }
}

/// Reads an upload from `body` into `out`, checking as it goes that it is exactly `expected_len`
/// bytes with SHA-256 `expected`. Stops storing as soon as the body is too long (the rest is
/// drained, see [`drain`]). Never holds more than one received chunk in memory.
pub(crate) async fn receive_segment<W: AsyncWrite + Unpin>(
    body: &mut BodyStream,
    out: &mut W,
    expected_len: u64,
    expected: &[u8; 32],
) -> Result<(), BlobError> {
    let mut hasher = Sha256::new();
    let mut received = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|_| BlobError::BodyAborted)?;
        received = received.saturating_add(chunk.len() as u64);
        if received > expected_len {
            drain(body, received).await;
            return Err(BlobError::WrongLength);
        }
        hasher.update(&chunk);
        if let Err(err) = out.write_all(&chunk).await {
            drain(body, received).await;
            return Err(storage_error(&err));
        }
    }
    if received != expected_len {
        return Err(BlobError::WrongLength);
    }
    let actual: [u8; 32] = hasher.finalize().into();
    if &actual != expected {
        return Err(BlobError::HashMismatch);
    }
    out.flush().await.map_err(|err| storage_error(&err))
}

/// Storage of attachment blobs.
///
/// Contract shared by every implementation (tested against both in `relay/tests/blobs.rs`):
/// - `create` reserves the blob's declared size against `max_stored_bytes` atomically: concurrent
///   creates never reserve more than the quota;
/// - `put_segment` stores a segment only whole, with the stated hash and the length the blob's
///   shape gives it; on any failure nothing of it is stored and the blob is unchanged. A segment
///   stored once is never replaced with other bytes. Callers do not run two uploads of the same
///   segment at once in one process ([`BlobService`] refuses the second); an implementation shared
///   between processes must still never replace a stored segment (a conditional write);
/// - a blob is readable only once complete, and no longer writable then;
/// - a blob past its expiry time is gone for every operation, whether or not `expire` has run.
pub trait BlobStore: Send + Sync + 'static {
    /// Creates blob `id` and reserves its declared size; resolves with its record.
    fn create(&self, id: BlobId, new: NewBlob) -> BoxFuture<'static, Result<BlobInfo, BlobError>>;

    /// The record of blob `id`.
    fn info(&self, id: BlobId) -> BoxFuture<'static, Result<BlobInfo, BlobError>>;

    /// Stores segment `index` of blob `id` from `body`, which must have SHA-256 `sha256`;
    /// resolves once the segment is durable.
    fn put_segment(
        &self,
        id: BlobId,
        index: u16,
        sha256: [u8; 32],
        body: BodyStream,
    ) -> BoxFuture<'static, Result<PutOutcome, BlobError>>;

    /// Marks blob `id` complete (every segment must be stored); its expiry becomes
    /// `blob_ttl_ms` from now.
    fn complete(&self, id: BlobId) -> BoxFuture<'static, Result<BlobInfo, BlobError>>;

    /// Deletes blob `id` and everything stored for it, and frees its reservation.
    fn delete(&self, id: BlobId) -> BoxFuture<'static, Result<(), BlobError>>;

    /// Segment `index` of the complete blob `id`.
    fn read_segment(&self, id: BlobId, index: u16) -> BoxFuture<'static, Result<SegmentRead, BlobError>>;

    /// Deletes every expired blob; resolves with how many.
    fn expire(&self) -> BoxFuture<'static, Result<u64, BlobError>>;

    /// Current totals.
    fn stats(&self) -> BlobStats;
}

/// Checks that reserving `size` more bytes keeps `reserved` within `limits`.
pub(crate) fn check_quota(reserved: u64, size: u64, limits: &BlobLimits) -> Result<(), BlobError> {
    if reserved.saturating_add(size) > limits.max_stored_bytes {
        return Err(BlobError::QuotaExceeded);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_sizes_follow_the_format() {
        assert_eq!(SEGMENT_LEN, 4_195_328);
        assert_eq!(MAX_BLOB_LEN, 271 * 4_195_328);
        assert_eq!(segment_len(3, 2 * SEGMENT_LEN + 16, 2), Some(16));
        assert_eq!(segment_len(3, 2 * SEGMENT_LEN + 16, 1), Some(SEGMENT_LEN));
        assert_eq!(segment_len(3, 2 * SEGMENT_LEN + 16, 3), None);
    }

    #[test]
    fn shapes_that_do_not_fit_the_format_are_refused() {
        let limits = BlobLimits::default();
        let new = |segments, size| NewBlob { segments, size, write_hash: [0; 32], read_hash: [0; 32] };
        assert!(new(1, 1).check(&limits).is_ok());
        assert!(new(271, MAX_BLOB_LEN).check(&limits).is_ok());
        assert!(new(0, 0).check(&limits).is_err());
        assert!(new(272, MAX_BLOB_LEN + 1).check(&limits).is_err());
        assert!(new(2, SEGMENT_LEN).check(&limits).is_err(), "the last segment may not be empty");
        assert!(new(1, SEGMENT_LEN + 1).check(&limits).is_err());
        let small = BlobLimits { max_blob_bytes: 1000, ..limits };
        assert_eq!(new(1, 1001).check(&small), Err(BlobError::TooLarge));
    }

    #[test]
    fn capabilities_round_trip_and_compare_by_hash() {
        let cap = Capability::random().unwrap();
        let text = cap.encode();
        assert_eq!(text.len(), 43);
        let back = Capability::decode(&text).unwrap();
        assert!(back.matches(&cap.hash()));
        assert!(!Capability::random().unwrap().matches(&cap.hash()));
        assert!(Capability::decode(&text[1..]).is_none());
        assert_eq!(format!("{cap:?}"), "Capability(..)");
        let id = BlobId::random().unwrap();
        assert_eq!(BlobId::decode(&id.encode()), Some(id));
    }
}
