//! One WebSocket connection: the relay side of the frame protocol.
//!
//! Shape of a connection: this task reads frames and decides; a writer task drains a bounded queue
//! into the socket. Deliveries are *pulled* from the store only when that queue has room, so a
//! client that stops reading costs at most `outbound_queue` frames of memory; what it has not been
//! sent stays in the store and is delivered on its next subscription.
//!
//! The WebSocket layer underneath is [`crate::websocket`]: the writer task writes a whole burst from
//! the queue with one vectored write, payloads straight from where they lie (a delivered payload
//! from the store's own copy).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use doorless_frames::{
    CHALLENGE_LEN, ErrorCode, Frame, MAX_BUNDLE_LEN, MailboxId, MailboxProof, RelayOrigin,
    verify_subscribe_proof,
};
use futures_util::stream::FuturesOrdered;
use futures_util::{FutureExt as _, StreamExt};
use tokio::io::{AsyncWrite, AsyncWriteExt as _};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep_until, timeout};
use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::frame::coding::{Control, Data, OpCode as WsOpCode};

use crate::bundles::{self, MAX_BUNDLES_PER_CONNECTION};
use crate::limits::{ConnectionCap, ConnectionSlot, TokenBucket};
use crate::metrics::Metrics;
use crate::store::{BoxFuture, Inbox, Store, StoreError};
use crate::websocket::{Incoming, OutFrame, Reader, Role, reader, write_frames};

/// Deposits and acks one connection may have waiting for the store; reading pauses beyond it.
const MAX_IN_FLIGHT: usize = 64;
/// Frames handled in one go when several have already arrived.
const READ_BATCH: usize = 32;
/// Most blobs fetched from the store in one go for one subscription.
const DELIVER_BATCH: usize = 32;
/// How long a connection may leave its queue full before it counts as not reading, and is dropped.
const SEND_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the last frames (error, close) get to leave before the socket is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the store gets to finish the deposits in flight when a connection is closed for an
/// error, so that each is answered before the error.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// Most frames written with one vectored write: up to three slices each, well under the system's
/// limit of 1,024 slices per call.
const WRITE_BATCH: usize = 64;

/// An upgraded `/ws` connection, after the HTTP handshake.
pub type Io = hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>;

/// The WebSocket layer's own size limit: far above `max_frame_len`, so that the relay reads a
/// message somewhat too large whole and answers it with `FrameTooLarge` itself. Beyond this, the
/// message is refused from its header alone, before its payload is read.
fn socket_limit(max_frame_len: usize) -> usize {
    max_frame_len.saturating_mul(2)
}

/// A frame waiting in a connection's outbound queue.
#[derive(Debug)]
enum Outgoing {
    /// One protocol frame, encoded: a binary message.
    Binary(Vec<u8>),
    /// A `Deliver` frame as its two parts, the payload shared with the store (boxed: deliveries are
    /// most of the traffic, but every queue slot is as large as the largest variant).
    Deliver(Box<([u8; Frame::DELIVER_OVERHEAD], Bytes)>),
    /// A keep-alive ping.
    Ping,
    /// The answer to the client's ping, carrying its payload (boxed, as pings are rare: with it,
    /// every queue slot is the size of a `Vec`, and tokio allocates a connection's queue 32 slots
    /// at a time).
    Pong(Box<Bytes>),
    /// The closing handshake's frame; nothing is written after it.
    Close,
}

impl Outgoing {
    /// The frame as it goes on the wire (unmasked: the relay is the server).
    fn wire(&self) -> OutFrame<'_> {
        let (opcode, pieces): (_, [&[u8]; 2]) = match self {
            Self::Binary(bytes) => (WsOpCode::Data(Data::Binary), [bytes, &[]]),
            Self::Deliver(parts) => (WsOpCode::Data(Data::Binary), [&parts.0, &parts.1]),
            Self::Ping => (WsOpCode::Control(Control::Ping), [&[], &[]]),
            Self::Pong(payload) => (WsOpCode::Control(Control::Pong), [&payload[..], &[]]),
            Self::Close => (WsOpCode::Control(Control::Close), [&[], &[]]),
        };
        (FrameHeader { opcode, ..FrameHeader::default() }, pieces)
    }
}

