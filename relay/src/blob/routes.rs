//! The HTTP routes of attachment blobs, under `/blobs` (docs/relay-protocol.md, "Attachment blobs").
//!
//! One warp filter takes every request under `/blobs` and [`BlobService::handle`] answers it
//! completely (errors included), so no rejection leaks into the relay's other routes. Capabilities
//! travel in `Authorization: Bearer`; nothing about a request is logged.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::{Buf as _, Bytes};
use futures_util::{StreamExt as _, TryStreamExt as _};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::{HeaderMap, HeaderValue, Method, StatusCode};
use warp::reply::Response;

use crate::limits::HttpConnection;

use super::{BlobError, BlobId, BlobInfo, BlobStore, BodyStream, Capability, NewBlob, PutOutcome};

/// The header carrying a segment's SHA-256 (64 hex digits).
pub const SHA256_HEADER: &str = "doorless-segment-sha256";
/// Largest body of a create request.
const MAX_CREATE_BODY: usize = 1024;
/// Seconds a client is told to wait when the relay is busy.
const RETRY_AFTER_SECS: &str = "1";

/// What a create request declares.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRequest {
    segments: u16,
    size: u64,
}

/// What a create request is answered with.
#[derive(Serialize)]
struct Created {
    id: String,
    write: String,
    read: String,
    expires: u64,
}

/// The uploader's view of a blob (status route).
#[derive(Serialize)]
struct Status {
    segments: u16,
    size: u64,
    complete: bool,
    expires: u64,
    stored: Vec<u16>,
}

/// The reader's view of a blob: the hash of each segment, in order.
#[derive(Serialize)]
struct Hashes {
    segments: u16,
    size: u64,
    expires: u64,
    hashes: Vec<String>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    missing: Option<&'a [u16]>,
}

/// The limits the routes apply themselves (the store applies the storage quotas).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServiceLimits {
    /// Most segment uploads in progress at once, relay-wide.
    pub max_uploads: usize,
    /// Blobs one HTTP connection may create per second, sustained.
    pub create_rate: f64,
    /// Blobs one HTTP connection may create in a burst.
    pub create_burst: f64,
}

/// The blob routes' state: the store, the upload limit, and the segments being uploaded.
pub struct BlobService {
    store: Arc<dyn BlobStore>,
    limits: ServiceLimits,
    uploads: Arc<Semaphore>,
    in_progress: Mutex<HashSet<(BlobId, u16)>>,
}

/// A claim on one segment's upload, released on drop.
struct Claim<'a> {
    service: &'a BlobService,
    key: (BlobId, u16),
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.service.in_progress.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.key);
    }
}

/// Which capability a route needs.
#[derive(Clone, Copy)]
enum Needs {
    Write,
    Read,
}

