//! Load generator for a Doorless relay, or anything speaking its frames (the Node baseline in
//! `bench/node-relay/`). `cargo xtask bench relay` drives it; it can also be run by hand:
//!
//! ```sh
//! relay --listen 127.0.0.1:8080 --store memory --deposit-rate 1e9 --deposit-burst 1e9 &
//! loadgen load --addr 127.0.0.1:8080 --connections 1000 --size 1024 --seconds 5
//! loadgen load --addr 127.0.0.1:8080 --connections 1000 --size 1024 --seconds 5 --rate 50000
//! loadgen idle --addr 127.0.0.1:8080 --connections 10000 --pid $RELAY_PID
//! ```
//!
//! `load`: every connection subscribes to its own mailbox and deposits into its partner's (pairs
//! 0-1, 2-3, …); latency is deposit to delivery, stamped in the payload. Without `--rate` the load is
//! closed-loop: at most `--budget` messages are in the system at once, which measures the maximum
//! rate. With `--rate` it is open-loop at that many messages per second in total, and latency is
//! measured from each message's *scheduled* send time, so a stall is not hidden by sending late.
//! Subscribers acknowledge what they have read whenever their socket has nothing more ready.
//! The pairs are spread over `--threads` threads (default 2), each with its own single-threaded
//! runtime and its own share of the budget, so the generator spends little CPU of its own.
//!
//! `idle`: opens idle connections (Hello, Subscribe, then nothing) and reports the relay's resident
//! memory growth per connection (`VmRSS` of `--pid`), then checks every connection still answers a
//! `Ping`.
//!
//! The last line of output is `result key=value …`, for the bench to parse.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::{Args, Parser, Subcommand};
use doorless_frames::{ErrorCode, Frame, MailboxId, RelayOrigin, subscribe_proof_message};
use ed25519_dalek::{Signer as _, SigningKey};
use futures_util::{FutureExt as _, StreamExt as _};
use relay::websocket::{Incoming, OutFrame, Reader, Role, reader, write_frames};
use tokio::net::TcpSocket;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{Semaphore, watch};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Control, Data, OpCode};

/// The load generator shares the cores with the relay under test: keep its own allocations cheap.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Deposits one connection leaves unconfirmed at most (the relay reads at most 64 ahead).
const WINDOW: u32 = 32;
/// Frames handled in one go before the connection acknowledges and sends again, at most.
const BATCH: usize = 64;

#[derive(Parser)]
#[command(about = "Load generator for a Doorless relay")]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Pairs of subscribed connections depositing into each other's mailbox.
    Load(LoadArgs),
    /// Idle subscribed connections: relay memory per connection, and how many are held.
    Idle(IdleArgs),
}

#[derive(Args, Clone)]
struct Common {
    /// The relay (`host:port`); the WebSocket is at `/ws`.
    #[arg(long)]
    addr: SocketAddr,
    /// How many connections.
    #[arg(long)]
    connections: usize,
    /// Source addresses 127.0.0.1..=127.0.0.N to spread connections over (one address runs out of
    /// ephemeral ports near 28 000 connections).
    #[arg(long, default_value_t = 8)]
    sources: u8,
    /// Opening handshakes in progress at once.
    #[arg(long, default_value_t = 256)]
    parallel: usize,
    /// A second relay (on the same cluster store): the second connection of every pair connects
    /// there, so every message crosses from one relay to the other.
    #[arg(long)]
    peer_addr: Option<SocketAddr>,
}

#[derive(Args)]
struct LoadArgs {
    #[command(flatten)]
    common: Common,
    /// Payload bytes per message (at least 8: the send time is stamped in it).
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Seconds measured.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Seconds of load before measuring starts.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Offered rate in messages per second over all connections (open loop). Without it, closed loop.
    #[arg(long)]
    rate: Option<f64>,
    /// Closed loop: messages in flight (sent, not yet delivered) over all connections.
    #[arg(long, default_value_t = 2048)]
    budget: usize,
    /// Threads, each with its own single-threaded runtime and its share of the connection pairs
    /// (no work stealing or cross-thread wake-ups in the load generator itself).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// The relay's process id: report its CPU time per measured message (and this process's own).
    #[arg(long)]
    pid: Option<u32>,
}

#[derive(Args)]
struct IdleArgs {
    #[command(flatten)]
    common: Common,
    /// The relay's process id, for its resident memory.
    #[arg(long)]
    pid: u32,
}

