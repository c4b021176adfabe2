use client_wasm::lock;
use web_sys::HtmlInputElement;
use yew::prelude::*;

use super::modal::Modal;
use super::use_ctx;
use crate::client::offline::Persistence;
use crate::client::protocol::{Command, Passphrase};
use crate::client::{self, settings};
use crate::state::Action;

fn text_input(state: &UseStateHandle<String>) -> Callback<InputEvent> {
    let state = state.clone();
    Callback::from(move |e: InputEvent| state.set(e.target_unchecked_into::<HtmlInputElement>().value()))
}

/// Settings: name, relay, passphrase lock, notifications, whether the browser keeps the data,
/// build hash, delete all data.
#[component]
pub fn SettingsDialog() -> Html {
    let ctx = use_ctx();
    let shared = ctx.state.shared.clone();
    let name = use_state(|| shared.view.name.clone());
    let relay = use_state(settings::relay_url);
    let passphrase = use_state(String::new);
    let confirmation = use_state(String::new);
    // Why the passphrase just typed was refused.
    let refusal = use_state(|| None::<lock::RefusedPassphrase>);
    let notifications = use_state(settings::notifications);
    let confirm_delete = use_state(|| false);

    let close = {
        let state = ctx.state.clone();
        Callback::from(move |()| state.dispatch(Action::Dialog(None)))
    };
    let save_name = {
        let (client, name) = (ctx.client.clone(), name.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            client.command(Command::SetName { name: (*name).clone() });
        })
    };
    let save_relay = {
        let (client, relay, state) = (ctx.client.clone(), relay.clone(), ctx.state.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let url = if *relay == settings::default_relay_url() { String::new() } else { (*relay).clone() };
            if settings::set_relay_url(&url) {
                client.command(Command::Reconnect);
                state.dispatch(Action::Notice(Some("Relay address saved.".into())));
            } else {
                state.dispatch(Action::Notice(Some("A relay address starts with wss:// or ws://.".into())));
            }
        })
    };
    let set_lock = {
        let (client, passphrase, confirmation, refusal) =
            (ctx.client.clone(), passphrase.clone(), confirmation.clone(), refusal.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            match lock::check_new(&passphrase, &confirmation) {
                Err(refused) => refusal.set(Some(refused)),
                Ok(()) => {
                    refusal.set(None);
                    client.command(Command::SetPassphrase {
                        passphrase: Some(Passphrase::new((*passphrase).clone())),
                    });
                    passphrase.set(String::new());
                    confirmation.set(String::new());
                }
            }
        })
    };
    let remove_lock = {
        let client = ctx.client.clone();
        Callback::from(move |_| client.command(Command::SetPassphrase { passphrase: None }))
    };
    let toggle_notifications = {
        let notifications = notifications.clone();
        Callback::from(move |e: Event| {
            let on = e.target_unchecked_into::<HtmlInputElement>().checked();
            if on {
                client::request_notification_permission();
            }
            settings::set_notifications(on);
            notifications.set(on);
        })
    };
    let delete = {
        let (client, confirm) = (ctx.client.clone(), confirm_delete.clone());
        Callback::from(move |_| {
            if *confirm {
                client.command(Command::DeleteAll);
            } else {
                confirm.set(true);
            }
        })
    };

    html! {
        <Modal labelled_by="settings-title" class="settings" on_close={close.clone()}>
                <h2 id="settings-title">{ "Settings" }</h2>
                <form onsubmit={save_name}>
                    <label>{ "Display name" }
                        <input type="text" value={(*name).clone()} oninput={text_input(&name)} maxlength="64" />
                    </label>
                    <button type="submit" class="secondary">{ "Save name" }</button>
                </form>
                <form onsubmit={save_relay}>
                    <label>{ "Relay address" }
                        <input type="url" value={(*relay).clone()} oninput={text_input(&relay)} />
                    </label>
                    <button type="submit" class="secondary">{ "Save relay" }</button>
                </form>
                <form onsubmit={set_lock}>
                    <label>{ if shared.locked_with_passphrase { "New passphrase" } else { "Passphrase lock" } }
                        <input type="password" value={(*passphrase).clone()} oninput={text_input(&passphrase)} autocomplete="new-password" aria-describedby="passphrase-rule" />
                    </label>
                    <label>{ "Confirm passphrase" }
                        <input type="password" value={(*confirmation).clone()} oninput={text_input(&confirmation)} autocomplete="new-password" />
                    </label>
                    <p class="muted" id="passphrase-rule">{ format!(
                        "At least {} characters; a few unrelated words are best. A forgotten passphrase cannot be \
                         recovered: nobody, not even the relay's operator, can open this profile without it.",
                        lock::MIN_PASSPHRASE_CHARS,
                    ) }</p>
                    if let Some(refused) = *refusal {
                        <p class="error" role="alert">{ refused.to_string() }</p>
                    }
                    <button type="submit" class="secondary">{ "Set passphrase" }</button>
                    if shared.locked_with_passphrase {
                        <button type="button" class="secondary" onclick={remove_lock}>{ "Remove passphrase" }</button>
                    }
                </form>
                <label class="inline">
                    <input type="checkbox" checked={*notifications} onchange={toggle_notifications} />
                    { "Notify me of new messages when this tab is hidden" }
                </label>
                <p class="muted">{ format!("Deliveries that failed to decrypt (tampered, replayed or foreign): {}", shared.view.undecryptable) }</p>
                <p class="muted">{ "Build: " }<code class="build-hash" aria-label="Build hash">{ client::build_hash() }</code></p>
                <p class="muted">{ match ctx.state.persistence {
                    Some(Persistence::Granted) => "This browser has agreed to keep Doorless's data until you delete it.",
                    Some(Persistence::Refused) => "This browser has not agreed to keep Doorless's data for good: \
                        when the disk runs low it may delete it, and with it your profile.",
                    Some(Persistence::Unsupported) => "This browser cannot be asked to keep Doorless's data for good.",
                    None => "Asking this browser to keep Doorless's data…",
                } }</p>
                <p class="muted">{ "Delete all data removes your identity, contacts and messages from this browser; \
                    your contacts are not told. Clearing this site's data in the browser does the same: it \
                    deletes the profile, and nothing can bring it back. Other browsers and devices are not \
                    affected: each one is a separate profile." }</p>
                <button class="danger" onclick={delete}>{ if *confirm_delete { "Really delete everything" } else { "Delete all data" } }</button>
                if *confirm_delete {
                    <p class="error">{ "This deletes your identity, contacts and messages from this browser. It cannot be undone." }</p>
                }
                <button class="secondary" onclick={close.reform(|_| ())}>{ "Close" }</button>
        </Modal>
    }
}
