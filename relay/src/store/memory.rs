//! The in-memory test double of [`Store`]: same semantics as the redb store, nothing durable.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use doorless_frames::MailboxId;

use super::{
    Blob, BoxFuture, Fanout, Inbox, MailboxMeta, Quotas, Store, StoreError, StoreStats, check_quotas,
    initial_seq,
};
use crate::clock::Clock;

/// One mailbox: its bookkeeping and its blobs in sequence order.
struct Mailbox {
    meta: MailboxMeta,
    /// (seq, expires_ms, payload), oldest first.
    blobs: VecDeque<(u64, u64, Bytes)>,
}

#[derive(Default)]
struct Inner {
    mailboxes: HashMap<MailboxId, Mailbox>,
    stats: StoreStats,
    closed: bool,
}

/// A store that lives in memory only.
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
    fanout: Arc<Fanout>,
    clock: Arc<dyn Clock>,
    quotas: Quotas,
}

impl MemoryStore {
    /// An empty store.
    pub fn new(quotas: Quotas, clock: Arc<dyn Clock>) -> Self {
        Self { inner: Arc::default(), fanout: Arc::default(), clock, quotas }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Store for MemoryStore {
    fn deposit(&self, mailbox: MailboxId, payload: Vec<u8>) -> BoxFuture<'static, Result<u64, StoreError>> {
        let now = self.clock.now_ms();
        let result = (|| {
            let mut inner = self.lock();
            if inner.closed {
                return Err(StoreError::Closed);
            }
            let len = payload.len() as u64;
            let total = inner.stats.bytes;
            let entry = inner.mailboxes.entry(mailbox).or_insert_with(|| Mailbox {
                meta: MailboxMeta { next_seq: initial_seq(now), touched_ms: now, ..MailboxMeta::default() },
                blobs: VecDeque::new(),
            });
            check_quotas(&entry.meta, total, len, &self.quotas)?;
            let meta = &mut entry.meta;
            let seq = meta.next_seq;
            meta.next_seq += 1;
            meta.count += 1;
            meta.bytes += len;
            meta.touched_ms = now;
            entry.blobs.push_back((seq, now.saturating_add(self.quotas.ttl_ms), Bytes::from(payload)));
            inner.stats.blobs += 1;
            inner.stats.bytes += len;
            Ok(seq)
        })();
        if result.is_ok() {
            self.fanout.publish(mailbox);
        }
        Box::pin(std::future::ready(result))
    }

    fn fetch(
        &self,
        mailbox: MailboxId,
        after: u64,
        max_count: usize,
    ) -> BoxFuture<'static, Result<Vec<Blob>, StoreError>> {
        let now = self.clock.now_ms();
        let inner = self.lock();
        let blobs = match inner.mailboxes.get(&mailbox) {
            Some(entry) if after < u64::MAX => {
                let first = entry.blobs.partition_point(|(seq, _, _)| *seq <= after);
                entry
                    .blobs
                    .range(first..)
                    .filter(|(_, expires, _)| *expires > now)
                    .take(max_count)
                    .map(|(seq, _, payload)| Blob { seq: *seq, payload: payload.clone() })
                    .collect()
            }
            _ => Vec::new(),
        };
        Box::pin(std::future::ready(Ok(blobs)))
    }

    fn ack(&self, mailbox: MailboxId, upto: u64) -> BoxFuture<'static, Result<u64, StoreError>> {
        let now = self.clock.now_ms();
        let mut inner = self.lock();
        let (mut removed, mut removed_bytes) = (0, 0);
        if let Some(entry) = inner.mailboxes.get_mut(&mailbox) {
            // Blobs are in sequence order: the acknowledged ones are a prefix.
            while entry.blobs.front().is_some_and(|(seq, _, _)| *seq <= upto) {
                if let Some((_, _, payload)) = entry.blobs.pop_front() {
                    removed += 1;
                    removed_bytes += payload.len() as u64;
                }
            }
            entry.meta.count -= removed;
            entry.meta.bytes -= removed_bytes;
            entry.meta.touched_ms = now;
        }
        inner.stats.blobs -= removed;
        inner.stats.bytes -= removed_bytes;
        Box::pin(std::future::ready(Ok(removed)))
    }

    fn expire(&self) -> BoxFuture<'static, Result<u64, StoreError>> {
        let now = self.clock.now_ms();
        let ttl = self.quotas.ttl_ms;
        let mut inner = self.lock();
        let (mut expired, mut expired_bytes) = (0, 0);
        for entry in inner.mailboxes.values_mut() {
            let (mut count, mut bytes) = (0, 0);
            entry.blobs.retain(|(_, expires, payload)| {
                let keep = *expires > now;
                if !keep {
                    count += 1;
                    bytes += payload.len() as u64;
                }
                keep
            });
            entry.meta.count -= count;
            entry.meta.bytes -= bytes;
            expired += count;
            expired_bytes += bytes;
        }
        inner.mailboxes.retain(|_, entry| !entry.meta.forgettable(now, ttl));
        inner.stats.blobs -= expired;
        inner.stats.bytes -= expired_bytes;
        inner.stats.expired += expired;
        Box::pin(std::future::ready(Ok(expired)))
    }

    fn subscribe(&self, mailbox: MailboxId, inbox: &Arc<Inbox>) {
        self.fanout.subscribe(mailbox, inbox);
    }

    fn unsubscribe(&self, mailbox: MailboxId, inbox: &Arc<Inbox>) {
        self.fanout.unsubscribe(mailbox, inbox);
    }

    fn stats(&self) -> StoreStats {
        self.lock().stats
    }

    fn close(&self) -> BoxFuture<'static, Result<(), StoreError>> {
        self.lock().closed = true;
        Box::pin(std::future::ready(Ok(())))
    }
}
