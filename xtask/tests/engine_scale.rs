//! A profile with 500 contacts stays online against the real relay (issue 12, item 5): one engine
//! subscribes every contact's mailbox over one connection, the relay accepts every proof, and a
//! message from each contact arrives.
//!
//! The contacts are 500 other engines. They reach the relay through a few plain connections
//! (couriers, each carrying 100 people's deposits): what matters here is the one engine with 500
//! contacts, which runs with the relay's default limits.

use std::net::SocketAddr;
use std::time::Duration;

use client_wasm::engine::{Engine, Event};
use doorless_frames::Frame;
use futures_util::{SinkExt, StreamExt};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const CONTACTS: usize = 500;
/// People whose deposits one courier connection carries.
const PER_COURIER: usize = 100;
const NOW: u64 = 1_750_000_000;
/// Deadline for anything the test waits on.
const DEADLINE: Duration = Duration::from_secs(60);

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn connect(addr: SocketAddr) -> Ws {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await.expect("connect");
    ws
}

async fn send(ws: &mut Ws, frames: Vec<Frame>) {
    for frame in frames {
        ws.send(Message::binary(frame.encode())).await.expect("send");
    }
}

async fn recv(ws: &mut Ws) -> Frame {
    loop {
        match tokio::time::timeout(DEADLINE, ws.next()).await.expect("receive deadline") {
            Some(Ok(Message::Binary(bytes))) => return Frame::decode(&bytes).expect("a relay frame"),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => panic!("the relay closed the connection"),
            Some(Ok(_)) => {}
        }
    }
}

/// The deposits `engine` has queued, as a connected engine would send them; the challenge is not
/// the relay's, so its subscriptions are left out.
fn deposits_of(engine: &mut Engine, rng: &mut ChaCha20Rng) -> Vec<Frame> {
    engine.on_connected("ws://courier.invalid/ws").unwrap();
    engine.take_frames();
    engine.on_frame(Frame::Challenge { challenge: [0; 32], max_frame_len: 262_144 }, NOW, rng);
    let frames = engine.take_frames().into_iter().filter(|f| matches!(f, Frame::Deposit { .. })).collect();
    engine.on_disconnected();
    frames
}

/// Passes every person's deposits through the couriers, [`PER_COURIER`] people each.
async fn couriers(connections: &mut [Ws], people: &mut [Engine], rng: &mut ChaCha20Rng) {
    for (ws, people) in connections.iter_mut().zip(people.chunks_mut(PER_COURIER)) {
        courier(ws, people, rng).await;
    }
}

/// Passes these people's deposits through one courier, waits for each to be confirmed, and hands
/// each confirmation to the person whose deposit it is (answers come in deposit order).
async fn courier(ws: &mut Ws, people: &mut [Engine], rng: &mut ChaCha20Rng) {
    let mut senders = Vec::new();
    let mut deposits = Vec::new();
    for (index, person) in people.iter_mut().enumerate() {
        for frame in deposits_of(person, rng) {
            senders.push(index);
            deposits.push(frame);
        }
    }
    assert!(deposits.len() >= people.len(), "every person has something to deposit");
    send(ws, deposits).await;
    for index in senders {
        let answer = recv(ws).await;
        assert!(matches!(answer, Frame::Deposited { .. }), "{answer:?}");
        people[index].on_frame(answer, NOW, rng);
    }
    assert!(people.iter().all(|p| p.unconfirmed() == 0));
}

/// Connects `engine` to the relay; returns the connection and the number of mailboxes its
/// `SubscribeBatch` frames name (several frames, none larger than the engine's batch).
async fn go_online(engine: &mut Engine, addr: SocketAddr, rng: &mut ChaCha20Rng) -> (Ws, usize) {
    let mut ws = connect(addr).await;
    engine.on_connected(&format!("ws://{addr}/ws")).unwrap();
    send(&mut ws, engine.take_frames()).await;
    let challenge = recv(&mut ws).await;
    assert!(engine.on_frame(challenge, NOW, rng).is_empty());
    let frames = engine.take_frames();
    let batches: Vec<usize> = frames
        .iter()
        .filter_map(|f| match f {
            Frame::SubscribeBatch { proofs, .. } => Some(proofs.len()),
            _ => None,
        })
        .collect();
    assert!(batches.len() > 1 && batches.iter().all(|&n| n <= client_wasm::engine::SUBSCRIBE_BATCH));
    send(&mut ws, frames).await;
    (ws, batches.iter().sum())
}

