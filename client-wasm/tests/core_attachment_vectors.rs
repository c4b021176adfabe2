//! Regenerates `docs/test-vectors/attachment-v1.json` (the attachment format, docs/protocol.md §14)
//! from fixed inputs and compares it byte for byte with the committed file, natively and in headless
//! Chrome. Run natively with `DOORLESS_WRITE_VECTORS=1` to rewrite it after an intentional change.

use client_wasm::core::aead::TAG_LEN as TAG_LEN_IN_CHUNK;
use client_wasm::core::attachment::{
    AttachmentError, AttachmentSecret, CHUNK_LEN, Layout, SegmentCipher, digest, segment_hash,
};
use client_wasm::core::kdf;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use serde_json::{Value, json};

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

const COMMITTED: &str = include_str!("../../docs/test-vectors/attachment-v1.json");
const FILE_SEED: [u8; 32] = [0xF1; 32];
const LENGTHS: [usize; 7] = [0, 1, 65_535, 65_536, 65_537, 4_194_304, 4_194_305];

/// File `n`'s secret: key `00 01 … 1f`, nonce `a0 a1 … ae` followed by `n` (each file its own nonce,
/// as each real file has its own key and nonce).
fn secret(n: u8) -> AttachmentSecret {
    let key: [u8; 32] = std::array::from_fn(|i| i as u8);
    let mut nonce: [u8; 16] = std::array::from_fn(|i| 0xA0 + i as u8);
    nonce[15] = n;
    AttachmentSecret::from_parts(key, nonce)
}

/// The first `len` bytes of `ChaCha20Rng::from_seed(FILE_SEED)`.
fn file(len: usize) -> Vec<u8> {
    let mut data = vec![0; len];
    ChaCha20Rng::from_seed(FILE_SEED).fill_bytes(&mut data);
    data
}

fn seal(secret: &AttachmentSecret, len: usize, data: &[u8]) -> (Layout, Vec<Vec<u8>>) {
    let layout = Layout::new(len as u64).unwrap();
    let cipher = SegmentCipher::new(secret, layout);
    let segments = (0..layout.segments())
        .map(|i| {
            let r = layout.file_range(i).unwrap();
            cipher.seal_segment(i, &data[r.start as usize..r.end as usize]).unwrap()
        })
        .collect();
    (layout, segments)
}

fn error(result: Result<Vec<u8>, AttachmentError>) -> String {
    format!("{:?}", result.expect_err("must be refused"))
}

fn generate() -> String {
    let files: Vec<Value> = LENGTHS
        .iter()
        .enumerate()
        .map(|(n, &len)| {
            let secret = secret(n as u8);
            let (payload_key, prefix) = kdf::attachment_keys(secret.key(), secret.nonce());
            let data = file(len);
            let (layout, segments) = seal(&secret, len, &data);
            let hashes: Vec<[u8; 32]> = segments.iter().map(|s| segment_hash(s)).collect();
            let cipher = SegmentCipher::new(&secret, layout);
            for (i, sealed) in segments.iter().enumerate() {
                let r = layout.file_range(i as u32).unwrap();
                assert_eq!(
                    cipher.open_segment(i as u32, sealed).unwrap(),
                    data[r.start as usize..r.end as usize]
                );
            }
            let last = segments.last().unwrap();
            json!({
                "key": hex::encode(secret.key()),
                "nonce": hex::encode(secret.nonce()),
                "payload_key": hex::encode(*payload_key),
                "stream_nonce_prefix": hex::encode(prefix),
                "length": len,
                "padded_length": layout.padded(),
                "chunks": layout.chunks(),
                "segments": layout.segments(),
                "sealed_length": layout.sealed_len(),
                "segment_sha256": hashes.iter().map(hex::encode).collect::<Vec<_>>(),
                "digest": hex::encode(digest(&hashes)),
                "sealed_first_64": hex::encode(&segments[0][..64]),
                "sealed_last_64": hex::encode(&last[last.len() - 64..]),
            })
        })
        .collect();

    // Negative cases on the 65,537-byte file (file 4): one segment of two chunks.
    let secret = secret(4);
    let len = 65_537;
    let data = file(len);
    let (layout, segments) = seal(&secret, len, &data);
    assert_eq!((layout.segments(), layout.chunks()), (1, 2));
    let cipher = SegmentCipher::new(&secret, layout);
    let step = CHUNK_LEN + TAG_LEN_IN_CHUNK;
    let sealed = &segments[0];
    let mut swapped = sealed[step..].to_vec();
    swapped.extend_from_slice(&sealed[..sealed.len() - step]);
    let other = AttachmentSecret::from_parts([0x55; 32], [0x66; 16]);
    let (_, foreign) = seal(&other, len, &data);
    let mut first_chunk_foreign = foreign[0][..step].to_vec();
    first_chunk_foreign.extend_from_slice(&sealed[step..]);
    // The 100-byte prefix sealed as a 100-byte file, presented as the 10-byte file a message claims.
    let (_, hundred) = seal(&secret, 100, &data[..100]);
    let claimed_ten = SegmentCipher::new(&secret, Layout::new(10).unwrap());
    let negative = json!([
        {"what": "last chunk dropped", "sealed_sha256": hex::encode(segment_hash(&sealed[..step])),
         "error": error(cipher.open_segment(0, &sealed[..step]))},
        {"what": "the two chunks swapped (the second, shorter one first)", "sealed_sha256": hex::encode(segment_hash(&swapped)),
         "error": error(cipher.open_segment(0, &swapped))},
        {"what": "first chunk from the same file sealed under key 0x55.. and nonce 0x66..", "sealed_sha256": hex::encode(segment_hash(&first_chunk_foreign)),
         "error": error(cipher.open_segment(0, &first_chunk_foreign))},
        {"what": "the first 100 bytes sealed as a 100-byte file, opened as a 10-byte file (non-zero padding)",
         "sealed_sha256": hex::encode(segment_hash(&hundred[0])), "error": error(claimed_ten.open_segment(0, &hundred[0]))},
    ]);

    let doc = json!({
        "description": "Doorless attachment format v1 test vectors: docs/protocol.md section 14 and docs/test-vectors/README.md",
        "file_bytes": "the first `length` bytes of ChaCha20Rng::from_seed(file_seed)",
        "file_seed": hex::encode(FILE_SEED),
        "files": files,
        "negative": negative,
    });
    let mut out = serde_json::to_string_pretty(&doc).unwrap();
    out.push('\n');
    out
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn attachment_vectors_match_committed_file() {
    let generated = generate();
    #[cfg(not(target_arch = "wasm32"))]
    if std::env::var_os("DOORLESS_WRITE_VECTORS").is_some() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/test-vectors/attachment-v1.json");
        std::fs::write(path, &generated).unwrap();
        return;
    }
    assert!(generated == COMMITTED, "test vectors differ from docs/test-vectors/attachment-v1.json");
}
