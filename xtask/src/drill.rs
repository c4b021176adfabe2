//! `cargo xtask drill`: the subpoena drill.
//!
//! Builds and starts the real relay binary with its default logging, runs a real conversation
//! between two client engines through it over WebSockets, stops it, and then reads back everything
//! an operator could be ordered to hand over: every byte of its data directory, the rows of its
//! store, and its logs. It fails if any of them holds a plaintext, a display name, an identity key,
//! a client's IP address, or (in the logs) a mailbox id or ciphertext.
//!
//! The same code runs as the test `drill::tests::relay_keeps_nothing_identifying` (part of
//! `cargo xtask test`); the command prints the full report.

mod cluster;
mod conversation;
mod evidence;
mod relays;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};

pub use evidence::Evidence;

/// How long the relay may take to start or to stop.
const PROCESS_DEADLINE: Duration = Duration::from_secs(30);

/// Builds the relay binary and returns its path.
fn build_relay(root: &Path) -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["build", "-p", "relay", "--bin", "relay", "--message-format=json"])
        .current_dir(root)
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo build -p relay")?;
    if !out.status.success() {
        bail!("cargo build -p relay failed");
    }
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        if msg["reason"] == "compiler-artifact"
            && msg["target"]["name"] == "relay"
            && let Some(exe) = msg["executable"].as_str()
        {
            return Ok(PathBuf::from(exe));
        }
    }
    bail!("cargo build -p relay did not report the relay executable")
}

/// A scratch directory, removed when the drill passes (kept for inspection when it fails).
fn scratch_dir() -> Result<PathBuf> {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
    let dir = std::env::temp_dir().join(format!("doorless-drill-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The relay process, its address, and what it wrote to stdout.
struct RunningRelay {
    child: Child,
    addr: SocketAddr,
    stdout: mpsc::Receiver<String>,
    /// Lines printed before (and including) the address announcement.
    first_lines: Vec<String>,
}

/// Starts the relay with `store_args` (which store, where) and otherwise its defaults.
fn start_relay(exe: &Path, store_args: &[std::ffi::OsString], stderr_log: &Path) -> Result<RunningRelay> {
    let mut cmd = Command::new(exe);
    cmd.args(["--listen", "127.0.0.1:0"])
        .args(store_args)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(stderr_log)?);
    // Defaults only: no inherited DOORLESS_* flag (such as DOORLESS_LOG) may change the level.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("DOORLESS_") {
            cmd.env_remove(key);
        }
    }
    let mut child = cmd.spawn().with_context(|| format!("starting {}", exe.display()))?;
    let stdout = child.stdout.take().context("relay stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + PROCESS_DEADLINE;
    let mut first_lines = Vec::new();
    let addr = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let announced =
                    line.strip_prefix("doorless relay listening on http://").map(|a| a.trim().to_owned());
                first_lines.push(line);
                if let Some(addr) = announced {
                    break addr.parse::<SocketAddr>().context("parsing the relay's address")?;
                }
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("the relay did not announce its address within {PROCESS_DEADLINE:?}");
            }
        }
    };
    Ok(RunningRelay { child, addr, stdout: rx, first_lines })
}

/// Stops the relay gracefully (SIGTERM, so the store is closed cleanly) and waits for it.
fn stop_relay(relay: RunningRelay) -> Result<Vec<String>> {
    let RunningRelay { mut child, stdout, first_lines, .. } = relay;
    let pid = child.id().to_string();
    let signalled = Command::new("kill").args(["-TERM", &pid]).status().is_ok_and(|s| s.success());
    if !signalled {
        child.kill()?;
    }
    // std has no wait with a timeout: wait on a thread, and give up at the deadline.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let status = match rx.recv_timeout(PROCESS_DEADLINE) {
        Ok(status) => status?,
        Err(_) => {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
            bail!("the relay did not stop within {PROCESS_DEADLINE:?} of SIGTERM");
        }
    };
    if !status.success() {
        bail!("the relay exited with {status}");
    }
    // The reader thread ends when the pipe closes; collect what it read.
    let mut lines = first_lines;
    while let Ok(line) = stdout.recv_timeout(PROCESS_DEADLINE) {
        lines.push(line);
    }
    Ok(lines)
}

/// Captured logs: (name, bytes).
type Logs = Vec<(String, Vec<u8>)>;

/// One relay of a drill: its store arguments (which store, where) and the file its stderr goes to.
struct Setup {
    store_args: Vec<std::ffi::OsString>,
    stderr_log: PathBuf,
}

/// What one relay of a drill left: its address and its logs (stdout, stderr).
struct Ran {
    addr: SocketAddr,
    logs: Logs,
}