/// Limits that shape each connection.
#[derive(Debug, Clone, Copy)]
pub struct WsLimits {
    /// Largest accepted frame, bytes.
    pub max_frame_len: usize,
    /// Subscriptions per connection.
    pub max_subscriptions: usize,
    /// Deposits per second (refill).
    pub deposit_rate: f64,
    /// Deposit burst.
    pub deposit_burst: f64,
    /// Outbound queue length, frames.
    pub outbound_queue: usize,
    /// Inactivity before disconnect.
    pub idle_timeout: Duration,
}

/// What every connection shares.
pub struct Shared {
    /// Storage and fan-out.
    pub store: Arc<dyn Store>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Connection cap.
    pub cap: Arc<ConnectionCap>,
    /// Limits.
    pub limits: WsLimits,
    /// Turns `true` when the relay shuts down.
    pub shutdown: watch::Receiver<bool>,
    /// The relay's own origins: subscribe proofs must be made for one of them (never for what a
    /// client's `Host` header says, which a relay replaying someone's proof would choose).
    pub origins: Vec<RelayOrigin>,
}

/// Runs one upgraded connection to its end. `slot` is `None` when the connection cap refused it.
pub async fn run(io: Io, shared: Arc<Shared>, slot: Option<ConnectionSlot>) {
    let metrics = shared.metrics.clone();
    // A bug that panics in one connection must not pass unnoticed: it is counted (operators see it
    // in /metrics, and the tests check the count stays zero) and logged, and the relay carries on.
    // The slot is given back only afterwards, so a shutdown that waits for the last connection also
    // waits for the count.
    if AssertUnwindSafe(connection(io, shared, slot.is_some())).catch_unwind().await.is_err() {
        metrics.connection_panics_total.fetch_add(1, Relaxed);
        tracing::error!("a connection task panicked");
    }
    drop(slot);
}

/// One connection from upgrade to close; `admitted` is false when the connection cap refused it.
async fn connection(io: Io, shared: Arc<Shared>, admitted: bool) {
    let (read, write) = tokio::io::split(io);
    let mut stream = reader(read, socket_limit(shared.limits.max_frame_len), Role::Server);
    let (out, queue) = mpsc::channel(shared.limits.outbound_queue.max(2));
    let writer = tokio::spawn(write_loop(write, queue, shared.metrics.clone()));
    if !admitted {
        shared.metrics.connections_refused_total.fetch_add(1, Relaxed);
        let conn = Connection::new(shared, out);
        conn.close(Some((0, ErrorCode::TooManyConnections)), writer, stream).await;
        return;
    }
    shared.metrics.connections_total.fetch_add(1, Relaxed);
    let mut conn = Connection::new(shared, out);
    let reason = conn.serve(&mut stream).await;
    conn.close(reason, writer, stream).await;
}

use std::sync::atomic::Ordering::Relaxed;

/// Writes what is queued, a burst at a time, until the queue closes, a write fails, or the Close
/// frame is out; then shuts the socket's sending side.
async fn write_loop<W: AsyncWrite + Unpin>(
    mut io: W,
    mut queue: mpsc::Receiver<Outgoing>,
    metrics: Arc<Metrics>,
) {
    while let Some(first) = queue.recv().await {
        // Allocated per burst rather than kept: an idle connection holds no batch.
        let mut batch = vec![first];
        while batch.len() < WRITE_BATCH {
            match queue.try_recv() {
                Ok(frame) => batch.push(frame),
                Err(_) => break,
            }
        }
        metrics.outbound_queued.fetch_sub(batch.len() as i64, Relaxed);
        let close = batch.iter().position(|frame| matches!(frame, Outgoing::Close));
        if let Some(at) = close {
            batch.truncate(at + 1);
        }
        let wire: Vec<OutFrame<'_>> = batch.iter().map(Outgoing::wire).collect();
        if write_frames(&mut io, &wire).await.is_err() || close.is_some() {
            break;
        }
    }
    queue.close();
    while queue.try_recv().is_ok() {
        metrics.outbound_queued.fetch_sub(1, Relaxed);
    }
    let _ = io.shutdown().await;
}

/// Where the connection is in the protocol.
enum Phase {
    /// Nothing but `Hello` (or `Ping`) is accepted yet.
    AwaitHello,
    /// The challenge is out; subscribe, deposit and ack are open.
    Ready { challenge: [u8; CHALLENGE_LEN] },
}

struct Subscription {
    mailbox: MailboxId,
    /// Highest sequence number already queued to this client.
    sent_upto: u64,
    /// The store may hold blobs above `sent_upto`.
    pending: bool,
    /// Subscribed (again) by a request whose answer is not queued yet: no delivery until it is.
    starting: bool,
}

