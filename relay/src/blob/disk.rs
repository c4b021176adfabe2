//! The default blob store: segment files on the local disk, metadata in a redb file.
//!
//! Layout under the blob directory (`DATA_DIR/blobs`):
//! - `meta.redb`: the records (tables below). A file of its own, not a table in `relay.redb`: redb
//!   opens a file once per process, and the mailbox store owns that one; its writer's group commit
//!   also stays free of the blob store's commits.
//! - `segments/ID/INDEX`: one file per stored segment (`ID` the blob id in base64url, `INDEX` the
//!   segment index in decimal), exactly the sealed bytes the uploader sent.
//! - `tmp/`: uploads in progress. Emptied at start: whatever is there was cut off by a crash.
//!
//! Tables of `meta.redb`:
//! - `blobs`: `id (16)` -> record, 92 bytes: `version = 1 (u8)`, `complete (u8)`, `segments (u16)`,
//!   `size (u64)`, `created_ms (u64)`, `expires_ms (u64)`, `write_hash [32]`, `read_hash [32]`
//!   (integers big-endian);
//! - `blob_segments`: `id || index (u16 BE)` -> SHA-256 of the stored segment;
//! - `blob_expiries`: `expires_ms (u64 BE) || id` -> `()`, to expire without a scan.
//!
//! A segment is written to `tmp/`, hashed as it arrives, fsync'd, renamed into `segments/ID/`
//! (the directory fsync'd), and only then recorded in `blob_segments` by a committed transaction.
//! So after a crash at any point a segment is either recorded and whole on disk, or not recorded:
//! a file renamed but not recorded is ignored (a later upload of that segment replaces it). Deleting
//! commits the records' removal first and then removes the files; directories left by a crash in
//! between are removed at the next start.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use tokio::io::{AsyncRead, ReadBuf};

use super::{
    BlobError, BlobId, BlobInfo, BlobLimits, BlobStats, BlobStore, BodyStream, BoxFuture, ID_LEN, NewBlob,
    PutOutcome, SegmentRead, check_quota, receive_segment, segment_len, storage_error,
};
use crate::clock::Clock;

const BLOBS: TableDefinition<&[u8; ID_LEN], &[u8]> = TableDefinition::new("blobs");
const SEGMENTS: TableDefinition<&[u8; ID_LEN + 2], &[u8; 32]> = TableDefinition::new("blob_segments");
const EXPIRIES: TableDefinition<&[u8; 8 + ID_LEN], ()> = TableDefinition::new("blob_expiries");

/// Version byte of a `blobs` record.
const RECORD_VERSION: u8 = 1;
/// Length of a `blobs` record.
const RECORD_LEN: usize = 92;
/// redb's page cache for the metadata: records are small and read once per request.
const CACHE_BYTES: usize = 16 * 1024 * 1024;
/// Most blobs one expiry pass removes (the next pass continues).
const MAX_EXPIRE_PER_PASS: usize = 1000;
/// Bytes buffered between the network and a segment file, and read per chunk of a download.
const IO_CHUNK: usize = 256 * 1024;
/// The metadata file inside the blob directory.
pub const META_FILE: &str = "meta.redb";

fn backend(err: impl std::fmt::Display) -> BlobError {
    BlobError::Backend(err.to_string())
}

/// A blob's record in `blobs` (also the body of the S3 store's `meta` object).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    pub(super) complete: bool,
    pub(super) segments: u16,
    pub(super) size: u64,
    pub(super) created_ms: u64,
    pub(super) expires_ms: u64,
    pub(super) write_hash: [u8; 32],
    pub(super) read_hash: [u8; 32],
}

impl Record {
    /// The stored bytes (docs/relay-protocol.md, attachment blobs).
    pub fn encode(&self) -> [u8; RECORD_LEN] {
        let mut out = [0; RECORD_LEN];
        out[0] = RECORD_VERSION;
        out[1] = u8::from(self.complete);
        out[2..4].copy_from_slice(&self.segments.to_be_bytes());
        out[4..12].copy_from_slice(&self.size.to_be_bytes());
        out[12..20].copy_from_slice(&self.created_ms.to_be_bytes());
        out[20..28].copy_from_slice(&self.expires_ms.to_be_bytes());
        out[28..60].copy_from_slice(&self.write_hash);
        out[60..92].copy_from_slice(&self.read_hash);
        out
    }

