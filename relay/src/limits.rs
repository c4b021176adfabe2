//! Per-connection limits: the deposit token bucket and the connection cap.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// A token bucket: `rate` tokens per second, at most `burst` saved up.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: f64, burst: f64, now: Instant) -> Self {
        let burst = burst.max(1.0);
        Self { rate: rate.max(0.0), burst, tokens: burst, last: now }
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Counts live connections against a cap.
#[derive(Debug)]
pub struct ConnectionCap {
    live: AtomicUsize,
    max: usize,
}

impl ConnectionCap {
    /// A cap of `max` connections.
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self { live: AtomicUsize::new(0), max })
    }

    /// A slot, or `None` when the cap is reached.
    pub fn try_acquire(self: &Arc<Self>) -> Option<ConnectionSlot> {
        let mut current = self.live.load(Ordering::Relaxed);
        loop {
            if current >= self.max {
                return None;
            }
            match self.live.compare_exchange_weak(current, current + 1, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return Some(ConnectionSlot(self.clone())),
                Err(actual) => current = actual,
            }
        }
    }

    /// Live connections.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }
}

/// One live connection; frees its slot on drop.
#[derive(Debug)]
pub struct ConnectionSlot(Arc<ConnectionCap>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Limits kept for one HTTP connection (not its address), for as long as it stays open: each
/// request on it carries this as a request extension.
#[derive(Debug, Default)]
pub struct HttpConnection {
    /// Blob creations, made on the first one with the configured rate.
    blob_creates: std::sync::Mutex<Option<TokenBucket>>,
}

impl HttpConnection {
    /// Takes a blob-creation token from this connection's bucket (`rate` per second, `burst`).
    pub fn try_create_blob(&self, rate: f64, burst: f64, now: Instant) -> bool {
        let mut bucket = self.blob_creates.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        bucket.get_or_insert_with(|| TokenBucket::new(rate, burst, now)).try_take(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_allows_burst_then_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(10.0, 3.0, start);
        assert!(bucket.try_take(start));
        assert!(bucket.try_take(start));
        assert!(bucket.try_take(start));
        assert!(!bucket.try_take(start));
        assert!(bucket.try_take(start + Duration::from_millis(100)));
        assert!(!bucket.try_take(start + Duration::from_millis(100)));
    }

    #[test]
    fn cap_refuses_past_max_and_frees_on_drop() {
        let cap = ConnectionCap::new(2);
        let a = cap.try_acquire();
        let b = cap.try_acquire();
        assert!(a.is_some() && b.is_some());
        assert!(cap.try_acquire().is_none());
        drop(a);
        assert!(cap.try_acquire().is_some());
        assert_eq!(cap.live(), 1);
    }
}