fn main() -> Result<()> {
    match Cli::parse().mode {
        Mode::Load(args) => load(args),
        Mode::Idle(args) => tokio::runtime::Runtime::new()?.block_on(idle(args)),
    }
}

/// A connection's mailbox key; `run` keeps mailboxes of different runs apart.
fn signing_key(run: u64, index: usize) -> SigningKey {
    let mut secret = [0u8; 32];
    secret[..8].copy_from_slice(&run.to_be_bytes());
    secret[8..16].copy_from_slice(&(index as u64).to_be_bytes());
    SigningKey::from_bytes(&secret)
}

fn mailbox_of(key: &SigningKey) -> MailboxId {
    MailboxId::from_public_key(&key.verifying_key().to_bytes())
}

fn run_id() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// Largest message the load generator reads (the relay's own limit is 256 KiB by default).
const READ_LIMIT: usize = 4 << 20;

/// One connection to the relay, on the same WebSocket layer as the relay's side (`relay::websocket`):
/// the load generator shares the two cores with the relay under test, so it should cost little.
struct Ws {
    incoming: Reader,
    out: OwnedWriteHalf,
    /// Frames queued by [`Ws::queue`], masked, each with its opcode and mask.
    pending: Vec<(OpCode, Vec<u8>, [u8; 4])>,
    /// State of the mask generator (xorshift64, never zero).
    masks: u64,
}

impl Ws {
    /// Queues a frame; [`Ws::flush`] writes what is queued, in one go.
    fn queue(&mut self, opcode: OpCode, mut bytes: Vec<u8>) {
        // A client masks every frame (RFC 6455 section 5.3). The mask has to be unpredictable to
        // script in a browser behind the same proxy (section 10.3); a load generator on loopback has
        // neither, so a cheap generator does.
        self.masks ^= self.masks << 13;
        self.masks ^= self.masks >> 7;
        self.masks ^= self.masks << 17;
        let mask = (self.masks as u32).to_be_bytes();
        fastwebsockets::unmask(&mut bytes, mask);
        self.pending.push((opcode, bytes, mask));
    }

    /// Queues a protocol frame.
    fn queue_frame(&mut self, frame: &Frame) {
        self.queue(OpCode::Data(Data::Binary), frame.encode());
    }

    /// Writes what is queued.
    async fn flush(&mut self) -> Result<()> {
        let frames: Vec<OutFrame<'_>> = self
            .pending
            .iter()
            .map(|(opcode, bytes, mask)| {
                (
                    FrameHeader { opcode: *opcode, mask: Some(*mask), ..FrameHeader::default() },
                    [&bytes[..], &[]],
                )
            })
            .collect();
        write_frames(&mut self.out, &frames).await.context("sending")?;
        self.pending.clear();
        Ok(())
    }

    async fn send(&mut self, frame: &Frame) -> Result<()> {
        self.queue_frame(frame);
        self.flush().await
    }

    /// What a message from the relay is: a frame, or nothing to act on (a ping is answered with the
    /// next flush).
    fn take(&mut self, message: Option<Result<Incoming, ErrorCode>>) -> Result<Option<Frame>> {
        match message {
            Some(Ok(Incoming::Binary(bytes))) => {
                Frame::decode(&bytes).map(Some).map_err(|e| anyhow::anyhow!("bad frame: {e:?}"))
            }
            Some(Ok(Incoming::Ping(payload))) => {
                self.queue(OpCode::Control(Control::Pong), payload.to_vec());
                Ok(None)
            }
            Some(Ok(Incoming::Pong | Incoming::Text)) => Ok(None),
            Some(Ok(Incoming::Close)) | None => bail!("the relay closed the connection"),
            Some(Err(code)) => bail!("unreadable message from the relay: {code:?}"),
        }
    }

    async fn recv(&mut self) -> Result<Frame> {
        loop {
            let message = self.incoming.next().await;
            if let Some(frame) = self.take(message)? {
                return Ok(frame);
            }
            if !self.pending.is_empty() {
                self.flush().await?;
            }
        }
    }
}

