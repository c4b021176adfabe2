//! What the relay left on disk and in its logs, read back as an operator served with a court order
//! would: every byte of the data directory, the store's tables, and the captured logs.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use base64::Engine as _;
use client_wasm::core::{INITIAL_ENVELOPE_SIZES, MESSAGE_ENVELOPE_SIZES};
use redb::{
    ReadOnlyDatabase, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, TableHandle,
};

use super::conversation::Transcript;

// The relay's tables, as documented in relay/src/store/redb.rs. A change of layout makes these
// opens fail, and an extra table is reported as unknown: either way the drill has to be reviewed.
const PAYLOADS: TableDefinition<u64, &[u8]> = TableDefinition::new("payloads");
const INDEX: TableDefinition<&[u8; 40], [u64; 3]> = TableDefinition::new("index");
const EXPIRIES: TableDefinition<u128, &[u8; 40]> = TableDefinition::new("expiries");
const MAILBOXES: TableDefinition<&[u8; 32], [u64; 4]> = TableDefinition::new("mailboxes");
const KNOWN_TABLES: [&str; 4] = ["payloads", "index", "expiries", "mailboxes"];

/// Everything found, and every problem: a problem is anything identifying.
#[derive(Default)]
pub struct Evidence {
    /// The human-readable report.
    pub report: Vec<String>,
    /// What must not be there but is (empty when the drill passes).
    pub problems: Vec<String>,
    /// Blobs in the store (the undelivered ciphertext).
    pub stored_blobs: usize,
    /// Log lines captured.
    pub log_lines: usize,
    /// The mailbox ids the store holds.
    pub mailbox_ids: Vec<[u8; 32]>,
}

impl Evidence {
    pub(super) fn line(&mut self, text: impl Into<String>) {
        self.report.push(text.into());
    }
    pub(super) fn problem(&mut self, text: impl Into<String>) {
        let text = text.into();
        self.report.push(format!("  PROBLEM: {text}"));
        self.problems.push(text);
    }
}

/// One thing searched for, in every form it could be written in.
struct Needle {
    label: String,
    forms: Vec<(&'static str, Vec<u8>)>,
}

impl Needle {
    /// Text: as UTF-8, UTF-16LE, hex and base64 of its bytes.
    fn text(label: String, text: &str) -> Self {
        let mut needle = Self::bytes(label, text.as_bytes());
        needle.forms.insert(0, ("UTF-8", text.as_bytes().to_vec()));
        needle.forms.push(("UTF-16LE", text.encode_utf16().flat_map(u16::to_le_bytes).collect()));
        needle
    }

    /// Bytes: raw, hex (both cases), base64 (standard and URL-safe, unpadded).
    fn bytes(label: String, bytes: &[u8]) -> Self {
        let b64 = base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes);
        let b64url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        Self {
            label,
            forms: vec![
                ("raw", bytes.to_vec()),
                ("hex", hex::encode(bytes).into_bytes()),
                ("HEX", hex::encode_upper(bytes).into_bytes()),
                ("base64", b64.into_bytes()),
                ("base64url", b64url.into_bytes()),
            ],
        }
    }

