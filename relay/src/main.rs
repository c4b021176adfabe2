//! The relay binary: flags, logging, signals. Everything else lives in the library.

use std::io::Write as _;

use anyhow::Context as _;
use clap::Parser as _;
use relay::Config;

/// Every frame allocates and frees a few small buffers; mimalloc does that in less time than glibc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DOORLESS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    tracing::info!("configuration: {}", config.summary());

    let relay = relay::start(&config).await.context("starting the relay")?;
    if let Some(site) = relay.site() {
        tracing::info!(inline_scripts = site.script_hashes().len(), "serving the web app");
    }
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "doorless relay listening on http://{}", relay.addr())?;
        stdout.flush()?;
    }

    wait_for_signal().await?;
    tracing::info!("shutting down");
    relay.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        tokio::select! {
            _ = term.recv() => {}
            result = tokio::signal::ctrl_c() => result.context("waiting for Ctrl-C")?,
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
    Ok(())
}
