//! Load generator for a Doorless relay (or anything speaking its frames).
//!
//! ```sh
//! relay --listen 127.0.0.1:8080 --store memory --deposit-rate 1e9 --deposit-burst 1e9 &
//! cargo run --release -p relay --example loadgen -- ws://127.0.0.1:8080/ws 50 1024 10 [RELAY_PID [IDLE]]
//! ```
//! Arguments: URL, pairs (one sender and one subscriber each), payload bytes, seconds, and
//! optionally the relay's pid and a number of idle connections to measure memory per idle connection.
//! Reports messages per second and deposit-to-delivery latency percentiles.

use std::time::{Duration, Instant};

use doorless_frames::{Frame, MailboxId, subscribe_proof_message};
use ed25519_dalek::{Signer, SigningKey};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const WINDOW: u32 = 32;

async fn recv(ws: &mut Ws) -> Option<Frame> {
    loop {
        match ws.next().await? {
            Ok(Message::Binary(b)) => return Frame::decode(&b).ok(),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

async fn hello(url: &str) -> (Ws, [u8; 32]) {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("connect");
    ws.send(Message::binary(Frame::Hello.encode())).await.expect("send");
    match recv(&mut ws).await {
        Some(Frame::Challenge { challenge, .. }) => (ws, challenge),
        other => panic!("expected Challenge, got {other:?}"),
    }
}

async fn subscribed(url: &str, seed: u64) -> (Ws, MailboxId) {
    let (mut ws, challenge) = hello(url).await;
    let mut secret = [0u8; 32];
    secret[..8].copy_from_slice(&seed.to_be_bytes());
    let key = SigningKey::from_bytes(&secret);
    let public_key = key.verifying_key().to_bytes();
    let signature = key.sign(&subscribe_proof_message(&challenge, &public_key)).to_bytes();
    ws.send(Message::binary(Frame::Subscribe { request: 1, public_key, signature }.encode()))
        .await
        .expect("send");
    match recv(&mut ws).await {
        Some(Frame::Subscribed { mailbox, .. }) => (ws, mailbox),
        other => panic!("expected Subscribed, got {other:?}"),
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = args.get(1).cloned().unwrap_or_else(|| "ws://127.0.0.1:8080/ws".into());
    let pairs: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10);
    let size: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(1024);
    let seconds: u64 = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(10);
    let pid: Option<u32> = args.get(5).and_then(|a| a.parse().ok());
    let idle: usize = args.get(6).and_then(|a| a.parse().ok()).unwrap_or(0);

    // Fresh mailboxes per run, so blobs left by an earlier run do not skew the latencies.
    let run =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()) << 24;
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    let mut subscribers = Vec::new();
    let mut senders = Vec::new();
    for pair in 0..pairs {
        let (mut sub, mailbox) = subscribed(&url, run + pair + 1).await;
        subscribers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut since_ack = 0;
            while let Some(frame) = recv(&mut sub).await {
                if let Frame::Deliver { mailbox, seq, payload } = frame {
                    let sent = u64::from_be_bytes(payload[..8].try_into().unwrap_or([0; 8]));
                    if sent == u64::MAX {
                        break;
                    }
                    latencies.push((start.elapsed().as_nanos() as u64).saturating_sub(sent));
                    since_ack += 1;
                    if since_ack == 64 {
                        since_ack = 0;
                        let _ = sub.send(Message::binary(Frame::Ack { mailbox, seq }.encode())).await;
                    }
                }
            }
            latencies
        }));
        let (mut ws, _) = hello(&url).await;
        senders.push(tokio::spawn(async move {
            let mut payload = vec![0u8; size.max(8)];
            let (mut sent, mut done) = (0u32, 0u32);
            loop {
                let finished = Instant::now() >= end;
                if !finished && sent - done < WINDOW {
                    payload[..8].copy_from_slice(&(start.elapsed().as_nanos() as u64).to_be_bytes());
                    let frame = Frame::Deposit { request: sent, mailbox, payload: payload.clone() };
                    ws.send(Message::binary(frame.encode())).await.expect("send");
                    sent += 1;
                } else if sent == done {
                    break;
                } else {
                    match recv(&mut ws).await {
                        Some(Frame::Deposited { .. }) => done += 1,
                        other => panic!("sender got {other:?}"),
                    }
                }
            }
            payload[..8].copy_from_slice(&u64::MAX.to_be_bytes());
            let frame = Frame::Deposit { request: sent, mailbox, payload };
            ws.send(Message::binary(frame.encode())).await.expect("send");
            let _ = recv(&mut ws).await;
        }));
    }
    for s in senders {
        s.await.expect("sender");
    }
    let mut all = Vec::new();
    for s in subscribers {
        all.extend(s.await.expect("subscriber"));
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1))).copied().unwrap_or(0)
    };
    println!(
        "pairs={pairs} size={size}B msgs={} msgs/s={:.0} p50={:.2}ms p99={:.2}ms p999={:.2}ms",
        all.len(),
        all.len() as f64 / elapsed,
        pct(0.50) as f64 / 1e6,
        pct(0.99) as f64 / 1e6,
        pct(0.999) as f64 / 1e6,
    );

    if let (Some(pid), true) = (pid, idle > 0) {
        let before = rss_kib(pid);
        let mut held = Vec::with_capacity(idle);
        for i in 0..idle {
            held.push(subscribed(&url, run + 1_000_000 + i as u64).await.0);
        }
        let after = rss_kib(pid);
        println!(
            "idle connections={idle} rss_before={before}KiB rss_after={after}KiB per_connection={:.1}KiB",
            (after.saturating_sub(before)) as f64 / idle as f64
        );
        drop(held);
    }
}