impl BlobService {
    /// Routes over `store`.
    pub fn new(store: Arc<dyn BlobStore>, limits: ServiceLimits) -> Arc<Self> {
        Arc::new(Self {
            store,
            limits,
            uploads: Arc::new(Semaphore::new(limits.max_uploads.max(1))),
            in_progress: Mutex::new(HashSet::new()),
        })
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn BlobStore> {
        &self.store
    }

    /// The warp filter for every path under `/blobs`.
    pub fn routes(self: &Arc<Self>) -> BoxedFilter<(Response,)> {
        let service = self.clone();
        warp::path("blobs")
            .and(warp::path::tail())
            .and(warp::method())
            .and(warp::header::headers_cloned())
            .and(warp::ext::optional::<Arc<HttpConnection>>())
            .and(warp::body::stream().map(boxed_body))
            .then(
                move |tail: warp::path::Tail,
                      method: Method,
                      headers: HeaderMap,
                      connection: Option<Arc<HttpConnection>>,
                      body: BodyStream| {
                    let service = service.clone();
                    async move {
                        let connection = connection.unwrap_or_default();
                        let mut response =
                            service.handle(&method, tail.as_str(), &headers, &connection, body).await;
                        add_blob_headers(response.headers_mut());
                        response
                    }
                },
            )
            .boxed()
    }

    /// Answers one request under `/blobs`, which came on `connection`; `tail` is the path after
    /// `/blobs/`.
    pub async fn handle(
        &self,
        method: &Method,
        tail: &str,
        headers: &HeaderMap,
        connection: &HttpConnection,
        body: BodyStream,
    ) -> Response {
        let parts: Vec<&str> = if tail.is_empty() { Vec::new() } else { tail.split('/').collect() };
        if method == Method::OPTIONS {
            return preflight();
        }
        let result = match (method.clone(), parts.as_slice()) {
            (Method::POST, []) => self.create(connection, body).await,
            (Method::GET, [id]) => self.status(id, headers).await,
            (Method::DELETE, [id]) => self.cancel(id, headers).await,
            (Method::POST, [id, "complete"]) => self.complete(id, headers).await,
            (Method::GET, [id, "hashes"]) => self.hashes(id, headers).await,
            (Method::PUT, [id, index]) => self.put(id, index, headers, body).await,
            (Method::GET, [id, index]) => self.get(id, index, headers).await,
            (_, [] | [_] | [_, _]) => {
                return plain(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    "method not allowed here",
                );
            }
            _ => return plain(StatusCode::NOT_FOUND, "not_found", "no such route"),
        };
        result.unwrap_or_else(|err| error_response(&err))
    }

    /// Looks up blob `id` and checks the capability the request carries.
    async fn authorized(
        &self,
        id: &str,
        headers: &HeaderMap,
        needs: Needs,
    ) -> Result<(BlobId, BlobInfo), BlobError> {
        let id = BlobId::decode(id).ok_or(BlobError::NotFound)?;
        let presented = bearer(headers);
        let info = self.store.info(id).await?;
        let stored = match needs {
            Needs::Write => &info.write_hash,
            Needs::Read => &info.read_hash,
        };
        match presented {
            Some(cap) if cap.matches(stored) => Ok((id, info)),
            _ => Err(BlobError::BadCapability),
        }
    }

    async fn create(&self, connection: &HttpConnection, body: BodyStream) -> Result<Response, BlobError> {
        let body = read_small(body, MAX_CREATE_BODY).await?;
        let (rate, burst) = (self.limits.create_rate, self.limits.create_burst);
        if !connection.try_create_blob(rate, burst, std::time::Instant::now()) {
            return Err(BlobError::RateLimited);
        }
        let request: CreateRequest = serde_json::from_slice(&body)
            .map_err(|_| BlobError::Invalid("body must be {\"segments\": N, \"size\": N}"))?;
        let (write, read) = (Capability::random()?, Capability::random()?);
        let new = NewBlob {
            segments: request.segments,
            size: request.size,
            write_hash: write.hash(),
            read_hash: read.hash(),
        };
        let id = BlobId::random()?;
        let info = self.store.create(id, new).await?;
        let created =
            Created { id: id.encode(), write: write.encode(), read: read.encode(), expires: info.expires_ms };
        Ok(json(StatusCode::CREATED, &created))
    }

    async fn status(&self, id: &str, headers: &HeaderMap) -> Result<Response, BlobError> {
        let (_, info) = self.authorized(id, headers, Needs::Write).await?;
        let stored = (0..info.segments)
            .filter(|&i| info.stored.get(usize::from(i)).is_some_and(Option::is_some))
            .collect();
        let status = Status {
            segments: info.segments,
            size: info.size,
            complete: info.complete,
            expires: info.expires_ms,
            stored,
        };
        Ok(json(StatusCode::OK, &status))
    }

    async fn cancel(&self, id: &str, headers: &HeaderMap) -> Result<Response, BlobError> {
        let (id, _) = self.authorized(id, headers, Needs::Write).await?;
        self.store.delete(id).await?;
        Ok(empty(StatusCode::NO_CONTENT))
    }

    async fn complete(&self, id: &str, headers: &HeaderMap) -> Result<Response, BlobError> {
        let (id, _) = self.authorized(id, headers, Needs::Write).await?;
        let info = self.store.complete(id).await?;
        Ok(json(StatusCode::OK, &serde_json::json!({ "expires": info.expires_ms })))
    }

    async fn hashes(&self, id: &str, headers: &HeaderMap) -> Result<Response, BlobError> {
        let (_, info) = self.authorized(id, headers, Needs::Read).await?;
        if !info.complete {
            return Err(BlobError::Incomplete { missing: info.missing() });
        }
        let hashes = info.stored.iter().map(|hash| hash.map(hex::encode).unwrap_or_default()).collect();
        let hashes = Hashes { segments: info.segments, size: info.size, expires: info.expires_ms, hashes };
        Ok(json(StatusCode::OK, &hashes))
    }

    async fn put(
        &self,
        id: &str,
        index: &str,
        headers: &HeaderMap,
        mut body: BodyStream,
    ) -> Result<Response, BlobError> {
        let declared =
            headers.get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        let checked = match self.check_put(id, index, headers, declared).await {
            Ok(Some(checked)) => Ok(checked),
            Ok(None) => Err(None),
            Err(err) => Err(Some(err)),
        };
        let held = checked.and_then(|(id, index, sha256)| {
            let permit = self.uploads.try_acquire().map_err(|_| Some(BlobError::Busy))?;
            let claim = self.claim(id, index).map_err(Some)?;
            Ok((id, index, sha256, permit, claim))
        });
        let (id, index, sha256, _permit, _claim) = match held {
            Ok(held) => held,
            Err(refused) => {
                // Answered without storing: the body is read and dropped first (unless it is
                // declared too long for that), so the client gets the answer, not a reset.
                if declared.is_none_or(|len| len <= super::DRAIN_LIMIT) {
                    super::drain(&mut body, 0).await;
                }
                return match refused {
                    Some(err) => Err(err),
                    None => Ok(segment_answer(StatusCode::OK, index)),
                };
            }
        };
        let status = match self.store.put_segment(id, index, sha256, body).await? {
            PutOutcome::Stored => StatusCode::CREATED,
            PutOutcome::AlreadyStored => StatusCode::OK,
        };
        Ok(segment_answer(status, &index.to_string()))
    }

    /// Everything about an upload that can be checked before its body is read: `None` when the
    /// segment is already stored with that hash (nothing to do), else what to store.
    async fn check_put(
        &self,
        id: &str,
        index: &str,
        headers: &HeaderMap,
        declared: Option<u64>,
    ) -> Result<Option<(BlobId, u16, [u8; 32])>, BlobError> {
        let (id, info) = self.authorized(id, headers, Needs::Write).await?;
        let index = parse_index(index)?;
        let sha256 = headers
            .get(SHA256_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| <[u8; 32]>::try_from(hex::decode(v).ok()?).ok())
            .ok_or(BlobError::Invalid("doorless-segment-sha256 must be 64 hex digits"))?;
        let expected_len = info.segment_len(index).ok_or(BlobError::NoSuchSegment)?;
        if info.check_put(index, &sha256)? {
            return Ok(None);
        }
        if declared.is_some_and(|len| len != expected_len) {
            return Err(BlobError::WrongLength);
        }
        Ok(Some((id, index, sha256)))
    }

    async fn get(&self, id: &str, index: &str, headers: &HeaderMap) -> Result<Response, BlobError> {
        let (id, _) = self.authorized(id, headers, Needs::Read).await?;
        let index = parse_index(index)?;
        let segment = self.store.read_segment(id, index).await?;
        let mut response = warp::reply::Reply::into_response(warp::reply::stream(segment.body));
        let headers = response.headers_mut();
        headers.insert("content-type", HeaderValue::from_static("application/octet-stream"));
        headers.insert("content-length", HeaderValue::from(segment.len));
        Ok(response)
    }

    fn claim(&self, id: BlobId, index: u16) -> Result<Claim<'_>, BlobError> {
        let key = (id, index);
        if !self.in_progress.lock().unwrap_or_else(PoisonError::into_inner).insert(key) {
            return Err(BlobError::SegmentBusy);
        }
        Ok(Claim { service: self, key })
    }
}

