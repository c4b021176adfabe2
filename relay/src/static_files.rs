//! Static hosting of the built web app, with strict security headers.
//!
//! At startup `index.html` is read once and the SHA-256 of every inline `<script>` and `<style>` is
//! put in the Content-Security-Policy, so the policy needs no `'unsafe-inline'`. Assets are read
//! per request (a rebuild during development is picked up); a precompressed `.br` or `.gz` sibling is
//! served when the client accepts it.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use sha2::{Digest, Sha256};
use warp::http::{HeaderValue, Response, StatusCode, header};

/// Why the static site could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum StaticError {
    /// `index.html` is missing or unreadable.
    #[error("cannot read index.html in the static directory: {0}")]
    Index(std::io::Error),
    /// An origin given for `connect-src` contains characters a CSP cannot hold.
    #[error("invalid --connect-src value (allowed: scheme://host[:port], no spaces or ';')")]
    BadConnectSrc,
}

/// The loaded web app.
#[derive(Debug, Clone)]
pub struct StaticSite {
    root: PathBuf,
    script_hashes: Vec<String>,
    style_hashes: Vec<String>,
    extra_connect_src: Vec<String>,
}

impl StaticSite {
    /// Reads `root/index.html` and computes the hashes of its inline scripts and styles.
    pub fn load(root: &Path, extra_connect_src: &[String]) -> Result<Self, StaticError> {
        let index = std::fs::read_to_string(root.join("index.html")).map_err(StaticError::Index)?;
        for origin in extra_connect_src {
            if origin.is_empty() || !origin.chars().all(|c| c.is_ascii_graphic() && c != ';' && c != ',') {
                return Err(StaticError::BadConnectSrc);
            }
        }
        Ok(Self {
            root: root.to_path_buf(),
            script_hashes: inline_hashes(&index, "script"),
            style_hashes: inline_hashes(&index, "style"),
            extra_connect_src: extra_connect_src.to_vec(),
        })
    }

    /// Hashes (`'sha256-…'`) of the inline scripts of index.html.
    pub fn script_hashes(&self) -> &[String] {
        &self.script_hashes
    }

    /// The Content-Security-Policy for a request that arrived with this `Host` header.
    pub fn csp(&self, host: Option<&str>) -> String {
        let mut script_src = String::from("'self' 'wasm-unsafe-eval'");
        for hash in &self.script_hashes {
            script_src.push(' ');
            script_src.push_str(hash);
        }
        let mut style_src = String::from("'self'");
        for hash in &self.style_hashes {
            style_src.push(' ');
            style_src.push_str(hash);
        }
        // Any relay over TLS: a contact's mailbox is on the relay they chose (docs/protocol.md §3),
        // and a contact's attachments are read over HTTPS from their home relay (`/blobs`, CORS).
        // Plain WebSocket only to this host, and to loopback when the app itself is served from
        // loopback (relays on several ports of one machine, in development and the browser tests).
        let mut connect_src = String::from("'self' wss: https:");
        if let Some(host) = host.filter(|h| valid_host(h)) {
            connect_src.push_str(&format!(" ws://{host} wss://{host}"));
            if is_loopback(host) {
                connect_src
                    .push_str(" ws://127.0.0.1:* ws://localhost:* http://127.0.0.1:* http://localhost:*");
            }
        }
        for origin in &self.extra_connect_src {
            connect_src.push(' ');
            connect_src.push_str(origin);
        }
        format!(
            "default-src 'none'; script-src {script_src}; style-src {style_src}; img-src 'self' data: blob:; \
             media-src 'self' blob:; font-src 'self'; connect-src {connect_src}; manifest-src 'self'; worker-src 'self'; \
             frame-ancestors 'none'; object-src 'none'; base-uri 'none'; form-action 'none'"
        )
    }

