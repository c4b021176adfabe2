//! Command-line flags and environment variables (`DOORLESS_*`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use doorless_frames::{DEFAULT_MAX_FRAME_LEN, OriginError, RelayOrigin};

use crate::blob::BlobLimits;
use crate::store::Quotas;

/// Why the relay's origins could not be settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OriginConfigError {
    /// The relay listens on a non-loopback address and no `--public-origin` was given: it cannot
    /// know the origin its clients sign their subscribe proofs for.
    #[error("--public-origin (DOORLESS_PUBLIC_ORIGIN) is required when listening on a non-loopback address")]
    Missing,
    /// A `--public-origin` is not an origin.
    #[error("invalid --public-origin: {0}")]
    Invalid(OriginError),
}

/// Which storage backend holds the mailboxes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoreKind {
    /// One redb file in `--data-dir` (durable; the default).
    Redb,
    /// Memory only: everything is lost on exit. For tests and demos.
    Memory,
    /// A Valkey (>= 8) or Redis (>= 7.2) cluster named by `--cluster-nodes`, shared by several
    /// relays (docs/self-hosting.md).
    Cluster,
}

/// Where attachment blobs are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BlobStoreKind {
    /// Segment files under `--data-dir` (the default, except with `--store memory`).
    Disk,
    /// Memory only (the default with `--store memory`).
    Memory,
    /// An S3-compatible bucket (`--s3-endpoint`, `--s3-bucket`), shared by several relays; needs a
    /// relay built with the `s3` feature.
    S3,
}

/// What a deposit's confirmation waits for on the cluster store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClusterDurability {
    /// `WAITAOF 1 1`: on disk on the master and on its replica (the default; the relay refuses to
    /// start if a master cannot do it).
    AofOnReplica,
    /// `WAIT 1`: received by a replica, maybe on no disk yet. Weaker: for servers without
    /// `WAITAOF`; a deposit confirmed just before master and replica both fail can be lost.
    ReplicaReceived,
}

/// The Doorless relay: stores and forwards opaque blobs by mailbox, serves the web app.
#[derive(Debug, Clone, Parser)]
#[command(name = "relay", version, about)]
pub struct Config {
    /// Address to listen on (port 0 picks a free port; the real one is printed).
    #[arg(long, env = "DOORLESS_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Directory of the store file (`relay.redb`); created if missing.
    #[arg(long, env = "DOORLESS_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Storage backend.
    #[arg(long, env = "DOORLESS_STORE", value_enum, default_value_t = StoreKind::Redb)]
    pub store: StoreKind,

    /// Cluster store: some of the cluster's nodes, `host:port` (repeat or separate with commas).
    #[arg(long, env = "DOORLESS_CLUSTER_NODES", value_delimiter = ',')]
    pub cluster_nodes: Vec<String>,

    /// Cluster store: prefix of every key (relays sharing mailboxes use the same one).
    #[arg(long, env = "DOORLESS_CLUSTER_PREFIX", default_value = "doorless")]
    pub cluster_prefix: String,

    /// Cluster store: connections per node that carry deposits (group commit).
    #[arg(long, env = "DOORLESS_CLUSTER_POOL", default_value_t = 4)]
    pub cluster_pool: usize,

    /// Cluster store: longest wait, in milliseconds, for a deposit to be durable before the
    /// depositor is told it failed.
    #[arg(long, env = "DOORLESS_CLUSTER_WAIT_MS", default_value_t = 2000)]
    pub cluster_wait_ms: u64,

    /// Cluster store: what a confirmation waits for.
    #[arg(long, env = "DOORLESS_CLUSTER_DURABILITY", value_enum, default_value_t = ClusterDurability::AofOnReplica)]
    pub cluster_durability: ClusterDurability,

    /// Directory of the built web app (Trunk's `dist/`). Without it only /ws, /healthz and /metrics
    /// are served.
    #[arg(long, env = "DOORLESS_STATIC_DIR")]
    pub static_dir: Option<PathBuf>,

    /// Extra origins the web app may connect to (CSP `connect-src`), e.g. `wss://relay2.example`.
    /// Repeat the flag or separate with commas.
    #[arg(long, env = "DOORLESS_CONNECT_SRC", value_delimiter = ',')]
    pub connect_src: Vec<String>,