/// The request body as a stream of [`Bytes`] (warp's chunks already are; no copy).
fn boxed_body<S, B>(body: S) -> BodyStream
where
    S: futures_util::Stream<Item = Result<B, warp::Error>> + Send + 'static,
    B: warp::Buf,
{
    Box::pin(body.map_ok(|mut buf| buf.copy_to_bytes(buf.remaining())).map_err(std::io::Error::other))
}

/// The answer to an upload: the segment index (`index` as the path gave it, already checked).
fn segment_answer(status: StatusCode, index: &str) -> Response {
    let index: u64 = index.parse().unwrap_or_default();
    json(status, &serde_json::json!({ "stored": index }))
}

/// A segment number in a path: decimal digits only, without a sign or leading zeros, so each
/// segment has exactly one path.
pub fn parse_index(text: &str) -> Result<u16, BlobError> {
    if text.is_empty()
        || text.len() > 5
        || !text.bytes().all(|b| b.is_ascii_digit())
        || (text.len() > 1 && text.starts_with('0'))
    {
        return Err(BlobError::NoSuchSegment);
    }
    text.parse().map_err(|_| BlobError::NoSuchSegment)
}

fn bearer(headers: &HeaderMap) -> Option<Capability> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    Capability::decode(token.trim())
}

async fn read_small(mut body: BodyStream, limit: usize) -> Result<Bytes, BlobError> {
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|_| BlobError::BodyAborted)?;
        if out.len() + chunk.remaining() > limit {
            return Err(BlobError::Invalid("body too large"));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out.into())
}

