//! Sending and receiving files (issue 14): the sealed segments go over HTTP to the sender's home
//! relay (`http.rs`), never over the WebSocket; only the attachment message goes through the engine.
//!
//! Memory stays bounded whatever the file's size: the upload reads the `File` one segment at a time
//! with `slice` and keeps at most [`UPLOADS_IN_FLIGHT`] segments in flight; the download verifies,
//! opens and writes each segment into the Origin Private File System as a file of its own, keeping
//! at most [`DOWNLOADS_AHEAD`] segments fetched ahead; the saved parts are the resume point after a
//! reload, and the whole file is a `Blob` of those parts (backed by the disk, not copied). This
//! runs on the page's thread for now, not in a worker.

mod http;

use client_wasm::core::attachment::{
    AttachmentSecret, Layout, SegmentCipher, check_segment, check_segment_hashes, digest, segment_hash,
};
use client_wasm::core::attachment_ref::{normalize_mime, sanitize_file_name};
use client_wasm::core::content::AttachmentRef;
use futures_util::{StreamExt, TryStreamExt};
use js_sys::Uint8Array;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortSignal, FileSystemDirectoryHandle, FileSystemFileHandle, FileSystemWritableFileStream};

use http::Blob;

/// Segments uploaded at once.
pub const UPLOADS_IN_FLIGHT: usize = 3;
/// Segments fetched ahead of the one being written.
pub const DOWNLOADS_AHEAD: usize = 2;
/// Attempts per request before a passing failure (network, relay busy) is reported.
const ATTEMPTS: u32 = 4;
/// Image, audio and video types shown inline; every other file is offered as
/// `application/octet-stream` only (issue 14, "Safety").
const INLINE_TYPES: [&str; 12] = [
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "image/avif",
    "audio/mpeg",
    "audio/ogg",
    "audio/wav",
    "audio/webm",
    "video/mp4",
    "video/webm",
    "video/ogg",
];

/// Why a transfer stopped. The text says which of network, integrity, expired, quota or storage
/// full happened, and nothing about the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    /// The relay could not be reached (or stayed busy) after several attempts.
    #[error("Network error: the relay could not be reached. Try again later.")]
    Network,
    /// The relay was busy or had a passing failure (retried; reported as [`Self::Network`]).
    #[error("Network error: the relay is busy. Try again later.")]
    Busy,
    /// A segment or the list of segments does not match the message: changed on the way.
    #[error("Integrity error: the file was changed on the way, so it was not saved.")]
    Integrity,
    /// The relay no longer has the blob (expired, cancelled, or never there).
    #[error("Expired: the relay no longer has this file.")]
    Expired,
    /// The relay has no room for the file now.
    #[error("Quota: the relay has no room for this file now.")]
    Quota,
    /// The file is larger than the relay (or the format) allows.
    #[error("The file is too large to send (at most 1 GiB).")]
    TooLarge,
    /// This browser's storage is full.
    #[error("Storage full: this browser has no room to save the file.")]
    StorageFull,
    /// This browser's storage could not be used.
    #[error("Storage error: this browser could not save the file.")]
    Storage,
    /// The relay gave an answer this version does not expect.
    #[error("The relay refused the transfer.")]
    Refused,
    /// The person pressed Cancel.
    #[error("Cancelled.")]
    Cancelled,
}

impl TransferError {
    /// The error for a relay's answer (status and `error` name, docs/relay-protocol.md).
    fn from_answer(status: u16, name: &str) -> Self {
        match (status, name) {
            (404, _) => Self::Expired,
            (413, _) => Self::TooLarge,
            (507, _) => Self::Quota,
            (429 | 500 | 503, _) | (409, "segment_busy") | (400, "body_aborted") | (422, "hash_mismatch") => {
                Self::Busy
            }
            _ => Self::Refused,
        }
    }

    fn passing(self) -> bool {
        matches!(self, Self::Network | Self::Busy)
    }

    fn settled(self) -> Self {
        if self == Self::Busy { Self::Network } else { self }
    }
}

/// Runs `attempt` until it succeeds, fails for good, or [`ATTEMPTS`] passing failures happened.
async fn retried<T, F: std::future::Future<Output = Result<T, TransferError>>>(
    mut attempt: impl FnMut() -> F,
) -> Result<T, TransferError> {
    let mut tries = 0;
    loop {
        match attempt().await {
            Err(e) if e.passing() && tries + 1 < ATTEMPTS => {
                tries += 1;
                http::pause(300 * tries as i32).await;
            }
            result => return result.map_err(TransferError::settled),
        }
    }
}

/// The name and type a picked file is sent under.
pub fn describe(file: &web_sys::File) -> (String, String) {
    (sanitize_file_name(&file.name()), normalize_mime(&file.type_()))
}