    /// The origin(s) people reach this relay at, e.g. `https://relay.example` (scheme, host, port if
    /// not the default; no path). Subscribe proofs are bound to the origin: the relay accepts only
    /// proofs made for one of these. Repeat the flag or separate with commas. Required unless the
    /// relay listens on a loopback address, where it defaults to `http://127.0.0.1:PORT` and
    /// `http://localhost:PORT` with the port actually bound.
    #[arg(long, env = "DOORLESS_PUBLIC_ORIGIN", value_delimiter = ',')]
    pub public_origin: Vec<String>,

    /// The relay is reached over HTTPS (through a TLS-terminating proxy): send HSTS.
    #[arg(long, env = "DOORLESS_BEHIND_TLS")]
    pub behind_tls: bool,

    /// Largest frame accepted, in bytes (header included).
    #[arg(long, env = "DOORLESS_MAX_FRAME_LEN", default_value_t = DEFAULT_MAX_FRAME_LEN as u32)]
    pub max_frame_len: u32,

    /// Most simultaneous WebSocket connections.
    #[arg(long, env = "DOORLESS_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// Most mailboxes one connection may subscribe to.
    #[arg(long, env = "DOORLESS_MAX_SUBSCRIPTIONS", default_value_t = 1024)]
    pub max_subscriptions: usize,

    /// Sustained deposits per second allowed per connection (token bucket refill rate).
    #[arg(long, env = "DOORLESS_DEPOSIT_RATE", default_value_t = 50.0)]
    pub deposit_rate: f64,

    /// Deposits a connection may make in a burst (token bucket size). The default lets a profile
    /// that comes online with a message from each of its (at most `--max-subscriptions`) contacts
    /// answer every one of them at once.
    #[arg(long, env = "DOORLESS_DEPOSIT_BURST", default_value_t = 2048.0)]
    pub deposit_burst: f64,

    /// Frames queued towards one connection before delivery pauses (the rest stays stored).
    #[arg(long, env = "DOORLESS_OUTBOUND_QUEUE", default_value_t = 32)]
    pub outbound_queue: usize,

    /// Seconds without any frame from a client before it is disconnected (the relay pings first).
    #[arg(long, env = "DOORLESS_IDLE_TIMEOUT_SECS", default_value_t = 60)]
    pub idle_timeout_secs: u64,

    /// Seconds a connection may take to send a complete HTTP request head (and so to start the
    /// WebSocket upgrade); also how long a kept-alive HTTP connection may sit idle between requests.
    #[arg(long, env = "DOORLESS_HEADER_TIMEOUT_SECS", default_value_t = 10)]
    pub header_read_timeout_secs: u64,

    /// Seconds an unacknowledged blob is kept.
    #[arg(long, env = "DOORLESS_TTL_SECS", default_value_t = 7 * 24 * 3600)]
    pub ttl_secs: u64,

    /// Most blobs one mailbox may hold.
    #[arg(long, env = "DOORLESS_MAILBOX_MAX_COUNT", default_value_t = 10_000)]
    pub mailbox_max_count: u64,

    /// Most payload bytes one mailbox may hold.
    #[arg(long, env = "DOORLESS_MAILBOX_MAX_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub mailbox_max_bytes: u64,

    /// Most payload bytes the relay may hold in total.
    #[arg(long, env = "DOORLESS_MAX_STORED_BYTES", default_value_t = 8 * 1024 * 1024 * 1024)]
    pub max_stored_bytes: u64,

    /// Attachments: where blobs are kept (default: `memory` with `--store memory`, else `disk`).
    #[arg(long, env = "DOORLESS_BLOB_STORE", value_enum)]
    pub blob_store: Option<BlobStoreKind>,

    /// S3 blob store: endpoint URL (e.g. `http://10.0.0.20:9000`; none: AWS S3 in `--s3-region`). Credentials come
    /// from the standard variables `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` (and
    /// `AWS_SESSION_TOKEN`), never from a flag.
    #[arg(long, env = "DOORLESS_S3_ENDPOINT", default_value = "")]
    pub s3_endpoint: String,

    /// S3 blob store: bucket name.
    #[arg(long, env = "DOORLESS_S3_BUCKET", default_value = "")]
    pub s3_bucket: String,

    /// S3 blob store: region requests are signed for.
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    pub s3_region: String,

    /// S3 blob store: prefix of every object key (relays sharing blobs use the same one).
    #[arg(long, env = "DOORLESS_S3_PREFIX", default_value = "doorless")]
    pub s3_prefix: String,

