//! The `relay` benchmark group: the Rust relay (built with the `server` profile, once with its
//! `memory` store and once with its default durable `redb` store) and a plain Node relay on the `ws`
//! package (`bench/node-relay/`), under the same load from one load generator
//! (`relay/examples/loadgen.rs`), interleaved run by run so that a busy machine hurts all of them
//! alike. Prints a table and writes the Relay section of BENCHMARKS.md.
//!
//! Each run gets a freshly started relay. Everything is on loopback; the load generator shares the
//! machine's cores with the relay under test.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::tools;

const COMMAND: &str = "cargo xtask bench relay";
/// Runs of every load on every target; the table shows medians.
const REPEATS: usize = 3;
/// Seconds measured per run, after a warm-up.
const SECONDS: &str = "3";
const WARMUP: &str = "1";
/// Idle connections opened against each target, if the file-descriptor limit allows.
const IDLE_CONNECTIONS: usize = 50_000;
/// File descriptors wanted for the relays and the load generator. Raising the hard limit needs
/// CAP_SYS_RESOURCE; without it the soft limit is raised to the hard one.
const NOFILE: u32 = 1 << 20;
/// Descriptors a process keeps for other things than the idle connections.
const NOFILE_SPARE: usize = 200;
/// Payload sizes: one small padded message, one large.
const SMALL: usize = 1024;
const LARGE: usize = 64 * 1024;
/// Closed loop at 1 KiB: messages in flight per connection. Fewer leaves a connection one message
/// per system call, and the rate then measures loopback TCP rather than the relay.
const WINDOW_SMALL: usize = 16;
/// Closed loop at 64 KiB: messages in flight over all connections (64 MiB).
const BUDGET_LARGE: usize = 1024;

/// Runs of one row whose fastest is this many times its slowest get a note under the table.
const SPREAD_NOTE: f64 = 1.5;

/// Goals from the issue.
const GOAL_MSGS_PER_S: f64 = 150_000.0;
const GOAL_RATIO: f64 = 3.0;
const GOAL_P99_US: f64 = 5_000.0;
const GOAL_IDLE_KIB: f64 = 16.0;
const GOAL_IDLE_HELD: usize = 50_000;

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Target {
    RustMemory,
    RustRedb,
    Node,
}

const TARGETS: [Target; 3] = [Target::RustMemory, Target::RustRedb, Target::Node];

impl Target {
    fn label(self) -> &'static str {
        match self {
            Target::RustMemory => "Rust, memory store",
            Target::RustRedb => "Rust, redb store",
            Target::Node => "Node ws",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
struct Load {
    connections: usize,
    size: usize,
}

const LOADS: [Load; 4] = [
    Load { connections: 1000, size: SMALL },
    Load { connections: 1000, size: LARGE },
    Load { connections: 10_000, size: SMALL },
    Load { connections: 10_000, size: LARGE },
];
/// The load of the fixed-rate runs (at half of each target's maximum, and at [`FIXED_RATES`]).
const HALF_RATE_LOAD: Load = Load { connections: 1000, size: SMALL };
/// Offered rates for every target, the same for all: latency without saturation (the first, which
/// every target sustains on this kind of machine), and where each target's open-loop knee is.
const FIXED_RATES: [u32; 4] = [10_000, 20_000, 30_000, 40_000];

impl Load {
    fn text(self) -> String {
        let size =
            if self.size >= 1024 { format!("{} KiB", self.size / 1024) } else { format!("{} B", self.size) };
        format!("{} conns, {size}", self.connections)
    }
}

/// How many idle connections were wanted and tried, and the descriptor limit that decided it.
struct Limit {
    wanted: usize,
    tried: usize,
    nofile: usize,
}

/// The idle-connection figures: on the host, and in a guest when the host's limit fell short.
struct Idle {
    host: HashMap<Target, Figures>,
    /// The guest's kernel, and its figures.
    guest: Option<(String, HashMap<Target, Figures>)>,
    limit: Limit,
}

/// Paths of what is under test.
pub(super) struct Setup {
    pub(super) relay: PathBuf,
    loadgen: PathBuf,
    node_relay: PathBuf,
    scratch: PathBuf,
}

/// A relay process under test, stopped when dropped.
struct Running {
    child: Child,
    addr: String,
    data_dir: Option<PathBuf>,
}

impl Running {
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = &self.data_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// `program args…` with the file-descriptor limit raised first (tens of thousands of sockets).
fn with_nofile(program: &Path) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("ulimit -Hn {NOFILE} 2>/dev/null; ulimit -Sn \"$(ulimit -Hn)\" && exec \"$0\" \"$@\""))
        .arg(program);
    cmd
}

/// The file-descriptor limit the bench's processes get (see [`with_nofile`]).
fn nofile_limit() -> Result<usize> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -Hn {NOFILE} 2>/dev/null; ulimit -Hn"))
        .output()
        .context("reading the file-descriptor limit")?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(if text.trim() == "unlimited" { usize::MAX } else { text.trim().parse().context("ulimit -Hn")? })
}

