//! Replays the committed corpus of the relay-side fuzz targets (`fuzz/corpus/subscribe/*`) through
//! the same functions the fuzz targets call, as an ordinary test. `DOORLESS_WRITE_CORPUS=1`
//! (re)writes the seed files. The `frame` target's corpus is replayed by client-wasm's
//! `core_fuzz_corpus.rs`.

#[path = "../../fuzz/relay_targets.rs"]
mod relay_targets;

use std::path::PathBuf;

use doorless_frames::{Frame, MailboxId, subscribe_proof_message, verify_subscribe_proof};
use ed25519_dalek::{Signer, SigningKey};

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target)
}

/// A subscribe frame signed by a fixed key over the fuzz challenge, and its raw proof bytes.
fn valid_proof() -> ([u8; 32], [u8; 64]) {
    let key = SigningKey::from_bytes(&[7; 32]);
    let public = key.verifying_key().to_bytes();
    let signature = key.sign(&subscribe_proof_message(&relay_targets::CHALLENGE, &public)).to_bytes();
    (public, signature)
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
    vec![
        ("subscribe", "valid", frame(public_key, signature)),
        ("subscribe", "bad-signature", frame(public_key, flipped)),
        ("subscribe", "small-order-key", frame(small_order, signature)),
        ("subscribe", "raw-proof", raw),
        (
            "subscribe",
            "deposit",
            Frame::Deposit { request: 1, mailbox: MailboxId([5; 32]), payload: vec![9] }.encode(),
        ),
    ]
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
        verify_subscribe_proof(&relay_targets::CHALLENGE, &public_key, &signature),
        Ok(MailboxId::from_public_key(&public_key))
    );
    for (_, name, bytes) in seeds() {
        let Ok(Frame::Subscribe { public_key, signature, .. }) = Frame::decode(&bytes) else { continue };
        let verified = verify_subscribe_proof(&relay_targets::CHALLENGE, &public_key, &signature).is_ok();
        assert_eq!(verified, name == "valid", "seed {name}");
    }
    let on_disk = std::fs::read(corpus_dir("subscribe").join("valid")).unwrap();
    assert_eq!(on_disk, seeds()[0].2, "committed seed is stale: rerun with DOORLESS_WRITE_CORPUS=1");
}
