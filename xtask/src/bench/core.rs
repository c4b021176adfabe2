//! The `core` benchmark group: the protocol core's operations (`client-wasm/benches/ops`) measured
//! natively and in headless Chromium in one run, reported as a ratio and written to the Core section
//! of BENCHMARKS.md.
//!
//! One harness (`client-wasm/tests/bench_wasm.rs`) times the same closures on both sides, natively
//! with `Instant` and in Chromium with `performance.now()`; criterion gives a second, independent
//! native figure. Native and the compared wasm are built with the same `bench-speed` profile (release
//! with opt-level 3); the shipped profile (`release`, opt-level "z") and a `+simd128` build are
//! measured in Chromium as well.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::tools;

/// Marks result lines in the runner's output (see `tests/bench_wasm.rs`).
const PREFIX: &str = "DOORLESS-BENCH ";
const COMMAND: &str = "cargo xtask bench core";
/// Criterion settings: shorter than its defaults, the whole group still takes about a minute.
const CRITERION_ARGS: [&str; 4] = ["--warm-up-time", "2", "--measurement-time", "4"];
const SIMD_RUSTFLAGS: &str = "-C target-feature=+simd128";

/// The ops in report order, with the goal each one is held to.
const OPS: [(&str, &str, Goal); 7] = [
    ("x25519", "X25519, one DH (`kdf::x25519`)", Goal::ChromiumMax(80e3)),
    ("x25519_public", "X25519 public key (`kdf::x25519_public`)", Goal::None),
    ("session_setup", "Session set-up, both sides", Goal::ChromiumMax(2e6)),
    ("message_same_sender", "1 KiB encrypt+decrypt, no DH step", Goal::BothMax(20e3, 60e3)),
    ("message_alternating", "1 KiB encrypt+decrypt, DH step", Goal::None),
    ("aead_seal_64k", "ChaCha20-Poly1305 seal, 64 KiB", Goal::ThroughputShare(0.5)),
    ("aead_open_64k", "ChaCha20-Poly1305 open, 64 KiB", Goal::ThroughputShare(0.5)),
];

#[derive(Clone, Copy)]
enum Goal {
    /// Chromium median at most this many ns.
    ChromiumMax(f64),
    /// Native and Chromium medians at most these many ns.
    BothMax(f64, f64),
    /// Chromium throughput at least this share of native.
    ThroughputShare(f64),
    None,
}

impl Goal {
    fn text(self) -> String {
        match self {
            Goal::ChromiumMax(ns) => format!("Chromium ≤ {}", time(ns)),
            Goal::BothMax(n, c) => format!("native ≤ {}, Chromium ≤ {}", time(n), time(c)),
            Goal::ThroughputShare(s) => format!("Chromium ≥ {:.0} % of native", s * 100.0),
            Goal::None => "–".to_owned(),
        }
    }

    fn met(self, native: f64, chromium: f64) -> Option<bool> {
        match self {
            Goal::ChromiumMax(ns) => Some(chromium <= ns),
            Goal::BothMax(n, c) => Some(native <= n && chromium <= c),
            Goal::ThroughputShare(s) => Some(native / chromium >= s),
            Goal::None => None,
        }
    }
}

/// Rounds of the whole native/Chromium sequence; their samples are pooled, so that a change in the
/// machine's load during the run spreads over every variant instead of favouring one.
const ROUNDS: usize = 3;

/// One operation's figures: the per-iteration times of every timed batch, pooled over the rounds.
#[derive(Clone, Debug)]
struct Sample {
    op: String,
    /// Bytes per iteration, for throughput.
    bytes: Option<f64>,
    /// Sorted per-iteration times, ns.
    ns: Vec<f64>,
}

impl Sample {
    /// The value at quantile `q`, interpolated linearly.
    fn quantile(&self, q: f64) -> f64 {
        let pos = q * (self.ns.len() - 1) as f64;
        let (lo, hi) = (self.ns[pos.floor() as usize], self.ns[pos.ceil() as usize]);
        lo + (hi - lo) * (pos - pos.floor())
    }

    fn median(&self) -> f64 {
        self.quantile(0.5)
    }

    fn mib_per_s(&self) -> Option<f64> {
        self.bytes.map(|b| b / self.median() * 1e9 / 1_048_576.0)
    }

