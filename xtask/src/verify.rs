//! `cargo xtask verify <url>`: compare a served app with a local build.
//!
//! 1. Fetches the served `index.html` and every asset it links with an `integrity="sha384-…"`
//!    attribute (Trunk's `modulepreload` for the JS glue, `preload` for the wasm, the stylesheet,
//!    the icon), and checks each hash against the bytes served.
//!    It also fetches the service worker (`sw.js`, which browsers keep and run the app from) and
//!    checks that every file it pins is served with the hash it pins.
//! 2. Builds the app locally (`dist::build_web`, the same release build `cargo xtask dist` makes)
//!    and compares `index.html` and every linked asset byte for byte with what was served.
//!
//! `cargo xtask verify --reproducible` instead builds twice from a clean web target directory and
//! compares the two `dist/` trees byte for byte (slow: two cold release builds of the wasm).
//!
//! The HTTP client is `ureq`: a handful of sequential GETs need no async runtime, and it is built
//! without its gzip feature, so it sends no `Accept-Encoding` and the relay serves the identity
//! bytes that the SRI hashes cover.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::dist::{self, SERVICE_WORKER, read_pinned, sri_sha384};
use crate::tools;

/// One `<link>` (or other) tag's attributes, lower-cased names.
type Attributes = BTreeMap<String, String>;

/// The attributes of every `<link …>` tag in `html`. Trunk's minified output leaves many values
/// unquoted (`href=/app.js`), so both quoted and bare values are read.
fn link_tags(html: &str) -> Vec<Attributes> {
    let mut out = Vec::new();
    let lower = html.to_ascii_lowercase();
    let mut from = 0;
    while let Some(at) = lower[from..].find("<link") {
        let start = from + at + "<link".len();
        let Some(len) = html[start..].find('>') else { break };
        out.push(attributes(&html[start..start + len]));
        from = start + len;
    }
    out
}

fn attributes(tag: &str) -> Attributes {
    let mut attrs = Attributes::new();
    let mut rest = tag.trim_start();
    while !rest.is_empty() {
        let name_end = rest.find(|c: char| c == '=' || c.is_whitespace() || c == '/').unwrap_or(rest.len());
        let name = rest[..name_end].to_ascii_lowercase();
        rest = rest[name_end..].trim_start();
        let value = if let Some(after) = rest.strip_prefix('=') {
            let after = after.trim_start();
            let (value, next) = match after.chars().next() {
                Some(q @ ('"' | '\'')) => {
                    let end = after[1..].find(q).map(|e| e + 1).unwrap_or(after.len());
                    (&after[1..end], after.get(end + 1..).unwrap_or(""))
                }
                _ => {
                    let end = after.find(char::is_whitespace).unwrap_or(after.len());
                    (&after[..end], &after[end..])
                }
            };
            rest = next;
            value.to_owned()
        } else {
            if name.is_empty() {
                // A stray `/` (self-closing) or other character: skip it.
                rest = rest.get(1..).unwrap_or("");
                continue;
            }
            String::new()
        };
        if !name.is_empty() {
            attrs.insert(name, value);
        }
        rest = rest.trim_start();
    }
    attrs
}

/// Whether an `integrity` attribute (possibly several space-separated hashes) admits `bytes`.
fn integrity_matches(integrity: &str, bytes: &[u8]) -> bool {
    let ours = sri_sha384(bytes);
    integrity.split_whitespace().any(|h| h.split('?').next() == Some(ours.as_str()))
}

fn get(url: &str) -> Result<Vec<u8>> {
    let mut response = ureq::get(url).call().with_context(|| format!("GET {url}"))?;
    let bytes = response.body_mut().with_config().limit(64 * 1024 * 1024).read_to_vec()?;
    Ok(bytes)
}

/// A local path for an asset's `href` (`/name.js` → `dist/name.js`); `None` for anything that is
/// not a plain file name at the root.
fn local_name(href: &str) -> Option<&str> {
    let name = href.strip_prefix('/').unwrap_or(href);
    (!name.is_empty() && !name.contains(['/', '?', '#', ':']) && !name.starts_with('.')).then_some(name)
}

/// What the served app was compared with, and the outcome.
struct Finding {
    file: String,
    sri: &'static str,
    local: String,
}

