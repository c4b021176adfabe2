//! Attachment blobs in an S3-compatible bucket, shared by several relays (feature `s3`,
//! `--blob-store s3`).
//!
//! Every object of a blob is under `PREFIX/blobs/ID/` (`ID` the blob id in base64url), and every
//! one is written once, with `If-None-Match: *` (put-if-absent), and never replaced:
//! - `meta.SIZE.EXPIRES`: the blob's record (the disk store's 92-byte record, `complete = 0`,
//!   `expires_ms` the upload expiry); its name repeats the declared size and upload expiry (decimal)
//!   so that one listing gives the sweeper and the totals everything they need. Written first: a
//!   blob exists exactly while this object does. Deleting a blob deletes it first.
//! - `claim/INDEX`: the 32-byte SHA-256 that segment `INDEX` (decimal) is bound to, written before
//!   the segment. Two relays uploading different bytes for one segment race on this object: one
//!   claim wins, the other upload is refused as a conflict.
//! - `seg/INDEX.SHA256HEX`: the segment's sealed bytes, written whole in one PUT after the relay
//!   checked its length and hash. A segment is stored exactly when this object exists.
//! - `done.EXPIRES`: the blob is complete; `EXPIRES` is its new expiry. If two relays complete a
//!   blob at once there may be two; the earliest expiry counts.
//!
//! Expiry: each relay's sweeper lists `PREFIX/blobs/` and deletes expired blobs (and objects left
//! without a `meta` by an interrupted delete); a bucket lifecycle rule on the prefix is the backstop
//! (docs/self-hosting.md). Totals (and so the reserved-bytes quota) are recounted from that listing
//! on every pass (except for blobs this relay changed while listing: its own record of them is
//! newer) and kept up to date between passes with this relay's own changes only: other relays'
//! creates are seen at the next pass, so the bucket may hold up to one quota per relay (see
//! docs/self-hosting.md, "Attachments in an S3-compatible bucket").

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use futures_util::StreamExt as _;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt as _, PutMode, PutOptions, PutPayload};

use super::disk::Record;
use super::{
    BlobError, BlobId, BlobInfo, BlobLimits, BlobStats, BlobStore, BodyStream, BoxFuture, NewBlob,
    PutOutcome, SegmentRead, check_quota, receive_segment,
};
use crate::clock::Clock;

/// Where the bucket is and how to reach it.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Options {
    /// The endpoint URL (`https://s3.eu-west-1.amazonaws.com`, `http://127.0.0.1:9000`, ...).
    pub endpoint: String,
    /// The bucket's name.
    pub bucket: String,
    /// The region requests are signed for.
    pub region: String,
    /// Prefix of every object key (relays sharing blobs use the same one).
    pub prefix: String,
    /// Whether a plain `http://` endpoint is allowed.
    pub allow_http: bool,
    /// Access key id and secret access key; `None` takes them from the standard AWS environment
    /// variables (or the machine's instance role), which is what the relay binary does.
    pub credentials: Option<(String, String)>,
}

/// No credentials in here (they come from the environment), but the endpoint may be internal.
impl std::fmt::Debug for S3Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Options").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

/// An object store error as a [`BlobError`], without the object's path (it names the blob).
fn backend(err: &object_store::Error) -> BlobError {
    let kind = match err {
        object_store::Error::NotFound { .. } => "object not found",
        object_store::Error::AlreadyExists { .. } => "object already exists",
        object_store::Error::Precondition { .. } => "precondition failed",
        object_store::Error::NotImplemented { .. } => "operation not supported by the store",
        object_store::Error::PermissionDenied { .. } => "permission denied",
        object_store::Error::Unauthenticated { .. } => "not authenticated",
        _ => "request failed",
    };
    BlobError::Backend(format!("object store: {kind}"))
}

