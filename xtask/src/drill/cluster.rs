//! The drill against the cluster store: the same conversation through a relay on a Valkey cluster
//! (one master, one replica), then what an operator could hand over there: every file of both
//! servers (AOF, cluster configuration, server log), everything `SCAN` finds, and the relay's logs.
//! It also measures how long acknowledged ciphertext stays readable in the AOF: until the AOF is
//! rewritten (`BGREWRITEAOF`), which the drill then does, and counts again.

use std::path::Path;

use anyhow::{Context, Result};
use redis::Value;
use valkey_harness::{Node, ValkeyCluster, wait};

use super::evidence::{self, Evidence};
use super::{Ran, Setup, build_relay, converse, scratch_dir};
use crate::tools;

/// Every byte string in a reply, in order (keys, ids, field names, payloads).
fn flatten(value: &Value, out: &mut Vec<Vec<u8>>) {
    match value {
        Value::BulkString(bytes) => out.push(bytes.clone()),
        Value::SimpleString(text) => out.push(text.clone().into_bytes()),
        Value::Int(n) => out.push(n.to_string().into_bytes()),
        Value::Array(items) | Value::Set(items) => items.iter().for_each(|v| flatten(v, out)),
        Value::Map(pairs) => pairs.iter().for_each(|(k, v)| {
            flatten(k, out);
            flatten(v, out);
        }),
        _ => {}
    }
}

