//! The cluster store: mailboxes in a Valkey (≥ 8) or Redis (≥ 7.2) cluster, shared by several relays.
//!
//! - `keys`: key names (hash tag = mailbox id in hex) and entry id ↔ sequence number.
//! - `functions.lua`: deposit, ack, expire and fetch as server functions (`FUNCTION LOAD`).
//! - `lanes`: group commit of deposits, each confirmed only after `WAITAOF 1 1` (on disk on the
//!   master and on its replica).
//! - `wake`: sharded pub/sub wake-ups across relays, at most once, backed by re-reads.
//!
//! The format of what is stored is in docs/self-hosting.md ("Cluster store").

mod keys;
mod lanes;
mod wake;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use doorless_frames::MailboxId;
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{
    MultipleNodeRoutingInfo, ResponsePolicy, Route, RoutingInfo, SingleNodeRoutingInfo, Slot, SlotAddr,
};
use redis::{Cmd, Value};

use super::{Blob, BoxFuture, Fanout, Inbox, Quotas, Store, StoreError, StoreStats};
use crate::clock::Clock;
use keys::MailboxKeys;

/// The server functions, loaded by every relay at start.
const FUNCTIONS: &str = include_str!("functions.lua");

/// How a deposit is made durable before it is confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `WAITAOF 1 1`: fsync'd on the master and on one replica (the default, and the only mode
    /// in which no confirmed deposit is lost when a master dies).
    AofOnReplica,
    /// `WAIT 1`: received by one replica, not necessarily on any disk. For servers without
    /// `WAITAOF` (Redis < 7.2); a confirmed deposit can be lost if master and replica fail together.
    ReplicaReceived,
}

/// How the relay reaches the cluster.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Some of the cluster's nodes, `host:port`.
    pub nodes: Vec<String>,
    /// Prefix of every key (several deployments can share one cluster); must not contain `{`.
    pub prefix: String,
    /// Connections per node used for deposits (each mailbox is pinned to one of them).
    pub pool: usize,
    /// Longest wait for a deposit to reach the replica's disk.
    pub wait_timeout: Duration,
    /// What a confirmation waits for.
    pub durability: Durability,
    /// How often every subscribed mailbox is re-read, in case a wake-up was lost.
    pub safety_poll: Duration,
}

impl ClusterOptions {
    /// Options for `nodes` with the defaults.
    pub fn new(nodes: Vec<String>) -> Self {
        Self {
            nodes,
            prefix: "doorless".into(),
            pool: 4,
            wait_timeout: Duration::from_secs(2),
            durability: Durability::AofOnReplica,
            safety_poll: Duration::from_secs(10),
        }
    }
}

/// Why the cluster store could not start. Never carries a mailbox id or payload.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No `--cluster-nodes` were given, or the prefix is unusable.
    #[error("invalid cluster configuration: {0}")]
    Config(&'static str),
    /// The cluster could not be reached.
    #[error("cannot connect to the cluster: {0}")]
    Connect(String),
    /// A master refused `WAITAOF` (a server older than Valkey 8 / Redis 7.2, or `appendonly no`).
    #[error(
        "a cluster master cannot confirm deposits on disk (WAITAOF failed: {0}); use Valkey >= 8 or \
         Redis >= 7.2 with appendonly yes, or start with --cluster-durability replica-received \
         to accept the weaker guarantee"
    )]
    NoWaitAof(String),
    /// `FUNCTION LOAD` failed on a master.
    #[error("cannot load the relay's functions into the cluster: {0}")]
    Functions(String),
}

/// A description of a server error that carries no key, id or payload.
pub(super) fn describe(err: &redis::RedisError) -> String {
    match err.code() {
        Some(code @ ("MOVED" | "ASK" | "TRYAGAIN" | "CLUSTERDOWN")) => {
            format!("server error {code} (the cluster is failing over or resharding; retry)")
        }
        Some(code) => format!("server error {code}"),
        None => format!("{:?}", err.kind()),
    }
}

fn backend(err: &redis::RedisError) -> StoreError {
    StoreError::Backend(format!("cluster: {}", describe(err)))
}

