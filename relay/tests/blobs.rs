//! The attachment blob routes over real HTTP on loopback, against the disk store and the memory
//! double (each scenario runs against both: see `conformance!`), and with the `s3` feature also
//! against the S3 store on a real S3-compatible server on loopback (`moto_server`,
//! tests/common/s3.rs), plus a `kill -9` of a relay process in the middle of a segment upload.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use relay::blob::{BlobLimits, SEGMENT_LEN};
use relay::{BlobStore, Config, DiskBlobStore, ManualClock, MemoryBlobStore, MemoryStore, Store};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

const HOUR_MS: u64 = 3600 * 1000;

#[derive(Clone, Copy, Debug)]
enum Backend {
    Disk,
    Memory,
    #[cfg(feature = "s3")]
    S3,
}

/// A relay on the chosen blob store, with a clock the test moves.
struct Harness {
    relay: relay::Relay,
    clock: Arc<ManualClock>,
    /// The blob directory of the disk store.
    dir: tempfile::TempDir,
}

impl Harness {
    async fn start(backend: Backend, limits: BlobLimits) -> Self {
        let config = Config {
            blob_max_bytes: limits.max_blob_bytes,
            blob_max_stored_bytes: limits.max_stored_bytes,
            blob_upload_ttl_secs: limits.upload_ttl_ms / 1000,
            blob_ttl_secs: limits.blob_ttl_ms / 1000,
            ..common::test_config()
        };
        Self::start_config(backend, config).await
    }

    async fn start_config(backend: Backend, config: Config) -> Self {
        let clock = Arc::new(ManualClock::new(1_700_000_000_000));
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new(config.quotas(), clock.clone()));
        let blobs: Arc<dyn BlobStore> = match backend {
            Backend::Disk => {
                Arc::new(DiskBlobStore::open(dir.path(), config.blob_limits(), clock.clone()).unwrap())
            }
            Backend::Memory => Arc::new(MemoryBlobStore::new(config.blob_limits(), clock.clone())),
            #[cfg(feature = "s3")]
            Backend::S3 => Arc::new(
                relay::blob::S3BlobStore::open(
                    &common::s3::Moto::shared().options(),
                    config.blob_limits(),
                    clock.clone(),
                )
                .await
                .unwrap(),
            ),
        };
        let relay = relay::start_with_stores(&config, store, blobs).await.unwrap();
        Self { relay, clock, dir }
    }

    fn addr(&self) -> SocketAddr {
        self.relay.addr()
    }

    async fn finish(self) {
        common::finish(self.relay).await;
    }
}

/// Generates one test per backend for each scenario, so a failure names the store.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        $(mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn disk() {
                super::$name(super::Backend::Disk).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                super::$name(super::Backend::Memory).await;
            }
            #[cfg(feature = "s3")]
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn s3() {
                super::$name(super::Backend::S3).await;
            }
        })*
    };
}

conformance!(
    upload_resume_complete_and_download,
    re_put_is_idempotent_and_never_replaces,
    wrong_hash_or_length_stores_nothing,
    capabilities_are_separate_and_checked,
    cancel_deletes_and_frees_the_reservation,
    concurrent_creates_never_over_commit,
    unfinished_and_finished_blobs_expire,
    malformed_requests_are_refused_clearly,
    creates_are_limited_per_connection,
);

// --- HTTP client -------------------------------------------------------------------------------

struct Reply {
    status: u16,
    headers: hyper::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON: {:?}", String::from_utf8_lossy(&self.body)))
    }

    /// The stable error name of an error reply.
    fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_owned()
    }
}

type Body = BoxBody<Bytes, std::io::Error>;

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

/// A kept-alive HTTP/1.1 connection.
type Connection = hyper::client::conn::http1::SendRequest<Body>;

async fn connect(addr: SocketAddr) -> Connection {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    sender
}

/// One request on a fresh connection.
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: Body,
) -> Reply {
    request_on(&mut connect(addr).await, addr, method, path, headers, body).await
}

/// One request on `sender`'s connection.
async fn request_on(
    sender: &mut Connection,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: Body,
) -> Reply {
    sender.ready().await.unwrap();
    let mut builder = hyper::Request::builder().method(method).uri(path).header("host", addr.to_string());
    for (name, value) in headers {
        builder = builder.header(*name, value);
    }
    let response = tokio::time::timeout(common::DEADLINE, sender.send_request(builder.body(body).unwrap()))
        .await
        .unwrap()
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes().to_vec();
    Reply { status, headers, body }
}

