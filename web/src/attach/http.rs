//! The relay's blob routes (docs/relay-protocol.md, "Attachment blobs"), over `fetch`.
//!
//! Capabilities travel in `Authorization: Bearer`, never in the URL. Every request can be aborted
//! through the transfer's `AbortSignal` (Cancel).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use js_sys::{Promise, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortSignal, Headers, RequestInit, Response};

use super::TransferError;

/// A blob as `POST /blobs` made it.
pub struct Created {
    pub id: [u8; 16],
    pub write: [u8; 32],
    pub read: [u8; 32],
}

/// One blob on one relay, with the capability the caller holds.
pub struct Blob<'a> {
    /// The relay's origin (`https://host[:port]`).
    pub origin: &'a str,
    pub id: &'a [u8; 16],
    pub capability: &'a [u8; 32],
    pub signal: &'a AbortSignal,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn decode_b64<const N: usize>(value: &JsValue) -> Result<[u8; N], TransferError> {
    let text = value.as_string().ok_or(TransferError::Refused)?;
    let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| TransferError::Refused)?;
    bytes.try_into().map_err(|_| TransferError::Refused)
}

fn field(object: &JsValue, name: &str) -> JsValue {
    Reflect::get(object, &JsValue::from_str(name)).unwrap_or(JsValue::UNDEFINED)
}

/// Sends one request; an answer that is not a success is mapped to what the person is told.
async fn request(
    method: &str,
    url: &str,
    capability: Option<&[u8; 32]>,
    extra: &[(&str, String)],
    body: Option<&[u8]>,
    signal: &AbortSignal,
) -> Result<Response, TransferError> {
    let headers = Headers::new().map_err(|_| TransferError::Network)?;
    if let Some(capability) = capability {
        let _ = headers.set("authorization", &format!("Bearer {}", b64(capability)));
    }
    for (name, value) in extra {
        let _ = headers.set(name, value);
    }
    let init = RequestInit::new();
    init.set_method(method);
    init.set_headers(&headers);
    init.set_signal(Some(signal));
    init.set_credentials(web_sys::RequestCredentials::Omit);
    init.set_cache(web_sys::RequestCache::NoStore);
    if let Some(body) = body {
        init.set_body(&Uint8Array::from(body));
    }
    let promise = gloo::utils::window().fetch_with_str_and_init(url, &init);
    let answer = JsFuture::from(promise)
        .await
        .map_err(|_| if signal.aborted() { TransferError::Cancelled } else { TransferError::Network })?;
    let response: Response = answer.dyn_into().map_err(|_| TransferError::Network)?;
    if response.ok() {
        return Ok(response);
    }
    let name = match response.json() {
        Ok(json) => JsFuture::from(json).await.ok().and_then(|v| field(&v, "error").as_string()),
        Err(_) => None,
    };
    Err(TransferError::from_answer(response.status(), name.as_deref().unwrap_or_default()))
}

async fn json(response: Response) -> Result<JsValue, TransferError> {
    let promise = response.json().map_err(|_| TransferError::Network)?;
    JsFuture::from(promise).await.map_err(|_| TransferError::Network)
}

async fn bytes(response: Response) -> Result<Vec<u8>, TransferError> {
    let promise = response.array_buffer().map_err(|_| TransferError::Network)?;
    let buffer = JsFuture::from(promise).await.map_err(|_| TransferError::Network)?;
    Ok(Uint8Array::new(&buffer).to_vec())
}

/// `POST /blobs`: reserves space for `segments` segments of `size` sealed bytes in all.
pub async fn create(
    origin: &str,
    segments: u32,
    size: u64,
    signal: &AbortSignal,
) -> Result<Created, TransferError> {
    let body = format!("{{\"segments\":{segments},\"size\":{size}}}");
    let content_type = [("content-type", "application/json".to_owned())];
    let response =
        request("POST", &format!("{origin}/blobs"), None, &content_type, Some(body.as_bytes()), signal)
            .await?;
    let answer = json(response).await?;
    Ok(Created {
        id: decode_b64(&field(&answer, "id"))?,
        write: decode_b64(&field(&answer, "write"))?,
        read: decode_b64(&field(&answer, "read"))?,
    })
}

impl Blob<'_> {
    fn url(&self, rest: &str) -> String {
        format!("{}/blobs/{}{rest}", self.origin, b64(self.id))
    }

    /// `PUT /blobs/ID/INDEX` (write capability); idempotent.
    pub async fn put(&self, index: u32, sealed: &[u8], hash: &[u8; 32]) -> Result<(), TransferError> {
        let header = [("doorless-segment-sha256", hex::encode(hash))];
        let url = self.url(&format!("/{index}"));
        request("PUT", &url, Some(self.capability), &header, Some(sealed), self.signal).await.map(|_| ())
    }

    /// `POST /blobs/ID/complete` (write capability): the blob's expiry, unix seconds.
    pub async fn complete(&self) -> Result<u64, TransferError> {
        let url = self.url("/complete");
        let response = request("POST", &url, Some(self.capability), &[], None, self.signal).await?;
        let expires = field(&json(response).await?, "expires").as_f64().ok_or(TransferError::Refused)?;
        Ok((expires / 1000.0) as u64)
    }

    /// `DELETE /blobs/ID` (write capability). Sent with a fresh signal: it must go out after a cancel.
    pub async fn cancel(origin: &str, id: &[u8; 16], write: &[u8; 32]) -> Result<(), TransferError> {
        let controller = web_sys::AbortController::new().map_err(|_| TransferError::Network)?;
        let blob = Blob { origin, id, capability: write, signal: &controller.signal() };
        request("DELETE", &blob.url(""), Some(write), &[], None, blob.signal).await.map(|_| ())
    }

    /// `GET /blobs/ID/hashes` (read capability): every segment's SHA-256, in order.
    pub async fn hashes(&self) -> Result<Vec<[u8; 32]>, TransferError> {
        let url = self.url("/hashes");
        let response = request("GET", &url, Some(self.capability), &[], None, self.signal).await?;
        let list: js_sys::Array =
            field(&json(response).await?, "hashes").dyn_into().map_err(|_| TransferError::Refused)?;
        list.iter()
            .map(|v| {
                let text = v.as_string().ok_or(TransferError::Integrity)?;
                let bytes = hex::decode(text).map_err(|_| TransferError::Integrity)?;
                bytes.try_into().map_err(|_| TransferError::Integrity)
            })
            .collect()
    }

    /// `GET /blobs/ID/INDEX` (read capability): one sealed segment.
    pub async fn get(&self, index: u32) -> Result<Vec<u8>, TransferError> {
        let url = self.url(&format!("/{index}"));
        let response = request("GET", &url, Some(self.capability), &[], None, self.signal).await?;
        bytes(response).await
    }
}

/// Waits `ms` milliseconds (a pause before a retry).
pub async fn pause(ms: i32) {
    let promise = Promise::new(&mut |resolve, _| {
        let _ = gloo::utils::window().set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
    });
    let _ = JsFuture::from(promise).await;
}