/// What one listing shows of one blob.
#[derive(Debug, Default)]
struct Listing {
    /// `(declared size, upload expiry)` from the `meta` object's name, and that object.
    meta: Option<(u64, u64, Path)>,
    /// The earliest `done` marker's expiry.
    done: Option<u64>,
    /// Stored segments: index -> (SHA-256, object size).
    segments: BTreeMap<u16, ([u8; 32], u64)>,
    /// Every object of the blob.
    objects: Vec<Path>,
}

impl Listing {
    fn expires_ms(&self) -> Option<u64> {
        self.done.or(self.meta.as_ref().map(|m| m.1))
    }

    fn stored_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.1).sum()
    }

    /// Adds one object, by its name relative to the blob's directory.
    fn add(&mut self, rest: &str, size: u64, location: Path) {
        let mut parts = rest.split('.');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("meta"), Some(size), Some(expires), None) => {
                if let (Ok(size), Ok(expires)) = (size.parse(), expires.parse()) {
                    self.meta = Some((size, expires, location.clone()));
                }
            }
            (Some("done"), Some(expires), None, None) => {
                if let Ok(expires) = expires.parse::<u64>() {
                    self.done = Some(self.done.map_or(expires, |d| d.min(expires)));
                }
            }
            (Some(seg), Some(sha), None, None) if seg.starts_with("seg/") => {
                let mut hash = [0; 32];
                if let (Ok(index), Ok(())) =
                    (seg["seg/".len()..].parse(), hex::decode_to_slice(sha, &mut hash))
                {
                    self.segments.insert(index, (hash, size));
                }
            }
            _ => {}
        }
        self.objects.push(location);
    }
}

/// What the totals know of one blob.
#[derive(Debug, Clone, Copy, Default)]
struct Known {
    size: u64,
    stored: u64,
    complete: bool,
}

/// Every blob of the prefix as of the last listing, updated with this relay's own changes since.
#[derive(Debug, Default)]
struct Totals {
    blobs: BTreeMap<BlobId, Known>,
    /// Blobs this relay changed since the current listing began: their entries are newer than it.
    touched: std::collections::BTreeSet<BlobId>,
    /// Blobs this relay is creating (reserved, `meta` not written yet): a listing may miss them.
    creating: std::collections::BTreeSet<BlobId>,
    expired: u64,
}

impl Totals {
    fn reserved(&self) -> u64 {
        self.blobs.values().map(|k| k.size).sum()
    }

    /// Sets the entry of `id` (what this relay knows after changing it).
    fn set(&mut self, id: BlobId, known: Known) {
        self.touched.insert(id);
        self.blobs.insert(id, known);
    }

    fn forget(&mut self, id: BlobId) {
        self.touched.insert(id);
        self.blobs.remove(&id);
    }

    fn stats(&self) -> BlobStats {
        let mut stats = BlobStats { expired: self.expired, ..BlobStats::default() };
        for known in self.blobs.values() {
            stats.blobs += 1;
            stats.uploading += u64::from(!known.complete);
            stats.reserved_bytes += known.size;
            stats.stored_bytes += known.stored;
        }
        stats
    }
}

struct Inner {
    store: AmazonS3,
    prefix: String,
    limits: BlobLimits,
    clock: Arc<dyn Clock>,
    totals: Mutex<Totals>,
}

/// Blobs in an S3-compatible bucket.
pub struct S3BlobStore {
    inner: Arc<Inner>,
}

fn create_mode() -> PutOptions {
    PutOptions { mode: PutMode::Create, ..PutOptions::default() }
}

impl Inner {
    fn totals(&self) -> std::sync::MutexGuard<'_, Totals> {
        self.totals.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn blob_dir(&self, id: &BlobId) -> String {
        format!("{}/blobs/{}", self.prefix, id.encode())
    }

    fn path(&self, id: &BlobId, name: &str) -> Path {
        Path::from(format!("{}/{name}", self.blob_dir(id)))
    }