fn bearer(cap: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {cap}"))
}

fn sha_header(bytes: &[u8]) -> (&'static str, String) {
    ("doorless-segment-sha256", hex::encode(Sha256::digest(bytes)))
}

/// What a create hands the uploader.
struct Created {
    id: String,
    write: String,
    read: String,
}

async fn create(addr: SocketAddr, segments: u16, size: u64) -> Result<Created, Reply> {
    let body = serde_json::json!({ "segments": segments, "size": size }).to_string();
    let reply =
        request(addr, "POST", "/blobs", &[("content-type", "application/json".into())], full(body)).await;
    if reply.status != 201 {
        return Err(reply);
    }
    let json = reply.json();
    let field = |name: &str| json[name].as_str().unwrap().to_owned();
    Ok(Created { id: field("id"), write: field("write"), read: field("read") })
}

async fn put(addr: SocketAddr, blob: &Created, index: u16, bytes: &[u8]) -> Reply {
    put_with(addr, &blob.id, &blob.write, index, &hex::encode(Sha256::digest(bytes)), bytes.to_vec()).await
}

async fn put_with(addr: SocketAddr, id: &str, cap: &str, index: u16, sha: &str, bytes: Vec<u8>) -> Reply {
    let headers = [bearer(cap), ("doorless-segment-sha256", sha.to_owned())];
    request(addr, "PUT", &format!("/blobs/{id}/{index}"), &headers, full(bytes)).await
}

async fn get(addr: SocketAddr, path: &str, cap: &str) -> Reply {
    request(addr, "GET", path, &[bearer(cap)], full(Bytes::new())).await
}

async fn status(addr: SocketAddr, blob: &Created) -> Reply {
    get(addr, &format!("/blobs/{}", blob.id), &blob.write).await
}

fn stored(status: &Reply) -> Vec<u64> {
    status.json()["stored"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect()
}

async fn complete(addr: SocketAddr, blob: &Created) -> Reply {
    request(addr, "POST", &format!("/blobs/{}/complete", blob.id), &[bearer(&blob.write)], full(Bytes::new()))
        .await
}

/// Deterministic segment contents.
fn bytes(seed: u8, len: u64) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

fn limits() -> BlobLimits {
    BlobLimits::default()
}

/// Every file under `dir`, recursively (the disk store's temporary and segment files).
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() { out.extend(files_under(&path)) } else { out.push(path) }
        }
    }
    out
}

// --- Scenarios ---------------------------------------------------------------------------------

/// Two full segments and a short last one, uploaded out of order with a resume from the status
/// route; read back whole, with the hash list, only once complete.
async fn upload_resume_complete_and_download(backend: Backend) {
    let h = Harness::start(backend, limits()).await;
    let addr = h.addr();
    let size = 2 * SEGMENT_LEN + 1000;
    let segments = [bytes(1, SEGMENT_LEN), bytes(2, SEGMENT_LEN), bytes(3, 1000)];
    let blob = create(addr, 3, size).await.unwrap_or_else(|r| panic!("create: {}", r.status));
    assert_eq!((blob.id.len(), blob.write.len(), blob.read.len()), (22, 43, 43));
    assert_ne!(blob.write, blob.read);

    let empty = status(addr, &blob).await;
    assert_eq!(empty.status, 200);
    assert_eq!(stored(&empty), Vec::<u64>::new());
    assert_eq!(empty.json()["complete"], false);

    assert_eq!(put(addr, &blob, 2, &segments[2]).await.status, 201);
    assert_eq!(put(addr, &blob, 0, &segments[0]).await.status, 201);
    // A reader cannot read before completion.
    let early = get(addr, &format!("/blobs/{}/0", blob.id), &blob.read).await;
    assert_eq!((early.status, early.error().as_str()), (409, "incomplete"));

    // The uploader "reloads": status says what is left.
    let resume = status(addr, &blob).await;
    assert_eq!(stored(&resume), vec![0, 2]);
    let refused = complete(addr, &blob).await;
    assert_eq!((refused.status, refused.error().as_str()), (409, "incomplete"));
    assert_eq!(refused.json()["missing"], serde_json::json!([1]));
    assert_eq!(put(addr, &blob, 1, &segments[1]).await.status, 201);
    let done = complete(addr, &blob).await;
    assert_eq!(done.status, 200);
    assert!(done.json()["expires"].as_u64().unwrap() > 1_700_000_000_000);
    assert_eq!(complete(addr, &blob).await.status, 200, "completing again changes nothing");
    let after = put(addr, &blob, 1, &segments[1]).await;
    assert_eq!((after.status, after.error().as_str()), (409, "complete"));

    let hashes = get(addr, &format!("/blobs/{}/hashes", blob.id), &blob.read).await;
    assert_eq!(hashes.status, 200);
    assert_eq!(hashes.headers["access-control-allow-origin"], "*");
    let expected: Vec<String> = segments.iter().map(|s| hex::encode(Sha256::digest(s))).collect();
    assert_eq!(hashes.json()["hashes"], serde_json::json!(expected));
    assert_eq!(hashes.json()["size"], size);
    for (index, segment) in segments.iter().enumerate() {
        let reply = get(addr, &format!("/blobs/{}/{index}", blob.id), &blob.read).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.headers["content-type"], "application/octet-stream");
        assert_eq!(reply.headers["content-length"], segment.len().to_string());
        assert_eq!(reply.headers["access-control-allow-origin"], "*");
        assert_eq!(reply.headers["cache-control"], "no-store");
        assert!(reply.body == *segment, "segment {index} differs");
    }
    let stats = h.relay.blobs().stats();
    assert_eq!((stats.blobs, stats.uploading, stats.reserved_bytes, stats.stored_bytes), (1, 0, size, size));
    let metrics = String::from_utf8(get(addr, "/metrics", "").await.body).unwrap();
    assert!(metrics.contains("\ndoorless_blobs 1\n"), "{metrics}");
    assert!(metrics.contains(&format!("\ndoorless_blob_stored_bytes {size}\n")), "{metrics}");
    h.finish().await;
}

