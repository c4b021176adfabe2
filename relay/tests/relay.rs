//! Relay behaviour over real WebSocket connections on loopback.

mod common;

use std::sync::Arc;

use common::{Client, key, mailbox_of};
use doorless_frames::Frame;
use relay::{Config, ManualClock, MemoryStore, Store};

fn test_config() -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        deposit_rate: 100_000.0,
        deposit_burst: 100_000.0,
        ..Config::default()
    }
}

#[allow(dead_code)]
async fn start_memory(config: Config) -> relay::Relay {
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new(config.quotas(), clock));
    relay::start_with_store(&config, store).await.unwrap()
}

async fn start_redb(config: Config, dir: &std::path::Path) -> relay::Relay {
    relay::start(&Config { data_dir: dir.to_path_buf(), ..config }).await.unwrap()
}

#[tokio::test]
async fn online_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start_redb(test_config(), dir.path()).await;
    let owner_key = key(1);
    let mut owner = Client::connect(relay.addr()).await;
    let mailbox = owner.subscribe(&owner_key, 1).await;
    let mut sender = Client::connect(relay.addr()).await;
    sender.deposit(7, mailbox, b"hello").await;
    let (m, seq, payload) = owner.recv_deliver().await;
    assert_eq!((m, payload.as_slice()), (mailbox, &b"hello"[..]));
    assert!(seq > 0);
    relay.shutdown().await;
}

#[tokio::test]
async fn delivery_after_reconnect_in_order_and_ack_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start_redb(test_config(), dir.path()).await;
    let owner_key = key(2);
    let mailbox = mailbox_of(&owner_key);
    let mut sender = Client::connect(relay.addr()).await;
    for i in 0..5u32 {
        sender.deposit(i, mailbox, &i.to_be_bytes()).await;
    }

    let mut owner = Client::connect(relay.addr()).await;
    owner.subscribe(&owner_key, 1).await;
    let mut seqs = Vec::new();
    for i in 0..5u32 {
        let (_, seq, payload) = owner.recv_deliver().await;
        assert_eq!(payload, i.to_be_bytes());
        seqs.push(seq);
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    owner.send(&Frame::Ack { mailbox, seq: seqs[2] }).await;
    // Acks and deposits of one connection are committed in order: a confirmed deposit after the
    // ack means the ack is durable.
    owner.deposit(100, mailbox_of(&key(99)), b"barrier").await;
    drop(owner);

    // After reconnecting, only the unacknowledged blobs come back, in order. A marker deposited
    // after the reconnect proves nothing else is pending.
    let mut owner = Client::connect(relay.addr()).await;
    owner.subscribe(&owner_key, 1).await;
    let (_, seq3, p3) = owner.recv_deliver().await;
    let (_, seq4, p4) = owner.recv_deliver().await;
    assert_eq!(
        (seq3, p3, seq4, p4),
        (seqs[3], 3u32.to_be_bytes().to_vec(), seqs[4], 4u32.to_be_bytes().to_vec())
    );
    sender.deposit(9, mailbox, b"marker").await;
    let (_, marker_seq, marker) = owner.recv_deliver().await;
    assert_eq!(marker, b"marker");
    assert!(marker_seq > seq4);
    relay.shutdown().await;
}
