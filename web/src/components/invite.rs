use client_wasm::engine::ContactId;
use yew::prelude::*;

use super::{time, use_ctx};
use crate::client::{self, protocol::Command};
use crate::qr::QrImage;
use crate::state::Action;

#[derive(Properties, PartialEq, Default)]
pub struct Props {
    /// Re-invite this contact (shown in their conversation) instead of inviting someone new.
    #[prop_or_default]
    pub for_contact: Option<ContactId>,
}

/// "New invite": the link, a copy button, a QR code and when it expires.
#[component]
pub fn InvitePanel(props: &Props) -> Html {
    let ctx = use_ctx();
    let copied = use_state(|| false);
    let for_contact = props.for_contact;
    let onclick = {
        let client = ctx.client.clone();
        let state = ctx.state.clone();
        let copied = copied.clone();
        Callback::from(move |_| {
            copied.set(false);
            state.dispatch(Action::Inviting(for_contact));
            client.command(Command::NewInvite { for_contact });
        })
    };
    let details = ctx.state.invite.as_ref().filter(|(_, target)| *target == for_contact).map(|(link, _)| {
        let url = client::invite_url(&link.fragment);
        let copy = {
            let url = url.clone();
            let copied = copied.clone();
            Callback::from(move |_| {
                let clipboard = gloo::utils::window().navigator().clipboard();
                let promise = clipboard.write_text(&url);
                let copied = copied.clone();
                wasm_bindgen_futures::spawn_local(async move {
                    copied.set(wasm_bindgen_futures::JsFuture::from(promise).await.is_ok());
                });
            })
        };
        let select_all = Callback::from(|e: FocusEvent| {
            if let Some(input) = e.target_dyn_into::<web_sys::HtmlInputElement>() {
                input.select();
            }
        });
        html! {
            <div class="invite">
                <label>{ "Invite link" }
                    <input type="text" readonly=true value={url.clone()} onfocus={select_all} />
                </label>
                <button class="secondary" onclick={copy}>{ "Copy invite link" }</button>
                <span class="muted" role="status" aria-live="polite">{ if *copied { "Copied to the clipboard" } else { "" } }</span>
                <QrImage data={url.as_bytes().to_vec()} alt="Invite QR code" />
                <span class="muted">{ format!("Works once. Expires {}.", time::long(link.expires_at)) }</span>
            </div>
        }
    });
    let label = if for_contact.is_some() { "Invite again" } else { "New invite" };
    html! {
        <div class="invite">
            <button {onclick}>{ label }</button>
            { for details }
        </div>
    }
}
