//! Replays the committed corpus of the relay-side fuzz targets (`fuzz/corpus/{subscribe,websocket,blobs}/*`) through
//! the same functions the fuzz targets call, as an ordinary test. `DOORLESS_WRITE_CORPUS=1`
//! (re)writes the seed files. The `frame` target's corpus is replayed by client-wasm's
//! `core_fuzz_corpus.rs`.

#[path = "../../fuzz/relay_targets.rs"]
mod relay_targets;

use std::path::PathBuf;

use doorless_frames::{
    ErrorCode, Frame, MailboxId, MailboxProof, RelayOrigin, subscribe_proof_message, verify_subscribe_proof,
};
use ed25519_dalek::{Signer, SigningKey};
use futures_util::StreamExt;
use relay::websocket::{Incoming, OutFrame, Role, reader, write_frames};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Control, Data, OpCode};

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target)
}

fn origin() -> RelayOrigin {
    RelayOrigin::parse(relay_targets::ORIGIN).unwrap()
}

/// A subscribe proof by a fixed key over the fuzz origin and challenge.
fn valid_proof() -> ([u8; 32], [u8; 64]) {
    let key = SigningKey::from_bytes(&[7; 32]);
    let public = key.verifying_key().to_bytes();
    let signature =
        key.sign(&subscribe_proof_message(&origin(), &relay_targets::CHALLENGE, &public)).to_bytes();
    (public, signature)
}

/// Client frames as they arrive at the relay: `(opcode, final, payload)`, each masked.
fn client_bytes(frames: &[(OpCode, bool, Vec<u8>)]) -> Vec<u8> {
    let mask = [0xa1, 0x5e, 0x07, 0x3c];
    let masked: Vec<Vec<u8>> = frames
        .iter()
        .map(|(_, _, payload)| {
            let mut bytes = payload.clone();
            fastwebsockets::unmask(&mut bytes, mask);
            bytes
        })
        .collect();
    let wire: Vec<OutFrame<'_>> = frames
        .iter()
        .zip(&masked)
        .map(|((opcode, is_final, _), bytes)| {
            let header = FrameHeader {
                opcode: *opcode,
                is_final: *is_final,
                mask: Some(mask),
                ..FrameHeader::default()
            };
            (header, [&bytes[..], &[]])
        })
        .collect();
    let mut out = Vec::new();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    runtime.block_on(write_frames(&mut out, &wire)).unwrap();
    out
}

fn websocket_seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let binary = OpCode::Data(Data::Binary);
    let deposit = Frame::Deposit { request: 1, mailbox: MailboxId([5; 32]), payload: vec![9; 100] }.encode();
    let (first, rest) = deposit.split_at(50);
    let too_large = client_bytes(&[(binary, true, vec![0; relay_targets::WEBSOCKET_LIMIT + 1])]);
    vec![
        ("websocket", "deposit", client_bytes(&[(binary, true, deposit.clone())])),
        (
            "websocket",
            "fragments-and-ping",
            client_bytes(&[
                (binary, false, first.to_vec()),
                (OpCode::Control(Control::Ping), true, b"hi".to_vec()),
                (OpCode::Data(Data::Continue), true, rest.to_vec()),
            ]),
        ),
        ("websocket", "close", client_bytes(&[(OpCode::Control(Control::Close), true, vec![0x03, 0xe8])])),
        ("websocket", "text", client_bytes(&[(OpCode::Data(Data::Text), true, b"hello".to_vec())])),
        ("websocket", "orphan-continuation", client_bytes(&[(OpCode::Data(Data::Continue), true, vec![1])])),
        // The header alone: a frame over the limit is refused before its payload.
        ("websocket", "too-large", too_large[..8].to_vec()),
        // A client frame without a mask (RFC 6455 section 5.1 says the server must close).
        ("websocket", "unmasked", [&[0x82, 2][..], &Frame::Hello.encode()].concat()),
    ]
}

fn seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let (public_key, signature) = valid_proof();
    let frame = |public_key, signature| Frame::Subscribe { request: 3, public_key, signature }.encode();
    let mut flipped = signature;
    flipped[5] ^= 0x40;
    // The identity point: small order, which `verify_strict` must refuse.
    let mut small_order = [0; 32];
    small_order[0] = 1;
    let raw: Vec<u8> = [&relay_targets::CHALLENGE[..], &public_key, &signature].concat();
    let batch = |origin: &str| {
        Frame::SubscribeBatch {
            request: 4,
            origin: origin.into(),
            proofs: vec![
                MailboxProof { public_key, signature },
                MailboxProof { public_key, signature: flipped },
            ],
        }
        .encode()
    };
    vec![
        ("subscribe", "valid", frame(public_key, signature)),
        ("subscribe", "batch", batch(relay_targets::ORIGIN)),
        ("subscribe", "batch-other-relay", batch("https://other.example")),
        ("subscribe", "bad-signature", frame(public_key, flipped)),
        ("subscribe", "small-order-key", frame(small_order, signature)),
        ("subscribe", "raw-proof", raw),
        (
            "subscribe",
            "deposit",
            Frame::Deposit { request: 1, mailbox: MailboxId([5; 32]), payload: vec![9] }.encode(),
        ),
    ]
    .into_iter()
    .chain(websocket_seeds())
    .chain(blob_seeds())
    .collect()
}

