//! `kill -9` of the relay process in the middle of a stream of deposits: after a restart on the same
//! data directory, no acknowledged deposit is lost or stored twice, and nothing the owner durably
//! acknowledged comes back.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Child;
use std::sync::{Arc, Mutex};

use common::{Client, key, mailbox_of, wait_until};
use doorless_frames::{Frame, MailboxId};

const TOTAL: u32 = 10_000;
const WINDOW: u32 = 256;
const KILL_AFTER: usize = 3_000;

fn spawn_relay(dir: &Path) -> (Child, SocketAddr) {
    common::spawn_relay(dir, &[])
}

fn payload(id: u32) -> Vec<u8> {
    let mut p = id.to_be_bytes().to_vec();
    p.resize(200, 0x5a);
    p
}

fn id_of(payload: &[u8]) -> u32 {
    u32::from_be_bytes(payload[..4].try_into().unwrap())
}

/// Sends `ids` with a window of deposits in flight, recording confirmations, until done or cut off.
async fn deposit_stream(
    addr: SocketAddr,
    mailbox: MailboxId,
    ids: Vec<u32>,
    acked: Arc<Mutex<HashSet<u32>>>,
) {
    let mut client = Client::connect(addr).await;
    let mut next = 0usize;
    let mut outstanding = 0u32;
    loop {
        if next < ids.len() && outstanding < WINDOW {
            let id = ids[next];
            if client.ws_send(Frame::Deposit { request: id, mailbox, payload: payload(id) }).await.is_err() {
                return;
            }
            next += 1;
            outstanding += 1;
            continue;
        }
        if outstanding == 0 {
            return;
        }
        match client.recv_opt().await {
            Some(Frame::Deposited { request }) => {
                acked.lock().unwrap().insert(request);
                outstanding -= 1;
            }
            Some(other) => panic!("unexpected {other:?}"),
            None => return,
        }
    }
}

#[derive(Default)]
struct OwnerLog {
    /// Every delivery, in order: (seq, id).
    deliveries: Vec<(u64, u32)>,
    /// Highest seq whose ack is known durable (a later deposit on the same connection was confirmed).
    durable_ack: u64,
    /// Distinct ids seen (pre-filled with the first session's in the second).
    ids: HashSet<u32>,
}

/// Receives, acknowledging every 100 blobs and confirming each ack with a barrier deposit, until
/// `stop_when` says so or the connection dies.
async fn owner_session(addr: SocketAddr, log: Arc<Mutex<OwnerLog>>, stop_when: impl Fn(&OwnerLog) -> bool) {
    let owner_key = key(1);
    let scratch = MailboxId([0xee; 32]);
    let mut client = Client::connect(addr).await;
    client.subscribe(&owner_key, 0).await;
    let mut barriers: HashMap<u32, u64> = HashMap::new();
    let mut barrier_id = 0u32;
    let mut since_ack = 0;
    loop {
        if stop_when(&log.lock().unwrap()) {
            return;
        }
        match client.recv_opt().await {
            Some(Frame::Deliver { seq, payload, .. }) => {
                {
                    let mut log = log.lock().unwrap();
                    log.deliveries.push((seq, id_of(&payload)));
                    log.ids.insert(id_of(&payload));
                }
                since_ack += 1;
                if since_ack == 100 {
                    since_ack = 0;
                    let mailbox = mailbox_of(&owner_key);
                    if client.ws_send(Frame::Ack { mailbox, seq }).await.is_err() {
                        return;
                    }
                    barrier_id += 1;
                    barriers.insert(barrier_id, seq);
                    let barrier = Frame::Deposit { request: barrier_id, mailbox: scratch, payload: vec![] };
                    if client.ws_send(barrier).await.is_err() {
                        return;
                    }
                }
            }
            Some(Frame::Deposited { request }) => {
                let seq = barriers[&request];
                let mut log = log.lock().unwrap();
                log.durable_ack = log.durable_ack.max(seq);
            }
            Some(other) => panic!("unexpected {other:?}"),
            None => return,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_ten_thousand_deposits_loses_and_duplicates_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let mailbox = mailbox_of(&key(1));
    let acked = Arc::new(Mutex::new(HashSet::new()));

    // Run 1: owner online, depositor streaming; SIGKILL part-way.
    let (mut child, addr) = spawn_relay(dir.path());
    let first = Arc::new(Mutex::new(OwnerLog::default()));
    let owner = tokio::spawn(owner_session(addr, first.clone(), |_| false));
    let depositor = tokio::spawn(deposit_stream(addr, mailbox, (0..TOTAL).collect(), acked.clone()));
    let counter = acked.clone();
    wait_until("enough deposits are confirmed", || counter.lock().unwrap().len() >= KILL_AFTER).await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    depositor.await.unwrap();
    owner.await.unwrap();
    let acked_before_kill: HashSet<u32> = acked.lock().unwrap().clone();
    eprintln!("killed after {} confirmed deposits", acked_before_kill.len());
    assert!(acked_before_kill.len() >= KILL_AFTER);
    assert!(acked_before_kill.len() < TOTAL as usize, "the kill came after the whole stream");

    // Run 2: same data directory. The depositor re-sends whatever it did not see confirmed.
    let (mut child, addr) = spawn_relay(dir.path());
    let missing: Vec<u32> = (0..TOTAL).filter(|id| !acked_before_kill.contains(id)).collect();
    deposit_stream(addr, mailbox, missing, acked.clone()).await;
    assert_eq!(acked.lock().unwrap().len(), TOTAL as usize, "every deposit confirmed after the restart");

    let ids = first.lock().unwrap().ids.clone();
    let second = Arc::new(Mutex::new(OwnerLog { ids, ..OwnerLog::default() }));
    let owner = owner_session(addr, second.clone(), |log| log.ids.len() == TOTAL as usize);
    tokio::time::timeout(common::DEADLINE * 3, owner).await.expect("owner received everything");
    child.kill().unwrap();
    child.wait().unwrap();

    let first = first.lock().unwrap();
    let second = second.lock().unwrap();
    assert!(!first.deliveries.is_empty());

    // Within each session, strictly increasing sequence numbers.
    for log in [&first, &second] {
        assert!(log.deliveries.windows(2).all(|w| w[0].0 < w[1].0));
    }
    // Nothing durably acknowledged comes back.
    assert!(
        second.deliveries.iter().all(|(seq, _)| *seq > first.durable_ack),
        "a blob acknowledged before the crash was delivered again"
    );
    // A sequence number always means the same blob.
    let mut by_seq: BTreeMap<u64, u32> = BTreeMap::new();
    for (seq, id) in first.deliveries.iter().chain(second.deliveries.iter()) {
        assert_eq!(*by_seq.entry(*seq).or_insert(*id), *id, "seq reused for another blob");
    }
    // Every deposit is there; a deposit confirmed before the crash is stored exactly once.
    let mut seqs_of: HashMap<u32, HashSet<u64>> = HashMap::new();
    for (seq, id) in &by_seq {
        seqs_of.entry(*id).or_default().insert(*seq);
    }
    assert_eq!(seqs_of.len(), TOTAL as usize);
    for id in &acked_before_kill {
        assert_eq!(seqs_of[id].len(), 1, "confirmed deposit {id} stored more than once");
    }
}