/// The type a received file is offered as: its own if it is on the inline allow-list, else
/// `application/octet-stream`.
pub fn offered_type(mime: &str) -> &str {
    if INLINE_TYPES.contains(&mime) { mime } else { "application/octet-stream" }
}

async fn read_slice(file: &web_sys::File, start: u64, end: u64) -> Result<Vec<u8>, TransferError> {
    let slice = file.slice_with_f64_and_f64(start as f64, end as f64).map_err(|_| TransferError::Storage)?;
    let buffer = JsFuture::from(slice.array_buffer()).await.map_err(|_| TransferError::Storage)?;
    Ok(Uint8Array::new(&buffer).to_vec())
}

/// Encrypts `file` and uploads it to the relay at `origin`, segment by segment; `progress` gets
/// the bytes of the file sent so far. Returns the message to send. On failure or cancel the blob is
/// deleted from the relay.
pub async fn upload(
    file: &web_sys::File,
    origin: &str,
    signal: &AbortSignal,
    progress: impl Fn(u64),
) -> Result<AttachmentRef, TransferError> {
    let len = file.size() as u64;
    let layout = Layout::new(len).map_err(|_| TransferError::TooLarge)?;
    let (name, mime) = describe(file);
    let secret = AttachmentSecret::generate(&mut client_wasm::browser::rng());
    let cipher = SegmentCipher::new(&secret, layout);
    let created = retried(|| http::create(origin, layout.segments(), layout.sealed_len(), signal)).await?;
    let blob = Blob { origin, id: &created.id, capability: &created.write, signal };
    let sent = std::cell::Cell::new(0u64);
    let result = async {
        let hashes: Vec<[u8; 32]> = futures_util::stream::iter(0..layout.segments())
            .map(|index| {
                let (cipher, blob, sent, progress) = (&cipher, &blob, &sent, &progress);
                async move {
                    let range = layout.file_range(index).map_err(|_| TransferError::Refused)?;
                    let data = read_slice(file, range.start, range.end).await?;
                    let sealed = cipher.seal_segment(index, &data).map_err(|_| TransferError::Refused)?;
                    drop(data);
                    let hash = segment_hash(&sealed);
                    retried(|| blob.put(index, &sealed, &hash)).await?;
                    sent.set(sent.get() + (range.end - range.start));
                    progress(sent.get());
                    Ok::<_, TransferError>(hash)
                }
            })
            .buffered(UPLOADS_IN_FLIGHT)
            .try_collect()
            .await?;
        let expires = retried(|| blob.complete()).await?;
        Ok(AttachmentRef {
            relay: origin.to_owned(),
            blob: created.id,
            read: created.read,
            key: *secret.key(),
            nonce: *secret.nonce(),
            len,
            padded: layout.padded(),
            digest: digest(&hashes),
            mime,
            name,
            thumbnail: Vec::new(),
            expires,
        })
    }
    .await;
    if result.is_err() {
        // Frees the relay's reservation; a failure here leaves it to expire.
        let _ = Blob::cancel(origin, &created.id, &created.write).await;
    }
    result
}

fn storage_error(error: JsValue) -> TransferError {
    let name = error.dyn_ref::<web_sys::DomException>().map(|e| e.name()).unwrap_or_default();
    if name == "QuotaExceededError" { TransferError::StorageFull } else { TransferError::Storage }
}

/// This origin's private directory for the file with this blob id (created if need be).
async fn opfs_dir(name: &str) -> Result<FileSystemDirectoryHandle, TransferError> {
    let storage = gloo::utils::window().navigator().storage();
    // Asks that saved files are not evicted under storage pressure; the answer changes nothing here.
    if let Ok(persist) = storage.persist() {
        let _ = JsFuture::from(persist).await;
    }
    let root: FileSystemDirectoryHandle = JsFuture::from(storage.get_directory())
        .await
        .map_err(storage_error)?
        .dyn_into()
        .map_err(|_| TransferError::Storage)?;
    let options = web_sys::FileSystemGetDirectoryOptions::new();
    options.set_create(true);
    JsFuture::from(root.get_directory_handle_with_options(name, &options))
        .await
        .map_err(storage_error)?
        .dyn_into()
        .map_err(|_| TransferError::Storage)
}

/// The saved part `index` if it is there whole (`len` bytes). A part is written and committed in
/// one go, so a part that exists is complete unless its length says otherwise.
async fn saved_part(dir: &FileSystemDirectoryHandle, index: u32, len: u64) -> Option<web_sys::File> {
    let handle: FileSystemFileHandle =
        JsFuture::from(dir.get_file_handle(&index.to_string())).await.ok()?.dyn_into().ok()?;
    let file: web_sys::File = JsFuture::from(handle.get_file()).await.ok()?.dyn_into().ok()?;
    (file.size() as u64 == len).then_some(file)
}

