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
//! - `payloads`: `global (u64)` -> `payload`. `global` is one number for the whole store, increasing
//!   with every deposit, so deposits append to the rightmost leaf pages, and acks (which come in
//!   roughly the order of the deposits) empty pages on the left.
//! - `index`: `mailbox (32) || seq (u64 BE)` -> `[global, expires_ms, payload length]`: each
//!   mailbox's blobs in sequence order. The entries are small, so a page holds many of them.
//! - `expiries`: `expires_ms << 64 | global (u128)` -> `mailbox || seq`, to expire without a scan.
//!   Also appended to while the TTL stays the same; after a TTL change each blob keeps its own time.
//! - `mailboxes`: `mailbox (32)` -> `[next_seq, count, bytes, touched_ms]`
//!
//! Why this layout: redb copies every page a transaction changes. The first layout kept each
//! payload in `blobs` under `mailbox || seq` (-> `expires_ms || payload`, with `expiry` keyed
//! `expires_ms || mailbox || seq`), so a group commit of deposits and acks for 1 000 mailboxes
//! rewrote leaves full of 1 KiB payloads all over the table. The acknowledged payloads and their
//! `expiries` entries are removed at the end of each transaction, sorted, one `retain_in` pass per
//! run of nearby keys: a `remove` per payload was the writer's largest cost after the commit itself.
//!
//! Measured with `loadgen load --connections 1000 --size 1024 --seconds 3 --warmup 1 --budget 16000`
//! (2 shared cores; medians of interleaved runs; disk writes from `/proc/<pid>/io`), first layout
//! -> this one: closed loop 64 k -> 85 k msgs/s, relay CPU 16.3 -> 13.3 µs and disk writes 3.0 ->
//! 2.2 KB per message; asked for 30 k msgs/s, the first layout managed 19 k (p99 1.3 s), this one
//! keeps up (p99 0.12 s, 2.9 KB per message). Below saturation the layout changes little: at 10 k
//! msgs/s both write about 14 KB per message, because the writer then commits about 1 600 times a
//! second, a few messages and about 85 KB each: the cost is per commit there, not per blob. A file
//! in the first layout is converted on open (`migrate`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use doorless_frames::MailboxId;
use redb::{
    Database, ReadableDatabase, ReadableTable, Table, TableDefinition, TableHandle, WriteTransaction,
};
use tokio::sync::oneshot;

use super::{
    Blob, BoxFuture, Fanout, Inbox, MailboxMeta, Quotas, Store, StoreError, StoreStats, check_quotas,
    initial_seq,
};
use crate::clock::Clock;

const PAYLOADS: TableDefinition<u64, &[u8]> = TableDefinition::new("payloads");
const INDEX: TableDefinition<&[u8; 40], [u64; 3]> = TableDefinition::new("index");
const EXPIRIES: TableDefinition<u128, &[u8; 40]> = TableDefinition::new("expiries");
const MAILBOXES: TableDefinition<&[u8; 32], [u64; 4]> = TableDefinition::new("mailboxes");

/// The blobs of the first layout, migrated by `migrate` on open: `mailbox || seq` ->
/// `expires_ms (u64 BE) || payload`.
const OLD_BLOBS: TableDefinition<&[u8; 40], &[u8]> = TableDefinition::new("blobs");
/// The expiry index of the first layout: `expires_ms || mailbox || seq` -> `()`.
const OLD_EXPIRY: TableDefinition<&[u8; 48], ()> = TableDefinition::new("expiry");

/// Page cache of the database file. It must hold the blobs that are stored but not yet acknowledged:
/// the writer's deletes (acks) and inserts read the leaf pages they change, and a 64 KiB blob is a
/// leaf of its own. With 64 MiB, 1 024 blobs of 64 KiB in flight no longer fitted, and the writer
/// spent about half its time re-reading evicted pages from the file (`pread`); see BENCHMARKS.md.
const CACHE_BYTES: usize = 256 * 1024 * 1024;
/// Most operations committed in one transaction.
const MAX_BATCH: usize = 1024;
/// Most blobs one expiry pass removes (the next pass continues).
const MAX_EXPIRE_PER_PASS: usize = 10_000;