fn describe_difference(served: &[u8], local: &[u8]) -> String {
    let first = served.iter().zip(local).position(|(a, b)| a != b).unwrap_or(served.len().min(local.len()));
    format!(
        "DIFFERS (served {} bytes, local {} bytes, first difference at byte {first})",
        served.len(),
        local.len()
    )
}

/// Fetches the service worker and checks each file it pins against the served bytes (fetching
/// those not linked from index.html). Returns the worker's bytes and the number of problems.
fn check_worker(base: &str, served: &mut Vec<(String, Vec<u8>, &'static str)>) -> Result<(Vec<u8>, usize)> {
    let worker = get(&format!("{base}/{SERVICE_WORKER}")).context("fetching the service worker")?;
    let pinned = read_pinned(&String::from_utf8_lossy(&worker));
    if pinned.is_empty() {
        bail!("the served {SERVICE_WORKER} pins no file: not a build of this version of Doorless?");
    }
    let mut problems = 0;
    for (path, hash) in pinned {
        let Some(name) = local_name(&path) else {
            problems += 1;
            println!("  the worker pins {path}: not a plain file name");
            continue;
        };
        let bytes = match served.iter().find(|(n, ..)| n == name) {
            Some((_, bytes, _)) => bytes.clone(),
            None => {
                let bytes = get(&format!("{base}/{name}"))?;
                served.push((name.to_owned(), bytes.clone(), "(pinned by the worker only)"));
                bytes
            }
        };
        if sri_sha384(&bytes) != hash {
            problems += 1;
            println!("  the worker pins {name} with another hash than the served file's");
        }
    }
    Ok((worker, problems))
}

/// Fetches the served app and compares it with a local release build.
pub fn verify(root: &Path, url: &str) -> Result<()> {
    let base = url.trim_end_matches('/');
    let index = get(&format!("{base}/")).context("fetching index.html")?;
    let html = String::from_utf8_lossy(&index).into_owned();
    let links: Vec<Attributes> = link_tags(&html).into_iter().filter(|a| a.contains_key("href")).collect();
    if links.iter().all(|l| !l.contains_key("integrity")) {
        bail!(
            "the served index.html links no asset with an integrity attribute: not a Trunk build of Doorless?"
        );
    }

    let mut served = vec![("index.html".to_owned(), index.clone(), "(none: the entry point)")];
    let mut problems = 0;
    for link in &links {
        let href = &link["href"];
        let Some(name) = local_name(href) else {
            println!("  skipped link {href}: not a file at the site root");
            continue;
        };
        let bytes = get(&format!("{base}/{name}"))?;
        let sri = match link.get("integrity") {
            Some(integrity) if integrity_matches(integrity, &bytes) => "matches",
            Some(_) => {
                problems += 1;
                "MISMATCH"
            }
            None => "(no integrity attribute)",
        };
        served.push((name.to_owned(), bytes, sri));
    }
    let (worker, problem) = check_worker(base, &mut served)?;
    problems += problem;
    let pins = if problem == 0 { "its pins match" } else { "PIN MISMATCH" };
    served.push((SERVICE_WORKER.to_owned(), worker, pins));

    eprintln!("building the app locally to compare (release, as `cargo xtask dist`)…");
    let toolset = tools::ensure_web_tools(root)?;
    let dist = dist::build_web(root, &toolset)?;

    let mut findings = Vec::new();
    for (name, bytes, sri) in &served {
        let local = std::fs::read(dist.join(name)).ok();
        let local = match local {
            Some(l) if l == *bytes => "identical".to_owned(),
            Some(l) => {
                problems += 1;
                describe_difference(bytes, &l)
            }
            None => {
                problems += 1;
                "MISSING from the local build".to_owned()
            }
        };
        findings.push(Finding { file: name.clone(), sri, local });
    }

    println!("Served app at {base} compared with a local build ({}):", dist.display());
    println!("{:<36} {:<26} local build", "file", "served SRI hash");
    for f in &findings {
        println!("{:<36} {:<26} {}", f.file, f.sri, f.local);
    }
    if problems > 0 {
        bail!("{problems} difference(s): the served app is not this checkout's build");
    }
    println!("MATCH: every served file is byte-identical to the local build and its SRI hash holds.");
    Ok(())
}

fn snapshot(dir: &Path) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_file() {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            files.insert(name, std::fs::read(&path)?);
        }
    }
    Ok(files)
}

