//! Regenerates `docs/test-vectors/doorless-v2.json` from fixed seeds and compares it byte for byte with
//! the committed file. Run natively with `DOORLESS_WRITE_VECTORS=1` to rewrite the file after an
//! intentional protocol change (and say so in the commit message).

use client_wasm::core::content::{Content, Payload};
use client_wasm::core::{
    Identity, Invite, MESSAGE_ENVELOPE_SIZES, accept_invite, create_invite, envelope_kind, safety_number,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde_json::{Value, json};

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

const COMMITTED: &str = include_str!("../../docs/test-vectors/doorless-v2.json");
/// The vectors of protocol version 1, frozen: what the previous release wrote.
const V1: &str = include_str!("../../docs/test-vectors/doorless-v1.json");
const ALICE_SEED: [u8; 32] = [0xA1; 32];
const BOB_SEED: [u8; 32] = [0xB0; 32];
const NOW: u64 = 1_767_225_600; // 2026-01-01T00:00:00Z
const TTL: u64 = 86_400;

fn generate() -> String {
    let mut ra = ChaCha20Rng::from_seed(ALICE_SEED);
    let mut rb = ChaCha20Rng::from_seed(BOB_SEED);
    let alice = Identity::generate(&mut ra);
    let bob = Identity::generate(&mut rb);
    let (invite, secret) = create_invite(&bob, [0x11; 32], "Bob", NOW, TTL, &mut rb);
    let invite_secret = hex::encode(&*secret.to_bytes());
    let fragment = invite.to_fragment();
    let invite = Invite::from_fragment(&fragment, NOW + 60).unwrap();

    let hello = Payload {
        id: [0x01; 16],
        sent_at: NOW + 60,
        content: Content::Hello { name: "Alice".into(), reply_mailbox: [0x22; 32] },
    };
    let hello_bytes = hello.encode().unwrap();
    let (mut sa, initial) = accept_invite(&alice, &invite, &hello_bytes, NOW + 60, &mut ra).unwrap();
    let (mut sb, first) = secret.respond(&bob, &initial, NOW + 120).unwrap();
    assert_eq!(first, hello_bytes);

    // Twelve messages each way in four bursts; some are delivered out of order or late.
    let mut messages = Vec::new();
    let mut counter = 0u8;
    let mut text = |from: &str, i: usize| {
        counter += 1;
        let p = Payload {
            id: [counter; 16],
            sent_at: NOW + 200 + u64::from(counter),
            content: Content::Text { body: format!("{from} message {i}") },
        };
        p.encode().unwrap()
    };
    let mut record = |from: &str, plaintext: &[u8], envelope: &[u8], order: &mut Vec<Value>| {
        assert!(MESSAGE_ENVELOPE_SIZES.contains(&envelope.len()));
        assert!(envelope_kind(envelope).is_ok());
        let id = messages.len();
        messages.push(json!({
            "id": id,
            "from": from,
            "plaintext": hex::encode(plaintext),
            "envelope": hex::encode(envelope),
        }));
        order.push(json!(id));
        id
    };
    let mut sent_order = Vec::new();
    let mut delivered_order = Vec::new();
    let mut pending: Vec<(usize, String, Vec<u8>, Vec<u8>)> = Vec::new();
    for burst in 0..4 {
        for i in 0..3 {
            let pt = text("bob", burst * 3 + i);
            let env = sb.encrypt(&pt, &mut rb).unwrap();
            let id = record("bob", &pt, &env, &mut sent_order);
            pending.push((id, "alice".into(), pt, env));
        }
        for i in 0..3 {
            let pt = text("alice", burst * 3 + i);
            let env = sa.encrypt(&pt, &mut ra).unwrap();
            let id = record("alice", &pt, &env, &mut sent_order);
            pending.push((id, "bob".into(), pt, env));
        }
        // Deliver in a scrambled order, holding back the first message of each burst until the end.
        let held = pending.remove(0);
        let rest: Vec<_> = pending.drain(..).rev().collect();
        for (id, to, pt, env) in rest {
            let session = if to == "alice" { &mut sa } else { &mut sb };
            assert_eq!(session.decrypt(&env).unwrap().plaintext, pt);
            delivered_order.push(json!(id));
        }
        pending.push(held);
        if burst == 3 {
            for (id, to, pt, env) in pending.drain(..) {
                let session = if to == "alice" { &mut sa } else { &mut sb };
                assert_eq!(session.decrypt(&env).unwrap().plaintext, pt);
                delivered_order.push(json!(id));
            }
        }
    }
    assert!(pending.is_empty());

    let sn = safety_number(&alice.public(), &bob.public());
    let doc = json!({
        "description": "Doorless protocol v2 test vectors: see docs/test-vectors/README.md",
        "rng": "rand_chacha ChaCha20Rng::from_seed(seed), one stream per party, draws in the order given in README.md",
        "now": NOW,
        "alice": {
            "rng_seed": hex::encode(ALICE_SEED),
            "identity_secret": hex::encode(&*alice.to_bytes()),
            "identity_public": hex::encode(alice.public().to_bytes()),
            "fingerprint": hex::encode(alice.public().fingerprint()),
        },
        "bob": {
            "rng_seed": hex::encode(BOB_SEED),
            "identity_secret": hex::encode(&*bob.to_bytes()),
            "identity_public": hex::encode(bob.public().to_bytes()),
            "fingerprint": hex::encode(bob.public().fingerprint()),
        },
        "invite": {
            "created_at": NOW,
            "ttl_secs": TTL,
            "inviter_name": "Bob",
            "reply_mailbox": hex::encode([0x11; 32]),
            "fragment": fragment,
            "bytes": hex::encode(invite.to_bytes()),
            "hash": hex::encode(invite.hash()),
            "secret": invite_secret,
        },
        "handshake": {
            "accepted_at": NOW + 60,
            "responded_at": NOW + 120,
            "first_plaintext": hex::encode(&hello_bytes),
            "initial_message": hex::encode(&initial),
        },
        "messages": messages,
        "sent_order": sent_order,
        "delivery_order": delivered_order,
        "final_state": {
            "alice_session": hex::encode(&*sa.to_bytes()),
            "bob_session": hex::encode(&*sb.to_bytes()),
        },
        "safety_number": {
            "digits": sn.digits(),
            "qr_payload": hex::encode(sn.qr_payload()),
        },
    });
    let mut out = serde_json::to_string_pretty(&doc).unwrap();
    out.push('\n');
    out
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn test_vectors_match_committed_file() {
    let generated = generate();
    #[cfg(not(target_arch = "wasm32"))]
    if std::env::var_os("DOORLESS_WRITE_VECTORS").is_some() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/test-vectors/doorless-v2.json");
        std::fs::write(path, &generated).unwrap();
        return;
    }
    assert!(generated == COMMITTED, "test vectors differ from docs/test-vectors/doorless-v2.json");
}

/// What version 1 wrote still opens: Bob answers the v1 initial message from his stored v1 invite
/// secret, and both stored v1 sessions open (and are written back as the current version).
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn version_1_vectors_still_open() {
    let v1: Value = serde_json::from_str(V1).unwrap();
    let bytes = |v: &Value| hex::decode(v.as_str().unwrap()).unwrap();
    let bob = Identity::from_bytes(&bytes(&v1["bob"]["identity_secret"])).unwrap();
    let secret = client_wasm::core::InviteSecret::from_bytes(&bytes(&v1["invite"]["secret"])).unwrap();
    let initial = bytes(&v1["handshake"]["initial_message"]);
    assert_eq!(initial[0], client_wasm::core::OLDEST_ENVELOPE_VERSION);
    let responded_at = v1["handshake"]["responded_at"].as_u64().unwrap();
    let (_, first) = secret.respond(&bob, &initial, responded_at).unwrap();
    assert_eq!(first, bytes(&v1["handshake"]["first_plaintext"]));
    for side in ["alice_session", "bob_session"] {
        let stored = bytes(&v1["final_state"][side]);
        assert_eq!(stored[0], 1);
        let session = client_wasm::core::Session::from_bytes(&stored).unwrap();
        assert_eq!(session.to_bytes()[0], client_wasm::core::SESSION_VERSION);
    }
}
