//! Group commit of deposits: a few connections per node ("lanes"), each confirming the deposits
//! it carried with one `WAITAOF` per batch.
//!
//! `WAITAOF` waits for the writes made *on its own connection*, and blocks that connection while
//! it waits. So each lane is its own set of connections (one per master), a mailbox is pinned to
//! one lane (its deposits then reach the server in call order), and while a lane waits, the
//! deposits that arrive meanwhile queue up and share the next wait: one fsync on each side covers
//! the whole batch. The library's automatic retries are off on these connections: a deposit
//! retried on a new connection would be confirmed by a `WAITAOF` that does not cover it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use doorless_frames::MailboxId;
use futures_util::future::join_all;
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, SingleNodeRoutingInfo, Slot, SlotAddr};
use redis::{Cmd, Value};
use tokio::sync::{mpsc, oneshot};

use super::{ClusterOptions, Counters, Durability, describe, function_error, keys};
use crate::store::{BoxFuture, Fanout, StoreError};

/// Most deposits sent before one wait.
const MAX_BATCH: usize = 512;

/// One deposit on its way.
pub(super) struct Job {
    cmd: Cmd,
    slot: Slot,
    len: u64,
    mailbox: MailboxId,
    reply: Option<oneshot::Sender<Result<u64, StoreError>>>,
}

impl Job {
    /// The `FCALL doorless_deposit` command and its mailbox's slot; `len` is the payload's length.
    pub(super) fn new(cmd: Cmd, slot: Slot, len: u64) -> Self {
        Self { cmd, slot, len, mailbox: MailboxId([0; 32]), reply: None }
    }
}

/// The lanes of one relay.
pub(super) struct Lanes {
    senders: Mutex<Option<Vec<mpsc::UnboundedSender<Job>>>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Lanes {
    /// Connects `options.pool` lanes and starts their tasks.
    pub(super) async fn start(
        urls: &[String],
        options: &ClusterOptions,
        fanout: Arc<Fanout>,
        counters: Arc<Mutex<Counters>>,
    ) -> redis::RedisResult<Self> {
        let client = ClusterClientBuilder::new(urls.to_vec())
            .use_protocol(redis::ProtocolVersion::RESP3)
            .retries(0)
            .connection_timeout(std::time::Duration::from_secs(2))
            .response_timeout(options.wait_timeout + std::time::Duration::from_secs(5))
            .build()?;
        let mut senders = Vec::new();
        let mut tasks = Vec::new();
        for _ in 0..options.pool.max(1) {
            let conn = client.get_async_connection().await?;
            let (tx, rx) = mpsc::unbounded_channel();
            let lane = Lane {
                conn,
                durability: options.durability,
                wait_timeout: options.wait_timeout,
                fanout: fanout.clone(),
                counters: counters.clone(),
            };
            senders.push(tx);
            tasks.push(tokio::spawn(lane.run(rx)));
        }
        Ok(Self { senders: Mutex::new(Some(senders)), tasks: Mutex::new(tasks) })
    }

    /// Queues `job` on the lane of `mailbox`.
    pub(super) fn submit(
        &self,
        mailbox: MailboxId,
        mut job: Job,
    ) -> BoxFuture<'static, Result<u64, StoreError>> {
        let (reply, answer) = oneshot::channel();
        job.mailbox = mailbox;
        job.reply = Some(reply);
        let queued = match &*self.senders.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(senders) if !senders.is_empty() => {
                // The mailbox ids are hashes already: any of their bytes spreads them evenly.
                let lane = usize::from(mailbox.0[0]) % senders.len();
                senders[lane].send(job).is_ok()
            }
            _ => false,
        };
        Box::pin(async move {
            if !queued {
                return Err(StoreError::Closed);
            }
            answer.await.unwrap_or(Err(StoreError::Closed))
        })
    }

    /// Stops taking deposits; the future ends when the queued ones are answered.
    pub(super) fn close(&self) -> BoxFuture<'static, ()> {
        self.senders.lock().unwrap_or_else(PoisonError::into_inner).take();
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(PoisonError::into_inner));
        Box::pin(async move {
            for task in tasks {
                let _ = task.await;
            }
        })
    }
}

