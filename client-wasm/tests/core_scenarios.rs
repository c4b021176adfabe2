//! Scenario tests of the protocol core: handshake, ordering, limits, replay, tampering, storage.
//! They run natively and, through wasm-bindgen-test, in headless Chrome.

use client_wasm::core::content::{Content, ContentError, Payload};
use client_wasm::core::{
    DecryptError, EnvelopeError, EnvelopeKind, HandshakeError, INITIAL_ENVELOPE_SIZES,
    INVITE_RESPONSE_GRACE_SECS, Identity, IdentityError, IdentityPublic, Invite, InviteError, InviteSecret,
    MAX_PLAINTEXT_LEN, MAX_SKIP, MAX_STORED_SKIPPED, MESSAGE_ENVELOPE_SIZES, Session, SessionError,
    SessionStateError, ShortLink, ShortLinkError, accept_invite, create_invite, create_invite_on,
    envelope_kind, safety_number,
};
use doorless_frames::RelayOrigin;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

const NOW: u64 = 1_750_000_000;
const TTL: u64 = 24 * 3600;

fn rng(seed: u8) -> ChaCha20Rng {
    ChaCha20Rng::from_seed([seed; 32])
}

struct Pair {
    alice: Session,
    bob: Session,
    rng: ChaCha20Rng,
}