enum InFlight {
    Deposit {
        request: u32,
        len: usize,
        result: Result<u64, StoreError>,
    },
    Ack {
        result: Result<u64, StoreError>,
    },
    /// A bundle request's answer (docs/relay-protocol.md, "Invite bundles").
    Bundle {
        request: u32,
        answer: bundles::Answer,
    },
}

/// Why a connection ends: an error to tell the client first, or nothing (peer left, socket broke).
type CloseReason = Option<(u32, ErrorCode)>;

enum Event<'a> {
    Shutdown,
    Done(InFlight),
    Incoming(Option<Result<Incoming, ErrorCode>>),
    Wake,
    Room(mpsc::Permit<'a, Outgoing>),
    QueueClosed,
    /// The idle timer fired, but something was heard since it was set.
    Heard,
    Idle,
    PingTick,
}

struct Connection {
    shared: Arc<Shared>,
    out: mpsc::Sender<Outgoing>,
    phase: Phase,
    subscriptions: Vec<Subscription>,
    inbox: Arc<Inbox>,
    bucket: TokenBucket,
    next_delivery: usize,
    /// Bundles this connection stored (see [`MAX_BUNDLES_PER_CONNECTION`]).
    bundles_stored: usize,
}

impl Connection {
    fn new(shared: Arc<Shared>, out: mpsc::Sender<Outgoing>) -> Self {
        let limits = shared.limits;
        Self {
            shared,
            out,
            phase: Phase::AwaitHello,
            subscriptions: Vec::new(),
            inbox: Inbox::new(),
            bucket: TokenBucket::new(limits.deposit_rate, limits.deposit_burst, std::time::Instant::now()),
            next_delivery: 0,
            bundles_stored: 0,
        }
    }

    async fn serve(&mut self, stream: &mut Reader) -> CloseReason {
        let idle = self.shared.limits.idle_timeout;
        let mut shutdown = self.shared.shutdown.clone();
        let inbox = self.inbox.clone();
        // A second handle on the queue, so that waiting for room borrows it rather than `self`.
        let out = self.out.clone();
        let mut in_flight: FuturesOrdered<BoxFuture<'static, InFlight>> = FuturesOrdered::new();
        let mut last_heard = Instant::now();
        // One timer for the idle timeout, moved on only when it fires: re-arming a timer for every
        // frame would cost a timer-wheel update per frame.
        let idle_timer = sleep_until(last_heard + idle);
        tokio::pin!(idle_timer);
        let mut ping = tokio::time::interval_at(Instant::now() + idle / 3, idle / 3);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        if *shutdown.borrow() {
            return Some((0, ErrorCode::ShuttingDown));
        }
        let stopping = shutdown.changed();
        tokio::pin!(stopping);

        loop {
            let deliverable = self.subscriptions.iter().any(|s| s.pending);
            let can_read = in_flight.len() < MAX_IN_FLIGHT;
            let event = tokio::select! {
                biased;
                _ = &mut stopping => Event::Shutdown,
                Some(done) = in_flight.next(), if !in_flight.is_empty() => Event::Done(done),
                message = stream.next(), if can_read => Event::Incoming(message),
                () = inbox.notified() => Event::Wake,
                permit = out.reserve(), if deliverable => match permit {
                    Ok(permit) => Event::Room(permit),
                    Err(_) => Event::QueueClosed,
                },
                () = &mut idle_timer => {
                    if last_heard + idle > Instant::now() {
                        idle_timer.as_mut().reset(last_heard + idle);
                        Event::Heard
                    } else {
                        Event::Idle
                    }
                }
                _ = ping.tick() => Event::PingTick,
            };
            let reason = match event {
                Event::Shutdown => {
                    // Answer what is already in flight, so no durable deposit goes unconfirmed.
                    match timeout(CLOSE_TIMEOUT, self.answer_in_flight(&mut in_flight)).await {
                        Ok(Err(reason)) => return reason,
                        _ => return Some((0, ErrorCode::ShuttingDown)),
                    }
                }
                Event::Done(done) => self.finish(done).await,
                Event::Incoming(None) => {
                    // The client left: what it sent before leaving (an Ack above all) still takes
                    // effect, or the acknowledged blob would be delivered again next time.
                    let _ = timeout(ANSWER_TIMEOUT, self.answer_in_flight(&mut in_flight)).await;
                    return None;
                }
                Event::Incoming(Some(Err(code))) => Err(Some((0, code))),
                Event::Incoming(Some(Ok(message))) => {
                    last_heard = Instant::now();
                    let mut result = self.on_message(message, &mut in_flight).await;
                    // Handle what else has already arrived before going round the loop again.
                    let mut batch = 1;
                    while result.is_ok() && batch < READ_BATCH && in_flight.len() < MAX_IN_FLIGHT {
                        match stream.next().now_or_never() {
                            Some(Some(Ok(message))) => {
                                result = self.on_message(message, &mut in_flight).await;
                                batch += 1;
                            }
                            Some(None) => {
                                let _ = timeout(ANSWER_TIMEOUT, self.answer_in_flight(&mut in_flight)).await;
                                return None;
                            }
                            Some(Some(Err(code))) => result = Err(Some((0, code))),
                            None => break,
                        }
                    }
                    result
                }
                Event::Wake => {
                    for mailbox in self.inbox.take_dirty() {
                        if let Some(sub) = self.subscriptions.iter_mut().find(|s| s.mailbox == mailbox) {
                            sub.pending = true;
                        }
                    }
                    Ok(())
                }
                Event::Room(permit) => self.deliver(permit).await,
                Event::QueueClosed => return None,
                Event::Heard => Ok(()),
                Event::Idle => return Some((0, ErrorCode::IdleTimeout)),
                Event::PingTick => {
                    if last_heard.elapsed() >= idle / 3 && self.out.try_send(Outgoing::Ping).is_ok() {
                        self.shared.metrics.outbound_queued.fetch_add(1, Relaxed);
                    }
                    Ok(())
                }
            };
            if let Err(reason) = reason {
                // Closed for an error, or by the client: what is already handed to the store
                // finishes first. Every stored deposit is answered, in order, so none goes
                // unconfirmed; an Ack the client sent just before leaving takes effect, so its blob
                // is not delivered again.
                let _ = timeout(ANSWER_TIMEOUT, self.answer_in_flight(&mut in_flight)).await;
                return reason;
            }
        }
    }

