//! `cargo xtask test`: every check and suite, one summary line.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::Result;

use crate::{dist, tools};

/// Counts of one suite, or of all of them.
#[derive(Default, Clone, Copy)]
struct Tally {
    passed: u64,
    failed: u64,
    skipped: u64,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.passed += other.passed;
        self.failed += other.failed;
        self.skipped += other.skipped;
    }

    fn line(&self) -> String {
        let mut line = format!("{} passed, {} failed", self.passed, self.failed);
        if self.skipped > 0 {
            line.push_str(&format!(", {} skipped", self.skipped));
        }
        line
    }
}

/// How a suite's output is counted.
#[derive(Clone, Copy)]
enum Counter {
    /// A check (fmt, clippy): one pass or one failure.
    Check,
    /// libtest and wasm-bindgen-test-runner `test result:` lines.
    Libtest,
    /// node's test runner, TAP reporter: `# pass N`, `# fail N`, `# skipped N`.
    NodeTap,
}

/// Runs one suite, streaming its output, and counts its results. A suite that did not report any
/// result but failed (it did not build, say) counts as one failure.
fn suite(name: &str, counter: Counter, cmd: &mut Command) -> Tally {
    eprintln!("\n==> {name}\n$ {}", tools::describe(cmd));
    let mut tally = Tally::default();
    let child = cmd.stdout(Stdio::piped()).spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(err) => {
            eprintln!("could not start: {err}");
            tally.failed = 1;
            return tally;
        }
    };
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("{line}");
            match counter {
                Counter::Libtest => count_libtest(&line, &mut tally),
                Counter::NodeTap => count_tap(&line, &mut tally),
                Counter::Check => {}
            }
        }
    }
    let ok = child.wait().is_ok_and(|s| s.success());
    match counter {
        Counter::Check if ok => tally.passed = 1,
        _ if !ok && tally.failed == 0 => tally.failed = 1,
        _ => {}
    }
    eprintln!("<== {name}: {}", tally.line());
    tally
}

fn number_before(text: &str, word: &str) -> Option<u64> {
    let idx = text.find(word)?;
    text[..idx].split_whitespace().last()?.parse().ok()
}

fn count_libtest(line: &str, tally: &mut Tally) {
    if let Some(rest) = line.trim().strip_prefix("test result:") {
        tally.passed += number_before(rest, " passed").unwrap_or(0);
        tally.failed += number_before(rest, " failed").unwrap_or(0);
        tally.skipped += number_before(rest, " ignored").unwrap_or(0);
    }
}

fn count_tap(line: &str, tally: &mut Tally) {
    let line = line.trim();
    let value = |prefix: &str| line.strip_prefix(prefix).and_then(|n| n.trim().parse::<u64>().ok());
    if let Some(n) = value("# pass ") {
        tally.passed += n;
    } else if let Some(n) = value("# fail ") {
        tally.failed += n;
    } else if let Some(n) = value("# skipped ").or_else(|| value("# todo ")) {
        tally.skipped += n;
    }
}

fn cargo(args: &[&str]) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.args(args);
    cmd
}

