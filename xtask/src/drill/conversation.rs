//! Two real engines talking through the real relay over WebSockets.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use client_wasm::engine::{ContactId, Delivery, Engine};
use doorless_frames::Frame;
use futures_util::{SinkExt, StreamExt};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long any one step of the conversation may take.
const STEP_DEADLINE: Duration = Duration::from_secs(30);

/// The people of the drill: names and texts that are easy to search for.
pub const ALICE: &str = "Alice Drillwright";
/// The second person.
pub const BOB: &str = "Bob Subpoenason";
/// Bob to Alice, delivered.
pub const TEXT_1: &str = "drill plaintext one: the meeting moved to the north gate";
/// Alice to Bob, delivered.
pub const TEXT_2: &str = "drill plaintext two: bring the blue folder";
/// Alice to Bob while Bob is offline: left undelivered in the relay's store.
pub const TEXT_3: &str = "drill plaintext three: waiting on the relay for Bob";

/// What the conversation left behind on the client side, to search the relay's files for.
pub struct Transcript {
    /// Each person's display name.
    pub names: Vec<String>,
    /// Every text sent.
    pub texts: Vec<String>,
    /// Each engine's Ed25519 and X25519 identity keys, fingerprint and encoded public identity.
    pub identity_keys: Vec<(String, Vec<u8>)>,
    /// Every payload deposited (ciphertext as it went to the relay).
    pub deposits: Vec<Vec<u8>>,
    /// The local address of each client connection.
    pub client_addrs: Vec<SocketAddr>,
}

