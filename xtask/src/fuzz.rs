//! `cargo xtask fuzz`: every cargo-fuzz target for a while, then one table of what ran.
//!
//! Each target runs as `cargo +nightly fuzz run -O -a -s none <target> <scratch> fuzz/corpus/<target>
//! -- -max_total_time=<seconds> -print_final_stats=1`. libFuzzer writes new inputs only to the first
//! corpus directory, so the scratch directory (under the fuzz target dir) grows and the committed
//! seed corpus stays as it is. Crash inputs go where cargo-fuzz puts them, `fuzz/artifacts/<target>/`,
//! so they can be reproduced with `cargo +nightly fuzz run <target> <file>`.
//!
//! Build flags: release with debug assertions (`-O -a`), so integer overflow panics count as
//! crashes, and no AddressSanitizer (`-s none`): the workspace denies `unsafe_code`, so ASan would
//! mostly slow the run down; a sanitizer run is `cargo +nightly fuzz run <target>` by hand.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::tools;

/// What one libFuzzer run reported.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FuzzStats {
    /// Inputs executed.
    pub executions: u64,
    /// Average executions per second, as libFuzzer computed it.
    pub exec_per_sec: u64,
    /// Inputs added to the scratch corpus.
    pub new_units: u64,
    /// Peak resident memory, MB.
    pub peak_rss_mb: u64,
    /// Crashing (or leaking, or timing out) inputs libFuzzer wrote out.
    pub crashes: Vec<String>,
}

/// Parses libFuzzer's stderr: `-print_final_stats=1` lines (`stat::number_of_executed_units: N`),
/// falling back to the last `#N DONE ... exec/s: M` or status line when the stats are missing
/// (a crash stops libFuzzer before it prints them).
pub fn parse_libfuzzer_output(text: &str) -> FuzzStats {
    let mut stats = FuzzStats::default();
    let mut from_stats = false;
    for line in text.lines() {
        let line = line.trim();
        let stat = |name: &str| {
            line.strip_prefix(name).and_then(|rest| rest.trim_start_matches(':').trim().parse::<u64>().ok())
        };
        if let Some(n) = stat("stat::number_of_executed_units") {
            stats.executions = n;
            from_stats = true;
        } else if let Some(n) = stat("stat::average_exec_per_sec") {
            stats.exec_per_sec = n;
        } else if let Some(n) = stat("stat::new_units_added") {
            stats.new_units = n;
        } else if let Some(n) = stat("stat::peak_rss_mb") {
            stats.peak_rss_mb = n;
        } else if let Some(rest) = line.strip_prefix('#') {
            // `#1048576 pulse  cov: 812 ft: 2101 corp: 120/3911b lim: 4096 exec/s: 52428 rss: 61Mb`
            let mut words = rest.split_whitespace();
            let Some(n) = words.next().and_then(|w| w.parse::<u64>().ok()) else { continue };
            if !from_stats {
                stats.executions = stats.executions.max(n);
                let words: Vec<&str> = rest.split_whitespace().collect();
                if let Some(i) = words.iter().position(|w| *w == "exec/s:")
                    && let Some(v) = words.get(i + 1).and_then(|w| w.parse::<u64>().ok())
                {
                    stats.exec_per_sec = v;
                }
            }
        } else if let Some(rest) = line.split("Test unit written to ").nth(1) {
            stats.crashes.push(rest.trim().to_owned());
        }
    }
    stats
}

/// The fuzz targets, from the `[[bin]]` names in `fuzz/Cargo.toml`.
fn targets(fuzz_dir: &Path) -> Result<Vec<String>> {
    let manifest = std::fs::read_to_string(fuzz_dir.join("Cargo.toml")).context("reading fuzz/Cargo.toml")?;
    let mut names = Vec::new();
    let mut in_bin = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
        } else if in_bin && let Some(value) = line.strip_prefix("name") {
            let name = value.trim_start().trim_start_matches('=').trim().trim_matches('"');
            names.push(name.to_owned());
        }
    }
    if names.is_empty() {
        bail!("no [[bin]] targets in fuzz/Cargo.toml");
    }
    Ok(names)
}

