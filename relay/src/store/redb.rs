//! The embedded default store: one redb file in the data directory.
//!
//! Writes go through one writer thread that commits whatever is queued in a single transaction
//! (group commit): every commit is fsync'd (`Durability::Immediate`), and one fsync then covers
//! many concurrent deposits. Reads run in their own read transactions (redb's MVCC: they never wait
//! for the writer), directly in the calling task: a fetch reads at most one delivery batch of a
//! mailbox that was usually just written, so it is served from redb's page cache (or the OS's) in
//! microseconds. Sending each fetch to the blocking pool instead cost two thread switches per
//! delivered message, about half of the relay's CPU time per message under load.
//!
//! Tables:
//! - `blobs`: `mailbox (32) || seq (u64 BE)` -> `expires_ms (u64 BE) || payload`
//! - `expiry`: `expires_ms (u64 BE) || mailbox (32) || seq (u64 BE)` -> `()`, to expire without a scan
//! - `mailboxes`: `mailbox (32)` -> `[next_seq, count, bytes, touched_ms]`

use std::collections::HashMap;
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use doorless_frames::MailboxId;
use redb::{Database, ReadableDatabase, ReadableTable, Table, TableDefinition};
use tokio::sync::oneshot;

use super::{
    Blob, BoxFuture, Fanout, Inbox, MailboxMeta, Quotas, Store, StoreError, StoreStats, check_quotas,
    initial_seq,
};
use crate::clock::Clock;

const BLOBS: TableDefinition<&[u8; 40], &[u8]> = TableDefinition::new("blobs");
const EXPIRY: TableDefinition<&[u8; 48], ()> = TableDefinition::new("expiry");
const MAILBOXES: TableDefinition<&[u8; 32], [u64; 4]> = TableDefinition::new("mailboxes");

/// Page cache of the database file. It must hold the blobs that are stored but not yet acknowledged:
/// the writer's deletes (acks) and inserts read the leaf pages they change, and a 64 KiB blob is a
/// leaf of its own. With 64 MiB, 1 024 blobs of 64 KiB in flight no longer fitted, and the writer
/// spent about half its time re-reading evicted pages from the file (`pread`); see BENCHMARKS.md.
const CACHE_BYTES: usize = 256 * 1024 * 1024;
/// Most operations committed in one transaction.
const MAX_BATCH: usize = 1024;
/// Most blobs one expiry pass removes (the next pass continues).
const MAX_EXPIRE_PER_PASS: usize = 10_000;

fn blob_key(mailbox: &MailboxId, seq: u64) -> [u8; 40] {
    let mut key = [0; 40];
    key[..32].copy_from_slice(&mailbox.0);
    key[32..].copy_from_slice(&seq.to_be_bytes());
    key
}

fn expiry_key(expires_ms: u64, mailbox: &MailboxId, seq: u64) -> [u8; 48] {
    let mut key = [0; 48];
    key[..8].copy_from_slice(&expires_ms.to_be_bytes());
    key[8..40].copy_from_slice(&mailbox.0);
    key[40..].copy_from_slice(&seq.to_be_bytes());
    key
}

fn split_value(value: &[u8]) -> (u64, &[u8]) {
    match value.split_first_chunk::<8>() {
        Some((expires, payload)) => (u64::from_be_bytes(*expires), payload),
        // A value too short to hold its header is treated as already expired and empty.
        None => (0, &[]),
    }
}

fn backend(err: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(err.to_string())
}

enum OpKind {
    Deposit { mailbox: MailboxId, payload: Vec<u8> },
    Ack { mailbox: MailboxId, upto: u64 },
    Expire,
}

struct Op {
    kind: OpKind,
    reply: oneshot::Sender<Result<u64, StoreError>>,
}

/// The redb-backed store.
pub struct RedbStore {
    db: Arc<Database>,
    ops: Mutex<Option<mpsc::Sender<Op>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    fanout: Arc<Fanout>,
    clock: Arc<dyn Clock>,
    stats: Arc<Mutex<StoreStats>>,
}

