//! Counters in Prometheus text format: counts and sizes only, never ids or addresses.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use doorless_frames::ErrorCode;

use crate::store::StoreStats;

/// Highest error code number counted individually; others share the last slot.
const ERROR_SLOTS: usize = 18;

/// The relay's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// WebSocket connections accepted.
    pub connections_total: AtomicU64,
    /// WebSocket connections refused by the connection cap.
    pub connections_refused_total: AtomicU64,
    /// Frames received from clients.
    pub frames_in_total: AtomicU64,
    /// Frames queued towards clients.
    pub frames_out_total: AtomicU64,
    /// Deposits made durable.
    pub deposits_total: AtomicU64,
    /// Payload bytes made durable.
    pub deposit_bytes_total: AtomicU64,
    /// Blobs handed to subscribers.
    pub deliveries_total: AtomicU64,
    /// Blobs deleted by acknowledgement.
    pub acked_total: AtomicU64,
    /// Subscriptions currently active.
    pub subscriptions: AtomicI64,
    /// Frames currently sitting in outbound queues, summed over connections.
    pub outbound_queued: AtomicI64,
    /// Times a connection's delivery paused because its outbound queue was full.
    pub outbound_full_total: AtomicU64,
    /// Connections dropped because they did not read what they were sent in time.
    pub slow_consumer_total: AtomicU64,
    /// Connection tasks that ended in a panic: a bug (the relay carries on without that connection).
    pub connection_panics_total: AtomicU64,
    errors: [AtomicU64; ERROR_SLOTS],
}

impl Metrics {
    /// Counts an error frame sent with `code`.
    pub fn error(&self, code: ErrorCode) {
        let slot = (code.to_u16() as usize).min(ERROR_SLOTS - 1);
        if let Some(counter) = self.errors.get(slot) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Error frames sent with `code` so far.
    pub fn errors_sent(&self, code: ErrorCode) -> u64 {
        let slot = (code.to_u16() as usize).min(ERROR_SLOTS - 1);
        self.errors.get(slot).map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Renders everything in Prometheus text exposition format.
    pub fn render(&self, store: StoreStats, live_connections: usize) -> String {
        let mut out = String::with_capacity(2048);
        let mut gauge = |name: &str, help: &str, value: i128| {
            let _ = writeln!(
                out,
                "# HELP doorless_{name} {help}\n# TYPE doorless_{name} gauge\ndoorless_{name} {value}"
            );
        };
        gauge("connections", "Open WebSocket connections.", live_connections as i128);
        gauge(
            "subscriptions",
            "Active mailbox subscriptions.",
            self.subscriptions.load(Ordering::Relaxed).into(),
        );
        gauge(
            "outbound_queued_frames",
            "Frames waiting in outbound queues.",
            self.outbound_queued.load(Ordering::Relaxed).into(),
        );
        gauge("stored_blobs", "Blobs stored.", store.blobs.into());
        gauge("stored_bytes", "Payload bytes stored.", store.bytes.into());
        let mut counter = |name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP doorless_{name} {help}\n# TYPE doorless_{name} counter\ndoorless_{name} {value}"
            );
        };
        let c = |a: &AtomicU64| a.load(Ordering::Relaxed);
        counter("connections_total", "WebSocket connections accepted.", c(&self.connections_total));
        counter(
            "connections_refused_total",
            "Connections refused by the cap.",
            c(&self.connections_refused_total),
        );
        counter("frames_in_total", "Frames received.", c(&self.frames_in_total));
        counter("frames_out_total", "Frames queued for sending.", c(&self.frames_out_total));
        counter("deposits_total", "Deposits made durable.", c(&self.deposits_total));
        counter("deposit_bytes_total", "Payload bytes deposited.", c(&self.deposit_bytes_total));
        counter("deliveries_total", "Blobs delivered.", c(&self.deliveries_total));
        counter("acked_total", "Blobs deleted by acknowledgement.", c(&self.acked_total));
        counter("expired_total", "Blobs deleted by expiry.", store.expired);
        counter(
            "outbound_full_total",
            "Delivery pauses on a full outbound queue.",
            c(&self.outbound_full_total),
        );
        counter("slow_consumer_total", "Connections dropped for not reading.", c(&self.slow_consumer_total));
        counter(
            "connection_panics_total",
            "Connection tasks that ended in a panic (a bug; the relay carries on).",
            c(&self.connection_panics_total),
        );
        let _ = writeln!(out, "# HELP doorless_errors_total Error frames sent, by code.");
        let _ = writeln!(out, "# TYPE doorless_errors_total counter");
        for (code, counter) in self.errors.iter().enumerate().skip(1) {
            let _ =
                writeln!(out, "doorless_errors_total{{code=\"{code}\"}} {}", counter.load(Ordering::Relaxed));
        }
        out
    }
}