    /// Waits for everything in flight (deposits, acks) and answers it, in order.
    async fn answer_in_flight(
        &mut self,
        in_flight: &mut FuturesOrdered<BoxFuture<'static, InFlight>>,
    ) -> Result<(), CloseReason> {
        while let Some(done) = in_flight.next().await {
            self.finish(done).await?;
        }
        Ok(())
    }

    /// Queues a frame, waiting for room; a client that leaves its queue full too long is dropped.
    async fn send(&self, frame: Frame) -> Result<(), CloseReason> {
        let message = Outgoing::Binary(frame.encode());
        // Usually there is room: no timer then.
        let queued = match self.out.try_send(message) {
            Ok(()) => Ok(Ok(())),
            Err(mpsc::error::TrySendError::Closed(_)) => Ok(Err(())),
            Err(mpsc::error::TrySendError::Full(message)) => {
                timeout(SEND_TIMEOUT, self.out.send(message)).await.map(|sent| sent.map_err(|_| ()))
            }
        };
        match queued {
            Ok(Ok(())) => {
                self.shared.metrics.outbound_queued.fetch_add(1, Relaxed);
                self.shared.metrics.frames_out_total.fetch_add(1, Relaxed);
                Ok(())
            }
            Ok(Err(())) => Err(None),
            Err(_) => {
                self.shared.metrics.slow_consumer_total.fetch_add(1, Relaxed);
                Err(None)
            }
        }
    }

    async fn send_error(&self, request: u32, code: ErrorCode) -> Result<(), CloseReason> {
        self.shared.metrics.error(code);
        self.send(Frame::Error { request, code }).await
    }