    /// Adds another run's samples of the same op.
    fn pool(&mut self, other: Sample) {
        self.ns.extend(other.ns);
        self.ns.sort_by(f64::total_cmp);
    }
}

/// All figures of one run.
struct Figures {
    native: Vec<Sample>,
    criterion: Vec<(String, f64)>,
    chromium: Vec<Sample>,
    simd: Vec<Sample>,
    shipped: Vec<Sample>,
}

/// Runs the group and prints its figures.
pub fn run(root: &Path) -> Result<()> {
    let toolset = tools::ensure_web_tools(root)?;
    tools::ensure_chromium()?;
    let target_dir =
        std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    let load_before = load_average();

    let criterion = criterion(root, &target_dir)?;
    let wasm = |cmd: &mut Command| -> Result<Vec<Sample>> {
        harness(
            cmd.args(["--target", "wasm32-unknown-unknown"])
                .env("PATH", &toolset.path)
                .env("CHROMEDRIVER", tools::CHROMEDRIVER)
                .env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER", "wasm-bindgen-test-runner")
                .env("WASM_BINDGEN_TEST_TIMEOUT", "600"),
        )
    };
    let mut rounds = Vec::new();
    for round in 1..=ROUNDS {
        eprintln!("\n== core benchmark, round {round} of {ROUNDS} ==");
        let native = harness(&mut harness_cmd(&["--profile", "bench-speed"]))?;
        let chromium = wasm(&mut harness_cmd(&["--profile", "bench-speed"]))?;
        // Other target features change every artefact; a separate target dir keeps both builds cached.
        let simd = wasm(
            harness_cmd(&["--profile", "bench-speed"])
                .env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS", SIMD_RUSTFLAGS)
                .env("CARGO_TARGET_DIR", target_dir.join("simd128")),
        )?;
        let shipped = wasm(&mut harness_cmd(&["--release"]))?;
        rounds.push([native, chromium, simd, shipped]);
    }
    let [native, chromium, simd, shipped] = pooled(rounds)?;
    let figures = Figures { native, criterion, chromium, simd, shipped };

    let section = report(&figures, &environment(root, &toolset.path, load_before, load_average())?)?;
    println!("\n{section}");
    super::write_section(&root.join("BENCHMARKS.md"), "core", &section)
}

/// Pools the rounds: one sample set per variant and op.
fn pooled(rounds: Vec<[Vec<Sample>; 4]>) -> Result<[Vec<Sample>; 4]> {
    let mut rounds = rounds.into_iter();
    let mut acc = rounds.next().context("no rounds")?;
    for round in rounds {
        for (variant, samples) in acc.iter_mut().zip(round) {
            for sample in samples {
                let into = variant.iter_mut().find(|s| s.op == sample.op).context("op missing in a round")?;
                into.pool(sample);
            }
        }
    }
    Ok(acc)
}

/// `cargo test` of the harness with the given profile arguments (stdout piped for the results).
fn harness_cmd(profile: &[&str]) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.args(["test", "-p", "client-wasm", "--features", "bench", "--test", "bench_wasm"]).args(profile);
    cmd
}

/// Runs the harness and returns its result lines, in order.
fn harness(cmd: &mut Command) -> Result<Vec<Sample>> {
    let stdout = run_stdout(cmd.args(["--", "--nocapture"]))?;
    let samples: Vec<Sample> =
        stdout.lines().filter_map(|l| l.split_once(PREFIX)).map(|(_, j)| parse(j)).collect::<Result<_>>()?;
    if samples.len() != OPS.len() {
        bail!("{} printed {} of {} results:\n{stdout}", tools::describe(cmd), samples.len(), OPS.len());
    }
    Ok(samples)
}

/// Runs a command with its stdout captured (stderr passes through) and fails if it fails.
fn run_stdout(cmd: &mut Command) -> Result<String> {
    eprintln!("$ {}", tools::describe(cmd));
    let out = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("could not start {}", tools::describe(cmd)))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!("{} failed ({}):\n{stdout}", tools::describe(cmd), out.status);
    }
    Ok(stdout)
}

