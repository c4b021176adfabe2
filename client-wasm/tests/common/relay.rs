//! An in-test relay between sans-IO engines, shared by the engine and malicious-relay tests. It
//! follows the frame protocol (challenge, subscribe proof, durable-ack deposit, sequenced delivery,
//! acknowledgement) and checks that every deposit is padded to an envelope size. Deliveries to
//! connections in `hold` are captured instead, so a test can play a hostile relay with them.
#![allow(dead_code)] // Each test binary uses a different part of it.

use std::collections::{BTreeMap, HashMap, HashSet};

use client_wasm::core::{INITIAL_ENVELOPE_SIZES, MESSAGE_ENVELOPE_SIZES};
use client_wasm::engine::{ContactId, Engine, Event};
use doorless_frames::{ErrorCode, Frame, MailboxId, RelayOrigin, verify_subscribe_proof};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use sha2::{Digest, Sha256};

pub const NOW: u64 = 1_750_000_000;
/// The connection of someone without a profile who deposits by hand (no padding checked).
pub const STRANGER: usize = 99;

/// The address engines connect to the in-test relay at; their subscribe proofs name its origin.
pub const RELAY_URL: &str = "wss://relay.test/ws";

/// The in-test relay's origin, as the engines sign for it.
pub fn relay_origin() -> RelayOrigin {
    RelayOrigin::parse(RELAY_URL).expect("the test relay's address is an origin")
}

/// A delivery the relay kept back instead of passing on.
#[derive(Clone, Debug)]
pub struct Held {
    pub to: usize,
    pub mailbox: MailboxId,
    pub seq: u64,
    pub payload: Vec<u8>,
}

/// How the relay answers `GetBundle`.
#[derive(Default, Clone, Copy, PartialEq, Eq, Debug)]
pub enum BundleMode {
    /// As stored.
    #[default]
    Honest,
    /// With one byte changed.
    Tamper,
    /// Never.
    Withhold,
}

/// The relay: honest bookkeeping, but deliveries to connections in `hold` are captured in `held`.
#[derive(Default)]
pub struct TestRelay {
    pub stored: BTreeMap<MailboxId, Vec<(u64, Vec<u8>)>>,
    pub next_seq: HashMap<MailboxId, u64>,
    pub subscribers: HashMap<MailboxId, usize>,
    pub challenges: HashMap<usize, [u8; 32]>,
    pub hold: HashSet<usize>,
    pub held: Vec<Held>,
    /// The relay's origin; `None` for [`RELAY_URL`]'s.
    pub origin: Option<RelayOrigin>,
    /// Invite bundles: id → (delete hash, bundle).
    pub bundles: HashMap<[u8; 16], ([u8; 32], Vec<u8>)>,
    pub bundle_mode: BundleMode,
}

impl TestRelay {
    /// A relay at `url`.
    pub fn at(url: &str) -> Self {
        Self { origin: Some(RelayOrigin::parse(url).expect("a relay address")), ..Self::default() }
    }

    /// The origin engines sign for.
    pub fn origin(&self) -> RelayOrigin {
        self.origin.clone().unwrap_or_else(relay_origin)
    }

    /// The relay stops: connections and subscriptions go, stored blobs stay (they are durable).
    pub fn restart(&mut self) {
        self.subscribers.clear();
        self.challenges.clear();
    }

    fn deliver(
        &mut self,
        out: &mut Vec<(usize, Frame)>,
        to: usize,
        mailbox: MailboxId,
        seq: u64,
        p: Vec<u8>,
    ) {
        if self.hold.contains(&to) {
            self.held.push(Held { to, mailbox, seq, payload: p });
        } else {
            out.push((to, Frame::Deliver { mailbox, seq, payload: p }));
        }
    }

