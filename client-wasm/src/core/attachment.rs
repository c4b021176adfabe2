//! Attachments: files up to 1 GiB encrypted in 4 MiB segments with the STREAM construction, so that
//! neither the sending nor the receiving tab ever holds a file whole (docs/protocol.md §14).
//!
//! A file gets a fresh key `K` and 16-byte nonce. The payload key and STREAM nonce prefix are
//! `HKDF-SHA256(salt = nonce, ikm = K, info = "Doorless-v2 attachment")`; the plaintext, padded with
//! zeros to [`padded_len`], is cut into 64 KiB chunks, each sealed with ChaCha20-Poly1305 under
//! `nonce prefix (7) ‖ chunk index (4, big-endian) ‖ last-chunk flag (1)` (STREAM, "Rogaway-flavored",
//! as `aead-stream`'s `StreamBE32` builds it). Truncation, reordering and chunks from another file all
//! fail authentication. 64 chunks form a segment, the unit of upload, resume and storage; the
//! attachment message binds the ciphertext with a digest over the segments' SHA-256s, since
//! ChaCha20-Poly1305 does not commit to its key.
//!
//! Every segment can be sealed or opened on its own, in any order, so an upload or a download can
//! resume at any segment and keep several in flight.

use std::fmt;
use std::ops::Range;

use aead_stream::{NewStream, StreamBE32, StreamPrimitive};
use chacha20poly1305::ChaCha20Poly1305;
use chacha20poly1305::aead::array::Array;
use rand_core::CryptoRng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::aead::TAG_LEN;
use super::kdf::attachment_keys;

/// Plaintext bytes per STREAM chunk (64 KiB).
pub const CHUNK_LEN: usize = 64 * 1024;
/// Chunks per segment.
pub const CHUNKS_PER_SEGMENT: usize = 64;
/// Plaintext bytes per segment (4 MiB); every segment but the last is this long.
pub const SEGMENT_LEN: usize = CHUNK_LEN * CHUNKS_PER_SEGMENT;
/// Ciphertext bytes of a full segment: its chunks, each followed by its 16-byte tag.
pub const SEALED_SEGMENT_LEN: usize = SEGMENT_LEN + CHUNKS_PER_SEGMENT * TAG_LEN;
/// The largest file that can be sent (1 GiB).
pub const MAX_ATTACHMENT_LEN: u64 = 1 << 30;
/// The smallest padded length: every file is at least one full chunk.
pub const MIN_PADDED_LEN: u64 = CHUNK_LEN as u64;
/// Length of the per-file nonce that salts the key derivation.
pub const ATTACHMENT_NONCE_LEN: usize = 16;

/// Why an attachment could not be laid out, sealed or opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AttachmentError {
    /// The file is longer than [`MAX_ATTACHMENT_LEN`].
    #[error("the file is larger than 1 GiB")]
    TooLarge,
    /// The padded length given with an attachment is not the one the padding rule gives its length.
    #[error("the attachment's sizes do not match")]
    Layout,
    /// There is no segment with this index in the attachment.
    #[error("no such segment in the attachment")]
    SegmentIndex,
    /// The segment's data (to seal) or ciphertext (to open) has the wrong length.
    #[error("a segment of the attachment has the wrong length")]
    SegmentLength,
    /// A chunk did not authenticate: changed, truncated, reordered, or from another file.
    #[error("a segment of the attachment was changed")]
    Tampered,
    /// The padding after the file's last byte is not all zero.
    #[error("the attachment's padding was changed")]
    Padding,
    /// The segments' hashes do not add up to the digest the message carries, or a segment does not
    /// hash to the value listed for it.
    #[error("the attachment does not match its message")]
    Digest,
}

/// The padded length of a file of `len` bytes: `max(64 KiB, ⌊1.05^k⌋)` for the smallest integer `k`
/// with `⌊1.05^k⌋ ≥ len` (at most 5 % larger, about 200 distinct sizes up to 1 GiB; Signal's rule).
/// The powers are computed with `libm`, which gives the same bits natively and in wasm.
pub fn padded_len(len: u64) -> Result<u64, AttachmentError> {
    if len > MAX_ATTACHMENT_LEN {
        return Err(AttachmentError::TooLarge);
    }
    if len <= MIN_PADDED_LEN {
        return Ok(MIN_PADDED_LEN);
    }
    // 1.05^227 ≈ 6.4e4 is below 64 KiB, and 1.05^430 ≈ 1.3e9 is above 1 GiB: the loop always returns.
    (227..=430)
        .map(|k| libm::floor(libm::pow(1.05, f64::from(k))) as u64)
        .find(|&size| size >= len)
        .ok_or(AttachmentError::TooLarge)
}

