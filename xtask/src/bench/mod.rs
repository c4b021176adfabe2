//! `cargo xtask bench [core|relay|web]`: figures for BENCHMARKS.md, measured side by side in one run.

mod core;
mod relay;
mod web;

use std::path::Path;

use anyhow::Result;

/// A benchmark group.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Group {
    /// Protocol core: native (criterion) and in headless Chromium, as a ratio.
    Core,
    /// Relay load test against a plain Node `ws` relay.
    Relay,
    /// Web app: transfer size, first render, tab-to-tab latency.
    Web,
}

/// Runs one group, or all.
pub fn bench(root: &Path, group: Option<Group>) -> Result<()> {
    let groups = match group {
        Some(g) => vec![g],
        None => vec![Group::Core, Group::Relay, Group::Web],
    };
    for group in groups {
        match group {
            Group::Core => core::run(root)?,
            Group::Relay => relay::run(root)?,
            Group::Web => web::run(root)?,
        }
    }
    Ok(())
}