/// A stored blob record as the disk store writes it: version 1, complete, 2 segments, 5,000,000
/// bytes, created and expiring at fixed times, two capability hashes.
fn blob_record(complete: u8) -> Vec<u8> {
    [
        &[1, complete][..],
        &2u16.to_be_bytes(),
        &5_000_000u64.to_be_bytes(),
        &1_700_000_000_000u64.to_be_bytes(),
        &1_700_604_800_000u64.to_be_bytes(),
        &[0x11; 32],
        &[0x22; 32],
    ]
    .concat()
}

fn blob_seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    vec![
        ("blobs", "record", blob_record(1)),
        ("blobs", "record-bad-flag", blob_record(2)),
        ("blobs", "blob-id", b"AAECAwQFBgcICQoLDA0ODw".to_vec()),
        ("blobs", "capability", b"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8".to_vec()),
        ("blobs", "index", b"270".to_vec()),
        ("blobs", "index-leading-zero", b"007".to_vec()),
    ]
}

#[test]
fn blob_seeds_reach_the_decoders() {
    // The valid seeds decode, and the two near misses are refused: one form per value.
    assert!(relay::blob::disk::Record::decode(&blob_record(1)).is_ok());
    assert!(relay::blob::disk::Record::decode(&blob_record(2)).is_err());
    assert!(relay::blob::BlobId::decode("AAECAwQFBgcICQoLDA0ODw").is_some());
    assert!(relay::blob::Capability::decode("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8").is_some());
    assert_eq!(relay::blob::routes::parse_index("270").ok(), Some(270));
    assert!(relay::blob::routes::parse_index("007").is_err());
    assert!(relay::blob::routes::parse_index("0").is_ok());
}

#[test]
fn relay_fuzz_corpus_replays_without_panics() {
    if std::env::var_os("DOORLESS_WRITE_CORPUS").is_some() {
        for (target, name, bytes) in seeds() {
            let dir = corpus_dir(target);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
    for (target, run) in relay_targets::TARGETS {
        let dir = corpus_dir(target);
        let mut count = 0;
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            run(&std::fs::read(entry.unwrap().path()).unwrap());
            count += 1;
        }
        assert!(
            count >= seeds().iter().filter(|(t, _, _)| *t == target).count(),
            "seeds missing for {target}"
        );
    }
}

#[test]
fn relay_seed_inputs_reach_the_proof_check() {
    // The valid seed must actually open its mailbox, and the broken ones must be refused, so the
    // fuzzer starts from both sides of the signature check.
    let (public_key, signature) = valid_proof();
    assert_eq!(
        verify_subscribe_proof(&origin(), &relay_targets::CHALLENGE, &public_key, &signature),
        Ok(MailboxId::from_public_key(&public_key))
    );
    let verified = |proof: &MailboxProof| {
        verify_subscribe_proof(&origin(), &relay_targets::CHALLENGE, &proof.public_key, &proof.signature)
            .is_ok()
    };
    for (_, name, bytes) in seeds() {
        match Frame::decode(&bytes) {
            Ok(Frame::Subscribe { public_key, signature, .. }) => {
                assert_eq!(verified(&MailboxProof { public_key, signature }), name == "valid", "seed {name}");
            }
            // The batch seeds hold a valid proof and a broken one, for this relay and for another.
            Ok(Frame::SubscribeBatch { origin, proofs, .. }) => {
                assert_eq!(origin == relay_targets::ORIGIN, name == "batch", "seed {name}");
                assert_eq!(proofs.iter().map(verified).collect::<Vec<_>>(), [true, false], "seed {name}");
            }
            _ => {}
        }
    }
    let on_disk = std::fs::read(corpus_dir("subscribe").join("valid")).unwrap();
    assert_eq!(on_disk, seeds()[0].2, "committed seed is stale: rerun with DOORLESS_WRITE_CORPUS=1");
}

/// Everything the reader yields for `bytes`.
fn read_all(bytes: &[u8]) -> Vec<Result<Incoming, ErrorCode>> {
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    runtime.block_on(
        reader(std::io::Cursor::new(bytes.to_vec()), relay_targets::WEBSOCKET_LIMIT, Role::Server).collect(),
    )
}

#[test]
fn websocket_seed_inputs_reach_their_cases() {
    // Each seed reaches a different branch of the reader, so the fuzzer starts from all of them.
    let read = |name: &str| {
        let (_, _, bytes) = websocket_seeds().into_iter().find(|(_, n, _)| *n == name).unwrap();
        read_all(&bytes)
    };
    let deposit = |bytes: &[u8]| matches!(Frame::decode(bytes), Ok(Frame::Deposit { request: 1, .. }));
    assert!(matches!(&read("deposit")[..], [Ok(Incoming::Binary(b))] if deposit(b)));
    assert!(matches!(
        &read("fragments-and-ping")[..],
        [Ok(Incoming::Ping(p)), Ok(Incoming::Binary(b))] if &p[..] == b"hi" && deposit(b)
    ));
    assert!(matches!(&read("close")[..], [Ok(Incoming::Close)]));
    assert!(matches!(&read("text")[..], [Ok(Incoming::Text)]));
    assert!(matches!(&read("orphan-continuation")[..], [Err(ErrorCode::Malformed)]));
    assert!(matches!(&read("too-large")[..], [Err(ErrorCode::FrameTooLarge)]));
    assert!(matches!(&read("unmasked")[..], [Err(ErrorCode::Malformed)]));
    for (_, name, bytes) in websocket_seeds() {
        let on_disk = std::fs::read(corpus_dir("websocket").join(name)).unwrap();
        assert_eq!(on_disk, bytes, "committed seed {name} is stale: rerun with DOORLESS_WRITE_CORPUS=1");
    }
}