struct Peer {
    name: &'static str,
    engine: Engine,
    ws: Option<Ws>,
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Connects from `source` (another loopback address than the relay's, so a leak of the client's
/// address cannot be mistaken for the relay's own listen address in its logs).
async fn connect(relay: SocketAddr, source: IpAddr) -> Result<(Ws, SocketAddr)> {
    let socket = if relay.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    if socket.bind(SocketAddr::new(source, 0)).is_err() {
        // Not every system routes all of 127/8 to loopback; the relay's address then also
        // serves as the client's.
        socket.bind(SocketAddr::new(relay.ip(), 0))?;
    }
    let stream = socket.connect(relay).await.context("connecting to the relay")?;
    let local = stream.local_addr()?;
    let (ws, _) = tokio_tungstenite::client_async(format!("ws://{relay}/ws"), MaybeTlsStream::Plain(stream))
        .await
        .context("WebSocket handshake with the relay")?;
    Ok((ws, local))
}

struct Conversation {
    peers: [Peer; 2],
    rng: ChaCha20Rng,
    deposits: Vec<Vec<u8>>,
}

impl Conversation {
    /// Sends every frame the engines have queued.
    async fn flush(&mut self) -> Result<()> {
        for peer in &mut self.peers {
            let Some(ws) = peer.ws.as_mut() else { continue };
            for frame in peer.engine.take_frames() {
                if let Frame::Deposit { payload, .. } = &frame {
                    self.deposits.push(payload.clone());
                }
                ws.send(Message::binary(frame.encode())).await.context("sending a frame")?;
            }
        }
        Ok(())
    }

    /// Moves frames between the engines and the relay until `done` holds, or fails at a deadline.
    async fn until(&mut self, what: &str, done: impl Fn(&[Peer; 2]) -> bool) -> Result<()> {
        let deadline = tokio::time::Instant::now() + STEP_DEADLINE;
        loop {
            self.flush().await?;
            if done(&self.peers) {
                return Ok(());
            }
            let [a, b] = &mut self.peers;
            let (who, message) = tokio::select! {
                m = next_message(a) => (0, m),
                m = next_message(b) => (1, m),
                _ = tokio::time::sleep_until(deadline) => bail!("timed out waiting until {what}"),
            };
            let peer = &mut self.peers[who];
            match message {
                Some(Ok(Message::Binary(bytes))) => {
                    let frame =
                        Frame::decode(&bytes).map_err(|e| anyhow::anyhow!("relay sent a bad frame: {e}"))?;
                    peer.engine.on_frame(frame, now_secs(), &mut self.rng);
                }
                Some(Ok(Message::Close(_))) | None => bail!("the relay closed {}'s connection", peer.name),
                Some(Ok(_)) => {}
                Some(Err(e)) => bail!("{}'s connection failed: {e}", peer.name),
            }
        }
    }

    async fn disconnect(&mut self, who: usize) -> Result<()> {
        let peer = &mut self.peers[who];
        if let Some(mut ws) = peer.ws.take() {
            ws.close(None).await.context("closing a connection")?;
        }
        peer.engine.on_disconnected();
        Ok(())
    }
}

async fn next_message(peer: &mut Peer) -> Option<Result<Message, tokio_tungstenite::tungstenite::Error>> {
    match peer.ws.as_mut() {
        Some(ws) => ws.next().await,
        None => std::future::pending().await,
    }
}

fn has_text(peer: &Peer, text: &str) -> bool {
    peer.engine.contacts().any(|c| c.messages.iter().any(|m| !m.outgoing && m.text == text))
}

fn delivery(peer: &Peer, text: &str) -> Option<Delivery> {
    peer.engine
        .contacts()
        .flat_map(|c| c.messages.iter())
        .find(|m| m.outgoing && m.text == text)
        .map(|m| m.delivery)
}

fn only_contact(peer: &Peer) -> Result<ContactId> {
    peer.engine.contacts().next().map(|c| c.id).with_context(|| format!("{} has no contact", peer.name))
}

/// Alice invites Bob, they exchange two texts, Bob goes offline and Alice leaves a third one on
/// the relay. Both disconnect at the end.
pub async fn run(relay: SocketAddr) -> Result<Transcript> {
    // A fixed seed: the drill is about what the relay keeps, not about key generation.
    let mut rng = ChaCha20Rng::from_seed([0xD1; 32]);
    let source: IpAddr = [127, 0, 0, 3].into();
    let mut peers = Vec::new();
    let mut client_addrs = Vec::new();
    for name in [ALICE, BOB] {
        let engine = Engine::new(name, &mut rng);
        let (ws, local) = connect(relay, source).await?;
        client_addrs.push(local);
        peers.push(Peer { name, engine, ws: Some(ws) });
    }
    let [alice, bob]: [Peer; 2] = peers.try_into().map_err(|_| anyhow::anyhow!("two peers"))?;
    let mut c = Conversation { peers: [alice, bob], rng, deposits: Vec::new() };
    for peer in &mut c.peers {
        peer.engine.on_connected(&format!("ws://{relay}/ws"))?;
    }
    c.until("both engines are connected", |p| p.iter().all(|p| p.engine.is_connected())).await?;

    let now = now_secs();
    let link = c.peers[0].engine.create_invite(None, now, &mut c.rng)?;
    c.peers[1].engine.accept_invite(&link.fragment, now, &mut c.rng)?;
    c.until("Alice has Bob as a contact", |p| p[0].engine.contacts().count() == 1).await?;

    let alice_at_bob = only_contact(&c.peers[1])?;
    c.peers[1].engine.send_text(alice_at_bob, TEXT_1, now_secs(), &mut c.rng)?;
    c.until("Alice has Bob's text", |p| has_text(&p[0], TEXT_1)).await?;

    let bob_at_alice = only_contact(&c.peers[0])?;
    c.peers[0].engine.send_text(bob_at_alice, TEXT_2, now_secs(), &mut c.rng)?;
    c.until("Bob has Alice's text and Alice knows", |p| {
        has_text(&p[1], TEXT_2) && delivery(&p[0], TEXT_2) == Some(Delivery::Delivered)
    })
    .await?;
    // Bob has acknowledged everything he received once his engine has no unconfirmed deposits
    // and Alice's receipts arrived; let the relay see his last acks before he goes.
    c.until("both outboxes are confirmed", |p| p.iter().all(|p| p.engine.unconfirmed() == 0)).await?;

    c.disconnect(1).await?;
    c.peers[0].engine.send_text(bob_at_alice, TEXT_3, now_secs(), &mut c.rng)?;
    c.until("the relay stored Alice's text for offline Bob", |p| {
        delivery(&p[0], TEXT_3) == Some(Delivery::Sent)
    })
    .await?;
    c.disconnect(0).await?;

    let mut identity_keys = Vec::new();
    for peer in &c.peers {
        let id = peer.engine.identity();
        identity_keys.push((format!("{} Ed25519 identity key", peer.name), id.ed25519().to_vec()));
        identity_keys.push((format!("{} X25519 identity key", peer.name), id.x25519().to_vec()));
        identity_keys.push((format!("{} identity fingerprint", peer.name), id.fingerprint().to_vec()));
        identity_keys.push((format!("{} public identity (encoded)", peer.name), id.to_bytes()));
    }
    Ok(Transcript {
        names: vec![ALICE.into(), BOB.into()],
        texts: vec![TEXT_1.into(), TEXT_2.into(), TEXT_3.into()],
        identity_keys,
        deposits: c.deposits,
        client_addrs,
    })
}
