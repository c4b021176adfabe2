//! Files in a conversation: the "Attach file" input with the uploads in progress, and a received
//! file's entry (download progress, then "Save FILENAME", and images, audio and video inline).
//! The transfers themselves are in `crate::attach`.

use std::cell::RefCell;
use std::collections::HashMap;

use client_wasm::core::content::AttachmentRef;
use client_wasm::engine::{ContactId, Message};
use doorless_frames::RelayOrigin;
use web_sys::{AbortController, HtmlInputElement};
use yew::prelude::*;

use super::{time, use_ctx};
use crate::attach::{self, TransferError};
use crate::client::protocol::Command;

thread_local! {
    /// Object URLs of files saved in this tab, by blob id, so an entry that is drawn again (the
    /// window of chunks moved) does not download again.
    static SAVED: RefCell<HashMap<[u8; 16], String>> = RefCell::new(HashMap::new());
}

#[derive(Properties, PartialEq)]
pub struct AttachProps {
    pub contact: ContactId,
    pub disabled: bool,
}

/// The file input and one row per upload in progress.
#[component]
pub fn AttachFile(props: &AttachProps) -> Html {
    // A list changed in place and redrawn by hand: each upload's task removes its own row when it
    // ends, whichever state the list is in by then.
    let uploads = use_mut_ref(Vec::<(u32, web_sys::File)>::new);
    let redraw = use_force_update();
    let next = use_mut_ref(|| 0u32);
    let input = use_node_ref();
    let onchange = {
        let (uploads, redraw, input) = (uploads.clone(), redraw.clone(), input.clone());
        Callback::from(move |_: Event| {
            let Some(el) = input.cast::<HtmlInputElement>() else { return };
            let Some(files) = el.files() else { return };
            for i in 0..files.length() {
                if let Some(file) = files.get(i) {
                    *next.borrow_mut() += 1;
                    uploads.borrow_mut().push((*next.borrow(), file));
                }
            }
            el.set_value("");
            redraw.force_update();
        })
    };
    let done = {
        let uploads = uploads.clone();
        Callback::from(move |key: u32| {
            uploads.borrow_mut().retain(|(k, _)| *k != key);
            redraw.force_update();
        })
    };
    let uploads = uploads.borrow();
    let rows = uploads.iter().map(|(key, file)| {
        html! { <Upload key={*key} id={*key} file={file.clone()} contact={props.contact} done={done.clone()} /> }
    });
    html! {
        <>
            // On a narrow screen the label shows only "File"; the input keeps its name.
            <label class="attach secondary">
                <span class="wide" aria-hidden="true">{ "Attach file" }</span>
                <span class="narrow" aria-hidden="true">{ "File" }</span>
                <input type="file" aria-label="Attach file" ref={input} {onchange} disabled={props.disabled} multiple=true />
            </label>
            if !uploads.is_empty() {
                <div class="transfers">{ for rows }</div>
            }
        </>
    }
}

#[derive(Properties, PartialEq)]
struct UploadProps {
    id: u32,
    file: web_sys::File,
    contact: ContactId,
    done: Callback<u32>,
}

/// The home relay's origin (attachments are stored there).
fn home_origin() -> Option<String> {
    RelayOrigin::parse(&crate::client::settings::relay_url()).ok().map(|o| o.as_str().to_owned())
}

/// One upload: encrypts and sends the file, then the attachment message.
#[component]
fn Upload(props: &UploadProps) -> Html {
    let ctx = use_ctx();
    let sent = use_state(|| 0u64);
    let failed = use_state(|| None::<TransferError>);
    let controller = use_memo((), |_| AbortController::new().ok());
    let (name, _) = attach::describe(&props.file);
    let total = props.file.size() as u64;
    let started = use_memo((), |_| client_wasm::browser::now_ms());
    {
        let (sent, failed, controller) = (sent.clone(), failed.clone(), controller.clone());
        let (file, contact, done, client) =
            (props.file.clone(), props.contact, props.done.clone(), ctx.client.clone());
        let id = props.id;
        use_effect_with((), move |_| {
            wasm_bindgen_futures::spawn_local(async move {
                let Some(signal) = controller.as_ref().as_ref().map(|c| c.signal()) else { return };
                let result = match home_origin() {
                    Some(origin) => attach::upload(&file, &origin, &signal, |n| sent.set(n)).await,
                    None => Err(TransferError::Network),
                };
                match result {
                    Ok(attachment) => {
                        client.command(Command::SendAttachment { contact, attachment: Box::new(attachment) });
                        done.emit(id);
                    }
                    Err(TransferError::Cancelled) => done.emit(id),
                    Err(error) => failed.set(Some(error)),
                }
            });
        });
    }
    let cancel = {
        let controller = controller.clone();
        Callback::from(move |_| {
            if let Some(c) = controller.as_ref() {
                c.abort();
            }
        })
    };
    let dismiss = {
        let (done, id) = (props.done.clone(), props.id);
        Callback::from(move |_| done.emit(id))
    };
    match *failed {
        Some(error) => html! {
            <div class="transfer failed" role="alert">
                <span>{ format!("Upload of {name} failed. {error}") }</span>
                <button class="secondary" onclick={dismiss}>{ "Dismiss" }</button>
            </div>
        },
        None => html! {
            <div class="transfer">
                <progress aria-label={format!("Upload {name}")} max={total.max(1).to_string()} value={sent.to_string()} />
                <span class="meta">{ rate_text(*sent, total, *started) }</span>
                <button class="secondary" onclick={cancel}>{ "Cancel" }</button>
            </div>
        },
    }
}

