//! Views. They read state from the context and send commands; they hold no side effects.

mod accept;
mod app;
mod chat;
mod conversations;
mod invite;
mod onboarding;
mod safety;
mod settings;
mod time;

pub use app::App;

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
