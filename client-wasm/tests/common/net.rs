//! Several in-test relays and the engines using them. Each engine keeps one connection per relay
//! that [`Engine::relays`] names (the home relay always, a contact's relay while a deposit waits
//! for it), as the owner tab does. Optionally the network is faulty (seeded): connections break
//! before or after the relay handled a frame (so frames, confirmations and acknowledgements are
//! lost, deposits are sent twice and blobs delivered twice), and the connections of one engine
//! take turns in random order (each connection stays first in, first out, as a WebSocket is).
#![allow(dead_code)] // Each test binary uses a different part of it.

use std::collections::{BTreeMap, VecDeque};

use client_wasm::engine::{ContactId, Delivery, Engine, Event};
use doorless_frames::{Frame, MailboxId, RelayOrigin};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

use super::relay::{NOW, STRANGER, TestRelay};

pub fn origin(url: &str) -> RelayOrigin {
    RelayOrigin::parse(url).unwrap()
}

/// Connections break with this probability per frame, half before and half after the relay
/// handled it (per mille). The relay's deliveries in one answer also come in a random order, and
/// each one twice with `duplicate_per_mille`.
pub struct Faults {
    pub break_per_mille: u32,
    pub duplicate_per_mille: u32,
    pub rng: ChaCha20Rng,
}

pub struct Net {
    pub urls: Vec<&'static str>,
    pub relays: Vec<TestRelay>,
    /// Whether each relay is running.
    pub up: Vec<bool>,
    pub engines: Vec<Engine>,
    /// Whether each engine's tab is open.
    pub online: Vec<bool>,
    /// Each engine's open connections (relay indexes).
    pub conns: Vec<Vec<usize>>,
    /// Each engine's storage (named records).
    pub stores: Vec<BTreeMap<String, Vec<u8>>>,
    pub events: Vec<Vec<Event>>,
    pub rng: ChaCha20Rng,
    /// The clock every engine sees.
    pub now: u64,
    pub faults: Option<Faults>,
}

