//! The Doorless relay: stores and forwards opaque blobs by mailbox, and serves the web app.
//!
//! The relay never sees plaintext: a deposit is an opaque payload addressed to a random-looking
//! mailbox id, with no sender. Only the holder of a mailbox's private key can subscribe to it.
//!
//! Start one in-process (this is what the tests do):
//!
//! ```no_run
//! # async fn demo() -> Result<(), relay::StartError> {
//! let config = relay::Config { listen: "127.0.0.1:0".parse().unwrap(), ..relay::Config::default() };
//! let relay = relay::start(&config).await?;
//! println!("listening on {}", relay.addr());
//! relay.shutdown().await;
//! # Ok(()) }
//! ```
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod blob;
pub mod bundles;
pub mod clock;
pub mod config;
pub mod filters;
mod http;
pub mod limits;
pub mod metrics;
pub mod static_files;
pub mod store;
pub mod websocket;
pub mod ws;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use doorless_frames::RelayOrigin;
use tokio::sync::watch;

pub use blob::{BlobStore, DiskBlobStore, MemoryBlobStore};
pub use bundles::MAX_BUNDLES_PER_CONNECTION;
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{BlobStoreKind, ClusterDurability, Config, OriginConfigError, StoreKind};
pub use metrics::Metrics;
pub use store::{ClusterStore, MemoryStore, RedbStore, Store};

use crate::limits::ConnectionCap;
use crate::static_files::{StaticError, StaticSite};
use crate::store::StoreError;
use crate::ws::{Shared, WsLimits};

/// Name of the store file inside the data directory.
pub const STORE_FILE: &str = "relay.redb";
/// Name of the attachment blob directory inside the data directory.
pub const BLOB_DIR: &str = "blobs";