    /// Reads stored bytes; anything [`Record::encode`] did not write is refused.
    pub fn decode(bytes: &[u8]) -> Result<Self, BlobError> {
        let bytes: &[u8; RECORD_LEN] =
            bytes.try_into().map_err(|_| BlobError::Backend("blob record of the wrong length".into()))?;
        if bytes[0] != RECORD_VERSION {
            return Err(BlobError::Backend("blob record of an unknown version".into()));
        }
        let u64_at = |at: usize| {
            let mut b = [0; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            u64::from_be_bytes(b)
        };
        let mut write_hash = [0; 32];
        write_hash.copy_from_slice(&bytes[28..60]);
        let mut read_hash = [0; 32];
        read_hash.copy_from_slice(&bytes[60..92]);
        let complete = match bytes[1] {
            0 => false,
            1 => true,
            _ => return Err(BlobError::Backend("blob record with an invalid completion flag".into())),
        };
        Ok(Self {
            complete,
            segments: u16::from_be_bytes([bytes[2], bytes[3]]),
            size: u64_at(4),
            created_ms: u64_at(12),
            expires_ms: u64_at(20),
            write_hash,
            read_hash,
        })
    }
}

fn segment_key(id: &BlobId, index: u16) -> [u8; ID_LEN + 2] {
    let mut key = [0; ID_LEN + 2];
    key[..ID_LEN].copy_from_slice(&id.0);
    key[ID_LEN..].copy_from_slice(&index.to_be_bytes());
    key
}

fn expiry_key(expires_ms: u64, id: &BlobId) -> [u8; 8 + ID_LEN] {
    let mut key = [0; 8 + ID_LEN];
    key[..8].copy_from_slice(&expires_ms.to_be_bytes());
    key[8..].copy_from_slice(&id.0);
    key
}

/// Counts kept in memory, rebuilt from the records at start.
#[derive(Debug, Default)]
struct Totals {
    blobs: u64,
    uploading: u64,
    reserved: u64,
    stored: u64,
    expired: u64,
}

struct Inner {
    root: PathBuf,
    db: Database,
    limits: BlobLimits,
    clock: Arc<dyn Clock>,
    totals: Mutex<Totals>,
    /// Held while segment files are renamed or removed together with their records, so that a
    /// file on disk and its record never disagree for long.
    commit: Mutex<()>,
}

/// Segment files under a directory, metadata in `meta.redb` there.
pub struct DiskBlobStore {
    inner: Arc<Inner>,
}

/// A temporary upload file, removed on drop unless it was renamed into place.
struct TempFile {
    path: PathBuf,
    keep: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BlobError> + Send + 'static,
) -> Result<T, BlobError> {
    tokio::task::spawn_blocking(f).await.map_err(|_| BlobError::Backend("blob store task failed".into()))?
}

fn sync_dir(dir: &Path) -> Result<(), BlobError> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|err| storage_error(&err))
}

impl DiskBlobStore {
    /// Opens (or creates) the blob store in `dir`, empties its `tmp/`, and removes the segment
    /// directories of blobs it has no record of.
    pub fn open(dir: &Path, limits: BlobLimits, clock: Arc<dyn Clock>) -> Result<Self, BlobError> {
        let io = |err: std::io::Error| storage_error(&err);
        std::fs::create_dir_all(dir.join("segments")).map_err(io)?;
        let tmp = dir.join("tmp");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(io)?;
        }
        std::fs::create_dir_all(&tmp).map_err(io)?;
        let db =
            Database::builder().set_cache_size(CACHE_BYTES).create(dir.join(META_FILE)).map_err(backend)?;
        let txn = db.begin_write().map_err(backend)?;
        txn.open_table(BLOBS).map_err(backend)?;
        txn.open_table(SEGMENTS).map_err(backend)?;
        txn.open_table(EXPIRIES).map_err(backend)?;
        txn.commit().map_err(backend)?;

