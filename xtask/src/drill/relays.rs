//! The drill on two relays: Alice's home is relay 1 and Bob's relay 2, so each deposits on the
//! other's relay over a connection of its own. Each relay is examined as in the one-relay drill,
//! and then for the contact graph: nothing relay 2 holds, logged or was sent names a mailbox on
//! relay 1 (and the other way round), and no connection subscribed on a relay that is not its
//! tab's home. So relay 2 sees a depositor's address and timing, which SECURITY.md states, but
//! cannot tell which mailbox on relay 1 that depositor reads.

use std::path::Path;

use anyhow::{Context, Result};

use super::evidence::{self, Evidence};
use super::{Setup, build_relay, conversation, converse, scratch_dir};

/// Runs the conversation across two relays and examines both.
pub fn run_two_relay_drill(root: &Path) -> Result<Evidence> {
    let exe = build_relay(root)?;
    let scratch = scratch_dir()?;
    let dirs = [scratch.join("relay1"), scratch.join("relay2")];
    let setups: Vec<Setup> = dirs
        .iter()
        .enumerate()
        .map(|(i, dir)| Setup {
            store_args: vec!["--data-dir".into(), dir.into()],
            stderr_log: scratch.join(format!("relay{}.stderr.log", i + 1)),
        })
        .collect();
    let (ran, transcript) = converse(&exe, &setups)?;

    let mut ev = Evidence::default();
    ev.line("Subpoena drill on two relays: Alice's home is relay 1, Bob's is relay 2");
    let homes = [conversation::ALICE, conversation::BOB];
    let mut held = Vec::new();
    for (i, (relay, dir)) in ran.iter().zip(&dirs).enumerate() {
        ev.line(format!("Relay {} ({}'s home), {}:", i + 1, homes[i], relay.addr));
        let one = evidence::examine(dir, &relay.logs, relay.addr, &transcript)?;
        ev.report.extend(one.report.into_iter().map(|line| format!("  {line}")));
        ev.problems.extend(one.problems);
        ev.log_lines += one.log_lines;
        ev.stored_blobs += one.stored_blobs;
        held.push(one.mailbox_ids);
    }

    ev.line("Contact graph:");
    for (i, relay) in ran.iter().enumerate() {
        let other = 1 - i;
        if held[other].is_empty() {
            ev.problem(format!(
                "relay {} holds no mailbox: the contact-graph check would be vacuous",
                other + 1
            ));
        }
        // What relay i could hand over or could have recorded: its files, its logs, and every
        // frame sent to it.
        let mut places = evidence::read_files(&dirs[i], &mut Evidence::default())?;
        places.extend(relay.logs.iter().map(|(name, bytes)| (format!("log {name}"), bytes.clone())));
        let mut foreign_depositors = 0;
        for conn in transcript.connections.iter().filter(|c| c.relay == relay.addr) {
            ev.line(format!(
                "  a connection from {}'s tab to relay {} ({}): {}, {} deposit(s)",
                conn.peer,
                i + 1,
                if conn.home { "its home" } else { "a contact's relay" },
                if conn.subscribed { "subscribed" } else { "no subscription" },
                conn.deposits,
            ));
            if !conn.home {
                if conn.subscribed {
                    ev.problem(format!(
                        "{}'s tab subscribed on relay {}, which is not its home",
                        conn.peer,
                        i + 1
                    ));
                }
                if conn.deposits > 0 {
                    foreign_depositors += 1;
                }
            }
            places.push((format!("frames {} sent", conn.peer), conn.sent.clone()));
        }
        if foreign_depositors == 0 {
            ev.problem(format!(
                "nobody from another relay deposited on relay {}: the contact-graph check would be vacuous",
                i + 1
            ));
        }
        let mut hits = 0;
        for id in &held[other] {
            let found = evidence::occurrences(&places, id);
            if !found.is_empty() {
                hits += 1;
                ev.problem(format!(
                    "relay {}'s mailbox {} is known to relay {}: {}",
                    other + 1,
                    evidence::short_id(id),
                    i + 1,
                    found.join("; ")
                ));
            }
        }
        if hits == 0 {
            ev.line(format!(
                "  none of relay {}'s {} mailbox id(s) is in relay {}'s files, logs or the frames sent to it",
                other + 1,
                held[other].len(),
                i + 1
            ));
        }
    }
    if ev.stored_blobs == 0 {
        ev.problems.push("neither relay holds a blob: the undelivered text should be on relay 2".into());
    }
    ev.line(if ev.problems.is_empty() {
        "Verdict: PASS (each relay holds only its own mailboxes; depositors from the other relay never subscribe)"
            .to_owned()
    } else {
        format!("Verdict: FAIL ({} problem(s)); files kept in {}", ev.problems.len(), scratch.display())
    });
    if ev.problems.is_empty() {
        std::fs::remove_dir_all(&scratch).context("removing the drill's scratch directory")?;
    }
    Ok(ev)
}