    /// Answers a GET for `path` (the URL path without its leading `/`).
    pub async fn serve(
        &self,
        path: &str,
        accept_encoding: Option<&str>,
        host: Option<&str>,
    ) -> Response<Vec<u8>> {
        let Some(relative) = safe_relative(path) else {
            return plain(StatusCode::NOT_FOUND, "not found");
        };
        let mut file = self.root.join(&relative);
        let mut name = relative.rsplit('/').next().unwrap_or("").to_string();
        let is_file = tokio::fs::metadata(&file).await.map(|m| m.is_file()).unwrap_or(false);
        if !is_file {
            // Paths without an extension are app routes: the app handles them client-side.
            if name.contains('.') {
                return plain(StatusCode::NOT_FOUND, "not found");
            }
            file = self.root.join("index.html");
            name = "index.html".into();
        }
        let (body, encoding) = match read_best(&file, accept_encoding).await {
            Ok(found) => found,
            Err(_) => return plain(StatusCode::NOT_FOUND, "not found"),
        };
        let mut response = Response::new(body);
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(&name)));
        let cache = if name == "index.html" {
            "no-cache"
        } else if is_hashed(&name) {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        };
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
        headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        if let Some(encoding) = encoding {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
        }
        if let Ok(csp) = HeaderValue::from_str(&self.csp(host)) {
            headers.insert(header::CONTENT_SECURITY_POLICY, csp);
        }
        headers.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
        headers.insert("cross-origin-resource-policy", HeaderValue::from_static("same-origin"));
        response
    }
}

fn plain(status: StatusCode, text: &str) -> Response<Vec<u8>> {
    let mut response = Response::new(text.as_bytes().to_vec());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

/// Reads `file`, or its `.br` / `.gz` sibling when the client accepts that encoding.
async fn read_best(
    file: &Path,
    accept_encoding: Option<&str>,
) -> std::io::Result<(Vec<u8>, Option<&'static str>)> {
    for (encoding, suffix) in [("br", "br"), ("gzip", "gz")] {
        if accepts(accept_encoding, encoding) {
            let mut sibling = file.as_os_str().to_owned();
            sibling.push(".");
            sibling.push(suffix);
            if let Ok(body) = tokio::fs::read(PathBuf::from(sibling)).await {
                return Ok((body, Some(encoding)));
            }
        }
    }
    Ok((tokio::fs::read(file).await?, None))
}

/// Whether an `Accept-Encoding` header admits `encoding` (q=0 refuses it).
fn accepts(header: Option<&str>, encoding: &str) -> bool {
    header.is_some_and(|h| {
        h.split(',').any(|item| {
            let mut parts = item.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| {
                let p = p.trim();
                p.strip_prefix("q=").is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q <= 0.0))
            });
            (name.eq_ignore_ascii_case(encoding) || name == "*") && !refused
        })
    })
}

/// A relative path made only of plain segments, or `None` (no `..`, no dot files, no odd bytes).
fn safe_relative(path: &str) -> Option<String> {
    let path = path.trim_start_matches('/');
    if path.is_empty() {
        return Some("index.html".into());
    }
    let mut segments = Vec::new();
    for segment in path.split('/') {
        if segment.is_empty() || segment.starts_with('.') {
            return None;
        }
        if !segment.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '~')) {
            return None;
        }
        segments.push(segment);
    }
    Some(segments.join("/"))
}

/// A Host header value that is safe to put in a CSP: host name or address with an optional port.
/// Whether a `Host` header names the loopback interface (with or without a port).
fn is_loopback(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => return v6.split(']').next() == Some("::1"),
        None => host.split(':').next().unwrap_or_default(),
    };
    name == "127.0.0.1" || name.eq_ignore_ascii_case("localhost")
}

fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
}

/// Trunk names hashed assets `name-<16+ hex digits>[_bg].ext`; those never change and cache forever.
fn is_hashed(name: &str) -> bool {
    name.match_indices('-').any(|(i, _)| {
        let rest = &name[i + 1..];
        rest.chars().take_while(|c| c.is_ascii_hexdigit()).count() >= 16
    })
}

