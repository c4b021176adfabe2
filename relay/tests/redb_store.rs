//! The redb store's file: the migration from the first layout, and what must survive a restart.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use doorless_frames::MailboxId;
use redb::{Database, ReadableDatabase, TableDefinition, TableHandle};
use relay::store::{Blob, Quotas, StoreError, StoreStats};
use relay::{ManualClock, RedbStore, Store};

/// The first layout, frozen here as it was written by relays in the field (do not change).
mod old {
    use super::*;

    pub const BLOBS: TableDefinition<&[u8; 40], &[u8]> = TableDefinition::new("blobs");
    pub const EXPIRY: TableDefinition<&[u8; 48], ()> = TableDefinition::new("expiry");
    pub const MAILBOXES: TableDefinition<&[u8; 32], [u64; 4]> = TableDefinition::new("mailboxes");

    /// One mailbox of the first layout: its record and its blobs as (seq, expires_ms, payload).
    pub struct Mailbox<'a> {
        pub id: MailboxId,
        pub next_seq: u64,
        pub touched_ms: u64,
        pub blobs: &'a [(u64, u64, &'a [u8])],
    }

    /// Writes `mailboxes` into a new file at `path`, exactly as the first layout's store did.
    pub fn write(path: &Path, mailboxes: &[Mailbox<'_>]) {
        let db = Database::create(path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut blobs = txn.open_table(BLOBS).unwrap();
            let mut expiry = txn.open_table(EXPIRY).unwrap();
            let mut records = txn.open_table(MAILBOXES).unwrap();
            for mailbox in mailboxes {
                let mut bytes = 0;
                for (seq, expires, payload) in mailbox.blobs {
                    let mut key = [0; 40];
                    key[..32].copy_from_slice(&mailbox.id.0);
                    key[32..].copy_from_slice(&seq.to_be_bytes());
                    let mut value = expires.to_be_bytes().to_vec();
                    value.extend_from_slice(payload);
                    blobs.insert(&key, value.as_slice()).unwrap();
                    let mut ekey = [0; 48];
                    ekey[..8].copy_from_slice(&expires.to_be_bytes());
                    ekey[8..].copy_from_slice(&key);
                    expiry.insert(&ekey, ()).unwrap();
                    bytes += payload.len() as u64;
                }
                let count = mailbox.blobs.len() as u64;
                records.insert(&mailbox.id.0, [mailbox.next_seq, count, bytes, mailbox.touched_ms]).unwrap();
            }
        }
        txn.commit().unwrap();
    }

    /// Adds a blob value too short to hold its expiry header (a damaged file).
    pub fn add_short_value(path: &Path, mailbox: MailboxId, seq: u64, next_seq: u64, now: u64) {
        let db = Database::create(path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut key = [0; 40];
            key[..32].copy_from_slice(&mailbox.0);
            key[32..].copy_from_slice(&seq.to_be_bytes());
            txn.open_table(BLOBS).unwrap().insert(&key, &[1u8, 2, 3][..]).unwrap();
            txn.open_table(MAILBOXES).unwrap().insert(&mailbox.0, [next_seq, 1, 0, now]).unwrap();
        }
        txn.commit().unwrap();
    }
}

const NOW: u64 = 1_700_000_000_000;

fn blob(seq: u64, payload: &'static [u8]) -> Blob {
    Blob { seq, payload: Bytes::from_static(payload) }
}

/// Closes `store` and drops it, which releases the file.
async fn close(store: RedbStore) {
    store.close().await.unwrap();
}

fn table_names(path: &Path) -> Vec<String> {
    let db = Database::create(path).unwrap();
    let read = db.begin_read().unwrap();
    read.list_tables().unwrap().map(|t| t.name().to_owned()).collect()
}

