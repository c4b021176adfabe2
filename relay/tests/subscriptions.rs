//! Many subscriptions on one connection (a profile with hundreds of contacts), and subscribe proofs
//! bound to the relay they were made for.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use common::{Client, finish, mailbox_of, test_config};
use doorless_frames::{ErrorCode, Frame, MailboxProof, RelayOrigin, subscribe_proof_message};
use ed25519_dalek::{Signer, SigningKey};
use relay::{Config, ManualClock, MemoryStore, Store};

async fn start_memory(config: Config) -> relay::Relay {
    common::start_memory(config).await.0
}

/// `n` distinct mailbox keys.
fn keys(n: usize) -> Vec<SigningKey> {
    (0..n)
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&(i as u64 + 1000).to_be_bytes());
            SigningKey::from_bytes(&seed)
        })
        .collect()
}

fn batch(client: &Client, request: u32, keys: &[SigningKey]) -> Frame {
    Frame::SubscribeBatch {
        request,
        origin: client.origin.as_str().to_owned(),
        proofs: keys.iter().map(|key| client.proof(key)).collect(),
    }
}

/// A proof for `key` made for the relay at `origin` with `challenge`.
fn proof_for(origin: &str, challenge: &[u8; 32], key: &SigningKey) -> MailboxProof {
    let origin = RelayOrigin::parse(origin).unwrap();
    let public_key = key.verifying_key().to_bytes();
    let signature = key.sign(&subscribe_proof_message(&origin, challenge, &public_key)).to_bytes();
    MailboxProof { public_key, signature }
}

#[tokio::test]
async fn one_connection_holds_600_mailboxes_and_gets_deliveries_for_all() {
    let dir = tempfile::tempdir().unwrap();
    let relay = relay::start(&Config { data_dir: dir.path().to_path_buf(), ..test_config() }).await.unwrap();
    const N: usize = 600;
    let keys = keys(N);
    let mut owner = Client::connect(relay.addr()).await;
    for (i, chunk) in keys.chunks(256).enumerate() {
        let frame = batch(&owner, i as u32 + 1, chunk);
        owner.send(&frame).await;
        match owner.recv().await {
            Frame::SubscribedBatch { request, results } => {
                assert_eq!(request, i as u32 + 1);
                assert_eq!(results, vec![None; chunk.len()]);
            }
            other => panic!("expected SubscribedBatch, got {other:?}"),
        }
    }
    let mut sender = Client::connect(relay.addr()).await;
    for (i, key) in keys.iter().enumerate() {
        sender
            .send(&Frame::Deposit { request: i as u32, mailbox: mailbox_of(key), payload: vec![i as u8] })
            .await;
    }
    for i in 0..N {
        assert_eq!(sender.recv().await, Frame::Deposited { request: i as u32 });
    }
    let mut delivered = BTreeSet::new();
    while delivered.len() < N {
        let (mailbox, _, _) = owner.recv_deliver().await;
        assert!(delivered.insert(mailbox), "one blob per mailbox");
    }
    let expected: BTreeSet<_> = keys.iter().map(mailbox_of).collect();
    assert_eq!(delivered, expected);
    assert_eq!(relay.metrics().subscriptions.load(Relaxed), N as i64);
    finish(relay).await;
}