/// Connects from source address `127.0.0.(1 + index % sources)`, says Hello and subscribes.
async fn open(common: &Common, key: &SigningKey, index: usize) -> Result<Ws> {
    let source = Ipv4Addr::new(127, 0, 0, 1 + (index % usize::from(common.sources.max(1))) as u8);
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from((source, 0))).context("binding a source address")?;
    let addr = match common.peer_addr {
        Some(peer) if index % 2 == 1 => peer,
        _ => common.addr,
    };
    let stream = socket.connect(addr).await.context("connecting")?;
    stream.set_nodelay(true)?;
    let url = format!("ws://{addr}/ws");
    // tungstenite does the opening handshake; then the socket is ours. The relay sends nothing
    // before Hello, so nothing can be left in tungstenite's buffer.
    let (handshaken, _) = tokio_tungstenite::client_async(url, stream).await.context("upgrading")?;
    let (read, out) = handshaken.into_inner().into_split();
    let masks = (run_id() ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1;
    let mut ws = Ws { incoming: reader(read, READ_LIMIT, Role::Client), out, pending: Vec::new(), masks };
    ws.send(&Frame::Hello).await?;
    let Frame::Challenge { challenge, .. } = ws.recv().await? else { bail!("expected Challenge") };
    // Proofs are bound to the origin the relay is reached at: on loopback, `http://ADDR`.
    let origin = RelayOrigin::parse(&format!("http://{addr}")).context("the relay's origin")?;
    let public_key = key.verifying_key().to_bytes();
    let signature = key.sign(&subscribe_proof_message(&origin, &challenge, &public_key)).to_bytes();
    ws.send(&Frame::Subscribe { request: 0, public_key, signature }).await?;
    match ws.recv().await? {
        Frame::Subscribed { .. } => Ok(ws),
        other => bail!("expected Subscribed, got {:?}", other.kind()),
    }
}

/// Opens `keys.len()` connections, `parallel` handshakes at a time, in order.
async fn open_all(common: &Common, keys: &[SigningKey]) -> Vec<Result<Ws>> {
    open_some(common, keys.iter().enumerate(), common.parallel).await
}

/// Opens a connection for every `(index, key)`, `parallel` handshakes at a time, in order.
async fn open_some<'k>(
    common: &Common,
    keys: impl Iterator<Item = (usize, &'k SigningKey)>,
    parallel: usize,
) -> Vec<Result<Ws>> {
    futures_util::stream::iter(keys)
        .map(|(index, key)| open(common, key, index))
        .buffered(parallel.max(1))
        .collect()
        .await
}

/// CPU time (user + system, all threads) a process has used so far, in seconds, from
/// `/proc/PID/stat` (clock ticks of 1/100 s, Linux's `USER_HZ`).
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) in parentheses: state is the first,
    // utime the 12th and stime the 13th.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

fn rss_kib(pid: u32) -> Result<u64> {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).context("reading /proc/PID/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS")
}

/// Percentile `q` of sorted samples (nearest rank).
fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// What every load task shares.
struct Run {
    start: Instant,
    /// Deliveries received from here on are measured ...
    measure_from: Instant,
    /// ... up to here, where sending stops.
    send_until: Instant,
    /// Closed loop: one permit per message allowed into the system.
    budget: Option<Arc<Semaphore>>,
    sent: AtomicU64,
    delivered: AtomicU64,
    /// Deposits the relay refused (no delivery follows).
    refused: AtomicU64,
}

impl Run {
    fn stamp(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.start).as_nanos() as u64
    }
}

/// When one connection sends.
enum Plan {
    /// Whenever the budget allows.
    Closed,
    /// On a fixed schedule.
    Open { next: Instant, every: Duration },
}