    /// Lists under `prefix`, grouping objects by blob id (the text after `PREFIX/blobs/`).
    async fn list(&self, prefix: &str) -> Result<BTreeMap<String, Listing>, BlobError> {
        let root = format!("{}/blobs/", self.prefix);
        let mut blobs: BTreeMap<String, Listing> = BTreeMap::new();
        let mut objects = self.store.list(Some(&Path::from(prefix)));
        while let Some(object) = objects.next().await {
            let object = object.map_err(|err| backend(&err))?;
            let key = object.location.as_ref();
            let Some((id, rest)) = key.strip_prefix(&root).and_then(|r| r.split_once('/')) else { continue };
            blobs.entry(id.to_owned()).or_default().add(rest, object.size, object.location.clone());
        }
        Ok(blobs)
    }

    async fn list_blob(&self, id: &BlobId) -> Result<Listing, BlobError> {
        Ok(self.list(&self.blob_dir(id)).await?.remove(&id.encode()).unwrap_or_default())
    }

    /// The blob's listing and record, unless it is missing or past its expiry.
    async fn live(&self, id: &BlobId) -> Result<(Listing, BlobInfo), BlobError> {
        let listing = self.list_blob(id).await?;
        let (Some((_, _, meta)), Some(expires_ms)) = (&listing.meta, listing.expires_ms()) else {
            return Err(BlobError::NotFound);
        };
        if expires_ms <= self.clock.now_ms() {
            return Err(BlobError::NotFound);
        }
        let bytes = match self.store.get(meta).await {
            Ok(got) => got.bytes().await.map_err(|err| backend(&err))?,
            Err(object_store::Error::NotFound { .. }) => return Err(BlobError::NotFound),
            Err(err) => return Err(backend(&err)),
        };
        let record = Record::decode(&bytes)?;
        let mut stored = vec![None; usize::from(record.segments)];
        for (&index, (hash, _)) in &listing.segments {
            if let Some(slot) = stored.get_mut(usize::from(index)) {
                *slot = Some(*hash);
            }
        }
        let info = BlobInfo {
            segments: record.segments,
            size: record.size,
            complete: listing.done.is_some(),
            expires_ms,
            write_hash: record.write_hash,
            read_hash: record.read_hash,
            stored,
        };
        Ok((listing, info))
    }

    /// Deletes the objects of one blob, `meta` first (from then on the blob is gone everywhere).
    async fn delete_objects(&self, listing: &Listing) -> Result<(), BlobError> {
        if let Some((_, _, meta)) = &listing.meta {
            self.delete_object(meta).await?;
        }
        for object in &listing.objects {
            if listing.meta.as_ref().is_none_or(|m| &m.2 != object) {
                self.delete_object(object).await?;
            }
        }
        Ok(())
    }

