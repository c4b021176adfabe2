//! The `web` benchmark group: transfer size of the app, first render, tab -> relay -> tab latency
//! and attachment throughput in headless Chromium, on the release build served by the real relay.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

use crate::{dist, tools};

/// Goals from the issue.
const GOAL_BROTLI_KB: f64 = 200.0;
const GOAL_FIRST_RENDER_MS: f64 = 250.0;
const GOAL_P50_MS: f64 = 2.0;
const GOAL_P99_MS: f64 = 5.0;
/// Attachment upload and download throughput on loopback (issue 14).
const GOAL_ATTACHMENT_MB_S: f64 = 150.0;

/// Builds, measures, prints, and writes the Web section of BENCHMARKS.md.
pub fn run(root: &Path) -> Result<()> {
    let toolset = tools::ensure_web_tools(root)?;
    tools::ensure_chromium()?;
    let dist = dist::build_web(root, &toolset)?;
    tools::run(
        Command::new("cargo").args(["build", "-p", "relay", "--profile", "server"]).current_dir(root),
    )?;
    tools::ensure_e2e_packages(root)?;

    let sizes = transfer_sizes(&dist)?;
    eprintln!("measuring first render and latency in Chromium (1,000 messages; a few minutes)");
    let result = node_bench(root, &dist, "bench/web.mjs")?;
    eprintln!("measuring what each additional relay costs the tab");
    let relays = node_bench(root, &dist, "bench/relays.mjs")?;
    let figure = |path: &[&str]| figure_at(&result, path);
    let render = figure(&["first_render_ms", "p50"]);
    let (p50, p99, p999) =
        (figure(&["latency_ms", "p50"]), figure(&["latency_ms", "p99"]), figure(&["latency_ms", "p999"]));

    let met = |ok: bool| if ok { "yes" } else { "no" };
    let mut section = String::new();
    writeln!(section, "## Web app\n")?;
    writeln!(
        section,
        "Command: `cargo xtask bench web` (release build from `cargo xtask dist`, relay built with \
         `--profile server` and its default redb store, Debian Chromium headless on loopback). \
         Latency is measured from the click on Send in tab A to the text appearing in tab B, \
         through the whole app path: encrypt, save to IndexedDB, relay (durable fsync'd deposit), \
         decrypt, save, render.\n"
    )?;
    writeln!(section, "| figure | value | goal | met |\n| --- | --- | --- | --- |")?;
    writeln!(
        section,
        "| transfer size, brotli (wasm + js + css) | {:.1} KB | <= {GOAL_BROTLI_KB} KB | {} |",
        sizes.brotli,
        met(sizes.brotli <= GOAL_BROTLI_KB)
    )?;
    writeln!(section, "| transfer size, gzip | {:.1} KB | | |", sizes.gzip)?;
    writeln!(section, "| uncompressed | {:.1} KB | | |", sizes.raw)?;
    writeln!(
        section,
        "| first render, median of {} fresh loads | {render:.1} ms | <= {GOAL_FIRST_RENDER_MS} ms | {} |",
        figure(&["first_render_ms", "loads"]),
        met(render <= GOAL_FIRST_RENDER_MS)
    )?;
    writeln!(
        section,
        "| tab -> relay -> tab p50 | {p50:.1} ms | <= {GOAL_P50_MS} ms | {} |",
        met(p50 <= GOAL_P50_MS)
    )?;
    writeln!(
        section,
        "| tab -> relay -> tab p99 | {p99:.1} ms | <= {GOAL_P99_MS} ms | {} |",
        met(p99 <= GOAL_P99_MS)
    )?;
    writeln!(section, "| tab -> relay -> tab p99.9 | {p999:.1} ms | | |")?;
    let mib = figure(&["attachment", "mib"]);
    for (what, key) in [("upload", "upload_mb_s"), ("download", "download_mb_s")] {
        let rate = figure(&["attachment", key]);
        writeln!(
            section,
            "| attachment {what}, {mib} MiB file (`BENCH_ATTACHMENT_MIB`) | {rate:.1} MB/s | >= \
             {GOAL_ATTACHMENT_MB_S} MB/s | {} |",
            met(rate >= GOAL_ATTACHMENT_MB_S)
        )?;
    }
    writeln!(
        section,
        "\nWhere the time goes (medians over the {} messages whose frames could be matched; each \
         page notes when its WebSocket frames leave and arrive): click to A's deposit leaving \
         (encrypt, save to IndexedDB) {:.1} ms; A's deposit to B's delivery (network and relay, \
         which commits and fsyncs before forwarding) {:.1} ms; B's delivery to the text in the page \
         (decrypt, render) {:.1} ms.",
        figure(&["breakdown_ms", "messages"]),
        figure(&["breakdown_ms", "tab_a"]),
        figure(&["breakdown_ms", "relay"]),
        figure(&["breakdown_ms", "tab_b"]),
    )?;
    writeln!(
        section,
        "\nEach additional relay (e2e/bench/relays.mjs: Alice moves relays {} times while her only \
         contact is away, so each old relay stays in use; after each move the page is garbage \
         collected and measured), medians of the per-move changes: {} more open WebSocket(s), JS \
         heap {:+.1} KiB, resident memory of the tab's renderer processes {:+.0} KiB.\n",
        relays.get("steps").and_then(serde_json::Value::as_array).map_or(0, |s| s.len().saturating_sub(1)),
        figure_at(&relays, &["per_additional_relay", "sockets"]),
        figure_at(&relays, &["per_additional_relay", "js_heap_kib"]),
        figure_at(&relays, &["per_additional_relay", "renderer_rss_kib"]),
    )?;
    if let Some(steps) = relays.get("steps").and_then(serde_json::Value::as_array) {
        writeln!(
            section,
            "| relays in use | open WebSockets | JS heap | renderer RSS |\n| --- | --- | --- | --- |"
        )?;
        for step in steps {
            writeln!(
                section,
                "| {} | {} | {:.0} KiB | {:.0} KiB |",
                figure_at(step, &["relays"]),
                figure_at(step, &["sockets"]),
                figure_at(step, &["js_heap_kib"]),
                figure_at(step, &["renderer_rss_kib"]),
            )?;
        }
    }
    writeln!(section, "\nMachine: {} cores; load average at the end: {}.\n", nproc(), loadavg())?;
    print!("{section}");
    super::write_section(&root.join("BENCHMARKS.md"), "web", &section)
}