/// Per-connection results: latencies (ns) of measured deliveries.
async fn pair_task(
    mut ws: Ws,
    partner: MailboxId,
    size: usize,
    window: u32,
    mut plan: Plan,
    run: Arc<Run>,
    mut stop: watch::Receiver<bool>,
) -> Result<Vec<u64>> {
    let mut latencies = Vec::new();
    let mut payload = vec![0u8; size.max(8)];
    // Request 0 is what the relay uses in errors about the connection itself.
    let (mut request, mut unconfirmed, mut permits) = (1u32, 0u32, 0usize);
    let mut ack: Option<(MailboxId, u64)> = None;
    let mut acquire = run.budget.clone().map(|s| Box::pin(s.acquire_owned()));
    // One timer and one stop signal for the whole run, not one per turn of the loop.
    let wake = tokio::time::sleep_until(run.send_until.into());
    tokio::pin!(wake);
    let stopped = stop.changed();
    tokio::pin!(stopped);
    loop {
        let sending = Instant::now() < run.send_until;
        while sending && unconfirmed < window {
            let stamp = match &mut plan {
                Plan::Closed => {
                    if permits == 0 {
                        match run.budget.as_ref().map(|s| s.clone().try_acquire_owned()) {
                            Some(Ok(permit)) => permit.forget(),
                            _ => break,
                        }
                        permits = 1;
                    }
                    permits -= 1;
                    run.stamp(Instant::now())
                }
                Plan::Open { next, every } => {
                    if Instant::now() < *next {
                        break;
                    }
                    let at = *next;
                    *next += *every;
                    run.stamp(at)
                }
            };
            payload[..8].copy_from_slice(&stamp.to_be_bytes());
            let frame = Frame::Deposit { request, mailbox: partner, payload: std::mem::take(&mut payload) };
            ws.queue_frame(&frame);
            if let Frame::Deposit { payload: reuse, .. } = frame {
                payload = reuse;
            }
            request = request.checked_add(1).unwrap_or(1);
            unconfirmed += 1;
            run.sent.fetch_add(1, Relaxed);
        }
        if let Some((mailbox, seq)) = ack.take() {
            ws.queue_frame(&Frame::Ack { mailbox, seq });
        }
        // Deposits, the ack and any pong queued above go out in one write.
        if !ws.pending.is_empty() {
            ws.flush().await?;
        }

        let want_permit = sending && matches!(plan, Plan::Closed) && permits == 0 && unconfirmed < window;
        let next_send = match &plan {
            Plan::Open { next, .. } if unconfirmed < window => *next,
            _ => run.send_until,
        };
        if sending && wake.deadline() != next_send.into() {
            wake.as_mut().reset(next_send.into());
        }
        let mut incoming = Vec::new();
        tokio::select! {
            biased;
            _ = &mut stopped => return Ok(latencies),
            message = ws.incoming.next() => {
                incoming.push(message);
                // Take what is already there too, then acknowledge once for the lot.
                while incoming.len() < BATCH {
                    match ws.incoming.next().now_or_never() {
                        Some(message) => incoming.push(message),
                        None => break,
                    }
                }
            }
            permit = async { acquire.as_mut().expect("closed loop has a budget").await }, if want_permit => {
                permit.context("budget closed")?.forget();
                permits += 1;
                acquire = run.budget.clone().map(|s| Box::pin(s.acquire_owned()));
            }
            () = &mut wake, if sending => {}
        }
        for message in incoming {
            let Some(frame) = ws.take(message)? else { continue };
            match frame {
                Frame::Deposited { .. } => unconfirmed = unconfirmed.saturating_sub(1),
                Frame::Deliver { mailbox, seq, payload } => {
                    let now = Instant::now();
                    let sent = u64::from_be_bytes(payload[..8].try_into().context("short payload")?);
                    if now >= run.measure_from && now <= run.send_until {
                        latencies.push(run.stamp(now).saturating_sub(sent));
                    }
                    run.delivered.fetch_add(1, Relaxed);
                    if let Some(budget) = &run.budget {
                        budget.add_permits(1);
                    }
                    ack = Some((mailbox, seq));
                }
                Frame::Error { request: 0, code } => bail!("connection error from the relay: {code:?}"),
                Frame::Error { .. } => {
                    unconfirmed = unconfirmed.saturating_sub(1);
                    run.refused.fetch_add(1, Relaxed);
                    if let Some(budget) = &run.budget {
                        budget.add_permits(1);
                    }
                }
                _ => {}
            }
        }
    }
}

/// When a run starts, is measured and stops sending (the same for every thread).
#[derive(Clone, Copy)]
struct Times {
    start: Instant,
    measure_from: Instant,
    send_until: Instant,
}

/// What one load thread reports: latencies, failed connections and the first failure.
type ThreadResult = (Vec<u64>, usize, Option<anyhow::Error>);