/// Key of a blob in `index` (and of the first layout's `blobs`): `mailbox || seq (u64 BE)`.
fn index_key(mailbox: &MailboxId, seq: u64) -> [u8; 40] {
    let mut key = [0; 40];
    key[..32].copy_from_slice(&mailbox.0);
    key[32..].copy_from_slice(&seq.to_be_bytes());
    key
}

/// The mailbox and the per-mailbox sequence number of an `index` key.
fn split_index_key(key: &[u8; 40]) -> (MailboxId, u64) {
    let mut mailbox = [0; 32];
    mailbox.copy_from_slice(&key[..32]);
    let mut seq = [0; 8];
    seq.copy_from_slice(&key[32..]);
    (MailboxId(mailbox), u64::from_be_bytes(seq))
}

/// Key of a blob in `expiries`: expiry time first, then the global number (unique).
fn expiry_key(expires_ms: u64, global: u64) -> u128 {
    (u128::from(expires_ms) << 64) | u128::from(global)
}

/// Splits a value of the first layout's `blobs` table into its expiry time and payload.
fn split_old_value(value: &[u8]) -> (u64, &[u8]) {
    match value.split_first_chunk::<8>() {
        Some((expires, payload)) => (u64::from_be_bytes(*expires), payload),
        // A value too short to hold its header is treated as already expired and empty (as the
        // first layout's reads did).
        None => (0, &[]),
    }
}

fn backend(err: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(err.to_string())
}

/// The global number the next payload gets: one above the highest stored (0 when none is).
///
/// Only `payloads` holds global numbers that are still referenced (`index` and `expiries` entries
/// are removed in the same transaction as their payload), so numbers above the last payload are free.
fn next_global(payloads: &impl ReadableTable<u64, &'static [u8]>) -> Result<u64, redb::Error> {
    Ok(payloads.last()?.map_or(0, |(key, _)| key.value().saturating_add(1)))
}

