//! Relay behaviour over real WebSocket connections on loopback.

mod common;

use std::sync::Arc;

use std::sync::atomic::Ordering::Relaxed;

use common::{Client, finish, key, mailbox_of, start_memory, test_config, wait_until};
use doorless_frames::{ErrorCode, Frame, MailboxId};
use relay::{Config, ManualClock, Store};

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
    finish(relay).await;
}

/// Payloads from empty to 200 KiB arrive intact and in order, live and again from the store, with
/// both stores.
#[tokio::test]
async fn payloads_of_every_size_arrive_intact() {
    let sizes = [0, 1, 16 * 1024 - 1, 16 * 1024, 64 * 1024, 200 * 1024];
    let payload = |i: usize, len: usize| (0..len).map(|j| (i * 31 + j * 7) as u8).collect::<Vec<u8>>();
    let dir = tempfile::tempdir().unwrap();
    for relay in [start_memory(test_config()).await.0, start_redb(test_config(), dir.path()).await] {
        let owner_key = key(3);
        let mut owner = Client::connect(relay.addr()).await;
        let mailbox = owner.subscribe(&owner_key, 1).await;
        let mut sender = Client::connect(relay.addr()).await;
        for (i, len) in sizes.into_iter().enumerate() {
            sender.deposit(i as u32, mailbox, &payload(i, len)).await;
        }
        for (i, len) in sizes.into_iter().enumerate() {
            let (_, _, got) = owner.recv_deliver().await;
            assert_eq!(got, payload(i, len), "payload {i} ({len} bytes)");
        }
        // Delivered again, from the store, on a new subscription.
        let mut again = Client::connect(relay.addr()).await;
        again.subscribe(&owner_key, 2).await;
        for (i, len) in sizes.into_iter().enumerate() {
            assert_eq!(again.recv_deliver().await.2, payload(i, len));
        }
        finish(relay).await;
    }
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
    finish(relay).await;
}

#[tokio::test]
async fn concurrent_depositors_keep_their_own_order() {
    let (relay, _) = start_memory(test_config()).await;
    let owner_key = key(3);
    let mailbox = mailbox_of(&owner_key);
    let mut owner = Client::connect(relay.addr()).await;
    owner.subscribe(&owner_key, 1).await;
    let mut senders = Vec::new();
    for sender_id in 0..4u8 {
        let addr = relay.addr();
        senders.push(tokio::spawn(async move {
            let mut client = Client::connect(addr).await;
            // Pipelined: all deposits first, then all confirmations.
            for i in 0..50u32 {
                client.send(&Frame::Deposit { request: i, mailbox, payload: vec![sender_id, i as u8] }).await;
            }
            for i in 0..50u32 {
                assert_eq!(client.recv().await, Frame::Deposited { request: i });
            }
        }));
    }
    let mut last_seq = 0;
    let mut next = [0u8; 4];
    for _ in 0..200 {
        let (_, seq, payload) = owner.recv_deliver().await;
        assert!(seq > last_seq, "sequence numbers strictly increase");
        last_seq = seq;
        let sender = payload[0] as usize;
        assert_eq!(payload[1], next[sender], "each sender's deposits arrive in its order");
        next[sender] += 1;
    }
    for sender in senders {
        sender.await.unwrap();
    }
    finish(relay).await;
}

#[tokio::test]
async fn ttl_expiry_with_an_injected_clock() {
    let config = Config { ttl_secs: 60, ..test_config() };
    let (relay, clock) = start_memory(config).await;
    let owner_key = key(4);
    let mailbox = mailbox_of(&owner_key);
    let mut sender = Client::connect(relay.addr()).await;
    sender.deposit(1, mailbox, b"old").await;
    clock.advance(59_000);
    sender.deposit(2, mailbox, b"newer").await;
    clock.advance(1_000);
    // "old" is now exactly 60 s old: expired, even before the sweeper runs.
    let mut owner = Client::connect(relay.addr()).await;
    owner.subscribe(&owner_key, 1).await;
    assert_eq!(owner.recv_deliver().await.2, b"newer");
    // The background sweeper may get there first, so count expiries in the store's totals rather
    // than in what this one call removed.
    relay.store().expire().await.unwrap();
    assert_eq!(relay.store().stats().blobs, 1);
    assert_eq!(relay.store().stats().expired, 1);
    clock.advance(60_000);
    relay.store().expire().await.unwrap();
    assert_eq!(relay.store().stats(), relay::store::StoreStats { blobs: 0, bytes: 0, expired: 2 });
    finish(relay).await;
}