#[tokio::test]
async fn over_the_limit_each_mailbox_is_refused_and_the_connection_stays() {
    let relay = start_memory(Config { max_subscriptions: 3, ..test_config() }).await;
    let keys = keys(6);
    let mut client = Client::connect(relay.addr()).await;
    // Five mailboxes, one proof broken: three fit, the broken one and the fifth do not.
    let mut frame = batch(&client, 7, &keys[..5]);
    if let Frame::SubscribeBatch { proofs, .. } = &mut frame {
        proofs[1].signature[0] ^= 1;
    }
    client.send(&frame).await;
    let too_many = Some(ErrorCode::TooManySubscriptions);
    assert_eq!(
        client.recv().await,
        Frame::SubscribedBatch {
            request: 7,
            results: vec![None, Some(ErrorCode::BadProof), None, None, too_many]
        }
    );
    // Subscribing again to a held mailbox is not a new subscription; a new one is still refused.
    client.send(&batch(&client, 8, &[keys[0].clone(), keys[5].clone()])).await;
    assert_eq!(client.recv().await, Frame::SubscribedBatch { request: 8, results: vec![None, too_many] });
    // So is a single Subscribe, with an error for its request only.
    let MailboxProof { public_key, signature } = client.proof(&keys[5]);
    client.send(&Frame::Subscribe { request: 9, public_key, signature }).await;
    assert_eq!(client.recv().await, Frame::Error { request: 9, code: ErrorCode::TooManySubscriptions });
    // The subscribed ones get their blobs.
    let mut sender = Client::connect(relay.addr()).await;
    sender.deposit(1, mailbox_of(&keys[3]), b"to the fourth").await;
    assert_eq!(
        client.recv_deliver().await,
        (mailbox_of(&keys[3]), stored_seq(&relay, &keys[3]).await, b"to the fourth".to_vec())
    );
    finish(relay).await;
}

/// The sequence number of the one blob stored for `key`'s mailbox.
async fn stored_seq(relay: &relay::Relay, key: &SigningKey) -> u64 {
    let blobs = relay.store().fetch(mailbox_of(key), 0, 10).await.unwrap();
    assert_eq!(blobs.len(), 1);
    blobs[0].seq
}

#[tokio::test]
async fn a_proof_made_for_another_relay_is_refused() {
    let relay = start_memory(test_config()).await;
    let key = keys(1).remove(0);
    // Relay B, connected to relay A as a client, got A's challenge and had the victim sign it,
    // thinking it was B's: the proof names B.
    let mut relay_b = Client::connect(relay.addr()).await;
    let proof = proof_for("https://relay-b.example", &relay_b.challenge, &key);
    let replay =
        Frame::SubscribeBatch { request: 5, origin: "https://relay-b.example".into(), proofs: vec![proof] };
    relay_b.send(&replay).await;
    relay_b.expect_error_then_close(5, ErrorCode::WrongOrigin).await;
    // Claiming A's origin for it does not help: the signature names B.
    let mut relay_b = Client::connect(relay.addr()).await;
    let proof = proof_for("https://relay-b.example", &relay_b.challenge, &key);
    let claimed =
        Frame::SubscribeBatch { request: 6, origin: relay_b.origin.as_str().into(), proofs: vec![proof] };
    relay_b.send(&claimed).await;
    assert_eq!(
        relay_b.recv().await,
        Frame::SubscribedBatch { request: 6, results: vec![Some(ErrorCode::BadProof)] }
    );
    // Nor in a single Subscribe.
    let proof = proof_for("https://relay-b.example", &relay_b.challenge, &key);
    relay_b
        .send(&Frame::Subscribe { request: 7, public_key: proof.public_key, signature: proof.signature })
        .await;
    relay_b.expect_error_then_close(7, ErrorCode::BadProof).await;
    // Counted under its own code.
    assert_eq!(relay.metrics().errors_sent(ErrorCode::WrongOrigin), 1);
    assert_eq!(relay.metrics().errors_sent(ErrorCode::ShuttingDown), 0);
    finish(relay).await;
}

#[tokio::test]
async fn the_relay_takes_its_origin_from_its_configuration_not_the_host_header() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let relay = start_memory(test_config()).await;
    let key = keys(1).remove(0);
    // The upgrade request names relay B as its Host.
    let mut request = format!("ws://{}/ws", relay.addr()).into_client_request().unwrap();
    request.headers_mut().insert("host", "relay-b.example".parse().unwrap());
    let (ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let mut client =
        Client { ws, challenge: [0; 32], origin: RelayOrigin::parse("http://relay-b.example").unwrap() };
    client.send(&Frame::Hello).await;
    let Frame::Challenge { challenge, .. } = client.recv().await else { panic!("expected Challenge") };
    client.challenge = challenge;
    client.send(&batch(&client, 3, std::slice::from_ref(&key))).await;
    client.expect_error_then_close(3, ErrorCode::WrongOrigin).await;
    finish(relay).await;
}