fn start(setup: &Setup, target: Target, serial: usize) -> Result<Running> {
    let (mut cmd, data_dir) = match target {
        Target::RustMemory | Target::RustRedb => {
            let data_dir = setup.scratch.join(format!("redb-{}-{serial}", std::process::id()));
            let mut cmd = with_nofile(&setup.relay);
            cmd.args(rust_relay_args(target, &data_dir)).env("DOORLESS_LOG", "warn");
            (cmd, (target == Target::RustRedb).then_some(data_dir))
        }
        Target::Node => {
            let mut cmd = with_nofile(Path::new("node"));
            cmd.arg(&setup.node_relay).arg("127.0.0.1:0");
            (cmd, None)
        }
    };
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", tools::describe(&cmd)))?;
    let stdout = child.stdout.take().context("relay stdout")?;
    let mut running = Running { child, addr: String::new(), data_dir };
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).context("reading the relay's address")?;
    running.addr = match line.trim().rsplit_once("http://") {
        Some((_, addr)) => addr.to_owned(),
        None => bail!("{} did not print its address (got {line:?})", target.label()),
    };
    Ok(running)
}

/// The Rust relay's `--store` for `target` (one of the Rust ones).
fn store_name(target: Target) -> &'static str {
    if target == Target::RustRedb { "redb" } else { "memory" }
}

/// The Rust relay's arguments for `target` (one of the Rust ones), storing into `data_dir`.
fn rust_relay_args(target: Target, data_dir: &Path) -> Vec<String> {
    let store = store_name(target);
    let mut args: Vec<String> =
        ["--listen", "127.0.0.1:0", "--store", store, "--data-dir"].map(String::from).into();
    args.push(data_dir.to_string_lossy().into_owned());
    // The bench's load comes from a few processes' worth of connections on loopback: the
    // per-connection rate limits and the connection cap would measure themselves.
    args.extend(
        ["--max-connections", "200000", "--deposit-rate", "1e9", "--deposit-burst", "1e9"].map(String::from),
    );
    // Idle connections are held without traffic for the whole idle measurement.
    args.extend(["--idle-timeout-secs", "600"].map(String::from));
    args
}

/// One line `result k=v …` of the load generator, as a map.
pub(super) type Figures = HashMap<String, String>;

pub(super) fn loadgen(setup: &Setup, args: &[String]) -> Result<Figures> {
    let mut cmd = with_nofile(&setup.loadgen);
    cmd.args(args).stderr(Stdio::inherit());
    let out = cmd.output().with_context(|| format!("running {}", tools::describe(&cmd)))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("{} failed ({}): {stdout}", tools::describe(&cmd), out.status);
    }
    let line = stdout.lines().rev().find_map(|l| l.strip_prefix("result ")).context("no result line")?;
    Ok(figures(line))
}

/// The `k=v` pairs of a result line.
fn figures(line: &str) -> Figures {
    line.split_whitespace().filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.into(), v.into())).collect()
}