/// Moves the blobs of the first layout (`blobs`, `expiry`) into `payloads`, `index` and `expiries`,
/// keeping each blob's sequence number and expiry time, then deletes the old tables. `mailboxes` is
/// the same in both layouts. Runs in the opening transaction: a crash part-way leaves the old
/// layout as it was, and the next open starts again. The old pages are freed only by that commit,
/// so the file grows by about the size of the stored blobs (the space is reused afterwards, not
/// returned): 200 000 blobs of 1 KiB took 2.5 s and the file went from 0.57 to 1.14 GB.
fn migrate(txn: &WriteTransaction) -> Result<u64, redb::Error> {
    if !txn.list_tables()?.any(|table| table.name() == OLD_BLOBS.name()) {
        return Ok(0);
    }
    let mut moved = 0;
    {
        let old = txn.open_table(OLD_BLOBS)?;
        let mut payloads = txn.open_table(PAYLOADS)?;
        let mut index = txn.open_table(INDEX)?;
        let mut expiries = txn.open_table(EXPIRIES)?;
        for (global, entry) in (next_global(&payloads)?..).zip(old.iter()?) {
            let (key, value) = entry?;
            let key = *key.value();
            let (expires, payload) = split_old_value(value.value());
            payloads.insert(global, payload)?;
            index.insert(&key, [global, expires, payload.len() as u64])?;
            expiries.insert(expiry_key(expires, global), &key)?;
            moved += 1;
        }
    }
    txn.delete_table(OLD_BLOBS)?;
    txn.delete_table(OLD_EXPIRY)?;
    Ok(moved)
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
        let migrated = migrate(&txn).map_err(backend)?;
        let global = {
            let payloads = txn.open_table(PAYLOADS).map_err(backend)?;
            txn.open_table(INDEX).map_err(backend)?;
            txn.open_table(EXPIRIES).map_err(backend)?;
            txn.open_table(MAILBOXES).map_err(backend)?;
            next_global(&payloads).map_err(backend)?
        };
        txn.commit().map_err(backend)?;
        if migrated > 0 {
            tracing::info!(blobs = migrated, "store file migrated to the appended layout");
        }

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
            next_global: global,
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
///
/// An `index` entry whose payload is missing (only a damaged file has one) is skipped: there is
/// nothing to deliver, and an error would block the mailbox for good. An ack removes the entry.
fn read_blobs(
    db: &Database,
    mailbox: MailboxId,
    after: u64,
    max_count: usize,
    now: u64,
) -> Result<Vec<Blob>, StoreError> {
    let read = db.begin_read().map_err(backend)?;
    let index = read.open_table(INDEX).map_err(backend)?;
    let payloads = read.open_table(PAYLOADS).map_err(backend)?;
    let lo = index_key(&mailbox, after + 1);
    let hi = index_key(&mailbox, u64::MAX);
    let mut out = Vec::new();
    for entry in index.range::<&[u8; 40]>(&lo..=&hi).map_err(backend)? {
        let (key, value) = entry.map_err(backend)?;
        let [global, expires, _] = value.value();
        if expires <= now {
            continue;
        }
        let Some(payload) = payloads.get(global).map_err(backend)? else {
            continue;
        };
        let (_, seq) = split_index_key(key.value());
        out.push(Blob { seq, payload: payload.value().to_vec().into() });
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
    /// The global number the next payload gets (advanced only by committed transactions).
    next_global: u64,
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

/// The tables of one write transaction, and the global number its next deposit gets.
struct Tables<'t> {
    payloads: Table<'t, u64, &'static [u8]>,
    index: Table<'t, &'static [u8; 40], [u64; 3]>,
    expiries: Table<'t, u128, &'static [u8; 40]>,
    mailboxes: Table<'t, &'static [u8; 32], [u64; 4]>,
    next_global: u64,
    /// `(global, expires_ms)` of the blobs acknowledged in this transaction whose payload and
    /// `expiries` entry are still to be removed: removing them together, in key order, costs much
    /// less than a remove each (a payload remove was the writer's largest cost after the commit).
    gone: Vec<(u64, u64)>,
}

impl<'t> Tables<'t> {
    fn open(txn: &'t WriteTransaction, next_global: u64) -> Result<Self, redb::Error> {
        Ok(Self {
            payloads: txn.open_table(PAYLOADS)?,
            index: txn.open_table(INDEX)?,
            expiries: txn.open_table(EXPIRIES)?,
            mailboxes: txn.open_table(MAILBOXES)?,
            next_global,
            gone: Vec::new(),
        })
    }

    /// Removes the payloads and `expiries` entries of the blobs acknowledged so far in this
    /// transaction (see [`Tables::gone`]), one pass over each run of nearby keys.
    fn remove_gone(&mut self) -> Result<(), redb::Error> {
        let mut globals: Vec<u64> = self.gone.iter().map(|&(global, _)| global).collect();
        globals.sort_unstable();
        for run in runs(&globals) {
            let (first, last) = (run[0], run[run.len() - 1]);
            self.payloads.retain_in(first..=last, |global, _| run.binary_search(&global).is_err())?;
        }
        let mut expiries: Vec<u128> = self.gone.drain(..).map(|(g, e)| expiry_key(e, g)).collect();
        expiries.sort_unstable();
        for run in runs(&expiries) {
            let (first, last) = (run[0], run[run.len() - 1]);
            self.expiries.retain_in(first..=last, |key, _| run.binary_search(&key).is_err())?;
        }
        Ok(())
    }
}

/// Most keys between two neighbours of one run of [`runs`]: a pass over a run also reads the
/// entries between the ones it removes.
const MAX_RUN_GAP: u128 = 64;

/// `sorted` cut into runs whose neighbours are at most [`MAX_RUN_GAP`] apart.
fn runs<T: Copy + Into<u128>>(sorted: &[T]) -> impl Iterator<Item = &[T]> {
    sorted.chunk_by(|a, b| (*b).into() - (*a).into() <= MAX_RUN_GAP)
}

impl Writer {
    fn run(mut self, ops: mpsc::Receiver<Op>) {
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
                Ok((results, next_global)) => {
                    self.next_global = next_global;
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

    /// Applies a batch in one transaction; returns the results and the next global number. Quota
    /// refusals are per-operation results; a backend error fails the whole batch and nothing of it
    /// is stored.
    fn commit(
        &self,
        batch: &[Op],
        totals: &mut StoreStats,
    ) -> Result<(Vec<Result<u64, StoreError>>, u64), redb::Error> {
        let now = self.clock.now_ms();
        let txn = self.db.begin_write()?;
        let mut results = Vec::with_capacity(batch.len());
        let next_global = {
            let mut tables = Tables::open(&txn, self.next_global)?;
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
                        metas.write(&mut tables.mailboxes)?;
                        tables.remove_gone()?;
                        Ok(self.expire(&mut tables, now, totals)?)
                    }
                };
                results.push(result);
            }
            metas.write(&mut tables.mailboxes)?;
            tables.remove_gone()?;
            tables.next_global
        };
        txn.commit()?;
        Ok((results, next_global))
    }

    fn deposit(
        &self,
        tables: &mut Tables<'_>,
        metas: &mut Metas,
        mailbox: &MailboxId,
        payload: &[u8],
        now: u64,
        totals: &mut StoreStats,
    ) -> Result<Result<u64, StoreError>, redb::Error> {
        let mut meta = match metas.get(&tables.mailboxes, mailbox)? {
            Some(meta) => meta,
            None => MailboxMeta { next_seq: initial_seq(now), ..MailboxMeta::default() },
        };
        let len = payload.len() as u64;
        if let Err(refused) = check_quotas(&meta, totals.bytes, len, &self.quotas) {
            return Ok(Err(refused));
        }
        let seq = meta.next_seq;
        let expires = now.saturating_add(self.quotas.ttl_ms);
        let global = tables.next_global;
        let key = index_key(mailbox, seq);
        tables.payloads.insert(global, payload)?;
        tables.index.insert(&key, [global, expires, len])?;
        tables.expiries.insert(expiry_key(expires, global), &key)?;
        tables.next_global += 1;
        meta.next_seq += 1;
        meta.count += 1;
        meta.bytes += len;
        meta.touched_ms = now;
        metas.set(*mailbox, meta);
        totals.blobs += 1;
        totals.bytes += len;
        Ok(Ok(seq))
    }

    /// Removes up to [`MAX_EXPIRE_PER_PASS`] expired blobs, then forgets the mailboxes that have
    /// been empty and untouched for a TTL. An `expiries` entry without its `index` entry (only a
    /// damaged file has one) is just removed.
    fn expire(&self, tables: &mut Tables<'_>, now: u64, totals: &mut StoreStats) -> Result<u64, redb::Error> {
        let mut due = Vec::new();
        for entry in tables.expiries.range(..=expiry_key(now, u64::MAX))? {
            let (key, value) = entry?;
            due.push((key.value(), *value.value()));
            if due.len() >= MAX_EXPIRE_PER_PASS {
                break;
            }
        }
        let mut changed: HashMap<MailboxId, (u64, u64)> = HashMap::new();
        for (expiry, key) in &due {
            tables.expiries.remove(*expiry)?;
            let Some([global, _, len]) = tables.index.remove(key)?.map(|value| value.value()) else {
                continue;
            };
            tables.payloads.remove(global)?;
            let entry = changed.entry(split_index_key(key).0).or_default();
            entry.0 += 1;
            entry.1 += len;
        }
        let metas = &mut tables.mailboxes;
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

/// Removes every blob of `mailbox` up to `upto`; returns how many.
fn ack(
    tables: &mut Tables<'_>,
    metas: &mut Metas,
    mailbox: &MailboxId,
    upto: u64,
    now: u64,
    totals: &mut StoreStats,
) -> Result<u64, redb::Error> {
    let lo = index_key(mailbox, 0);
    let hi = index_key(mailbox, upto);
    let (mut count, mut bytes) = (0, 0);
    for entry in tables.index.extract_from_if::<&[u8; 40], _>(&lo..=&hi, |_, _| true)? {
        let [global, expires, len] = entry?.1.value();
        tables.gone.push((global, expires));
        count += 1;
        bytes += len;
    }
    if let Some(mut meta) = metas.get(&tables.mailboxes, mailbox)? {
        meta.count = meta.count.saturating_sub(count);
        meta.bytes = meta.bytes.saturating_sub(bytes);
        meta.touched_ms = now;
        metas.set(*mailbox, meta);
    }
    totals.blobs = totals.blobs.saturating_sub(count);
    totals.bytes = totals.bytes.saturating_sub(bytes);
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use redb::ReadableTableMetadata;

    /// Removes the payload numbered `global` behind the store's back, as a damaged file would lack it.
    fn lose_payload(store: &RedbStore, global: u64) {
        let txn = store.db.begin_write().unwrap();
        assert!(txn.open_table(PAYLOADS).unwrap().remove(global).unwrap().is_some());
        txn.commit().unwrap();
    }

    #[tokio::test]
    async fn a_blob_whose_payload_is_missing_is_skipped_and_can_be_acked() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(1_700_000_000_000));
        let store = RedbStore::open(&dir.path().join("t.redb"), Quotas::default(), clock).unwrap();
        let mailbox = MailboxId([9; 32]);
        let first = store.deposit(mailbox, b"lost".to_vec()).await.unwrap();
        let second = store.deposit(mailbox, b"kept".to_vec()).await.unwrap();
        // The first payload of a fresh file is number 0.
        lose_payload(&store, 0);
        let kept = Blob { seq: second, payload: bytes::Bytes::from_static(b"kept") };
        assert_eq!(store.fetch(mailbox, 0, 10).await.unwrap(), vec![kept.clone()]);
        assert_eq!(store.fetch(mailbox, first, 10).await.unwrap(), vec![kept]);
        assert_eq!(store.ack(mailbox, second).await.unwrap(), 2);
        assert_eq!(store.fetch(mailbox, 0, 10).await.unwrap(), vec![]);
        assert_eq!(store.stats(), StoreStats { blobs: 0, bytes: 0, expired: 0 });
        store.close().await.unwrap();
    }

    /// Entries of `payloads`, `index` and `expiries`.
    fn table_lens(store: &RedbStore) -> [u64; 3] {
        let read = store.db.begin_read().unwrap();
        [
            read.open_table(PAYLOADS).unwrap().len().unwrap(),
            read.open_table(INDEX).unwrap().len().unwrap(),
            read.open_table(EXPIRIES).unwrap().len().unwrap(),
        ]
    }

    #[tokio::test]
    async fn acks_in_one_transaction_remove_exactly_their_blobs_near_and_far_apart() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(1_700_000_000_000));
        let quotas = Quotas { ttl_ms: 1_000, ..Quotas::default() };
        let store = RedbStore::open(&dir.path().join("t.redb"), quotas, clock.clone()).unwrap();
        let (a, b, far) = (MailboxId([1; 32]), MailboxId([2; 32]), MailboxId([3; 32]));
        // Global numbers: far's two blobs are 201 apart (two runs); a's and b's alternate (one run
        // with b's kept blobs in between).
        let far_first = store.deposit(far, vec![0; 7]).await.unwrap();
        let mut seqs = (Vec::new(), Vec::new());
        for i in 0..100u8 {
            seqs.0.push(store.deposit(a, vec![i; 3]).await.unwrap());
            seqs.1.push(store.deposit(b, vec![i; 5]).await.unwrap());
        }
        let far_last = store.deposit(far, vec![0; 7]).await.unwrap();
        assert_eq!(table_lens(&store), [202; 3]);
        // Queued together, so that they usually share a transaction.
        let acks = [store.ack(a, seqs.0[99]), store.ack(b, seqs.1[49]), store.ack(far, far_last)];
        let mut removed = Vec::new();
        for ack in acks {
            removed.push(ack.await.unwrap());
        }
        assert_eq!(removed, [100, 50, 2]);
        assert_eq!(table_lens(&store), [50; 3]);
        assert_eq!(store.stats(), StoreStats { blobs: 50, bytes: 250, expired: 0 });
        assert!(far_first < far_last);
        let left = store.fetch(b, 0, 100).await.unwrap();
        assert_eq!(left.iter().map(|blob| blob.seq).collect::<Vec<_>>(), seqs.1[50..]);
        assert!(left.iter().enumerate().all(|(i, blob)| *blob.payload == [50 + i as u8; 5]));
        assert_eq!(store.fetch(a, 0, 100).await.unwrap(), vec![]);
        clock.advance(1_000);
        assert_eq!(store.expire().await.unwrap(), 50);
        assert_eq!(table_lens(&store), [0; 3]);
        store.close().await.unwrap();
    }
}