/// One flat JSON object of the harness; only the fields the report uses.
fn parse(json: &str) -> Result<Sample> {
    let field = |key: &str| -> Option<&str> {
        let start = json.find(&format!("\"{key}\":"))? + key.len() + 3;
        let rest = &json[start..];
        let end = rest.find([',', '}']).unwrap_or(rest.len());
        Some(rest[..end].trim().trim_matches('"'))
    };
    let number = |key: &str| -> Result<f64> {
        field(key).and_then(|v| v.parse().ok()).with_context(|| format!("no number `{key}` in {json}"))
    };
    let list = json
        .split_once("\"samples_ns\":[")
        .and_then(|(_, rest)| rest.split_once(']'))
        .with_context(|| format!("no `samples_ns` in {json}"))?
        .0;
    let mut ns = list.split(',').map(|v| v.trim().parse::<f64>()).collect::<Result<Vec<_>, _>>()?;
    ns.sort_by(f64::total_cmp);
    if ns.is_empty() {
        bail!("empty `samples_ns` in {json}");
    }
    Ok(Sample {
        op: field("op").with_context(|| format!("no `op` in {json}"))?.to_owned(),
        bytes: number("bytes").ok(),
        ns,
    })
}

/// Runs the criterion bench and reads each op's median (ns) from its `estimates.json`.
fn criterion(root: &Path, target_dir: &Path) -> Result<Vec<(String, f64)>> {
    let home = target_dir.join("criterion");
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root)
        .args(["bench", "-p", "client-wasm", "--bench", "core", "--profile", "bench-speed", "--"])
        .args(CRITERION_ARGS)
        .env("CRITERION_HOME", &home)
        .stdout(Stdio::inherit());
    tools::run(&mut cmd)?;
    OPS.iter()
        .map(|(op, _, _)| {
            let path = home.join("core").join(op).join("new/estimates.json");
            let json =
                std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            // {"mean":{...},"median":{"confidence_interval":{...},"point_estimate":N,...},...}
            let median = json
                .split_once("\"median\":")
                .and_then(|(_, rest)| rest.split_once("\"point_estimate\":"))
                .and_then(|(_, rest)| rest.split([',', '}']).next())
                .and_then(|v| v.trim().parse::<f64>().ok())
                .with_context(|| format!("no median in {}", path.display()))?;
            Ok(((*op).to_owned(), median))
        })
        .collect()
}

/// The 1-minute load average, as reported by the kernel.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Date, machine and tool versions, as markdown list items.
fn environment(root: &Path, path: &OsString, load_before: String, load_after: String) -> Result<String> {
    let first_line = |program: &str, args: &[&str]| super::first_line(program, args, Some(path));
    let cpu = super::cpu_model();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mut s = String::new();
    writeln!(s, "- Command: `{COMMAND}` (from the repository root)")?;
    writeln!(s, "- Date: {}", first_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]))?;
    writeln!(
        s,
        "- Machine: {cores} cores (nproc), {cpu}; load average {load_before} before, {load_after} after"
    )?;
    writeln!(s, "- rustc: {}", first_line("rustc", &["--version"]))?;
    writeln!(
        s,
        "- Chromium: {} (headless, via wasm-bindgen-test-runner {})",
        first_line(tools::CHROMIUM, &["--version"]),
        tools::locked_version(root, "wasm-bindgen")?
    )?;
    Ok(s)
}

fn time(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

/// Median with the interquartile range and the minimum, plus the throughput for the AEAD rows.
fn cell(s: &Sample) -> String {
    let spread = format!("{}–{}, min {}", time(s.quantile(0.25)), time(s.quantile(0.75)), time(s.ns[0]));
    match s.mib_per_s() {
        Some(mib) => format!("{} = {mib:.0} MiB/s ({spread})", time(s.median())),
        None => format!("{} ({spread})", time(s.median())),
    }
}

fn find<'a>(samples: &'a [Sample], op: &str) -> Result<&'a Sample> {
    samples.iter().find(|s| s.op == op).with_context(|| format!("no result for {op}"))
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "yes",
        Some(false) => "no",
        None => "–",
    }
}