    /// An IP address: text, and binary in both byte orders (and IPv4-mapped IPv6 for IPv4).
    fn ip(label: String, ip: IpAddr) -> Self {
        let mut forms = vec![("text", ip.to_string().into_bytes())];
        match ip {
            IpAddr::V4(v4) => {
                forms.push(("4 bytes, network order", v4.octets().to_vec()));
                let mut le = v4.octets();
                le.reverse();
                forms.push(("4 bytes, little-endian", le.to_vec()));
                forms.push(("IPv4-mapped IPv6 text", format!("::ffff:{v4}").into_bytes()));
                forms.push(("hex", hex::encode(v4.octets()).into_bytes()));
            }
            IpAddr::V6(v6) => forms.push(("16 bytes", v6.octets().to_vec())),
        }
        Self { label, forms }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || needle.len() > haystack.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn files_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            out.extend(files_under(&path)?);
        } else {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn short(bytes: &[u8]) -> String {
    format!("{}…", hex::encode(&bytes[..bytes.len().min(6)]))
}

/// Bits of entropy per byte of the byte histogram: near 8 for ciphertext, far lower for text.
fn entropy(bytes: &[u8]) -> f64 {
    let mut counts = [0u32; 256];
    for b in bytes {
        counts[usize::from(*b)] += 1;
    }
    let n = bytes.len() as f64;
    counts.iter().filter(|c| **c > 0).map(|c| f64::from(*c) / n).map(|p| -p * p.log2()).sum()
}

/// Lists the store's tables and what each row holds; returns the mailbox ids found.
fn dump_store(store: &Path, ev: &mut Evidence) -> Result<Vec<[u8; 32]>> {
    let db = ReadOnlyDatabase::open(store).context("opening the relay's store read-only")?;
    let read = db.begin_read()?;
    let now = now_ms();
    let mut mailbox_ids = Vec::new();

    for table in read.list_tables()? {
        if !KNOWN_TABLES.contains(&table.name()) {
            ev.problem(format!("unknown table `{}`: review what it stores", table.name()));
        }
    }
    let sizes: Vec<usize> =
        MESSAGE_ENVELOPE_SIZES.iter().chain(INITIAL_ENVELOPE_SIZES.iter()).copied().collect();

    let payloads = read.open_table(PAYLOADS)?;
    ev.line(format!(
        "  table `payloads`, {} row(s): key = store-wide number (u64); value = payload",
        payloads.len()?
    ));
    for row in payloads.iter()? {
        let (number, payload) = row?;
        let payload = payload.value();
        let bucket = if sizes.contains(&payload.len()) { "a padding size" } else { "NOT a padding size" };
        ev.line(format!(
            "    number {}: payload {} bytes ({bucket}), {:.2} bits/byte",
            number.value(),
            payload.len(),
            entropy(payload),
        ));
        if !sizes.contains(&payload.len()) {
            ev.problem(format!(
                "a stored payload of {} bytes is not one of the padding sizes",
                payload.len()
            ));
        }
        ev.stored_blobs += 1;
    }

    let index = read.open_table(INDEX)?;
    ev.line(format!(
        "  table `index`, {} row(s): key = mailbox id (32 bytes) || seq (u64); value = [number, expiry (ms), payload length]",
        index.len()?
    ));
    for row in index.iter()? {
        let (key, value) = row?;
        let key = key.value();
        let seq = u64::from_be_bytes(key[32..40].try_into()?);
        let [number, expires, len] = value.value();
        ev.line(format!(
            "    mailbox {} seq {seq}: number {number}, expires in {:.1} days, {len} bytes",
            short(&key[..32]),
            expires.saturating_sub(now) as f64 / 86_400_000.0,
        ));
    }

    let expiries = read.open_table(EXPIRIES)?;
    ev.line(format!(
        "  table `expiries`, {} row(s): key = expiry (ms) << 64 | number; value = mailbox id || seq",
        expiries.len()?
    ));

    let metas = read.open_table(MAILBOXES)?;
    ev.line(format!(
        "  table `mailboxes`, {} row(s): key = mailbox id; value = [next seq, blobs, bytes, last used (ms)]",
        metas.len()?
    ));
    for row in metas.iter()? {
        let (key, value) = row?;
        let [next_seq, count, bytes, touched] = value.value();
        ev.line(format!(
            "    mailbox {}: next seq {next_seq}, {count} blob(s), {bytes} bytes, last used {:.0} s ago",
            short(key.value()),
            now.saturating_sub(touched) as f64 / 1000.0,
        ));
        mailbox_ids.push(*key.value());
    }
    Ok(mailbox_ids)
}

/// Reads the data directory and the logs and checks them against what the clients know.
pub fn examine(
    data_dir: &Path,
    logs: &[(String, Vec<u8>)],
    relay_listen: SocketAddr,
    t: &Transcript,
) -> Result<Evidence> {
    let mut ev = Evidence::default();

    ev.line("Data directory:");
    let files = read_files(data_dir, &mut ev)?;
    let store = data_dir.join("relay.redb");
    let mailbox_ids = if store.exists() {
        ev.line("Store contents (read-only):");
        dump_store(&store, &mut ev)?
    } else {
        ev.problem("no relay.redb in the data directory: the drill examined nothing");
        Vec::new()
    };
    search(&mut ev, &files, logs, relay_listen, t, &mailbox_ids);
    ev.mailbox_ids = mailbox_ids;
    // Not a failure (it is ciphertext), but part of what an operator could hand over: how many of
    // the deposits, delivered and acknowledged or not, are still readable somewhere in the files.
    let readable = readable_deposits(&files, t);
    ev.line(format!(
        "Ciphertext residue: {readable} of the {} deposited payload(s) are readable in the data directory; \
         {} of them stored as undelivered, {} deleted after delivery but still in pages not yet reused.",
        t.deposits.len(),
        ev.stored_blobs,
        readable.saturating_sub(ev.stored_blobs)
    ));
    Ok(ev)
}

/// Every file under `dir`, named relative to it, listed in the report.
pub fn read_files(dir: &Path, ev: &mut Evidence) -> Result<Vec<(String, Vec<u8>)>> {
    let mut files = Vec::new();
    for path in files_under(dir)? {
        let bytes = std::fs::read(&path)?;
        let name = path.strip_prefix(dir).unwrap_or(&path).display().to_string();
        ev.line(format!("  {name}: {} bytes", bytes.len()));
        files.push((name, bytes));
    }
    Ok(files)
}

/// Where `bytes` occur in `places` (name, contents), in any form it could be written in (raw, hex,
/// base64): "FORM in NAME at byte N".
pub fn occurrences(places: &[(String, Vec<u8>)], bytes: &[u8]) -> Vec<String> {
    let needle = Needle::bytes(String::new(), bytes);
    let mut hits = Vec::new();
    for (place, haystack) in places {
        for (form, pattern) in &needle.forms {
            if let Some(at) = find(haystack, pattern) {
                hits.push(format!("{form} in {place} at byte {at}"));
            }
        }
    }
    hits
}

/// A mailbox id, shortened for the report.
pub fn short_id(id: &[u8; 32]) -> String {
    short(id)
}

/// How many of the deposited payloads are readable somewhere in `files`.
pub fn readable_deposits(files: &[(String, Vec<u8>)], t: &Transcript) -> usize {
    t.deposits.iter().filter(|d| files.iter().any(|(_, bytes)| find(bytes, d).is_some())).count()
}

/// Searches `files` (what the operator holds) and the logs for anything identifying, and the logs
/// also for the mailbox ids and ciphertexts.
pub fn search(
    ev: &mut Evidence,
    files: &[(String, Vec<u8>)],
    logs: &[(String, Vec<u8>)],
    relay_listen: SocketAddr,
    t: &Transcript,
    mailbox_ids: &[[u8; 32]],
) {
    ev.line("Logs at the default level:");
    for (name, bytes) in logs {
        let text = String::from_utf8_lossy(bytes);
        for line in text.lines() {
            ev.line(format!("  [{name}] {line}"));
            ev.log_lines += 1;
        }
    }

    // The relay announces its own listen address (operator configuration, not a person's).
    // Blank that exact string in the logs, so that what remains is checked for client addresses.
    let own = relay_listen.to_string().into_bytes();
    let logs: Vec<(String, Vec<u8>)> = logs
        .iter()
        .map(|(name, bytes)| {
            let mut bytes = bytes.clone();
            while let Some(at) = find(&bytes, &own) {
                bytes.splice(at..at + own.len(), std::iter::repeat_n(b'#', own.len()));
            }
            (name.clone(), bytes)
        })
        .collect();

    let mut needles = Vec::new();
    for text in &t.texts {
        needles.push(Needle::text(format!("plaintext {text:?}"), text));
    }
    for name in &t.names {
        needles.push(Needle::text(format!("display name {name:?}"), name));
    }
    for (label, key) in &t.identity_keys {
        needles.push(Needle::bytes(label.clone(), key));
    }
    let mut client_ips: Vec<IpAddr> = t.client_addrs.iter().map(SocketAddr::ip).collect();
    client_ips.dedup();
    for ip in client_ips {
        needles.push(Needle::ip(format!("client address {ip}"), ip));
    }
    for addr in &t.client_addrs {
        // The client's port is only searched for next to its address (a bare number is too short).
        needles.push(Needle::text(format!("client address and port {addr}"), &addr.to_string()));
    }
    let log_only: Vec<Needle> = mailbox_ids
        .iter()
        .map(|id| Needle::bytes(format!("mailbox id {}", short(id)), id))
        .chain(t.deposits.iter().map(|d| Needle::bytes(format!("ciphertext {}", short(d)), d)))
        .collect();

    ev.line("Searched the data directory and the logs for:");
    let places: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .chain(logs.iter().map(|(n, b)| (n.as_str(), b.as_slice())))
        .collect();
    for needle in &needles {
        let mut hits = Vec::new();
        for (place, bytes) in &places {
            for (form, pattern) in &needle.forms {
                if let Some(at) = find(bytes, pattern) {
                    hits.push(format!("{form} in {place} at byte {at}"));
                }
            }
        }
        if hits.is_empty() {
            ev.line(format!("  {:<48} not found", needle.label));
        } else {
            ev.problem(format!("{} found: {}", needle.label, hits.join("; ")));
        }
    }
    ev.line(format!(
        "Searched the logs for the {} mailbox id(s) and {} ciphertext(s):",
        mailbox_ids.len(),
        t.deposits.len()
    ));
    let mut log_hits = 0;
    for needle in &log_only {
        for (place, bytes) in &logs {
            for (form, pattern) in &needle.forms {
                if find(bytes, pattern).is_some() {
                    ev.problem(format!("{} in the logs ({form}, {place})", needle.label));
                    log_hits += 1;
                }
            }
        }
    }
    if log_hits == 0 {
        ev.line("  none found");
    }
}