        let mut totals = Totals::default();
        let mut known = std::collections::HashSet::new();
        {
            let read = db.begin_read().map_err(backend)?;
            let blobs = read.open_table(BLOBS).map_err(backend)?;
            let segments = read.open_table(SEGMENTS).map_err(backend)?;
            for entry in blobs.iter().map_err(backend)? {
                let (id, value) = entry.map_err(backend)?;
                let record = Record::decode(value.value())?;
                let id = BlobId(*id.value());
                known.insert(id);
                totals.blobs += 1;
                totals.uploading += u64::from(!record.complete);
                totals.reserved += record.size;
                let range = segment_key(&id, 0)..=segment_key(&id, u16::MAX);
                for entry in
                    segments.range::<&[u8; ID_LEN + 2]>(&range.start()..=&range.end()).map_err(backend)?
                {
                    let (key, _) = entry.map_err(backend)?;
                    let index = u16::from_be_bytes([key.value()[ID_LEN], key.value()[ID_LEN + 1]]);
                    totals.stored += segment_len(record.segments, record.size, index).unwrap_or(0);
                }
            }
        }
        for entry in std::fs::read_dir(dir.join("segments")).map_err(io)? {
            let entry = entry.map_err(io)?;
            let name = entry.file_name();
            let keep = name.to_str().and_then(BlobId::decode).is_some_and(|id| known.contains(&id));
            if !keep {
                let path = entry.path();
                let removed =
                    if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
                removed.map_err(io)?;
            }
        }
        let inner = Inner {
            root: dir.to_path_buf(),
            db,
            limits,
            clock,
            totals: Mutex::new(totals),
            commit: Mutex::new(()),
        };
        Ok(Self { inner: Arc::new(inner) })
    }
}

impl Inner {
    fn totals(&self) -> MutexGuard<'_, Totals> {
        self.totals.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_commit(&self) -> MutexGuard<'_, ()> {
        self.commit.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn blob_dir(&self, id: &BlobId) -> PathBuf {
        self.root.join("segments").join(id.encode())
    }

    /// The record and stored segments of `id`, or `NotFound` if it is missing or expired.
    fn load(&self, id: &BlobId) -> Result<(Record, BlobInfo), BlobError> {
        let read = self.db.begin_read().map_err(backend)?;
        let blobs = read.open_table(BLOBS).map_err(backend)?;
        let record = match blobs.get(&id.0).map_err(backend)? {
            Some(value) => Record::decode(value.value())?,
            None => return Err(BlobError::NotFound),
        };
        if record.expires_ms <= self.clock.now_ms() {
            return Err(BlobError::NotFound);
        }
        let segments = read.open_table(SEGMENTS).map_err(backend)?;
        let mut info = BlobInfo {
            segments: record.segments,
            size: record.size,
            complete: record.complete,
            expires_ms: record.expires_ms,
            write_hash: record.write_hash,
            read_hash: record.read_hash,
            stored: vec![None; usize::from(record.segments)],
        };
        let (lo, hi) = (segment_key(id, 0), segment_key(id, u16::MAX));
        for entry in segments.range::<&[u8; ID_LEN + 2]>(&lo..=&hi).map_err(backend)? {
            let (key, hash) = entry.map_err(backend)?;
            let index = u16::from_be_bytes([key.value()[ID_LEN], key.value()[ID_LEN + 1]]);
            if let Some(slot) = info.stored.get_mut(usize::from(index)) {
                *slot = Some(*hash.value());
            }
        }
        Ok((record, info))
    }