    async fn on_message(
        &mut self,
        message: Incoming,
        in_flight: &mut FuturesOrdered<BoxFuture<'static, InFlight>>,
    ) -> Result<(), CloseReason> {
        let bytes = match message {
            Incoming::Binary(bytes) => bytes,
            Incoming::Close => return Err(None),
            Incoming::Ping(payload) => {
                // A sign of life; answered when there is room (a full queue means the client is
                // not reading, and will be dropped for it).
                if self.out.try_send(Outgoing::Pong(Box::new(payload.freeze()))).is_ok() {
                    self.shared.metrics.outbound_queued.fetch_add(1, Relaxed);
                }
                return Ok(());
            }
            Incoming::Pong => return Ok(()),
            Incoming::Text => return Err(Some((0, ErrorCode::Malformed))),
        };
        // A broken or oversized request is answered with its id when the id could be read.
        if bytes.len() > self.shared.limits.max_frame_len {
            return Err(Some((Frame::request_of(&bytes).unwrap_or(0), ErrorCode::FrameTooLarge)));
        }
        self.shared.metrics.frames_in_total.fetch_add(1, Relaxed);
        let frame =
            Frame::decode(&bytes).map_err(|e| Some((Frame::request_of(&bytes).unwrap_or(0), e.code())))?;
        match (&self.phase, frame) {
            (_, Frame::Ping { nonce }) => self.send(Frame::Pong { nonce }).await,
            (_, Frame::Pong { .. }) => Ok(()),
            (Phase::AwaitHello, Frame::Hello) => {
                let mut challenge = [0; CHALLENGE_LEN];
                if getrandom::fill(&mut challenge).is_err() {
                    tracing::error!("system randomness unavailable");
                    return Err(Some((0, ErrorCode::ShuttingDown)));
                }
                self.phase = Phase::Ready { challenge };
                let max_frame_len = u32::try_from(self.shared.limits.max_frame_len).unwrap_or(u32::MAX);
                self.send(Frame::Challenge { challenge, max_frame_len }).await
            }
            (Phase::Ready { challenge }, Frame::Subscribe { request, public_key, signature }) => {
                let challenge = *challenge;
                // Acks sent before take effect first, or a re-subscription would deliver again
                // what they acknowledged.
                self.answer_in_flight(in_flight).await?;
                let proof = MailboxProof { public_key, signature };
                match self.subscribe(&challenge, None, &proof) {
                    Ok(mailbox) => self.send(Frame::Subscribed { request, mailbox }).await?,
                    Err(ErrorCode::BadProof) => return Err(Some((request, ErrorCode::BadProof))),
                    Err(code) => self.send_error(request, code).await?,
                }
                self.start_delivery();
                Ok(())
            }
            (Phase::Ready { challenge }, Frame::SubscribeBatch { request, origin, proofs }) => {
                let challenge = *challenge;
                let Some(origin) = self.shared.origins.iter().find(|o| o.as_str() == origin).cloned() else {
                    return Err(Some((request, ErrorCode::WrongOrigin)));
                };
                self.answer_in_flight(in_flight).await?;
                let mut results = Vec::with_capacity(proofs.len());
                for proof in &proofs {
                    let result = self.subscribe(&challenge, Some(&origin), proof);
                    if let Err(code) = result {
                        self.shared.metrics.error(code);
                    }
                    results.push(result.err());
                }
                self.send(Frame::SubscribedBatch { request, results }).await?;
                self.start_delivery();
                Ok(())
            }
            (Phase::Ready { .. }, Frame::Deposit { request, mailbox, payload }) => {
                if !self.bucket.try_take(std::time::Instant::now()) {
                    return Err(Some((request, ErrorCode::RateLimited)));
                }
                let len = payload.len();
                let stored = self.shared.store.deposit(mailbox, payload);
                in_flight.push_back(Box::pin(async move {
                    InFlight::Deposit { request, len, result: stored.await }
                }));
                Ok(())
            }
            (Phase::Ready { .. }, Frame::Ack { mailbox, seq }) => {
                if !self.subscriptions.iter().any(|s| s.mailbox == mailbox) {
                    return Err(Some((0, ErrorCode::NotSubscribed)));
                }
                let acked = self.shared.store.ack(mailbox, seq);
                in_flight.push_back(Box::pin(async move { InFlight::Ack { result: acked.await } }));
                Ok(())
            }
            (Phase::Ready { .. }, Frame::PutBundle { request, id, delete_hash, bundle }) => {
                if bundle.len() > MAX_BUNDLE_LEN {
                    return Err(Some((request, ErrorCode::Malformed)));
                }
                if !self.bucket.try_take(std::time::Instant::now()) {
                    return Err(Some((request, ErrorCode::RateLimited)));
                }
                if self.bundles_stored >= MAX_BUNDLES_PER_CONNECTION {
                    return self.send_error(request, ErrorCode::TooManyBundles).await;
                }
                self.bundles_stored += 1;
                let answer = bundles::put(self.shared.store.clone(), request, id, delete_hash, bundle);
                in_flight
                    .push_back(Box::pin(async move { InFlight::Bundle { request, answer: answer.await } }));
                Ok(())
            }
            (Phase::Ready { .. }, Frame::GetBundle { request, id }) => {
                if !self.bucket.try_take(std::time::Instant::now()) {
                    return Err(Some((request, ErrorCode::RateLimited)));
                }
                let answer = bundles::get(self.shared.store.clone(), request, id);
                in_flight
                    .push_back(Box::pin(async move { InFlight::Bundle { request, answer: answer.await } }));
                Ok(())
            }
            (Phase::Ready { .. }, Frame::DeleteBundle { request, id, delete_secret }) => {
                let answer = bundles::delete(self.shared.store.clone(), request, id, delete_secret);
                in_flight
                    .push_back(Box::pin(async move { InFlight::Bundle { request, answer: answer.await } }));
                Ok(())
            }
            (
                _,
                Frame::Subscribe { request, .. }
                | Frame::Deposit { request, .. }
                | Frame::SubscribeBatch { request, .. }
                | Frame::PutBundle { request, .. }
                | Frame::GetBundle { request, .. }
                | Frame::DeleteBundle { request, .. },
            ) => Err(Some((request, ErrorCode::UnexpectedFrame))),
            // Hello twice, Ack before Hello, or a relay-to-client frame.
            (_, _) => Err(Some((0, ErrorCode::UnexpectedFrame))),
        }
    }