/// A file's key `K` and nonce, as the attachment message carries them. Secret.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct AttachmentSecret {
    key: [u8; 32],
    nonce: [u8; ATTACHMENT_NONCE_LEN],
}

impl AttachmentSecret {
    /// A fresh key and nonce for one file. Never seal two different plaintexts under one secret.
    pub fn generate(rng: &mut (impl CryptoRng + ?Sized)) -> Self {
        let mut secret = Self { key: [0; 32], nonce: [0; ATTACHMENT_NONCE_LEN] };
        rng.fill_bytes(&mut secret.key);
        rng.fill_bytes(&mut secret.nonce);
        secret
    }

    /// The secret received in an attachment message.
    pub fn from_parts(key: [u8; 32], nonce: [u8; ATTACHMENT_NONCE_LEN]) -> Self {
        Self { key, nonce }
    }

    /// `K`.
    pub fn key(&self) -> &[u8; 32] {
        &self.key
    }

    /// The per-file nonce.
    pub fn nonce(&self) -> &[u8; ATTACHMENT_NONCE_LEN] {
        &self.nonce
    }

    fn stream(&self) -> StreamBE32<ChaCha20Poly1305> {
        let (key, prefix) = attachment_keys(&self.key, &self.nonce);
        StreamBE32::new(&Array::from(*key), &Array::from(prefix))
    }
}

impl fmt::Debug for AttachmentSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AttachmentSecret(..)")
    }
}

/// The sizes of one attachment: its true length and padded length, and from them its chunks and
/// segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    len: u64,
    padded: u64,
}

impl Layout {
    /// The layout of a file of `len` bytes.
    pub fn new(len: u64) -> Result<Self, AttachmentError> {
        Ok(Self { len, padded: padded_len(len)? })
    }

    /// The layout an attachment message states; `Layout` unless `padded` is what the rule gives.
    pub fn with_padded(len: u64, padded: u64) -> Result<Self, AttachmentError> {
        let layout = Self::new(len)?;
        if layout.padded != padded {
            return Err(AttachmentError::Layout);
        }
        Ok(layout)
    }

    /// The file's true length.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The padded length: what is encrypted, and all the relay learns of the size.
    pub fn padded(&self) -> u64 {
        self.padded
    }

    /// Number of 64 KiB chunks (the last may be shorter).
    pub fn chunks(&self) -> u64 {
        self.padded.div_ceil(CHUNK_LEN as u64)
    }

    /// Number of segments.
    pub fn segments(&self) -> u32 {
        // At most ⌈1.13 GiB / 4 MiB⌉ = 271 segments.
        u32::try_from(self.padded.div_ceil(SEGMENT_LEN as u64)).unwrap_or(u32::MAX)
    }

    /// The bytes of the padded plaintext that segment `index` holds.
    fn padded_range(&self, index: u32) -> Result<Range<u64>, AttachmentError> {
        if index >= self.segments() {
            return Err(AttachmentError::SegmentIndex);
        }
        let start = u64::from(index) * SEGMENT_LEN as u64;
        Ok(start..(start + SEGMENT_LEN as u64).min(self.padded))
    }

    /// The bytes of the file that segment `index` holds (empty for a segment of padding only).
    pub fn file_range(&self, index: u32) -> Result<Range<u64>, AttachmentError> {
        let padded = self.padded_range(index)?;
        Ok(padded.start.min(self.len)..padded.end.min(self.len))
    }

    /// The length of segment `index`'s ciphertext.
    pub fn sealed_segment_len(&self, index: u32) -> Result<usize, AttachmentError> {
        let range = self.padded_range(index)?;
        let plain = (range.end - range.start) as usize;
        Ok(plain + plain.div_ceil(CHUNK_LEN) * TAG_LEN)
    }

    /// The length of the whole ciphertext.
    pub fn sealed_len(&self) -> u64 {
        self.padded + self.chunks() * TAG_LEN as u64
    }
}

/// Seals and opens the segments of one attachment.
pub struct SegmentCipher {
    stream: StreamBE32<ChaCha20Poly1305>,
    layout: Layout,
}

impl SegmentCipher {
    /// The cipher for one file's segments.
    pub fn new(secret: &AttachmentSecret, layout: Layout) -> Self {
        Self { stream: secret.stream(), layout }
    }