/// Maps the errors the functions raise on purpose; anything else is a backend failure.
fn function_error(err: &redis::RedisError) -> StoreError {
    match err.code() {
        Some("DOORLESS_FULL_COUNT") => StoreError::MailboxFullCount,
        Some("DOORLESS_FULL_BYTES") => StoreError::MailboxFullBytes,
        // `maxmemory` with `noeviction`: the shard's memory is the relay-wide quota.
        Some("OOM") => StoreError::RelayFull,
        _ => backend(err),
    }
}

/// The route to the master of `slot`.
fn master_of(slot: Slot) -> RoutingInfo {
    RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::with_slot(slot, SlotAddr::Master)))
}

/// `FCALL name 2 stream quota` (arguments follow), and the slot of the mailbox.
fn fcall(name: &str, keys: &MailboxKeys) -> (Cmd, Slot) {
    let mut cmd = redis::cmd("FCALL");
    cmd.arg(name).arg(2).arg(&keys.stream).arg(&keys.quota);
    (cmd, Slot::for_key(keys.stream.as_bytes()))
}

/// Runs `cmd` on `route`; an error reply is an `Err` (the library hands some back as values).
pub(super) async fn call(
    conn: &mut ClusterConnection,
    cmd: Cmd,
    route: RoutingInfo,
) -> redis::RedisResult<Value> {
    conn.route_command(cmd, route).await.and_then(Value::extract_error)
}

fn all_masters() -> RoutingInfo {
    RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, Some(ResponsePolicy::AllSucceeded)))
}

/// Changes made through this relay (see [`ClusterStore::stats`]).
#[derive(Default)]
struct Counters {
    stats: StoreStats,
}

/// The cluster-backed store.
pub struct ClusterStore {
    prefix: Arc<str>,
    lanes: lanes::Lanes,
    /// Fetch, ack and expiry (the library's retries on: each is safe to repeat).
    conn: ClusterConnection,
    fanout: Arc<Fanout>,
    wake: wake::Wake,
    clock: Arc<dyn Clock>,
    quotas: Quotas,
    counters: Arc<Mutex<Counters>>,
}

impl ClusterStore {
    /// Connects, checks that the masters can confirm deposits as `options.durability` asks,
    /// loads the functions, and starts the deposit lanes and the wake-up listener.
    pub async fn connect(
        options: ClusterOptions,
        quotas: Quotas,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ClusterError> {
        if options.nodes.is_empty() {
            return Err(ClusterError::Config("--cluster-nodes is empty"));
        }
        if options.prefix.is_empty() || options.prefix.contains(['{', '}']) {
            return Err(ClusterError::Config("--cluster-prefix must be non-empty without braces"));
        }
        let urls: Vec<String> =
            options.nodes.iter().map(|n| format!("redis://{n}/?protocol=resp3")).collect();
        let connect = |err: redis::RedisError| ClusterError::Connect(describe(&err));
        let client = ClusterClientBuilder::new(urls.clone())
            .use_protocol(redis::ProtocolVersion::RESP3)
            .connection_timeout(Duration::from_secs(2))
            .response_timeout(Duration::from_secs(5))
            .build()
            .map_err(connect)?;
        let mut conn = client.get_async_connection().await.map_err(connect)?;

        let mut probe = match options.durability {
            Durability::AofOnReplica => redis::cmd("WAITAOF"),
            Durability::ReplicaReceived => redis::cmd("WAIT"),
        };
        match options.durability {
            Durability::AofOnReplica => probe.arg(1).arg(0).arg(100),
            Durability::ReplicaReceived => probe.arg(0).arg(100),
        };
        call(&mut conn, probe, all_masters()).await.map_err(|err| ClusterError::NoWaitAof(describe(&err)))?;
        let mut load = redis::cmd("FUNCTION");
        load.arg("LOAD").arg("REPLACE").arg(FUNCTIONS);
        call(&mut conn, load, all_masters()).await.map_err(|err| ClusterError::Functions(describe(&err)))?;

        let prefix: Arc<str> = options.prefix.as_str().into();
        let fanout = Arc::new(Fanout::default());
        let counters = Arc::new(Mutex::new(Counters::default()));
        let lanes =
            lanes::Lanes::start(&urls, &options, fanout.clone(), counters.clone()).await.map_err(connect)?;
        let wake = wake::Wake::start(&urls, prefix.clone(), fanout.clone(), options.safety_poll)
            .await
            .map_err(connect)?;
        Ok(Self { prefix, lanes, conn, fanout, wake, clock, quotas, counters })
    }

    fn keys(&self, mailbox: &MailboxId) -> MailboxKeys {
        MailboxKeys::new(&self.prefix, mailbox)
    }

    /// The lowest id that has not expired at `now`.
    fn alive_from(&self, now: u64) -> u64 {
        now.saturating_sub(self.quotas.ttl_ms).saturating_add(1)
    }
}

/// Takes `(count, bytes)` removed blobs off the counters.
fn take_off(stats: &mut StoreStats, (count, bytes): (u64, u64)) {
    stats.blobs = stats.blobs.saturating_sub(count);
    stats.bytes = stats.bytes.saturating_sub(bytes);
}

/// A reply the functions never give.
fn unexpected(_: redis::ParsingError) -> StoreError {
    StoreError::Backend("cluster: unexpected reply".into())
}

impl Store for ClusterStore {
    fn deposit(&self, mailbox: MailboxId, payload: Vec<u8>) -> BoxFuture<'static, Result<u64, StoreError>> {
        let keys = self.keys(&mailbox);
        let (mut cmd, slot) = fcall("doorless_deposit", &keys);
        let len = payload.len() as u64;
        cmd.arg(payload)
            .arg(self.quotas.mailbox_max_count)
            .arg(self.quotas.mailbox_max_bytes)
            .arg(self.clock.now_ms())
            .arg(&keys.channel);
        // Queued now, before the future is returned: deposits keep the order of the calls.
        self.lanes.submit(mailbox, lanes::Job::new(cmd, slot, len))
    }

