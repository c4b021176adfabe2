//! The cluster store on a real Valkey cluster (3 masters, 3 replicas) on loopback: what the
//! `Store` contract asks, what is left in the cluster after an ack, and the start-up refusal on
//! a server that cannot confirm deposits on disk.

mod common;

use std::net::SocketAddr;
use std::process::Child;
use std::sync::Arc;

use doorless_frames::MailboxId;
use relay::store::cluster::ClusterError;
use relay::store::{Blob, ClusterOptions, Quotas, StoreError, StoreStats};
use relay::{ClusterStore, ManualClock, Store};

use common::{Client, cluster, key, mailbox_of};
use doorless_frames::Frame;

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

/// A relay process on the shared cluster under `prefix`, and the address it listens on.
fn spawn_relay(prefix: &str, data_dir: &std::path::Path) -> (Child, SocketAddr) {
    let nodes = cluster::shared().seeds().join(",");
    // The data directory holds only the relay's attachment blobs with this store.
    common::spawn_relay_process(&[
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--store",
        "cluster",
        "--cluster-prefix",
        prefix,
        "--cluster-nodes",
        &nodes,
    ])
}

/// A client and the deliveries it got while waiting for other frames: (seq, first payload byte).
struct Person {
    client: Client,
    got: Vec<(u64, u8)>,
}

impl Person {
    async fn connect(addr: SocketAddr, key: &ed25519_dalek::SigningKey) -> Self {
        let mut client = Client::connect(addr).await;
        client.subscribe(key, 1).await;
        Self { client, got: Vec::new() }
    }

