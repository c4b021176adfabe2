//! The relay under hostile connections: sockets that never finish the HTTP upgrade, unmasked client
//! frames, floods closed with answers owed, and the order of an ack and a re-subscription.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Client, DEADLINE, finish, key, mailbox_of};
use doorless_frames::{ErrorCode, Frame, MailboxId};
use ed25519_dalek::SigningKey;
use futures_util::StreamExt as _;
use relay::store::{Blob, BoxFuture, Inbox, StoreError, StoreStats};
use relay::websocket::{Incoming, Role, reader};
use relay::{Config, ManualClock, MemoryStore, Store};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

fn test_config() -> Config {
    // A short header deadline, so that the tests of it are quick.
    Config { header_read_timeout_secs: 1, ..common::test_config() }
}

async fn start_memory(config: Config) -> relay::Relay {
    common::start_memory(config).await.0
}

/// Waits until the relay closes `socket` (end of file or reset), failing after the deadline.
async fn closed_by_relay(socket: &mut TcpStream) {
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(DEADLINE, socket.read(&mut buf)).await {
            Err(_) => panic!("the relay never closed a socket that did not finish the upgrade"),
            Ok(Ok(0) | Err(_)) => return,
            // An HTTP error response before the close is fine.
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test]
async fn idle_sockets_are_closed_and_do_not_block_real_clients() {
    let relay = start_memory(test_config()).await;
    let addr = relay.addr();
    // 300 sockets that never send a byte, and 20 that stop in the middle of their request head.
    let mut idle = Vec::new();
    for i in 0..320 {
        let mut socket = TcpStream::connect(addr).await.unwrap();
        if i >= 300 {
            socket.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        }
        idle.push(socket);
    }
    // A real client gets through at once.
    let started = std::time::Instant::now();
    let mut client = Client::connect(addr).await;
    client.send(&Frame::Ping { nonce: 1 }).await;
    assert_eq!(client.recv().await, Frame::Pong { nonce: 1 });
    assert!(started.elapsed() < Duration::from_secs(5), "a real client waited {:?}", started.elapsed());
    // Every idle socket is closed by the relay after the header-read deadline.
    for socket in &mut idle {
        closed_by_relay(socket).await;
    }
    // The upgraded connection is not affected by that deadline.
    client.send(&Frame::Ping { nonce: 2 }).await;
    assert_eq!(client.recv().await, Frame::Pong { nonce: 2 });
    finish(relay).await;
}

#[tokio::test]
async fn shutdown_closes_sockets_that_never_upgraded() {
    // A long header deadline: shutdown must not wait for it.
    let relay = start_memory(Config { header_read_timeout_secs: 3600, ..test_config() }).await;
    let addr = relay.addr();
    let mut idle = Vec::new();
    for i in 0..20 {
        let mut socket = TcpStream::connect(addr).await.unwrap();
        if i % 2 == 1 {
            socket.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        }
        idle.push(socket);
    }
    let mut client = Client::connect(addr).await;
    // Make sure the relay has accepted every socket before it is told to stop.
    client.send(&Frame::Ping { nonce: 1 }).await;
    assert_eq!(client.recv().await, Frame::Pong { nonce: 1 });
    let started = std::time::Instant::now();
    finish(relay).await;
    assert!(started.elapsed() < Duration::from_secs(5), "shutdown took {:?}", started.elapsed());
    for socket in &mut idle {
        closed_by_relay(socket).await;
    }
    client.expect_error_then_close(0, ErrorCode::ShuttingDown).await;
}

/// Opens `/ws` by hand and returns the socket right after the `101` response.
async fn raw_upgrade(addr: std::net::SocketAddr) -> TcpStream {
    let mut socket = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    // Read the response head byte by byte, so that nothing after it is consumed.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let byte = tokio::time::timeout(DEADLINE, socket.read_u8()).await.unwrap().unwrap();
        head.push(byte);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    socket
}

#[tokio::test]
async fn unmasked_client_frames_are_refused() {
    let relay = start_memory(test_config()).await;
    let mut socket = raw_upgrade(relay.addr()).await;
    // A final binary frame, not masked, carrying Hello.
    let hello = Frame::Hello.encode();
    let mut wire = vec![0x82, hello.len() as u8];
    wire.extend_from_slice(&hello);
    socket.write_all(&wire).await.unwrap();
    let mut messages = reader(socket, 1 << 20, Role::Client);
    let first = tokio::time::timeout(DEADLINE, messages.next()).await.unwrap();
    match first {
        Some(Ok(Incoming::Binary(bytes))) => {
            assert_eq!(Frame::decode(&bytes), Ok(Frame::Error { request: 0, code: ErrorCode::Malformed }))
        }
        other => panic!("expected the Malformed error, got {other:?}"),
    }
    match tokio::time::timeout(DEADLINE, messages.next()).await.unwrap() {
        None | Some(Ok(Incoming::Close)) | Some(Err(_)) => {}
        Some(Ok(other)) => panic!("nothing but the close after the error, got {other:?}"),
    }
    finish(relay).await;
}

#[tokio::test]
async fn a_client_closed_for_flooding_first_gets_every_stored_deposit_answered() {
    let config = Config { deposit_rate: 0.001, deposit_burst: 20.0, ..test_config() };
    let relay = start_memory(config).await;
    let mut client = Client::connect(relay.addr()).await;
    let mailbox = MailboxId([4; 32]);
    // Pipelined: the 21st is over the burst.
    for request in 1..=40u32 {
        if client.ws_send(Frame::Deposit { request, mailbox, payload: vec![request as u8] }).await.is_err() {
            break;
        }
    }
    for request in 1..=20u32 {
        assert_eq!(client.recv().await, Frame::Deposited { request }, "answers come in deposit order");
    }
    client.expect_error_then_close(21, ErrorCode::RateLimited).await;
    assert_eq!(relay.store().stats().blobs, 20);
    finish(relay).await;
}

#[tokio::test]
async fn a_fatal_error_does_not_drop_pending_confirmations() {
    let dir = tempfile::tempdir().unwrap();
    let relay = relay::start(&Config { data_dir: dir.path().to_path_buf(), ..test_config() }).await.unwrap();
    let mut client = Client::connect(relay.addr()).await;
    let mailbox = MailboxId([5; 32]);
    for request in 1..=40u32 {
        client.send(&Frame::Deposit { request, mailbox, payload: vec![0; 1000] }).await;
    }
    // Then bytes that are not a frame.
    client.send_raw(vec![1, 0x7f]).await;
    for request in 1..=40u32 {
        assert_eq!(client.recv().await, Frame::Deposited { request });
    }
    client.expect_error_then_close(0, ErrorCode::Malformed).await;
    assert_eq!(relay.store().stats().blobs, 40);
    finish(relay).await;
}

/// A store whose acks take a while to commit, as on a slow disk; everything else is the memory store.
struct SlowAcks(Arc<MemoryStore>);

impl Store for SlowAcks {
    fn deposit(&self, mailbox: MailboxId, payload: Vec<u8>) -> BoxFuture<'static, Result<u64, StoreError>> {
        self.0.deposit(mailbox, payload)
    }
    fn fetch(
        &self,
        mailbox: MailboxId,
        after: u64,
        max: usize,
    ) -> BoxFuture<'static, Result<Vec<Blob>, StoreError>> {
        self.0.fetch(mailbox, after, max)
    }
    fn ack(&self, mailbox: MailboxId, upto: u64) -> BoxFuture<'static, Result<u64, StoreError>> {
        let store = self.0.clone();
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            store.ack(mailbox, upto).await
        })
    }
    fn expire(&self) -> BoxFuture<'static, Result<u64, StoreError>> {
        self.0.expire()
    }
    fn subscribe(&self, mailbox: MailboxId, inbox: &Arc<Inbox>) {
        self.0.subscribe(mailbox, inbox)
    }
    fn unsubscribe(&self, mailbox: MailboxId, inbox: &Arc<Inbox>) {
        self.0.unsubscribe(mailbox, inbox)
    }
    fn stats(&self) -> StoreStats {
        self.0.stats()
    }
    fn close(&self) -> BoxFuture<'static, Result<(), StoreError>> {
        self.0.close()
    }
}

