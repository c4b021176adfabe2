//! Replays every committed fuzz corpus file (`fuzz/corpus/<target>/*`) through the same decode functions
//! the fuzz targets call, as an ordinary test. `DOORLESS_WRITE_CORPUS=1` (re)writes the seed files.
#![cfg(not(target_arch = "wasm32"))]

#[path = "common/fuzz_targets.rs"]
mod fuzz_targets;

use std::path::PathBuf;

use client_wasm::core::content::{Content, Payload};
use client_wasm::core::{Header, MESSAGE_ENVELOPE_SIZES};
use doorless_frames::{ErrorCode, Frame, MailboxId, MailboxProof};
use rand_core::SeedableRng;

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target)
}

/// A profile stored by the previous release (see `engine.rs`), and the same moved to the
/// current records.
fn stored_profiles() -> (Vec<u8>, Vec<u8>) {
    let legacy = include_bytes!("fixtures/snapshot-v1.bin");
    let mut engine = client_wasm::engine::Engine::restore([("state", &legacy[..])]).unwrap();
    let records: Vec<_> = engine.take_records().into_named().collect();
    let current = fuzz_targets::encode_records(records.iter().map(|(n, b)| (n.as_str(), b.as_slice())));
    (fuzz_targets::encode_records([("state", &legacy[..])]), current)
}

/// A stored session with skipped keys in two chains: the previous release's fixture, re-stored.
fn grouped_skipped_session() -> Vec<u8> {
    let fixture: serde_json::Value = serde_json::from_str(include_str!("fixtures/sessions-v1.json")).unwrap();
    let v1 = hex::decode(fixture["bob_session"].as_str().unwrap()).unwrap();
    let session = client_wasm::core::Session::from_bytes(&v1).unwrap();
    assert_eq!(session.retained_chains(), 2);
    session.to_bytes().to_vec()
}

/// A profile record fixture (`fixtures/profile-v<N>.bin`: paired, verified, an open invite, an
/// outbox), as records.
fn profile_fixture(fixture: &[u8]) -> Vec<u8> {
    let records: Vec<(String, Vec<u8>)> = postcard::from_bytes(fixture).unwrap();
    fuzz_targets::encode_records(records.iter().map(|(n, b)| (n.as_str(), b.as_slice())))
}

fn sealed_short_invite() -> Vec<u8> {
    let mut rng = rand_chacha::ChaCha20Rng::from_seed([0x5A; 32]);
    fuzz_targets::short_link().seal(&fuzz_targets::fixture().invite, &mut rng).unwrap()
}

/// Segment 0 of the 65,537-byte file the `attachment` target opens, sealed under its secret.
/// A version 2 invite (naming its relay) by the fixture's Bob.
fn invite_with_relay() -> Vec<u8> {
    let f = fuzz_targets::fixture();
    let relay = doorless_frames::RelayOrigin::parse("https://relay.example").unwrap();
    let mut rng = rand_chacha::ChaCha20Rng::from_seed([0x5C; 32]);
    let (invite, _) = client_wasm::core::create_invite_on(
        &f.bob,
        [9; 32],
        &relay,
        "Bob",
        fuzz_targets::NOW,
        3600,
        &mut rng,
    );
    invite.to_bytes()
}

/// The fixture Bob's group credential for an MLS signature key of 32 bytes of 0x33.
fn group_credential() -> Vec<u8> {
    let key = mls_rs_core::crypto::SignaturePublicKey::new(vec![0x33; 32]);
    client_wasm::groups::DoorlessCredential::issue(&fuzz_targets::fixture().bob, &key).to_bytes()
}

fn sealed_attachment_segment() -> Vec<u8> {
    use client_wasm::core::attachment::{AttachmentSecret, Layout, SegmentCipher};
    let secret = AttachmentSecret::from_parts([0x41; 32], [0x42; 16]);
    SegmentCipher::new(&secret, Layout::new(65_537).unwrap()).seal_segment(0, &[7; 65_537]).unwrap()
}

fn attachment_ref(thumbnail: Vec<u8>) -> client_wasm::core::content::AttachmentRef {
    client_wasm::core::content::AttachmentRef {
        relay: "http://127.0.0.1:8080".into(),
        blob: [1; 16],
        read: [2; 32],
        key: [3; 32],
        nonce: [4; 16],
        len: 65_537,
        padded: client_wasm::core::attachment::padded_len(65_537).unwrap(),
        digest: [5; 32],
        mime: "application/pdf".into(),
        name: "report.pdf".into(),
        thumbnail,
        expires: fuzz_targets::NOW,
    }
}