    async fn delete_object(&self, path: &Path) -> Result<(), BlobError> {
        match self.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(err) => Err(backend(&err)),
        }
    }

    /// Writes `payload` to `path` unless an object is there; `Ok(false)` if one was.
    async fn put_if_absent(&self, path: &Path, payload: PutPayload) -> Result<bool, BlobError> {
        match self.store.put_opts(path, payload, create_mode()).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => {
                Ok(false)
            }
            Err(err) => Err(backend(&err)),
        }
    }

    /// Lists the whole prefix, noting that this relay's changes from now on are newer than it.
    async fn list_all(&self) -> Result<BTreeMap<String, Listing>, BlobError> {
        self.totals().touched.clear();
        self.list(&format!("{}/blobs", self.prefix)).await
    }

    /// Replaces the totals with what `blobs` (from [`Self::list_all`]) shows, except for the blobs
    /// this relay changed while it was being listed.
    fn recount(&self, blobs: &BTreeMap<String, Listing>) {
        let mut totals = self.totals();
        let mut fresh = BTreeMap::new();
        for (id, listing) in blobs {
            let (Some(id), Some((size, _, _))) = (BlobId::decode(id), &listing.meta) else { continue };
            let known =
                Known { size: *size, stored: listing.stored_bytes(), complete: listing.done.is_some() };
            fresh.insert(id, known);
        }
        let newer: Vec<BlobId> =
            std::mem::take(&mut totals.touched).into_iter().chain(totals.creating.iter().copied()).collect();
        for id in newer {
            match totals.blobs.get(&id) {
                Some(known) => fresh.insert(id, *known),
                None => fresh.remove(&id),
            };
        }
        totals.blobs = fresh;
    }

    async fn put_segment(
        &self,
        id: BlobId,
        index: u16,
        sha256: [u8; 32],
        mut body: BodyStream,
    ) -> Result<PutOutcome, BlobError> {
        let (_, info) = self.live(&id).await?;
        if info.check_put(index, &sha256)? {
            return Ok(PutOutcome::AlreadyStored);
        }
        let len = info.segment_len(index).ok_or(BlobError::NoSuchSegment)?;
        // An object is written whole in one PUT, so the checked segment is held in memory (at most
        // one segment per upload in progress, `--blob-max-uploads` of them).
        let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        receive_segment(&mut body, &mut bytes, len, &sha256).await?;
        // The blob may have been completed, cancelled or expired meanwhile.
        let (listing, info) = self.live(&id).await?;
        if info.check_put(index, &sha256)? {
            return Ok(PutOutcome::AlreadyStored);
        }
        let claim = self.path(&id, &format!("claim/{index}"));
        if !self.put_if_absent(&claim, PutPayload::from(sha256.to_vec())).await? {
            let claimed = self.store.get(&claim).await.map_err(|err| backend(&err))?;
            let claimed = claimed.bytes().await.map_err(|err| backend(&err))?;
            if claimed.as_ref() != sha256 {
                return Err(BlobError::SegmentConflict);
            }
        }
        let segment = self.path(&id, &format!("seg/{index}.{}", hex::encode(sha256)));
        if !self.put_if_absent(&segment, PutPayload::from(Bytes::from(bytes))).await? {
            return Ok(PutOutcome::AlreadyStored);
        }
        let stored = listing.stored_bytes() + len;
        self.totals().set(id, Known { size: info.size, stored, complete: false });
        Ok(PutOutcome::Stored)
    }

    async fn complete(&self, id: BlobId) -> Result<BlobInfo, BlobError> {
        let (_, mut info) = self.live(&id).await?;
        if info.complete {
            return Ok(info);
        }
        let missing = info.missing();
        if !missing.is_empty() {
            return Err(BlobError::Incomplete { missing });
        }
        let expires_ms = self.clock.now_ms().saturating_add(self.limits.blob_ttl_ms);
        if self.put_if_absent(&self.path(&id, &format!("done.{expires_ms}")), PutPayload::new()).await? {
            let stored = info.stored_bytes();
            self.totals().set(id, Known { size: info.size, stored, complete: true });
            info.complete = true;
            info.expires_ms = expires_ms;
            return Ok(info);
        }
        Ok(self.live(&id).await?.1)
    }

    async fn create(&self, id: BlobId, new: NewBlob) -> Result<BlobInfo, BlobError> {
        new.check(&self.limits)?;
        {
            let mut totals = self.totals();
            check_quota(totals.reserved(), new.size, &self.limits)?;
            totals.creating.insert(id);
            totals.set(id, Known { size: new.size, stored: 0, complete: false });
        }
        let now = self.clock.now_ms();
        let info = BlobInfo::new(&new, now.saturating_add(self.limits.upload_ttl_ms));
        let record = Record {
            complete: false,
            segments: new.segments,
            size: new.size,
            created_ms: now,
            expires_ms: info.expires_ms,
            write_hash: new.write_hash,
            read_hash: new.read_hash,
        };
        let meta = self.path(&id, &format!("meta.{}.{}", new.size, info.expires_ms));
        let written = match self.list_blob(&id).await {
            Ok(listing) if !listing.objects.is_empty() => Err(BlobError::Backend("blob id collision".into())),
            Ok(_) => match self.put_if_absent(&meta, PutPayload::from(record.encode().to_vec())).await {
                Ok(true) => Ok(()),
                Ok(false) => Err(BlobError::Backend("blob id collision".into())),
                Err(err) => Err(err),
            },
            Err(err) => Err(err),
        };
        let mut totals = self.totals();
        totals.creating.remove(&id);
        if written.is_err() {
            totals.forget(id);
        } else {
            totals.touched.insert(id);
        }
        written.map(|()| info)
    }

    async fn delete(&self, id: BlobId) -> Result<(), BlobError> {
        let (listing, _) = self.live(&id).await?;
        self.delete_objects(&listing).await?;
        self.totals().forget(id);
        Ok(())
    }

    async fn read_segment(&self, id: BlobId, index: u16) -> Result<SegmentRead, BlobError> {
        let (listing, info) = self.live(&id).await?;
        if !info.complete {
            return Err(BlobError::Incomplete { missing: info.missing() });
        }
        let (hash, len) = listing.segments.get(&index).copied().ok_or(BlobError::NoSuchSegment)?;
        let path = self.path(&id, &format!("seg/{index}.{}", hex::encode(hash)));
        let got = self.store.get(&path).await.map_err(|err| match err {
            object_store::Error::NotFound { .. } => BlobError::NotFound,
            err => backend(&err),
        })?;
        // The object's stream is not `Sync`; it is forwarded through a channel (a few chunks deep).
        let (tx, mut rx) = tokio::sync::mpsc::channel(4);
        let mut stream = got.into_stream();
        tokio::spawn(async move {
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|_| std::io::Error::other("object store read failed"));
                let failed = chunk.is_err();
                if tx.send(chunk).await.is_err() || failed {
                    return;
                }
            }
        });
        let body = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
        Ok(SegmentRead { len, body: Box::pin(body) })
    }

    async fn expire(&self) -> Result<u64, BlobError> {
        let now = self.clock.now_ms();
        let mut blobs = self.list_all().await?;
        let mut gone = 0;
        let mut removed = Vec::new();
        for (id, listing) in &blobs {
            match listing.expires_ms() {
                // Objects left by an interrupted delete, or a blob past its expiry.
                None => self.delete_objects(listing).await?,
                Some(expires) if expires <= now => {
                    self.delete_objects(listing).await?;
                    gone += 1;
                }
                Some(_) => continue,
            }
            removed.push(id.clone());
        }
        for id in removed {
            blobs.remove(&id);
            if let Some(id) = BlobId::decode(&id) {
                self.totals().forget(id);
            }
        }
        self.totals().expired += gone;
        self.recount(&blobs);
        Ok(gone)
    }
}

