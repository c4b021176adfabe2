//! Static hosting, health and metrics, over plain HTTP/1.1 on loopback.

use std::collections::HashMap;
use std::net::SocketAddr;

use base64::Engine as _;
use relay::Config;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const INLINE: &str = "import init, * as bindings from '/app-0123456789abcdef.js';\nwindow.wasmBindings = bindings;\ninit('/app-0123456789abcdef_bg.wasm');";

struct Reply {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

async fn get(addr: SocketAddr, path: &str, accept_encoding: Option<&str>) -> Reply {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let encoding = accept_encoding.map(|e| format!("Accept-Encoding: {e}\r\n")).unwrap_or_default();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{encoding}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(20), stream.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.lines();
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect::<HashMap<_, _>>();
    let mut body = raw[split + 4..].to_vec();
    if headers.get("transfer-encoding").is_some_and(|v| v == "chunked") {
        body = dechunk(&body);
    }
    Reply { status, headers, body }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&data[..line_end]).unwrap().trim(), 16).unwrap();
        data = &data[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

fn site() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let index = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\">\
         <link rel=\"modulepreload\" href=\"/app-0123456789abcdef.js\" integrity=\"sha384-x\">\
         <script type=\"module\">{INLINE}</script></head><body></body></html>"
    );
    std::fs::write(dir.path().join("index.html"), index).unwrap();
    std::fs::write(dir.path().join("app-0123456789abcdef.js"), "export default function init() {}").unwrap();
    std::fs::write(dir.path().join("app-0123456789abcdef.js.br"), b"BROTLI").unwrap();
    std::fs::write(dir.path().join("app-0123456789abcdef.js.gz"), b"GZIP").unwrap();
    std::fs::write(dir.path().join("app-0123456789abcdef_bg.wasm"), b"\0asm\x01\0\0\0").unwrap();
    dir
}

async fn start(static_dir: Option<&std::path::Path>, behind_tls: bool) -> relay::Relay {
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        store: relay::StoreKind::Memory,
        static_dir: static_dir.map(|p| p.to_path_buf()),
        behind_tls,
        connect_src: vec!["wss://other-relay.example".into()],
        ..Config::default()
    };
    relay::start(&config).await.unwrap()
}

#[tokio::test]
async fn index_has_strict_csp_with_the_inline_script_hash() {
    let dir = site();
    let relay = start(Some(dir.path()), false).await;
    let reply = get(relay.addr(), "/", None).await;
    assert_eq!(reply.status, 200);
    let csp = &reply.headers["content-security-policy"];
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(INLINE.as_bytes()));
    assert!(csp.contains(&format!("'sha256-{hash}'")), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    for needle in [
        "'wasm-unsafe-eval'",
        "frame-ancestors 'none'",
        "object-src 'none'",
        "base-uri 'none'",
        "connect-src 'self'",
        &format!("ws://{}", relay.addr()),
        &format!("wss://{}", relay.addr()),
        "wss://other-relay.example",
        // The app's service worker (docs/offline.md), from this origin only.
        "worker-src 'self';",
    ] {
        assert!(csp.contains(needle), "missing {needle} in {csp}");
    }
    assert_eq!(reply.headers["cache-control"], "no-cache");
    assert_eq!(reply.headers["referrer-policy"], "no-referrer");
    assert_eq!(reply.headers["x-content-type-options"], "nosniff");
    assert!(reply.headers.contains_key("permissions-policy"));
    assert!(!reply.headers.contains_key("strict-transport-security"));
    assert!(reply.headers["content-type"].starts_with("text/html"));
    relay.shutdown().await;
}

#[tokio::test]
async fn hashed_assets_are_immutable_and_precompressed() {
    let dir = site();
    let relay = start(Some(dir.path()), true).await;
    let addr = relay.addr();

    let br = get(addr, "/app-0123456789abcdef.js", Some("gzip, deflate, br")).await;
    assert_eq!(br.status, 200);
    assert_eq!(br.body, b"BROTLI");
    assert_eq!(br.headers["content-encoding"], "br");
    assert_eq!(br.headers["cache-control"], "public, max-age=31536000, immutable");
    assert!(br.headers["content-type"].starts_with("text/javascript"));
    assert!(br.headers["vary"].to_ascii_lowercase().contains("accept-encoding"));
    assert!(br.headers["strict-transport-security"].contains("max-age="));

    let gz = get(addr, "/app-0123456789abcdef.js", Some("gzip")).await;
    assert_eq!((gz.body.as_slice(), gz.headers["content-encoding"].as_str()), (&b"GZIP"[..], "gzip"));

    let plain = get(addr, "/app-0123456789abcdef.js", None).await;
    assert_eq!(plain.body, b"export default function init() {}");
    assert!(!plain.headers.contains_key("content-encoding"));

    // No precompressed sibling: served plain even when br is accepted.
    let wasm = get(addr, "/app-0123456789abcdef_bg.wasm", Some("br")).await;
    assert_eq!(wasm.headers["content-type"], "application/wasm");
    assert!(!wasm.headers.contains_key("content-encoding"));
    assert_eq!(wasm.headers["cache-control"], "public, max-age=31536000, immutable");
    relay.shutdown().await;
}

#[tokio::test]
async fn app_routes_fall_back_to_index_and_missing_files_are_404() {
    let dir = site();
    let relay = start(Some(dir.path()), false).await;
    let route = get(relay.addr(), "/chat/some-conversation", None).await;
    assert_eq!(route.status, 200);
    assert!(String::from_utf8_lossy(&route.body).contains("<script type=\"module\">"));
    assert_eq!(get(relay.addr(), "/missing-0123.js", None).await.status, 404);
    assert_eq!(get(relay.addr(), "/../Cargo.toml", None).await.status, 404);
    assert_eq!(get(relay.addr(), "/.hidden", None).await.status, 404);
    relay.shutdown().await;
}

#[tokio::test]
async fn health_and_metrics_without_static_dir() {
    let relay = start(None, false).await;
    let health = get(relay.addr(), "/healthz", None).await;
    assert_eq!((health.status, health.body.as_slice()), (200, &b"ok\n"[..]));
    let metrics = get(relay.addr(), "/metrics", None).await;
    assert_eq!(metrics.status, 200);
    let text = String::from_utf8(metrics.body).unwrap();
    assert!(text.contains("# TYPE doorless_connections gauge"));
    assert!(text.contains("doorless_stored_blobs 0"));
    assert_eq!(get(relay.addr(), "/index.html", None).await.status, 404);
    relay.shutdown().await;
}