    pub fn handle(&mut self, conn: usize, frame: Frame) -> Vec<(usize, Frame)> {
        let mut out = Vec::new();
        match frame {
            Frame::Hello => {
                let challenge = [conn as u8 + 7; 32];
                self.challenges.insert(conn, challenge);
                out.push((conn, Frame::Challenge { challenge, max_frame_len: 262_144 }));
            }
            Frame::SubscribeBatch { request, origin, proofs } => {
                let own = self.origin();
                assert_eq!(origin, own.as_str(), "engines sign for the relay they connected to");
                let challenge = self.challenges[&conn];
                let mailboxes: Vec<MailboxId> = proofs
                    .iter()
                    .map(|proof| {
                        verify_subscribe_proof(&own, &challenge, &proof.public_key, &proof.signature)
                            .expect("engines sign valid proofs")
                    })
                    .collect();
                out.push((conn, Frame::SubscribedBatch { request, results: vec![None; mailboxes.len()] }));
                for mailbox in mailboxes {
                    self.subscribers.insert(mailbox, conn);
                    for (seq, payload) in self.stored.get(&mailbox).cloned().unwrap_or_default() {
                        self.deliver(&mut out, conn, mailbox, seq, payload);
                    }
                }
            }
            Frame::Deposit { request, mailbox, payload } => {
                assert!(
                    conn == STRANGER
                        || MESSAGE_ENVELOPE_SIZES.contains(&payload.len())
                        || INITIAL_ENVELOPE_SIZES.contains(&payload.len()),
                    "every deposit is padded to an envelope size, got {}",
                    payload.len()
                );
                let seq = self.next_seq.entry(mailbox).or_insert(0);
                *seq += 1;
                let seq = *seq;
                self.stored.entry(mailbox).or_default().push((seq, payload.clone()));
                out.push((conn, Frame::Deposited { request }));
                if let Some(&owner) = self.subscribers.get(&mailbox) {
                    self.deliver(&mut out, owner, mailbox, seq, payload);
                }
            }
            Frame::Ack { mailbox, seq } => {
                if let Some(blobs) = self.stored.get_mut(&mailbox) {
                    blobs.retain(|(s, _)| *s > seq);
                }
            }
            Frame::PutBundle { request, id, delete_hash, bundle } => {
                self.bundles.entry(id).or_insert((delete_hash, bundle));
                out.push((conn, Frame::BundleStored { request }));
            }
            Frame::GetBundle { request, id } => match (self.bundles.get(&id), self.bundle_mode) {
                (_, BundleMode::Withhold) => {}
                (Some((_, bundle)), mode) => {
                    let mut bundle = bundle.clone();
                    if mode == BundleMode::Tamper {
                        bundle[100] ^= 1;
                    }
                    out.push((conn, Frame::Bundle { request, bundle }));
                }
                (None, _) => out.push((conn, Frame::Error { request, code: ErrorCode::NoSuchBundle })),
            },
            Frame::DeleteBundle { request, id, delete_secret } => {
                let hash: [u8; 32] = Sha256::digest(delete_secret).into();
                if self.bundles.get(&id).is_some_and(|(stored, _)| *stored != hash) {
                    out.push((conn, Frame::Error { request, code: ErrorCode::BadProof }));
                } else {
                    self.bundles.remove(&id);
                    out.push((conn, Frame::BundleDeleted { request }));
                }
            }
            _ => {}
        }
        out
    }
}

pub struct World {
    pub relay: TestRelay,
    pub engines: Vec<Engine>,
    pub online: Vec<bool>,
    pub rng: ChaCha20Rng,
    pub events: Vec<Vec<Event>>,
    /// Each engine's storage, as the browser vault keeps it: named records, each save replacing
    /// the ones it names.
    pub stores: Vec<std::collections::BTreeMap<String, Vec<u8>>>,
    /// The clock every engine sees when frames are moved.
    pub now: u64,
}

impl World {
    /// Profiles with these names, all connected; `seed` seeds every random choice.
    pub fn new(names: &[&str], seed: u8) -> Self {
        let mut rng = ChaCha20Rng::from_seed([seed; 32]);
        let engines: Vec<Engine> = names.iter().map(|n| Engine::new(n, &mut rng)).collect();
        let n = engines.len();
        let mut world = Self {
            relay: TestRelay::default(),
            engines,
            online: vec![false; n],
            rng,
            events: vec![vec![]; n],
            stores: vec![Default::default(); n],
            now: NOW,
        };
        for i in 0..n {
            world.connect(i);
        }
        world
    }

    /// Adds a profile (a restored one, say) and connects it; returns its index.
    pub fn adopt(&mut self, engine: Engine) -> usize {
        self.engines.push(engine);
        self.online.push(false);
        self.events.push(Vec::new());
        self.stores.push(Default::default());
        let i = self.engines.len() - 1;
        self.connect(i);
        i
    }

    /// Stores what engine `i` changed since its last save, as the owner tab does; returns the
    /// number of records written.
    pub fn save(&mut self, i: usize) -> usize {
        let records = self.engines[i].take_records();
        // As the vault does: deletions first, then the writes.
        for name in records.deleted_names() {
            self.stores[i].remove(&name);
        }
        let records: Vec<(String, Vec<u8>)> =
            records.into_named().map(|(name, bytes)| (name, bytes.to_vec())).collect();
        let written = records.len();
        self.stores[i].extend(records);
        written
    }

    /// Saves engine `i`, then replaces it with one restored from its storage, as a reload does.
    pub fn reload(&mut self, i: usize) {
        self.save(i);
        self.disconnect(i);
        let stored = self.stores[i].iter().map(|(name, bytes)| (name.as_str(), bytes.as_slice()));
        self.engines[i] = Engine::restore(stored).expect("stored records restore");
        self.connect(i);
    }