fn content_type(name: &str) -> &'static str {
    let extension = name.rsplit('.').next().unwrap_or("");
    match extension {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "wasm" => "application/wasm",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// `'sha256-…'` of the contents of each inline `<tag>` (one without a `src` attribute).
fn inline_hashes(html: &str, tag: &str) -> Vec<String> {
    let lower = html.to_ascii_lowercase();
    let open = format!("<{tag}");
    let close = format!("</{tag}");
    let mut hashes = Vec::new();
    let mut from = 0;
    while let Some(start) = lower[from..].find(&open).map(|i| i + from) {
        let Some(tag_end) = lower[start..].find('>').map(|i| i + start) else { break };
        let attributes = &lower[start + open.len()..tag_end];
        // `<scripts>` or `<style-x>` are other elements.
        if !attributes.is_empty() && !attributes.starts_with(|c: char| c.is_ascii_whitespace()) {
            from = tag_end;
            continue;
        }
        let Some(end) = lower[tag_end..].find(&close).map(|i| i + tag_end) else { break };
        let has_src = attributes.split_ascii_whitespace().any(|a| a.starts_with("src="));
        if !has_src {
            let content = &html[tag_end + 1..end];
            let digest = Sha256::digest(content.as_bytes());
            hashes.push(format!("'sha256-{}'", base64::engine::general_purpose::STANDARD.encode(digest)));
        }
        from = end;
    }
    hashes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_inline_scripts_only() {
        let html = "<html><head><script type=\"module\">import init from '/app-0123456789abcdef.js';init();</script>\
                    <script src=\"/x.js\"></script><style>body{}</style></head></html>";
        let scripts = inline_hashes(html, "script");
        assert_eq!(scripts.len(), 1);
        let expected = base64::engine::general_purpose::STANDARD
            .encode(Sha256::digest(b"import init from '/app-0123456789abcdef.js';init();"));
        assert_eq!(scripts[0], format!("'sha256-{expected}'"));
        assert_eq!(inline_hashes(html, "style").len(), 1);
    }

    /// The `connect-src` directive of `csp`.
    fn connect_src(csp: &str) -> Vec<&str> {
        let directive = csp.split(';').map(str::trim).find(|d| d.starts_with("connect-src ")).unwrap();
        directive.split_whitespace().skip(1).collect()
    }

    /// A site with no inline scripts or styles and no extra `connect-src`.
    fn bare_site() -> StaticSite {
        StaticSite {
            root: PathBuf::new(),
            script_hashes: Vec::new(),
            style_hashes: Vec::new(),
            extra_connect_src: Vec::new(),
        }
    }

    /// A contact's relay is on another host: the app may open a WebSocket to any relay over TLS,
    /// and in plain `ws:` only to this host or, for loopback development, to loopback.
    #[test]
    fn the_app_may_connect_to_other_relays() {
        let site = bare_site();
        let public = site.csp(Some("relay.example"));
        assert_eq!(
            connect_src(&public),
            ["'self'", "wss:", "https:", "ws://relay.example", "wss://relay.example"]
        );
        let loopback = site.csp(Some("127.0.0.1:8080"));
        let sources = connect_src(&loopback);
        assert!(sources.contains(&"wss:"), "{loopback}");
        // (Not `ws://[::1]:*`: Chromium refuses an IPv6 literal in a CSP source and says so.)
        for other in ["ws://127.0.0.1:*", "ws://localhost:*"] {
            assert!(sources.contains(&other), "missing {other} in {loopback}");
        }
        assert!(!sources.contains(&"ws:"), "plain WebSocket to any host: {loopback}");
        assert_eq!(connect_src(&site.csp(None)), ["'self'", "wss:", "https:"]);
    }

    /// Attachments are read over HTTP from the relay that holds them, on any origin over TLS (and
    /// over plain HTTP only to this host or loopback), and played from `blob:` URLs.
    #[test]
    fn the_app_may_read_attachments_from_other_relays_and_play_them() {
        let site = bare_site();
        let public = site.csp(Some("relay.example"));
        assert!(connect_src(&public).contains(&"https:"), "{public}");
        assert!(!connect_src(&public).contains(&"http:"), "{public}");
        let loopback = site.csp(Some("127.0.0.1:8080"));
        for other in ["http://127.0.0.1:*", "http://localhost:*"] {
            assert!(connect_src(&loopback).contains(&other), "missing {other} in {loopback}");
        }
        assert!(public.split(';').map(str::trim).any(|d| d == "media-src 'self' blob:"), "{public}");
    }

    #[test]
    fn paths_and_names() {
        assert_eq!(safe_relative("").as_deref(), Some("index.html"));
        assert_eq!(safe_relative("a/b.js").as_deref(), Some("a/b.js"));
        assert_eq!(safe_relative("../etc/passwd"), None);
        assert_eq!(safe_relative(".env"), None);
        assert_eq!(safe_relative("a%2f..%2fb"), None);
        assert!(is_hashed("app-3f2a1b0c9d8e7f60_bg.wasm"));
        assert!(!is_hashed("favicon.ico"));
        assert!(!is_hashed("my-app.js"));
        assert!(accepts(Some("gzip, deflate, br"), "br"));
        assert!(!accepts(Some("gzip;q=0, br"), "gzip"));
        assert!(!accepts(None, "gzip"));
        assert!(!valid_host("evil; script-src *"));
    }
}