async fn re_put_is_idempotent_and_never_replaces(backend: Backend) {
    let h = Harness::start(backend, limits()).await;
    let addr = h.addr();
    let blob = create(addr, 1, 5000).await.ok().unwrap();
    let original = bytes(7, 5000);
    assert_eq!(put(addr, &blob, 0, &original).await.status, 201);
    let again = put(addr, &blob, 0, &original).await;
    assert_eq!(again.status, 200, "the same segment again is accepted and changes nothing");
    assert_eq!(again.json()["stored"], 0);
    let other = bytes(8, 5000);
    let replaced = put(addr, &blob, 0, &other).await;
    assert_eq!((replaced.status, replaced.error().as_str()), (409, "segment_conflict"));
    assert_eq!(complete(addr, &blob).await.status, 200);
    assert_eq!(get(addr, &format!("/blobs/{}/0", blob.id), &blob.read).await.body, original);
    assert_eq!(h.relay.blobs().stats().stored_bytes, 5000);
    h.finish().await;
}

async fn wrong_hash_or_length_stores_nothing(backend: Backend) {
    let h = Harness::start(backend, limits()).await;
    let addr = h.addr();
    let blob = create(addr, 2, SEGMENT_LEN + 10).await.ok().unwrap();
    let segment = bytes(1, SEGMENT_LEN);
    let wrong_sha = hex::encode(Sha256::digest(b"something else"));

    let mismatch = put_with(addr, &blob.id, &blob.write, 0, &wrong_sha, segment.clone()).await;
    assert_eq!((mismatch.status, mismatch.error().as_str()), (422, "hash_mismatch"));
    let short = &segment[..SEGMENT_LEN as usize - 1];
    let too_short = put(addr, &blob, 0, short).await;
    assert_eq!((too_short.status, too_short.error().as_str()), (400, "wrong_length"));
    let mut long = segment.clone();
    long.push(0);
    assert_eq!(put(addr, &blob, 0, &long).await.error(), "wrong_length");
    // A chunked body (no Content-Length) that runs past the segment is cut off while streaming.
    let chunks = long.chunks(100_000).map(|c| Ok(Frame::data(Bytes::copy_from_slice(c)))).collect::<Vec<_>>();
    let streamed = StreamBody::new(futures_util::stream::iter(chunks)).boxed();
    let headers = [bearer(&blob.write), sha_header(&long)];
    let cut = request(addr, "PUT", &format!("/blobs/{}/0", blob.id), &headers, streamed).await;
    assert_eq!((cut.status, cut.error().as_str()), (400, "wrong_length"));
    let bad_header = put_with(addr, &blob.id, &blob.write, 0, "abc", segment.clone()).await;
    assert_eq!((bad_header.status, bad_header.error().as_str()), (400, "invalid"));

    assert_eq!(stored(&status(addr, &blob).await), Vec::<u64>::new());
    assert_eq!(h.relay.blobs().stats().stored_bytes, 0);
    if let Backend::Disk = backend {
        assert_eq!(files_under(h.dir.path()).iter().filter(|p| !p.ends_with("meta.redb")).count(), 0);
    }
    // The right bytes are still accepted afterwards.
    assert_eq!(put(addr, &blob, 0, &segment).await.status, 201);
    h.finish().await;
}