    /// Checks one proof (made for `origin`, or for any of the relay's origins) and subscribes, or
    /// restarts delivery of a mailbox already subscribed from its oldest stored blob. Delivery
    /// starts only with [`Self::start_delivery`], once the answer is queued: `Subscribed` always
    /// comes before the mailbox's first `Deliver`.
    fn subscribe(
        &mut self,
        challenge: &[u8; CHALLENGE_LEN],
        origin: Option<&RelayOrigin>,
        proof: &MailboxProof,
    ) -> Result<MailboxId, ErrorCode> {
        let mailbox = MailboxId::from_public_key(&proof.public_key);
        let known = self.subscriptions.iter().position(|s| s.mailbox == mailbox);
        // Refused before its signature is checked: a full connection spends no time on proofs.
        if known.is_none() && self.subscriptions.len() >= self.shared.limits.max_subscriptions {
            return Err(ErrorCode::TooManySubscriptions);
        }
        let verify = |origin: &RelayOrigin| {
            verify_subscribe_proof(origin, challenge, &proof.public_key, &proof.signature)
        };
        let verified = match origin {
            Some(origin) => verify(origin).is_ok(),
            None => self.shared.origins.iter().any(|origin| verify(origin).is_ok()),
        };
        if !verified {
            return Err(ErrorCode::BadProof);
        }
        match known {
            Some(index) => {
                // Subscribing again restarts delivery from the oldest unacknowledged blob.
                self.subscriptions[index].sent_upto = 0;
                self.subscriptions[index].starting = true;
            }
            None => {
                self.shared.store.subscribe(mailbox, &self.inbox);
                self.shared.metrics.subscriptions.fetch_add(1, Relaxed);
                self.subscriptions.push(Subscription {
                    mailbox,
                    sent_upto: 0,
                    pending: false,
                    starting: true,
                });
            }
        }
        Ok(mailbox)
    }

    /// Lets delivery start for the subscriptions just answered.
    fn start_delivery(&mut self) {
        for sub in self.subscriptions.iter_mut().filter(|s| s.starting) {
            sub.starting = false;
            sub.pending = true;
        }
    }

    async fn finish(&mut self, done: InFlight) -> Result<(), CloseReason> {
        let metrics = &self.shared.metrics;
        match done {
            InFlight::Deposit { request, len, result: Ok(_) } => {
                metrics.deposits_total.fetch_add(1, Relaxed);
                metrics.deposit_bytes_total.fetch_add(len as u64, Relaxed);
                self.send(Frame::Deposited { request }).await
            }
            InFlight::Deposit { request, result: Err(StoreError::Closed), .. } => {
                Err(Some((request, ErrorCode::ShuttingDown)))
            }
            InFlight::Deposit { request, result: Err(err), .. } => {
                if let StoreError::Backend(_) = err {
                    tracing::warn!(error = %err, "deposit failed");
                }
                self.send_error(request, err.code()).await
            }
            InFlight::Ack { result: Ok(n) } => {
                metrics.acked_total.fetch_add(n, Relaxed);
                Ok(())
            }
            InFlight::Ack { result: Err(err) } => {
                tracing::warn!(error = %err, "ack failed");
                Ok(())
            }
            InFlight::Bundle { request, answer: Err(ErrorCode::ShuttingDown) } => {
                Err(Some((request, ErrorCode::ShuttingDown)))
            }
            InFlight::Bundle { request, answer: Err(code) } => self.send_error(request, code).await,
            InFlight::Bundle { answer: Ok(frame), .. } => self.send(frame).await,
        }
    }