    fn fetch(
        &self,
        mailbox: MailboxId,
        after: u64,
        max_count: usize,
    ) -> BoxFuture<'static, Result<Vec<Blob>, StoreError>> {
        let first = after.saturating_add(1).max(self.alive_from(self.clock.now_ms()) << 16);
        let (mut cmd, slot) = fcall("doorless_fetch", &self.keys(&mailbox));
        cmd.arg(keys::id_of_seq(first)).arg(max_count);
        let mut conn = self.conn.clone();
        Box::pin(async move {
            if after == u64::MAX || max_count == 0 {
                return Ok(Vec::new());
            }
            let reply = call(&mut conn, cmd, master_of(slot)).await.map_err(|e| backend(&e))?;
            parse_fetch(reply)
        })
    }

    fn ack(&self, mailbox: MailboxId, upto: u64) -> BoxFuture<'static, Result<u64, StoreError>> {
        let (mut cmd, slot) = fcall("doorless_ack", &self.keys(&mailbox));
        cmd.arg(keys::id_of_seq(upto.saturating_add(1))).arg(self.clock.now_ms());
        let mut conn = self.conn.clone();
        let counters = self.counters.clone();
        Box::pin(async move {
            let reply = call(&mut conn, cmd, master_of(slot)).await.map_err(|e| function_error(&e))?;
            let removed: (u64, u64) = redis::from_redis_value(reply).map_err(unexpected)?;
            take_off(&mut counters.lock().unwrap_or_else(PoisonError::into_inner).stats, removed);
            Ok(removed.0)
        })
    }

    fn expire(&self) -> BoxFuture<'static, Result<u64, StoreError>> {
        let now = self.clock.now_ms();
        let alive_from = keys::first_id_of_ms(self.alive_from(now));
        let forget_before = now.saturating_sub(self.quotas.ttl_ms);
        let conn = self.conn.clone();
        let pattern = format!("{}:{{*}}:s", self.prefix);
        let counters = self.counters.clone();
        Box::pin(async move {
            let removed = expire_all(conn, &pattern, &alive_from, forget_before).await?;
            let mut counters = counters.lock().unwrap_or_else(PoisonError::into_inner);
            take_off(&mut counters.stats, removed);
            counters.stats.expired += removed.0;
            Ok(removed.0)
        })
    }

    fn subscribe(&self, mailbox: MailboxId, inbox: &Arc<Inbox>) {
        if self.fanout.subscribe(mailbox, inbox) {
            self.wake.subscribe(mailbox);
        }
    }

    fn unsubscribe(&self, mailbox: MailboxId, inbox: &Arc<Inbox>) {
        if self.fanout.unsubscribe(mailbox, inbox) {
            self.wake.unsubscribe(mailbox);
        }
    }

    /// Changes made through this relay since it started: blobs (and bytes) deposited minus those
    /// acknowledged and expired through it (its expiry passes cover the whole cluster). Exact for
    /// one relay on an empty prefix; across several relays the sum of their figures is the
    /// cluster's total since they all started.
    fn stats(&self) -> StoreStats {
        self.counters.lock().unwrap_or_else(PoisonError::into_inner).stats
    }

    fn close(&self) -> BoxFuture<'static, Result<(), StoreError>> {
        self.wake.stop();
        let lanes = self.lanes.close();
        Box::pin(async move {
            lanes.await;
            Ok(())
        })
    }
}