fn num(figures: &Figures, key: &str) -> f64 {
    figures.get(key).and_then(|v| v.parse().ok()).unwrap_or(f64::NAN)
}

fn load_args(relay: &Running, load: Load, rate: Option<f64>) -> Vec<String> {
    let addr = relay.addr.as_str();
    let budget = if load.size >= LARGE { BUDGET_LARGE } else { WINDOW_SMALL * load.connections };
    let mut args = vec![
        "load".to_owned(),
        "--addr".to_owned(),
        addr.to_owned(),
        "--connections".to_owned(),
        load.connections.to_string(),
        "--size".to_owned(),
        load.size.to_string(),
        "--seconds".to_owned(),
        SECONDS.to_owned(),
        "--warmup".to_owned(),
        WARMUP.to_owned(),
        "--budget".to_owned(),
        budget.to_string(),
        "--pid".to_owned(),
        relay.pid().to_string(),
    ];
    if let Some(rate) = rate {
        args.extend(["--rate".to_owned(), format!("{rate:.0}")]);
    }
    args
}

/// Figures of repeated runs of one target under one load.
#[derive(Default)]
struct Runs(Vec<Figures>);

impl Runs {
    fn median(&self, key: &str) -> f64 {
        let mut v: Vec<f64> = self.0.iter().map(|f| num(f, key)).filter(|x| x.is_finite()).collect();
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }

    fn range(&self, key: &str) -> (f64, f64) {
        let v = self.0.iter().map(|f| num(f, key)).filter(|x| x.is_finite());
        v.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| (lo.min(x), hi.max(x)))
    }

    /// Messages not delivered, deposits refused, connections that failed, over all runs.
    fn trouble(&self) -> f64 {
        self.0.iter().map(|f| num(f, "lost") + num(f, "refused") + num(f, "failed_connections")).sum()
    }
}

/// One load run against a fresh relay: closed loop, or open loop at `rate` msgs/s.
fn one_run(
    setup: &Setup,
    target: Target,
    serial: usize,
    repeat: usize,
    load: Load,
    rate: Option<f64>,
) -> Result<Figures> {
    let relay = start(setup, target, serial)?;
    let at = rate.map(|r| format!(" at {r:.0} msgs/s")).unwrap_or_default();
    eprintln!("[{repeat}/{REPEATS}] {} — {}{at}", target.label(), load.text());
    let figures = loadgen(setup, &load_args(&relay, load, rate))?;
    eprintln!("    {:.0} msgs/s, p99 {:.2} ms", num(&figures, "msgs_per_s"), num(&figures, "p99_us") / 1e3);
    Ok(figures)
}

