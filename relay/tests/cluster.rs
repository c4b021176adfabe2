//! The cluster store on a real Valkey cluster (3 masters, 3 replicas) on loopback: what the
//! `Store` contract asks, what is left in the cluster after an ack, and the start-up refusal on
//! a server that cannot confirm deposits on disk.

mod common;

use std::sync::Arc;

use doorless_frames::MailboxId;
use relay::store::cluster::ClusterError;
use relay::store::{Blob, ClusterOptions, Quotas, StoreError, StoreStats};
use relay::{ClusterStore, ManualClock, Store};

use common::cluster;

const NOW: u64 = 1_700_000_000_000;

async fn store(quotas: Quotas) -> (ClusterStore, Arc<ManualClock>, String) {
    let clock = Arc::new(ManualClock::new(NOW));
    let options = cluster::options();
    let prefix = options.prefix.clone();
    (ClusterStore::connect(options, quotas, clock.clone()).await.unwrap(), clock, prefix)
}

fn seqs(blobs: &[Blob]) -> Vec<u64> {
    blobs.iter().map(|b| b.seq).collect()
}

/// Keys of `prefix` on every master.
fn keys_of(prefix: &str) -> Vec<String> {
    let cluster = cluster::shared();
    let mut keys = Vec::new();
    for node in &cluster.nodes[..cluster.masters] {
        let reply = node.query(&["KEYS", &format!("{prefix}:*")]).unwrap();
        keys.extend(redis::from_redis_value::<Vec<String>>(reply).unwrap());
    }
    keys.sort();
    keys
}

#[tokio::test]
async fn deposits_are_numbered_like_the_embedded_store_and_acks_trim_them() {
    let (store, clock, prefix) = store(Quotas::default()).await;
    let (a, b) = (MailboxId([1; 32]), MailboxId([0xfe; 32]));
    let mut sent = Vec::new();
    for i in 0..5u8 {
        sent.push(store.deposit(a, vec![i; 10 + usize::from(i)]).await.unwrap());
    }
    // The first sequence number of a new mailbox is the embedded store's `now << 16`.
    assert_eq!(sent, (0..5).map(|i| (NOW << 16) + i).collect::<Vec<_>>());
    clock.advance(3);
    let later = store.deposit(a, b"later".to_vec()).await.unwrap();
    assert_eq!(later, (NOW + 3) << 16);
    let other = store.deposit(b, b"b".to_vec()).await.unwrap();
    assert_eq!(other, (NOW + 3) << 16, "mailboxes are numbered independently");

    let all = store.fetch(a, 0, 100).await.unwrap();
    assert_eq!(seqs(&all), [sent.clone(), vec![later]].concat());
    assert_eq!(*all[2].payload, [2u8; 12]);
    assert_eq!(seqs(&store.fetch(a, sent[1], 2).await.unwrap()), sent[2..4]);
    assert_eq!(store.stats(), StoreStats { blobs: 7, bytes: 10 + 11 + 12 + 13 + 14 + 5 + 1, expired: 0 });

    assert_eq!(store.ack(a, sent[2]).await.unwrap(), 3);
    assert_eq!(store.ack(a, sent[2]).await.unwrap(), 0, "an ack is idempotent");
    assert_eq!(seqs(&store.fetch(a, 0, 100).await.unwrap()), [sent[3], sent[4], later]);
    assert_eq!(store.stats(), StoreStats { blobs: 4, bytes: 13 + 14 + 5 + 1, expired: 0 });
    // Acknowledging everything leaves the stream's last id, so numbers never go back.
    assert_eq!(store.ack(a, later).await.unwrap(), 3);
    assert_eq!(store.deposit(a, b"next".to_vec()).await.unwrap(), later + 1);
    let keys = keys_of(&prefix);
    assert_eq!(keys.len(), 4, "a stream and a quota hash per mailbox, nothing else: {keys:?}");
    store.close().await.unwrap();
}

#[tokio::test]
async fn quotas_are_exact_per_mailbox() {
    let quotas = Quotas { mailbox_max_count: 3, mailbox_max_bytes: 100, ..Quotas::default() };
    let (store, _, _) = store(quotas).await;
    let (a, b) = (MailboxId([2; 32]), MailboxId([3; 32]));
    for _ in 0..3 {
        store.deposit(a, vec![0; 10]).await.unwrap();
    }
    assert!(matches!(store.deposit(a, vec![0; 1]).await, Err(StoreError::MailboxFullCount)));
    store.deposit(b, vec![0; 100]).await.unwrap();
    assert!(matches!(store.deposit(b, vec![0; 1]).await, Err(StoreError::MailboxFullBytes)));
    let last = store.fetch(a, 0, 10).await.unwrap()[2].seq;
    store.ack(a, last).await.unwrap();
    store.deposit(a, vec![0; 10]).await.unwrap();
    store.close().await.unwrap();
}

#[tokio::test]
async fn expiry_trims_by_time_and_forgets_idle_mailboxes() {
    let quotas = Quotas { ttl_ms: 1_000, ..Quotas::default() };
    let (store, clock, prefix) = store(quotas).await;
    let a = MailboxId([4; 32]);
    let old = store.deposit(a, b"old".to_vec()).await.unwrap();
    clock.advance(600);
    let new = store.deposit(a, b"new".to_vec()).await.unwrap();
    clock.advance(400);
    // `old` is exactly a TTL old: gone from fetch before the expiry pass runs.
    assert_eq!(seqs(&store.fetch(a, 0, 10).await.unwrap()), [new]);
    assert_eq!(store.expire().await.unwrap(), 1);
    assert_eq!(store.stats(), StoreStats { blobs: 1, bytes: 3, expired: 1 });
    assert_eq!(keys_of(&prefix).len(), 2);
    // An ack touches the mailbox: once empty it is remembered for a TTL after that.
    clock.advance(500);
    assert_eq!(store.ack(MailboxId([4; 32]), new).await.unwrap(), 1);
    clock.advance(999);
    assert_eq!(store.expire().await.unwrap(), 0);
    assert!(old < new);
    assert_eq!(keys_of(&prefix).len(), 2, "empty, but touched within a TTL: remembered");
    clock.advance(1);
    assert_eq!(store.expire().await.unwrap(), 0);
    assert_eq!(keys_of(&prefix), Vec::<String>::new(), "empty and idle for a TTL: forgotten");
    // A forgotten mailbox starts again from the clock, above every number it had.
    assert!(store.deposit(a, b"again".to_vec()).await.unwrap() > new);
    store.close().await.unwrap();
}

#[tokio::test]
async fn a_cluster_that_cannot_confirm_on_disk_is_refused_at_start() {
    // One master, no replica, `appendonly no`: WAITAOF cannot be satisfied.
    let weak = cluster::ValkeyCluster::start_with(1, 0, false);
    let clock = Arc::new(ManualClock::new(NOW));
    let options = ClusterOptions::new(weak.seeds());
    match ClusterStore::connect(options, Quotas::default(), clock).await {
        Err(err @ ClusterError::NoWaitAof(_)) => {
            let text = err.to_string();
            assert!(text.contains("WAITAOF") && text.contains("--cluster-durability"), "{text}");
        }
        Err(other) => panic!("expected NoWaitAof, got {other}"),
        Ok(_) => panic!("a cluster without WAITAOF was accepted"),
    }
}