fn load(args: LoadArgs) -> Result<()> {
    let n = args.common.connections & !1;
    if n < 2 {
        bail!("need at least two connections");
    }
    let threads = args.threads.clamp(1, n / 2);
    let run_id = run_id();
    let keys: Arc<Vec<SigningKey>> = Arc::new((0..n).map(|i| signing_key(run_id, i)).collect());
    // Closed loop: the budget shared evenly, so every connection takes part.
    let window = match args.rate {
        None => args.budget.div_ceil(n).clamp(1, WINDOW as usize) as u32,
        Some(_) => WINDOW,
    };
    let (stop_tx, stop) = watch::channel(false);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<()>>();
    let mut go = Vec::with_capacity(threads);
    let mut handles = Vec::with_capacity(threads);
    let opened = Instant::now();
    for thread in 0..threads {
        // Pairs (2k, 2k+1) with k % threads == thread: both ends of a pair live in one thread.
        let mine: Vec<usize> = (0..n).filter(|i| (i / 2) % threads == thread).collect();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<(Times, Arc<Run>)>();
        go.push(go_tx);
        let (keys, common, ready_tx, stop) =
            (keys.clone(), args.common.clone(), ready_tx.clone(), stop.clone());
        let (size, rate) = (args.size, args.rate);
        let handle = std::thread::Builder::new().name(format!("load-{thread}")).spawn(
            move || -> Result<ThreadResult> {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                let parallel = common.parallel.div_ceil(threads);
                let opened = rt.block_on(open_some(&common, mine.iter().map(|&i| (i, &keys[i])), parallel));
                let sockets: Result<Vec<Ws>> = opened.into_iter().collect();
                let sockets = match sockets {
                    Ok(sockets) => {
                        let _ = ready_tx.send(Ok(()));
                        sockets
                    }
                    Err(err) => {
                        let _ = ready_tx.send(Err(err));
                        return Ok((Vec::new(), 0, None));
                    }
                };
                let Ok((times, run)) = go_rx.recv() else { return Ok((Vec::new(), 0, None)) };
                rt.block_on(async move {
                    let mut tasks = Vec::with_capacity(sockets.len());
                    for (ws, &i) in sockets.into_iter().zip(&mine) {
                        let plan = match rate {
                            None => Plan::Closed,
                            Some(rate) => {
                                // Spread the connections' schedules evenly over one period.
                                let every = Duration::from_secs_f64(n as f64 / rate);
                                Plan::Open { next: times.start + every.mul_f64(i as f64 / n as f64), every }
                            }
                        };
                        let partner = mailbox_of(&keys[i ^ 1]);
                        tasks.push(tokio::spawn(pair_task(
                            ws,
                            partner,
                            size,
                            window,
                            plan,
                            run.clone(),
                            stop.clone(),
                        )));
                    }
                    let mut all = Vec::new();
                    let (mut failures, mut first_failure) = (0, None);
                    for task in tasks {
                        match task.await.context("load task panicked")? {
                            Ok(latencies) => all.extend(latencies),
                            Err(err) => {
                                failures += 1;
                                first_failure.get_or_insert(err);
                            }
                        }
                    }
                    Ok((all, failures, first_failure))
                })
            },
        )?;
        handles.push(handle);
    }
    drop(ready_tx);
    for _ in 0..threads {
        ready_rx.recv().context("a load thread ended early")??;
    }
    let setup = opened.elapsed();

    let start = Instant::now() + Duration::from_millis(100);
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let times =
        Times { start, measure_from, send_until: measure_from + Duration::from_secs_f64(args.seconds) };
    let mut runs = Vec::with_capacity(threads);
    for (thread, go) in go.iter().enumerate() {
        // Each thread's share of the budget, so the closed loop needs no lock shared across threads.
        let share = (args.budget * (thread + 1) / threads - args.budget * thread / threads).max(1);
        let run = Arc::new(Run {
            start: times.start,
            measure_from: times.measure_from,
            send_until: times.send_until,
            budget: args.rate.is_none().then(|| Arc::new(Semaphore::new(share))),
            sent: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        });
        runs.push(run.clone());
        go.send((times, run)).context("a load thread ended early")?;
    }
    let total = |get: fn(&Run) -> &AtomicU64| runs.iter().map(|r| get(r).load(Relaxed)).sum::<u64>();

    // After sending stops, wait for what is still in flight (bounded), then stop everyone.
    // CPU time of the relay and of this process over the measured window only (no set-up, no drain).
    let relay_pid = args.pid.map(|pid| pid.to_string());
    let cpu_now = || (relay_pid.as_deref().and_then(cpu_seconds), cpu_seconds("self"));
    std::thread::sleep(times.measure_from.saturating_duration_since(Instant::now()));
    let cpu_before = cpu_now();
    std::thread::sleep(times.send_until.saturating_duration_since(Instant::now()));
    let cpu_after = cpu_now();
    let drain_deadline = Instant::now() + Duration::from_secs(10);
    while total(|r| &r.delivered) + total(|r| &r.refused) < total(|r| &r.sent)
        && Instant::now() < drain_deadline
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = stop_tx.send(true);
    let mut all = Vec::new();
    let mut failures = 0;
    let mut first_failure = None;
    for handle in handles {
        let (latencies, failed, first) =
            handle.join().map_err(|_| anyhow::anyhow!("a load thread panicked"))??;
        all.extend(latencies);
        failures += failed;
        if let Some(err) = first {
            first_failure.get_or_insert(err);
        }
    }
    if let Some(err) = first_failure {
        eprintln!("{failures} connections failed; the first: {err:#}");
    }
    all.sort_unstable();
    let (sent, delivered, refused) = (total(|r| &r.sent), total(|r| &r.delivered), total(|r| &r.refused));
    let us = |ns: u64| ns as f64 / 1e3;
    let per_message = |before: Option<f64>, after: Option<f64>| match (before, after) {
        (Some(before), Some(after)) if !all.is_empty() => {
            format!("{:.2}", (after - before) * 1e6 / all.len() as f64)
        }
        _ => "nan".to_owned(),
    };
    let relay_cpu = per_message(cpu_before.0, cpu_after.0);
    let loadgen_cpu = per_message(cpu_before.1, cpu_after.1);
    println!(
        "result mode=load connections={n} size={} rate={} threads={threads} setup_s={:.2} measured={} \
         msgs_per_s={:.0} p50_us={:.0} p99_us={:.0} p999_us={:.0} max_us={:.0} sent={sent} \
         delivered={delivered} refused={refused} lost={} failed_connections={failures} \
         relay_cpu_us_per_msg={relay_cpu} loadgen_cpu_us_per_msg={loadgen_cpu}",
        args.size,
        args.rate.map_or("max".to_owned(), |r| format!("{r:.0}")),
        setup.as_secs_f64(),
        all.len(),
        all.len() as f64 / args.seconds,
        us(percentile(&all, 0.50)),
        us(percentile(&all, 0.99)),
        us(percentile(&all, 0.999)),
        us(all.last().copied().unwrap_or(0)),
        sent.saturating_sub(delivered + refused),
    );
    Ok(())
}

