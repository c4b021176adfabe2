//! The test double: every blob in memory, with the same semantics as [`super::DiskBlobStore`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;

use super::{
    BlobError, BlobId, BlobInfo, BlobLimits, BlobStats, BlobStore, BodyStream, BoxFuture, NewBlob,
    PutOutcome, SegmentRead, check_quota, receive_segment,
};
use crate::clock::Clock;

struct Held {
    info: BlobInfo,
    segments: HashMap<u16, Bytes>,
}

#[derive(Default)]
struct State {
    blobs: HashMap<BlobId, Held>,
    expired: u64,
}

impl State {
    /// The blob, unless it is missing or past its expiry.
    fn live(&mut self, id: &BlobId, now: u64) -> Result<&mut Held, BlobError> {
        match self.blobs.get_mut(id) {
            Some(held) if held.info.expires_ms > now => Ok(held),
            _ => Err(BlobError::NotFound),
        }
    }
}

/// Blobs in memory; lost on exit.
pub struct MemoryBlobStore {
    state: Arc<Mutex<State>>,
    limits: BlobLimits,
    clock: Arc<dyn Clock>,
}

impl MemoryBlobStore {
    /// An empty store.
    pub fn new(limits: BlobLimits, clock: Arc<dyn Clock>) -> Self {
        Self { state: Arc::default(), limits, clock }
    }

    fn with_state<T>(&self, f: impl FnOnce(&mut State, u64) -> Result<T, BlobError>) -> Result<T, BlobError> {
        let now = self.clock.now_ms();
        f(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner), now)
    }
}

impl BlobStore for MemoryBlobStore {
    fn create(&self, id: BlobId, new: NewBlob) -> BoxFuture<'static, Result<BlobInfo, BlobError>> {
        let limits = self.limits;
        let result = new.check(&limits).and_then(|()| {
            self.with_state(|state, now| {
                let reserved = state.blobs.values().map(|held| held.info.size).sum();
                check_quota(reserved, new.size, &limits)?;
                if state.blobs.contains_key(&id) {
                    return Err(BlobError::Backend("blob id collision".into()));
                }
                let info = BlobInfo::new(&new, now.saturating_add(limits.upload_ttl_ms));
                state.blobs.insert(id, Held { info: info.clone(), segments: HashMap::new() });
                Ok(info)
            })
        });
        Box::pin(std::future::ready(result))
    }

    fn info(&self, id: BlobId) -> BoxFuture<'static, Result<BlobInfo, BlobError>> {
        let result = self.with_state(|state, now| Ok(state.live(&id, now)?.info.clone()));
        Box::pin(std::future::ready(result))
    }

    fn put_segment(
        &self,
        id: BlobId,
        index: u16,
        sha256: [u8; 32],
        mut body: BodyStream,
    ) -> BoxFuture<'static, Result<PutOutcome, BlobError>> {
        let state = self.state.clone();
        let clock = self.clock.clone();
        Box::pin(async move {
            let expected_len = {
                let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
                let info = &state.live(&id, clock.now_ms())?.info;
                if info.check_put(index, &sha256)? {
                    return Ok(PutOutcome::AlreadyStored);
                }
                info.segment_len(index).ok_or(BlobError::NoSuchSegment)?
            };
            // The double keeps the segment in memory; the disk store streams it to a file.
            let mut bytes = Vec::new();
            receive_segment(&mut body, &mut bytes, expected_len, &sha256).await?;
            let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
            // The blob may have been completed, cancelled or expired meanwhile.
            let held = state.live(&id, clock.now_ms())?;
            if held.info.check_put(index, &sha256)? {
                return Ok(PutOutcome::AlreadyStored);
            }
            held.segments.insert(index, bytes.into());
            if let Some(slot) = held.info.stored.get_mut(usize::from(index)) {
                *slot = Some(sha256);
            }
            Ok(PutOutcome::Stored)
        })
    }

    fn complete(&self, id: BlobId) -> BoxFuture<'static, Result<BlobInfo, BlobError>> {
        let ttl = self.limits.blob_ttl_ms;
        let result = self.with_state(|state, now| {
            let held = state.live(&id, now)?;
            if !held.info.complete {
                let missing = held.info.missing();
                if !missing.is_empty() {
                    return Err(BlobError::Incomplete { missing });
                }
                held.info.complete = true;
                held.info.expires_ms = now.saturating_add(ttl);
            }
            Ok(held.info.clone())
        });
        Box::pin(std::future::ready(result))
    }

    fn delete(&self, id: BlobId) -> BoxFuture<'static, Result<(), BlobError>> {
        let result = self.with_state(|state, now| {
            state.live(&id, now)?;
            state.blobs.remove(&id);
            Ok(())
        });
        Box::pin(std::future::ready(result))
    }

    fn read_segment(&self, id: BlobId, index: u16) -> BoxFuture<'static, Result<SegmentRead, BlobError>> {
        let result = self.with_state(|state, now| {
            let held = state.live(&id, now)?;
            if !held.info.complete {
                return Err(BlobError::Incomplete { missing: held.info.missing() });
            }
            let bytes = held.segments.get(&index).cloned().ok_or(BlobError::NoSuchSegment)?;
            let len = bytes.len() as u64;
            let body: super::SegmentStream = Box::pin(futures_util::stream::iter([Ok(bytes)]));
            Ok(SegmentRead { len, body })
        });
        Box::pin(std::future::ready(result))
    }

    fn expire(&self) -> BoxFuture<'static, Result<u64, BlobError>> {
        let result = self.with_state(|state, now| {
            let before = state.blobs.len();
            state.blobs.retain(|_, held| held.info.expires_ms > now);
            let gone = (before - state.blobs.len()) as u64;
            state.expired += gone;
            Ok(gone)
        });
        Box::pin(std::future::ready(result))
    }

    fn stats(&self) -> BlobStats {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let mut stats = BlobStats { expired: state.expired, ..BlobStats::default() };
        for held in state.blobs.values() {
            stats.blobs += 1;
            stats.uploading += u64::from(!held.info.complete);
            stats.reserved_bytes += held.info.size;
            stats.stored_bytes += held.info.stored_bytes();
        }
        stats
    }
}