#[tokio::test]
async fn ttl_expiry_in_the_redb_store() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let quotas = relay::store::Quotas { ttl_ms: 1000, ..relay::store::Quotas::default() };
    let store = relay::RedbStore::open(&dir.path().join("t.redb"), quotas, clock.clone()).unwrap();
    let mailbox = MailboxId([5; 32]);
    let first = store.deposit(mailbox, b"a".to_vec()).await.unwrap();
    clock.advance(500);
    let second = store.deposit(mailbox, b"b".to_vec()).await.unwrap();
    assert!(second > first);
    clock.advance(500);
    let left = store.fetch(mailbox, 0, 10).await.unwrap();
    assert_eq!(left, vec![relay::store::Blob { seq: second, payload: bytes::Bytes::from_static(b"b") }]);
    assert_eq!(store.expire().await.unwrap(), 1);
    clock.advance(500);
    assert_eq!(store.expire().await.unwrap(), 1);
    assert_eq!((store.stats().blobs, store.stats().bytes), (0, 0));
    // A forgotten mailbox that comes back never reuses a sequence number.
    clock.advance(10_000);
    store.expire().await.unwrap();
    let again = store.deposit(mailbox, b"c".to_vec()).await.unwrap();
    assert!(again > second);
    store.close().await.unwrap();
}

#[tokio::test]
async fn quotas_are_enforced_with_their_codes() {
    let config =
        Config { mailbox_max_count: 2, mailbox_max_bytes: 10, max_stored_bytes: 15, ..test_config() };
    let dir = tempfile::tempdir().unwrap();
    let relay = start_redb(config, dir.path()).await;
    let (a, b, c) = (MailboxId([1; 32]), MailboxId([2; 32]), MailboxId([3; 32]));
    let mut sender = Client::connect(relay.addr()).await;
    sender.deposit(1, a, b"1").await;
    sender.deposit(2, a, b"2").await;
    sender.send(&Frame::Deposit { request: 3, mailbox: a, payload: b"3".to_vec() }).await;
    assert_eq!(sender.recv().await, Frame::Error { request: 3, code: ErrorCode::MailboxFullCount });
    sender.send(&Frame::Deposit { request: 4, mailbox: b, payload: vec![0; 11] }).await;
    assert_eq!(sender.recv().await, Frame::Error { request: 4, code: ErrorCode::MailboxFullBytes });
    sender.deposit(5, b, &[0; 10]).await;
    // 12 bytes stored; 4 more would pass 15.
    sender.send(&Frame::Deposit { request: 6, mailbox: c, payload: vec![0; 4] }).await;
    assert_eq!(sender.recv().await, Frame::Error { request: 6, code: ErrorCode::RelayFull });
    // Quota refusals are not fatal: the connection goes on.
    sender.deposit(7, c, &[0; 3]).await;
    finish(relay).await;
}

#[tokio::test]
async fn subscribe_without_a_valid_proof_is_refused() {
    let (relay, _) = start_memory(test_config()).await;
    let owner_key = key(6);
    let public_key = owner_key.verifying_key().to_bytes();
    // A signature over another challenge.
    let mut client = Client::connect(relay.addr()).await;
    let mut wrong = client.challenge;
    wrong[0] ^= 1;
    use ed25519_dalek::Signer;
    let signature = owner_key
        .sign(&doorless_frames::subscribe_proof_message(&client.origin, &wrong, &public_key))
        .to_bytes();
    client.send(&Frame::Subscribe { request: 9, public_key, signature }).await;
    client.expect_error_then_close(9, ErrorCode::BadProof).await;
    // Someone else's key for this mailbox: the relay answers for the key's own mailbox only.
    let mut client = Client::connect(relay.addr()).await;
    client.send(&Frame::Subscribe { request: 10, public_key, signature: [0; 64] }).await;
    client.expect_error_then_close(10, ErrorCode::BadProof).await;
    finish(relay).await;
}

