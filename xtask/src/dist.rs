//! The release build of the web app: Trunk, then precompression for the relay's static hosting.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::tools::{self, WebTools};

/// Builds `dist/` in release mode and writes `.br` and `.gz` siblings of every compressible file.
pub fn build_web(root: &Path, tools: &WebTools) -> Result<PathBuf> {
    let dist = root.join("dist");
    tools::run(
        Command::new("trunk")
            .args(["build", "--release", "--config", "Trunk.toml"])
            .current_dir(root)
            .env("PATH", &tools.path)
            // Reproducible output: no absolute paths of this checkout in the wasm.
            .env("RUSTFLAGS", remap_flags(root))
            .env("CARGO_TARGET_DIR", root.join("target/web")),
    )?;
    precompress(&dist)?;
    eprintln!("built the web app into {} (wasm-bindgen {})", dist.display(), tools.wasm_bindgen_version);
    Ok(dist)
}

/// `--remap-path-prefix` for the checkout and cargo's registry, so two clones build the same bytes.
fn remap_flags(root: &Path) -> String {
    let mut flags = format!("--remap-path-prefix={}=/doorless", root.display());
    if let Some(home) = std::env::var_os("CARGO_HOME")
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo").into_os_string()))
    {
        flags.push_str(&format!(" --remap-path-prefix={}=/cargo", PathBuf::from(home).display()));
    }
    flags
}

fn precompress(dist: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dist).context("reading dist/")? {
        let path = entry?.path();
        let compressible = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("html" | "js" | "wasm" | "css" | "svg" | "json" | "txt")
        );
        if !path.is_file() || !compressible {
            continue;
        }
        let data = std::fs::read(&path)?;

        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&data)?;
        std::fs::write(with_suffix(&path, "gz"), gz.finish()?)?;

        let mut br = Vec::new();
        let params = brotli::enc::BrotliEncoderParams { quality: 11, lgwin: 22, ..Default::default() };
        brotli::BrotliCompress(&mut data.as_slice(), &mut br, &params)?;
        std::fs::write(with_suffix(&path, "br"), br)?;
    }
    Ok(())
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}
