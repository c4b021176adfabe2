//! A Valkey cluster on loopback for tests written in other languages (the browser end-to-end
//! tests): `valkey-cluster MASTERS` starts MASTERS masters with one replica each (the same cluster
//! the relay's Rust tests use), prints `valkey cluster ready: HOST:PORT,...` (every node) on stdout
//! once it is healthy, and runs until its stdin closes. Then the servers are killed and their
//! directory removed; if this process is killed instead, each server's guard still kills it (see
//! the crate docs).

use std::io::Read;

fn main() {
    let masters = match std::env::args().nth(1).map(|a| a.parse::<usize>()) {
        None => 3,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("usage: valkey-cluster [MASTERS] (a positive number; default 3)");
            std::process::exit(2);
        }
    };
    let cluster = valkey_harness::ValkeyCluster::start(masters);
    println!("valkey cluster ready: {}", cluster.seeds().join(","));
    // Whatever stdin carries, its end is the signal to stop.
    let _ = std::io::stdin().lock().read_to_end(&mut Vec::new());
    drop(cluster);
}