/// Starts one relay per `setups` entry, runs the conversation through them (Alice's home is the
/// first, Bob's the last), stops them; returns each relay's address and logs, and the transcript.
fn converse(exe: &Path, setups: &[Setup]) -> Result<(Vec<Ran>, conversation::Transcript)> {
    let mut running = Vec::new();
    for setup in setups {
        match start_relay(exe, &setup.store_args, &setup.stderr_log) {
            Ok(relay) => running.push(relay),
            Err(e) => {
                for relay in running {
                    let _ = stop_relay(relay);
                }
                return Err(e);
            }
        }
    }
    let addrs: Vec<SocketAddr> = running.iter().map(|r| r.addr).collect();
    let (Some(first), Some(last)) = (addrs.first(), addrs.last()) else { bail!("a drill needs a relay") };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let transcript = runtime.block_on(conversation::run([*first, *last]));
    let mut ran = Vec::new();
    for (relay, setup) in running.into_iter().zip(setups) {
        let addr = relay.addr;
        let stdout = stop_relay(relay)?;
        let stdout_bytes = stdout.iter().flat_map(|l| [l.as_bytes(), b"\n"]).flatten().copied().collect();
        let logs = vec![
            ("stdout".to_owned(), stdout_bytes),
            ("stderr".to_owned(), std::fs::read(&setup.stderr_log)?),
        ];
        ran.push(Ran { addr, logs });
    }
    Ok((ran, transcript?))
}

/// Runs the whole drill and returns what was found. `Evidence::problems` is empty when the relay
/// kept nothing identifying.
pub fn run_drill(root: &Path) -> Result<Evidence> {
    let exe = build_relay(root)?;
    let scratch = scratch_dir()?;
    let data_dir = scratch.join("data");
    let stderr_log = scratch.join("relay.stderr.log");
    let setup = Setup { store_args: vec!["--data-dir".into(), data_dir.clone().into()], stderr_log };
    let (ran, transcript) = converse(&exe, &[setup])?;
    let Ran { addr, logs } = ran.into_iter().next().context("the relay's logs")?;
    let mut ev = evidence::examine(&data_dir, &logs, addr, &transcript)?;

    let mut head = vec![
        "Subpoena drill: what a Doorless relay holds after a conversation".to_owned(),
        format!(
            "Relay: {} --listen 127.0.0.1:0 --data-dir <scratch>/data (default log level)",
            exe.display()
        ),
        format!(
            "Conversation: {:?} and {:?} from {}, {} texts ({} left undelivered), {} deposits",
            conversation::ALICE,
            conversation::BOB,
            transcript.client_addrs.iter().map(|a| a.ip().to_string()).collect::<Vec<_>>().join(", "),
            transcript.texts.len(),
            1,
            transcript.deposits.len(),
        ),
    ];
    if ev.stored_blobs == 0 {
        ev.problems.push("the store holds no blob: the undelivered text should be there".into());
    }
    if ev.log_lines == 0 {
        ev.problems.push("no log line was captured: the log check would be vacuous".into());
    }
    head.append(&mut ev.report);
    ev.report = head;
    ev.report.push(if ev.problems.is_empty() {
        "Verdict: PASS (only random ids, ciphertext, times and counters)".to_owned()
    } else {
        format!("Verdict: FAIL ({} problem(s)); files kept in {}", ev.problems.len(), scratch.display())
    });
    if ev.problems.is_empty() {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    Ok(ev)
}

/// Runs the drill on both stores and prints what the relay holds.
pub fn drill(root: &Path) -> Result<()> {
    let embedded = run_drill(root)?;
    let clustered = cluster::run_cluster_drill(root)?;
    let two = relays::run_two_relay_drill(root)?;
    let blank = [String::new()];
    for line in embedded.report.iter().chain(&blank).chain(&clustered.report).chain(&blank).chain(&two.report)
    {
        println!("{line}");
    }
    if !embedded.problems.is_empty() || !clustered.problems.is_empty() || !two.problems.is_empty() {
        bail!("the relay kept something identifying");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn relay_keeps_nothing_identifying() {
        let root = crate::tools::project_root().unwrap();
        let ev = super::run_drill(&root).unwrap();
        assert!(ev.problems.is_empty(), "{}", ev.report.join("\n"));
        assert!(ev.stored_blobs >= 1);
    }

    #[test]
    fn two_relays_hold_no_contact_graph() {
        let root = crate::tools::project_root().unwrap();
        let ev = super::relays::run_two_relay_drill(&root).unwrap();
        assert!(ev.problems.is_empty(), "{}", ev.report.join("\n"));
        assert!(ev.stored_blobs >= 1);
    }

    #[test]
    fn relay_on_a_cluster_keeps_nothing_identifying_and_a_rewrite_clears_acknowledged_ciphertext() {
        let root = crate::tools::project_root().unwrap();
        let ev = super::cluster::run_cluster_drill(&root).unwrap();
        assert!(ev.problems.is_empty(), "{}", ev.report.join("\n"));
        assert!(ev.stored_blobs >= 1);
    }
}