/// Runs one of the e2e benchmark scripts against the release build and returns the JSON object it
/// prints last.
fn node_bench(root: &Path, dist: &Path, script: &str) -> Result<serde_json::Value> {
    let out = Command::new("node")
        .current_dir(root.join("e2e"))
        .arg(script)
        .env("DOORLESS_RELAY_BIN", root.join("target/server/relay"))
        .env("DOORLESS_DIST", dist)
        .env("CHROMIUM", tools::CHROMIUM)
        .output()
        .with_context(|| format!("running e2e/{script}"))?;
    anyhow::ensure!(out.status.success(), "{script} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .with_context(|| format!("no result from {script}"))?;
    serde_json::from_str(json).with_context(|| format!("parsing the result of {script}"))
}

/// The number at `path` in `value`, NaN if there is none.
fn figure_at(value: &serde_json::Value, path: &[&str]) -> f64 {
    path.iter().try_fold(value, |v, key| v.get(key)).and_then(serde_json::Value::as_f64).unwrap_or(f64::NAN)
}

struct Sizes {
    raw: f64,
    gzip: f64,
    brotli: f64,
}

fn transfer_sizes(dist: &Path) -> Result<Sizes> {
    let mut sizes = Sizes { raw: 0.0, gzip: 0.0, brotli: 0.0 };
    for entry in std::fs::read_dir(dist)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        let counted = [".wasm", ".js", ".css"].iter().any(|ext| name.ends_with(ext));
        if !counted {
            continue;
        }
        let kb = |p: &Path| std::fs::metadata(p).map(|m| m.len() as f64 / 1000.0).unwrap_or(0.0);
        sizes.raw += kb(&path);
        sizes.gzip += kb(&path.with_file_name(format!("{name}.gz")));
        sizes.brotli += kb(&path.with_file_name(format!("{name}.br")));
    }
    Ok(sizes)
}

fn nproc() -> usize {
    std::thread::available_parallelism().map_or(0, usize::from)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}