/// Installs cargo-fuzz if it is missing and checks that a nightly toolchain is there.
fn ensure_cargo_fuzz(root: &Path) -> Result<()> {
    let path = tools::tool_path(root)?;
    let present = Command::new("cargo")
        .args(["fuzz", "--version"])
        .env("PATH", &path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !present {
        tools::run(Command::new("cargo").args(["install", "cargo-fuzz"]))?;
    }
    let nightly = Command::new("rustc")
        .args(["+nightly", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !nightly {
        bail!("cargo-fuzz needs a nightly toolchain: rustup toolchain install nightly --profile minimal");
    }
    Ok(())
}

/// Where the fuzz builds and the scratch corpora go: `DOORLESS_FUZZ_TARGET_DIR`, else
/// `target/fuzz` (kept apart from the stable builds, whose flags differ).
fn fuzz_target_dir(root: &Path) -> PathBuf {
    std::env::var_os("DOORLESS_FUZZ_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/fuzz"))
}

fn cargo_fuzz(root: &Path, verb: &str, target: &str, target_dir: &Path) -> Result<Command> {
    let mut cmd = Command::new("cargo");
    cmd.args(["+nightly", "fuzz", verb, "-O", "-a", "-s", "none", "--target-dir"])
        .arg(target_dir)
        .arg(target)
        .current_dir(root.join("fuzz"))
        .env("PATH", tools::tool_path(root)?)
        // The outer `cargo xtask` exports these for the stable toolchain; the nightly build must
        // not inherit them.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTC")
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO");
    Ok(cmd)
}

/// Runs each fuzz target (or one) for `seconds` and prints a table of executions and crashes.
pub fn fuzz(root: &Path, seconds: u64, target: Option<&str>) -> Result<()> {
    ensure_cargo_fuzz(root)?;
    let fuzz_dir = root.join("fuzz");
    let all = targets(&fuzz_dir)?;
    let chosen: Vec<String> = match target {
        Some(t) if all.iter().any(|a| a == t) => vec![t.to_owned()],
        Some(t) => bail!("no fuzz target `{t}`; the targets are: {}", all.join(", ")),
        None => all,
    };
    let target_dir = fuzz_target_dir(root);
    let scratch = target_dir.join("scratch-corpus");
    let logs = target_dir.join("logs");
    std::fs::create_dir_all(&logs)?;

    let mut rows = Vec::new();
    for name in &chosen {
        // Build first, so compile time is not part of the fuzzing time and a build error is
        // reported as one.
        tools::run(&mut cargo_fuzz(root, "build", name, &target_dir)?)?;
        let corpus = scratch.join(name);
        std::fs::create_dir_all(&corpus)?;
        std::fs::create_dir_all(fuzz_dir.join("artifacts").join(name))?;
        let log_path = logs.join(format!("{name}.log"));
        let log = File::create(&log_path)?;
        let mut cmd = cargo_fuzz(root, "run", name, &target_dir)?;
        cmd.arg(&corpus)
            .arg(fuzz_dir.join("corpus").join(name))
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .arg("-print_final_stats=1")
            .stdout(log.try_clone()?)
            .stderr(log);
        eprintln!("$ {}  (log: {})", tools::describe(&cmd), log_path.display());
        let status = cmd.status().with_context(|| format!("starting the fuzzer for {name}"))?;
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        let mut stats = parse_libfuzzer_output(&text);
        if !status.success() && stats.crashes.is_empty() {
            // It stopped for a reason libFuzzer did not write out an input for; show why.
            let tail: Vec<&str> = text.lines().rev().take(20).collect();
            eprintln!("{name} exited with {status}:");
            for line in tail.into_iter().rev() {
                eprintln!("  {line}");
            }
            stats.crashes.push(format!("(no input written; exit {status}; see {})", log_path.display()));
        }
        eprintln!(
            "{name}: {} executions, {} exec/s, {} crash(es)",
            stats.executions,
            stats.exec_per_sec,
            stats.crashes.len()
        );
        rows.push((name.clone(), stats));
    }

    println!("\n{:<16} {:>14} {:>10} {:>9} {:>8}", "target", "executions", "exec/s", "new units", "crashes");
    for (name, s) in &rows {
        println!(
            "{name:<16} {:>14} {:>10} {:>9} {:>8}",
            s.executions,
            s.exec_per_sec,
            s.new_units,
            s.crashes.len()
        );
    }
    println!(
        "({seconds} s per target; cargo +nightly fuzz run -O -a -s none <target> -- -max_total_time={seconds})"
    );
    let crashed: Vec<&(String, FuzzStats)> = rows.iter().filter(|(_, s)| !s.crashes.is_empty()).collect();
    if !crashed.is_empty() {
        for (name, s) in &crashed {
            for c in &s.crashes {
                eprintln!("crash in {name}: {c}");
            }
        }
        bail!("{} target(s) crashed", crashed.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_final_stats() {
        let text = "\
#2\tINITED cov: 10 ft: 11 corp: 4/99b exec/s: 0 rss: 40Mb
#1048576\tpulse  cov: 812 ft: 2101 corp: 120/3911b lim: 4096 exec/s: 52428 rss: 61Mb
#1200000\tDONE   cov: 812 ft: 2101 corp: 120/3911b lim: 4096 exec/s: 40000 rss: 61Mb
Done 1200000 runs in 30 second(s)
stat::number_of_executed_units: 1200001
stat::average_exec_per_sec:     40000
stat::new_units_added:          116
stat::slowest_unit_time_sec:    0
stat::peak_rss_mb:              61
";
        let s = parse_libfuzzer_output(text);
        assert_eq!(
            s,
            FuzzStats {
                executions: 1_200_001,
                exec_per_sec: 40_000,
                new_units: 116,
                peak_rss_mb: 61,
                crashes: vec![]
            }
        );
    }

    #[test]
    fn falls_back_to_status_lines_and_counts_a_crash() {
        let text = "\
#65536\tpulse  cov: 300 ft: 400 corp: 20/500b lim: 600 exec/s: 21845 rss: 50Mb
thread '<unnamed>' panicked at src/lib.rs:1:1:
==1234== ERROR: libFuzzer: deadly signal
artifact_prefix='/x/fuzz/artifacts/frame/'; Test unit written to /x/fuzz/artifacts/frame/crash-abc
";
        let s = parse_libfuzzer_output(text);
        assert_eq!(s.executions, 65_536);
        assert_eq!(s.exec_per_sec, 21_845);
        assert_eq!(s.crashes, vec!["/x/fuzz/artifacts/frame/crash-abc".to_owned()]);
    }

    #[test]
    fn lists_every_target_in_the_fuzz_manifest() {
        let root = tools::project_root().unwrap();
        let names = targets(&root.join("fuzz")).unwrap();
        for expected in [
            "invite",
            "short_invite",
            "attachment",
            "blobs",
            "envelope",
            "header",
            "session_state",
            "identity",
            "content",
            "frame",
            "stored_records",
        ] {
            assert!(names.iter().any(|n| n == expected), "{expected} missing from {names:?}");
        }
    }
}
