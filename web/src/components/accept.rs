use client_wasm::core::{Invite, InviteError, ShortLink, ShortLinkError};
use web_sys::HtmlInputElement;
use yew::prelude::*;

use super::use_ctx;
use crate::client::{self, protocol::Command};
use crate::state::Action;

#[derive(Properties, PartialEq)]
pub struct Props {
    pub fragment: String,
}

/// Shows who invites, and "Accept invite" with the name to give them (the invite's name, which
/// the person may change); or why the invite cannot be used.
#[component]
pub fn AcceptInvite(props: &Props) -> Html {
    let ctx = use_ctx();
    // The name to give the inviter; None until edited (the invite's own name is the default).
    let name = use_state(|| None::<String>);
    {
        let name = name.clone();
        use_effect_with(props.fragment.clone(), move |_| name.set(None));
    }
    {
        // A short link: its invite is fetched from the relay it names, then shown as any invite.
        let client = ctx.client.clone();
        use_effect_with(props.fragment.clone(), move |fragment| {
            if ShortLink::looks_like(fragment) && ShortLink::parse(fragment).is_ok() {
                client.command(Command::FetchInvite { fragment: fragment.clone() });
            }
        });
    }
    let dismiss = {
        let state = ctx.state.clone();
        Callback::from(move |_| {
            client::clear_fragment();
            state.dispatch(Action::IncomingInvite(None));
        })
    };
    if ShortLink::looks_like(&props.fragment) {
        let problem = match (&ctx.state.invite_problem, ShortLink::parse(&props.fragment)) {
            (Some(problem), _) => problem.clone(),
            (None, Ok(link)) => {
                let relay = link.relay().as_str();
                let relay = relay.strip_prefix("https://").unwrap_or(relay).to_owned();
                return html! {
                    <section class="chat">
                        <div class="panel invite">
                            <p class="muted" role="status">{ format!("Fetching the invite from {relay}…") }</p>
                            <button class="secondary" onclick={dismiss}>{ "Not now" }</button>
                        </div>
                    </section>
                };
            }
            (None, Err(ShortLinkError::UnsupportedVersion)) => {
                "This invite was made by a newer version of Doorless. Reload the page, or ask for a new invite."
                    .into()
            }
            (None, Err(_)) => "This invite link is damaged or incomplete. Ask for a new one.".into(),
        };
        return refusal(&problem, dismiss);
    }
    match Invite::from_fragment(&props.fragment, client_wasm::browser::now()) {
        Ok(invite) => {
            let shown = name.as_deref().unwrap_or(invite.inviter_name()).to_owned();
            let onsubmit = {
                let client = ctx.client.clone();
                let fragment = props.fragment.clone();
                let name = (*name).clone();
                Callback::from(move |e: SubmitEvent| {
                    e.prevent_default();
                    client::clear_fragment();
                    client.command(Command::AcceptInvite { fragment: fragment.clone(), name: name.clone() });
                })
            };
            let oninput = {
                let name = name.clone();
                Callback::from(move |e: InputEvent| {
                    name.set(Some(e.target_unchecked_into::<HtmlInputElement>().value()))
                })
            };
            html! {
                <section class="chat">
                    <form class="panel invite" {onsubmit}>
                        <h2>{ format!("{} invites you to talk", invite.inviter_name()) }</h2>
                        <p class="muted">{ "Accepting sets up an end-to-end encrypted conversation. \
                            Compare safety numbers afterwards to be sure it is really them." }</p>
                        <label>{ "Name in your conversations" }
                            <input type="text" value={shown.clone()} {oninput} maxlength="64" required=true />
                        </label>
                        <span class="muted">{ "Only you see this name. The name they chose is shown beside it if it differs." }</span>
                        <button type="submit" disabled={shown.trim().is_empty()}>{ "Accept invite" }</button>
                        <button type="button" class="secondary" onclick={dismiss}>{ "Not now" }</button>
                    </form>
                </section>
            }
        }
        Err(err) => {
            let text = match err {
                InviteError::Expired => "This invite has expired. Ask for a new one.",
                InviteError::UnsupportedVersion => {
                    "This invite was made by a newer version of Doorless. Reload the page, or ask for a new invite."
                }
                _ => "This invite link is damaged or incomplete. Ask for a new one.",
            };
            refusal(text, dismiss)
        }
    }
}

/// Why an invite cannot be used, and "Close".
fn refusal(text: &str, dismiss: Callback<MouseEvent>) -> Html {
    html! {
        <section class="chat">
            <div class="panel invite" role="alert">
                <p class="error">{ text.to_owned() }</p>
                <button class="secondary" onclick={dismiss}>{ "Close" }</button>
            </div>
        </section>
    }
}