#[tokio::test]
async fn malformed_truncated_and_oversized_frames_get_their_codes() {
    let config = Config { max_frame_len: 1024, ..test_config() };
    let (relay, _) = start_memory(config).await;
    let addr = relay.addr();
    let cases: Vec<(bool, Vec<u8>, ErrorCode, u32)> = vec![
        // (say hello first, bytes, expected code, expected request id)
        (true, vec![1], ErrorCode::Malformed, 0),
        (true, vec![], ErrorCode::Malformed, 0),
        (true, vec![1, 0x7f], ErrorCode::Malformed, 0),
        (true, vec![2, 0], ErrorCode::UnsupportedVersion, 0),
        (
            true,
            Frame::Ack { mailbox: MailboxId([0; 32]), seq: 1 }.encode()[..20].to_vec(),
            ErrorCode::Malformed,
            0,
        ),
        (
            true,
            Frame::Deposit { request: 1, mailbox: MailboxId([0; 32]), payload: vec![0; 1024] }.encode(),
            ErrorCode::FrameTooLarge,
            // The request id could be read: the error carries it.
            1,
        ),
        // Far past the limit: refused by the socket layer, same code.
        (true, vec![0; 64 * 1024], ErrorCode::FrameTooLarge, 0),
        (
            false,
            Frame::Deposit { request: 3, mailbox: MailboxId([0; 32]), payload: vec![] }.encode(),
            ErrorCode::UnexpectedFrame,
            3,
        ),
        (true, Frame::Hello.encode(), ErrorCode::UnexpectedFrame, 0),
        (true, Frame::Deposited { request: 1 }.encode(), ErrorCode::UnexpectedFrame, 0),
        (true, Frame::Ack { mailbox: MailboxId([0; 32]), seq: 1 }.encode(), ErrorCode::NotSubscribed, 0),
    ];
    for (hello, bytes, code, request) in cases {
        let mut client = if hello { Client::connect(addr).await } else { Client::connect_raw(addr).await };
        client.send_raw(bytes).await;
        client.expect_error_then_close(request, code).await;
    }
    // A text message is not a frame.
    let mut client = Client::connect(addr).await;
    use futures_util::SinkExt;
    client.ws.send(tokio_tungstenite::tungstenite::Message::text("hello")).await.unwrap();
    client.expect_error_then_close(0, ErrorCode::Malformed).await;
    // A frame of exactly the limit is fine.
    let mut client = Client::connect(addr).await;
    let payload = vec![0; 1024 - Frame::DEPOSIT_OVERHEAD];
    client.deposit(4, MailboxId([0; 32]), &payload).await;
    finish(relay).await;
}

/// The fragments of one WebSocket message (RFC 6455 section 5.4): first `Binary`, then
/// continuations, the last one final.
fn fragments(bytes: &[u8], pieces: usize) -> Vec<tokio_tungstenite::tungstenite::Message> {
    use tokio_tungstenite::tungstenite::protocol::frame::{Frame as WsFrame, coding::Data, coding::OpCode};
    let size = bytes.len().div_ceil(pieces);
    let count = bytes.chunks(size).count();
    bytes
        .chunks(size)
        .enumerate()
        .map(|(i, chunk)| {
            let opcode = if i == 0 { Data::Binary } else { Data::Continue };
            let frame = WsFrame::message(chunk.to_vec(), OpCode::Data(opcode), i + 1 == count);
            tokio_tungstenite::tungstenite::Message::Frame(frame)
        })
        .collect()
}

#[tokio::test]
async fn fragmented_messages_are_joined_within_the_limit() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let config = Config { max_frame_len: 1024, ..test_config() };
    let (relay, _) = start_memory(config).await;
    let addr = relay.addr();

    // A deposit in three fragments, with a WebSocket ping between two of them, arrives whole.
    let mut owner = Client::connect(addr).await;
    let mailbox = owner.subscribe(&key(7), 1).await;
    let mut sender = Client::connect(addr).await;
    let payload: Vec<u8> = (0..900u32).map(|i| (i % 251) as u8).collect();
    let deposit = Frame::Deposit { request: 9, mailbox, payload: payload.clone() }.encode();
    let mut pieces = fragments(&deposit, 3);
    pieces.insert(2, Message::Ping(b"between".to_vec().into()));
    for piece in pieces {
        sender.ws.send(piece).await.unwrap();
    }
    assert_eq!(sender.recv().await, Frame::Deposited { request: 9 });
    let (_, _, delivered) = owner.recv_deliver().await;
    assert_eq!(delivered, payload);

    // Fragments adding up past the socket layer's limit (twice `max_frame_len`): refused.
    let mut client = Client::connect(addr).await;
    for piece in fragments(&vec![0; 4 * 1024], 8) {
        if client.ws.send(piece).await.is_err() {
            break;
        }
    }
    client.expect_error_then_close(0, ErrorCode::FrameTooLarge).await;

    // Joined, but above `max_frame_len`: the relay's own limit, same code.
    let mut client = Client::connect(addr).await;
    for piece in fragments(&vec![0; 1500], 3) {
        client.ws.send(piece).await.unwrap();
    }
    client.expect_error_then_close(0, ErrorCode::FrameTooLarge).await;

    // A continuation with nothing to continue, and a new message while one is unfinished.
    let mut client = Client::connect(addr).await;
    let orphan = fragments(&Frame::Hello.encode(), 2).pop().unwrap();
    client.ws.send(orphan).await.unwrap();
    client.expect_error_then_close(0, ErrorCode::Malformed).await;
    let mut client = Client::connect(addr).await;
    let first = fragments(&deposit, 2).remove(0);
    client.ws.send(first).await.unwrap();
    client.send(&Frame::Ping { nonce: 1 }).await;
    client.expect_error_then_close(0, ErrorCode::Malformed).await;
    finish(relay).await;
}

