//! `cargo xtask bench [core|relay|relay-cluster|web]`: figures for BENCHMARKS.md, measured side by side in one run.

mod cluster;
mod core;
mod relay;
mod vm;
mod web;

use std::path::Path;

use anyhow::{Context, Result};

/// A benchmark group.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Group {
    /// Protocol core: native (criterion) and in headless Chromium, as a ratio.
    Core,
    /// Relay load test against a plain Node `ws` relay.
    Relay,
    /// The relay on the cluster store (a local Valkey cluster).
    RelayCluster,
    /// Web app: transfer size, first render, tab-to-tab latency.
    Web,
}

/// Runs one group, or all.
pub fn bench(root: &Path, group: Option<Group>) -> Result<()> {
    let groups = match group {
        Some(g) => vec![g],
        None => vec![Group::Core, Group::Relay, Group::RelayCluster, Group::Web],
    };
    for group in groups {
        match group {
            Group::Core => core::run(root)?,
            Group::Relay => relay::run(root)?,
            Group::RelayCluster => cluster::run(root)?,
            Group::Web => web::run(root)?,
        }
    }
    Ok(())
}

/// Replaces one group's section of BENCHMARKS.md, between `<!-- {group}:begin -->` and
/// `<!-- {group}:end -->`, leaving the other sections alone; appends it when absent and creates the
/// file when missing. Meant for every group (the obvious home is `bench/mod.rs`).
pub fn write_section(path: &Path, group: &str, section: &str) -> Result<()> {
    let (begin, end) = (format!("<!-- {group}:begin -->"), format!("<!-- {group}:end -->"));
    let block = format!("{begin}\n{section}{end}\n");
    let old = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            "# Benchmarks\n\nFigures measured by `cargo xtask bench [core|relay|relay-cluster|web]` on the project's kind of \
             machine. Each section is rewritten by its own group.\n"
                .to_owned()
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let new = match (old.find(&begin), old.find(&end)) {
        (Some(b), Some(e)) if b < e => {
            format!("{}{block}{}", &old[..b], old[e + end.len()..].trim_start_matches('\n'))
        }
        _ => format!("{}\n{block}", old.trim_end_matches('\n').to_owned() + "\n"),
    };
    std::fs::write(path, new).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("wrote the {group} section of {}", path.display());
    Ok(())
}

/// The first line a program prints on stdout (with `path` as PATH if given), or "unknown".
pub fn first_line(program: &str, args: &[&str], path: Option<&std::ffi::OsStr>) -> String {
    let mut cmd = std::process::Command::new(program);
    cmd.args(args).stderr(std::process::Stdio::null());
    if let Some(path) = path {
        cmd.env("PATH", path);
    }
    cmd.output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).lines().next().map(|l| l.trim().to_owned()))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The CPU model from /proc/cpuinfo, or "unknown".
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "unknown".to_owned())
}