/// Feeds `engine` what the relay sends, and sends back what it answers (acks, receipts), until
/// the relay has answered `subscriptions` subscriptions, all accepted, and `wanted` events matched.
async fn pump(
    engine: &mut Engine,
    ws: &mut Ws,
    rng: &mut ChaCha20Rng,
    mut subscriptions: usize,
    mut wanted: usize,
    matches: impl Fn(&Event) -> bool,
) {
    // Batches the engine sends on the way (it subscribes the fresh inbox it moves each new contact
    // to): their answers are awaited too, so that nothing it sent is still unread when it leaves.
    let mut batches_sent = 0usize;
    while subscriptions > 0 || wanted > 0 || batches_sent > 0 {
        let frame = recv(ws).await;
        if let Frame::SubscribedBatch { results, .. } = &frame {
            assert!(results.iter().all(Option::is_none), "the relay refused a subscription: {results:?}");
            if subscriptions > 0 {
                subscriptions -= results.len();
            } else {
                batches_sent -= 1;
            }
        }
        for event in engine.on_frame(frame, NOW, rng) {
            assert!(!matches!(event, Event::RelayError(_) | Event::Undecryptable), "{event:?}");
            if matches(&event) {
                wanted -= 1;
            }
        }
        let frames = engine.take_frames();
        batches_sent += frames.iter().filter(|f| matches!(f, Frame::SubscribeBatch { .. })).count();
        send(ws, frames).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_with_500_contacts_stays_online_at_the_real_relay() {
    // The relay's default limits: the profile's own connection must stay within them.
    let config = relay::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        store: relay::StoreKind::Memory,
        ..relay::Config::default()
    };
    let relay = relay::start(&config).await.expect("relay starts");
    let addr = relay.addr();
    let mut rng = ChaCha20Rng::from_seed([0x5c; 32]);

    // 500 invites from the one profile, each accepted by another person.
    let mut owner = Engine::new("Owner", &mut rng);
    let mut people: Vec<Engine> = (0..CONTACTS).map(|i| Engine::new(&format!("P{i}"), &mut rng)).collect();
    for person in &mut people {
        let link = owner.create_invite(None, NOW, &mut rng).unwrap();
        person.accept_invite(&link.fragment, NOW, &mut rng).unwrap();
    }
    let mut courier_ws = Vec::new();
    for _ in 0..CONTACTS.div_ceil(PER_COURIER) {
        let mut ws = connect(addr).await;
        send(&mut ws, vec![Frame::Hello]).await;
        assert!(matches!(recv(&mut ws).await, Frame::Challenge { .. }));
        courier_ws.push(ws);
    }
    couriers(&mut courier_ws, &mut people, &mut rng).await;

    // Online with 500 open invites: each answer arrives and becomes a contact.
    let (mut ws, subscribed) = go_online(&mut owner, addr, &mut rng).await;
    assert_eq!(subscribed, CONTACTS);
    pump(&mut owner, &mut ws, &mut rng, subscribed, CONTACTS, |e| matches!(e, Event::ContactAdded(_))).await;
    assert_eq!(owner.contacts().count(), CONTACTS);
    owner.on_disconnected();
    drop(ws);

    // Back online with 500 contacts: every contact's mailbox is subscribed, and a message from each
    // contact arrives.
    let (mut ws, subscribed) = go_online(&mut owner, addr, &mut rng).await;
    assert!(subscribed >= CONTACTS, "{subscribed} mailboxes subscribed");
    for person in &mut people {
        let owner_id = person.contacts().next().expect("the owner is a contact").id;
        person.send_text(owner_id, "hello", NOW, &mut rng).unwrap();
    }
    pump(&mut owner, &mut ws, &mut rng, subscribed, 0, |_| false).await;
    couriers(&mut courier_ws, &mut people, &mut rng).await;
    pump(&mut owner, &mut ws, &mut rng, 0, CONTACTS, |e| matches!(e, Event::MessageReceived(_))).await;
    assert_eq!(relay.metrics().subscriptions.load(std::sync::atomic::Ordering::Relaxed) as usize, subscribed);
    drop((ws, courier_ws));
    relay.shutdown().await;
}
