//! Local fan-out: wakes the connections subscribed to a mailbox when a blob lands in it.
//!
//! Nothing is copied here: a wake-up only marks the mailbox dirty for the connection, which then
//! pulls from the store at its own pace. A slow reader therefore never makes the relay hold more
//! than its bounded outbound queue; the rest stays in the store.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use doorless_frames::MailboxId;
use tokio::sync::Notify;

/// The wake-up point of one connection.
#[derive(Debug, Default)]
pub struct Inbox {
    notify: Notify,
    dirty: Mutex<HashSet<MailboxId>>,
}

impl Inbox {
    /// A fresh inbox with nothing dirty.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Waits until some subscribed mailbox got a new blob since the last [`Inbox::take_dirty`].
    pub async fn notified(&self) {
        self.notify.notified().await;
    }

    /// The mailboxes that got new blobs since the last call.
    pub fn take_dirty(&self) -> Vec<MailboxId> {
        let mut dirty = self.dirty.lock().unwrap_or_else(PoisonError::into_inner);
        dirty.drain().collect()
    }

    fn mark(&self, mailbox: MailboxId) {
        self.dirty.lock().unwrap_or_else(PoisonError::into_inner).insert(mailbox);
        // `notify_one` keeps a permit when nobody waits, so a wake-up is never lost.
        self.notify.notify_one();
    }
}

/// Subscriptions of this process's connections, by mailbox.
#[derive(Debug, Default)]
pub struct Fanout {
    subscribers: Mutex<HashMap<MailboxId, Vec<Arc<Inbox>>>>,
}

impl Fanout {
    /// Registers `inbox` for wake-ups about `mailbox` (idempotent); true if `mailbox` had no
    /// subscriber before (a clustered store then starts listening for it).
    pub fn subscribe(&self, mailbox: MailboxId, inbox: &Arc<Inbox>) -> bool {
        let mut map = self.subscribers.lock().unwrap_or_else(PoisonError::into_inner);
        let list = map.entry(mailbox).or_default();
        let first = list.is_empty();
        if !list.iter().any(|i| Arc::ptr_eq(i, inbox)) {
            list.push(inbox.clone());
        }
        first
    }

    /// Removes `inbox` from `mailbox`'s wake-up list; true if that was its last subscriber.
    pub fn unsubscribe(&self, mailbox: MailboxId, inbox: &Arc<Inbox>) -> bool {
        let mut map = self.subscribers.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(list) = map.get_mut(&mailbox) {
            list.retain(|i| !Arc::ptr_eq(i, inbox));
            if list.is_empty() {
                map.remove(&mailbox);
                return true;
            }
        }
        false
    }

    /// Wakes every connection about every mailbox it is subscribed to (after a wake-up may have
    /// been lost: they re-read, and find nothing new if nothing was).
    pub fn publish_all(&self) {
        let map = self.subscribers.lock().unwrap_or_else(PoisonError::into_inner);
        for (mailbox, list) in map.iter() {
            for inbox in list {
                inbox.mark(*mailbox);
            }
        }
    }

    /// Wakes every connection subscribed to `mailbox`.
    pub fn publish(&self, mailbox: MailboxId) {
        let map = self.subscribers.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(list) = map.get(&mailbox) {
            for inbox in list {
                inbox.mark(mailbox);
            }
        }
    }

    /// Number of mailboxes with at least one live subscriber.
    pub fn subscribed_mailboxes(&self) -> usize {
        self.subscribers.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}
