use client_wasm::core::{Invite, ShortLink};
use yew::prelude::*;

use super::accept::AcceptInvite;
use super::chat::Chat;
use super::conversations::Conversations;
use super::invite::InvitePanel;
use super::menu::{ConfirmDialog, RenameDialog};
use super::onboarding::{Onboarding, Unlock};
use super::safety::SafetyDialog;
use super::settings::SettingsDialog;
use super::{Ctx, shown_unread, use_ctx, use_visible};
use crate::client::protocol::{Command, Connection, Phase};
use crate::client::{self, Client};
use crate::state::{Action, AppState, Dialog};

/// The whole app.
#[component]
pub fn App() -> Html {
    let state = use_reducer(AppState::default);
    let client = {
        let dispatcher = state.dispatcher();
        use_memo((), move |_| Client::new(Callback::from(move |a| dispatcher.dispatch(a))))
    };
    {
        // An invite link opened in this tab, at start or later (pasted into the address bar).
        let state = state.clone();
        use_effect_with((), move |_| {
            state.dispatch(Action::IncomingInvite(client::invite_in_url()));
            let listener =
                gloo::events::EventListener::new(&gloo::utils::window(), "hashchange", move |_| {
                    if let Some(fragment) = client::invite_in_url() {
                        state.dispatch(Action::IncomingInvite(Some(fragment)));
                    }
                });
            move || drop(listener)
        });
    }
    {
        // The offline copy of the app, and its updates.
        let dispatcher = state.dispatcher();
        use_effect_with((), move |_| {
            client::offline::start(Callback::from(move |()| dispatcher.dispatch(Action::UpdateReady)));
        });
    }
    {
        // Once there is a profile to keep, ask the browser to keep it (not on the welcome screen).
        let dispatcher = state.dispatcher();
        let ready = state.shared.phase == Phase::Ready;
        use_effect_with(ready, move |ready| {
            if *ready {
                wasm_bindgen_futures::spawn_local(async move {
                    dispatcher.dispatch(Action::Persistence(client::offline::request_persistence().await));
                });
            }
        });
    }
    {
        // The unread count in the tab title.
        let visible = use_visible();
        let unread: u32 = state.shared.view.contacts.iter().map(|c| shown_unread(&state, c, visible)).sum();
        use_effect_with(unread, move |unread| {
            let title = if *unread > 0 { format!("({unread}) Doorless") } else { "Doorless".into() };
            gloo::utils::document().set_title(&title);
        });
    }
    let ctx = Ctx { state, client: (*client).clone() };
    html! {
        <ContextProvider<Ctx> context={ctx}>
            <Shell />
        </ContextProvider<Ctx>>
    }
}

#[component]
fn Shell() -> Html {
    let ctx = use_ctx();
    let state = &ctx.state;
    let shared = &state.shared;

    let body = match shared.phase {
        Phase::Loading => html! { <p class="muted onboarding">{ "Opening…" }</p> },
        // A damaged or expired invite is said before any name is asked.
        Phase::NeedsProfile => match state.incoming_invite.clone() {
            // A short link's invite is fetched once the profile runs; only a damaged link is said here.
            Some(fragment)
                if if ShortLink::looks_like(&fragment) {
                    ShortLink::parse(&fragment).is_err()
                } else {
                    Invite::from_fragment(&fragment, client_wasm::browser::now()).is_err()
                } =>
            {
                html! { <AcceptInvite {fragment} /> }
            }
            invite => html! { <Onboarding has_invite={invite.is_some()} /> },
        },
        Phase::Locked => html! { <Unlock /> },
        Phase::Elsewhere => html! {
            <section class="onboarding panel">
                <h2>{ "Doorless stopped in this tab" }</h2>
                <p>{ "This profile runs in another tab or window. Close the other Doorless tabs, then reload this one." }</p>
                <button onclick={Callback::from(|_| client::reload())}>{ "Reload" }</button>
            </section>
        },
        Phase::Ready => {
            let content = if let Some(fragment) = state.incoming_invite.clone() {
                html! { <AcceptInvite {fragment} /> }
            } else if let Some(contact) = state.selected {
                html! { <Chat {contact} /> }
            } else {
                html! {
                    <section class="chat">
                        <p class="muted">{ "Make an invite and send the link to someone, by any channel, \
                            or show them the QR code. Everything is encrypted in this tab; the relay only \
                            sees padded ciphertext." }</p>
                    </section>
                }
            };
            html! {
                <div class={classes!("workspace", (state.selected.is_some() || state.incoming_invite.is_some()).then_some("has-chat"))}>
                    <div class="sidebar">
                        <InvitePanel />
                        <Conversations />
                    </div>
                    { content }
                </div>
            }
        }
    };

    // Quiet until something was tried: "Offline" in red means the relay could not be reached.
    let (status_class, status_text) = match shared.connection {
        Connection::Idle => ("status idle", "Not online yet"),
        Connection::Connecting => ("status idle", "Connecting…"),
        Connection::Connected => ("status online", "Connected"),
        Connection::Offline => ("status offline", "Offline"),
    };
    let open_settings = {
        let state = state.clone();
        Callback::from(move |_| state.dispatch(Action::Dialog(Some(Dialog::Settings))))
    };
    let retry = {
        let client = ctx.client.clone();
        Callback::from(move |_| client.command(Command::RetryNow))
    };
    let take_update = Callback::from(|_| client::offline::take_update());
    let dismiss = {
        let state = state.clone();
        Callback::from(move |_| state.dispatch(Action::Notice(None)))
    };
    html! {
        <div class="app">
            <header class="top">
                <h1>{ "Doorless" }</h1>
                <div class="top-actions">
                    <span class={status_class} role="status" aria-live="polite">{ status_text }</span>
                    if shared.phase == Phase::Ready {
                        <button class="secondary" onclick={open_settings}>{ "Settings" }</button>
                    }
                </div>
            </header>
            <main>
                if let Some(notice) = state.notice.clone() {
                    <div class="notice panel" role="alert">
                        <span>{ notice }</span>
                        <button class="secondary" onclick={dismiss} aria-label="Dismiss">{ "×" }</button>
                    </div>
                }
                if state.update_ready {
                    <div class="notice panel" role="status">
                        <span>{ "A new version of Doorless is ready. Reloading starts it in every open Doorless tab." }</span>
                        <button class="secondary" onclick={take_update}>{ "Reload to update" }</button>
                    </div>
                }
                if shared.phase == Phase::Ready && shared.connection == Connection::Offline {
                    <div class="notice panel" role="alert">
                        <span>{ "Doorless cannot reach the relay. It keeps trying; what you write waits in this browser and goes out when the relay is back." }</span>
                        <button class="secondary" onclick={retry}>{ "Retry now" }</button>
                    </div>
                }
                if shared.phase == Phase::Ready && !shared.persistent {
                    <p class="notice panel">{ "This browser does not allow storage here: nothing will be kept after you close the tab." }</p>
                }
                { body }
            </main>
            { match state.dialog {
                Some(Dialog::Safety(contact)) => html! { <SafetyDialog {contact} /> },
                Some(Dialog::Settings) => html! { <SettingsDialog /> },
                Some(Dialog::Confirm(confirm, contact)) => html! { <ConfirmDialog {confirm} {contact} /> },
                Some(Dialog::Rename(contact)) => html! { <RenameDialog {contact} /> },
                None => html! {},
            } }
        </div>
    }
}
