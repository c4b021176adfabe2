use web_sys::HtmlInputElement;
use yew::prelude::*;

use super::use_ctx;
use crate::client::protocol::{Command, Passphrase};

#[derive(Properties, PartialEq)]
pub struct Props {
    pub has_invite: bool,
}

/// One step: a name, and the identity is made in this tab.
#[component]
pub fn Onboarding(props: &Props) -> Html {
    let ctx = use_ctx();
    let name = use_state(String::new);
    let oninput = {
        let name = name.clone();
        Callback::from(move |e: InputEvent| name.set(e.target_unchecked_into::<HtmlInputElement>().value()))
    };
    let onsubmit = {
        let name = name.clone();
        let client = ctx.client.clone();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            if !name.trim().is_empty() {
                client.command(Command::Start { name: name.trim().to_owned() });
            }
        })
    };
    html! {
        <form class="onboarding panel" {onsubmit}>
            <h2>{ if props.has_invite { "You have been invited to Doorless" } else { "Welcome to Doorless" } }</h2>
            <p class="muted">{ "No account, no phone number. Your keys are made here and never leave this browser." }</p>
            <label>{ "Your name" }
                <input type="text" value={(*name).clone()} {oninput} maxlength="64" autocomplete="nickname" required=true autofocus=true />
            </label>
            <button type="submit" disabled={name.trim().is_empty()}>{ "Start" }</button>
        </form>
    }
}

/// A passphrase-locked profile.
#[component]
pub fn Unlock() -> Html {
    let ctx = use_ctx();
    let passphrase = use_state(String::new);
    let oninput = {
        let passphrase = passphrase.clone();
        Callback::from(move |e: InputEvent| {
            passphrase.set(e.target_unchecked_into::<HtmlInputElement>().value())
        })
    };
    let onsubmit = {
        let passphrase = passphrase.clone();
        let client = ctx.client.clone();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            client.command(Command::Unlock { passphrase: Passphrase::new((*passphrase).clone()) });
            passphrase.set(String::new());
        })
    };
    html! {
        <form class="onboarding panel" {onsubmit}>
            <h2>{ "Doorless is locked" }</h2>
            <label>{ "Passphrase" }
                <input type="password" value={(*passphrase).clone()} {oninput} autocomplete="current-password" autofocus=true />
            </label>
            <button type="submit">{ "Unlock" }</button>
        </form>
    }
}
