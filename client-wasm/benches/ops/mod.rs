//! The operations `cargo xtask bench core` measures, defined once and shared by the criterion bench
//! (`benches/core.rs`, the detailed native view) and the runner that times the same closures natively
//! and in headless Chromium (`tests/bench_wasm.rs`). Everything goes through the core's public API, so
//! what is measured is exactly what the app runs.

use std::hint::black_box;

use client_wasm::core::{Identity, Session, accept_invite, aead, create_invite, kdf};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

/// Plaintext length of the message benchmarks (1 KiB). The core pads it to the next bucket.
pub const MESSAGE_LEN: usize = 1024;
/// Buffer length of the AEAD throughput benchmarks (64 KiB).
pub const AEAD_LEN: usize = 64 * 1024;

const NOW: u64 = 1_750_000_000;
const TTL: u64 = 24 * 3600;

/// One measured operation; each call of `run` performs exactly one iteration.
pub struct Op {
    /// Stable identifier, used in the JSON lines, by criterion and in BENCHMARKS.md.
    pub name: &'static str,
    /// Bytes processed per iteration, when throughput is the figure of interest.
    pub bytes: Option<u64>,
    /// One iteration. State (sessions, RNG) lives in the closure and advances from call to call.
    pub run: Box<dyn FnMut()>,
}

/// Every operation, freshly set up, in report order.
pub fn all() -> Vec<Op> {
    vec![
        x25519(),
        x25519_public(),
        session_setup(),
        message_same_sender(),
        message_alternating(),
        aead_seal(),
        aead_open(),
    ]
}

/// A seeded RNG: the core is deterministic, so runs differ only in timing.
fn rng(seed: u8) -> ChaCha20Rng {
    ChaCha20Rng::from_seed([seed; 32])
}

/// One X25519 key agreement through `kdf::x25519`, the call every DH of the protocol makes.
fn x25519() -> Op {
    let mut rng = rng(1);
    let mut secret = [0u8; 32];
    rng.fill_bytes(&mut secret);
    let mut peer_secret = [0u8; 32];
    rng.fill_bytes(&mut peer_secret);
    let public = kdf::x25519_public(&peer_secret);
    Op {
        name: "x25519",
        bytes: None,
        run: Box::new(move || {
            black_box(kdf::x25519(black_box(&secret), black_box(&public)));
        }),
    }
}

/// One X25519 public-key computation (fixed-base) through `kdf::x25519_public`, which the ratchet
/// performs for every message header as well as for every fresh key.
fn x25519_public() -> Op {
    let mut secret = [0u8; 32];
    rng(7).fill_bytes(&mut secret);
    Op {
        name: "x25519_public",
        bytes: None,
        run: Box::new(move || {
            black_box(kdf::x25519_public(black_box(&secret)));
        }),
    }
}

/// Full session set-up on both sides: `create_invite`, `accept_invite`, `InviteSecret::respond`.
/// Identities are long-lived (one per browser profile), so they are made once outside the loop.
fn session_setup() -> Op {
    let mut rng = rng(2);
    let alice = Identity::generate(&mut rng);
    let bob = Identity::generate(&mut rng);
    Op {
        name: "session_setup",
        bytes: None,
        run: Box::new(move || {
            let (invite, secret) = create_invite(&bob, [9; 32], "Bob", NOW, TTL, &mut rng);
            let (alice_session, initial) =
                accept_invite(&alice, &invite, b"hi", NOW, &mut rng).expect("accept_invite");
            let (bob_session, first) = secret.respond(&bob, &initial, NOW).expect("respond");
            black_box((alice_session, bob_session, first));
        }),
    }
}

/// Two sessions that have completed the handshake, Alice (joiner) and Bob (inviter).
fn pair(seed: u8) -> (Session, Session, ChaCha20Rng) {
    let mut rng = rng(seed);
    let alice_id = Identity::generate(&mut rng);
    let bob_id = Identity::generate(&mut rng);
    let (invite, secret) = create_invite(&bob_id, [9; 32], "Bob", NOW, TTL, &mut rng);
    let (alice, initial) = accept_invite(&alice_id, &invite, b"hi", NOW, &mut rng).expect("accept_invite");
    let (bob, _) = secret.respond(&bob_id, &initial, NOW).expect("respond");
    (alice, bob, rng)
}

fn message(rng: &mut ChaCha20Rng) -> Vec<u8> {
    let mut m = vec![0u8; MESSAGE_LEN];
    rng.fill_bytes(&mut m);
    m
}

/// Encrypt + decrypt of a 1 KiB message, always from Alice to Bob: a symmetric chain step on each
/// side and no DH ratchet step.
fn message_same_sender() -> Op {
    let (mut alice, mut bob, mut rng) = pair(3);
    let plaintext = message(&mut rng);
    Op {
        name: "message_same_sender",
        bytes: None,
        run: Box::new(move || {
            let envelope = alice.encrypt(&plaintext, &mut rng).expect("encrypt");
            black_box(bob.decrypt(&envelope).expect("decrypt"));
        }),
    }
}

/// Encrypt + decrypt of a 1 KiB message, senders alternating: every message makes its receiver take
/// a DH ratchet step (and the next reply a fresh ratchet key).
fn message_alternating() -> Op {
    let (mut alice, mut bob, mut rng) = pair(4);
    let plaintext = message(&mut rng);
    let mut alice_sends = true;
    Op {
        name: "message_alternating",
        bytes: None,
        run: Box::new(move || {
            let (from, to) = if alice_sends { (&mut alice, &mut bob) } else { (&mut bob, &mut alice) };
            let envelope = from.encrypt(&plaintext, &mut rng).expect("encrypt");
            black_box(to.decrypt(&envelope).expect("decrypt"));
            alice_sends = !alice_sends;
        }),
    }
}

fn aead_inputs(seed: u8) -> ([u8; 32], [u8; aead::NONCE_LEN], Vec<u8>) {
    let mut rng = rng(seed);
    let mut key = [0u8; 32];
    rng.fill_bytes(&mut key);
    let mut nonce = [0u8; aead::NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    let mut data = vec![0u8; AEAD_LEN];
    rng.fill_bytes(&mut data);
    (key, nonce, data)
}

/// ChaCha20-Poly1305 encryption of 64 KiB through `aead::seal`, the call the core makes.
fn aead_seal() -> Op {
    let (key, nonce, plaintext) = aead_inputs(5);
    Op {
        name: "aead_seal_64k",
        bytes: Some(AEAD_LEN as u64),
        run: Box::new(move || {
            black_box(aead::seal(black_box(&key), &nonce, b"", black_box(&plaintext)));
        }),
    }
}

/// ChaCha20-Poly1305 decryption and verification of 64 KiB through `aead::open`.
fn aead_open() -> Op {
    let (key, nonce, plaintext) = aead_inputs(6);
    let ciphertext = aead::seal(&key, &nonce, b"", &plaintext);
    Op {
        name: "aead_open_64k",
        bytes: Some(AEAD_LEN as u64),
        run: Box::new(move || {
            black_box(aead::open(black_box(&key), &nonce, b"", black_box(&ciphertext)).expect("open"));
        }),
    }
}