impl RedbStore {
    /// Opens (or creates) the store file at `path` and starts its writer thread.
    pub fn open(path: &Path, quotas: Quotas, clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        // redb caches up to 1 GiB by default; a bounded cache keeps the memory footprint
        // predictable (see `CACHE_BYTES` for its size).
        let db = Database::builder().set_cache_size(CACHE_BYTES).create(path).map_err(backend)?;
        let txn = db.begin_write().map_err(backend)?;
        {
            txn.open_table(BLOBS).map_err(backend)?;
            txn.open_table(EXPIRY).map_err(backend)?;
            txn.open_table(MAILBOXES).map_err(backend)?;
        }
        txn.commit().map_err(backend)?;

        let mut stats = StoreStats::default();
        {
            let read = db.begin_read().map_err(backend)?;
            let metas = read.open_table(MAILBOXES).map_err(backend)?;
            for entry in metas.iter().map_err(backend)? {
                let (_, value) = entry.map_err(backend)?;
                let meta = MailboxMeta::from_array(value.value());
                stats.blobs += meta.count;
                stats.bytes += meta.bytes;
            }
        }

        let db = Arc::new(db);
        let stats = Arc::new(Mutex::new(stats));
        let fanout = Arc::new(Fanout::default());
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            db: db.clone(),
            fanout: fanout.clone(),
            clock: clock.clone(),
            quotas,
            stats: stats.clone(),
        };
        let handle = std::thread::Builder::new()
            .name("redb-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(backend)?;
        Ok(Self { db, ops: Mutex::new(Some(tx)), writer: Mutex::new(Some(handle)), fanout, clock, stats })
    }

    fn submit(&self, kind: OpKind) -> BoxFuture<'static, Result<u64, StoreError>> {
        let (reply, answer) = oneshot::channel();
        // Queued now, not when the future is first polled: this is what sequences deposits in
        // call order.
        let queued = match &*self.ops.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(ops) => ops.send(Op { kind, reply }).is_ok(),
            None => false,
        };
        Box::pin(async move {
            if !queued {
                return Err(StoreError::Closed);
            }
            answer.await.unwrap_or(Err(StoreError::Closed))
        })
    }
}

impl Store for RedbStore {
    fn deposit(&self, mailbox: MailboxId, payload: Vec<u8>) -> BoxFuture<'static, Result<u64, StoreError>> {
        self.submit(OpKind::Deposit { mailbox, payload })
    }

    fn fetch(
        &self,
        mailbox: MailboxId,
        after: u64,
        max_count: usize,
    ) -> BoxFuture<'static, Result<Vec<Blob>, StoreError>> {
        let result = if after == u64::MAX || max_count == 0 {
            Ok(Vec::new())
        } else {
            read_blobs(&self.db, mailbox, after, max_count, self.clock.now_ms())
        };
        Box::pin(std::future::ready(result))
    }

    fn ack(&self, mailbox: MailboxId, upto: u64) -> BoxFuture<'static, Result<u64, StoreError>> {
        self.submit(OpKind::Ack { mailbox, upto })
    }

    fn expire(&self) -> BoxFuture<'static, Result<u64, StoreError>> {
        self.submit(OpKind::Expire)
    }

    fn subscribe(&self, mailbox: MailboxId, inbox: &Arc<Inbox>) {
        self.fanout.subscribe(mailbox, inbox);
    }

    fn unsubscribe(&self, mailbox: MailboxId, inbox: &Arc<Inbox>) {
        self.fanout.unsubscribe(mailbox, inbox);
    }

    fn stats(&self) -> StoreStats {
        *self.stats.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn close(&self) -> BoxFuture<'static, Result<(), StoreError>> {
        // Dropping the sender lets the writer finish what is queued and stop.
        self.ops.lock().unwrap_or_else(PoisonError::into_inner).take();
        let handle = self.writer.lock().unwrap_or_else(PoisonError::into_inner).take();
        Box::pin(async move {
            if let Some(handle) = handle {
                tokio::task::spawn_blocking(move || handle.join())
                    .await
                    .map_err(backend)?
                    .map_err(|_| StoreError::Backend("writer thread panicked".into()))?;
            }
            Ok(())
        })
    }
}

/// Up to `max_count` unexpired blobs of `mailbox` above `after`, in one read transaction.
fn read_blobs(
    db: &Database,
    mailbox: MailboxId,
    after: u64,
    max_count: usize,
    now: u64,
) -> Result<Vec<Blob>, StoreError> {
    let read = db.begin_read().map_err(backend)?;
    let blobs = read.open_table(BLOBS).map_err(backend)?;
    let lo = blob_key(&mailbox, after + 1);
    let hi = blob_key(&mailbox, u64::MAX);
    let mut out = Vec::new();
    for entry in blobs.range::<&[u8; 40]>(&lo..=&hi).map_err(backend)? {
        let (key, value) = entry.map_err(backend)?;
        let (expires, payload) = split_value(value.value());
        if expires <= now {
            continue;
        }
        let mut seq = [0; 8];
        seq.copy_from_slice(&key.value()[32..]);
        out.push(Blob { seq: u64::from_be_bytes(seq), payload: payload.to_vec().into() });
        if out.len() >= max_count {
            break;
        }
    }
    Ok(out)
}