async fn idle(args: IdleArgs) -> Result<()> {
    let run_id = run_id();
    // A few connections first, so one-off allocations of the relay are not counted per connection.
    let warm_keys: Vec<SigningKey> = (0..64).map(|i| signing_key(run_id, usize::MAX - i)).collect();
    let warm = open_all(&args.common, &warm_keys).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib(args.pid)?;

    let keys: Vec<SigningKey> = (0..args.common.connections).map(|i| signing_key(run_id, i)).collect();
    let opened_at = Instant::now();
    let results = open_all(&args.common, &keys).await;
    let open_s = opened_at.elapsed().as_secs_f64();
    let mut held = Vec::with_capacity(results.len());
    let mut first_failure = None;
    for result in results {
        match result {
            Ok(ws) => held.push(ws),
            Err(err) => {
                first_failure.get_or_insert(err);
            }
        }
    }
    let opened = held.len();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_kib(args.pid)?;
    if let Some(err) = first_failure {
        eprintln!("{} connections failed to open; the first: {err:#}", keys.len() - opened);
    }

    // Every connection must still be served: a Ping on each, a Pong back.
    let answered = futures_util::stream::iter(held.iter_mut().enumerate())
        .map(|(i, ws)| async move {
            let nonce = i as u64;
            let exchange = async {
                ws.send(&Frame::Ping { nonce }).await?;
                loop {
                    if let Frame::Pong { nonce: got } = ws.recv().await? {
                        return anyhow::Ok(got == nonce);
                    }
                }
            };
            matches!(timeout(Duration::from_secs(30), exchange).await, Ok(Ok(true)))
        })
        .buffer_unordered(args.common.parallel.max(1) * 4)
        .filter(|ok| std::future::ready(*ok))
        .count()
        .await;
    println!(
        "result mode=idle connections={} opened={opened} held={answered} open_s={open_s:.1} \
         rss_before_kib={before} rss_after_kib={after} per_connection_kib={:.2}",
        keys.len(),
        after.saturating_sub(before) as f64 / opened.max(1) as f64,
    );
    drop(warm);
    Ok(())
}