/// "1.2 of 5.0 MB · 3.1 MB/s · 2 s left".
fn rate_text(done: u64, total: u64, started_ms: f64) -> String {
    let mb = |n: u64| n as f64 / 1e6;
    let seconds = ((client_wasm::browser::now_ms() - started_ms) / 1000.0).max(0.001);
    let speed = done as f64 / seconds;
    let mut text = format!("{:.1} of {:.1} MB", mb(done), mb(total));
    if done > 0 {
        let left = (total.saturating_sub(done)) as f64 / speed.max(1.0);
        text.push_str(&format!(" · {:.1} MB/s · {:.0} s left", speed / 1e6, left.ceil()));
    }
    text
}

#[derive(Properties, PartialEq)]
pub struct FileProps {
    pub message: Message,
}

#[derive(Clone, PartialEq)]
enum Download {
    Running(u64),
    Saved(String),
    Failed(TransferError),
}

/// A file in the log. A received one downloads by itself, then offers "Save FILENAME".
#[component]
pub fn FileEntry(props: &FileProps) -> Html {
    let m = &props.message;
    let attachment = m.attachment.clone();
    let saved = attachment.as_ref().and_then(|a| SAVED.with(|s| s.borrow().get(&a.blob).cloned()));
    let state = use_state(|| match saved {
        Some(url) => Download::Saved(url),
        None => Download::Running(0),
    });
    let attempt = use_state(|| 0u32);
    let controller = use_mut_ref(|| None::<AbortController>);
    let started = use_memo(*attempt, |_| client_wasm::browser::now_ms());
    {
        let (state, controller) = (state.clone(), controller.clone());
        let incoming = !m.outgoing;
        let attachment = attachment.clone();
        use_effect_with(*attempt, move |_| {
            if let (true, Some(a), Download::Running(_)) = (incoming, attachment, &*state) {
                let c = AbortController::new().ok();
                *controller.borrow_mut() = c.clone();
                wasm_bindgen_futures::spawn_local(async move {
                    let Some(signal) = c.map(|c| c.signal()) else { return };
                    state.set(match fetch(&a, &signal, &state).await {
                        Ok(url) => Download::Saved(url),
                        Err(error) => Download::Failed(error),
                    });
                });
            }
        });
    }
    let Some(a) = attachment else { return html! {} };
    let class = if m.outgoing { "message mine file" } else { "message file" };
    let name = a.name.clone();
    let meta = format!("{} · {}", size_text(a.len), time::clock(m.received_at));
    if m.outgoing {
        return html! {
            <div {class}><span class="text">{ name }</span><span class="meta">{ meta }</span></div>
        };
    }
    let body = match &*state {
        Download::Running(done) => {
            let cancel = {
                let controller = controller.clone();
                Callback::from(move |_| {
                    if let Some(c) = controller.borrow().as_ref() {
                        c.abort();
                    }
                })
            };
            html! {
                <div class="transfer">
                    <progress aria-label={format!("Download {name}")} max={a.len.max(1).to_string()} value={done.to_string()} />
                    <span class="meta">{ rate_text(*done, a.len, *started) }</span>
                    <button class="secondary" onclick={cancel}>{ "Cancel" }</button>
                </div>
            }
        }
        Download::Saved(url) => {
            let mime = attach::offered_type(&a.mime);
            let inline = if mime.starts_with("image/") {
                html! { <img class="inline" src={url.clone()} alt={name.clone()} /> }
            } else if mime.starts_with("audio/") {
                html! { <audio controls=true src={url.clone()} aria-label={name.clone()} /> }
            } else if mime.starts_with("video/") {
                html! { <video controls=true src={url.clone()} aria-label={name.clone()} /> }
            } else {
                html! {}
            };
            html! {
                <>
                    { inline }
                    <a href={url.clone()} download={name.clone()}>{ format!("Save {name}") }</a>
                </>
            }
        }
        Download::Failed(error) => {
            let again = {
                let (state, attempt) = (state.clone(), attempt.clone());
                Callback::from(move |_| {
                    state.set(Download::Running(0));
                    attempt.set(*attempt + 1);
                })
            };
            html! {
                <div role="alert">
                    <span>{ format!("Download of {name} failed. {error}") }</span>
                    <button class="secondary" onclick={again}>{ "Try again" }</button>
                </div>
            }
        }
    };
    html! { <div {class}>{ body }<span class="meta">{ meta }</span></div> }
}

/// Downloads the file into this origin's storage; its object URL, typed as it may be shown.
async fn fetch(
    a: &AttachmentRef,
    signal: &web_sys::AbortSignal,
    state: &UseStateHandle<Download>,
) -> Result<String, TransferError> {
    if a.expires <= client_wasm::browser::now() {
        return Err(TransferError::Expired);
    }
    let typed =
        attach::download(a, attach::offered_type(&a.mime), signal, |n| state.set(Download::Running(n)))
            .await?;
    let url = web_sys::Url::create_object_url_with_blob(&typed).map_err(|_| TransferError::Storage)?;
    SAVED.with(|s| s.borrow_mut().insert(a.blob, url.clone()));
    Ok(url)
}

fn size_text(len: u64) -> String {
    match len {
        n if n < 1_000 => format!("{n} B"),
        n if n < 1_000_000 => format!("{:.1} kB", n as f64 / 1e3),
        n => format!("{:.1} MB", n as f64 / 1e6),
    }
}