#[tokio::test]
async fn a_loopback_relay_accepts_its_address_and_localhost_by_default() {
    let relay = start_memory(test_config()).await;
    let port = relay.addr().port();
    let origins: Vec<&str> = relay.origins().iter().map(RelayOrigin::as_str).collect();
    assert_eq!(origins, [format!("http://127.0.0.1:{port}"), format!("http://localhost:{port}")]);
    let key = keys(1).remove(0);
    let mut client = Client::connect(relay.addr()).await;
    client.origin = RelayOrigin::parse(&format!("http://localhost:{port}")).unwrap();
    client.subscribe(&key, 1).await;
    client.send(&batch(&client, 2, std::slice::from_ref(&key))).await;
    assert_eq!(client.recv().await, Frame::SubscribedBatch { request: 2, results: vec![None] });
    finish(relay).await;
}

#[tokio::test]
async fn a_configured_origin_replaces_the_defaults() {
    let relay =
        start_memory(Config { public_origin: vec!["HTTPS://Relay.Example:443/".into()], ..test_config() })
            .await;
    let origins: Vec<&str> = relay.origins().iter().map(RelayOrigin::as_str).collect();
    assert_eq!(origins, ["https://relay.example"]);
    let key = keys(1).remove(0);
    let mut client = Client::connect(relay.addr()).await;
    // The address the test reached it at is not one of its origins any more.
    client.send(&batch(&client, 1, std::slice::from_ref(&key))).await;
    client.expect_error_then_close(1, ErrorCode::WrongOrigin).await;
    let mut client = Client::connect(relay.addr()).await;
    client.origin = RelayOrigin::parse("https://relay.example").unwrap();
    client.send(&batch(&client, 2, std::slice::from_ref(&key))).await;
    assert_eq!(client.recv().await, Frame::SubscribedBatch { request: 2, results: vec![None] });
    finish(relay).await;
}

#[tokio::test]
async fn a_public_listen_address_needs_a_configured_origin() {
    let config = Config { listen: "0.0.0.0:0".parse().unwrap(), ..test_config() };
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new(config.quotas(), Arc::new(ManualClock::new(0))));
    match relay::start_with_store(&config, store).await {
        Err(relay::StartError::Origin(relay::OriginConfigError::Missing)) => {}
        Err(other) => panic!("expected the missing-origin error, got {other}"),
        Ok(_) => panic!("a relay on a public address started without knowing its origin"),
    }
    let config = Config { public_origin: vec!["relay.example".into()], ..test_config() };
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new(config.quotas(), Arc::new(ManualClock::new(0))));
    assert!(matches!(
        relay::start_with_store(&config, store).await,
        Err(relay::StartError::Origin(relay::OriginConfigError::Invalid(_)))
    ));
}

#[tokio::test]
async fn a_subscription_is_answered_after_the_deposits_sent_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let relay = relay::start(&Config { data_dir: dir.path().to_path_buf(), ..test_config() }).await.unwrap();
    let keys = keys(3);
    let mut client = Client::connect(relay.addr()).await;
    for request in 1..=10u32 {
        let deposit = Frame::Deposit { request, mailbox: mailbox_of(&keys[0]), payload: vec![request as u8] };
        client.send(&deposit).await;
    }
    client.send(&batch(&client, 11, &keys)).await;
    for request in 1..=10u32 {
        assert_eq!(client.recv().await, Frame::Deposited { request });
    }
    assert_eq!(client.recv().await, Frame::SubscribedBatch { request: 11, results: vec![None; 3] });
    // Then the ten blobs of the first mailbox.
    for i in 1..=10u8 {
        assert_eq!(client.recv_deliver().await.2, vec![i]);
    }
    finish(relay).await;
}

#[tokio::test]
async fn a_batch_before_hello_is_unexpected_and_carries_its_id() {
    let relay = start_memory(test_config()).await;
    let mut client = Client::connect_raw(relay.addr()).await;
    let frame = Frame::SubscribeBatch { request: 12, origin: client.origin.as_str().into(), proofs: vec![] };
    client.send(&frame).await;
    client.expect_error_then_close(12, ErrorCode::UnexpectedFrame).await;
    finish(relay).await;
}
