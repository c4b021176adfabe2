//! `cargo xtask run`: build everything and start a relay serving the app.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

use crate::{dist, tools};

/// Builds the release web app and the relay, then replaces this process with the relay, so Ctrl-C
/// and SIGTERM reach the relay directly and it shuts down cleanly.
pub fn run(root: &Path, listen: &str, data_dir: &Path) -> Result<()> {
    let toolset = tools::ensure_web_tools(root)?;
    let dist = dist::build_web(root, &toolset)?;
    tools::run(
        Command::new("cargo").args(["build", "--profile", "server", "-p", "relay"]).current_dir(root),
    )?;
    std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;

    let relay = root.join("target/server/relay");
    eprintln!();
    eprintln!("Doorless is starting: open http://{listen}/ in a browser (Ctrl-C stops it).");
    eprintln!("Data directory: {}", data_dir.display());
    let mut cmd = Command::new(relay);
    cmd.arg("--listen").arg(listen).arg("--data-dir").arg(data_dir).arg("--static-dir").arg(&dist);
    exec(cmd)
}

#[cfg(unix)]
fn exec(mut cmd: Command) -> Result<()> {
    use std::os::unix::process::CommandExt;
    Err(cmd.exec()).context("starting the relay")
}

#[cfg(not(unix))]
fn exec(mut cmd: Command) -> Result<()> {
    let status = cmd.status().context("starting the relay")?;
    anyhow::ensure!(status.success(), "relay exited with {status}");
    Ok(())
}
