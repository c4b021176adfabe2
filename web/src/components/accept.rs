use yew::prelude::*;

use client_wasm::browser;

use crate::client::{ClientHandle, describe};

#[derive(Properties, PartialEq)]
pub struct Props {
    pub client: ClientHandle,
    pub fragment: String,
}

/// Shows who invites, and "Accept invite"; or why the invite cannot be used.
#[component]
pub fn AcceptInvite(props: &Props) -> Html {
    let read = props.client.with_engine(|e| e.read_invite(&props.fragment, browser::now()));
    match read {
        Some(Ok(invite)) => {
            let onclick = {
                let client = props.client.clone();
                let fragment = props.fragment.clone();
                Callback::from(move |_| client.accept_invite(&fragment))
            };
            html! {
                <section class="chat">
                    <div class="panel invite">
                        <h2>{ format!("{} invites you to talk", invite.inviter_name()) }</h2>
                        <p class="muted">{ "Accepting sets up an end-to-end encrypted conversation. \
                            Compare safety numbers afterwards to be sure it is really them." }</p>
                        <button {onclick}>{ "Accept invite" }</button>
                    </div>
                </section>
            }
        }
        Some(Err(err)) => html! {
            <section class="chat">
                <p class="error panel" role="alert">{ describe(&err) }</p>
            </section>
        },
        None => html! {},
    }
}