    /// The attachment's layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Seals segment `index`; `data` is the file's bytes in [`Layout::file_range`] (the padding is
    /// added here).
    pub fn seal_segment(&self, index: u32, data: &[u8]) -> Result<Vec<u8>, AttachmentError> {
        let padded = self.layout.padded_range(index)?;
        let file = self.layout.file_range(index)?;
        if data.len() as u64 != file.end - file.start {
            return Err(AttachmentError::SegmentLength);
        }
        let mut sealed = Vec::with_capacity(self.layout.sealed_segment_len(index)?);
        let mut chunk = Vec::with_capacity(CHUNK_LEN + TAG_LEN);
        let last_chunk = self.layout.chunks() - 1;
        let first_chunk = padded.start / CHUNK_LEN as u64;
        let chunks = (padded.end - padded.start).div_ceil(CHUNK_LEN as u64);
        for i in 0..chunks {
            let start = (i as usize) * CHUNK_LEN;
            let end = (start + CHUNK_LEN).min((padded.end - padded.start) as usize);
            chunk.clear();
            chunk.extend_from_slice(&data[start.min(data.len())..end.min(data.len())]);
            chunk.resize(end - start, 0);
            let position = first_chunk + i;
            let counter = u32::try_from(position).map_err(|_| AttachmentError::TooLarge)?;
            self.stream
                .encrypt_in_place(counter, position == last_chunk, &[], &mut chunk)
                .map_err(|_| AttachmentError::SegmentLength)?;
            sealed.extend_from_slice(&chunk);
        }
        chunk.zeroize();
        Ok(sealed)
    }

    /// Opens segment `index` and returns the file's bytes in it, after checking that its padding
    /// is zero.
    pub fn open_segment(&self, index: u32, sealed: &[u8]) -> Result<Vec<u8>, AttachmentError> {
        let padded = self.layout.padded_range(index)?;
        let file = self.layout.file_range(index)?;
        if sealed.len() != self.layout.sealed_segment_len(index)? {
            return Err(AttachmentError::SegmentLength);
        }
        let file_len = (file.end - file.start) as usize;
        let mut data = Vec::with_capacity(file_len);
        let mut chunk = Vec::with_capacity(CHUNK_LEN + TAG_LEN);
        let last_chunk = self.layout.chunks() - 1;
        let first_chunk = padded.start / CHUNK_LEN as u64;
        let mut padding_ok = true;
        for (i, sealed_chunk) in sealed.chunks(CHUNK_LEN + TAG_LEN).enumerate() {
            let position = first_chunk + i as u64;
            let counter = u32::try_from(position).map_err(|_| AttachmentError::TooLarge)?;
            chunk.clear();
            chunk.extend_from_slice(sealed_chunk);
            self.stream
                .decrypt_in_place(counter, position == last_chunk, &[], &mut chunk)
                .map_err(|_| AttachmentError::Tampered)?;
            let keep = file_len.saturating_sub(data.len()).min(chunk.len());
            data.extend_from_slice(&chunk[..keep]);
            padding_ok &= chunk[keep..].iter().all(|&b| b == 0);
        }
        if !padding_ok {
            data.zeroize();
            return Err(AttachmentError::Padding);
        }
        Ok(data)
    }
}

/// `SHA-256` of one sealed segment, as the upload states it and the relay checks it.
pub fn segment_hash(sealed: &[u8]) -> [u8; 32] {
    Sha256::digest(sealed).into()
}

/// The attachment digest: `SHA-256(segment_hash(0) ‖ … ‖ segment_hash(n − 1))`.
pub fn digest(segment_hashes: &[[u8; 32]]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for hash in segment_hashes {
        hasher.update(hash);
    }
    hasher.finalize().into()
}

/// Checks a list of segment hashes (from the relay) against the digest the message carries, and
/// that there is one per segment of `layout`.
pub fn check_segment_hashes(
    layout: &Layout,
    segment_hashes: &[[u8; 32]],
    expected: &[u8; 32],
) -> Result<(), AttachmentError> {
    if segment_hashes.len() != layout.segments() as usize
        || !bool::from(digest(segment_hashes).ct_eq(expected))
    {
        return Err(AttachmentError::Digest);
    }
    Ok(())
}

