//! `cargo xtask`: every Doorless workflow behind one command, so a newcomer needs only two:
//! `cargo xtask run` and `cargo xtask test`. Each installs what it needs and skips what is there.

mod bench;
mod dist;
mod drill;
mod fuzz;
mod run;
mod test;
mod tools;
mod verify;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Doorless workflows")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build the web app (release) and start the relay serving it.
    Run {
        /// Address the relay listens on.
        #[arg(long, env = "DOORLESS_LISTEN", default_value = "127.0.0.1:8080")]
        listen: String,
        /// Directory for the relay's embedded store.
        #[arg(long, env = "DOORLESS_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
    },
    /// Run every check and test suite; ends with one `N passed, N failed` line.
    Test {
        /// Skip the browser suites (wasm-bindgen-test and Playwright). For quick local loops only.
        #[arg(long)]
        no_browser: bool,
    },
    /// Build the release web app into `dist/`, precompressed.
    Dist,
    /// Measure and print figures (see BENCHMARKS.md): `core`, `relay`, `web`, or all of them.
    Bench {
        /// Which benchmark group; all when omitted.
        group: Option<bench::Group>,
    },
    /// Run every fuzz target for a while (cargo-fuzz, nightly).
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Only this target.
        target: Option<String>,
    },
    /// Subpoena drill: run a conversation, then show everything the relay stored and logged.
    Drill,
    /// Check a served app against a local reproducible build.
    Verify {
        /// The relay's base URL, e.g. https://relay.example.
        url: Option<String>,
        /// Instead: build twice from clean and compare the two builds byte for byte (slow).
        #[arg(long)]
        reproducible: bool,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let root = tools::project_root()?;
    std::env::set_current_dir(&root)?;
    match cli.command {
        Command::Run { listen, data_dir } => run::run(&root, &listen, &data_dir),
        Command::Test { no_browser } => test::test(&root, no_browser),
        Command::Bench { group } => bench::bench(&root, group),
        Command::Fuzz { seconds, target } => fuzz::fuzz(&root, seconds, target.as_deref()),
        Command::Drill => drill::drill(&root),
        Command::Verify { url, reproducible } => verify::command(&root, url.as_deref(), reproducible),
        Command::Dist => {
            let toolset = tools::ensure_web_tools(&root)?;
            dist::build_web(&root, &toolset).map(|_| ())
        }
    }
}