/// Runs the group and prints its figures.
pub fn run(root: &Path) -> Result<()> {
    let load_before = loadavg();
    let setup = build(root)?;
    let mut serial = 0;
    let mut next = || {
        serial += 1;
        serial
    };

    // Maximum rate (closed loop), every load, targets interleaved within each repeat.
    let mut max: HashMap<(Target, Load), Runs> = HashMap::new();
    for repeat in 1..=REPEATS {
        for load in LOADS {
            for target in TARGETS {
                let figures = one_run(&setup, target, next(), repeat, load, None)?;
                max.entry((target, load)).or_default().0.push(figures);
            }
        }
    }

    // Latency at half of each target's own maximum rate (open loop, fixed offered rate).
    let mut half: HashMap<Target, (f64, Runs)> = HashMap::new();
    for target in TARGETS {
        let rate = max[&(target, HALF_RATE_LOAD)].median("msgs_per_s") / 2.0;
        half.insert(target, (rate, Runs::default()));
    }
    for repeat in 1..=REPEATS {
        for target in TARGETS {
            let rate = half[&target].0;
            let figures = one_run(&setup, target, next(), repeat, HALF_RATE_LOAD, Some(rate))?;
            if let Some(entry) = half.get_mut(&target) {
                entry.1.0.push(figures);
            }
        }
    }

    // Latency at fixed rates, the same for every target.
    let mut fixed: HashMap<(Target, u32), Runs> = HashMap::new();
    for repeat in 1..=REPEATS {
        for offered in FIXED_RATES {
            for target in TARGETS {
                let figures =
                    one_run(&setup, target, next(), repeat, HALF_RATE_LOAD, Some(f64::from(offered)))?;
                fixed.entry((target, offered)).or_default().0.push(figures);
            }
        }
    }

    // Idle connections: memory per connection, and how many are held. One process can hold no more
    // sockets than its descriptor limit allows.
    let nofile = nofile_limit()?;
    let idle_connections = IDLE_CONNECTIONS.min(nofile.saturating_sub(NOFILE_SPARE));
    let mut idle: HashMap<Target, Figures> = HashMap::new();
    for target in TARGETS {
        let relay = start(&setup, target, next())?;
        eprintln!("{} — {idle_connections} idle connections", target.label());
        let args = [
            "idle".to_owned(),
            "--addr".to_owned(),
            relay.addr.clone(),
            "--connections".to_owned(),
            idle_connections.to_string(),
            "--pid".to_owned(),
            relay.pid().to_string(),
        ];
        let figures = loadgen(&setup, &args)?;
        eprintln!(
            "    {} held, {:.1} KiB per connection",
            num(&figures, "held"),
            num(&figures, "per_connection_kib")
        );
        idle.insert(target, figures);
    }

    // The host's limit stopped short of the goal: the Rust relays again, in a guest whose kernel the
    // bench owns (see `vm.rs`).
    let guest = if idle_connections < IDLE_CONNECTIONS {
        let targets = [Target::RustMemory, Target::RustRedb];
        let relays = targets.map(|target| {
            let label = store_name(target);
            super::vm::GuestRelay {
                label,
                args: rust_relay_args(target, Path::new(&format!("/tmp/data-{label}"))),
            }
        });
        let run = super::vm::idle_in_guest(
            &setup.scratch,
            &setup.relay,
            &setup.loadgen,
            &relays,
            IDLE_CONNECTIONS,
        )?;
        let mut by_target = HashMap::new();
        for (label, line) in &run.results {
            let target = *targets
                .iter()
                .find(|&&t| store_name(t) == label)
                .with_context(|| format!("a guest result for an unknown relay {label:?}"))?;
            let figures = figures(line);
            eprintln!(
                "    guest, {}: {} held, {:.1} KiB per connection",
                target.label(),
                num(&figures, "held"),
                num(&figures, "per_connection_kib")
            );
            by_target.insert(target, figures);
        }
        Some((run.kernel, by_target))
    } else {
        None
    };

    let load_after = loadavg();
    let idle = Idle {
        host: idle,
        guest,
        limit: Limit { wanted: IDLE_CONNECTIONS, tried: idle_connections, nofile },
    };
    let section = report(root, &max, &half, &fixed, &idle, [&load_before, &load_after])?;
    println!("{section}");
    super::write_section(&root.join("BENCHMARKS.md"), "relay", &section)
}

/// Builds the relay (speed profile), the load generator, and installs the Node relay's packages.
pub(super) fn build(root: &Path) -> Result<Setup> {
    tools::run(Command::new("cargo").current_dir(root).args([
        "build",
        "--profile",
        "server",
        "-p",
        "relay",
        "--bin",
        "relay",
        "--example",
        "loadgen",
    ]))?;
    let target_dir = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let target_dir = if target_dir.is_absolute() { target_dir } else { root.join(target_dir) };
    let node_dir = root.join("bench/node-relay");
    if !node_dir.join("node_modules/ws/package.json").exists() {
        tools::run(Command::new("npm").current_dir(&node_dir).args(["ci", "--no-audit", "--no-fund"]))?;
    }
    let scratch = target_dir.join("bench-relay");
    std::fs::create_dir_all(&scratch)?;
    Ok(Setup {
        relay: target_dir.join("server/relay"),
        loadgen: target_dir.join("server/examples/loadgen"),
        node_relay: node_dir.join("relay.mjs"),
        scratch,
    })
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".to_owned())
}