impl S3BlobStore {
    /// Connects to the bucket (credentials from the standard `AWS_*` environment variables),
    /// checks that it refuses to overwrite on `If-None-Match: *`, and counts what it holds.
    pub async fn open(
        options: &S3Options,
        limits: BlobLimits,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, BlobError> {
        if options.bucket.is_empty() {
            return Err(BlobError::Invalid("--blob-store s3 needs --s3-bucket"));
        }
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&options.bucket)
            .with_region(&options.region)
            .with_allow_http(options.allow_http);
        // No endpoint: AWS S3 itself, in `--s3-region`.
        if !options.endpoint.is_empty() {
            builder = builder.with_endpoint(&options.endpoint);
        }
        if let Some((key_id, secret)) = &options.credentials {
            builder = builder.with_access_key_id(key_id).with_secret_access_key(secret);
        }
        let store = builder.build().map_err(|err| backend(&err))?;
        let prefix = options.prefix.trim_matches('/').to_owned();
        if prefix.is_empty() {
            return Err(BlobError::Invalid("the S3 prefix must not be empty"));
        }
        let inner = Inner { store, prefix, limits, clock, totals: Mutex::default() };
        inner.check_conditional_put().await.map_err(|err| match err {
            BlobError::Backend(text) => BlobError::Backend(format!("the bucket cannot be written: {text}")),
            err => err,
        })?;
        let blobs = inner.list_all().await?;
        inner.recount(&blobs);
        Ok(Self { inner: Arc::new(inner) })
    }
}

