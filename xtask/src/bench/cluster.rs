//! `cargo xtask bench relay-cluster`: the relay on the cluster store (Valkey, 3 masters + 3
//! replicas on this machine). Two cores cannot show scale-out; these are the figures that predict
//! it: messages per second through one relay node, CPU per message in the relay and in each Valkey
//! process, bytes written to disk per message, and latency across two relay nodes at a fixed rate.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result};
use valkey_harness::{ValkeyCluster, wait};

use super::relay::{Setup, build, loadgen};
use crate::tools;

/// Connections and payload size of every run (the load).
const CONNECTIONS: usize = 1000;
const SIZE: usize = 1024;
/// Offered rate of the cross-node run, messages per second.
const CROSS_RATE: u32 = 2000;

/// `utime + stime` of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let tick = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}

/// Bytes a process has caused to be written to storage.
fn write_bytes(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()
        .and_then(|io| {
            io.lines().find_map(|l| l.strip_prefix("write_bytes: ").and_then(|v| v.trim().parse().ok()))
        })
        .unwrap_or(0.0)
}

/// A relay process on the cluster, and its address.
struct Node {
    child: std::process::Child,
    addr: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_node(setup: &Setup, cluster: &ValkeyCluster, prefix: &str) -> Result<Node> {
    use std::io::BufRead as _;
    let mut child = Command::new(&setup.relay)
        .args(["--listen", "127.0.0.1:0", "--store", "cluster", "--cluster-prefix", prefix])
        .arg("--cluster-nodes")
        .arg(cluster.seeds().join(","))
        .args(["--max-connections", "200000", "--deposit-rate", "1e9", "--deposit-burst", "1e9"])
        .env("DOORLESS_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting the relay")?;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().context("relay stdout")?).read_line(&mut line)?;
    let addr = line.trim().rsplit_once("http://").map(|(_, a)| a.to_owned()).context("relay address")?;
    Ok(Node { child, addr })
}

/// One load run; returns the loadgen figures and, per Valkey process, CPU µs and disk bytes per
/// delivered message over the whole run (set-up and drain included: an upper bound).
fn measured(
    setup: &Setup,
    cluster: &ValkeyCluster,
    relay: &Node,
    peer: Option<&Node>,
    rate: Option<u32>,
) -> Result<(super::relay::Figures, Vec<(f64, f64)>)> {
    let pids: Vec<u32> = cluster.nodes.iter().map(|n| n.pid()).collect();
    let before: Vec<(f64, f64)> = pids.iter().map(|&p| (cpu_seconds(p), write_bytes(p))).collect();
    let mut args: Vec<String> = vec![
        "load".into(),
        "--addr".into(),
        relay.addr.clone(),
        "--connections".into(),
        CONNECTIONS.to_string(),
        "--size".into(),
        SIZE.to_string(),
        "--seconds".into(),
        "5".into(),
        "--warmup".into(),
        "1".into(),
        "--pid".into(),
        relay.child.id().to_string(),
    ];
    if let Some(peer) = peer {
        args.extend(["--peer-addr".into(), peer.addr.clone()]);
    }
    if let Some(rate) = rate {
        args.extend(["--rate".into(), rate.to_string()]);
    }
    let figures = loadgen(setup, &args)?;
    let delivered = figures.get("delivered").and_then(|v| v.parse::<f64>().ok()).unwrap_or(f64::NAN);
    let per: Vec<(f64, f64)> = pids
        .iter()
        .zip(before)
        .map(|(&p, (cpu, bytes))| {
            ((cpu_seconds(p) - cpu) * 1e6 / delivered, (write_bytes(p) - bytes) / delivered)
        })
        .collect();
    Ok((figures, per))
}