/// The Core section of BENCHMARKS.md (also printed).
fn report(f: &Figures, environment: &str) -> Result<String> {
    let mut s = String::new();
    writeln!(s, "## Core: protocol operations, native vs headless Chromium\n")?;
    s.push_str(environment);
    writeln!(
        s,
        "\nEach figure is the median of {} timed batches ({ROUNDS} rounds of 41, each batch ≥ 20 ms after \
         300 ms of warm-up; the rounds run every variant in turn, so load changes hit all of them), with the \
         interquartile range and the fastest batch in brackets; one harness (`client-wasm/tests/bench_wasm.rs`) times the same \
         closures (`client-wasm/benches/ops`) natively with `Instant` and in Chromium with \
         `performance.now()`. Ratio = Chromium / native. \"Native\" and \"Chromium\" use the `bench-speed` \
         profile (release settings with opt-level 3) so the ratio compares targets, not the size-over-speed \
         trade-off of the shipped wasm; the last columns are Chromium with `+simd128` and with the shipped \
         `release` profile (opt-level \"z\", before Trunk's wasm-opt pass). Criterion's median of the same \
         closures is a second native figure. The machine is 2 shared cores that other work also uses, so \
         single runs vary by tens of per cent.\n",
        f.native.first().map_or(0, |s| s.ns.len())
    )?;
    writeln!(
        s,
        "| operation | native | criterion | Chromium | ratio | Chromium +simd128 | Chromium shipped (opt z) | goal | met (bench-speed / shipped) |"
    )?;
    writeln!(s, "| --- | --- | --- | --- | --- | --- | --- | --- | --- |")?;
    for (op, label, goal) in OPS {
        let native = find(&f.native, op)?;
        let chromium = find(&f.chromium, op)?;
        let simd = find(&f.simd, op)?;
        let shipped = find(&f.shipped, op)?;
        let criterion = f.criterion.iter().find(|(o, _)| o == op).map(|(_, m)| time(*m)).unwrap_or_default();
        writeln!(
            s,
            "| {label} | {} | {criterion} | {} | {:.1}× | {} | {} | {} | {} / {} |",
            cell(native),
            cell(chromium),
            chromium.median() / native.median(),
            cell(simd),
            cell(shipped),
            goal.text(),
            verdict(goal.met(native.median(), chromium.median())),
            verdict(goal.met(native.median(), shipped.median())),
        )?;
    }

    // simd128 is kept only if it wins: the geometric mean of the per-op speed-ups decides.
    let speedups: Vec<f64> = OPS
        .iter()
        .map(|(op, _, _)| Ok(find(&f.chromium, op)?.median() / find(&f.simd, op)?.median()))
        .collect::<Result<_>>()?;
    let geomean = speedups.iter().map(|x| x.ln()).sum::<f64>() / speedups.len() as f64;
    let geomean = geomean.exp();
    let per_op: Vec<String> =
        OPS.iter().zip(&speedups).map(|((op, _, _), x)| format!("{op} {x:.2}×")).collect();
    writeln!(
        s,
        "\n`+simd128` speed-up over the plain wasm build (plain median / simd128 median): {} — geometric mean \
         {geomean:.2}×. {}",
        per_op.join(", "),
        if geomean > 1.05 {
            "It wins by more than the 5 % this machine's noise allows, so it is worth enabling for the shipped \
             build (not done here: the web build's flags belong to the web app)."
        } else {
            "That is within this machine's noise (5 %), so it is not kept: the shipped build stays without it."
        }
    )?;
    writeln!(
        s,
        "\nThe 1 KiB message is a 1024-byte plaintext; the core pads it into the 4096-byte bucket (a \
         bucket must leave room for the padding marker), so each message seals and opens 4 KiB plus the \
         encrypted header. The DH-step row alternates senders, so every message makes its receiver take a \
         DH ratchet step: one X25519 on receipt and, on the next send, a fresh key (one fixed-base \
         multiplication, `kdf::x25519_public`, the separate row above) and one more X25519; the sender's \
         ratchet public key is kept in the session, so messages without a DH step pay no scalar \
         multiplication. The wasm build has no precomputed basepoint tables (they would add ~38 KB of \
         incompressible data to the download), so fixed-base multiplication costs in Chromium what a \
         variable-base one does; natively the tables make it ~3.5x cheaper."
    )?;
    Ok(s)
}