    /// S3 blob store: allow a plain `http://` endpoint (a store on a private network or loopback).
    #[arg(long, env = "DOORLESS_S3_ALLOW_HTTP")]
    pub s3_allow_http: bool,

    /// Attachments: largest blob, in sealed bytes (the format's maximum, 271 segments of
    /// 4,195,328 bytes, is the default and the most accepted).
    #[arg(long, env = "DOORLESS_BLOB_MAX_BYTES", default_value_t = crate::blob::MAX_BLOB_LEN)]
    pub blob_max_bytes: u64,

    /// Attachments: most bytes all blobs may reserve together (declared sizes, finished or not).
    #[arg(long, env = "DOORLESS_BLOB_MAX_STORED_BYTES", default_value_t = 8 * 1024 * 1024 * 1024)]
    pub blob_max_stored_bytes: u64,

    /// Attachments: seconds an unfinished upload is kept, from its creation.
    #[arg(long, env = "DOORLESS_BLOB_UPLOAD_TTL_SECS", default_value_t = 24 * 3600)]
    pub blob_upload_ttl_secs: u64,

    /// Attachments: seconds a finished blob is kept, from its completion.
    #[arg(long, env = "DOORLESS_BLOB_TTL_SECS", default_value_t = 7 * 24 * 3600)]
    pub blob_ttl_secs: u64,

    /// Attachments: most segment uploads in progress at once (each holds a temporary file and a
    /// 256 KiB buffer); more are refused with 503 and `Retry-After`.
    #[arg(long, env = "DOORLESS_BLOB_MAX_UPLOADS", default_value_t = 64)]
    pub blob_max_uploads: usize,

    /// Attachments: blobs one HTTP connection may create per second, sustained.
    #[arg(long, env = "DOORLESS_BLOB_CREATE_RATE", default_value_t = 1.0)]
    pub blob_create_rate: f64,

    /// Attachments: blobs one HTTP connection may create in a burst (a batch of photos).
    #[arg(long, env = "DOORLESS_BLOB_CREATE_BURST", default_value_t = 32.0)]
    pub blob_create_burst: f64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            store: StoreKind::Redb,
            cluster_nodes: Vec::new(),
            cluster_prefix: "doorless".into(),
            cluster_pool: 4,
            cluster_wait_ms: 2000,
            cluster_durability: ClusterDurability::AofOnReplica,
            static_dir: None,
            connect_src: Vec::new(),
            public_origin: Vec::new(),
            behind_tls: false,
            max_frame_len: DEFAULT_MAX_FRAME_LEN as u32,
            max_connections: 10_000,
            max_subscriptions: 1024,
            deposit_rate: 50.0,
            deposit_burst: 2048.0,
            outbound_queue: 32,
            idle_timeout_secs: 60,
            header_read_timeout_secs: 10,
            ttl_secs: 7 * 24 * 3600,
            mailbox_max_count: 10_000,
            mailbox_max_bytes: 64 * 1024 * 1024,
            max_stored_bytes: 8 * 1024 * 1024 * 1024,
            blob_store: None,
            s3_endpoint: String::new(),
            s3_bucket: String::new(),
            s3_region: "us-east-1".into(),
            s3_prefix: "doorless".into(),
            s3_allow_http: false,
            blob_max_bytes: crate::blob::MAX_BLOB_LEN,
            blob_max_stored_bytes: 8 * 1024 * 1024 * 1024,
            blob_upload_ttl_secs: 24 * 3600,
            blob_ttl_secs: 7 * 24 * 3600,
            blob_max_uploads: 64,
            blob_create_rate: 1.0,
            blob_create_burst: 32.0,
        }
    }
}

impl Config {
    /// The storage quotas.
    pub fn quotas(&self) -> Quotas {
        Quotas {
            ttl_ms: self.ttl_secs.saturating_mul(1000),
            mailbox_max_count: self.mailbox_max_count,
            mailbox_max_bytes: self.mailbox_max_bytes,
            max_stored_bytes: self.max_stored_bytes,
        }
    }

    /// The limits of the attachment blob store.
    pub fn blob_limits(&self) -> BlobLimits {
        BlobLimits {
            max_blob_bytes: self.blob_max_bytes,
            max_stored_bytes: self.blob_max_stored_bytes,
            upload_ttl_ms: self.blob_upload_ttl_secs.saturating_mul(1000),
            blob_ttl_ms: self.blob_ttl_secs.saturating_mul(1000),
        }
    }