async fn capabilities_are_separate_and_checked(backend: Backend) {
    let h = Harness::start(backend, limits()).await;
    let addr = h.addr();
    let blob = create(addr, 1, 100).await.ok().unwrap();
    let segment = bytes(1, 100);
    let other = create(addr, 1, 100).await.ok().unwrap();

    // The read capability cannot write, nor see the status, complete or cancel.
    let sha = hex::encode(Sha256::digest(&segment));
    assert_eq!(
        put_with(addr, &blob.id, &blob.read, 0, &sha, segment.clone()).await.error(),
        "bad_capability"
    );
    assert_eq!(get(addr, &format!("/blobs/{}", blob.id), &blob.read).await.status, 401);
    let with_read = [bearer(&blob.read)];
    let path = format!("/blobs/{}/complete", blob.id);
    assert_eq!(request(addr, "POST", &path, &with_read, full(Bytes::new())).await.status, 401);
    let path = format!("/blobs/{}", blob.id);
    assert_eq!(request(addr, "DELETE", &path, &with_read, full(Bytes::new())).await.status, 401);
    // Another blob's capability is no better, and neither is none or a malformed one.
    assert_eq!(put_with(addr, &blob.id, &other.write, 0, &sha, segment.clone()).await.status, 401);
    let none = request(addr, "GET", &format!("/blobs/{}", blob.id), &[], full(Bytes::new())).await;
    assert_eq!((none.status, none.error().as_str()), (401, "bad_capability"));
    assert_eq!(get(addr, &format!("/blobs/{}", blob.id), "not-a-capability").await.status, 401);

    assert_eq!(put(addr, &blob, 0, &segment).await.status, 201);
    assert_eq!(complete(addr, &blob).await.status, 200);
    // The write capability cannot read.
    assert_eq!(get(addr, &format!("/blobs/{}/0", blob.id), &blob.write).await.status, 401);
    assert_eq!(get(addr, &format!("/blobs/{}/hashes", blob.id), &blob.write).await.status, 401);
    assert_eq!(get(addr, &format!("/blobs/{}/0", blob.id), &blob.read).await.status, 200);
    // An unknown id is 404 whatever the capability.
    let unknown = get(addr, "/blobs/AAAAAAAAAAAAAAAAAAAAAA/0", &blob.read).await;
    assert_eq!((unknown.status, unknown.error().as_str()), (404, "not_found"));
    h.finish().await;
}

async fn cancel_deletes_and_frees_the_reservation(backend: Backend) {
    let h = Harness::start(backend, limits()).await;
    let addr = h.addr();
    let blob = create(addr, 2, SEGMENT_LEN + 1).await.ok().unwrap();
    assert_eq!(put(addr, &blob, 0, &bytes(1, SEGMENT_LEN)).await.status, 201);
    assert_eq!(h.relay.blobs().stats().reserved_bytes, SEGMENT_LEN + 1);
    let path = format!("/blobs/{}", blob.id);
    let cancelled = request(addr, "DELETE", &path, &[bearer(&blob.write)], full(Bytes::new())).await;
    assert_eq!(cancelled.status, 204);
    assert_eq!(status(addr, &blob).await.status, 404);
    assert_eq!(request(addr, "DELETE", &path, &[bearer(&blob.write)], full(Bytes::new())).await.status, 404);
    let stats = h.relay.blobs().stats();
    assert_eq!((stats.blobs, stats.reserved_bytes, stats.stored_bytes), (0, 0, 0));
    if let Backend::Disk = backend {
        assert_eq!(files_under(&h.dir.path().join("segments")), Vec::<std::path::PathBuf>::new());
    }
    h.finish().await;
}

