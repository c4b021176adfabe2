//! Failover of a shard while deposits flow (its own 3 + 3 cluster: it kills nodes). The replica of
//! one master is frozen (SIGSTOP) so that it lags, the master is killed (`kill -9`), the replica is
//! resumed and takes over, the old master is restarted and rejoins as its replica. Every deposit
//! that was confirmed is still there exactly once, in order; deposits to that shard fail with a
//! clear error while it has no live replica, and succeed again once it has.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::cluster::{ValkeyCluster, unique_prefix, wait};
use doorless_frames::MailboxId;
use relay::store::{ClusterOptions, Quotas};
use relay::{ClusterStore, ManualClock, Store};

/// What one depositor saw: confirmed (payload number -> sequence number), and the errors.
#[derive(Default)]
struct Log {
    confirmed: Vec<(u32, u64)>,
    errors: Vec<String>,
}

fn hex(mailbox: &MailboxId) -> String {
    mailbox.0.iter().map(|b| format!("{b:02x}")).collect()
}

/// Deposits numbered payloads into `mailbox`, one after another, until `stop`.
async fn depositor(
    store: Arc<ClusterStore>,
    mailbox: MailboxId,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Log>>,
) {
    let mut n = 0u32;
    while !stop.load(Ordering::Relaxed) {
        match store.deposit(mailbox, n.to_be_bytes().to_vec()).await {
            Ok(seq) => log.lock().unwrap().confirmed.push((n, seq)),
            Err(err) => {
                log.lock().unwrap().errors.push(err.to_string());
                // A failing shard answers within the wait timeout; this keeps a refused
                // connection (answered at once) from spinning.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        n += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_killed_while_its_replica_lags_loses_no_confirmed_deposit() {
    let cluster = ValkeyCluster::start(3);
    let prefix = unique_prefix();
    let (master, replica) = (&cluster.nodes[0], &cluster.nodes[3]);
    let (first, last) = (0u16, 16384 / 3 - 1);
    // Two mailboxes on the shard that fails, two elsewhere.
    let mut victims = Vec::new();
    let mut bystanders = Vec::new();
    for i in 0..=255u8 {
        let mailbox = MailboxId([i; 32]);
        let slot = master.keyslot(&format!("{prefix}:{{{}}}:s", hex(&mailbox)));
        if (first..=last).contains(&slot) {
            if victims.len() < 2 {
                victims.push(mailbox);
            }
        } else if bystanders.len() < 2 {
            bystanders.push(mailbox);
        }
    }
    assert_eq!((victims.len(), bystanders.len()), (2, 2));

    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let mut options = ClusterOptions::new(cluster.seeds());
    options.prefix = prefix;
    options.wait_timeout = Duration::from_millis(500);
    let store = Arc::new(ClusterStore::connect(options, Quotas::default(), clock).await.unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let logs: HashMap<MailboxId, Arc<Mutex<Log>>> =
        victims.iter().chain(&bystanders).map(|m| (*m, Arc::default())).collect();
    let tasks: Vec<_> = logs
        .iter()
        .map(|(mailbox, log)| tokio::spawn(depositor(store.clone(), *mailbox, stop.clone(), log.clone())))
        .collect();
    let confirmed = |mailbox: &MailboxId| logs[mailbox].lock().unwrap().confirmed.len();
    let errors = |mailbox: &MailboxId| logs[mailbox].lock().unwrap().errors.len();

    // Deposits flow everywhere.
    let start = tokio::time::Instant::now() + common::DEADLINE;
    while victims.iter().chain(&bystanders).any(|m| confirmed(m) < 20) {
        assert!(tokio::time::Instant::now() < start, "deposits do not flow");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The replica freezes: the master keeps writing what the replica never gets, and confirms none of it.
    replica.signal("STOP");
    let before = errors(&victims[0]);
    let deadline = tokio::time::Instant::now() + common::DEADLINE;
    while errors(&victims[0]) < before + 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "deposits to a shard whose replica is frozen were confirmed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let confirmed_while_frozen = confirmed(&victims[0]);
    master.kill();
    replica.signal("CONT");
    wait("the replica takes over", || replica.role().as_deref() == Some("master"));
    // The shard now has a master and no replica: its deposits fail, clearly; the others go on.
    let errors_after_takeover = errors(&victims[0]);
    let bystander_before = confirmed(&bystanders[0]);
    let replica_error = || {
        let log = logs[&victims[0]].lock().unwrap();
        log.errors[errors_after_takeover..].iter().any(|e| e.contains("not confirmed by a replica"))
    };
    let deadline = tokio::time::Instant::now() + common::DEADLINE;
    while !replica_error() || confirmed(&bystanders[0]) < bystander_before + 5 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no clear error from the shard without a replica, or no progress elsewhere: {:?}",
            logs[&victims[0]].lock().unwrap().errors[errors_after_takeover..]
                .iter()
                .rev()
                .take(3)
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(confirmed_while_frozen <= confirmed(&victims[0]));

    // The old master comes back as the new master's replica; deposits to the shard recover.
    master.start();
    let recovered = confirmed(&victims[0]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while victims.iter().any(|m| confirmed(m) < recovered + 10) {
        assert!(tokio::time::Instant::now() < deadline, "deposits to the shard did not recover");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(master.role().as_deref(), Some("slave"));
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }

    // Every confirmed deposit is there exactly once, under its number, in order.
    for (mailbox, log) in &logs {
        let confirmed = log.lock().unwrap().confirmed.clone();
        let mut stored = Vec::new();
        let mut after = 0;
        loop {
            let blobs = store.fetch(*mailbox, after, 500).await.unwrap();
            let Some(last) = blobs.last() else { break };
            after = last.seq;
            stored.extend(
                blobs.iter().map(|b| (u32::from_be_bytes(b.payload[..4].try_into().unwrap()), b.seq)),
            );
        }
        assert!(
            stored.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1),
            "stored out of order or twice"
        );
        for entry in &confirmed {
            assert!(stored.contains(entry), "a confirmed deposit is missing or renumbered");
        }
    }
    store.close().await.unwrap();
}