/// A relay on a [`SlowAcks`] store, a depositing client, and an owner subscribed to the mailbox of
/// `key(seed)`.
async fn slow_acks_with_a_subscriber(seed: u8) -> (relay::Relay, SigningKey, Client, Client) {
    let config = test_config();
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let store = Arc::new(SlowAcks(Arc::new(MemoryStore::new(config.quotas(), clock))));
    let relay = relay::start_with_store(&config, store).await.unwrap();
    let owner_key = key(seed);
    let sender = Client::connect(relay.addr()).await;
    let mut owner = Client::connect(relay.addr()).await;
    owner.subscribe(&owner_key, 1).await;
    (relay, owner_key, sender, owner)
}

#[tokio::test]
async fn an_ack_just_before_a_resubscribe_is_applied_first() {
    let (relay, owner_key, mut sender, mut owner) = slow_acks_with_a_subscriber(21).await;
    let mailbox = mailbox_of(&owner_key);
    for round in 0..3u32 {
        sender.deposit(round, mailbox, &round.to_be_bytes()).await;
        let (_, seq, payload) = owner.recv_deliver().await;
        assert_eq!(payload, round.to_be_bytes());
        // Ack and re-subscribe back to back, without waiting in between.
        owner.send(&Frame::Ack { mailbox, seq }).await;
        owner.subscribe(&owner_key, 100 + round).await;
        // The acknowledged blob must not come back: the next delivery is the next deposit.
        sender.deposit(1000 + round, mailbox, b"marker").await;
        let (_, marker_seq, next) = owner.recv_deliver().await;
        assert_eq!(next, b"marker", "round {round}: the acknowledged blob was delivered again");
        owner.send(&Frame::Ack { mailbox, seq: marker_seq }).await;
    }
    finish(relay).await;
}

