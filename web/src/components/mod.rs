//! Views. They read state, call the client, and never hold side effects of their own.

mod accept;
mod app;
mod chat;
mod conversations;
mod invite;
mod onboarding;

pub use app::App;
