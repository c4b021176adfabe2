use yew::prelude::*;

use super::accept::AcceptInvite;
use super::chat::Chat;
use super::conversations::Conversations;
use super::invite::InvitePanel;
use super::onboarding::Onboarding;
use crate::client::{self, ClientHandle};
use crate::state::{Action, AppState};

/// The whole app: onboarding first, then conversations.
#[component]
pub fn App() -> Html {
    let state = use_reducer(AppState::default);
    let client = {
        let dispatcher = state.dispatcher();
        use_memo((), move |_| ClientHandle::new(Callback::from(move |a| dispatcher.dispatch(a))))
    };
    {
        let state = state.clone();
        use_effect_with((), move |_| {
            state.dispatch(Action::IncomingInvite(client::invite_in_url()));
        });
    }
    let client = (*client).clone();

    let body = if !state.started {
        html! { <Onboarding client={client.clone()} has_invite={state.incoming_invite.is_some()} /> }
    } else {
        let side = html! {
            <aside>
                <InvitePanel client={client.clone()} invite={state.invite.clone()} />
                <Conversations client={client.clone()} selected={state.selected} revision={state.revision}
                    on_select={{ let s = state.clone(); Callback::from(move |id| s.dispatch(Action::Select(id))) }} />
            </aside>
        };
        let content = if let Some(fragment) = state.incoming_invite.clone() {
            html! { <AcceptInvite client={client.clone()} {fragment} /> }
        } else if let Some(contact) = state.selected {
            html! { <Chat client={client.clone()} {contact} revision={state.revision} /> }
        } else {
            html! {
                <section class="chat">
                    <p class="muted">{ "Make an invite and send the link to someone, by any channel. \
                        Everything is encrypted in this tab; the relay only sees padded ciphertext." }</p>
                </section>
            }
        };
        html! { <main>{ side }{ content }</main> }
    };

    let (status_class, status_text) =
        if state.connected { ("status online", "Connected") } else { ("status offline", "Offline") };
    html! {
        <div class="app">
            <header class="top">
                <h1>{ "Doorless" }</h1>
                <span class={status_class} role="status">{ status_text }</span>
            </header>
            if let Some(notice) = state.notice.clone() {
                <p class="error panel" role="alert">{ notice }</p>
            }
            { body }
        </div>
    }
}
