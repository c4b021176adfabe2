//! Views. They read state from the context and send commands; they hold no side effects.

mod accept;
mod app;
mod attachments;
mod chat;
mod conversations;
mod invite;
mod links;
mod menu;
mod modal;
mod onboarding;
mod safety;
mod settings;
mod time;

pub use app::App;

use client_wasm::engine::ContactView;
use yew::prelude::*;

use crate::client::Client;
use crate::state::AppState;

/// What every view gets from the app.
#[derive(Clone, PartialEq)]
pub struct Ctx {
    /// UI state.
    pub state: UseReducerHandle<AppState>,
    /// Commands go here.
    pub client: Client,
}

/// The app context (always provided by [`App`]).
#[hook]
pub fn use_ctx() -> Ctx {
    use_context::<Ctx>().unwrap_or_else(|| unreachable!("App provides the context"))
}

/// Whether this tab is visible, kept current from `visibilitychange`.
#[hook]
pub fn use_visible() -> bool {
    let visible = use_state(|| !gloo::utils::document().hidden());
    {
        let visible = visible.clone();
        use_effect_with((), move |_| {
            let listener =
                gloo::events::EventListener::new(&gloo::utils::document(), "visibilitychange", move |_| {
                    visible.set(!gloo::utils::document().hidden());
                });
            move || drop(listener)
        });
    }
    *visible
}

/// The unread count to show for `contact`. None for the conversation on screen in a visible tab:
/// the chat marks it read at once, so showing its count would only make it flash.
pub fn shown_unread(state: &AppState, contact: &ContactView, visible: bool) -> u32 {
    let on_screen = visible && state.incoming_invite.is_none() && state.selected == Some(contact.id);
    if on_screen { 0 } else { contact.unread }
}