#[tokio::test]
async fn a_file_in_the_first_layout_is_migrated_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let (a, b, c) = (MailboxId([0xa; 32]), MailboxId([0xb; 32]), MailboxId([0xc; 32]));
    // Sequence numbers as `initial_seq` gives them; expiry times out of deposit order across
    // mailboxes, as a TTL change between restarts leaves them.
    let s = NOW << 16;
    old::write(
        &path,
        &[
            old::Mailbox {
                id: a,
                next_seq: s + 3,
                touched_ms: NOW - 10,
                blobs: &[(s, NOW + 5_000, b"a0"), (s + 1, NOW + 6_000, b"a1!"), (s + 2, NOW + 7_000, b"a2")],
            },
            old::Mailbox { id: b, next_seq: 42, touched_ms: NOW - 20, blobs: &[(41, NOW + 1_000, b"b41")] },
        ],
    );
    // A value too short for its header is migrated as an empty blob that has already expired.
    old::add_short_value(&path, c, 7, 8, NOW - 30);

    let clock = Arc::new(ManualClock::new(NOW));
    let quotas = Quotas { ttl_ms: 10_000, mailbox_max_count: 3, ..Quotas::default() };
    let store = RedbStore::open(&path, quotas, clock.clone()).unwrap();
    // The counts come from the mailbox records, which the migration keeps as they were.
    assert_eq!(store.stats(), StoreStats { blobs: 5, bytes: 10, expired: 0 });
    assert_eq!(
        store.fetch(a, 0, 10).await.unwrap(),
        vec![blob(s, b"a0"), blob(s + 1, b"a1!"), blob(s + 2, b"a2")]
    );
    assert_eq!(store.fetch(a, s, 1).await.unwrap(), vec![blob(s + 1, b"a1!")]);
    assert_eq!(store.fetch(b, 0, 10).await.unwrap(), vec![blob(41, b"b41")]);
    assert_eq!(store.fetch(c, 0, 10).await.unwrap(), vec![]);

    // The count quota still counts the migrated blobs.
    assert!(matches!(store.deposit(a, b"a3".to_vec()).await, Err(StoreError::MailboxFullCount)));
    assert_eq!(store.ack(a, s + 1).await.unwrap(), 2);
    assert_eq!(store.stats(), StoreStats { blobs: 3, bytes: 5, expired: 0 });
    // New deposits continue each mailbox's numbering.
    assert_eq!(store.deposit(a, b"a3".to_vec()).await.unwrap(), s + 3);
    assert_eq!(store.deposit(b, b"b42".to_vec()).await.unwrap(), 42);
    assert_eq!(store.fetch(a, 0, 10).await.unwrap(), vec![blob(s + 2, b"a2"), blob(s + 3, b"a3")]);
    assert_eq!(store.fetch(b, 0, 10).await.unwrap(), vec![blob(41, b"b41"), blob(42, b"b42")]);

    // The migrated expiry times hold: c's damaged blob now, b41 at +1 s, a2 at +7 s.
    assert_eq!(store.expire().await.unwrap(), 1);
    clock.advance(1_000);
    assert_eq!(store.expire().await.unwrap(), 1);
    assert_eq!(store.fetch(b, 0, 10).await.unwrap(), vec![blob(42, b"b42")]);
    clock.advance(6_000);
    assert_eq!(store.expire().await.unwrap(), 1);
    assert_eq!(store.fetch(a, 0, 10).await.unwrap(), vec![blob(s + 3, b"a3")]);
    assert_eq!(store.stats(), StoreStats { blobs: 2, bytes: 5, expired: 3 });
    close(store).await;

    let tables = table_names(&path);
    assert!(!tables.iter().any(|t| t == "blobs" || t == "expiry"), "old tables left: {tables:?}");

    // Opening again finds the new layout only, with the same contents.
    let store = RedbStore::open(&path, quotas, clock.clone()).unwrap();
    assert_eq!(store.stats(), StoreStats { blobs: 2, bytes: 5, expired: 0 });
    assert_eq!(store.fetch(a, 0, 10).await.unwrap(), vec![blob(s + 3, b"a3")]);
    assert_eq!(store.fetch(b, 0, 10).await.unwrap(), vec![blob(42, b"b42")]);
    close(store).await;
}

#[tokio::test]
async fn payloads_stay_apart_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let clock = Arc::new(ManualClock::new(NOW));
    let (a, b) = (MailboxId([1; 32]), MailboxId([2; 32]));
    let open = || RedbStore::open(&path, Quotas::default(), clock.clone()).unwrap();

    let store = open();
    let a1 = store.deposit(a, b"a1".to_vec()).await.unwrap();
    let b1 = store.deposit(b, b"b1".to_vec()).await.unwrap();
    // The newest payload goes: the next global number after a restart is the one b1 had.
    assert_eq!(store.ack(b, b1).await.unwrap(), 1);
    close(store).await;

    let store = open();
    let b2 = store.deposit(b, b"b2".to_vec()).await.unwrap();
    let a2 = store.deposit(a, b"a2".to_vec()).await.unwrap();
    assert_eq!((a2, b2), (a1 + 1, b1 + 1));
    assert_eq!(store.fetch(a, 0, 10).await.unwrap(), vec![blob(a1, b"a1"), blob(a2, b"a2")]);
    assert_eq!(store.fetch(b, 0, 10).await.unwrap(), vec![blob(b2, b"b2")]);
    // Everything goes: the next restart starts the global numbers again.
    assert_eq!(store.ack(a, a2).await.unwrap(), 2);
    assert_eq!(store.ack(b, b2).await.unwrap(), 1);
    close(store).await;

    let store = open();
    assert_eq!(store.stats(), StoreStats::default());
    let b3 = store.deposit(b, b"b3".to_vec()).await.unwrap();
    assert_eq!(b3, b2 + 1);
    assert_eq!(store.fetch(a, 0, 10).await.unwrap(), vec![]);
    assert_eq!(store.fetch(b, 0, 10).await.unwrap(), vec![blob(b3, b"b3")]);
    close(store).await;
}

#[tokio::test]
async fn expiry_follows_each_blobs_own_time_when_the_ttl_changes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let clock = Arc::new(ManualClock::new(NOW));
    let mailbox = MailboxId([3; 32]);
    let ttl = |ttl_ms| Quotas { ttl_ms, ..Quotas::default() };

    let store = RedbStore::open(&path, ttl(10_000), clock.clone()).unwrap();
    let long = store.deposit(mailbox, b"long".to_vec()).await.unwrap();
    let second = store.deposit(mailbox, b"second".to_vec()).await.unwrap();
    close(store).await;

    // A restart with a shorter TTL: the later blob expires first.
    let store = RedbStore::open(&path, ttl(1_000), clock.clone()).unwrap();
    let short = store.deposit(mailbox, b"short".to_vec()).await.unwrap();
    clock.advance(1_000);
    assert_eq!(store.expire().await.unwrap(), 1);
    assert_eq!(
        store.fetch(mailbox, 0, 10).await.unwrap(),
        vec![blob(long, b"long"), blob(second, b"second")]
    );
    assert!(short > second);
    // An acknowledged blob is not expired again later.
    assert_eq!(store.ack(mailbox, long).await.unwrap(), 1);
    assert_eq!(store.fetch(mailbox, 0, 10).await.unwrap(), vec![blob(second, b"second")]);
    clock.advance(9_000);
    assert_eq!(store.expire().await.unwrap(), 1);
    assert_eq!(store.stats(), StoreStats { blobs: 0, bytes: 0, expired: 2 });
    close(store).await;
}
