//! `cargo xtask`: every Doorless workflow behind one command, so a newcomer needs only two:
//! `cargo xtask run` and `cargo xtask test`. Each installs what it needs and skips what is there.

mod dist;
mod run;
mod test;
mod tools;

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
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let root = tools::project_root()?;
    std::env::set_current_dir(&root)?;
    match cli.command {
        Command::Run { listen, data_dir } => run::run(&root, &listen, &data_dir),
        Command::Test { no_browser } => test::test(&root, no_browser),
        Command::Dist => {
            let toolset = tools::ensure_web_tools(&root)?;
            dist::build_web(&root, &toolset).map(|_| ())
        }
    }
}