    fn create(&self, id: BlobId, new: NewBlob) -> Result<BlobInfo, BlobError> {
        new.check(&self.limits)?;
        let now = self.clock.now_ms();
        let record = Record {
            complete: false,
            segments: new.segments,
            size: new.size,
            created_ms: now,
            expires_ms: now.saturating_add(self.limits.upload_ttl_ms),
            write_hash: new.write_hash,
            read_hash: new.read_hash,
        };
        // Reserved before the commit, under the lock: concurrent creates never over-commit.
        {
            let mut totals = self.totals();
            check_quota(totals.reserved, new.size, &self.limits)?;
            totals.reserved += new.size;
        }
        let written = (|| {
            let txn = self.db.begin_write().map_err(backend)?;
            {
                let mut blobs = txn.open_table(BLOBS).map_err(backend)?;
                if blobs.get(&id.0).map_err(backend)?.is_some() {
                    return Err(BlobError::Backend("blob id collision".into()));
                }
                blobs.insert(&id.0, record.encode().as_slice()).map_err(backend)?;
                let mut expiries = txn.open_table(EXPIRIES).map_err(backend)?;
                expiries.insert(&expiry_key(record.expires_ms, &id), ()).map_err(backend)?;
            }
            txn.commit().map_err(backend)
        })();
        let mut totals = self.totals();
        match written {
            Ok(()) => {
                totals.blobs += 1;
                totals.uploading += 1;
                Ok(BlobInfo::new(&new, record.expires_ms))
            }
            Err(err) => {
                totals.reserved -= new.size;
                Err(err)
            }
        }
    }

    /// Moves the checked upload `tmp` into place as segment `index` of `id` and records it.
    fn commit_segment(
        &self,
        id: BlobId,
        index: u16,
        sha256: [u8; 32],
        mut tmp: TempFile,
    ) -> Result<PutOutcome, BlobError> {
        let _commit = self.lock_commit();
        let (_, info) = self.load(&id)?;
        if info.check_put(index, &sha256)? {
            return Ok(PutOutcome::AlreadyStored);
        }
        let len = info.segment_len(index).ok_or(BlobError::NoSuchSegment)?;
        let dir = self.blob_dir(&id);
        if !dir.exists() {
            std::fs::create_dir(&dir).map_err(|err| storage_error(&err))?;
            sync_dir(&self.root.join("segments"))?;
        }
        let target = dir.join(index.to_string());
        std::fs::rename(&tmp.path, &target).map_err(|err| storage_error(&err))?;
        tmp.keep = true;
        let recorded = sync_dir(&dir).and_then(|()| {
            let txn = self.db.begin_write().map_err(backend)?;
            {
                let mut segments = txn.open_table(SEGMENTS).map_err(backend)?;
                segments.insert(&segment_key(&id, index), &sha256).map_err(backend)?;
            }
            txn.commit().map_err(backend)
        });
        if let Err(err) = recorded {
            // Not recorded: the file must not stay either (a later upload would replace it anyway).
            let _ = std::fs::remove_file(&target);
            return Err(err);
        }
        self.totals().stored += len;
        Ok(PutOutcome::Stored)
    }

    fn complete(&self, id: BlobId) -> Result<BlobInfo, BlobError> {
        let _commit = self.lock_commit();
        let (mut record, mut info) = self.load(&id)?;
        if record.complete {
            return Ok(info);
        }
        let missing = info.missing();
        if !missing.is_empty() {
            return Err(BlobError::Incomplete { missing });
        }
        let old_expiry = record.expires_ms;
        record.complete = true;
        record.expires_ms = self.clock.now_ms().saturating_add(self.limits.blob_ttl_ms);
        let txn = self.db.begin_write().map_err(backend)?;
        {
            let mut blobs = txn.open_table(BLOBS).map_err(backend)?;
            blobs.insert(&id.0, record.encode().as_slice()).map_err(backend)?;
            let mut expiries = txn.open_table(EXPIRIES).map_err(backend)?;
            expiries.remove(&expiry_key(old_expiry, &id)).map_err(backend)?;
            expiries.insert(&expiry_key(record.expires_ms, &id), ()).map_err(backend)?;
        }
        txn.commit().map_err(backend)?;
        self.totals().uploading -= 1;
        info.complete = true;
        info.expires_ms = record.expires_ms;
        Ok(info)
    }

