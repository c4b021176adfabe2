//! The `web` benchmark group.

use std::path::Path;

use anyhow::{Result, bail};

/// Runs the group and prints its figures.
pub fn run(_root: &Path) -> Result<()> {
    bail!("the web benchmark is not written yet")
}