#[tokio::test]
async fn websocket_pings_get_their_pongs() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let (relay, _) = start_memory(test_config()).await;
    let mut client = Client::connect(relay.addr()).await;
    client.ws.send(Message::Ping(b"are you there".to_vec().into())).await.unwrap();
    let answer = tokio::time::timeout(common::DEADLINE, client.ws.next()).await.unwrap();
    assert_eq!(answer.unwrap().unwrap(), Message::Pong(b"are you there".to_vec().into()));
    // The connection goes on.
    client.send(&Frame::Ping { nonce: 5 }).await;
    assert_eq!(client.recv().await, Frame::Pong { nonce: 5 });
    finish(relay).await;
}

#[tokio::test]
async fn keep_alive_ping_is_answered() {
    let (relay, _) = start_memory(test_config()).await;
    let mut client = Client::connect(relay.addr()).await;
    client.send(&Frame::Ping { nonce: 42 }).await;
    assert_eq!(client.recv().await, Frame::Pong { nonce: 42 });
    finish(relay).await;
}

#[tokio::test]
async fn a_reader_that_never_reads_does_not_grow_the_queue() {
    let config = Config { outbound_queue: 8, ..test_config() };
    let dir = tempfile::tempdir().unwrap();
    let relay = start_redb(config, dir.path()).await;
    let owner_key = key(7);
    let mailbox = mailbox_of(&owner_key);
    // The owner subscribes, then never reads again.
    let mut stalled = Client::connect(relay.addr()).await;
    stalled.subscribe(&owner_key, 1).await;

    // 300 x 64 KiB = 19 MiB: far more than the socket buffers hold.
    let mut sender = Client::connect(relay.addr()).await;
    let payload = vec![0xab; 64 * 1024];
    const N: u32 = 300;
    for i in 0..N {
        sender.deposit(i, mailbox, &payload).await;
        let queued = relay.metrics().outbound_queued.load(Relaxed);
        assert!(queued <= 8 + 2, "outbound queue grew to {queued}");
    }
    let metrics = relay.metrics().clone();
    wait_until("delivery pauses on the full queue", || metrics.outbound_full_total.load(Relaxed) > 0).await;
    let delivered = metrics.deliveries_total.load(Relaxed);
    assert!(delivered < u64::from(N), "all {delivered} blobs were pushed to a reader that does not read");
    assert!(metrics.outbound_queued.load(Relaxed) <= 8 + 2);
    assert_eq!(relay.store().stats().blobs, u64::from(N));

    // Everything is still stored: a fresh subscription gets it all, in order.
    let mut reader = Client::connect(relay.addr()).await;
    reader.subscribe(&owner_key, 2).await;
    let mut last = 0;
    for _ in 0..N {
        let (_, seq, body) = reader.recv_deliver().await;
        assert!(seq > last);
        assert_eq!(body.len(), payload.len());
        last = seq;
    }
    drop(stalled);
    finish(relay).await;
}

