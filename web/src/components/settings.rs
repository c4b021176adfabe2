use client_wasm::engine::{ContactId, relay_address};
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

/// Settings: name, relay (moving to another, the relays in use and why), passphrase lock, notifications, whether the browser keeps the data,
/// build hash, delete all data.
#[component]
pub fn SettingsDialog() -> Html {
    let ctx = use_ctx();
    let shared = ctx.state.shared.clone();
    let name = use_state(|| shared.view.name.clone());
    let relay = use_state(settings::relay_url);
    // Why the relay address just typed was refused.
    let relay_refusal = use_state(|| None::<String>);
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
    let move_relay = {
        let (client, relay, refusal) = (ctx.client.clone(), relay.clone(), relay_refusal.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            match relay_address(&relay) {
                Err(refused) => refusal.set(Some(refused.to_string())),
                Ok(_) => {
                    refusal.set(None);
                    client.command(Command::MoveTo { address: (*relay).clone() });
                }
            }
        })
    };
    let contact_names = |ids: &[ContactId]| -> String {
        let names: Vec<&str> = ids
            .iter()
            .filter_map(|id| shared.view.contacts.iter().find(|c| c.id == *id).map(|c| c.name.as_str()))
            .collect();
        names.join(", ")
    };
    let relays: Vec<(String, String)> = shared
        .view
        .relays
        .iter()
        .map(|r| {
            let mut why = Vec::new();
            if r.home {
                why.push("home".to_owned());
            }
            if r.draining {
                why.push("old inbox, draining".to_owned());
            }
            if !r.contacts.is_empty() {
                why.push(format!("relay of {}", contact_names(&r.contacts)));
            }
            (r.origin.clone(), why.join("; "))
        })
        .collect();
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
                <form onsubmit={move_relay}>
                    <label>{ "Relay address" }
                        <input type="text" inputmode="url" value={(*relay).clone()} oninput={text_input(&relay)} aria-describedby="relay-rule" />
                    </label>
                    <p class="muted" id="relay-rule">{ "The relay's web address (https://relay.example/) or its \
                        WebSocket endpoint (wss://relay.example/ws). Moving gives every contact a fresh inbox \
                        there; your old inboxes are read until each contact has switched." }</p>
                    if let Some(refused) = (*relay_refusal).clone() {
                        <p class="error" role="alert">{ refused }</p>
                    }
                    <button type="submit" class="secondary">{ "Move to this relay" }</button>
                    if let Some(moving) = shared.view.moving {
                        <p role="status">{ format!("Moved: {} of {} contacts switched", moving.switched, moving.contacts) }</p>
                    }
                </form>
                <h3 id="relays-title">{ "Relays" }</h3>
                <ul class="relays" aria-labelledby="relays-title">
                    { for relays.iter().map(|(origin, why)| html! { <li>{ format!("{origin}: {why}") }</li> }) }
                </ul>
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
