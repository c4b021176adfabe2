//! Two real engines talking through the real relay over WebSockets.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use client_wasm::engine::{ContactId, Delivery, Engine};
use doorless_frames::{Frame, RelayOrigin};
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
    /// Every connection a tab opened, with what it sent.
    pub connections: Vec<Connection>,
}

/// One client connection to one relay, as the relay saw it.
pub struct Connection {
    /// Whose tab it was.
    pub peer: &'static str,
    /// The relay it went to.
    pub relay: SocketAddr,
    /// Whether that relay is the tab's home relay.
    pub home: bool,
    /// The client's end of it.
    pub local: SocketAddr,
    /// Whether it subscribed to any mailbox.
    pub subscribed: bool,
    /// How many deposits it made.
    pub deposits: usize,
    /// Every frame it sent, encoded, one after another.
    pub sent: Vec<u8>,
}

/// An open connection of a tab.
struct Conn {
    origin: RelayOrigin,
    ws: Ws,
    /// Index in `Conversation::connections`.
    record: usize,
}

struct Peer {
    name: &'static str,
    engine: Engine,
    home: SocketAddr,
    online: bool,
    conns: Vec<Conn>,
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn relay_url(relay: SocketAddr) -> String {
    format!("ws://{relay}/ws")
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
    let (ws, _) = tokio_tungstenite::client_async(relay_url(relay), MaybeTlsStream::Plain(stream))
        .await
        .context("WebSocket handshake with the relay")?;
    Ok((ws, local))
}

struct Conversation {
    peers: [Peer; 2],
    /// The relays of the drill, by origin.
    relays: Vec<(RelayOrigin, SocketAddr)>,
    source: IpAddr,
    rng: ChaCha20Rng,
    deposits: Vec<Vec<u8>>,
    connections: Vec<Connection>,
}

impl Conversation {
    /// Opens a connection for every relay an online engine needs (its home relay, and a contact's
    /// relay while a deposit for it waits), the way the tab does.
    async fn connect_needed(&mut self) -> Result<()> {
        for peer in &mut self.peers {
            if !peer.online {
                continue;
            }
            for needed in peer.engine.relays() {
                if peer.conns.iter().any(|c| c.origin == needed.origin) {
                    continue;
                }
                let addr = self
                    .relays
                    .iter()
                    .find(|(o, _)| *o == needed.origin)
                    .map(|(_, a)| *a)
                    .with_context(|| format!("{} needs a relay the drill did not start", peer.name))?;
                let (ws, local) = connect(addr, self.source).await?;
                let origin = peer.engine.on_connected(&relay_url(addr))?;
                self.connections.push(Connection {
                    peer: peer.name,
                    relay: addr,
                    home: addr == peer.home,
                    local,
                    subscribed: false,
                    deposits: 0,
                    sent: Vec::new(),
                });
                peer.conns.push(Conn { origin, ws, record: self.connections.len() - 1 });
            }
        }
        Ok(())
    }

    /// Sends every frame the engines have queued, each on the connection to its relay.
    async fn flush(&mut self) -> Result<()> {
        self.connect_needed().await?;
        for peer in &mut self.peers {
            for (origin, frame) in peer.engine.take_relay_frames() {
                let Some(conn) = peer.conns.iter_mut().find(|c| c.origin == origin) else {
                    // Offline: the engine sends it again on its next connection.
                    continue;
                };
                let record = &mut self.connections[conn.record];
                match &frame {
                    Frame::Deposit { payload, .. } => {
                        self.deposits.push(payload.clone());
                        record.deposits += 1;
                    }
                    Frame::Subscribe { .. } | Frame::SubscribeBatch { .. } => record.subscribed = true,
                    _ => {}
                }
                let bytes = frame.encode();
                record.sent.extend_from_slice(&bytes);
                conn.ws.send(Message::binary(bytes)).await.context("sending a frame")?;
            }
        }
        Ok(())
    }

    /// Moves frames between the engines and the relays until `done` holds, or fails at a deadline.
    async fn until(&mut self, what: &str, done: impl Fn(&[Peer; 2]) -> bool) -> Result<()> {
        let deadline = tokio::time::Instant::now() + STEP_DEADLINE;
        loop {
            self.flush().await?;
            if done(&self.peers) {
                return Ok(());
            }
            let mut whose = Vec::new();
            let mut reads = Vec::new();
            for (p, peer) in self.peers.iter_mut().enumerate() {
                for (c, conn) in peer.conns.iter_mut().enumerate() {
                    whose.push((p, c));
                    reads.push(conn.ws.next());
                }
            }
            if reads.is_empty() {
                bail!("no connection is open while waiting until {what}");
            }
            let (message, index, _) =
                match tokio::time::timeout_at(deadline, futures_util::future::select_all(reads)).await {
                    Ok(read) => read,
                    Err(_) => bail!("timed out waiting until {what}"),
                };
            let (p, c) = whose[index];
            let peer = &mut self.peers[p];
            let origin = peer.conns[c].origin.clone();
            match message {
                Some(Ok(Message::Binary(bytes))) => {
                    let frame =
                        Frame::decode(&bytes).map_err(|e| anyhow::anyhow!("relay sent a bad frame: {e}"))?;
                    peer.engine.on_relay_frame(&origin, frame, now_secs(), &mut self.rng);
                }
                Some(Ok(Message::Close(_))) | None => bail!("a relay closed {}'s connection", peer.name),
                Some(Ok(_)) => {}
                Some(Err(e)) => bail!("{}'s connection failed: {e}", peer.name),
            }
        }
    }

    /// Closes every connection of `who`'s tab.
    async fn disconnect(&mut self, who: usize) -> Result<()> {
        let peer = &mut self.peers[who];
        peer.online = false;
        for mut conn in peer.conns.drain(..) {
            conn.ws.close(None).await.context("closing a connection")?;
        }
        peer.engine.on_disconnected();
        Ok(())
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
/// the relay. Both disconnect at the end. Alice's home relay is `homes[0]`, Bob's `homes[1]` (the
/// same relay or two): each subscribes on their own and deposits on the other's.
pub async fn run(homes: [SocketAddr; 2]) -> Result<Transcript> {
    // A fixed seed: the drill is about what the relay keeps, not about key generation.
    let mut rng = ChaCha20Rng::from_seed([0xD1; 32]);
    let mut relays = Vec::new();
    for addr in homes {
        let origin = RelayOrigin::parse(&relay_url(addr)).context("the relay's origin")?;
        if !relays.iter().any(|(o, _)| *o == origin) {
            relays.push((origin, addr));
        }
    }
    let mut peers = Vec::new();
    for (name, home) in [ALICE, BOB].into_iter().zip(homes) {
        let mut engine = Engine::new(name, &mut rng);
        engine.set_home_relay(&relay_url(home))?;
        peers.push(Peer { name, engine, home, online: true, conns: Vec::new() });
    }
    let [alice, bob]: [Peer; 2] = peers.try_into().map_err(|_| anyhow::anyhow!("two peers"))?;
    let mut c = Conversation {
        peers: [alice, bob],
        relays,
        source: [127, 0, 0, 3].into(),
        rng,
        deposits: Vec::new(),
        connections: Vec::new(),
    };
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
        client_addrs: c.connections.iter().map(|c| c.local).collect(),
        connections: c.connections,
    })
}
