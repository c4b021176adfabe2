//! What the views show, changed only through [`Action`]s.

use std::rc::Rc;

use client_wasm::engine::{ContactId, InviteLink};
use yew::Reducible;

/// UI state. The engine (contacts, messages) lives in the client; `revision` tells views to re-read it.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct AppState {
    /// Bumped whenever the engine changed.
    pub revision: u64,
    /// Whether a profile exists.
    pub started: bool,
    /// Relay connection ready.
    pub connected: bool,
    /// The conversation on screen.
    pub selected: Option<ContactId>,
    /// The invite just made.
    pub invite: Option<InviteLink>,
    /// An invite fragment from the URL, waiting for "Accept invite".
    pub incoming_invite: Option<String>,
    /// A message for the person, in plain words (never secrets or ids).
    pub notice: Option<String>,
}

/// Everything that changes [`AppState`].
#[derive(Debug)]
pub enum Action {
    /// The engine changed; re-read it.
    EngineChanged,
    /// A profile was created.
    Started,
    /// The relay connection went up or down.
    Connection(bool),
    /// Show a conversation.
    Select(ContactId),
    /// An invite was made.
    InviteMade(InviteLink),
    /// The URL carried an invite.
    IncomingInvite(Option<String>),
    /// Tell the person something.
    Notice(Option<String>),
}

impl Reducible for AppState {
    type Action = Action;

    fn reduce(self: Rc<Self>, action: Action) -> Rc<Self> {
        let mut next = (*self).clone();
        match action {
            Action::EngineChanged => next.revision += 1,
            Action::Started => next.started = true,
            Action::Connection(up) => next.connected = up,
            Action::Select(id) => next.selected = Some(id),
            Action::InviteMade(link) => next.invite = Some(link),
            Action::IncomingInvite(fragment) => next.incoming_invite = fragment,
            Action::Notice(notice) => next.notice = notice,
        }
        next.revision += 1;
        Rc::new(next)
    }
}