#[tokio::test]
async fn a_flooding_client_does_not_starve_others() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start_redb(test_config(), dir.path()).await;
    let addr = relay.addr();
    let flood_target = MailboxId([8; 32]);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood_stop = stop.clone();
    let flooder = tokio::spawn(async move {
        let mut client = Client::connect(addr).await;
        let mut sent = 0u32;
        let mut confirmed = 0u32;
        // Keep 64 deposits of 16 KiB in flight until told to stop.
        while !flood_stop.load(Relaxed) || confirmed < sent {
            if sent - confirmed < 64 && !flood_stop.load(Relaxed) {
                client
                    .send(&Frame::Deposit {
                        request: sent,
                        mailbox: flood_target,
                        payload: vec![1; 16 * 1024],
                    })
                    .await;
                sent += 1;
            } else {
                assert_eq!(client.recv().await, Frame::Deposited { request: confirmed });
                confirmed += 1;
            }
        }
        confirmed
    });
    let metrics = relay.metrics().clone();
    wait_until("the flood is under way", || metrics.deposits_total.load(Relaxed) > 200).await;

    let owner_key = key(9);
    let mut owner = Client::connect(addr).await;
    let mailbox = owner.subscribe(&owner_key, 1).await;
    let mut other = Client::connect(addr).await;
    let started = std::time::Instant::now();
    for i in 0..20u32 {
        other.deposit(i, mailbox, &i.to_be_bytes()).await;
        assert_eq!(owner.recv_deliver().await.2, i.to_be_bytes());
    }
    let elapsed = started.elapsed();
    let flooded_meanwhile = metrics.deposits_total.load(Relaxed);
    stop.store(true, Relaxed);
    let confirmed = flooder.await.unwrap();
    assert!(confirmed > 200, "the flood ran ({confirmed} deposits)");
    assert!(flooded_meanwhile > 200);
    assert!(elapsed < std::time::Duration::from_secs(10), "20 round trips took {elapsed:?} under flood");
    finish(relay).await;
}

#[tokio::test]
async fn deposit_rate_limit_closes_the_connection() {
    let config = Config { deposit_rate: 0.001, deposit_burst: 5.0, ..test_config() };
    let (relay, _) = start_memory(config).await;
    let mut client = Client::connect(relay.addr()).await;
    for i in 0..5u32 {
        client.deposit(i, MailboxId([1; 32]), b"x").await;
    }
    client.send(&Frame::Deposit { request: 5, mailbox: MailboxId([1; 32]), payload: b"x".to_vec() }).await;
    client.expect_error_then_close(5, ErrorCode::RateLimited).await;
    // Others are unaffected.
    let mut other = Client::connect(relay.addr()).await;
    other.deposit(1, MailboxId([1; 32]), b"y").await;
    finish(relay).await;
}

#[tokio::test]
async fn connection_and_subscription_caps() {
    let config = Config { max_connections: 2, max_subscriptions: 2, ..test_config() };
    let (relay, _) = start_memory(config).await;
    let mut first = Client::connect(relay.addr()).await;
    let _second = Client::connect(relay.addr()).await;
    let mut third = Client::connect_raw(relay.addr()).await;
    third.expect_error_then_close(0, ErrorCode::TooManyConnections).await;

    first.subscribe(&key(10), 1).await;
    first.subscribe(&key(11), 2).await;
    // Subscribing again to the same mailbox is not a new subscription.
    first.subscribe(&key(11), 3).await;
    // One more is refused, and the connection goes on.
    let doorless_frames::MailboxProof { public_key, signature } = first.proof(&key(12));
    first.send(&Frame::Subscribe { request: 4, public_key, signature }).await;
    assert_eq!(first.recv().await, Frame::Error { request: 4, code: ErrorCode::TooManySubscriptions });
    first.send(&Frame::Ping { nonce: 4 }).await;
    assert_eq!(first.recv().await, Frame::Pong { nonce: 4 });
    finish(relay).await;
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let config = Config { idle_timeout_secs: 1, ..test_config() };
    let (relay, _) = start_memory(config).await;
    let mut client = Client::connect(relay.addr()).await;
    // The client does not read (so it answers no ping) until the relay has given up on it.
    let metrics = relay.metrics().clone();
    wait_until("the idle timeout fires", || metrics.errors_sent(ErrorCode::IdleTimeout) == 1).await;
    client.expect_error_then_close(0, ErrorCode::IdleTimeout).await;
    finish(relay).await;
}

#[tokio::test]
async fn shutdown_tells_clients_and_keeps_confirmed_deposits() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start_redb(test_config(), dir.path()).await;
    let owner_key = key(13);
    let mut owner = Client::connect(relay.addr()).await;
    let mailbox = owner.subscribe(&owner_key, 1).await;
    let mut sender = Client::connect(relay.addr()).await;
    sender.deposit(1, mailbox, b"kept").await;
    assert_eq!(owner.recv_deliver().await.2, b"kept");
    finish(relay).await;
    owner.expect_error_then_close(0, ErrorCode::ShuttingDown).await;

    let relay = start_redb(test_config(), dir.path()).await;
    let mut owner = Client::connect(relay.addr()).await;
    owner.subscribe(&owner_key, 1).await;
    assert_eq!(owner.recv_deliver().await.2, b"kept");
    finish(relay).await;
}