/// The status code and stable error name of each error.
fn classify(err: &BlobError) -> (StatusCode, &'static str) {
    match err {
        BlobError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid"),
        BlobError::BadCapability => (StatusCode::UNAUTHORIZED, "bad_capability"),
        BlobError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
        BlobError::NoSuchSegment => (StatusCode::NOT_FOUND, "no_such_segment"),
        BlobError::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
        BlobError::QuotaExceeded => (StatusCode::INSUFFICIENT_STORAGE, "quota_exceeded"),
        BlobError::WrongLength => (StatusCode::BAD_REQUEST, "wrong_length"),
        BlobError::HashMismatch => (StatusCode::UNPROCESSABLE_ENTITY, "hash_mismatch"),
        BlobError::SegmentConflict => (StatusCode::CONFLICT, "segment_conflict"),
        BlobError::SegmentBusy => (StatusCode::CONFLICT, "segment_busy"),
        BlobError::Complete => (StatusCode::CONFLICT, "complete"),
        BlobError::Incomplete { .. } => (StatusCode::CONFLICT, "incomplete"),
        BlobError::Busy => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
        BlobError::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
        BlobError::DiskFull => (StatusCode::INSUFFICIENT_STORAGE, "disk_full"),
        BlobError::BodyAborted => (StatusCode::BAD_REQUEST, "body_aborted"),
        BlobError::Backend(_) => (StatusCode::INTERNAL_SERVER_ERROR, "storage_failure"),
    }
}

fn error_response(err: &BlobError) -> Response {
    let (status, name) = classify(err);
    let message = match err {
        // The backend's own text can name paths; it goes to the log (without ids), not the client.
        BlobError::Backend(detail) => {
            tracing::warn!(error = %detail, "blob storage failure");
            "storage failure".to_owned()
        }
        other => other.to_string(),
    };
    let missing = match err {
        BlobError::Incomplete { missing } => Some(missing.as_slice()),
        _ => None,
    };
    let mut response = json(status, &ErrorBody { error: name, message, missing });
    if matches!(err, BlobError::Busy | BlobError::RateLimited) {
        response.headers_mut().insert("retry-after", HeaderValue::from_static(RETRY_AFTER_SECS));
    }
    response
}

fn plain(status: StatusCode, name: &str, message: &str) -> Response {
    json(status, &ErrorBody { error: name, message: message.to_owned(), missing: None })
}

fn json(status: StatusCode, value: &impl Serialize) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response.headers_mut().insert("content-type", HeaderValue::from_static("application/json"));
    response
}

fn empty(status: StatusCode) -> Response {
    let mut response = Response::new(Bytes::new().into());
    *response.status_mut() = status;
    response
}

/// Answer to a CORS preflight: any origin may call the blob routes, because nothing about them
/// rests on the origin or on cookies: every route but create needs a capability in a header.
fn preflight() -> Response {
    let mut response = empty(StatusCode::NO_CONTENT);
    let headers = response.headers_mut();
    headers.insert("access-control-allow-methods", HeaderValue::from_static("GET, PUT, POST, DELETE"));
    headers.insert(
        "access-control-allow-headers",
        HeaderValue::from_static("authorization, content-type, doorless-segment-sha256"),
    );
    headers.insert("access-control-max-age", HeaderValue::from_static("86400"));
    response
}

/// Headers of every answer under `/blobs`: CORS for any origin, and nothing cached.
fn add_blob_headers(headers: &mut HeaderMap) {
    headers.insert("cache-control", HeaderValue::from_static("no-store"));
    headers.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    headers.insert("access-control-expose-headers", HeaderValue::from_static("retry-after"));
}