fn pair(seed: u8) -> Pair {
    let mut rng = rng(seed);
    let alice_id = Identity::generate(&mut rng);
    let bob_id = Identity::generate(&mut rng);
    let (invite, secret) = create_invite(&bob_id, [9; 32], "Bob", NOW, TTL, &mut rng);
    let invite = Invite::from_fragment(&invite.to_fragment(), NOW).unwrap();
    let (alice, initial) = accept_invite(&alice_id, &invite, b"first", NOW, &mut rng).unwrap();
    let (bob, first) = secret.respond(&bob_id, &initial, NOW).unwrap();
    assert_eq!(first, b"first");
    Pair { alice, bob, rng }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn handshake_and_conversation_both_ways() {
    let mut rng = rng(1);
    let alice_id = Identity::generate(&mut rng);
    let bob_id = Identity::generate(&mut rng);
    let (invite, secret) = create_invite(&bob_id, [7; 32], "Bob ✓", NOW, TTL, &mut rng);
    let fragment = invite.to_fragment();
    assert!(fragment.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    let parsed = Invite::from_fragment(&fragment, NOW + 10).unwrap();
    assert_eq!(parsed.inviter_name(), "Bob ✓");
    assert_eq!(parsed.reply_mailbox(), [7; 32]);
    assert_eq!(parsed.expires_at(), NOW + TTL);
    assert_eq!(parsed.inviter(), &bob_id.public());

    let (mut alice, initial) = accept_invite(&alice_id, &parsed, b"hello", NOW + 10, &mut rng).unwrap();
    assert_eq!(envelope_kind(&initial), Ok(EnvelopeKind::Initial));
    assert!(INITIAL_ENVELOPE_SIZES.contains(&initial.len()));
    let (mut bob, first) = secret.respond(&bob_id, &initial, NOW + 20).unwrap();
    assert_eq!(first, b"hello");
    assert_eq!(alice.peer_identity(), &bob_id.public());
    assert_eq!(bob.peer_identity(), &alice_id.public());

    for round in 0..12u32 {
        for i in 0..3u32 {
            let text = format!("bob {round} {i}");
            let env = bob.encrypt(text.as_bytes(), &mut rng).unwrap();
            assert_eq!(envelope_kind(&env), Ok(EnvelopeKind::Message));
            assert_eq!(alice.decrypt(&env).unwrap().plaintext, text.as_bytes());
        }
        let text = format!("alice {round}");
        let env = alice.encrypt(text.as_bytes(), &mut rng).unwrap();
        assert_eq!(bob.decrypt(&env).unwrap().plaintext, text.as_bytes());
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn out_of_order_and_late_messages_across_ratchet_steps() {
    let Pair { mut alice, mut bob, mut rng } = pair(2);
    let a: Vec<Vec<u8>> = (0..5).map(|i| alice.encrypt(&[b'a', i], &mut rng).unwrap()).collect();
    // Bob sees 4, 2, then answers (a ratchet step), then 0, then Alice ratchets, then 1 and 3 arrive late.
    assert_eq!(bob.decrypt(&a[4]).unwrap().plaintext, [b'a', 4]);
    assert_eq!(bob.decrypt(&a[2]).unwrap().plaintext, [b'a', 2]);
    let b0 = bob.encrypt(b"b0", &mut rng).unwrap();
    assert_eq!(bob.decrypt(&a[0]).unwrap().plaintext, [b'a', 0]);
    assert_eq!(alice.decrypt(&b0).unwrap().plaintext, b"b0");
    let a5 = alice.encrypt(b"a5", &mut rng).unwrap();
    let b1 = bob.encrypt(b"b1", &mut rng).unwrap();
    assert_eq!(bob.decrypt(&a5).unwrap().plaintext, b"a5");
    assert_eq!(bob.decrypt(&a[1]).unwrap().plaintext, [b'a', 1]);
    assert_eq!(bob.decrypt(&a[3]).unwrap().plaintext, [b'a', 3]);
    assert_eq!(alice.decrypt(&b1).unwrap().plaintext, b"b1");
    assert_eq!(bob.skipped_keys(), 0);
}

/// One skip keeps the newest `MAX_SKIP` keys and gives up the older ones (reported as `lost`).
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn a_skip_keeps_the_newest_max_skip_keys() {
    let Pair { mut alice, mut bob, mut rng } = pair(3);
    let envs: Vec<Vec<u8>> = (0..=MAX_SKIP + 1).map(|_| alice.encrypt(b"x", &mut rng).unwrap()).collect();
    // Message MAX_SKIP + 1 passes over MAX_SKIP + 1 keys: the oldest (message 0) is given up.
    let d = bob.decrypt(&envs[MAX_SKIP as usize + 1]).unwrap();
    assert_eq!((d.plaintext.as_slice(), d.lost), (&b"x"[..], 1));
    assert_eq!(bob.skipped_keys(), MAX_SKIP as usize);
    let before = bob.to_bytes();
    assert_eq!(bob.decrypt(&envs[0]), Err(DecryptError::Invalid));
    assert_eq!(*bob.to_bytes(), *before);
    for i in [1, MAX_SKIP as usize] {
        assert_eq!(
            bob.decrypt(&envs[i]).unwrap(),
            client_wasm::core::Decrypted { plaintext: b"x".to_vec(), lost: 0 }
        );
    }
    // Exactly MAX_SKIP passed over: nothing lost.
    let Pair { mut alice, mut bob, mut rng } = pair(42);
    let envs: Vec<Vec<u8>> = (0..=MAX_SKIP).map(|_| alice.encrypt(b"y", &mut rng).unwrap()).collect();
    assert_eq!(bob.decrypt(&envs[MAX_SKIP as usize]).unwrap().lost, 0);
    assert_eq!(bob.decrypt(&envs[0]).unwrap().plaintext, b"y");
}

/// The store keeps at most `MAX_STORED_SKIPPED` keys in total; the oldest are forgotten first, and
/// the decryption that forgot them says how many.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn total_skipped_keys_are_bounded() {
    let Pair { mut alice, mut bob, mut rng } = pair(4);
    // Chain 1: Bob skips MAX_SKIP keys.
    let chain1: Vec<Vec<u8>> = (0..=MAX_SKIP).map(|_| alice.encrypt(b"1", &mut rng).unwrap()).collect();
    assert_eq!(bob.decrypt(&chain1[MAX_SKIP as usize]).unwrap().lost, 0);
    let reply = bob.encrypt(b"r", &mut rng).unwrap();
    alice.decrypt(&reply).unwrap();
    // Chain 2: another MAX_SKIP keys; the store drops the oldest of chain 1 to stay within its bound.
    let m = MAX_SKIP as usize;
    let chain2: Vec<Vec<u8>> = (0..=m).map(|_| alice.encrypt(b"2", &mut rng).unwrap()).collect();
    let over = (2 * m - MAX_STORED_SKIPPED) as u32;
    assert_eq!(bob.decrypt(&chain2[m]).unwrap().lost, over);
    assert_eq!(bob.skipped_keys(), MAX_STORED_SKIPPED);
    assert_eq!(bob.retained_chains(), 2);
    assert_eq!(bob.decrypt(&chain1[over as usize - 1]), Err(DecryptError::Invalid));
    assert_eq!(bob.decrypt(&chain1[over as usize]).unwrap().plaintext, b"1");
    assert_eq!(bob.decrypt(&chain1[m - 1]).unwrap().plaintext, b"1");
    assert_eq!(bob.decrypt(&chain2[0]).unwrap().plaintext, b"2");
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn replays_are_rejected_without_changing_state() {
    let Pair { mut alice, mut bob, mut rng } = pair(5);
    let e0 = alice.encrypt(b"zero", &mut rng).unwrap();
    let e1 = alice.encrypt(b"one", &mut rng).unwrap();
    let e2 = alice.encrypt(b"two", &mut rng).unwrap();
    bob.decrypt(&e0).unwrap();
    bob.decrypt(&e2).unwrap(); // e1's key is now stored as skipped
    let before = bob.to_bytes();
    assert_eq!(bob.decrypt(&e0), Err(DecryptError::Invalid));
    assert_eq!(bob.decrypt(&e2), Err(DecryptError::Invalid));
    assert_eq!(*bob.to_bytes(), *before);
    assert_eq!(bob.decrypt(&e1).unwrap().plaintext, b"one");
    assert_eq!(bob.decrypt(&e1), Err(DecryptError::Invalid));
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn tampering_is_rejected_without_changing_state() {
    let Pair { mut alice, mut bob, mut rng } = pair(6);
    let env = alice.encrypt(b"payload", &mut rng).unwrap();
    let before = bob.to_bytes();
    for pos in [0, 1, 2, 13, 14, 40, 69, 70, 100, env.len() - 1] {
        let mut bad = env.clone();
        bad[pos] ^= 0x01;
        assert!(bob.decrypt(&bad).is_err(), "flip at {pos} accepted");
        assert_eq!(*bob.to_bytes(), *before);
    }
    assert_eq!(bob.decrypt(&env[..env.len() - 1]), Err(DecryptError::Malformed));
    assert_eq!(bob.decrypt(&[]), Err(DecryptError::Malformed));
    assert_eq!(bob.decrypt(&env).unwrap().plaintext, b"payload");
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn messages_from_another_session_are_rejected() {
    let Pair { mut alice, .. } = pair(7);
    let Pair { bob: mut other_bob, mut rng, .. } = pair(8);
    let env = alice.encrypt(b"hi", &mut rng).unwrap();
    assert_eq!(other_bob.decrypt(&env), Err(DecryptError::Invalid));
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn session_state_round_trips() {
    let Pair { mut alice, mut bob, mut rng } = pair(9);
    let pending = alice.encrypt(b"late", &mut rng).unwrap();
    let now = alice.encrypt(b"now", &mut rng).unwrap();
    bob.decrypt(&now).unwrap();
    let reply = bob.encrypt(b"reply", &mut rng).unwrap();
    let mut bob = Session::from_bytes(&bob.to_bytes()).unwrap();
    let mut alice = Session::from_bytes(&alice.to_bytes()).unwrap();
    assert_eq!(*Session::from_bytes(&bob.to_bytes()).unwrap().to_bytes(), *bob.to_bytes());
    assert_eq!(alice.decrypt(&reply).unwrap().plaintext, b"reply");
    assert_eq!(bob.decrypt(&pending).unwrap().plaintext, b"late");
    let again = alice.encrypt(b"again", &mut rng).unwrap();
    assert_eq!(bob.decrypt(&again).unwrap().plaintext, b"again");

    let bytes = bob.to_bytes();
    let mut wrong_version = bytes.to_vec();
    wrong_version[0] = 99;
    assert_eq!(Session::from_bytes(&wrong_version).err(), Some(SessionStateError::UnsupportedVersion));
    assert_eq!(Session::from_bytes(&bytes[..bytes.len() - 1]).err(), Some(SessionStateError::Corrupt));
    let mut longer = bytes.to_vec();
    longer.push(0);
    assert_eq!(Session::from_bytes(&longer).err(), Some(SessionStateError::Corrupt));
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn envelopes_have_bucketed_sizes() {
    let Pair { mut alice, mut bob, mut rng } = pair(10);
    assert_eq!(MESSAGE_ENVELOPE_SIZES, [342, 1110, 4182, 16470, 65622]);
    for (len, bucket) in [(0, 0), (1, 0), (255, 0), (256, 1), (1023, 1), (1024, 2), (MAX_PLAINTEXT_LEN, 4)] {
        let msg = vec![0x42; len];
        let env = alice.encrypt(&msg, &mut rng).unwrap();
        assert_eq!(env.len(), MESSAGE_ENVELOPE_SIZES[bucket], "plaintext of {len} bytes");
        assert_eq!(bob.decrypt(&env).unwrap().plaintext, msg);
    }
    let too_long = vec![0; MAX_PLAINTEXT_LEN + 1];
    assert_eq!(alice.encrypt(&too_long, &mut rng), Err(SessionError::PlaintextTooLong));
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn envelope_kind_routes_and_rejects() {
    assert_eq!(envelope_kind(&[]), Err(EnvelopeError::Malformed));
    assert_eq!(envelope_kind(&[0, 2]), Err(EnvelopeError::UnsupportedVersion));
    assert_eq!(envelope_kind(&[3, 2]), Err(EnvelopeError::UnsupportedVersion));
    assert_eq!(envelope_kind(&[1, 9]), Err(EnvelopeError::UnknownKind));
    assert_eq!(envelope_kind(&[1, 2, 0]), Err(EnvelopeError::Malformed));
    let mut env = vec![0; MESSAGE_ENVELOPE_SIZES[0]];
    env[0] = 1;
    env[1] = 2;
    // Version 1 is still routed (an old tab's messages), version 2 is what this build writes.
    assert_eq!(envelope_kind(&env), Ok(EnvelopeKind::Message));
    env[0] = 2;
    assert_eq!(envelope_kind(&env), Ok(EnvelopeKind::Message));
    env[1] = 1;
    assert_eq!(envelope_kind(&env), Err(EnvelopeError::Malformed));
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn invites_reject_expired_corrupt_forged_and_unknown_versions() {
    let mut rng = rng(11);
    let bob = Identity::generate(&mut rng);
    let mallory = Identity::generate(&mut rng);
    let (invite, _) = create_invite(&bob, [1; 32], "Bob", NOW, TTL, &mut rng);
    let fragment = invite.to_fragment();
    assert_eq!(Invite::from_fragment(&fragment, NOW + TTL).err(), Some(InviteError::Expired));
    assert_eq!(Invite::from_fragment(&fragment, NOW + TTL - 1).unwrap(), invite);
    assert_eq!(Invite::from_fragment("not base64!", NOW).err(), Some(InviteError::Corrupt));
    assert_eq!(Invite::from_fragment(&fragment[..100], NOW).err(), Some(InviteError::Corrupt));
    let bytes = invite.to_bytes();
    // Version 2 names a relay (below); version 3 is from a newer release.
    let mut v3 = bytes.clone();
    v3[0] = 3;
    assert_eq!(Invite::from_bytes(&v3, NOW).err(), Some(InviteError::UnsupportedVersion));
    // Changing the mailbox, expiry or name breaks the signature.
    let mailbox_at = 1 + 129 + 32 + 1184;
    for pos in [mailbox_at, mailbox_at + 32 + 7, bytes.len() - 65, bytes.len() - 1] {
        let mut forged = bytes.clone();
        forged[pos] ^= 1;
        assert_eq!(Invite::from_bytes(&forged, NOW).err(), Some(InviteError::BadSignature), "pos {pos}");
    }
    // Swapping in another identity breaks the signature too.
    let mut swapped = bytes.clone();
    swapped[1..130].copy_from_slice(&mallory.public().to_bytes());
    assert_eq!(Invite::from_bytes(&swapped, NOW).err(), Some(InviteError::BadSignature));
    // A too long name is cut at a character boundary.
    let long = "é".repeat(40);
    let (cut, _) = create_invite(&bob, [1; 32], &long, NOW, TTL, &mut rng);
    assert_eq!(cut.inviter_name(), "é".repeat(32));
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn handshake_failures() {
    let mut rng = rng(12);
    let alice = Identity::generate(&mut rng);
    let bob = Identity::generate(&mut rng);
    let (invite, secret) = create_invite(&bob, [1; 32], "Bob", NOW, TTL, &mut rng);
    assert_eq!(
        accept_invite(&alice, &invite, b"x", NOW + TTL, &mut rng).err(),
        Some(HandshakeError::Expired)
    );
    assert_eq!(accept_invite(&bob, &invite, b"x", NOW, &mut rng).err(), Some(HandshakeError::OwnInvite));
    let (_, initial) = accept_invite(&alice, &invite, b"x", NOW, &mut rng).unwrap();

    // The secret survives storage; a tampered initial message is refused and the secret is consumed.
    let stored = secret.to_bytes();
    let restore = || InviteSecret::from_bytes(&stored).unwrap();
    for pos in [0, 1, 2, 40, 1200, 1300, initial.len() - 1] {
        let mut bad = initial.clone();
        bad[pos] ^= 1;
        assert!(restore().respond(&bob, &bad, NOW).is_err(), "flip at {pos} accepted");
    }
    assert_eq!(restore().respond(&bob, &initial[..100], NOW).err(), Some(HandshakeError::Malformed));
    assert_eq!(
        restore().respond(&bob, &initial, NOW + TTL + INVITE_RESPONSE_GRACE_SECS + 1).err(),
        Some(HandshakeError::Expired)
    );
    // Wrong responder identity.
    let carol = Identity::generate(&mut rng);
    assert_eq!(restore().respond(&carol, &initial, NOW).err(), Some(HandshakeError::Invalid));
    // The genuine message works once per stored copy; the app deletes the stored secret on use.
    let (_, first) = restore().respond(&bob, &initial, NOW).unwrap();
    assert_eq!(first, b"x");
    let mut v = stored.to_vec();
    v[0] = 7;
    assert_eq!(InviteSecret::from_bytes(&v).err(), Some(InviteError::UnsupportedVersion));
    assert_eq!(InviteSecret::from_bytes(&stored[1..]).err(), Some(InviteError::UnsupportedVersion));
    assert_eq!(InviteSecret::from_bytes(&stored[..10]).err(), Some(InviteError::Corrupt));
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn identities_round_trip_and_hide_secrets() {
    let mut rng = rng(13);
    let id = Identity::generate(&mut rng);
    let stored = id.to_bytes();
    let restored = Identity::from_bytes(&stored).unwrap();
    assert_eq!(restored.public(), id.public());
    let public = id.public().to_bytes();
    assert_eq!(IdentityPublic::from_bytes(&public).unwrap(), id.public());
    let mut forged = public.clone();
    forged[40] ^= 1; // the X25519 key
    assert_eq!(IdentityPublic::from_bytes(&forged).err(), Some(IdentityError::BadSignature));
    assert_eq!(IdentityPublic::from_bytes(&public[..50]).err(), Some(IdentityError::Corrupt));
    let debug = format!("{id:?}");
    for secret in [hex::encode(&stored[1..33]), hex::encode(&stored[33..])] {
        assert!(!debug.contains(&secret[..16]));
    }
    assert!(!debug.contains(&format!("{:?}", &stored[1..5])));
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn contents_round_trip_and_unknown_types_are_errors() {
    let samples = [
        Content::Text { body: "hé".into() },
        Content::Hello { name: "Alice".into(), reply_mailbox: [3; 32], relay: None },
        Content::Receipt { delivered: vec![[1; 16], [2; 16]] },
        Content::Profile { name: "Al".into() },
    ];
    for content in samples {
        let p = Payload { id: [5; 16], sent_at: NOW, content };
        assert_eq!(Payload::decode(&p.encode().unwrap()).unwrap(), p);
    }
    let mut unknown = Payload { id: [0; 16], sent_at: 0, content: Content::Profile { name: String::new() } }
        .encode()
        .unwrap();
    unknown[1] = 200;
    assert_eq!(Payload::decode(&unknown), Err(ContentError::UnknownType));
    assert_eq!(Payload::decode(&[9]), Err(ContentError::UnsupportedVersion));
    assert_eq!(Payload::decode(&[1, 1, 0]), Err(ContentError::Corrupt));
    let long = Payload { id: [0; 16], sent_at: 0, content: Content::Profile { name: "x".repeat(65) } };
    assert_eq!(long.encode(), Err(ContentError::TooLong));
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn safety_numbers_are_symmetric() {
    let mut rng = rng(14);
    let a = Identity::generate(&mut rng).public();
    let b = Identity::generate(&mut rng).public();
    let c = Identity::generate(&mut rng).public();
    let ab = safety_number(&a, &b);
    let ba = safety_number(&b, &a);
    assert_eq!(ab, ba);
    assert_eq!(ab.digits(), ba.digits());
    let digits = ab.digits();
    assert_eq!(digits.len(), 60 + 11);
    assert!(digits.split(' ').all(|g| g.len() == 5 && g.bytes().all(|d| d.is_ascii_digit())));
    assert!(ab.matches_scanned(&ba.qr_payload()));
    let ac = safety_number(&a, &c);
    assert_ne!(ab.digits(), ac.digits());
    assert!(!ab.matches_scanned(&ac.qr_payload()));
    assert!(!ab.matches_scanned(&ab.qr_payload()[..10]));
}

/// Forward secrecy and healing, as the Double Ratchet promises them. An eavesdropper records every
/// envelope addressed to Bob and later steals Bob's whole stored session:
/// - what Bob had already received stays unreadable (its message keys were deleted);
/// - what Alice sends before Bob's next message is readable (the stolen state holds those keys);
/// - Bob's next message carries a key pair made at that moment, from randomness the thief does not
///   have; once Alice has used it, the conversation has healed.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn a_stolen_session_reads_neither_the_past_nor_the_future_after_a_ratchet_round_trip() {
    let mut p = pair(30);
    let to_bob = |p: &mut Pair, text: &str| {
        let envelope = p.alice.encrypt(text.as_bytes(), &mut p.rng).unwrap();
        assert_eq!(p.bob.decrypt(&envelope).unwrap().plaintext, text.as_bytes());
        envelope
    };
    let to_alice = |p: &mut Pair, text: &str| {
        let envelope = p.bob.encrypt(text.as_bytes(), &mut p.rng).unwrap();
        assert_eq!(p.alice.decrypt(&envelope).unwrap().plaintext, text.as_bytes());
    };
    let mut past = Vec::new();
    for round in 0..3 {
        past.push(to_bob(&mut p, &format!("old {round}")));
        to_alice(&mut p, "reply");
    }
    past.push(to_bob(&mut p, "last before the theft"));

    // The theft: Bob's stored session, as a copy of his device would give it.
    let mut thief = Session::from_bytes(&p.bob.to_bytes()).unwrap();
    for envelope in &past {
        assert!(
            thief.clone().decrypt(envelope).is_err(),
            "a stolen state decrypted a message from before the theft"
        );
    }

    // Until Bob sends again, the thief reads along.
    for text in ["right after the theft", "and another"] {
        let envelope = to_bob(&mut p, text);
        assert_eq!(thief.decrypt(&envelope).unwrap().plaintext, text.as_bytes());
    }
    // Bob answers with a fresh ratchet key; Alice's replies use it, and the thief is locked out.
    to_alice(&mut p, "bob answers");
    for text in ["healed 1", "healed 2"] {
        let envelope = to_bob(&mut p, text);
        assert!(thief.decrypt(&envelope).is_err(), "the thief still reads {text:?}");
    }
    to_alice(&mut p, "bob again");
    let envelope = to_bob(&mut p, "healed 3");
    assert!(thief.decrypt(&envelope).is_err());
}

/// Issue 12 item 3: a gap of more than `MAX_SKIP` in one chain (messages the relay dropped or let
/// expire) must not stop every later chain. The receiver takes the ratchet step, keeps what fits the
/// skipped-key budget and gives up the rest.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn a_long_gap_in_one_chain_does_not_stop_later_chains() {
    let Pair { mut alice, mut bob, mut rng } = pair(40);
    let gap = MAX_SKIP as usize + 500;
    let lost_chain: Vec<Vec<u8>> = (0..gap).map(|_| alice.encrypt(b"lost", &mut rng).unwrap()).collect();
    // Bob never sees those; he writes, Alice answers in a new chain (header PN = gap).
    let reply = bob.encrypt(b"are you there?", &mut rng).unwrap();
    assert_eq!(alice.decrypt(&reply).unwrap().plaintext, b"are you there?");
    for round in 0..3 {
        let text = format!("alice {round}");
        let env = alice.encrypt(text.as_bytes(), &mut rng).unwrap();
        let d = bob.decrypt(&env).unwrap();
        assert_eq!(d.plaintext, text.as_bytes(), "round {round}");
        // The step keeps the newest MAX_SKIP keys of the gap and reports the rest.
        assert_eq!(d.lost, if round == 0 { gap as u32 - MAX_SKIP } else { 0 });
        let env = bob.encrypt(b"ok", &mut rng).unwrap();
        assert_eq!(alice.decrypt(&env).unwrap().plaintext, b"ok");
    }
    // The newest skipped keys were kept: the last message of the gap still opens.
    assert_eq!(bob.decrypt(&lost_chain[gap - 1]).unwrap().plaintext, b"lost");
    assert_eq!(bob.decrypt(&lost_chain[gap - MAX_SKIP as usize]).unwrap().plaintext, b"lost");
    assert_eq!(bob.decrypt(&lost_chain[gap - MAX_SKIP as usize - 1]), Err(DecryptError::Invalid));
}

/// Issue 12 item 3, within one chain: a jump of more than `MAX_SKIP` keys in the current chain.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn a_long_jump_within_the_current_chain_is_taken() {
    let Pair { mut alice, mut bob, mut rng } = pair(41);
    let gap = MAX_SKIP as usize + 500;
    let chain: Vec<Vec<u8>> = (0..=gap).map(|i| alice.encrypt(&i.to_be_bytes(), &mut rng).unwrap()).collect();
    let d = bob.decrypt(&chain[gap]).unwrap();
    assert_eq!((d.plaintext.as_slice(), d.lost), (&gap.to_be_bytes()[..], gap as u32 - MAX_SKIP));
    assert_eq!(bob.decrypt(&chain[gap - 1]).unwrap().plaintext, (gap - 1).to_be_bytes());
    let env = bob.encrypt(b"back", &mut rng).unwrap();
    assert_eq!(alice.decrypt(&env).unwrap().plaintext, b"back");
    let env = alice.encrypt(b"next chain", &mut rng).unwrap();
    assert_eq!(bob.decrypt(&env).unwrap().plaintext, b"next chain");
}

/// Sessions stored by the previous release (stored version 1, written by its code) still open: their
/// skipped keys are regrouped by chain, v1 envelopes waiting in the relay still decrypt, and the
/// conversation goes on. Re-stored, they use the current version.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn sessions_stored_by_version_1_still_open() {
    let fixture: serde_json::Value = serde_json::from_str(include_str!("fixtures/sessions-v1.json")).unwrap();
    let bytes = |key: &str| hex::decode(fixture[key].as_str().unwrap()).unwrap();
    let (alice_v1, bob_v1) = (bytes("alice_session"), bytes("bob_session"));
    assert_eq!((alice_v1[0], bob_v1[0]), (1, 1));
    let mut alice = Session::from_bytes(&alice_v1).unwrap();
    let mut bob = Session::from_bytes(&bob_v1).unwrap();
    assert_eq!((bob.skipped_keys(), bob.retained_chains()), (3, 2));
    let stored = bob.to_bytes();
    assert_eq!(stored[0], client_wasm::core::SESSION_VERSION);
    assert_eq!(*Session::from_bytes(&stored).unwrap().to_bytes(), *stored);
    for pending in fixture["pending_to_bob"].as_array().unwrap() {
        let hex_field = |k: &str| hex::decode(pending[k].as_str().unwrap()).unwrap();
        assert_eq!(bob.decrypt(&hex_field("envelope")).unwrap().plaintext, hex_field("plaintext"));
    }
    assert_eq!(bob.skipped_keys(), 0);
    let mut rng = rng(43);
    for round in 0..3u8 {
        let env = bob.encrypt(&[b'b', round], &mut rng).unwrap();
        assert_eq!(alice.decrypt(&env).unwrap().plaintext, [b'b', round]);
        let env = alice.encrypt(&[b'a', round], &mut rng).unwrap();
        assert_eq!(bob.decrypt(&env).unwrap().plaintext, [b'a', round]);
    }
}

/// Issue 12 item 1: a state rolled back (a save that never reached the disk) encrypts its next message
/// with the message key it already used. The AEAD key and nonce also depend on the envelope's fresh
/// random header nonce, so the two ciphertexts do not share a keystream (on v1 they did: XOR-ing the
/// bodies gave the XOR of the plaintexts).
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn a_rolled_back_state_never_reuses_a_keystream() {
    let Pair { mut alice, mut bob, .. } = pair(44);
    let rolled_back = alice.clone();
    let (p1, p2) = ([b'A'; 200], [b'B'; 200]);
    let e1 = alice.encrypt(&p1, &mut rng(1)).unwrap();
    let e2 = rolled_back.clone().encrypt(&p2, &mut rng(2)).unwrap();
    let body = 2 + 12 + client_wasm::core::ENCRYPTED_HEADER_LEN;
    let xor_bodies: Vec<u8> = e1[body..body + 200].iter().zip(&e2[body..]).map(|(a, b)| a ^ b).collect();
    let xor_plain: Vec<u8> = p1.iter().zip(&p2).map(|(a, b)| a ^ b).collect();
    assert_ne!(xor_bodies, xor_plain, "both messages were encrypted with the same key and nonce");
    // Each still decrypts; the second use of the number is refused as a replay, not misread.
    assert_eq!(bob.decrypt(&e1).unwrap().plaintext, p1);
    assert_eq!(bob.decrypt(&e2), Err(DecryptError::Invalid));
}

/// `Debug` of the core's session types prints neither secrets nor plaintext nor names: only public
/// parts (a fingerprint prefix, counters, lengths).
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn debug_output_holds_no_secrets_or_plaintext() {
    let mut rng = rng(45);
    let alice_id = Identity::generate(&mut rng);
    let bob_id = Identity::generate(&mut rng);
    let (invite, secret) = create_invite(&bob_id, [9; 32], "Bobby Tables", NOW, TTL, &mut rng);
    let stored_secret = secret.to_bytes();
    let debug_invite = format!("{invite:?} {secret:?}");
    let (mut alice, initial) = accept_invite(&alice_id, &invite, b"attack at dawn", NOW, &mut rng).unwrap();
    let (mut bob, _) = secret.respond(&bob_id, &initial, NOW).unwrap();
    let skipped = alice.encrypt(b"held back", &mut rng).unwrap();
    let env = alice.encrypt(b"attack at dawn", &mut rng).unwrap();
    let decrypted = bob.decrypt(&env).unwrap();
    assert_eq!(bob.skipped_keys(), 1);
    let debug = format!("{debug_invite} {alice:?} {bob:?} {decrypted:?}");

    let mut secrets: Vec<&[u8]> = Vec::new();
    let (stored_alice, stored_bob) = (alice.to_bytes(), bob.to_bytes());
    // Everything after the two public identities of a stored session is ratchet state.
    let state_at = 2 + 2 * client_wasm::core::IDENTITY_PUBLIC_LEN;
    for stored in [&stored_alice[state_at..], &stored_bob[state_at..], &stored_secret[1..]] {
        secrets.extend(stored.chunks(16).filter(|c| c.len() >= 8 && c.iter().any(|&b| b != 0)));
    }
    for secret in secrets {
        assert!(!debug.contains(&hex::encode(secret)), "a secret in {debug}");
        assert!(!debug.contains(format!("{:?}", &secret[..8]).trim_end_matches(']')), "a secret in {debug}");
    }
    for clear in ["attack at dawn", "Bobby Tables"] {
        assert!(!debug.contains(clear), "{clear:?} in {debug}");
        let bytes = format!("{:?}", clear.as_bytes());
        assert!(!debug.contains(bytes.trim_end_matches(']')), "{clear:?} as bytes in {debug}");
    }
    assert!(debug.contains("plaintext_len: 14"), "{debug}");
    assert_eq!(bob.decrypt(&skipped).unwrap().plaintext, b"held back");
}

/// Invite fragments are strict base64url without padding (RFC 4648 section 5): the standard alphabet's
/// `+` and `/`, padding `=`, inner whitespace and non-zero trailing bits are all `Corrupt`. Only
/// whitespace around the fragment (from copying and pasting) is trimmed.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn invite_fragments_are_strict_base64url() {
    let mut rng = rng(46);
    let bob = Identity::generate(&mut rng);
    let (invite, _) = create_invite(&bob, [1; 32], "Bob", NOW, TTL, &mut rng);
    let fragment = invite.to_fragment();
    assert_eq!(Invite::from_fragment(&format!(" {fragment}\n"), NOW).unwrap(), invite);
    // 1451 + 3 bytes: 484 full groups and 2 bytes left, so the last character carries 2 unused bits.
    assert_eq!(invite.to_bytes().len() % 3, 2);
    let last = fragment.chars().last().unwrap();
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let with_trailing_bits = alphabet.chars().nth(alphabet.find(last).unwrap() | 1).unwrap();
    let mid = fragment.len() / 2;
    let mut bad = vec![
        format!("{fragment}="),
        format!("{}{}", &fragment[..fragment.len() - 1], with_trailing_bits),
        format!("{} {}", &fragment[..mid], &fragment[mid..]),
    ];
    for (url_safe, standard) in [('-', '+'), ('_', '/')] {
        if let Some(pos) = fragment.find(url_safe) {
            let mut s = fragment.clone();
            s.replace_range(pos..pos + 1, &standard.to_string());
            bad.push(s);
        }
    }
    assert!(bad.len() >= 4);
    for s in bad {
        assert_eq!(Invite::from_fragment(&s, NOW).err(), Some(InviteError::Corrupt), "{s}");
    }
}

/// Stored X25519 secrets are the 32 bytes as drawn, not clamped; clamping happens when they are used
/// (RFC 7748 `decodeScalar25519`), so a secret and its clamped form are the same key.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn x25519_secrets_are_stored_raw_and_clamped_on_use() {
    let mut stored = vec![1u8];
    stored.extend_from_slice(&[0x42; 32]); // Ed25519 seed
    let raw = [0xFF; 32]; // every clamped bit set the "wrong" way
    stored.extend_from_slice(&raw);
    let id = Identity::from_bytes(&stored).unwrap();
    assert_eq!(&id.to_bytes()[33..], &raw, "the stored secret is kept as it was drawn");
    let mut clamped = raw;
    clamped[0] &= 248;
    clamped[31] &= 127;
    clamped[31] |= 64;
    assert_eq!(id.public().x25519(), &client_wasm::core::kdf::x25519_public(&clamped));
    let peer = client_wasm::core::kdf::x25519_public(&[7; 32]);
    assert_eq!(
        *client_wasm::core::kdf::x25519(&raw, &peer).unwrap(),
        *client_wasm::core::kdf::x25519(&clamped, &peer).unwrap()
    );
}

/// Ed25519 is verified strictly: a signature whose scalar is not reduced (S + l, the classic
/// malleability) is refused, as are small-order public keys.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn ed25519_signatures_are_verified_strictly() {
    // l = 2^252 + 27742317777372353535851937790883648493, little-endian.
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut rng = rng(47);
    let public = Identity::generate(&mut rng).public().to_bytes();
    let mut malleated = public.clone();
    let s = &mut malleated[65 + 32..];
    let mut carry = 0u16;
    for (byte, l) in s.iter_mut().zip(L) {
        let sum = u16::from(*byte) + u16::from(l) + carry;
        *byte = sum as u8;
        carry = sum >> 8;
    }
    assert_eq!(carry, 0);
    assert_eq!(IdentityPublic::from_bytes(&malleated).err(), Some(IdentityError::BadSignature));
    // The identity point (a small-order key) with any signature.
    let mut weak = public.clone();
    weak[1..33].copy_from_slice(&{
        let mut y = [0u8; 32];
        y[0] = 1;
        y
    });
    assert_eq!(IdentityPublic::from_bytes(&weak).err(), Some(IdentityError::BadSignature));
    assert!(IdentityPublic::from_bytes(&public).is_ok());
}

#[test]
fn invites_name_the_inviters_relay_inside_the_signature() {
    let mut rng = ChaCha20Rng::from_seed([21; 32]);
    let bob = Identity::generate(&mut rng);
    let relay = RelayOrigin::parse("wss://Relay-One.example:8443/ws").unwrap();
    let (invite, _) = create_invite_on(&bob, [1; 32], &relay, "Bob", NOW, TTL, &mut rng);
    let read = Invite::from_fragment(&invite.to_fragment(), NOW).unwrap();
    assert_eq!(read.relay(), Some(&relay));
    assert_eq!(read.reply_mailbox(), [1; 32]);
    let bytes = invite.to_bytes();
    assert_eq!(bytes[0], 2);
    let origin = relay.as_str();
    assert_eq!(origin, "https://relay-one.example:8443");
    // Layout: ... name, origin length, origin, signature.
    let at = bytes.len() - 64 - origin.len();
    assert_eq!(usize::from(bytes[at - 1]), origin.len());
    assert_eq!(&bytes[at..at + origin.len()], origin.as_bytes());
    // Another relay (still a relay origin) breaks the signature.
    let mut moved = bytes.clone();
    moved[at + 8] = b'x';
    assert_eq!(Invite::from_bytes(&moved, NOW).err(), Some(InviteError::BadSignature));
    // A form other than the normalised one, a cut origin or a non-origin is corrupt.
    let mut upper = bytes.clone();
    upper[at + 8] = b'R';
    assert_eq!(Invite::from_bytes(&upper, NOW).err(), Some(InviteError::Corrupt));
    assert_eq!(Invite::from_bytes(&bytes[..bytes.len() - 1], NOW).err(), Some(InviteError::Corrupt));
    let mut long = bytes.clone();
    long[at - 1] = 255;
    assert_eq!(Invite::from_bytes(&long, NOW).err(), Some(InviteError::Corrupt));
    // A version 1 invite names no relay.
    let (old, _) = create_invite(&bob, [1; 32], "Bob", NOW, TTL, &mut rng);
    assert_eq!(Invite::from_bytes(&old.to_bytes(), NOW).unwrap().relay(), None);
    // A short link seals a version 2 invite that fits its bundle, and refuses one that does not.
    let link = ShortLink::for_invite(&invite, relay.clone());
    let sealed = link.seal(&invite, &mut rng).unwrap();
    assert_eq!(link.open(&sealed, NOW).unwrap(), invite);
    let far = RelayOrigin::parse(&format!("https://{}.example", "r".repeat(200))).unwrap();
    let (big, _) = create_invite_on(&bob, [1; 32], &far, &"n".repeat(64), NOW, TTL, &mut rng);
    assert_eq!(Invite::from_bytes(&big.to_bytes(), NOW).unwrap().relay(), Some(&far));
    let big_link = ShortLink::for_invite(&big, far);
    assert_eq!(big_link.seal(&big, &mut rng).err(), Some(ShortLinkError::TooLong));
}
