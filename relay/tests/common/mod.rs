//! A minimal frame-speaking client for the relay tests, over real loopback sockets.
#![allow(dead_code)]

pub mod cluster;
#[cfg(feature = "s3")]
pub mod s3;

use std::net::SocketAddr;
use std::time::Duration;

use doorless_frames::{
    CHALLENGE_LEN, ErrorCode, Frame, MailboxId, MailboxProof, RelayOrigin, subscribe_proof_message,
};
use ed25519_dalek::{Signer, SigningKey};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A relay configuration for tests: loopback, any free port, no deposit rate limit to speak of.
pub fn test_config() -> relay::Config {
    relay::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        deposit_rate: 100_000.0,
        deposit_burst: 100_000.0,
        ..relay::Config::default()
    }
}

/// Whether the suite runs on the cluster store (`DOORLESS_TEST_STORE=cluster`, set by
/// `cargo xtask test` for its second pass over the relay suites) instead of the memory store.
pub fn on_cluster() -> bool {
    std::env::var("DOORLESS_TEST_STORE").is_ok_and(|v| v == "cluster")
}

/// The store the suite runs on (see [`on_cluster`]), with the clock it uses.
pub async fn test_store(
    quotas: relay::store::Quotas,
) -> (std::sync::Arc<dyn relay::Store>, std::sync::Arc<relay::ManualClock>) {
    let clock = std::sync::Arc::new(relay::ManualClock::new(1_700_000_000_000));
    let store: std::sync::Arc<dyn relay::Store> = if on_cluster() {
        std::sync::Arc::new(
            relay::ClusterStore::connect(cluster::options(), quotas, clock.clone()).await.unwrap(),
        )
    } else {
        std::sync::Arc::new(relay::MemoryStore::new(quotas, clock.clone()))
    };
    (store, clock)
}

/// A relay on the suite's store (the memory store, or the cluster store: see [`on_cluster`]),
/// with the clock the store uses.
pub async fn start_memory(config: relay::Config) -> (relay::Relay, std::sync::Arc<relay::ManualClock>) {
    let (store, clock) = test_store(config.quotas()).await;
    (relay::start_with_store(&config, store).await.unwrap(), clock)
}

/// Shuts the relay down (which waits for its connections to end, within the deadline) and checks
/// that no connection task panicked on the way: a panic in a spawned task fails no test by itself.
pub async fn finish(relay: relay::Relay) {
    let metrics = relay.metrics().clone();
    tokio::time::timeout(DEADLINE, relay.shutdown()).await.expect("shutdown finishes");
    assert_eq!(
        metrics.connection_panics_total.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "a connection task panicked"
    );
}

/// Starts the relay binary on a free loopback port with `args` (and no deposit rate limit to speak
/// of), and returns it with the address it announced. Its log goes nowhere.
pub fn spawn_relay_process<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> (std::process::Child, SocketAddr) {
    spawn_relay_with(std::process::Command::new(env!("CARGO_BIN_EXE_relay")), args)
}

/// Deadline for anything a test waits on.
pub const DEADLINE: Duration = Duration::from_secs(20);

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub challenge: [u8; CHALLENGE_LEN],
    /// The origin the client reached the relay at (`http://ADDR`), which its proofs are made for.
    pub origin: RelayOrigin,
}

pub fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

pub fn mailbox_of(key: &SigningKey) -> MailboxId {
    MailboxId::from_public_key(&key.verifying_key().to_bytes())
}

impl Client {
    /// Connects without saying Hello.
    pub async fn connect_raw(addr: SocketAddr) -> Self {
        let (ws, _) =
            tokio::time::timeout(DEADLINE, tokio_tungstenite::connect_async(format!("ws://{addr}/ws")))
                .await
                .expect("connect deadline")
                .expect("connect");
        let origin = RelayOrigin::parse(&format!("http://{addr}")).expect("a socket address is an origin");
        Self { ws, challenge: [0; CHALLENGE_LEN], origin }
    }

    /// Connects and completes Hello / Challenge.
    pub async fn connect(addr: SocketAddr) -> Self {
        let mut client = Self::connect_raw(addr).await;
        client.send(&Frame::Hello).await;
        match client.recv().await {
            Frame::Challenge { challenge, max_frame_len } => {
                assert!(max_frame_len > 0);
                client.challenge = challenge;
            }
            other => panic!("expected Challenge, got {other:?}"),
        }
        client
    }

    pub async fn send(&mut self, frame: &Frame) {
        self.send_raw(frame.encode()).await;
    }