struct Writer {
    db: Arc<Database>,
    fanout: Arc<Fanout>,
    clock: Arc<dyn Clock>,
    quotas: Quotas,
    stats: Arc<Mutex<StoreStats>>,
}

/// Mailbox records read or changed in the current write transaction, not yet written back.
#[derive(Default)]
struct Metas {
    changed: HashMap<MailboxId, MailboxMeta>,
}

impl Metas {
    fn get(
        &self,
        table: &Table<'_, &'static [u8; 32], [u64; 4]>,
        mailbox: &MailboxId,
    ) -> Result<Option<MailboxMeta>, redb::Error> {
        if let Some(meta) = self.changed.get(mailbox) {
            return Ok(Some(*meta));
        }
        Ok(table.get(&mailbox.0)?.map(|g| MailboxMeta::from_array(g.value())))
    }

    fn set(&mut self, mailbox: MailboxId, meta: MailboxMeta) {
        self.changed.insert(mailbox, meta);
    }

    /// Writes the changed records into `table`.
    fn write(&mut self, table: &mut Table<'_, &'static [u8; 32], [u64; 4]>) -> Result<(), redb::Error> {
        for (mailbox, meta) in self.changed.drain() {
            table.insert(&mailbox.0, meta.to_array())?;
        }
        Ok(())
    }
}

type Tables<'t> = (
    Table<'t, &'static [u8; 40], &'static [u8]>,
    Table<'t, &'static [u8; 48], ()>,
    Table<'t, &'static [u8; 32], [u64; 4]>,
);

