use yew::prelude::*;

use client_wasm::engine::InviteLink;

use crate::client::{ClientHandle, invite_url};
use crate::qr;

#[derive(Properties, PartialEq)]
pub struct Props {
    pub client: ClientHandle,
    pub invite: Option<InviteLink>,
}

/// "New invite": the link, a copy button and a QR code.
#[component]
pub fn InvitePanel(props: &Props) -> Html {
    let copied = use_state(|| false);
    let onclick = {
        let client = props.client.clone();
        let copied = copied.clone();
        Callback::from(move |_| {
            copied.set(false);
            client.new_invite();
        })
    };
    let details = props.invite.as_ref().map(|link| {
        let url = invite_url(&link.fragment);
        let copy = {
            let url = url.clone();
            let copied = copied.clone();
            Callback::from(move |_| {
                let clipboard = gloo::utils::window().navigator().clipboard();
                let _ = clipboard.write_text(&url);
                copied.set(true);
            })
        };
        let qr = qr::svg_data_url(url.as_bytes());
        let expires = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(link.expires_at as f64 * 1000.0));
        html! {
            <div class="invite">
                <label>{ "Invite link" }
                    <input type="text" readonly=true value={url.clone()} />
                </label>
                <button class="secondary" onclick={copy}>{ "Copy invite link" }</button>
                if *copied { <span class="muted" role="status" aria-live="polite">{ "Copied" }</span> }
                if let Some(src) = qr { <img {src} alt="Invite QR code" /> }
                <span class="muted">{ format!("Works once; expires {}", String::from(expires.to_locale_string("default", &wasm_bindgen::JsValue::UNDEFINED))) }</span>
            </div>
        }
    });
    html! {
        <div class="invite">
            <button {onclick}>{ "New invite" }</button>
            { for details }
        </div>
    }
}
