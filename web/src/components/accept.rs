use client_wasm::core::{Invite, InviteError};
use yew::prelude::*;

use super::use_ctx;
use crate::client::{self, protocol::Command};
use crate::state::Action;

#[derive(Properties, PartialEq)]
pub struct Props {
    pub fragment: String,
}

/// Shows who invites, and "Accept invite"; or why the invite cannot be used.
#[component]
pub fn AcceptInvite(props: &Props) -> Html {
    let ctx = use_ctx();
    let dismiss = {
        let state = ctx.state.clone();
        Callback::from(move |_| {
            client::clear_fragment();
            state.dispatch(Action::IncomingInvite(None));
        })
    };
    match Invite::from_fragment(&props.fragment, client_wasm::browser::now()) {
        Ok(invite) => {
            let onclick = {
                let client = ctx.client.clone();
                let fragment = props.fragment.clone();
                Callback::from(move |_| {
                    client::clear_fragment();
                    client.command(Command::AcceptInvite { fragment: fragment.clone() });
                })
            };
            html! {
                <section class="chat">
                    <div class="panel invite">
                        <h2>{ format!("{} invites you to talk", invite.inviter_name()) }</h2>
                        <p class="muted">{ "Accepting sets up an end-to-end encrypted conversation. \
                            Compare safety numbers afterwards to be sure it is really them." }</p>
                        <button {onclick}>{ "Accept invite" }</button>
                        <button class="secondary" onclick={dismiss}>{ "Not now" }</button>
                    </div>
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
            html! {
                <section class="chat">
                    <div class="panel invite" role="alert">
                        <p class="error">{ text }</p>
                        <button class="secondary" onclick={dismiss}>{ "Close" }</button>
                    </div>
                </section>
            }
        }
    }
}