impl Writer {
    fn run(self, ops: mpsc::Receiver<Op>) {
        while let Ok(first) = ops.recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match ops.try_recv() {
                    Ok(op) => batch.push(op),
                    Err(_) => break,
                }
            }
            let mut totals = *self.stats.lock().unwrap_or_else(PoisonError::into_inner);
            match self.commit(&batch, &mut totals) {
                Ok(results) => {
                    *self.stats.lock().unwrap_or_else(PoisonError::into_inner) = totals;
                    for (op, result) in batch.into_iter().zip(results) {
                        if let (OpKind::Deposit { mailbox, .. }, Ok(_)) = (&op.kind, &result) {
                            self.fanout.publish(*mailbox);
                        }
                        // The caller may have gone away; the deposit is stored regardless.
                        let _ = op.reply.send(result);
                    }
                }
                Err(err) => {
                    tracing::error!(error = %err, ops = batch.len(), "store commit failed");
                    for op in batch {
                        let _ = op.reply.send(Err(StoreError::Backend("commit failed".into())));
                    }
                }
            }
        }
    }

    /// Applies a batch in one transaction. Quota refusals are per-operation results; a backend
    /// error fails the whole batch and nothing of it is stored.
    fn commit(
        &self,
        batch: &[Op],
        totals: &mut StoreStats,
    ) -> Result<Vec<Result<u64, StoreError>>, redb::Error> {
        let now = self.clock.now_ms();
        let txn = self.db.begin_write()?;
        let mut results = Vec::with_capacity(batch.len());
        {
            let mut tables: Tables<'_> =
                (txn.open_table(BLOBS)?, txn.open_table(EXPIRY)?, txn.open_table(MAILBOXES)?);
            // Mailbox records changed by this batch, written once at its end: a batch often holds
            // many deposits into (and acks of) the same mailbox.
            let mut metas = Metas::default();
            for op in batch {
                let result = match &op.kind {
                    OpKind::Deposit { mailbox, payload } => {
                        self.deposit(&mut tables, &mut metas, mailbox, payload, now, totals)?
                    }
                    OpKind::Ack { mailbox, upto } => {
                        Ok(ack(&mut tables, &mut metas, mailbox, *upto, now, totals)?)
                    }
                    OpKind::Expire => {
                        metas.write(&mut tables.2)?;
                        Ok(self.expire(&mut tables, now, totals)?)
                    }
                };
                results.push(result);
            }
            metas.write(&mut tables.2)?;
        }
        txn.commit()?;
        Ok(results)
    }

    fn deposit(
        &self,
        (blobs, expiry, table): &mut Tables<'_>,
        metas: &mut Metas,
        mailbox: &MailboxId,
        payload: &[u8],
        now: u64,
        totals: &mut StoreStats,
    ) -> Result<Result<u64, StoreError>, redb::Error> {
        let mut meta = match metas.get(table, mailbox)? {
            Some(meta) => meta,
            None => MailboxMeta { next_seq: initial_seq(now), ..MailboxMeta::default() },
        };
        let len = payload.len() as u64;
        if let Err(refused) = check_quotas(&meta, totals.bytes, len, &self.quotas) {
            return Ok(Err(refused));
        }
        let seq = meta.next_seq;
        let expires = now.saturating_add(self.quotas.ttl_ms);
        let mut value = Vec::with_capacity(8 + payload.len());
        value.extend_from_slice(&expires.to_be_bytes());
        value.extend_from_slice(payload);
        blobs.insert(&blob_key(mailbox, seq), value.as_slice())?;
        expiry.insert(&expiry_key(expires, mailbox, seq), ())?;
        meta.next_seq += 1;
        meta.count += 1;
        meta.bytes += len;
        meta.touched_ms = now;
        metas.set(*mailbox, meta);
        totals.blobs += 1;
        totals.bytes += len;
        Ok(Ok(seq))
    }

    fn expire(
        &self,
        (blobs, expiry, metas): &mut Tables<'_>,
        now: u64,
        totals: &mut StoreStats,
    ) -> Result<u64, redb::Error> {
        let hi = {
            let mut key = [0xff; 48];
            key[..8].copy_from_slice(&now.to_be_bytes());
            key
        };
        let mut keys = Vec::new();
        for entry in expiry.range::<&[u8; 48]>(..=&hi)? {
            let (key, _) = entry?;
            keys.push(*key.value());
            if keys.len() >= MAX_EXPIRE_PER_PASS {
                break;
            }
        }
        let mut changed: HashMap<MailboxId, (u64, u64)> = HashMap::new();
        for key in &keys {
            expiry.remove(key)?;
            let mut mailbox = [0; 32];
            mailbox.copy_from_slice(&key[8..40]);
            let mut seq = [0; 8];
            seq.copy_from_slice(&key[40..]);
            let mailbox = MailboxId(mailbox);
            if let Some(value) = blobs.remove(&blob_key(&mailbox, u64::from_be_bytes(seq)))? {
                let len = split_value(value.value()).1.len() as u64;
                let entry = changed.entry(mailbox).or_default();
                entry.0 += 1;
                entry.1 += len;
            }
        }
        let mut removed = 0;
        for (mailbox, (count, bytes)) in changed {
            let meta = metas.get(&mailbox.0)?.map(|g| MailboxMeta::from_array(g.value()));
            if let Some(mut meta) = meta {
                meta.count = meta.count.saturating_sub(count);
                meta.bytes = meta.bytes.saturating_sub(bytes);
                metas.insert(&mailbox.0, meta.to_array())?;
            }
            removed += count;
            totals.blobs = totals.blobs.saturating_sub(count);
            totals.bytes = totals.bytes.saturating_sub(bytes);
        }
        // Forget mailboxes that have been empty and untouched for a TTL.
        let mut forget = Vec::new();
        for entry in metas.iter()? {
            let (key, value) = entry?;
            if MailboxMeta::from_array(value.value()).forgettable(now, self.quotas.ttl_ms) {
                forget.push(*key.value());
            }
        }
        for key in &forget {
            metas.remove(key)?;
        }
        totals.expired += removed;
        Ok(removed)
    }
}

fn ack(
    (blobs, expiry, table): &mut Tables<'_>,
    metas: &mut Metas,
    mailbox: &MailboxId,
    upto: u64,
    now: u64,
    totals: &mut StoreStats,
) -> Result<u64, redb::Error> {
    let lo = blob_key(mailbox, 0);
    let hi = blob_key(mailbox, upto);
    let mut gone = Vec::new();
    for entry in blobs.range::<&[u8; 40]>(&lo..=&hi)? {
        let (key, value) = entry?;
        let (expires, payload) = split_value(value.value());
        gone.push((*key.value(), expires, payload.len() as u64));
    }
    let mut bytes = 0;
    for (key, expires, len) in &gone {
        blobs.remove(key)?;
        let mut seq = [0; 8];
        seq.copy_from_slice(&key[32..]);
        expiry.remove(&expiry_key(*expires, mailbox, u64::from_be_bytes(seq)))?;
        bytes += len;
    }
    let count = gone.len() as u64;
    if let Some(mut meta) = metas.get(table, mailbox)? {
        meta.count = meta.count.saturating_sub(count);
        meta.bytes = meta.bytes.saturating_sub(bytes);
        meta.touched_ms = now;
        metas.set(*mailbox, meta);
    }
    totals.blobs = totals.blobs.saturating_sub(count);
    totals.bytes = totals.bytes.saturating_sub(bytes);
    Ok(count)
}