/// Why the relay could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory could not be created.
    #[error("cannot create the data directory: {0}")]
    DataDir(std::io::Error),
    /// The store could not be opened.
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
    /// `--blob-store s3` on a relay built without the `s3` feature.
    #[error("--blob-store s3 needs a relay built with the `s3` feature (cargo build --features s3)")]
    NoS3,
    /// The attachment blob store could not be opened.
    #[error("cannot open the blob store: {0}")]
    Blobs(#[from] blob::BlobError),
    /// The cluster store could not start.
    #[error(transparent)]
    Cluster(#[from] store::cluster::ClusterError),
    /// The web app could not be loaded.
    #[error(transparent)]
    Static(#[from] StaticError),
    /// The listening address could not be bound.
    #[error("cannot listen on the configured address: {0}")]
    Bind(std::io::Error),
    /// The origins subscribe proofs are bound to are missing or invalid.
    #[error(transparent)]
    Origin(#[from] OriginConfigError),
}

/// A running relay.
pub struct Relay {
    addr: SocketAddr,
    origins: Vec<RelayOrigin>,
    metrics: Arc<Metrics>,
    store: Arc<dyn Store>,
    blobs: Arc<dyn BlobStore>,
    cap: Arc<ConnectionCap>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    site: Option<Arc<StaticSite>>,
}

impl Relay {
    /// The address actually bound.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The origins the relay accepts subscribe proofs for.
    pub fn origins(&self) -> &[RelayOrigin] {
        &self.origins
    }

    /// The relay's counters.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The store (tests use it to run expiry).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The attachment blob store (tests use it to run expiry).
    pub fn blobs(&self) -> &Arc<dyn BlobStore> {
        &self.blobs
    }

    /// Open WebSocket connections.
    pub fn live_connections(&self) -> usize {
        self.cap.live()
    }

    /// The loaded web app, if `--static-dir` was given.
    pub fn site(&self) -> Option<&StaticSite> {
        self.site.as_deref()
    }

    /// Stops accepting, closes connections that have not upgraded, tells connected clients,
    /// finishes queued store work, and returns.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

/// Starts a relay with the store the configuration names.
pub async fn start(config: &Config) -> Result<Relay, StartError> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store: Arc<dyn Store> = match config.store {
        StoreKind::Redb => {
            std::fs::create_dir_all(&config.data_dir).map_err(StartError::DataDir)?;
            Arc::new(RedbStore::open(&config.data_dir.join(STORE_FILE), config.quotas(), clock.clone())?)
        }
        StoreKind::Memory => Arc::new(MemoryStore::new(config.quotas(), clock.clone())),
        StoreKind::Cluster => {
            Arc::new(ClusterStore::connect(config.cluster_options(), config.quotas(), clock.clone()).await?)
        }
    };
    let blobs: Arc<dyn BlobStore> = match config.blob_store_kind() {
        BlobStoreKind::Memory => Arc::new(MemoryBlobStore::new(config.blob_limits(), clock)),
        BlobStoreKind::Disk => {
            Arc::new(DiskBlobStore::open(&config.data_dir.join(BLOB_DIR), config.blob_limits(), clock)?)
        }
        #[cfg(feature = "s3")]
        BlobStoreKind::S3 => {
            Arc::new(blob::S3BlobStore::open(&config.s3_options(), config.blob_limits(), clock).await?)
        }
        #[cfg(not(feature = "s3"))]
        BlobStoreKind::S3 => return Err(StartError::NoS3),
    };
    start_with_stores(config, store, blobs).await
}

/// Starts a relay on a given store (for tests with an injected clock, or another backend), with
/// attachment blobs in memory.
pub async fn start_with_store(config: &Config, store: Arc<dyn Store>) -> Result<Relay, StartError> {
    let blobs = Arc::new(MemoryBlobStore::new(config.blob_limits(), Arc::new(SystemClock)));
    start_with_stores(config, store, blobs).await
}

/// Starts a relay on a given mailbox store and blob store.
pub async fn start_with_stores(
    config: &Config,
    store: Arc<dyn Store>,
    blobs: Arc<dyn BlobStore>,
) -> Result<Relay, StartError> {
    let site = match &config.static_dir {
        Some(dir) => Some(Arc::new(StaticSite::load(dir, &config.connect_src)?)),
        None => None,
    };
    // Checked before binding too (with the port yet to be bound left aside): a relay that cannot
    // know its origin does not listen at all.
    config.origins(std::net::SocketAddr::new(config.listen.ip(), 1))?;
    let listener = listen(config.listen).map_err(StartError::Bind)?;
    let addr = listener.local_addr().map_err(StartError::Bind)?;
    let origins = config.origins(addr)?;
    let metrics = Arc::new(Metrics::default());
    let cap = ConnectionCap::new(config.max_connections);
    let (shutdown, shutdown_rx) = watch::channel(false);
    let shared = Arc::new(Shared {
        store: store.clone(),
        metrics: metrics.clone(),
        cap: cap.clone(),
        limits: WsLimits {
            max_frame_len: config.max_frame_len as usize,
            max_subscriptions: config.max_subscriptions,
            deposit_rate: config.deposit_rate,
            deposit_burst: config.deposit_burst,
            outbound_queue: config.outbound_queue,
            idle_timeout: config.idle_timeout(),
        },
        shutdown: shutdown_rx.clone(),
        origins: origins.clone(),
    });
    let blob_limits = blob::ServiceLimits {
        max_uploads: config.blob_max_uploads,
        create_rate: config.blob_create_rate,
        create_burst: config.blob_create_burst,
    };
    let blob_service = blob::BlobService::new(blobs.clone(), blob_limits);
    let routes = filters::routes(shared, site.clone(), config.behind_tls, blob_service);
    let server = http::serve(listener, routes, config.header_read_timeout(), shutdown_rx.clone());
    let shortest_ttl = config.quotas().ttl_ms.min(config.blob_limits().upload_ttl_ms);
    let sweep_every = Duration::from_millis((shortest_ttl / 10).clamp(1000, 60_000));
    let task_store = store.clone();
    let task_blobs = blobs.clone();
    let task_cap = cap.clone();
    let mut stop_sweeping = shutdown_rx;
    let task = tokio::spawn(async move {
        let sweeper = async {
            let mut tick = tokio::time::interval(sweep_every);
            loop {
                tokio::select! {
                    _ = async { let _ = stop_sweeping.wait_for(|stop| *stop).await; } => break,
                    _ = tick.tick() => {
                        if let Err(err) = task_store.expire().await {
                            tracing::warn!(error = %err, "expiry pass failed");
                        }
                        if let Err(err) = task_blobs.expire().await {
                            tracing::warn!(error = %err, "blob expiry pass failed");
                        }
                    }
                }
            }
        };
        tokio::join!(server, sweeper);
        // The server has stopped accepting; WebSocket connections were told and are closing.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while task_cap.live() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if let Err(err) = task_store.close().await {
            tracing::error!(error = %err, "closing the store failed");
        }
    });
    Ok(Relay { addr, origins, metrics, store, blobs, cap, shutdown, task, site })
}

/// The listening socket. `TCP_NODELAY` is set on it so that every accepted connection inherits it
/// (Linux and the BSDs copy it on accept; warp offers no hook on the accepted stream). Without it,
/// a small frame written while an earlier one is unacknowledged waits for the peer's delayed ACK,
/// up to 40 ms on Linux: a chat message that sits still for 40 ms.
fn listen(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket =
        if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    // As `TcpListener::bind` does: a restarted relay can bind while old connections linger.
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn accepted_connections_inherit_nodelay() {
        let listener = super::listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        assert!(accepted.nodelay().unwrap(), "the relay's side of a connection must not wait for ACKs");
        drop(client);
    }
}