/// Checks that a sealed segment hashes to the value listed for it (before it is opened or stored).
pub fn check_segment(sealed: &[u8], expected: &[u8; 32]) -> Result<(), AttachmentError> {
    if bool::from(segment_hash(sealed).ct_eq(expected)) { Ok(()) } else { Err(AttachmentError::Digest) }
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::{Rng, SeedableRng};

    use super::*;

    fn file(len: usize, seed: u8) -> Vec<u8> {
        let mut data = vec![0; len];
        ChaCha20Rng::from_seed([seed; 32]).fill_bytes(&mut data);
        data
    }

    fn seal_all(cipher: &SegmentCipher, data: &[u8]) -> Vec<Vec<u8>> {
        let layout = cipher.layout();
        (0..layout.segments())
            .map(|i| {
                let r = layout.file_range(i).unwrap();
                cipher.seal_segment(i, &data[r.start as usize..r.end as usize]).unwrap()
            })
            .collect()
    }

    #[test]
    fn padding_is_at_most_five_percent_and_never_shorter() {
        assert_eq!(padded_len(0), Ok(MIN_PADDED_LEN));
        assert_eq!(padded_len(MIN_PADDED_LEN), Ok(MIN_PADDED_LEN));
        let mut sizes = std::collections::BTreeSet::new();
        for len in (MIN_PADDED_LEN + 1..=MAX_ATTACHMENT_LEN).step_by(9_999_991).chain([MAX_ATTACHMENT_LEN]) {
            let padded = padded_len(len).unwrap();
            assert!(padded >= len && padded as f64 <= len as f64 * 1.05 + 1.0, "{len} -> {padded}");
            if padded <= MAX_ATTACHMENT_LEN {
                assert_eq!(padded_len(padded), Ok(padded), "a padded size is its own bucket");
            }
            sizes.insert(padded);
        }
        assert_eq!(padded_len(MAX_ATTACHMENT_LEN + 1), Err(AttachmentError::TooLarge));
        // Distinct sizes above 64 KiB up to the bucket that holds 1 GiB: log(2^30 / 2^16) / log(1.05) ≈ 199.8.
        let buckets = (227..=430).map(|k| libm::floor(libm::pow(1.05, f64::from(k))) as u64);
        assert_eq!(
            buckets.filter(|&b| b > MIN_PADDED_LEN && b <= padded_len(MAX_ATTACHMENT_LEN).unwrap()).count(),
            200
        );
    }

    #[test]
    fn files_round_trip_segment_by_segment_at_the_edges() {
        let mut rng = ChaCha20Rng::from_seed([1; 32]);
        for len in [0, 1, CHUNK_LEN - 1, CHUNK_LEN, CHUNK_LEN + 1, SEGMENT_LEN, SEGMENT_LEN + 1] {
            let data = file(len, 9);
            let layout = Layout::new(len as u64).unwrap();
            let cipher = SegmentCipher::new(&AttachmentSecret::generate(&mut rng), layout);
            let sealed = seal_all(&cipher, &data);
            assert_eq!(sealed.iter().map(Vec::len).sum::<usize>() as u64, layout.sealed_len());
            // Opened in reverse order: each segment stands alone.
            let mut opened: Vec<Vec<u8>> = (0..layout.segments())
                .rev()
                .map(|i| cipher.open_segment(i, &sealed[i as usize]).unwrap())
                .collect();
            opened.reverse();
            assert_eq!(opened.concat(), data, "length {len}");
        }
    }

    #[test]
    fn truncation_reordering_and_foreign_chunks_are_detected() {
        let mut rng = ChaCha20Rng::from_seed([2; 32]);
        let len = SEGMENT_LEN + CHUNK_LEN + 1;
        let data = file(len, 3);
        let layout = Layout::new(len as u64).unwrap();
        let cipher = SegmentCipher::new(&AttachmentSecret::generate(&mut rng), layout);
        let sealed = seal_all(&cipher, &data);
        let other = SegmentCipher::new(&AttachmentSecret::generate(&mut rng), layout);
        let foreign = seal_all(&other, &data);
        let step = CHUNK_LEN + TAG_LEN;
        let last = layout.segments() - 1;
        // The last chunk dropped: the segment is short, and the chunk before it was not sealed as last.
        let dropped = &sealed[last as usize]
            [..sealed[last as usize].len() - (sealed[last as usize].len() - 1) % step - 1];
        assert_eq!(cipher.open_segment(last, dropped), Err(AttachmentError::SegmentLength));
        // Two chunks swapped inside a segment.
        let mut swapped = sealed[0].clone();
        let (a, b) = swapped.split_at_mut(step);
        a.swap_with_slice(&mut b[..step]);
        assert_eq!(cipher.open_segment(0, &swapped), Err(AttachmentError::Tampered));
        // Segments swapped, and a segment of another file with the same layout.
        assert!(cipher.open_segment(1, &sealed[0]).is_err());
        assert_eq!(cipher.open_segment(0, &foreign[0]), Err(AttachmentError::Tampered));
        // One flipped bit.
        let mut flipped = sealed[1].clone();
        flipped[5] ^= 0x80;
        assert_eq!(cipher.open_segment(1, &flipped), Err(AttachmentError::Tampered));
    }

    #[test]
    fn a_stream_cut_after_a_chunk_that_was_not_last_is_detected() {
        // The layout bound to the message already refuses a short segment (SegmentLength); STREAM's
        // last-chunk flag refuses it again: chunk 1 of a 3-chunk file does not open as a last chunk.
        let mut rng = ChaCha20Rng::from_seed([4; 32]);
        let secret = AttachmentSecret::generate(&mut rng);
        let long = Layout::new(2 * CHUNK_LEN as u64 + 1).unwrap();
        assert_eq!(long.chunks(), 3);
        let sealed = SegmentCipher::new(&secret, long).seal_segment(0, &file(2 * CHUNK_LEN + 1, 5)).unwrap();
        let step = CHUNK_LEN + TAG_LEN;
        let stream = secret.stream();
        let mut chunk = sealed[step..2 * step].to_vec();
        assert!(stream.decrypt_in_place(1, true, &[], &mut chunk).is_err());
        let mut chunk = sealed[step..2 * step].to_vec();
        assert!(stream.decrypt_in_place(1, false, &[], &mut chunk).is_ok());
        assert_eq!(
            SegmentCipher::new(&secret, long).open_segment(0, &sealed[..2 * step]),
            Err(AttachmentError::SegmentLength)
        );
    }

    #[test]
    fn non_zero_padding_is_refused() {
        let mut rng = ChaCha20Rng::from_seed([6; 32]);
        let secret = AttachmentSecret::generate(&mut rng);
        // Seal 10 bytes as a 100-byte file, then open it as the 10-byte file it claims to be.
        let data = file(100, 7);
        let sealed = SegmentCipher::new(&secret, Layout::new(100).unwrap()).seal_segment(0, &data).unwrap();
        let claimed = SegmentCipher::new(&secret, Layout::new(10).unwrap());
        assert_eq!(claimed.open_segment(0, &sealed), Err(AttachmentError::Padding));
    }

    #[test]
    fn digests_bind_the_segments_and_their_number() {
        let mut rng = ChaCha20Rng::from_seed([8; 32]);
        let layout = Layout::new(SEGMENT_LEN as u64 + 1).unwrap();
        let cipher = SegmentCipher::new(&AttachmentSecret::generate(&mut rng), layout);
        let sealed = seal_all(&cipher, &file(SEGMENT_LEN + 1, 1));
        let hashes: Vec<[u8; 32]> = sealed.iter().map(|s| segment_hash(s)).collect();
        let expected = digest(&hashes);
        assert_eq!(check_segment_hashes(&layout, &hashes, &expected), Ok(()));
        assert_eq!(
            check_segment_hashes(&layout, &hashes[..1], &digest(&hashes[..1])),
            Err(AttachmentError::Digest)
        );
        let swapped = [hashes[1], hashes[0]];
        assert_eq!(check_segment_hashes(&layout, &swapped, &expected), Err(AttachmentError::Digest));
        assert_eq!(check_segment(&sealed[0], &hashes[0]), Ok(()));
        assert_eq!(check_segment(&sealed[1], &hashes[0]), Err(AttachmentError::Digest));
    }

    #[test]
    fn wrong_lengths_and_indices_are_refused() {
        let layout = Layout::new(10).unwrap();
        let cipher = SegmentCipher::new(&AttachmentSecret::from_parts([1; 32], [2; 16]), layout);
        assert_eq!(cipher.seal_segment(0, &[0; 11]), Err(AttachmentError::SegmentLength));
        assert_eq!(cipher.seal_segment(1, &[]), Err(AttachmentError::SegmentIndex));
        assert_eq!(cipher.open_segment(0, &[0; 5]), Err(AttachmentError::SegmentLength));
        assert_eq!(Layout::with_padded(10, 11), Err(AttachmentError::Layout));
        assert_eq!(Layout::with_padded(10, MIN_PADDED_LEN), Ok(layout));
        assert_eq!(
            format!("{:?}", AttachmentSecret::from_parts([0xAB; 32], [0xCD; 16])),
            "AttachmentSecret(..)"
        );
    }
}