    /// Where attachment blobs go: `--blob-store`, or by default memory with `--store memory` and
    /// the local disk otherwise.
    pub fn blob_store_kind(&self) -> BlobStoreKind {
        self.blob_store.unwrap_or(match self.store {
            StoreKind::Memory => BlobStoreKind::Memory,
            _ => BlobStoreKind::Disk,
        })
    }

    /// The S3 blob store's options.
    #[cfg(feature = "s3")]
    pub fn s3_options(&self) -> crate::blob::S3Options {
        crate::blob::S3Options {
            endpoint: self.s3_endpoint.clone(),
            bucket: self.s3_bucket.clone(),
            region: self.s3_region.clone(),
            prefix: self.s3_prefix.clone(),
            allow_http: self.s3_allow_http,
            credentials: None,
        }
    }

    /// The cluster store's options.
    pub fn cluster_options(&self) -> crate::store::ClusterOptions {
        let mut options = crate::store::ClusterOptions::new(self.cluster_nodes.clone());
        options.prefix = self.cluster_prefix.clone();
        options.pool = self.cluster_pool;
        options.wait_timeout = Duration::from_millis(self.cluster_wait_ms.max(1));
        options.durability = match self.cluster_durability {
            ClusterDurability::AofOnReplica => crate::store::cluster::Durability::AofOnReplica,
            ClusterDurability::ReplicaReceived => crate::store::cluster::Durability::ReplicaReceived,
        };
        options
    }

    /// The idle timeout.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs.max(1))
    }

    /// The header-read deadline (at least one second).
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_secs(self.header_read_timeout_secs.max(1))
    }

    /// The origins subscribe proofs must be made for, given the address actually bound: the
    /// configured ones, or for a loopback listen address `http://IP:PORT` and
    /// `http://localhost:PORT`.
    pub fn origins(&self, bound: SocketAddr) -> Result<Vec<RelayOrigin>, OriginConfigError> {
        if self.public_origin.is_empty() {
            if !bound.ip().is_loopback() {
                return Err(OriginConfigError::Missing);
            }
            let defaults = [format!("http://{bound}"), format!("http://localhost:{}", bound.port())];
            return defaults
                .iter()
                .map(|url| RelayOrigin::parse(url).map_err(OriginConfigError::Invalid))
                .collect();
        }
        self.public_origin
            .iter()
            .map(|url| RelayOrigin::parse(url).map_err(OriginConfigError::Invalid))
            .collect()
    }

    /// A one-line summary for the startup log (no secrets, nothing per-user).
    pub fn summary(&self) -> String {
        format!(
            "listen={} store={:?} blob_store={:?} data_dir={} static_dir={} behind_tls={} max_frame_len={} \
             max_connections={} max_subscriptions={} deposit_rate={}/s burst={} outbound_queue={} \
             idle_timeout={}s header_timeout={}s ttl={}s mailbox_max_count={} mailbox_max_bytes={} max_stored_bytes={} \
             blob_max_bytes={} blob_max_stored_bytes={} blob_upload_ttl={}s blob_ttl={}s blob_max_uploads={} \
             blob_create_rate={}/s blob_create_burst={} \
             extra_connect_src={} public_origin={} cluster_nodes={} cluster_durability={:?}",
            self.listen,
            self.store,
            self.blob_store_kind(),
            self.data_dir.display(),
            self.static_dir.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "-".into()),
            self.behind_tls,
            self.max_frame_len,
            self.max_connections,
            self.max_subscriptions,
            self.deposit_rate,
            self.deposit_burst,
            self.outbound_queue,
            self.idle_timeout_secs,
            self.header_read_timeout_secs,
            self.ttl_secs,
            self.mailbox_max_count,
            self.mailbox_max_bytes,
            self.max_stored_bytes,
            self.blob_max_bytes,
            self.blob_max_stored_bytes,
            self.blob_upload_ttl_secs,
            self.blob_ttl_secs,
            self.blob_max_uploads,
            self.blob_create_rate,
            self.blob_create_burst,
            self.connect_src.len(),
            // Operator configuration, not anything a user sent.
            if self.public_origin.is_empty() {
                "(loopback default)".to_owned()
            } else {
                self.public_origin.join(",")
            },
            self.cluster_nodes.len(),
            self.cluster_durability,
        )
    }
}