fn seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let f = fuzz_targets::fixture();
    let (legacy_profile, current_profile) = stored_profiles();
    let fragment = f.invite.to_fragment();
    let payload = |content| Payload { id: [7; 16], sent_at: fuzz_targets::NOW, content }.encode().unwrap();
    vec![
        ("invite", "fragment", fragment.as_bytes().to_vec()),
        ("invite", "fragment-truncated", fragment.as_bytes()[..fragment.len() / 2].to_vec()),
        ("invite", "binary", f.invite.to_bytes()),
        ("invite", "binary-relay", invite_with_relay()),
        ("invite", "empty", Vec::new()),
        ("short_invite", "fragment", fuzz_targets::short_link().to_fragment().into_bytes()),
        (
            "short_invite",
            "fragment-loopback",
            b"1/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/http://127.0.0.1:8080".to_vec(),
        ),
        ("short_invite", "sealed", sealed_short_invite()),
        ("short_invite", "empty", Vec::new()),
        ("attachment", "segment", sealed_attachment_segment()),
        ("attachment", "layout-small", [&10u64.to_be_bytes()[..], &65_536u64.to_be_bytes()].concat()),
        ("attachment", "empty", Vec::new()),
        ("envelope", "message", f.message.clone()),
        ("envelope", "initial", f.initial_message.clone()),
        ("envelope", "zeros", {
            let mut v = vec![0; MESSAGE_ENVELOPE_SIZES[0]];
            v[0] = 1;
            v[1] = 2;
            v
        }),
        ("envelope", "prefix-only", vec![1, 2]),
        ("header", "valid", Header { dh: [9; 32], pn: 3, n: 70_000 }.encode().to_vec()),
        ("header", "short", vec![0; 39]),
        ("session_state", "alice", f.alice_session.to_bytes().to_vec()),
        ("session_state", "bob", f.bob_session.to_bytes().to_vec()),
        ("session_state", "invite-secret", f.invite_secret.to_bytes().to_vec()),
        ("session_state", "grouped-skipped", grouped_skipped_session()),
        ("identity", "secret", f.bob.to_bytes().to_vec()),
        ("identity", "public", f.bob.public().to_bytes()),
        ("group_credential", "valid", group_credential()),
        ("group_credential", "version-2", {
            let mut v = group_credential();
            v[0] = 2;
            v
        }),
        ("group_credential", "empty", Vec::new()),
        ("content", "text", payload(Content::Text { body: "hello".into() })),
        (
            "content",
            "hello",
            payload(Content::Hello { name: "Alice".into(), reply_mailbox: [2; 32], relay: None }),
        ),
        (
            "content",
            "hello-relay",
            payload(Content::Hello {
                name: "Alice".into(),
                reply_mailbox: [2; 32],
                relay: Some("https://relay-two.example:8443".into()),
            }),
        ),
        ("content", "receipt", payload(Content::Receipt { delivered: vec![[1; 16], [2; 16]] })),
        ("content", "profile", payload(Content::Profile { name: "Al".into() })),
        ("content", "inbox", payload(Content::Inbox { mailbox: [3; 32], relay: None })),
        (
            "content",
            "inbox-relay",
            payload(Content::Inbox { mailbox: [4; 32], relay: Some("https://relay.example".into()) }),
        ),
        ("content", "attachment", payload(Content::Attachment(Box::new(attachment_ref(Vec::new()))))),
        (
            "content",
            "attachment-thumbnail",
            payload(Content::Attachment(Box::new(attachment_ref(vec![0xFF, 0xD8])))),
        ),
        ("frame", "hello", Frame::Hello.encode()),
        ("frame", "ping", Frame::Ping { nonce: 42 }.encode()),
        (
            "frame",
            "deposit",
            Frame::Deposit { request: 1, mailbox: MailboxId([5; 32]), payload: vec![1, 2, 3] }.encode(),
        ),
        ("frame", "ack", Frame::Ack { mailbox: MailboxId([6; 32]), seq: 9 }.encode()),
        (
            "frame",
            "subscribe-batch",
            Frame::SubscribeBatch {
                request: 2,
                origin: "https://relay.example".into(),
                proofs: vec![MailboxProof { public_key: [7; 32], signature: [8; 64] }; 2],
            }
            .encode(),
        ),
        (
            "frame",
            "subscribed-batch",
            Frame::SubscribedBatch { request: 2, results: vec![None, Some(ErrorCode::TooManySubscriptions)] }
                .encode(),
        ),
        (
            "frame",
            "put-bundle",
            Frame::PutBundle { request: 5, id: [1; 16], delete_hash: [2; 32], bundle: vec![3; 64] }.encode(),
        ),
        ("frame", "get-bundle", Frame::GetBundle { request: 6, id: [4; 16] }.encode()),
        ("frame", "bundle", Frame::Bundle { request: 6, bundle: vec![5; 40] }.encode()),
        (
            "frame",
            "delete-bundle",
            Frame::DeleteBundle { request: 7, id: [4; 16], delete_secret: [6; 32] }.encode(),
        ),
        ("stored_records", "previous-release", legacy_profile),
        ("stored_records", "current", current_profile),
        ("stored_records", "profile-v2", profile_fixture(include_bytes!("fixtures/profile-v2.bin"))),
        ("stored_records", "profile-v4", profile_fixture(include_bytes!("fixtures/profile-v4.bin"))),
        ("stored_records", "profile-v5", profile_fixture(include_bytes!("fixtures/profile-v5.bin"))),
        ("stored_records", "profile-v6", profile_fixture(include_bytes!("fixtures/profile-v6.bin"))),
    ]
}