struct Lane {
    conn: ClusterConnection,
    durability: Durability,
    wait_timeout: Duration,
    fanout: Arc<Fanout>,
    counters: Arc<Mutex<Counters>>,
}

impl Lane {
    async fn run(mut self, mut jobs: mpsc::UnboundedReceiver<Job>) {
        while let Some(first) = jobs.recv().await {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            self.commit(batch).await;
        }
    }

    /// Sends the batch's deposits with one pipeline per slot (a pipeline keeps its order, so one
    /// mailbox's deposits reach its master in call order), then, once their replies are in, waits
    /// for the writes to be on disk on both sides; then answers.
    ///
    /// The wait is a second round trip on purpose: a `WAITAOF` that arrives in the same read as
    /// the writes it waits for was measured (Valkey 9.1) to return only after the replica's
    /// once-a-second acknowledgement, about 1 s, instead of a few milliseconds.
    async fn commit(&mut self, mut batch: Vec<Job>) {
        let mut by_slot: HashMap<Slot, Vec<usize>> = HashMap::new();
        for (index, job) in batch.iter().enumerate() {
            by_slot.entry(job.slot).or_default().push(index);
        }
        let written = join_all(by_slot.into_iter().map(|(slot, indices)| {
            let mut pipe = redis::pipe();
            pipe.ignore_errors();
            for &index in &indices {
                pipe.add_command(batch[index].cmd.clone());
            }
            // Which server connection carried the writes: the wait must be on that one.
            pipe.add_command(redis::cmd("CLIENT").arg("ID").clone());
            let mut conn = self.conn.clone();
            async move {
                let route = SingleNodeRoutingInfo::SpecificNode(Route::with_slot(slot, SlotAddr::Master));
                let written =
                    conn.route_pipeline(pipe, 0, indices.len() + 1, route).await.map(|mut values| {
                        let client = values.pop().and_then(|id| redis::from_redis_value::<i64>(id).ok());
                        (values, client)
                    });
                (slot, indices, written)
            }
        }))
        .await;
        // One slot after the other: the first wait on a node does the waiting, and covers every
        // write this connection made there, so the node's other slots are answered at once. Waits
        // side by side would queue on the connection, each one blocking it for its whole step.
        // All of them share one deadline: behind a shard that cannot confirm (its replica is gone),
        // the batch's later slots fail at once instead of each waiting in turn.
        let deadline = tokio::time::Instant::now() + self.wait_timeout;
        let mut replies = Vec::with_capacity(written.len());
        for (slot, indices, written) in written {
            let route = SingleNodeRoutingInfo::SpecificNode(Route::with_slot(slot, SlotAddr::Master));
            let durable = match &written {
                Ok((_, Some(client))) => {
                    wait_durable(&mut self.conn, route, *client, self.durability, deadline).await
                }
                Ok((_, None)) => Err(StoreError::Backend("cluster: no client id after the writes".into())),
                Err(_) => Ok(()),
            };
            replies.push((indices, written.map(|(values, _)| (values, durable))));
        }
        let mut results: Vec<Option<Result<u64, StoreError>>> = batch.iter().map(|_| None).collect();
        for (indices, reply) in replies {
            match reply {
                Err(err) => {
                    for index in indices {
                        results[index] = Some(Err(function_error(&err)));
                    }
                }
                Ok((values, durable)) => {
                    for (index, value) in indices.into_iter().zip(values) {
                        results[index] = Some(match (value.extract_error(), &durable) {
                            (Err(err), _) => Err(function_error(&err)),
                            (Ok(_), Err(StoreError::Backend(why))) => Err(StoreError::Backend(why.clone())),
                            (Ok(_), Err(err)) => Err(StoreError::Backend(err.to_string())),
                            (Ok(id), Ok(())) => parse_id(id),
                        });
                    }
                }
            }
        }
        for (job, result) in batch.iter_mut().zip(results) {
            let result = result.unwrap_or_else(|| Err(StoreError::Backend("cluster: no reply".into())));
            if result.is_ok() {
                let mut counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
                counters.stats.blobs += 1;
                counters.stats.bytes += job.len;
                drop(counters);
                // This relay's own subscribers hear at once; others through the shard channel.
                self.fanout.publish(job.mailbox);
            }
            if let Some(reply) = job.reply.take() {
                // The caller may have gone away; what was stored stays stored.
                let _ = reply.send(result);
            }
        }
    }
}