fn row(
    s: &mut String,
    what: &str,
    figures: &super::relay::Figures,
    per: &[(f64, f64)],
    masters: usize,
) -> Result<()> {
    let get = |k: &str| figures.get(k).and_then(|v| v.parse::<f64>().ok()).unwrap_or(f64::NAN);
    let cpu = |range: std::ops::Range<usize>| {
        per[range].iter().map(|p| format!("{:.0}", p.0)).collect::<Vec<_>>().join(" / ")
    };
    let disk: f64 = per.iter().map(|p| p.1).sum();
    writeln!(
        s,
        "| {what} | {:.0} | {:.1} ms | {:.1} ms | {:.0} | {} | {} | {:.0} |",
        get("msgs_per_s"),
        get("p50_us") / 1e3,
        get("p99_us") / 1e3,
        get("relay_cpu_us_per_msg"),
        cpu(0..masters),
        cpu(masters..per.len()),
        disk,
    )?;
    Ok(())
}

/// Runs the group and writes its section of BENCHMARKS.md.
pub fn run(root: &Path) -> Result<()> {
    tools::ensure_valkey(root)?;
    let setup = build(root)?;
    let cluster = ValkeyCluster::start(3);
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut s = String::new();
    writeln!(s, "## Relay on the cluster store\n")?;
    writeln!(
        s,
        "`cargo xtask bench relay-cluster`: the relay (`--store cluster`, defaults: 4 deposit lanes, \
         `WAITAOF 1 1`) on a Valkey {} cluster of 3 masters and 3 replicas (`appendonly yes`, \
         `appendfsync always`) on this same 2-core machine, {CONNECTIONS} connections in pairs, \
         {SIZE}-byte messages, 5 s measured after 1 s of warm-up. Valkey CPU and disk writes are per \
         delivered message over the whole run (set-up and drain included), from `/proc/PID/stat` and \
         `/proc/PID/io` of each server. Load average before: {}.\n",
        tools::valkey_version(root),
        load_before.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    )?;
    writeln!(
        s,
        "| run | msgs/s | p50 | p99 | relay CPU µs/msg | Valkey master CPU µs/msg (each) | Valkey replica CPU µs/msg (each) | bytes written to disk/msg (all six) |"
    )?;
    writeln!(s, "| --- | --- | --- | --- | --- | --- | --- | --- |")?;
    let node1 = start_node(&setup, &cluster, "bench-a")?;
    let (f, per) = measured(&setup, &cluster, &node1, None, None)?;
    row(&mut s, "one relay, closed loop (max)", &f, &per, cluster.masters)?;
    drop(node1);
    let node1 = start_node(&setup, &cluster, "bench-b")?;
    let node2 = start_node(&setup, &cluster, "bench-b")?;
    let (f, per) = measured(&setup, &cluster, &node1, Some(&node2), Some(CROSS_RATE))?;
    row(&mut s, &format!("across two relays, {CROSS_RATE} msgs/s"), &f, &per, cluster.masters)?;
    writeln!(
        s,
        "\nRelay CPU is the relay that the first connection of each pair uses (it deposits and delivers half). The closed loop keeps 2 048 messages in flight (the load generator's default budget), so its latency is that queue's; the fixed-rate row is the latency to expect."
    )?;
    drop((node1, node2));

    // Failover of shard 0: from `kill -9` of its master until its replica has taken over (deposits
    // to the shard then fail: it has no replica), and from the old master's restart until it is
    // the new master's replica again (deposits succeed again).
    let (master, replica) = (&cluster.nodes[0], &cluster.nodes[cluster.masters]);
    let killed = std::time::Instant::now();
    master.kill();
    wait("the replica takes over", || replica.role().as_deref() == Some("master"));
    let takeover = killed.elapsed();
    let restarted = std::time::Instant::now();
    master.start();
    wait("the old master is a replica again", || {
        master.info_field("replication", "master_link_status").as_deref() == Some("up")
            && replica.info_field("replication", "connected_slaves").as_deref() == Some("1")
    });
    let rejoined = restarted.elapsed();
    writeln!(
        s,
        "\nFailover of one shard (`cluster-node-timeout 1500`): {:.1} s from `kill -9` of its master \
         until its replica had taken over; deposits to that shard then fail (no replica) until the old \
         master is back as a replica: {:.1} s from its restart. Measured on the servers; a relay needs \
         one more failed deposit (a MOVED reply) to learn the new topology.",
        takeover.as_secs_f64(),
        rejoined.as_secs_f64(),
    )?;
    println!("{s}");
    super::write_section(&root.join("BENCHMARKS.md"), "relay-cluster", &s)
}