fn ms(us: f64) -> String {
    format!("{:.2} ms", us / 1e3)
}

fn rate(x: f64) -> String {
    let s = format!("{:.0}", x.round());
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

fn yes_no(ok: bool) -> &'static str {
    if ok { "yes" } else { "**no**" }
}

/// The Relay section of BENCHMARKS.md (also printed).
fn report(
    root: &Path,
    max: &HashMap<(Target, Load), Runs>,
    half: &HashMap<Target, (f64, Runs)>,
    fixed: &HashMap<(Target, u32), Runs>,
    idle: &Idle,
    [load_before, load_after]: [&str; 2],
) -> Result<String> {
    let mut s = String::new();
    writeln!(s, "## Relay\n")?;
    writeln!(
        s,
        "Messages per second and deposit-to-delivery latency through the relay; N subscribed connections \
         in pairs, each depositing into its partner's mailbox (`relay/examples/loadgen.rs`). Maximum \
         rate: closed loop with {WINDOW_SMALL} messages in flight per connection at 1 KiB, and \
         {BUDGET_LARGE} over all connections at 64 KiB. Half rate: open loop at half of that target's \
         own median maximum (measured in this same run), latency from the scheduled send time (which \
         includes up to 1 ms of the generator's own timer granularity: tokio's timers tick in \
         milliseconds). Fixed rate: open loop at {} msgs/s, the same for every target. Medians of {REPEATS} runs of {SECONDS} s \
         (after {WARMUP} s of warm-up), targets interleaved run by run, a fresh relay per run; \
         min–max of the rate in brackets. \"vs Node\" is the ratio of medians to the Node `ws` relay \
         under the same load. \"CPU µs/msg\" is the CPU time (user + system, from `/proc`) the relay \
         and the load generator each used during the measured seconds, divided by the messages \
         delivered in them; both share the machine's 2 cores, so the maximum rate is bounded by \
         their sum.\n",
        FIXED_RATES.map(|r| rate(f64::from(r))).join(", "),
    )?;
    writeln!(
        s,
        "| target | load | msgs/s (min–max) | p50 | p99 | p999 | CPU µs/msg relay + loadgen | vs Node | goal met? |"
    )?;
    writeln!(s, "| --- | --- | --- | --- | --- | --- | --- | --- | --- |")?;
    let cpu = |runs: &Runs| {
        format!("{:.1} + {:.1}", runs.median("relay_cpu_us_per_msg"), runs.median("loadgen_cpu_us_per_msg"))
    };
    let mut notes = Vec::new();
    for load in LOADS {
        let node = max[&(Target::Node, load)].median("msgs_per_s");
        for target in TARGETS {
            let runs = &max[&(target, load)];
            let msgs = runs.median("msgs_per_s");
            let (lo, hi) = runs.range("msgs_per_s");
            let (ratio, goal) = if target == Target::Node {
                ("1".to_owned(), "–".to_owned())
            } else {
                let ratio = msgs / node;
                let mut goal = format!("≥ {GOAL_RATIO}× Node: {}", yes_no(ratio >= GOAL_RATIO));
                if load.size == SMALL {
                    goal = format!("≥ 150k/s: {}; {goal}", yes_no(msgs >= GOAL_MSGS_PER_S));
                }
                (format!("{ratio:.2}×"), goal)
            };
            if hi > SPREAD_NOTE * lo {
                notes.push(format!(
                    "{} under {}: its runs ranged from {} to {} msgs/s, more than {SPREAD_NOTE}× apart; \
                     the median is shown. A ratio from this row says less than the others.",
                    target.label(),
                    load.text(),
                    rate(lo),
                    rate(hi),
                ));
            }
            if runs.trouble() > 0.0 {
                notes.push(format!(
                    "{} under {}: {} messages not delivered within 10 s after the run, refused, or on failed connections, over all runs.",
                    target.label(),
                    load.text(),
                    runs.trouble()
                ));
            }
            writeln!(
                s,
                "| {} | {}, max | {} ({}–{}) | {} | {} | {} | {} | {ratio} | {goal} |",
                target.label(),
                load.text(),
                rate(msgs),
                rate(lo),
                rate(hi),
                ms(runs.median("p50_us")),
                ms(runs.median("p99_us")),
                ms(runs.median("p999_us")),
                cpu(runs),
            )?;
        }
    }
    for target in TARGETS {
        let (offered, runs) = &half[&target];
        let p99 = runs.median("p99_us");
        let goal = if target == Target::Node {
            "–".to_owned()
        } else {
            format!("p99 ≤ 5 ms: {}", yes_no(p99 <= GOAL_P99_US))
        };
        if runs.trouble() > 0.0 {
            notes.push(format!(
                "{} at half rate: {} messages lost or refused.",
                target.label(),
                runs.trouble()
            ));
        }
        writeln!(
            s,
            "| {} | {}, half rate ({} offered) | {} | {} | {} | {} | {} | – | {goal} |",
            target.label(),
            HALF_RATE_LOAD.text(),
            rate(*offered),
            rate(runs.median("msgs_per_s")),
            ms(runs.median("p50_us")),
            ms(p99),
            ms(runs.median("p999_us")),
            cpu(runs),
        )?;
    }
    for offered in FIXED_RATES {
        for target in TARGETS {
            let runs = &fixed[&(target, offered)];
            if runs.trouble() > 0.0 {
                notes.push(format!(
                    "{} at {} msgs/s: {} messages lost or refused.",
                    target.label(),
                    rate(f64::from(offered)),
                    runs.trouble()
                ));
            }
            writeln!(
                s,
                "| {} | {}, fixed rate ({} offered) | {} | {} | {} | {} | {} | – | – |",
                target.label(),
                HALF_RATE_LOAD.text(),
                rate(f64::from(offered)),
                rate(runs.median("msgs_per_s")),
                ms(runs.median("p50_us")),
                ms(runs.median("p99_us")),
                ms(runs.median("p999_us")),
                cpu(runs),
            )?;
        }
    }
    writeln!(
        s,
        "\nWhy half rate queues: at the maximum rate every connection has {WINDOW_SMALL} messages in \
         flight, so one system call and one wake-up carry many frames; in the open-loop runs each of \
         the 1000 connections sends alone every few milliseconds, so every message pays its own \
         reads, writes and wake-ups in both processes (compare the CPU µs/msg of the max and the \
         fixed-rate rows). Half of the pipelined maximum then needs more CPU than the two shared \
         cores have, and queues build until batching returns. The fixed-rate rows show where that \
         happens: the highest of them with p99 ≤ 5 ms is {}.",
        TARGETS
            .map(|target| {
                let within = FIXED_RATES
                    .into_iter()
                    .filter(|&r| fixed[&(target, r)].median("p99_us") <= GOAL_P99_US)
                    .max()
                    .map_or_else(|| "none".to_owned(), |r| format!("{} msgs/s", rate(f64::from(r))));
                format!("{within} for {}", target.label())
            })
            .join(", "),
    )?;
    for note in notes {
        writeln!(s, "\n{note}")?;
    }

    writeln!(
        s,
        "\nIdle connections (Hello, Subscribe, then silence): growth of the relay's resident memory \
         (`VmRSS`) over {} connections opened after 64 warm-up ones, and how many of them still \
         answered a `Ping` afterwards. Connections come from 8 source addresses (127.0.0.1–8); \
         relays and load generator run with the file-descriptor limit raised as far as allowed \
         ({}).\n",
        rate(idle.limit.tried as f64),
        if idle.limit.nofile == usize::MAX { "unlimited".to_owned() } else { rate(idle.limit.nofile as f64) },
    )?;
    if idle.limit.tried < idle.limit.wanted {
        writeln!(
            s,
            "The goal is {} held connections, but this machine's hard limit on open files is {} per \
             process and the bench may not raise it (no CAP_SYS_RESOURCE), so one relay process \
             cannot hold more than that here; {} were tried on the host (first rows). The Rust \
             relays were then measured again with {} connections inside a QEMU guest, where the \
             bench owns the kernel and sets the limit (rows marked \"guest\"): Debian's own kernel \
             ({}), an initramfs with busybox and the same two binaries, 2 CPUs emulated by QEMU's \
             TCG (slow, but memory and held connections do not depend on speed), 8 GiB; \
             `xtask/src/bench/vm.rs`.\n",
            rate(idle.limit.wanted as f64),
            rate(idle.limit.nofile as f64),
            rate(idle.limit.tried as f64),
            rate(idle.limit.wanted as f64),
            idle.guest.as_ref().map_or("not run", |(kernel, _)| kernel.as_str()),
        )?;
    }
    writeln!(s, "| target | opened | held (answered Ping) | memory per idle connection | goal met? |")?;
    writeln!(s, "| --- | --- | --- | --- | --- |")?;
    let host_rows = TARGETS.map(|target| (target, target.label().to_owned(), &idle.host[&target]));
    let guest_rows = idle.guest.iter().flat_map(|(_, figures)| {
        TARGETS.into_iter().filter_map(|target| {
            figures.get(&target).map(|f| (target, format!("{}, guest", target.label()), f))
        })
    });
    for (target, label, f) in host_rows.into_iter().chain(guest_rows) {
        let per = num(f, "per_connection_kib");
        let held = num(f, "held");
        let goal = if target == Target::Node {
            "–".to_owned()
        } else {
            format!(
                "≤ 16 KiB: {}; {} held: {}",
                yes_no(per <= GOAL_IDLE_KIB),
                rate(GOAL_IDLE_HELD as f64),
                if held >= GOAL_IDLE_HELD as f64 {
                    "yes"
                } else if num(f, "connections") < GOAL_IDLE_HELD as f64 && held >= num(f, "connections") {
                    "not tried here (all tried held)"
                } else {
                    "**no**"
                }
            )
        };
        writeln!(s, "| {label} | {} | {} | {per:.1} KiB | {goal} |", rate(num(f, "opened")), rate(held))?;
    }

    writeln!(s)?;
    s.push_str(&environment(root, load_before, load_after)?);
    Ok(s)
}

