//! Storage and fan-out of mailboxes, behind one trait.
//!
//! The connection handlers only see [`Store`]. The embedded default is [`RedbStore`] (one file in
//! the data directory); [`MemoryStore`] is the test double with the same semantics;
//! [`ClusterStore`] keeps mailboxes in a Valkey/Redis cluster shared by several relays, publishing
//! wake-ups across them.

pub mod cluster;
mod fanout;
pub mod memory;
pub mod redb;

use std::future::Future;
use std::pin::Pin;

use doorless_frames::{ErrorCode, MailboxId};

pub use cluster::{ClusterOptions, ClusterStore};
pub use fanout::{Fanout, Inbox};
pub use memory::MemoryStore;
pub use redb::RedbStore;

/// A boxed, sendable future, so that [`Store`] stays object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the store keeps, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    /// Lifetime of an unacknowledged blob, in milliseconds.
    pub ttl_ms: u64,
    /// Most blobs one mailbox may hold.
    pub mailbox_max_count: u64,
    /// Most payload bytes one mailbox may hold.
    pub mailbox_max_bytes: u64,
    /// Most payload bytes the whole relay may hold.
    pub max_stored_bytes: u64,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            ttl_ms: 7 * 24 * 3600 * 1000,
            mailbox_max_count: 10_000,
            mailbox_max_bytes: 64 * 1024 * 1024,
            max_stored_bytes: 8 * 1024 * 1024 * 1024,
        }
    }
}

/// One stored blob, as handed to a subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// Per-mailbox sequence number.
    pub seq: u64,
    /// The opaque payload: shared, so handing it out copies nothing.
    pub payload: bytes::Bytes,
}

/// Totals of what is stored (never which mailboxes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Blobs stored.
    pub blobs: u64,
    /// Payload bytes stored.
    pub bytes: u64,
    /// Blobs removed by expiry since start.
    pub expired: u64,
}

/// Why a store operation failed. Never carries a mailbox id or payload.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The mailbox holds its maximum number of blobs.
    #[error("mailbox full (count)")]
    MailboxFullCount,
    /// The mailbox holds its maximum number of bytes.
    #[error("mailbox full (bytes)")]
    MailboxFullBytes,
    /// The relay holds its maximum number of bytes.
    #[error("relay storage full")]
    RelayFull,
    /// The storage backend failed; nothing from this operation was stored.
    #[error("storage backend failure: {0}")]
    Backend(String),
    /// The store has been closed.
    #[error("store closed")]
    Closed,
}

impl StoreError {
    /// The error code a client is told.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::MailboxFullCount => ErrorCode::MailboxFullCount,
            Self::MailboxFullBytes => ErrorCode::MailboxFullBytes,
            Self::RelayFull => ErrorCode::RelayFull,
            Self::Backend(_) => ErrorCode::StorageFailure,
            Self::Closed => ErrorCode::ShuttingDown,
        }
    }
}

/// Storage and fan-out of mailboxes.
///
/// Contract shared by every implementation (tested against both in `tests`):
/// - `deposit` resolves only once the blob is durable, with the blob's sequence number, and then
///   wakes subscribers (the cluster store may wake subscribers on *other* relays earlier, while the
///   durable write is still being confirmed: see `store/cluster/wake.rs`); deposits are sequenced in the order of the `deposit` *calls* (the work is
///   queued before the future is returned), so one connection's deposits keep their order.
/// - sequence numbers of a mailbox strictly increase, and are never reused while the mailbox is
///   remembered (see [`initial_seq`] for a mailbox that was forgotten);
/// - `fetch` returns blobs in sequence order and never returns an expired blob.
pub trait Store: Send + Sync + 'static {
    /// Stores `payload` in `mailbox`; resolves with its sequence number once durable.
    fn deposit(&self, mailbox: MailboxId, payload: Vec<u8>) -> BoxFuture<'static, Result<u64, StoreError>>;

    /// Up to `max_count` unexpired blobs of `mailbox` with a sequence number above `after`, in order.
    fn fetch(
        &self,
        mailbox: MailboxId,
        after: u64,
        max_count: usize,
    ) -> BoxFuture<'static, Result<Vec<Blob>, StoreError>>;

    /// Deletes every blob of `mailbox` up to and including `upto`; resolves with how many.
    fn ack(&self, mailbox: MailboxId, upto: u64) -> BoxFuture<'static, Result<u64, StoreError>>;

    /// Deletes every expired blob; resolves with how many.
    fn expire(&self) -> BoxFuture<'static, Result<u64, StoreError>>;

    /// Registers `inbox` for wake-ups when `mailbox` gets a blob.
    fn subscribe(&self, mailbox: MailboxId, inbox: &std::sync::Arc<Inbox>);

    /// Stops wake-ups of `inbox` about `mailbox`.
    fn unsubscribe(&self, mailbox: MailboxId, inbox: &std::sync::Arc<Inbox>);

    /// Current totals.
    fn stats(&self) -> StoreStats;

    /// Finishes queued work and makes everything durable; later calls fail with `Closed`.
    fn close(&self) -> BoxFuture<'static, Result<(), StoreError>>;
}

/// Bookkeeping of one mailbox.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct MailboxMeta {
    /// Sequence number the next deposit gets.
    pub next_seq: u64,
    /// Blobs stored.
    pub count: u64,
    /// Payload bytes stored.
    pub bytes: u64,
    /// Time of the last deposit or ack, ms.
    pub touched_ms: u64,
}

impl MailboxMeta {
    pub(crate) fn to_array(self) -> [u64; 4] {
        [self.next_seq, self.count, self.bytes, self.touched_ms]
    }
    pub(crate) fn from_array(a: [u64; 4]) -> Self {
        Self { next_seq: a[0], count: a[1], bytes: a[2], touched_ms: a[3] }
    }

    /// A mailbox that is empty and untouched for a TTL is forgotten.
    pub(crate) fn forgettable(&self, now_ms: u64, ttl_ms: u64) -> bool {
        self.count == 0 && self.touched_ms.saturating_add(ttl_ms) <= now_ms
    }
}

/// The first sequence number of a mailbox the store does not remember.
///
/// Empty mailboxes are remembered for a TTL after their last use and then forgotten (so the store
/// keeps nothing about idle mailboxes). Seeding from the clock (milliseconds << 16) keeps the numbers
/// of a re-created mailbox above any it had before, so a client's "highest seen" never goes back.
pub(crate) fn initial_seq(now_ms: u64) -> u64 {
    now_ms.saturating_mul(1 << 16).max(1)
}

/// Checks the quotas for adding `len` bytes to a mailbox described by `meta`.
pub(crate) fn check_quotas(
    meta: &MailboxMeta,
    total_bytes: u64,
    len: u64,
    quotas: &Quotas,
) -> Result<(), StoreError> {
    if meta.count >= quotas.mailbox_max_count {
        return Err(StoreError::MailboxFullCount);
    }
    if meta.bytes.saturating_add(len) > quotas.mailbox_max_bytes {
        return Err(StoreError::MailboxFullBytes);
    }
    if total_bytes.saturating_add(len) > quotas.max_stored_bytes {
        return Err(StoreError::RelayFull);
    }
    Ok(())
}
