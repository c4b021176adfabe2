//! The engine's subscribe path: every mailbox of a profile in a few `SubscribeBatch` frames, each
//! proof bound to the origin of the relay the engine connected to.

#[path = "common/relay.rs"]
mod relay;

use client_wasm::engine::{Engine, EngineError, Event, SUBSCRIBE_BATCH};
use doorless_frames::{ErrorCode, Frame, RelayOrigin, verify_subscribe_proof};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use relay::{NOW, RELAY_URL, relay_origin};

const CHALLENGE: [u8; 32] = [0x42; 32];

/// The frames `engine` sends once connected to `url` and given the challenge.
fn frames_on_connect(engine: &mut Engine, url: &str, rng: &mut ChaCha20Rng) -> Vec<Frame> {
    engine.on_connected(url).unwrap();
    assert_eq!(engine.take_frames(), [Frame::Hello]);
    assert!(
        engine
            .on_frame(Frame::Challenge { challenge: CHALLENGE, max_frame_len: 262_144 }, NOW, rng)
            .is_empty()
    );
    engine.take_frames()
}

#[test]
fn every_mailbox_is_subscribed_in_batches_bound_to_the_relay() {
    let mut rng = ChaCha20Rng::from_seed([3; 32]);
    let mut engine = Engine::new("Many", &mut rng);
    let invites = SUBSCRIBE_BATCH + 44;
    for _ in 0..invites {
        engine.create_invite(None, NOW, &mut rng).unwrap();
    }
    let frames = frames_on_connect(&mut engine, RELAY_URL, &mut rng);
    let mut mailboxes = std::collections::BTreeSet::new();
    let mut sizes = Vec::new();
    let other_relay = RelayOrigin::parse("https://other-relay.example").unwrap();
    for frame in &frames {
        let Frame::SubscribeBatch { origin, proofs, .. } = frame else { panic!("unexpected {frame:?}") };
        assert_eq!(origin, "https://relay.test");
        sizes.push(proofs.len());
        for proof in proofs {
            let mailbox =
                verify_subscribe_proof(&relay_origin(), &CHALLENGE, &proof.public_key, &proof.signature)
                    .unwrap();
            mailboxes.insert(mailbox);
            // Useless at any other relay.
            assert!(
                verify_subscribe_proof(&other_relay, &CHALLENGE, &proof.public_key, &proof.signature)
                    .is_err()
            );
        }
        // Within the default frame limit with room to spare.
        assert!(frame.encode().len() <= Frame::subscribe_batch_len(255, SUBSCRIBE_BATCH));
    }
    assert_eq!(sizes, [SUBSCRIBE_BATCH, 44]);
    assert_eq!(mailboxes.len(), invites);
    // Each frame has its own request id.
    let requests: std::collections::BTreeSet<u32> = frames
        .iter()
        .map(|f| match f {
            Frame::SubscribeBatch { request, .. } => *request,
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(requests.len(), frames.len());

    // A new invite while connected is subscribed at once, in a batch of one (its short link's
    // bundle goes up with it).
    engine.create_invite(None, NOW, &mut rng).unwrap();
    match &engine.take_frames()[..] {
        [Frame::SubscribeBatch { proofs, .. }, Frame::PutBundle { .. }] => assert_eq!(proofs.len(), 1),
        other => panic!("expected one SubscribeBatch and the bundle, got {other:?}"),
    }
}

#[test]
fn the_origin_is_the_normalised_relay_address() {
    let mut rng = ChaCha20Rng::from_seed([4; 32]);
    // Each engine's first relay becomes its home, where its invite's mailbox is subscribed.
    for (url, origin) in [
        ("ws://127.0.0.1:8080/ws", "http://127.0.0.1:8080"),
        ("wss://Relay.Example:443/ws", "https://relay.example"),
        ("https://relay.example", "https://relay.example"),
    ] {
        let mut engine = Engine::new("Origin", &mut rng);
        engine.create_invite(None, NOW, &mut rng).unwrap();
        let frames = frames_on_connect(&mut engine, url, &mut rng);
        assert!(matches!(&frames[..], [Frame::SubscribeBatch { origin: o, .. }] if o == origin), "{url}");
    }
    let mut engine = Engine::new("Origin", &mut rng);
    engine.create_invite(None, NOW, &mut rng).unwrap();
    // An address with no plain host is refused, and the engine stays offline.
    assert!(matches!(engine.on_connected("ws://relay_1/ws"), Err(EngineError::InvalidRelayUrl)));
    assert!(matches!(engine.on_connected("relay.example"), Err(EngineError::InvalidRelayUrl)));
    assert!(engine.take_frames().is_empty());
    assert!(
        engine
            .on_frame(Frame::Challenge { challenge: CHALLENGE, max_frame_len: 1024 }, NOW, &mut rng)
            .is_empty()
    );
    assert!(engine.take_frames().is_empty());
    assert!(!engine.is_connected());
}

#[test]
fn refused_subscriptions_are_reported_once_per_reason() {
    let mut rng = ChaCha20Rng::from_seed([5; 32]);
    let mut engine = Engine::new("Refused", &mut rng);
    frames_on_connect(&mut engine, RELAY_URL, &mut rng);
    let results = vec![
        None,
        Some(ErrorCode::TooManySubscriptions),
        Some(ErrorCode::TooManySubscriptions),
        Some(ErrorCode::BadProof),
    ];
    let events = engine.on_frame(Frame::SubscribedBatch { request: 1, results }, NOW, &mut rng);
    assert_eq!(
        events,
        [Event::RelayError(ErrorCode::TooManySubscriptions), Event::RelayError(ErrorCode::BadProof)]
    );
    // Refusals do not disconnect the engine; nothing is sent in answer.
    assert!(engine.is_connected());
    assert!(engine.take_frames().is_empty());
}
