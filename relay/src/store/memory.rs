//! The in-memory test double of [`Store`]: same semantics as the redb store, nothing durable.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use doorless_frames::MailboxId;

use super::{
    Blob, BoxFuture, Fanout, Inbox, MailboxMeta, Quotas, Store, StoreError, StoreStats, check_quotas,
    initial_seq,
};
use crate::clock::Clock;

#[derive(Default)]
struct Inner {
    /// (mailbox, seq) -> (expires_ms, payload)
    blobs: BTreeMap<(MailboxId, u64), (u64, Vec<u8>)>,
    metas: HashMap<MailboxId, MailboxMeta>,
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
            let meta = inner.metas.entry(mailbox).or_insert_with(|| MailboxMeta {
                next_seq: initial_seq(now),
                touched_ms: now,
                ..MailboxMeta::default()
            });
            check_quotas(meta, total, len, &self.quotas)?;
            let seq = meta.next_seq;
            meta.next_seq += 1;
            meta.count += 1;
            meta.bytes += len;
            meta.touched_ms = now;
            inner.blobs.insert((mailbox, seq), (now.saturating_add(self.quotas.ttl_ms), payload));
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
        let start = after.saturating_add(1);
        let blobs = if after == u64::MAX {
            Vec::new()
        } else {
            inner
                .blobs
                .range((mailbox, start)..=(mailbox, u64::MAX))
                .filter(|(_, (expires, _))| *expires > now)
                .take(max_count)
                .map(|((_, seq), (_, payload))| Blob { seq: *seq, payload: payload.clone() })
                .collect()
        };
        Box::pin(std::future::ready(Ok(blobs)))
    }

    fn ack(&self, mailbox: MailboxId, upto: u64) -> BoxFuture<'static, Result<u64, StoreError>> {
        let now = self.clock.now_ms();
        let mut inner = self.lock();
        let keys: Vec<_> = inner.blobs.range((mailbox, 0)..=(mailbox, upto)).map(|(k, _)| *k).collect();
        let mut removed_bytes = 0;
        for key in &keys {
            if let Some((_, payload)) = inner.blobs.remove(key) {
                removed_bytes += payload.len() as u64;
            }
        }
        let removed = keys.len() as u64;
        if let Some(meta) = inner.metas.get_mut(&mailbox) {
            meta.count -= removed;
            meta.bytes -= removed_bytes;
            meta.touched_ms = now;
        }
        inner.stats.blobs -= removed;
        inner.stats.bytes -= removed_bytes;
        Box::pin(std::future::ready(Ok(removed)))
    }

    fn expire(&self) -> BoxFuture<'static, Result<u64, StoreError>> {
        let now = self.clock.now_ms();
        let ttl = self.quotas.ttl_ms;
        let mut inner = self.lock();
        let expired: Vec<_> =
            inner.blobs.iter().filter(|(_, (expires, _))| *expires <= now).map(|(k, _)| *k).collect();
        for (mailbox, seq) in &expired {
            if let Some((_, payload)) = inner.blobs.remove(&(*mailbox, *seq)) {
                let len = payload.len() as u64;
                if let Some(meta) = inner.metas.get_mut(mailbox) {
                    meta.count -= 1;
                    meta.bytes -= len;
                }
                inner.stats.blobs -= 1;
                inner.stats.bytes -= len;
            }
        }
        inner.metas.retain(|_, meta| !meta.forgettable(now, ttl));
        let n = expired.len() as u64;
        inner.stats.expired += n;
        Box::pin(std::future::ready(Ok(n)))
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