#[test]
fn fuzz_corpus_replays_without_panics() {
    if std::env::var_os("DOORLESS_WRITE_CORPUS").is_some() {
        for (target, name, bytes) in seeds() {
            let dir = corpus_dir(target);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
    for (target, run) in fuzz_targets::TARGETS {
        let dir = corpus_dir(target);
        let mut count = 0;
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            run(&std::fs::read(&path).unwrap());
            count += 1;
        }
        assert!(count > 0, "no corpus files for target {target}");
    }
}

#[test]
fn seed_inputs_decode_successfully() {
    // The seeds are meant to reach deep into each decoder: the valid ones must actually decode.
    let f = fuzz_targets::fixture();
    assert!(client_wasm::core::Invite::from_fragment(&f.invite.to_fragment(), fuzz_targets::NOW).is_ok());
    assert!(client_wasm::core::Invite::from_bytes(&invite_with_relay(), fuzz_targets::NOW + 1).is_ok());
    assert!(f.alice_session.clone().decrypt(&f.message).is_ok());
    assert_eq!(fuzz_targets::short_link().open(&sealed_short_invite(), fuzz_targets::NOW).unwrap(), f.invite);
    let fragment = fuzz_targets::short_link().to_fragment();
    {
        use client_wasm::core::attachment::{AttachmentSecret, Layout, SegmentCipher};
        let secret = AttachmentSecret::from_parts([0x41; 32], [0x42; 16]);
        let cipher = SegmentCipher::new(&secret, Layout::new(65_537).unwrap());
        assert_eq!(cipher.open_segment(0, &sealed_attachment_segment()).unwrap(), vec![7; 65_537]);
    }
    assert_eq!(client_wasm::core::ShortLink::parse(&fragment).unwrap(), fuzz_targets::short_link());
    assert!(f.invite_secret.clone().respond(&f.bob, &f.initial_message, fuzz_targets::NOW).is_ok());
    let key = mls_rs_core::crypto::SignaturePublicKey::new(vec![0x33; 32]);
    client_wasm::groups::DoorlessCredential::from_bytes(&group_credential()).unwrap().verify(&key).unwrap();
    for (_, _, bytes) in seeds().into_iter().filter(|(t, _, _)| *t == "content") {
        assert!(Payload::decode(&bytes).is_ok());
    }
    for (_, name, bytes) in seeds().into_iter().filter(|(t, _, _)| *t == "frame") {
        assert!(Frame::decode(&bytes).is_ok(), "frame seed {name}");
    }
    // Both stored-profile seeds restore (the target returns early on anything that does not).
    let (legacy, current) = stored_profiles();
    for input in [legacy, current] {
        let records = fuzz_targets::decode_records(&input);
        assert!(!records.is_empty());
        assert!(client_wasm::engine::Engine::restore(records).is_ok());
    }
}