fn environment(root: &Path, load_before: &str, load_after: &str) -> Result<String> {
    let first_line = |program: &str, args: &[&str]| super::first_line(program, args, None);
    let cpu = super::cpu_model();
    let ws_version = std::fs::read_to_string(root.join("bench/node-relay/node_modules/ws/package.json"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.trim().strip_prefix("\"version\": \"").map(|v| v.trim_end_matches([',', '"']).to_owned())
            })
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let mut s = String::new();
    writeln!(
        s,
        "- Command: `{COMMAND}` (from the repository root; about 15 minutes, plus about 10 in the \
         QEMU guest where the host cannot open 50 000 connections)"
    )?;
    writeln!(s, "- Date: {}", first_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]))?;
    writeln!(
        s,
        "- Machine: {} cores (nproc), {cpu}; load average {load_before} before, {load_after} after \
         (a shared machine: another engineer's builds and browser tests may have run at the same time)",
        first_line("nproc", &[])
    )?;
    writeln!(
        s,
        "- Rust relay: `cargo build --profile server` (opt-level 3, thin LTO), {}; warp {}, \
         fastwebsockets {}, redb {}",
        first_line("rustc", &["--version"]),
        tools::locked_version(root, "warp")?,
        tools::locked_version(root, "fastwebsockets")?,
        tools::locked_version(root, "redb")?,
    )?;
    writeln!(
        s,
        "- Node relay: `bench/node-relay/relay.mjs`, node {}, ws {ws_version}; verifies the subscribe \
         proof, keeps blobs in a Map until acknowledged, no durability, quotas or backpressure. The \
         apples-to-apples comparison is the Rust relay's `memory` store; `redb` (the default) also \
         commits and fsyncs every deposit before confirming it.",
        first_line("node", &["--version"]),
    )?;
    Ok(s)
}