#[tokio::test]
async fn a_truncated_or_oversized_request_carries_its_id() {
    let config = Config { max_frame_len: 1024, ..test_config() };
    let relay = start_memory(config).await;
    let addr = relay.addr();
    let subscribe = Frame::Subscribe { request: 77, public_key: [1; 32], signature: [2; 64] }.encode();
    let big = Frame::Deposit { request: 78, mailbox: MailboxId([0; 32]), payload: vec![0; 1024] }.encode();
    let short = Frame::Deposit { request: 79, mailbox: MailboxId([0; 32]), payload: vec![] }.encode();
    let cases: Vec<(Vec<u8>, u32, ErrorCode)> = vec![
        (subscribe[..50].to_vec(), 77, ErrorCode::Malformed),
        ([&subscribe[..], &[0]].concat(), 77, ErrorCode::Malformed),
        (big, 78, ErrorCode::FrameTooLarge),
        (short[..20].to_vec(), 79, ErrorCode::Malformed),
        // Not even the id is there: the connection itself.
        (short[..5].to_vec(), 0, ErrorCode::Malformed),
        // Far past the limit: refused from the WebSocket header, before the id is read.
        (
            Frame::Deposit { request: 80, mailbox: MailboxId([0; 32]), payload: vec![0; 8000] }.encode(),
            0,
            ErrorCode::FrameTooLarge,
        ),
    ];
    for (bytes, request, code) in cases {
        let mut client = Client::connect(addr).await;
        client.send_raw(bytes).await;
        client.expect_error_then_close(request, code).await;
    }
    finish(relay).await;
}

/// A client that acknowledges a blob and leaves at once (a tab closed right after a message
/// arrived): the acknowledgement still takes effect, so the blob is not delivered again.
#[tokio::test]
async fn an_ack_sent_just_before_the_client_leaves_is_applied() {
    let (relay, owner_key, mut sender, mut owner) = slow_acks_with_a_subscriber(23).await;
    let mailbox = mailbox_of(&owner_key);
    sender.deposit(1, mailbox, b"read, then the tab closed").await;
    let (_, seq, _) = owner.recv_deliver().await;
    owner.send(&Frame::Ack { mailbox, seq }).await;
    owner.ws.close(None).await.expect("close");
    drop(owner);
    // The relay has finished with the connection once its subscription is gone.
    let gone = async {
        while relay.metrics().subscriptions.load(std::sync::atomic::Ordering::Relaxed) != 0 {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), gone).await.expect("the connection ends");

    let mut owner = Client::connect(relay.addr()).await;
    owner.subscribe(&owner_key, 2).await;
    sender.deposit(2, mailbox, b"marker").await;
    let (_, _, next) = owner.recv_deliver().await;
    assert_eq!(next, b"marker", "the acknowledged blob was delivered again");
    finish(relay).await;
}