/// Writes part `index` and commits it (the write becomes visible only when the stream closes).
async fn save_part(
    dir: &FileSystemDirectoryHandle,
    index: u32,
    data: &[u8],
) -> Result<web_sys::File, TransferError> {
    let options = web_sys::FileSystemGetFileOptions::new();
    options.set_create(true);
    let handle: FileSystemFileHandle =
        promise(Ok(dir.get_file_handle_with_options(&index.to_string(), &options)))
            .await?
            .dyn_into()
            .map_err(|_| TransferError::Storage)?;
    let writable: FileSystemWritableFileStream =
        promise(Ok(handle.create_writable())).await?.dyn_into().map_err(|_| TransferError::Storage)?;
    let written = async {
        promise(writable.write_with_u8_array(data)).await?;
        promise(Ok(writable.close())).await
    }
    .await;
    if let Err(error) = written {
        let _ = JsFuture::from(writable.abort()).await;
        return Err(error);
    }
    promise(Ok(handle.get_file())).await?.dyn_into().map_err(|_| TransferError::Storage)
}

async fn promise(p: Result<js_sys::Promise, JsValue>) -> Result<JsValue, TransferError> {
    JsFuture::from(p.map_err(storage_error)?).await.map_err(storage_error)
}

/// Fetches segment `index`, checks it against its listed hash (once more if it does not match: a
/// broken transfer, before calling it an integrity error) and opens it.
async fn fetch_segment(
    blob: &Blob<'_>,
    cipher: &SegmentCipher,
    hashes: &[[u8; 32]],
    index: u32,
) -> Result<Vec<u8>, TransferError> {
    let expected = hashes.get(index as usize).ok_or(TransferError::Integrity)?;
    for _ in 0..2 {
        let sealed = retried(|| blob.get(index)).await?;
        if check_segment(&sealed, expected).is_ok() {
            return cipher.open_segment(index, &sealed).map_err(|_| TransferError::Integrity);
        }
    }
    Err(TransferError::Integrity)
}

/// Downloads, verifies and decrypts `attachment` into this origin's private file system, one file
/// per segment (`download-<blob id>/<index>`), so a download that stopped (a reload, a lost
/// connection, Cancel) resumes with the first segment not saved; returns the whole file as a blob of
/// those parts, typed `content_type`. `progress` gets the bytes of the file saved so far.
pub async fn download(
    attachment: &AttachmentRef,
    content_type: &str,
    signal: &AbortSignal,
    progress: impl Fn(u64),
) -> Result<web_sys::Blob, TransferError> {
    let layout = attachment.layout().map_err(|_| TransferError::Integrity)?;
    let dir = opfs_dir(&format!("download-{}", hex::encode(attachment.blob))).await?;
    let part_len = |index: u32| layout.file_range(index).map(|r| r.end - r.start).unwrap_or_default();
    let mut parts: Vec<Option<web_sys::File>> = Vec::with_capacity(layout.segments() as usize);
    for index in 0..layout.segments() {
        parts.push(saved_part(&dir, index, part_len(index)).await);
    }
    let missing: Vec<u32> = (0..layout.segments()).filter(|&i| parts[i as usize].is_none()).collect();
    let mut saved: u64 = (0..layout.segments()).filter(|&i| parts[i as usize].is_some()).map(part_len).sum();
    progress(saved);
    if !missing.is_empty() {
        let blob =
            Blob { origin: &attachment.relay, id: &attachment.blob, capability: &attachment.read, signal };
        let hashes = retried(|| blob.hashes()).await?;
        check_segment_hashes(&layout, &hashes, &attachment.digest).map_err(|_| TransferError::Integrity)?;
        let cipher = SegmentCipher::new(&attachment.secret(), layout);
        let mut segments = futures_util::stream::iter(missing)
            .map(|index| {
                let (blob, cipher, hashes) = (&blob, &cipher, &hashes);
                async move { fetch_segment(blob, cipher, hashes, index).await.map(|data| (index, data)) }
            })
            .buffered(DOWNLOADS_AHEAD);
        while let Some(next) = segments.next().await {
            let (index, data) = next?;
            parts[index as usize] = Some(save_part(&dir, index, &data).await?);
            saved += data.len() as u64;
            progress(saved);
        }
    }
    let sequence = js_sys::Array::new();
    for part in parts.into_iter().flatten() {
        sequence.push(&part);
    }
    let options = web_sys::BlobPropertyBag::new();
    options.set_type(content_type);
    web_sys::Blob::new_with_blob_sequence_and_options(&sequence, &options).map_err(|_| TransferError::Storage)
}