/// Longest single wait, in ms. A `WAITAOF` makes the master ask its replica for its fsync'd
/// offset once, when it blocks; a replica that had not fsync'd yet answers the next time it is
/// asked, and unasked once a second. Short waits, repeated until the deadline, ask again each time:
/// measured on Valkey 9.1.2, one long wait took about 1 s where repeated short ones took 1-100 ms
/// (the server checks wait timeouts 10 times a second).
const WAIT_STEP_MS: u64 = 10;

/// Waits until the writes made on server connection `client` of `route`'s node are where
/// `durability` wants them, asking again every [`WAIT_STEP_MS`], until `deadline`. Each wait is
/// sent with `CLIENT ID` and counts only on that same connection: if the library reconnected in
/// between, a wait on the new connection would cover nothing and return at once.
async fn wait_durable(
    conn: &mut ClusterConnection,
    route: SingleNodeRoutingInfo,
    client: i64,
    durability: Durability,
    deadline: tokio::time::Instant,
) -> Result<(), StoreError> {
    loop {
        let mut cmd = match durability {
            Durability::AofOnReplica => redis::cmd("WAITAOF"),
            Durability::ReplicaReceived => redis::cmd("WAIT"),
        };
        match durability {
            Durability::AofOnReplica => cmd.arg(1).arg(1).arg(WAIT_STEP_MS),
            Durability::ReplicaReceived => cmd.arg(1).arg(WAIT_STEP_MS),
        };
        let failed =
            |err: redis::RedisError| StoreError::Backend(format!("cluster: wait failed: {}", describe(&err)));
        let mut pipe = redis::pipe();
        pipe.add_command(redis::cmd("CLIENT").arg("ID").clone()).add_command(cmd);
        let mut replies = conn.route_pipeline(pipe, 0, 2, route.clone()).await.map_err(failed)?.into_iter();
        let (Some(id), Some(reply)) = (replies.next(), replies.next()) else {
            return Err(StoreError::Backend("cluster: short wait reply".into()));
        };
        if redis::from_redis_value::<i64>(id).ok() != Some(client) {
            return Err(StoreError::Backend("cluster: connection changed before the wait".into()));
        }
        let reply = reply.extract_error().map_err(failed)?;
        let (local, replicas): (u64, u64) = match durability {
            Durability::AofOnReplica => redis::from_redis_value(reply).unwrap_or((0, 0)),
            Durability::ReplicaReceived => (1, redis::from_redis_value(reply).unwrap_or(0)),
        };
        if local >= 1 && replicas >= 1 {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(StoreError::Backend(if local < 1 {
                "cluster: deposit not on the master's disk in time".into()
            } else {
                "cluster: deposit not confirmed by a replica in time (shard without a live replica?)".into()
            }));
        }
    }
}

/// The sequence number in a deposit's reply (the new entry's id).
fn parse_id(reply: Value) -> Result<u64, StoreError> {
    match reply {
        Value::BulkString(id) => keys::seq_of_id(&id),
        Value::SimpleString(id) => keys::seq_of_id(id.as_bytes()),
        _ => None,
    }
    .ok_or_else(|| StoreError::Backend("cluster: unexpected deposit reply".into()))
}
