//! The release build of the web app: Trunk, the service worker that pins it (docs/offline.md), then
//! precompression for the relay's static hosting.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use sha2::{Digest, Sha384};

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
    write_service_worker(root, &dist)?;
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

/// The service worker's file name in `dist/` (a fixed name: the browser checks it for updates).
pub const SERVICE_WORKER: &str = "sw.js";
/// Where `web/sw.js` takes the list of pinned files.
const FILES_PLACEHOLDER: &str = "  /* FILES */\n";

/// `sha384-<base64>` of `bytes`, as in an `integrity` attribute and in the service worker's list.
pub fn sri_sha384(bytes: &[u8]) -> String {
    format!("sha384-{}", base64::engine::general_purpose::STANDARD.encode(Sha384::digest(bytes)))
}

/// Every file of the build (not the worker itself, not the precompressed siblings) by its URL
/// path, with its SHA-384.
fn pinned_files(dist: &Path) -> Result<BTreeMap<String, String>> {
    let mut files = BTreeMap::new();
    let mut dirs = vec![dist.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let relative = path.strip_prefix(dist)?.to_string_lossy().replace('\\', "/");
            let compressed = matches!(path.extension().and_then(|e| e.to_str()), Some("br" | "gz"));
            if compressed || relative == SERVICE_WORKER {
                continue;
            }
            if !relative.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/')) {
                bail!("{relative}: a file name the service worker list cannot hold");
            }
            files.insert(format!("/{relative}"), sri_sha384(&std::fs::read(&path)?));
        }
    }
    Ok(files)
}

/// The lines of `FILES` in the worker: `  "/path": "sha384-…",`.
fn files_lines(files: &BTreeMap<String, String>) -> String {
    files.iter().map(|(path, hash)| format!("  \"{path}\": \"{hash}\",\n")).collect()
}

/// The `(path, hash)` pairs a worker script pins, read back from its `FILES` lines (for
/// `cargo xtask verify`, which checks a served worker against the files served with it).
pub fn read_pinned(worker: &str) -> Vec<(String, String)> {
    let Some(start) = worker.find("const FILES = {\n") else { return Vec::new() };
    worker[start..]
        .lines()
        .skip(1)
        .take_while(|line| line.trim() != "};")
        .filter_map(|line| {
            let line = line.trim().strip_suffix(',')?;
            let (path, hash) = line.split_once(": ")?;
            Some((path.trim_matches('"').to_owned(), hash.trim_matches('"').to_owned()))
        })
        .collect()
}

/// Writes `dist/sw.js` from `web/sw.js` with the list of the build's files and their hashes.
fn write_service_worker(root: &Path, dist: &Path) -> Result<()> {
    let template =
        std::fs::read_to_string(root.join("web").join(SERVICE_WORKER)).context("reading web/sw.js")?;
    if !template.contains(FILES_PLACEHOLDER) {
        bail!("web/sw.js has no `/* FILES */` line to fill in");
    }
    let files = pinned_files(dist)?;
    if !files.contains_key("/index.html") {
        bail!("the build has no index.html");
    }
    let worker = template.replacen(FILES_PLACEHOLDER, &files_lines(&files), 1);
    std::fs::write(dist.join(SERVICE_WORKER), worker)?;
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worker_pins_every_file_and_its_list_reads_back() {
        let dir = std::env::temp_dir().join(format!("doorless-sw-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("dist/snippets")).unwrap();
        std::fs::create_dir_all(dir.join("web")).unwrap();
        std::fs::write(dir.join("web/sw.js"), "const FILES = {\n  /* FILES */\n};\nrest();\n").unwrap();
        std::fs::write(dir.join("dist/index.html"), "<html>").unwrap();
        std::fs::write(dir.join("dist/index.html.br"), "compressed").unwrap();
        std::fs::write(dir.join("dist/app-0123.wasm"), [0u8, 1, 2]).unwrap();
        std::fs::write(dir.join("dist/snippets/a.js"), "x").unwrap();
        write_service_worker(&dir, &dir.join("dist")).unwrap();
        let worker = std::fs::read_to_string(dir.join("dist/sw.js")).unwrap();
        assert!(worker.ends_with("};\nrest();\n"), "{worker}");
        assert_eq!(
            read_pinned(&worker),
            vec![
                ("/app-0123.wasm".to_owned(), sri_sha384(&[0, 1, 2])),
                ("/index.html".to_owned(), sri_sha384(b"<html>")),
                ("/snippets/a.js".to_owned(), sri_sha384(b"x")),
            ]
        );
        // A changed file changes the worker's bytes.
        std::fs::write(dir.join("dist/index.html"), "<html> ").unwrap();
        write_service_worker(&dir, &dir.join("dist")).unwrap();
        assert_ne!(std::fs::read_to_string(dir.join("dist/sw.js")).unwrap(), worker);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