/// Runs everything; exits non-zero if anything failed.
pub fn test(root: &Path, no_browser: bool) -> Result<()> {
    let mut total = Tally::default();
    let mut results: Vec<(&str, Tally)> = Vec::new();
    let mut record = |name: &'static str, tally: Tally, total: &mut Tally| {
        total.add(tally);
        results.push((name, tally));
    };

    tools::ensure_wasm_target()?;
    record("rustfmt", suite("rustfmt", Counter::Check, &mut cargo(&["fmt", "--all", "--check"])), &mut total);
    record(
        "clippy (native)",
        suite(
            "clippy (native)",
            Counter::Check,
            &mut cargo(&[
                "clippy",
                "--workspace",
                "--exclude",
                "web",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]),
        ),
        &mut total,
    );
    record(
        "clippy (wasm32)",
        suite(
            "clippy (wasm32)",
            Counter::Check,
            &mut cargo(&[
                "clippy",
                "-p",
                "client-wasm",
                "-p",
                "web",
                "-p",
                "doorless-frames",
                "--all-targets",
                "--target",
                "wasm32-unknown-unknown",
                "--",
                "-D",
                "warnings",
            ]),
        ),
        &mut total,
    );
    record(
        "native tests",
        suite(
            "native tests (frames, client-wasm, xtask)",
            Counter::Libtest,
            &mut cargo(&["test", "--workspace", "--exclude", "web", "--exclude", "relay"]),
        ),
        &mut total,
    );
    // The relay tests start Valkey clusters (tests/common/cluster.rs) from this server.
    let valkey = tools::ensure_valkey(root)?;
    record(
        "relay tests",
        suite(
            "relay tests",
            Counter::Libtest,
            cargo(&["test", "-p", "relay"]).env("DOORLESS_VALKEY_SERVER", &valkey),
        ),
        &mut total,
    );
    // The store-dependent suites again, on the cluster store (one cluster per test binary).
    record(
        "relay tests (cluster store)",
        suite(
            "relay suites on the cluster store",
            Counter::Libtest,
            cargo(&[
                "test",
                "-p",
                "relay",
                "--test",
                "relay",
                "--test",
                "subscriptions",
                "--test",
                "hostile",
                "--test",
                "bundles",
            ])
            .env("DOORLESS_VALKEY_SERVER", &valkey)
            .env("DOORLESS_TEST_STORE", "cluster"),
        ),
        &mut total,
    );
    // The blob conformance scenarios again on the S3 blob store (feature `s3`), against moto.
    let moto = tools::ensure_moto(root)?;
    record(
        "relay tests (S3 blobs)",
        suite(
            "relay blob tests on the S3 store",
            Counter::Libtest,
            cargo(&["test", "-p", "relay", "--features", "s3", "--test", "blobs", "s3"])
                .env("DOORLESS_MOTO_SERVER", &moto),
        ),
        &mut total,
    );

    if no_browser {
        eprintln!("\n--no-browser: the wasm-bindgen-test and Playwright suites were not run");
    } else {
        browser_suites(root, &mut |name, tally| record(name, tally, &mut total))?;
    }

    eprintln!("\nSummary:");
    for (name, tally) in &results {
        eprintln!("  {name:<28} {}", tally.line());
    }
    println!("{}", total.line());
    if total.failed > 0 {
        std::process::exit(1);
    }
    Ok(())
}

fn browser_suites(root: &Path, record: &mut dyn FnMut(&'static str, Tally)) -> Result<()> {
    let toolset = tools::ensure_web_tools(root)?;
    tools::ensure_chromium()?;

    record(
        "client-wasm in Chrome",
        suite(
            "client-wasm tests in headless Chrome (wasm-bindgen-test)",
            Counter::Libtest,
            cargo(&["test", "-p", "client-wasm", "--target", "wasm32-unknown-unknown"])
                .env("PATH", &toolset.path)
                .env("CHROMEDRIVER", tools::CHROMEDRIVER)
                .env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER", "wasm-bindgen-test-runner")
                .env("WASM_BINDGEN_TEST_TIMEOUT", "300"),
        ),
    );

    let dist = dist::build_web(root, &toolset)?;
    // valkey-harness's `valkey-cluster` starts the Valkey cluster of the nginx end-to-end test.
    tools::run(&mut cargo(&["build", "-p", "relay", "-p", "valkey-harness"]))?;
    tools::ensure_e2e_packages(root)?;
    tools::ensure_nginx()?;
    let valkey = tools::ensure_valkey(root)?;
    record(
        "browser end-to-end",
        suite(
            "browser end-to-end (Playwright, Chromium, release build, real relay)",
            Counter::NodeTap,
            Command::new("node")
                .current_dir(root.join("e2e"))
                .args(["--test", "--test-reporter=tap", "--test-concurrency=1"])
                .arg("tests/")
                .env("DOORLESS_RELAY_BIN", root.join("target/debug/relay"))
                .env("DOORLESS_DIST", &dist)
                .env("DOORLESS_VALKEY_CLUSTER_BIN", root.join("target/debug/valkey-cluster"))
                .env("DOORLESS_VALKEY_SERVER", &valkey)
                .env("NGINX", tools::NGINX)
                .env("CHROMIUM", tools::CHROMIUM),
        ),
    );
    Ok(())
}