    /// Fills the outbound queue from the store for one pending subscription (round robin).
    async fn deliver(&mut self, permit: mpsc::Permit<'_, Outgoing>) -> Result<(), CloseReason> {
        let count = self.subscriptions.len();
        let Some(index) =
            (0..count).map(|i| (self.next_delivery + i) % count).find(|&i| self.subscriptions[i].pending)
        else {
            return Ok(());
        };
        self.next_delivery = index + 1;
        let (mailbox, after) = (self.subscriptions[index].mailbox, self.subscriptions[index].sent_upto);
        let room = (1 + self.out.capacity()).min(DELIVER_BATCH);
        let blobs = match self.shared.store.fetch(mailbox, after, room).await {
            Ok(blobs) => blobs,
            Err(err) => {
                tracing::warn!(error = %err, "fetch failed");
                return Err(Some((0, ErrorCode::StorageFailure)));
            }
        };
        let metrics = &self.shared.metrics;
        let sub = &mut self.subscriptions[index];
        if blobs.len() < room {
            sub.pending = false;
        }
        let mut permit = Some(permit);
        for blob in blobs {
            // The payload stays where the store keeps it; it is written from there.
            let message =
                Outgoing::Deliver(Box::new((Frame::deliver_head(&mailbox, blob.seq), blob.payload)));
            let queued = match permit.take() {
                Some(permit) => {
                    permit.send(message);
                    true
                }
                None => self.out.try_send(message).is_ok(),
            };
            if !queued {
                // Only this task sends, so room can only grow; if not, retry later from here.
                sub.pending = true;
                break;
            }
            sub.sent_upto = blob.seq;
            metrics.outbound_queued.fetch_add(1, Relaxed);
            metrics.frames_out_total.fetch_add(1, Relaxed);
            metrics.deliveries_total.fetch_add(1, Relaxed);
        }
        if sub.pending && self.out.capacity() == 0 {
            metrics.outbound_full_total.fetch_add(1, Relaxed);
        }
        Ok(())
    }

    /// Tells the client why (if there is a reason), closes, and lets the writer finish briefly.
    async fn close(self, reason: CloseReason, writer: tokio::task::JoinHandle<()>, mut stream: Reader) {
        let deadline = Instant::now() + CLOSE_TIMEOUT;
        if let Some((request, code)) = reason {
            tracing::debug!(code = code.to_u16(), "closing connection with error");
            self.shared.metrics.error(code);
            let message = Outgoing::Binary(Frame::Error { request, code }.encode());
            if let Ok(Ok(())) = timeout(CLOSE_TIMEOUT, self.out.send(message)).await {
                self.shared.metrics.outbound_queued.fetch_add(1, Relaxed);
                self.shared.metrics.frames_out_total.fetch_add(1, Relaxed);
            }
        }
        if self.out.try_send(Outgoing::Close).is_ok() {
            self.shared.metrics.outbound_queued.fetch_add(1, Relaxed);
        }
        for sub in &self.subscriptions {
            self.shared.store.unsubscribe(sub.mailbox, &self.inbox);
        }
        self.shared.metrics.subscriptions.fetch_sub(self.subscriptions.len() as i64, Relaxed);
        drop(self.out);
        let abort = writer.abort_handle();
        if tokio::time::timeout_at(deadline, writer).await.is_err() {
            abort.abort();
            return;
        }
        // Read until the client's own Close (or the deadline): dropping the socket while the
        // client still sends would reset the connection and could destroy the error frame unread.
        let drain = async {
            while let Some(Ok(message)) = stream.next().await {
                if matches!(message, Incoming::Close) {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout_at(deadline, drain).await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_queue_slot_is_as_small_as_a_vec() {
        // tokio's channel allocates 32 slots at once for every connection, idle or not.
        assert_eq!(std::mem::size_of::<super::Outgoing>(), std::mem::size_of::<Vec<u8>>());
    }
}