    /// Deposits and waits for the confirmation, keeping the deliveries that come meanwhile.
    async fn deposit(&mut self, request: u32, mailbox: MailboxId, payload: &[u8]) {
        self.client.send(&Frame::Deposit { request, mailbox, payload: payload.to_vec() }).await;
        loop {
            match self.client.recv().await {
                Frame::Deposited { request: r } if r == request => return,
                Frame::Deliver { seq, payload, .. } => self.got.push((seq, payload[0])),
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    /// The first `n` deliveries (received now if not yet), taken out.
    async fn receive(&mut self, n: usize) -> Vec<(u64, u8)> {
        while self.got.len() < n {
            let (_, seq, payload) = self.client.recv_deliver().await;
            self.got.push((seq, payload[0]));
        }
        self.got.drain(..n).collect()
    }
}

fn ids(got: &[(u64, u8)]) -> Vec<u8> {
    got.iter().map(|&(_, id)| id).collect()
}

fn increasing(got: &[(u64, u8)]) -> bool {
    got.windows(2).all(|w| w[0].0 < w[1].0)
}

#[tokio::test]
async fn two_relay_processes_share_mailboxes_and_a_client_moves_when_one_dies() {
    let prefix = cluster::unique_prefix();
    let (dir1, dir2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut node1, addr1) = spawn_relay(&prefix, dir1.path());
    let (mut node2, addr2) = spawn_relay(&prefix, dir2.path());
    let (alice_key, bob_key) = (key(71), key(72));
    let (alice_box, bob_box) = (mailbox_of(&alice_key), mailbox_of(&bob_key));
    let mut alice = Person::connect(addr1, &alice_key).await;
    let mut bob = Person::connect(addr2, &bob_key).await;

    // A chat across the two relays: each deposit wakes the other relay's subscriber.
    for i in 0..20u8 {
        bob.deposit(u32::from(i) + 10, alice_box, &[i; 300]).await;
        alice.deposit(u32::from(i) + 10, bob_box, &[i; 200]).await;
    }
    let to_alice = alice.receive(20).await;
    let to_bob = bob.receive(20).await;
    assert_eq!(ids(&to_alice), (0..20).collect::<Vec<u8>>());
    assert_eq!(ids(&to_bob), (0..20).collect::<Vec<u8>>());
    assert!(increasing(&to_alice) && increasing(&to_bob));
    alice.client.send(&Frame::Ack { mailbox: alice_box, seq: to_alice[19].0 }).await;
    bob.client.send(&Frame::Ack { mailbox: bob_box, seq: to_bob[19].0 }).await;

    // Ten more reach Alice on node 1, unacknowledged; then node 1 dies.
    for i in 20..30u8 {
        bob.deposit(u32::from(i) + 10, alice_box, &[i; 300]).await;
    }
    let before = alice.receive(10).await;
    assert_eq!(ids(&before), (20..30).collect::<Vec<u8>>());
    node1.kill().unwrap();
    node1.wait().unwrap();
    assert_eq!(alice.client.recv_opt().await, None, "node 1 is gone");
    for i in 30..40u8 {
        bob.deposit(u32::from(i) + 10, alice_box, &[i; 300]).await;
    }

    // Alice moves to node 2: everything not acknowledged comes again, once, in order, under the
    // same numbers; the ack of the first 20 may or may not have been applied before the kill.
    let mut alice = Person::connect(addr2, &alice_key).await;
    let mut after = alice.receive(1).await;
    let from = after[0].1;
    assert!(from == 0 || from == 20, "redelivery starts at {from}");
    after.extend(alice.receive(usize::from(40 - from) - 1).await);
    assert_eq!(ids(&after), (from..40).collect::<Vec<u8>>());
    assert!(increasing(&after));
    let known: Vec<(u64, u8)> = to_alice.iter().chain(&before).copied().collect();
    for entry in &after {
        if entry.1 < 30 {
            assert!(known.contains(entry), "a blob came back under another number");
        }
    }
    // And Alice's deposits through node 2 reach Bob, after the first 20.
    alice.deposit(99, bob_box, &[20; 200]).await;
    let (seq, id) = bob.receive(1).await[0];
    assert_eq!(id, 20);
    assert!(seq > to_bob[19].0);
    assert!(alice.got.is_empty() && bob.got.is_empty(), "nothing delivered twice");
    node2.kill().unwrap();
    node2.wait().unwrap();
}

/// The first `got` entries from sender `from` (ids are `from * 50 + round`), as rounds.
fn rounds_from(got: &[(u64, u8)], from: u8) -> Vec<u8> {
    got.iter().map(|&(_, id)| id).filter(|id| id / 50 == from).map(|id| id % 50).collect()
}

/// Three relay processes on one cluster, three people each on their own relay, everyone writing
/// to everyone; the second relay dies, its person moves to the third, and what she had not
/// acknowledged comes again there under the same numbers, with what was written meanwhile after
/// it: nothing lost, duplicated or reordered.
#[tokio::test]
async fn three_relay_processes_serve_three_people_and_one_moves_when_hers_dies() {
    const ROUNDS: u8 = 10;
    let prefix = cluster::unique_prefix();
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let mut nodes: Vec<(Child, SocketAddr)> =
        dirs.iter().map(|dir| spawn_relay(&prefix, dir.path())).collect();
    let keys = [key(81), key(82), key(83)];
    let boxes = keys.each_ref().map(mailbox_of);
    let mut people = Vec::new();
    for (person, (_, addr)) in keys.iter().zip(&nodes) {
        people.push(Person::connect(*addr, person).await);
    }
    let mut request = 0;
    for round in 0..ROUNDS {
        for from in 0..3u8 {
            for to in (0..3).filter(|&to| to != usize::from(from)) {
                request += 1;
                people[usize::from(from)].deposit(request, boxes[to], &[from * 50 + round; 100]).await;
            }
        }
    }
    let mut received = Vec::new();
    for (me, person) in people.iter_mut().enumerate() {
        let got = person.receive(2 * usize::from(ROUNDS)).await;
        assert!(increasing(&got), "person {me}: numbers go up");
        for from in (0..3u8).filter(|&from| usize::from(from) != me) {
            assert_eq!(rounds_from(&got, from), (0..ROUNDS).collect::<Vec<_>>(), "person {me} from {from}");
        }
        received.push(got);
    }

    // The second relay dies, its person's deliveries unacknowledged; the others write once more.
    nodes[1].0.kill().unwrap();
    nodes[1].0.wait().unwrap();
    assert_eq!(people[1].client.recv_opt().await, None, "relay 2 is gone");
    for from in [0u8, 2] {
        request += 1;
        people[usize::from(from)].deposit(request, boxes[1], &[from * 50 + ROUNDS; 100]).await;
    }
    let mut moved = Person::connect(nodes[2].1, &keys[1]).await;
    let again = moved.receive(2 * usize::from(ROUNDS) + 2).await;
    assert_eq!(again[..2 * usize::from(ROUNDS)], received[1][..], "redelivered once, under the same numbers");
    assert!(increasing(&again));
    for from in [0u8, 2] {
        assert_eq!(rounds_from(&again, from), (0..=ROUNDS).collect::<Vec<_>>(), "from {from}");
    }
    assert!(moved.got.is_empty() && people[0].got.is_empty() && people[2].got.is_empty(), "nothing twice");
    for (mut child, _) in [nodes.remove(2), nodes.remove(0)] {
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
