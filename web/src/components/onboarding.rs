use web_sys::HtmlInputElement;
use yew::prelude::*;

use crate::client::ClientHandle;

#[derive(Properties, PartialEq)]
pub struct Props {
    pub client: ClientHandle,
    pub has_invite: bool,
}

/// One step: a name, and the identity is made in this tab.
#[component]
pub fn Onboarding(props: &Props) -> Html {
    let name = use_state(String::new);
    let oninput = {
        let name = name.clone();
        Callback::from(move |e: InputEvent| name.set(e.target_unchecked_into::<HtmlInputElement>().value()))
    };
    let onsubmit = {
        let name = name.clone();
        let client = props.client.clone();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            if !name.trim().is_empty() {
                client.start(name.trim());
            }
        })
    };
    html! {
        <form class="onboarding panel" {onsubmit}>
            <h2>{ if props.has_invite { "You have been invited to Doorless" } else { "Welcome to Doorless" } }</h2>
            <p class="muted">{ "No account, no phone number. Your keys are made here and never leave this browser." }</p>
            <label>{ "Your name" }
                <input type="text" value={(*name).clone()} {oninput} maxlength="64" autocomplete="nickname" required=true />
            </label>
            <button type="submit" disabled={name.trim().is_empty()}>{ "Start" }</button>
        </form>
    }
}