/// Every key of the master with its type and contents: the dump (one byte string per line) to
/// search, the mailbox ids in the key names, and the number of stored blobs.
fn scan_dump(master: &Node, ev: &mut Evidence) -> Result<(Vec<u8>, Vec<[u8; 32]>, usize)> {
    let mut dump = Vec::new();
    let mut mailbox_ids = Vec::new();
    let mut stored = 0;
    let mut cursor = "0".to_owned();
    loop {
        let reply = master.query(&["SCAN", &cursor, "COUNT", "1000"]).context("SCAN")?;
        let (next, keys): (String, Vec<String>) = redis::from_redis_value(reply).context("SCAN reply")?;
        for key in keys {
            let kind = master.text(&["TYPE", &key]);
            let contents = match kind.as_str() {
                "stream" => master.query(&["XRANGE", &key, "-", "+"])?,
                "hash" => master.query(&["HGETALL", &key])?,
                _ => Value::Nil,
            };
            let mut parts = Vec::new();
            flatten(&contents, &mut parts);
            let tag = key.split_once('{').and_then(|(_, rest)| rest.split_once('}')).map(|(tag, _)| tag);
            let id = tag.and_then(|t| hex::decode(t).ok()).and_then(|b| <[u8; 32]>::try_from(b).ok());
            let shown = match (tag, id) {
                (Some(tag), Some(_)) => key.replace(tag, &format!("{}…", &tag[..12])),
                _ => key.clone(),
            };
            if let Some(id) = id
                && !mailbox_ids.contains(&id)
            {
                mailbox_ids.push(id);
            }
            let detail = match kind.as_str() {
                "stream" => {
                    // Each entry is id, "p", payload.
                    let entries = parts.len() / 3;
                    stored += entries;
                    let sizes: Vec<String> =
                        parts.chunks(3).map(|e| format!("{} bytes", e[2].len())).collect();
                    format!(
                        "{entries} entr(y/ies): id = sequence number, field p = payload ({})",
                        sizes.join(", ")
                    )
                }
                "hash" => format!(
                    "quota counters {}",
                    parts
                        .chunks(2)
                        .map(|p| format!(
                            "{}={}",
                            String::from_utf8_lossy(&p[0]),
                            String::from_utf8_lossy(p.get(1).map_or(&[][..], |v| v))
                        ))
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
                other => {
                    ev.problem(format!("key of unexpected type {other}: review what it stores"));
                    String::new()
                }
            };
            ev.line(format!("  {shown} ({kind}): {detail}"));
            dump.extend_from_slice(key.as_bytes());
            dump.push(b'\n');
            for part in parts {
                dump.extend_from_slice(&part);
                dump.push(b'\n');
            }
        }
        if next == "0" {
            break;
        }
        cursor = next;
    }
    Ok((dump, mailbox_ids, stored))
}

/// The AOF files of every node, named `nodeI/appendonlydir/...`.
fn aof_files(cluster: &ValkeyCluster) -> Result<Vec<(String, Vec<u8>)>> {
    let mut quiet = Evidence::default();
    let mut files = Vec::new();
    for (i, node) in cluster.nodes.iter().enumerate() {
        for (name, bytes) in evidence::read_files(&node.dir().join("appendonlydir"), &mut quiet)? {
            files.push((format!("node{i}/appendonlydir/{name}"), bytes));
        }
    }
    Ok(files)
}

/// Runs the drill on the cluster store and returns what was found.
pub fn run_cluster_drill(root: &Path) -> Result<Evidence> {
    tools::ensure_valkey(root)?;
    let exe = build_relay(root)?;
    let scratch = scratch_dir()?;
    let stderr_log = scratch.join("relay.stderr.log");
    let cluster = ValkeyCluster::start_with(1, 1, true);
    // The relay's own data directory holds only attachment blobs with this store (none are sent).
    let store_args = vec![
        "--data-dir".into(),
        scratch.join("data").into(),
        "--store".into(),
        "cluster".into(),
        "--cluster-nodes".into(),
        cluster.seeds().join(",").into(),
    ];
    let (ran, transcript) = converse(&exe, &[Setup { store_args, stderr_log }])?;
    let Ran { addr, logs } = ran.into_iter().next().context("the relay's logs")?;

    let mut ev = Evidence::default();
    ev.line("Subpoena drill on the cluster store: one Valkey master and its replica");
    ev.line("Files of the Valkey nodes (AOF, cluster configuration, server log):");
    let mut files = Vec::new();
    for (i, node) in cluster.nodes.iter().enumerate() {
        ev.line(format!(" node{i} ({}):", if i == 0 { "master" } else { "replica" }));
        for (name, bytes) in evidence::read_files(node.dir(), &mut ev)? {
            files.push((format!("node{i}/{name}"), bytes));
        }
    }
    ev.line("SCAN of the master (every key, its type and contents):");
    let (dump, mailbox_ids, stored) = scan_dump(&cluster.nodes[0], &mut ev)?;
    ev.stored_blobs = stored;
    files.push(("SCAN dump".to_owned(), dump));
    evidence::search(&mut ev, &files, &logs, addr, &transcript, &mailbox_ids);

    // Acknowledged ciphertext: gone from SCAN at once, still in the AOF until it is rewritten.
    let deposits = transcript.deposits.len();
    let before = evidence::readable_deposits(&aof_files(&cluster)?, &transcript);
    for node in &cluster.nodes {
        node.query(&["BGREWRITEAOF"]).context("BGREWRITEAOF")?;
    }
    for node in &cluster.nodes {
        wait("the AOF rewrite finished", || {
            node.info_field("persistence", "aof_rewrite_in_progress").as_deref() == Some("0")
                && node.info_field("persistence", "aof_rewrite_scheduled").as_deref() == Some("0")
                && node.info_field("persistence", "aof_last_bgrewrite_status").as_deref() == Some("ok")
        });
    }
    let after = evidence::readable_deposits(&aof_files(&cluster)?, &transcript);
    ev.line(format!(
        "AOF retention: {before} of the {deposits} deposited payload(s) readable in the AOF files \
         (master and replica) before a rewrite, {after} after BGREWRITEAOF; {stored} still stored \
         (undelivered) per SCAN."
    ));
    if after > stored {
        ev.problem(format!("{} acknowledged payload(s) still in the AOF after a rewrite", after - stored));
    }
    if stored == 0 {
        ev.problem("the cluster holds no blob: the undelivered text should be there");
    }
    if ev.log_lines == 0 {
        ev.problem("no log line was captured: the log check would be vacuous");
    }
    ev.line(if ev.problems.is_empty() {
        "Verdict: PASS (only random ids, ciphertext, times and counters)".to_owned()
    } else {
        format!("Verdict: FAIL ({} problem(s))", ev.problems.len())
    });
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(ev)
}