async fn concurrent_creates_never_over_commit(backend: Backend) {
    const SIZE: u64 = 3 * SEGMENT_LEN;
    const FITS: usize = 5;
    let h =
        Harness::start(backend, BlobLimits { max_stored_bytes: FITS as u64 * SIZE + SIZE - 1, ..limits() })
            .await;
    let addr = h.addr();
    let attempts: Vec<_> = (0..32).map(|_| tokio::spawn(create(addr, 3, SIZE))).collect();
    let mut created = Vec::new();
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(blob) => created.push(blob),
            Err(reply) => assert_eq!((reply.status, reply.error().as_str()), (507, "quota_exceeded")),
        }
    }
    assert_eq!(created.len(), FITS, "exactly as many blobs as the quota holds");
    assert_eq!(h.relay.blobs().stats().reserved_bytes, FITS as u64 * SIZE);
    // Freeing one makes room for exactly one more.
    let path = format!("/blobs/{}", created[0].id);
    assert_eq!(
        request(addr, "DELETE", &path, &[bearer(&created[0].write)], full(Bytes::new())).await.status,
        204
    );
    assert!(create(addr, 3, SIZE).await.is_ok());
    assert_eq!(create(addr, 3, SIZE).await.err().map(|r| r.status), Some(507));
    h.finish().await;
}

async fn unfinished_and_finished_blobs_expire(backend: Backend) {
    let limits = BlobLimits { upload_ttl_ms: HOUR_MS, blob_ttl_ms: 24 * HOUR_MS, ..limits() };
    let h = Harness::start(backend, limits).await;
    let addr = h.addr();
    let unfinished = create(addr, 1, 10).await.ok().unwrap();
    assert_eq!(put(addr, &unfinished, 0, &bytes(1, 10)).await.status, 201);
    let finished = create(addr, 1, 20).await.ok().unwrap();
    assert_eq!(put(addr, &finished, 0, &bytes(2, 20)).await.status, 201);
    assert_eq!(complete(addr, &finished).await.status, 200);

    h.clock.advance(HOUR_MS - 1);
    assert_eq!(h.relay.blobs().expire().await, Ok(0));
    assert_eq!(status(addr, &unfinished).await.status, 200);
    h.clock.advance(1);
    // Gone at its expiry time even before the sweeper runs, then swept.
    assert_eq!(status(addr, &unfinished).await.status, 404);
    assert_eq!(h.relay.blobs().expire().await, Ok(1));
    assert_eq!(get(addr, &format!("/blobs/{}/0", finished.id), &finished.read).await.status, 200);
    let stats = h.relay.blobs().stats();
    assert_eq!((stats.blobs, stats.reserved_bytes, stats.stored_bytes, stats.expired), (1, 20, 20, 1));

    h.clock.advance(24 * HOUR_MS);
    assert_eq!(get(addr, &format!("/blobs/{}/0", finished.id), &finished.read).await.status, 404);
    assert_eq!(h.relay.blobs().expire().await, Ok(1));
    let stats = h.relay.blobs().stats();
    assert_eq!((stats.blobs, stats.reserved_bytes, stats.stored_bytes, stats.expired), (0, 0, 0, 2));
    if let Backend::Disk = backend {
        assert_eq!(files_under(&h.dir.path().join("segments")), Vec::<std::path::PathBuf>::new());
    }
    h.finish().await;
}