/// Two clean release builds must give the same bytes for every file of `dist/`.
pub fn reproducible(root: &Path) -> Result<()> {
    let toolset = tools::ensure_web_tools(root)?;
    let web_target: PathBuf = root.join("target/web");
    let mut builds = Vec::new();
    for round in 1..=2 {
        eprintln!("clean build {round} of 2 (removing {})", web_target.display());
        if web_target.exists() {
            std::fs::remove_dir_all(&web_target)?;
        }
        let dist = dist::build_web(root, &toolset)?;
        builds.push(snapshot(&dist)?);
    }
    let (a, b) = (&builds[0], &builds[1]);
    let mut problems = 0;
    println!("{:<40} result", "file");
    for name in a.keys().chain(b.keys().filter(|k| !a.contains_key(*k))) {
        let result = match (a.get(name), b.get(name)) {
            (Some(x), Some(y)) if x == y => format!("identical ({} bytes, {})", x.len(), sri_sha384(x)),
            (Some(x), Some(y)) => {
                problems += 1;
                describe_difference(x, y)
            }
            _ => {
                problems += 1;
                "only in one build".to_owned()
            }
        };
        println!("{name:<40} {result}");
    }
    if problems > 0 {
        bail!("{problems} file(s) differ between two clean builds");
    }
    println!("REPRODUCIBLE: two clean builds gave byte-identical files.");
    Ok(())
}

/// `cargo xtask verify [--reproducible] [<url>]`.
pub fn command(root: &Path, url: Option<&str>, reproducible_only: bool) -> Result<()> {
    match (url, reproducible_only) {
        (_, true) => reproducible(root),
        (Some(url), false) => verify(root, url),
        (None, false) => bail!("give the relay's URL, or --reproducible"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRUNK_INDEX: &str = "<!doctype html><html lang=en><title>Doorless</title>\
        <link href=/style-1a.css integrity=sha384-AAAA rel=stylesheet>\
        <script type=module>import init from '/web-9.js';</script>\
        <link crossorigin href=/web-9.js integrity=sha384-BBBB rel=modulepreload>\
        <link as=fetch crossorigin href=\"/web-9_bg.wasm\" integrity='sha384-CC CC' rel=preload type=application/wasm>";

    #[test]
    fn reads_trunk_links_with_and_without_quotes() {
        let links = link_tags(TRUNK_INDEX);
        assert_eq!(links.len(), 3);
        assert_eq!(links[1]["href"], "/web-9.js");
        assert_eq!(links[1]["rel"], "modulepreload");
        assert_eq!(links[1]["integrity"], "sha384-BBBB");
        assert!(links[1].contains_key("crossorigin"));
        assert_eq!(links[2]["href"], "/web-9_bg.wasm");
        assert_eq!(links[2]["integrity"], "sha384-CC CC");
        assert_eq!(links[2]["type"], "application/wasm");
    }

    #[test]
    fn sri_hash_of_a_known_input() {
        // `printf abc | openssl dgst -sha384 -binary | base64`
        assert_eq!(
            sri_sha384(b"abc"),
            "sha384-ywB1P0WjXou1oD1pmsZQBycsMqsO3tFjGotgWkP/W+2AhgcroefMI1i67KE0yCWn"
        );
        assert!(integrity_matches(
            "sha256-x sha384-ywB1P0WjXou1oD1pmsZQBycsMqsO3tFjGotgWkP/W+2AhgcroefMI1i67KE0yCWn",
            b"abc"
        ));
        assert!(!integrity_matches(
            "sha384-ywB1P0WjXou1oD1pmsZQBycsMqsO3tFjGotgWkP/W+2AhgcroefMI1i67KE0yCWn",
            b"abd"
        ));
    }

    #[test]
    fn only_plain_root_files_are_fetched() {
        assert_eq!(local_name("/web-9.js"), Some("web-9.js"));
        assert_eq!(local_name("/../etc/passwd"), None);
        assert_eq!(local_name("https://cdn.example/x.js"), None);
        assert_eq!(local_name("/"), None);
    }
}