    pub async fn send_raw(&mut self, bytes: Vec<u8>) {
        self.ws.send(Message::binary(bytes)).await.expect("send");
    }

    /// The next frame, or `None` once the relay closed the connection.
    pub async fn recv_opt(&mut self) -> Option<Frame> {
        loop {
            let next = tokio::time::timeout(DEADLINE, self.ws.next()).await.expect("receive deadline");
            match next {
                None | Some(Err(_)) => return None,
                Some(Ok(Message::Binary(bytes))) => {
                    return Some(Frame::decode(&bytes).expect("relay sent a bad frame"));
                }
                Some(Ok(Message::Close(_))) => return None,
                Some(Ok(_)) => continue,
            }
        }
    }

    pub async fn recv(&mut self) -> Frame {
        self.recv_opt().await.expect("connection closed unexpectedly")
    }

    /// The proof of ownership of the mailbox of `key`, for this connection's relay and challenge.
    pub fn proof(&self, key: &SigningKey) -> MailboxProof {
        let public_key = key.verifying_key().to_bytes();
        let signature =
            key.sign(&subscribe_proof_message(&self.origin, &self.challenge, &public_key)).to_bytes();
        MailboxProof { public_key, signature }
    }

    /// Subscribes to the mailbox of `key`.
    pub async fn subscribe(&mut self, key: &SigningKey, request: u32) -> MailboxId {
        let MailboxProof { public_key, signature } = self.proof(key);
        self.send(&Frame::Subscribe { request, public_key, signature }).await;
        match self.recv().await {
            Frame::Subscribed { request: r, mailbox } => {
                assert_eq!(r, request);
                assert_eq!(mailbox, mailbox_of(key));
                mailbox
            }
            other => panic!("expected Subscribed, got {other:?}"),
        }
    }

    /// Deposits and waits for the confirmation.
    pub async fn deposit(&mut self, request: u32, mailbox: MailboxId, payload: &[u8]) {
        self.send(&Frame::Deposit { request, mailbox, payload: payload.to_vec() }).await;
        match self.recv().await {
            Frame::Deposited { request: r } => assert_eq!(r, request),
            other => panic!("expected Deposited, got {other:?}"),
        }
    }

    /// Expects an error frame with `code`, then the end of the connection.
    pub async fn expect_error_then_close(&mut self, request: u32, code: ErrorCode) {
        match self.recv_opt().await {
            Some(Frame::Error { request: r, code: c }) => {
                assert_eq!((r, c), (request, code));
            }
            other => panic!("expected Error {code:?}, got {other:?}"),
        }
        assert_eq!(self.recv_opt().await, None, "connection should close after a fatal error");
    }

    /// Receives the next Deliver (skipping nothing else: any other frame fails the test).
    pub async fn recv_deliver(&mut self) -> (MailboxId, u64, Vec<u8>) {
        match self.recv().await {
            Frame::Deliver { mailbox, seq, payload } => (mailbox, seq, payload),
            other => panic!("expected Deliver, got {other:?}"),
        }
    }
}

/// Starts the relay binary on the data directory `dir` with `extra` flags; see
/// [`spawn_relay_process`].
pub fn spawn_relay(dir: &std::path::Path, extra: &[&str]) -> (std::process::Child, SocketAddr) {
    let mut args = vec![std::ffi::OsStr::new("--data-dir"), dir.as_os_str()];
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    spawn_relay_process(&args)
}

/// [`spawn_relay_process`] through `command` (the binary itself, or a shell that sets limits and
/// then execs the binary with the arguments that follow).
pub fn spawn_relay_with<S: AsRef<std::ffi::OsStr>>(
    mut command: std::process::Command,
    args: &[S],
) -> (std::process::Child, SocketAddr) {
    use std::io::BufRead as _;
    let mut child = command
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .args(["--deposit-rate", "1000000", "--deposit-burst", "1000000"])
        .env("DOORLESS_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(DEADLINE).expect("relay did not report its address");
    let addr = line
        .trim()
        .strip_prefix("doorless relay listening on http://")
        .expect("listening line")
        .parse()
        .unwrap();
    (child, addr)
}

/// Waits until `condition` holds, checking after each yield of the runtime, up to the deadline.
pub async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

impl Client {
    /// Sends a frame, reporting a broken connection instead of failing.
    pub async fn ws_send(&mut self, frame: Frame) -> Result<(), ()> {
        self.ws.send(Message::binary(frame.encode())).await.map_err(|_| ())
    }
}