async fn malformed_requests_are_refused_clearly(backend: Backend) {
    let h = Harness::start(backend, BlobLimits { max_blob_bytes: 2 * SEGMENT_LEN, ..limits() }).await;
    let addr = h.addr();
    let post = |body: &'static str| request(addr, "POST", "/blobs", &[], full(body));
    assert_eq!(post("not json").await.error(), "invalid");
    assert_eq!(post(r#"{"segments": 1}"#).await.error(), "invalid");
    assert_eq!(post(r#"{"segments": 0, "size": 0}"#).await.error(), "invalid");
    assert_eq!(post(r#"{"segments": 1, "size": 4195329}"#).await.error(), "invalid");
    assert_eq!(post(r#"{"segments": 2, "size": 4195328}"#).await.error(), "invalid");
    let too_large = post(r#"{"segments": 3, "size": 8390657}"#).await;
    assert_eq!((too_large.status, too_large.error().as_str()), (413, "too_large"));
    assert_eq!(h.relay.blobs().stats().blobs, 0);

    let blob = create(addr, 1, 10).await.ok().unwrap();
    let beyond = put(addr, &blob, 1, &bytes(0, 10)).await;
    assert_eq!((beyond.status, beyond.error().as_str()), (404, "no_such_segment"));
    let path = format!("/blobs/{}/x", blob.id);
    assert_eq!(get(addr, &path, &blob.read).await.error(), "no_such_segment");
    let method = request(addr, "PATCH", &format!("/blobs/{}", blob.id), &[], full(Bytes::new())).await;
    assert_eq!((method.status, method.error().as_str()), (405, "method_not_allowed"));

    // CORS preflight: any origin, the headers a browser needs for every route.
    let headers = [
        ("origin", "https://other-relay.example".to_owned()),
        ("access-control-request-method", "PUT".to_owned()),
        ("access-control-request-headers", "authorization, doorless-segment-sha256".to_owned()),
    ];
    let preflight =
        request(addr, "OPTIONS", &format!("/blobs/{}/0", blob.id), &headers, full(Bytes::new())).await;
    assert_eq!(preflight.status, 204);
    assert_eq!(preflight.headers["access-control-allow-origin"], "*");
    assert!(preflight.headers["access-control-allow-methods"].to_str().unwrap().contains("PUT"));
    assert!(
        preflight.headers["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("doorless-segment-sha256")
    );
    h.finish().await;
}

// --- A relay process killed mid-upload -----------------------------------------------------------

/// `kill -9` of the relay while a segment is half uploaded: after a restart on the same data
/// directory the segment is absent, the status lists exactly the segments stored before, no
/// temporary file is left, and the upload resumes and completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_put_leaves_the_segment_absent_and_status_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = common::spawn_relay(dir.path(), &[]);
    let segments = [bytes(1, SEGMENT_LEN), bytes(2, SEGMENT_LEN), bytes(3, 100)];
    let blob = create(addr, 3, 2 * SEGMENT_LEN + 100).await.ok().unwrap();
    assert_eq!(put(addr, &blob, 0, &segments[0]).await.status, 201);

    // Segment 1: the first MiB is sent, then the relay is killed while it waits for the rest.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(4);
    let body = StreamBody::new(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|frame| (frame, rx))
    }))
    .boxed();
    let headers =
        [bearer(&blob.write), sha_header(&segments[1]), ("content-length", SEGMENT_LEN.to_string())];
    let path = format!("/blobs/{}/1", blob.id);
    let upload = tokio::spawn(async move {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
        tokio::spawn(connection);
        let mut request = hyper::Request::builder().method("PUT").uri(path).header("host", addr.to_string());
        for (name, value) in headers {
            request = request.header(name, value);
        }
        // The relay dies before answering.
        sender.send_request(request.body(body).unwrap()).await.is_err()
    });
    for chunk in segments[1][..1 << 20].chunks(64 * 1024) {
        tx.send(Ok(Frame::data(Bytes::copy_from_slice(chunk)))).await.unwrap();
    }
    let tmp = dir.path().join("blobs").join("tmp");
    common::wait_until("part of segment 1 is on disk", || {
        files_under(&tmp).iter().any(|f| std::fs::metadata(f).is_ok_and(|m| m.len() > 0))
    })
    .await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(upload.await.unwrap(), "the cut-off upload got no answer");
    drop(tx);

    let (mut child, addr) = common::spawn_relay(dir.path(), &[]);
    let after = status(addr, &blob).await;
    assert_eq!(after.status, 200);
    assert_eq!(stored(&after), vec![0], "only the segment stored before the kill");
    assert_eq!(files_under(&tmp), Vec::<std::path::PathBuf>::new(), "the partial upload is gone");
    let blob_dir = dir.path().join("blobs").join("segments").join(&blob.id);
    assert!(!blob_dir.join("1").exists());
    let unreadable = complete(addr, &blob).await;
    assert_eq!(unreadable.json()["missing"], serde_json::json!([1, 2]));

    assert_eq!(put(addr, &blob, 1, &segments[1]).await.status, 201);
    assert_eq!(put(addr, &blob, 2, &segments[2]).await.status, 201);
    assert_eq!(complete(addr, &blob).await.status, 200);
    for (index, segment) in segments.iter().enumerate() {
        let reply = get(addr, &format!("/blobs/{}/{index}", blob.id), &blob.read).await;
        assert!(reply.status == 200 && reply.body == *segment, "segment {index} after the restart");
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A disk that runs out of room in the middle of a segment (simulated with a file size limit on
/// the relay process, which fails the write the way a full disk does): the upload is refused with
/// `507 disk_full`, nothing of it is stored or left behind, and smaller segments still go in.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_the_segment_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // 3000 blocks: 1.5 MB with POSIX's 512-byte blocks, 3 MB with bash's 1 KiB ones; either way
    // below one segment and far above the metadata files. SIGXFSZ is ignored (kept across exec),
    // so an oversized write fails with EFBIG instead of killing the process.
    let mut shell = std::process::Command::new("sh");
    shell.args(["-c", "trap '' XFSZ; ulimit -f 3000 && exec \"$0\" \"$@\"", env!("CARGO_BIN_EXE_relay")]);
    let (mut child, addr) =
        common::spawn_relay_with(shell, &[std::ffi::OsStr::new("--data-dir"), dir.path().as_os_str()]);
    let blob = create(addr, 2, SEGMENT_LEN + 100).await.ok().unwrap();
    let full = put(addr, &blob, 0, &bytes(1, SEGMENT_LEN)).await;
    assert_eq!((full.status, full.error().as_str()), (507, "disk_full"));
    assert_eq!(stored(&status(addr, &blob).await), Vec::<u64>::new());
    assert_eq!(files_under(&dir.path().join("blobs").join("tmp")), Vec::<std::path::PathBuf>::new());
    assert_eq!(files_under(&dir.path().join("blobs").join("segments")), Vec::<std::path::PathBuf>::new());
    assert_eq!(put(addr, &blob, 1, &bytes(2, 100)).await.status, 201);
    assert_eq!(stored(&status(addr, &blob).await), vec![1]);
    child.kill().unwrap();
    child.wait().unwrap();
}

/// The relay process's peak resident memory (`VmHWM`), in bytes.
#[cfg(target_os = "linux")]
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

/// Uploads are streamed to disk, not held: 15 full segments uploaded at once (60 MiB in flight)
/// raise the relay's peak resident memory by less than holding them would take. (Measured: about
/// 28 MiB, which is the HTTP read buffers, the 256 KiB file buffers and the blocking threads.)
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_full_segment_uploads_are_not_held_in_memory() {
    const UPLOADS: u64 = 15;
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = common::spawn_relay(dir.path(), &[]);
    let blob = Arc::new(create(addr, UPLOADS as u16 + 1, (UPLOADS + 1) * SEGMENT_LEN).await.ok().unwrap());
    let segment = Bytes::from(bytes(9, SEGMENT_LEN));
    let sha = hex::encode(Sha256::digest(&segment));
    // Warm up (first-use allocations of the runtime, redb and the blocking pool), then measure.
    assert_eq!(put(addr, &blob, 0, &segment).await.status, 201);
    let before = peak_rss(child.id());
    let uploads: Vec<_> = (1..=UPLOADS as u16)
        .map(|index| {
            let (blob, segment, sha) = (blob.clone(), segment.clone(), sha.clone());
            tokio::spawn(async move {
                let headers = [bearer(&blob.write), ("doorless-segment-sha256", sha)];
                request(addr, "PUT", &format!("/blobs/{}/{index}", blob.id), &headers, full(segment))
                    .await
                    .status
            })
        })
        .collect();
    for upload in uploads {
        assert_eq!(upload.await.unwrap(), 201);
    }
    let growth = peak_rss(child.id()).saturating_sub(before);
    eprintln!("relay peak memory grew by {} KiB for {UPLOADS} concurrent segment uploads", growth / 1024);
    assert!(growth < UPLOADS * SEGMENT_LEN, "peak grew by {growth} bytes");
    child.kill().unwrap();
    child.wait().unwrap();
}

async fn creates_are_limited_per_connection(backend: Backend) {
    let config = Config { blob_create_rate: 0.0, blob_create_burst: 3.0, ..common::test_config() };
    let h = Harness::start_config(backend, config).await;
    let addr = h.addr();
    let body = || full(r#"{"segments": 1, "size": 10}"#);
    let mut connection = connect(addr).await;
    for _ in 0..3 {
        assert_eq!(request_on(&mut connection, addr, "POST", "/blobs", &[], body()).await.status, 201);
    }
    let limited = request_on(&mut connection, addr, "POST", "/blobs", &[], body()).await;
    assert_eq!((limited.status, limited.error().as_str()), (429, "rate_limited"));
    assert_eq!(limited.headers["retry-after"], "1");
    // The limit is the connection's (the relay knows no address): another connection may create.
    assert_eq!(request(addr, "POST", "/blobs", &[], body()).await.status, 201);
    assert_eq!(h.relay.blobs().stats().blobs, 4);
    h.finish().await;
}

// --- Several relays on one bucket (S3 store) -----------------------------------------------------

/// Two relays whose S3 stores share one bucket and prefix, on one clock.
#[cfg(feature = "s3")]
async fn two_relays_on_one_bucket(limits: BlobLimits) -> (relay::Relay, relay::Relay, Arc<ManualClock>) {
    let config = Config {
        blob_max_stored_bytes: limits.max_stored_bytes,
        blob_upload_ttl_secs: limits.upload_ttl_ms / 1000,
        blob_ttl_secs: limits.blob_ttl_ms / 1000,
        ..common::test_config()
    };
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let options = common::s3::Moto::shared().options();
    let mut relays = Vec::new();
    for _ in 0..2 {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new(config.quotas(), clock.clone()));
        let blobs =
            relay::blob::S3BlobStore::open(&options, config.blob_limits(), clock.clone()).await.unwrap();
        relays.push(relay::start_with_stores(&config, store, Arc::new(blobs)).await.unwrap());
    }
    let b = relays.pop().unwrap();
    (relays.pop().unwrap(), b, clock)
}

/// A blob uploaded through one relay is seen, completed and read through the other; two relays
/// racing to store different bytes for one segment store exactly one of them (the conditional
/// write), and a cancel on one is seen at once on the other.
#[cfg(feature = "s3")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_relays_sharing_a_bucket_never_replace_a_segment() {
    let (a, b, _clock) = two_relays_on_one_bucket(limits()).await;
    let blob = create(a.addr(), 2, SEGMENT_LEN + 100).await.ok().unwrap();
    let first = bytes(1, SEGMENT_LEN);
    assert_eq!(put(a.addr(), &blob, 0, &first).await.status, 201);
    assert_eq!(stored(&status(b.addr(), &blob).await), vec![0]);
    let other = put(b.addr(), &blob, 0, &bytes(2, SEGMENT_LEN)).await;
    assert_eq!((other.status, other.error().as_str()), (409, "segment_conflict"));
    assert_eq!(put(b.addr(), &blob, 0, &first).await.status, 200, "the same bytes again change nothing");

    // Both relays race to store different last segments.
    let (x, y) = (bytes(3, 100), bytes(4, 100));
    let (to_a, to_b) = tokio::join!(put(a.addr(), &blob, 1, &x), put(b.addr(), &blob, 1, &y));
    let mut statuses = [to_a.status, to_b.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409], "exactly one upload of the segment is stored");
    let winner = if to_a.status == 201 { x } else { y };
    assert_eq!(complete(b.addr(), &blob).await.status, 200);
    assert_eq!(get(a.addr(), &format!("/blobs/{}/1", blob.id), &blob.read).await.body, winner);
    assert_eq!(get(a.addr(), &format!("/blobs/{}/0", blob.id), &blob.read).await.body, first);

    let path = format!("/blobs/{}", blob.id);
    assert_eq!(
        request(a.addr(), "DELETE", &path, &[bearer(&blob.write)], full(Bytes::new())).await.status,
        204
    );
    assert_eq!(get(b.addr(), &format!("/blobs/{}/0", blob.id), &blob.read).await.status, 404);
    common::finish(a).await;
    common::finish(b).await;
}

/// The reserved-bytes quota across relays: each relay counts its own creates at once and the
/// others' at its next sweep, so the bucket never holds more than one quota per relay, and a
/// sweep brings every relay back to the global count.
#[cfg(feature = "s3")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_quota_across_relays_is_bounded_and_caught_up_by_the_sweep() {
    let (a, b, _clock) = two_relays_on_one_bucket(BlobLimits { max_stored_bytes: 3000, ..limits() }).await;
    for _ in 0..3 {
        assert!(create(a.addr(), 1, 1000).await.is_ok());
    }
    assert_eq!(create(a.addr(), 1, 1000).await.err().map(|r| r.status), Some(507));
    // B has not swept since A's creates: it still has its own quota (the documented bound).
    assert!(create(b.addr(), 1, 1000).await.is_ok());
    assert_eq!(b.blobs().stats().reserved_bytes, 1000);
    assert_eq!(b.blobs().expire().await, Ok(0));
    assert_eq!(b.blobs().stats().reserved_bytes, 4000, "the sweep counts every relay's blobs");
    assert_eq!(create(b.addr(), 1, 1).await.err().map(|r| r.status), Some(507));
    assert_eq!(a.blobs().expire().await, Ok(0));
    assert_eq!((a.blobs().stats().blobs, a.blobs().stats().reserved_bytes), (4, 4000));
    common::finish(a).await;
    common::finish(b).await;
}