    /// Engine `i` (re)connects.
    pub fn connect(&mut self, i: usize) {
        self.online[i] = true;
        self.engines[i].on_connected(RELAY_URL).expect("the test relay's address is valid");
        self.pump();
    }

    /// Engine `i` goes offline; the relay forgets its subscriptions.
    pub fn disconnect(&mut self, i: usize) {
        self.online[i] = false;
        self.relay.subscribers.retain(|_, c| *c != i);
        self.engines[i].on_disconnected();
    }

    /// Moves frames until nothing is in flight.
    pub fn pump(&mut self) {
        loop {
            let mut moved = false;
            for i in 0..self.engines.len() {
                if !self.online[i] {
                    continue;
                }
                for frame in self.engines[i].take_frames() {
                    moved = true;
                    for (to, reply) in self.relay.handle(i, frame) {
                        if self.online[to] {
                            let events = self.engines[to].on_frame(reply, self.now, &mut self.rng);
                            self.events[to].extend(events);
                        }
                    }
                }
            }
            if !moved {
                break;
            }
        }
    }

    /// The relay hands `to` a blob of its choosing; returns the events it caused (then pumps, so
    /// acknowledgements and receipts flow).
    pub fn deliver(&mut self, to: usize, mailbox: MailboxId, seq: u64, payload: Vec<u8>) -> Vec<Event> {
        let events =
            self.engines[to].on_frame(Frame::Deliver { mailbox, seq, payload }, self.now, &mut self.rng);
        self.events[to].extend(events.clone());
        self.pump();
        events
    }

    /// Someone without a profile ([`STRANGER`]) deposits `payload` into
    /// `mailbox` through the relay, as anyone who knows a mailbox id can; then pumps.
    pub fn inject(&mut self, mailbox: MailboxId, payload: Vec<u8>) {
        for (to, reply) in self.relay.handle(STRANGER, Frame::Deposit { request: 1, mailbox, payload }) {
            if to < self.engines.len() && self.online[to] {
                let events = self.engines[to].on_frame(reply, self.now, &mut self.rng);
                self.events[to].extend(events);
            }
        }
        self.pump();
    }

    /// The mailboxes engine `i` subscribes to on a fresh connection at the world's clock.
    pub fn subscribed_on_reconnect(&mut self, i: usize) -> HashSet<MailboxId> {
        self.disconnect(i);
        self.connect(i);
        self.relay.subscribers.iter().filter(|(_, c)| **c == i).map(|(m, _)| *m).collect()
    }

    pub fn deliver_held(&mut self, h: &Held) -> Vec<Event> {
        self.deliver(h.to, h.mailbox, h.seq, h.payload.clone())
    }

    /// `from` sends `text` to `contact`; the relay keeps it back and returns it.
    pub fn send_held(&mut self, from: usize, contact: ContactId, text: &str, to: usize) -> Held {
        self.relay.hold.insert(to);
        self.engines[from].send_text(contact, text, NOW, &mut self.rng).unwrap();
        self.pump();
        self.relay.hold.remove(&to);
        assert_eq!(self.relay.held.len(), 1, "exactly the one message was held");
        self.relay.held.pop().unwrap()
    }

    pub fn texts(&self, i: usize, contact: ContactId) -> Vec<String> {
        self.engines[i].contact(contact).unwrap().messages.iter().map(|m| m.text.clone()).collect()
    }

    pub fn count_received(&self, i: usize) -> usize {
        self.engines[i].contacts().map(|c| c.messages.iter().filter(|m| !m.outgoing).count()).sum()
    }
}

/// `inviter` invites `joiner`; returns (joiner's id at the inviter, inviter's id at the joiner).
pub fn invite(w: &mut World, inviter: usize, joiner: usize) -> (ContactId, ContactId) {
    let before: HashSet<ContactId> = w.engines[inviter].contacts().map(|c| c.id).collect();
    let link = w.engines[inviter].create_invite(None, NOW, &mut w.rng).unwrap();
    w.pump();
    let at_joiner = w.engines[joiner].accept_invite(&link.fragment, NOW, &mut w.rng).unwrap();
    w.pump();
    let at_inviter = w.engines[inviter].contacts().map(|c| c.id).find(|id| !before.contains(id)).unwrap();
    (at_inviter, at_joiner)
}

/// Alice (0) and Bob (1) talking; returns (Bob at Alice, Alice at Bob).
pub fn pair(seed: u8) -> (World, ContactId, ContactId) {
    let mut w = World::new(&["Alice", "Bob"], seed);
    let (bob, alice) = invite(&mut w, 0, 1);
    (w, bob, alice)
}
