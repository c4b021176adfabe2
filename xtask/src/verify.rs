//! `cargo xtask verify <url>`: compare a served app with a local build.

use std::path::Path;

use anyhow::{Result, bail};

/// Fetches the served app and compares it with a local release build.
pub fn verify(_root: &Path, _url: &str) -> Result<()> {
    bail!("verify is not written yet")
}