impl Net {
    /// Relays at `urls`; one engine per `(name, home relay index)`.
    pub fn new(urls: &[&'static str], people: &[(&str, usize)], seed: u8) -> Self {
        let mut net = Self {
            urls: urls.to_vec(),
            relays: urls.iter().map(|u| TestRelay::at(u)).collect(),
            up: vec![true; urls.len()],
            engines: Vec::new(),
            online: Vec::new(),
            conns: Vec::new(),
            stores: Vec::new(),
            events: Vec::new(),
            rng: ChaCha20Rng::from_seed([seed; 32]),
            now: NOW,
            faults: None,
        };
        for (name, home) in people {
            let mut engine = Engine::new(name, &mut net.rng);
            engine.set_home_relay(urls[*home]).unwrap();
            net.add(engine);
        }
        net.pump();
        net
    }

    /// Adds an engine (online); returns its index.
    pub fn add(&mut self, engine: Engine) -> usize {
        self.engines.push(engine);
        self.online.push(true);
        self.conns.push(Vec::new());
        self.stores.push(Default::default());
        self.events.push(Vec::new());
        self.engines.len() - 1
    }

    pub fn relay_index(&self, origin: &RelayOrigin) -> usize {
        self.relays.iter().position(|r| r.origin() == *origin).expect("a relay of the test")
    }

    /// Opens the connections engine `i` needs (to running relays) and closes the idle ones.
    pub fn sync(&mut self, i: usize) {
        if !self.online[i] {
            return;
        }
        let needed: Vec<usize> =
            self.engines[i].relays().iter().map(|u| self.relay_index(&u.origin)).collect();
        for r in self.conns[i].clone() {
            if !needed.contains(&r) {
                self.close(i, r);
            }
        }
        for r in needed {
            if self.up[r] && !self.conns[i].contains(&r) {
                self.conns[i].push(r);
                self.engines[i].on_connected(self.urls[r]).unwrap();
            }
        }
    }

    pub fn close(&mut self, i: usize, r: usize) {
        self.conns[i].retain(|c| *c != r);
        self.relays[r].subscribers.retain(|_, c| *c != i);
        let origin = self.relays[r].origin();
        self.engines[i].on_relay_disconnected(&origin);
    }

    /// Whether the faulty network breaks a connection now.
    fn breaks(&mut self) -> bool {
        self.faults.as_mut().is_some_and(|f| f.rng.next_u32() % 1000 < f.break_per_mille)
    }

    /// Moves frames (opening and closing connections as needed) until nothing is in flight.
    pub fn pump(&mut self) {
        for _ in 0..100_000 {
            let mut moved = false;
            for i in 0..self.engines.len() {
                self.sync(i);
                let mut frames = self.engines[i].take_relay_frames();
                if let Some(f) = self.faults.as_mut() {
                    // The connections take turns in random order, each in its own order.
                    let mut queues: Vec<VecDeque<(RelayOrigin, Frame)>> = Vec::new();
                    for (o, frame) in frames.drain(..) {
                        match queues.iter_mut().find(|q| q.front().is_some_and(|(f, _)| *f == o)) {
                            Some(q) => q.push_back((o, frame)),
                            None => queues.push(VecDeque::from([(o, frame)])),
                        }
                    }
                    while !queues.is_empty() {
                        let q = f.rng.next_u32() as usize % queues.len();
                        frames.extend(queues[q].pop_front());
                        queues.retain(|q| !q.is_empty());
                    }
                }
                let mut broken: Vec<usize> = Vec::new();
                for (origin, frame) in frames {
                    let r = self.relay_index(&origin);
                    if broken.contains(&r) {
                        continue;
                    }
                    assert!(self.conns[i].contains(&r), "frames go only to open connections");
                    moved = true;
                    if self.breaks() {
                        // Lost on the way to the relay.
                        broken.push(r);
                        self.close(i, r);
                        continue;
                    }
                    let mut replies = self.relays[r].handle(i, frame);
                    if let Some(f) = self.faults.as_mut() {
                        replies = disorder(replies, f);
                    }
                    if self.breaks() {
                        // The relay handled it; its answers to this connection are lost.
                        broken.push(r);
                        self.close(i, r);
                    }
                    for (to, reply) in replies {
                        if self.conns[to].contains(&r) {
                            let events =
                                self.engines[to].on_relay_frame(&origin, reply, self.now, &mut self.rng);
                            self.events[to].extend(events);
                        }
                    }
                }
            }
            if !moved {
                return;
            }
        }
        panic!("the network never settles");
    }

    /// Relay `r` stops (every connection to it closes) or starts again.
    pub fn set_up(&mut self, r: usize, up: bool) {
        self.up[r] = up;
        if !up {
            for i in 0..self.engines.len() {
                if self.conns[i].contains(&r) {
                    self.close(i, r);
                }
            }
            self.relays[r].restart();
        }
        self.pump();
    }

    /// Engine `i`'s tab closes (it is saved first) or opens again.
    pub fn set_online(&mut self, i: usize, online: bool) {
        if !online {
            self.save(i);
            for r in self.conns[i].clone() {
                self.close(i, r);
            }
        }
        self.online[i] = online;
        self.pump();
    }

    /// Stores what engine `i` changed since its last save.
    pub fn save(&mut self, i: usize) {
        let records = self.engines[i].take_records();
        for name in records.deleted_names() {
            self.stores[i].remove(&name);
        }
        let records: Vec<(String, Vec<u8>)> = records.into_named().map(|(n, b)| (n, b.to_vec())).collect();
        self.stores[i].extend(records);
    }

    /// Saves engine `i` and replaces it with the one its records restore, as a reload does.
    pub fn reload(&mut self, i: usize) {
        self.save(i);
        for r in self.conns[i].clone() {
            self.close(i, r);
        }
        let stored = self.stores[i].iter().map(|(n, b)| (n.as_str(), b.as_slice()));
        self.engines[i] = Engine::restore(stored).expect("restores");
        self.pump();
    }

    /// Someone without a profile deposits `payload` into `mailbox` on relay `r`; then pumps.
    pub fn inject(&mut self, r: usize, mailbox: MailboxId, payload: Vec<u8>) {
        let origin = self.relays[r].origin();
        for (to, reply) in self.relays[r].handle(STRANGER, Frame::Deposit { request: 1, mailbox, payload }) {
            if to < self.engines.len() && self.conns[to].contains(&r) {
                let events = self.engines[to].on_relay_frame(&origin, reply, self.now, &mut self.rng);
                self.events[to].extend(events);
            }
        }
        self.pump();
    }

    /// `inviter` invites `joiner`; returns (joiner at inviter, inviter at joiner).
    pub fn invite_between(&mut self, inviter: usize, joiner: usize) -> (ContactId, ContactId) {
        let link = self.engines[inviter].create_invite(None, self.now, &mut self.rng).unwrap();
        self.pump();
        let at_joiner = self.engines[joiner].accept_invite(&link.fragment, self.now, &mut self.rng).unwrap();
        self.pump();
        let at_inviter = self.engines[inviter].contacts().last().unwrap().id;
        (at_inviter, at_joiner)
    }

    /// `inviter` (0 or 1) invites the other; returns (joiner at inviter, inviter at joiner).
    pub fn invite(&mut self, inviter: usize) -> (ContactId, ContactId) {
        self.invite_between(inviter, 1 - inviter)
    }

    /// Engine `i` writes `text` to `contact`; then pumps.
    pub fn send(&mut self, i: usize, contact: ContactId, text: &str) {
        self.engines[i].send_text(contact, text, self.now, &mut self.rng).unwrap();
        self.pump();
    }

    pub fn texts(&self, i: usize, contact: ContactId) -> Vec<&str> {
        self.engines[i].contact(contact).unwrap().messages.iter().map(|m| m.text.as_str()).collect()
    }

    pub fn delivery(&self, i: usize, contact: ContactId) -> Delivery {
        self.engines[i].contact(contact).unwrap().messages.iter().rev().find(|m| m.outgoing).unwrap().delivery
    }

    /// The mailboxes relay `r` has subscribed for engine `i`.
    pub fn subscribed(&self, r: usize, i: usize) -> usize {
        self.relays[r].subscribers.values().filter(|c| **c == i).count()
    }
}

/// The relay's deliveries reordered among themselves (a random permutation) and some of them
/// duplicated; every other frame keeps its place, as a connection's frames do.
fn disorder(replies: Vec<(usize, Frame)>, f: &mut Faults) -> Vec<(usize, Frame)> {
    let slots: Vec<usize> = replies
        .iter()
        .enumerate()
        .filter(|(_, (_, r))| matches!(r, Frame::Deliver { .. }))
        .map(|(k, _)| k)
        .collect();
    let mut deliveries: Vec<(usize, Frame)> = slots.iter().map(|k| replies[*k].clone()).collect();
    for k in (1..deliveries.len()).rev() {
        let j = f.rng.next_u32() as usize % (k + 1);
        deliveries.swap(k, j);
    }
    let mut out = Vec::with_capacity(replies.len());
    let mut next = deliveries.into_iter();
    for (k, reply) in replies.into_iter().enumerate() {
        let reply = if slots.contains(&k) { next.next().expect("one delivery per slot") } else { reply };
        let twice =
            matches!(reply.1, Frame::Deliver { .. }) && f.rng.next_u32() % 1000 < f.duplicate_per_mille;
        if twice {
            out.push(reply.clone());
        }
        out.push(reply);
    }
    out
}