impl Inner {
    /// A store that ignores `If-None-Match: *` would let a second upload replace a segment: refuse
    /// to start on it.
    async fn check_conditional_put(&self) -> Result<(), BlobError> {
        let mut nonce = [0; 16];
        getrandom::fill(&mut nonce).map_err(|_| BlobError::Backend("no randomness".into()))?;
        let probe = Path::from(format!("{}/probe/{}", self.prefix, hex::encode(nonce)));
        let first = self.put_if_absent(&probe, PutPayload::from_static(b"1")).await?;
        let second = self.put_if_absent(&probe, PutPayload::from_static(b"2")).await;
        self.delete_object(&probe).await?;
        match (first, second?) {
            (true, false) => Ok(()),
            _ => Err(BlobError::Backend("the object store does not honour If-None-Match: * on PUT".into())),
        }
    }
}

impl BlobStore for S3BlobStore {
    fn create(&self, id: BlobId, new: NewBlob) -> BoxFuture<'static, Result<BlobInfo, BlobError>> {
        let inner = self.inner.clone();
        Box::pin(async move { inner.create(id, new).await })
    }

    fn info(&self, id: BlobId) -> BoxFuture<'static, Result<BlobInfo, BlobError>> {
        let inner = self.inner.clone();
        Box::pin(async move { Ok(inner.live(&id).await?.1) })
    }

    fn put_segment(
        &self,
        id: BlobId,
        index: u16,
        sha256: [u8; 32],
        body: BodyStream,
    ) -> BoxFuture<'static, Result<PutOutcome, BlobError>> {
        let inner = self.inner.clone();
        Box::pin(async move { inner.put_segment(id, index, sha256, body).await })
    }

    fn complete(&self, id: BlobId) -> BoxFuture<'static, Result<BlobInfo, BlobError>> {
        let inner = self.inner.clone();
        Box::pin(async move { inner.complete(id).await })
    }

    fn delete(&self, id: BlobId) -> BoxFuture<'static, Result<(), BlobError>> {
        let inner = self.inner.clone();
        Box::pin(async move { inner.delete(id).await })
    }

    fn read_segment(&self, id: BlobId, index: u16) -> BoxFuture<'static, Result<SegmentRead, BlobError>> {
        let inner = self.inner.clone();
        Box::pin(async move { inner.read_segment(id, index).await })
    }

    fn expire(&self) -> BoxFuture<'static, Result<u64, BlobError>> {
        let inner = self.inner.clone();
        Box::pin(async move { inner.expire().await })
    }

    fn stats(&self) -> BlobStats {
        self.inner.totals().stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(names: &[(&str, u64)]) -> Listing {
        let mut listing = Listing::default();
        for (name, size) in names {
            listing.add(name, *size, Path::from(format!("p/blobs/ID/{name}")));
        }
        listing
    }

    #[test]
    fn object_names_are_read_back_and_strangers_ignored() {
        let sha = [7u8; 32];
        let seg = format!("seg/3.{}", hex::encode(sha));
        let l = listing(&[
            ("meta.100.5000", 92),
            (&seg, 100),
            ("claim/3", 32),
            ("done.9000", 0),
            ("done.8000", 0),
        ]);
        assert_eq!(l.meta.as_ref().map(|m| (m.0, m.1)), Some((100, 5000)));
        assert_eq!(l.done, Some(8000), "of two completions, the earlier expiry counts");
        assert_eq!(l.expires_ms(), Some(8000));
        assert_eq!(l.segments.get(&3), Some(&(sha, 100)));
        assert_eq!(l.stored_bytes(), 100);
        assert_eq!(l.objects.len(), 5);

        let odd = listing(&[("meta.x.1", 1), ("seg/1.nothex", 1), ("seg/x.00", 1), ("done", 0)]);
        assert!(odd.meta.is_none() && odd.done.is_none() && odd.segments.is_empty());
        assert_eq!(odd.expires_ms(), None, "no meta: left over, swept");
        assert_eq!(odd.objects.len(), 4);
    }
}
