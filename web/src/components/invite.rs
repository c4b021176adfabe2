use client_wasm::engine::{ContactId, InviteView};
use gloo::timers::callback::Timeout;
use web_sys::HtmlInputElement;
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

/// "New invite": who it is for (optional), then the link, a copy button, a QR code and when it
/// expires; for new contacts also the invites nobody has answered yet, each with "Revoke".
#[component]
pub fn InvitePanel(props: &Props) -> Html {
    let ctx = use_ctx();
    let copied = use_state(|| false);
    let for_name = use_state(String::new);
    let for_contact = props.for_contact;
    let now = client_wasm::browser::now();
    // Only invites that can still be answered, and only the link of one of those.
    let pending: Vec<InviteView> =
        ctx.state.shared.view.invites.iter().filter(|i| i.expires_at > now).cloned().collect();
    let next_expiry = pending.iter().map(|i| i.expires_at).min();
    let tick = use_state(|| 0u32);
    {
        // Re-render when the next invite expires, so that it leaves the list on time.
        let tick = tick.clone();
        use_effect_with(next_expiry, move |next| {
            let timer = next.map(|at| {
                let ms =
                    at.saturating_sub(client_wasm::browser::now()).saturating_add(1).saturating_mul(1000);
                Timeout::new(u32::try_from(ms).unwrap_or(u32::MAX).min(i32::MAX as u32), move || {
                    tick.set(tick.wrapping_add(1))
                })
            });
            move || drop(timer)
        });
    }
    let onsubmit = {
        let client = ctx.client.clone();
        let state = ctx.state.clone();
        let copied = copied.clone();
        let for_name = for_name.clone();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            copied.set(false);
            state.dispatch(Action::Inviting(for_contact));
            let name = Some(for_name.trim().to_owned()).filter(|n| !n.is_empty());
            client.command(Command::NewInvite { for_contact, for_name: name });
            for_name.set(String::new());
        })
    };
    let oninput = {
        let for_name = for_name.clone();
        Callback::from(move |e: InputEvent| {
            for_name.set(e.target_unchecked_into::<HtmlInputElement>().value())
        })
    };
    let details = ctx
        .state
        .invite
        .as_ref()
        .filter(|(link, target)| *target == for_contact && pending.iter().any(|i| i.id == link.invite))
        .map(|(link, _)| {
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
                if let Some(input) = e.target_dyn_into::<HtmlInputElement>() {
                    input.select();
                }
            });
            let who = pending.iter().find(|i| i.id == link.invite).and_then(|i| i.for_name.clone());
            html! {
                <div class="invite">
                    <label>{ "Invite link" }
                        <input type="text" readonly=true value={url.clone()} onfocus={select_all} />
                    </label>
                    <button class="secondary" onclick={copy}>{ "Copy invite link" }</button>
                    <span class="muted" role="status" aria-live="polite">{ if *copied { "Copied to the clipboard" } else { "" } }</span>
                    <QrImage data={url.as_bytes().to_vec()} alt="Invite QR code" />
                    <span class="muted">{ match who {
                        Some(who) => format!("For {who}. Works once. Expires {}.", time::long(link.expires_at)),
                        None => format!("Works once. Expires {}.", time::long(link.expires_at)),
                    } }</span>
                </div>
            }
        });
    let label = if for_contact.is_some() { "Invite again" } else { "New invite" };
    html! {
        <div class="invite">
            <form class="invite" {onsubmit}>
                if for_contact.is_none() {
                    <label>{ "Invite for" }
                        <input type="text" value={(*for_name).clone()} {oninput} maxlength="64"
                            placeholder="Optional: their name" aria-describedby="invite-for-hint" />
                    </label>
                    <span class="muted small" id="invite-for-hint">{ "The name they get in your conversations, whatever name they send." }</span>
                }
                <button type="submit">{ label }</button>
            </form>
            { for details }
            if for_contact.is_none() && !pending.is_empty() {
                <h2 class="muted small-heading" id="pending-invites-heading">{ "Pending invites" }</h2>
                <ul class="pending-invites" aria-label="Pending invites">
                    { for pending.iter().map(|invite| html! { <PendingInvite key={invite.id.0} invite={invite.clone()} /> }) }
                </ul>
            }
        </div>
    }
}

#[derive(Properties, PartialEq)]
struct PendingProps {
    invite: InviteView,
}

/// One pending invite: who it is for, when it expires, and "Revoke".
#[component]
fn PendingInvite(props: &PendingProps) -> Html {
    let ctx = use_ctx();
    let id = props.invite.id;
    let revoke = {
        let client = ctx.client.clone();
        Callback::from(move |_| client.command(Command::RevokeInvite { invite: id }))
    };
    let who = match &props.invite.for_name {
        Some(name) => format!("For {name}"),
        None => "For anyone with the link".to_owned(),
    };
    html! {
        <li class="pending-invite">
            <span>
                <span class="name">{ who }</span>
                <span class="muted small">{ format!("Expires {}", time::long(props.invite.expires_at)) }</span>
            </span>
            <button class="secondary" onclick={revoke}>{ "Revoke" }</button>
        </li>
    }
}