    /// Removes the records of `ids` in one transaction, then their files.
    fn remove(&self, ids: &[BlobId]) -> Result<u64, BlobError> {
        let mut gone: Vec<(BlobId, Record, u64)> = Vec::new();
        let txn = self.db.begin_write().map_err(backend)?;
        {
            let mut blobs = txn.open_table(BLOBS).map_err(backend)?;
            let mut segments = txn.open_table(SEGMENTS).map_err(backend)?;
            let mut expiries = txn.open_table(EXPIRIES).map_err(backend)?;
            for id in ids {
                let Some(value) = blobs.remove(&id.0).map_err(backend)? else {
                    continue;
                };
                let record = Record::decode(value.value())?;
                drop(value);
                expiries.remove(&expiry_key(record.expires_ms, id)).map_err(backend)?;
                let (lo, hi) = (segment_key(id, 0), segment_key(id, u16::MAX));
                let mut stored = 0;
                segments
                    .retain_in::<&[u8; ID_LEN + 2], _>(&lo..=&hi, |key, _| {
                        let index = u16::from_be_bytes([key[ID_LEN], key[ID_LEN + 1]]);
                        stored += segment_len(record.segments, record.size, index).unwrap_or(0);
                        false
                    })
                    .map_err(backend)?;
                gone.push((*id, record, stored));
            }
        }
        txn.commit().map_err(backend)?;
        {
            let mut totals = self.totals();
            for (_, record, stored) in &gone {
                totals.blobs -= 1;
                totals.uploading -= u64::from(!record.complete);
                totals.reserved -= record.size;
                totals.stored -= stored;
            }
        }
        for (id, _, _) in &gone {
            // A directory left behind (a crash now) is removed at the next start.
            match std::fs::remove_dir_all(self.blob_dir(id)) {
                Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                    tracing::warn!(error = %err, "removing a deleted blob's segments failed");
                }
                _ => {}
            }
        }
        Ok(gone.len() as u64)
    }

    fn delete(&self, id: BlobId) -> Result<(), BlobError> {
        let _commit = self.lock_commit();
        self.load(&id)?;
        self.remove(&[id]).map(|_| ())
    }

    fn expire(&self) -> Result<u64, BlobError> {
        let _commit = self.lock_commit();
        let now = self.clock.now_ms();
        let due: Vec<BlobId> = {
            let read = self.db.begin_read().map_err(backend)?;
            let expiries = read.open_table(EXPIRIES).map_err(backend)?;
            if expiries.is_empty().map_err(backend)? {
                return Ok(0);
            }
            let hi = expiry_key(now, &BlobId([0xff; ID_LEN]));
            let mut due = Vec::new();
            for entry in
                expiries.range::<&[u8; 8 + ID_LEN]>(..=&hi).map_err(backend)?.take(MAX_EXPIRE_PER_PASS)
            {
                let (key, _) = entry.map_err(backend)?;
                let mut id = [0; ID_LEN];
                id.copy_from_slice(&key.value()[8..]);
                due.push(BlobId(id));
            }
            due
        };
        let gone = self.remove(&due)?;
        self.totals().expired += gone;
        Ok(gone)
    }

    fn open_segment(&self, id: BlobId, index: u16) -> Result<(PathBuf, u64), BlobError> {
        let (_, info) = self.load(&id)?;
        if !info.complete {
            return Err(BlobError::Incomplete { missing: info.missing() });
        }
        let len = info.segment_len(index).ok_or(BlobError::NoSuchSegment)?;
        Ok((self.blob_dir(&id).join(index.to_string()), len))
    }
}