/// Blobs from `doorless_fetch`'s reply (id1, payload1, id2, payload2, ...).
fn parse_fetch(reply: Value) -> Result<Vec<Blob>, StoreError> {
    let Value::Array(items) = reply else {
        return Err(StoreError::Backend("cluster: unexpected fetch reply".into()));
    };
    let mut blobs = Vec::with_capacity(items.len() / 2);
    for pair in items.chunks_exact(2) {
        let (Value::BulkString(id), Value::BulkString(payload)) = (&pair[0], &pair[1]) else {
            return Err(StoreError::Backend("cluster: unexpected fetch reply".into()));
        };
        // An entry not written by the relay (its id out of the relay's range) is not delivered.
        if let Some(seq) = keys::seq_of_id(id) {
            blobs.push(Blob { seq, payload: payload.clone().into() });
        }
    }
    Ok(blobs)
}

/// The masters' addresses, from `CLUSTER SLOTS`.
async fn masters(conn: &mut ClusterConnection) -> Result<Vec<(String, u16)>, StoreError> {
    let reply = conn
        .route_command(
            redis::cmd("CLUSTER").arg("SLOTS").clone(),
            RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
        )
        .await
        .map_err(|e| backend(&e))?;
    let ranges: Vec<Vec<Value>> = redis::from_redis_value(reply).map_err(unexpected)?;
    let mut out: Vec<(String, u16)> = Vec::new();
    for range in ranges {
        let Some(Value::Array(master)) = range.get(2) else { continue };
        let (Some(host), Some(port)) = (master.first(), master.get(1)) else { continue };
        let host: String = redis::from_redis_value_ref(host).map_err(unexpected)?;
        let port: u16 = redis::from_redis_value_ref(port).map_err(unexpected)?;
        if !out.contains(&(host.clone(), port)) {
            out.push((host, port));
        }
    }
    Ok(out)
}

/// Most keys asked for per `SCAN` step.
const SCAN_COUNT: u32 = 1000;

/// Runs `doorless_expire` on every stream of the prefix, master by master; returns the blobs and
/// bytes removed.
async fn expire_all(
    mut conn: ClusterConnection,
    pattern: &str,
    alive_from: &str,
    forget_before: u64,
) -> Result<(u64, u64), StoreError> {
    let mut removed = (0, 0);
    for (host, port) in masters(&mut conn).await? {
        let node = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host, port });
        let mut cursor = "0".to_owned();
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(&cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT)
                .arg("TYPE")
                .arg("stream");
            let reply = call(&mut conn, scan, node.clone()).await.map_err(|e| backend(&e))?;
            let (next, streams): (String, Vec<String>) =
                redis::from_redis_value(reply).map_err(unexpected)?;
            for stream in streams {
                let Some(base) = stream.strip_suffix(":s") else { continue };
                let quota = format!("{base}:q");
                let route = master_of(Slot::for_key(stream.as_bytes()));
                let mut cmd = redis::cmd("FCALL");
                cmd.arg("doorless_expire").arg(2).arg(&stream).arg(&quota).arg(alive_from).arg(forget_before);
                let reply = call(&mut conn, cmd, route).await.map_err(|e| function_error(&e))?;
                let (count, bytes): (u64, u64) = redis::from_redis_value(reply).map_err(unexpected)?;
                removed.0 += count;
                removed.1 += bytes;
            }
            if next == "0" {
                break;
            }
            cursor = next;
        }
    }
    Ok(removed)
}