impl BlobStore for DiskBlobStore {
    fn create(&self, id: BlobId, new: NewBlob) -> BoxFuture<'static, Result<BlobInfo, BlobError>> {
        let inner = self.inner.clone();
        Box::pin(blocking(move || inner.create(id, new)))
    }

    fn info(&self, id: BlobId) -> BoxFuture<'static, Result<BlobInfo, BlobError>> {
        let inner = self.inner.clone();
        Box::pin(blocking(move || inner.load(&id).map(|(_, info)| info)))
    }

    fn put_segment(
        &self,
        id: BlobId,
        index: u16,
        sha256: [u8; 32],
        mut body: BodyStream,
    ) -> BoxFuture<'static, Result<PutOutcome, BlobError>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            let load = inner.clone();
            let info = blocking(move || load.load(&id).map(|(_, info)| info)).await?;
            if info.check_put(index, &sha256)? {
                return Ok(PutOutcome::AlreadyStored);
            }
            let expected_len = info.segment_len(index).ok_or(BlobError::NoSuchSegment)?;
            let mut name = [0; 16];
            getrandom::fill(&mut name).map_err(|_| BlobError::Backend("no randomness".into()))?;
            let tmp = TempFile {
                path: inner.root.join("tmp").join(format!("{}.part", BlobId(name).encode())),
                keep: false,
            };
            let file = tokio::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp.path)
                .await
                .map_err(|err| storage_error(&err))?;
            let mut out = tokio::io::BufWriter::with_capacity(IO_CHUNK, file);
            receive_segment(&mut body, &mut out, expected_len, &sha256).await?;
            out.get_ref().sync_all().await.map_err(|err| storage_error(&err))?;
            drop(out);
            let commit = inner.clone();
            blocking(move || commit.commit_segment(id, index, sha256, tmp)).await
        })
    }

    fn complete(&self, id: BlobId) -> BoxFuture<'static, Result<BlobInfo, BlobError>> {
        let inner = self.inner.clone();
        Box::pin(blocking(move || inner.complete(id)))
    }

    fn delete(&self, id: BlobId) -> BoxFuture<'static, Result<(), BlobError>> {
        let inner = self.inner.clone();
        Box::pin(blocking(move || inner.delete(id)))
    }

    fn read_segment(&self, id: BlobId, index: u16) -> BoxFuture<'static, Result<SegmentRead, BlobError>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            let (path, len) = blocking(move || inner.open_segment(id, index)).await?;
            let file = tokio::fs::File::open(&path).await.map_err(|err| storage_error(&err))?;
            let on_disk = file.metadata().await.map_err(|err| storage_error(&err))?.len();
            if on_disk != len {
                return Err(BlobError::Backend("stored segment has the wrong length".into()));
            }
            let body: super::SegmentStream =
                Box::pin(FileStream { file, remaining: len, buf: vec![0; IO_CHUNK] });
            Ok(SegmentRead { len, body })
        })
    }

    fn expire(&self) -> BoxFuture<'static, Result<u64, BlobError>> {
        let inner = self.inner.clone();
        Box::pin(blocking(move || inner.expire()))
    }

    fn stats(&self) -> BlobStats {
        let totals = self.inner.totals();
        BlobStats {
            blobs: totals.blobs,
            uploading: totals.uploading,
            reserved_bytes: totals.reserved,
            stored_bytes: totals.stored,
            expired: totals.expired,
        }
    }
}

/// A segment file read in chunks of [`IO_CHUNK`] bytes.
struct FileStream {
    file: tokio::fs::File,
    remaining: u64,
    buf: Vec<u8>,
}

impl Stream for FileStream {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        let want = usize::try_from(this.remaining).unwrap_or(usize::MAX).min(this.buf.len());
        let mut read = ReadBuf::new(&mut this.buf[..want]);
        match Pin::new(&mut this.file).poll_read(cx, &mut read) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(err)) => Poll::Ready(Some(Err(err))),
            Poll::Ready(Ok(())) if read.filled().is_empty() => {
                Poll::Ready(Some(Err(std::io::ErrorKind::UnexpectedEof.into())))
            }
            Poll::Ready(Ok(())) => {
                let chunk = Bytes::copy_from_slice(read.filled());
                this.remaining -= chunk.len() as u64;
                Poll::Ready(Some(Ok(chunk)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips() {
        let record = Record {
            complete: true,
            segments: 271,
            size: 1 << 30,
            created_ms: 1,
            expires_ms: 2,
            write_hash: [3; 32],
            read_hash: [4; 32],
        };
        assert_eq!(Record::decode(&record.encode()), Ok(record));
        let mut bad = record.encode();
        bad[0] = 2;
        assert!(Record::decode(&bad).is_err());
        assert!(Record::decode(&bad[..91]).is_err());
    }
}
