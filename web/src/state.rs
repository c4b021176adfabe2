//! What the views show, changed only through [`Action`]s.

use std::rc::Rc;

use client_wasm::engine::{ContactId, InviteLink};
use yew::Reducible;

use crate::client::offline::Persistence;
use crate::client::protocol::{Reply, Shared};

/// A dialog on top of the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialog {
    /// "Verify safety number" for a contact.
    Safety(ContactId),
    /// "Settings".
    Settings,
    /// Confirm a conversation menu action for a contact.
    Confirm(Confirm, ContactId),
    /// Give a contact another local name.
    Rename(ContactId),
}

/// A conversation menu action that asks first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirm {
    /// "Delete conversation".
    Delete,
    /// "Block".
    Block,
    /// "Clear history".
    ClearHistory,
}

/// A text the engine refused to send.
#[derive(Clone, PartialEq)]
pub struct Unsent {
    /// Its conversation.
    pub contact: ContactId,
    /// The text, for the composer.
    pub text: Rc<str>,
    /// Tells one refusal from the next (the same text refused twice is put back twice).
    pub count: u32,
}

/// Never prints the text.
impl std::fmt::Debug for Unsent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unsent").field("contact", &self.contact).field("count", &self.count).finish()
    }
}

/// UI state: the profile as the owner tab reports it, plus what this tab has on screen.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct AppState {
    /// The profile, from the owner tab (this one or another).
    pub shared: Rc<Shared>,
    /// This tab runs the engine.
    pub owner: bool,
    /// The conversation on screen.
    pub selected: Option<ContactId>,
    /// The invite just made (and for which conversation, for a re-invite).
    pub invite: Option<(InviteLink, Option<ContactId>)>,
    /// The conversation a requested invite is for.
    pub inviting_for: Option<ContactId>,
    /// An invite fragment from the URL, waiting for "Accept invite" (a short link's, until its
    /// invite is fetched: then the full invite's).
    pub incoming_invite: Option<String>,
    /// Why the short link in `incoming_invite` could not be used.
    pub invite_problem: Option<String>,
    /// A message for the person, in plain words (never secrets or ids).
    pub notice: Option<String>,
    /// The open dialog.
    pub dialog: Option<Dialog>,
    /// A text the engine refused, back for the composer of its conversation.
    pub unsent: Option<Unsent>,
    /// A new build of the app is installed and waits for "Reload to update".
    pub update_ready: bool,
    /// What the browser answered when asked to keep the data (None: not asked yet).
    pub persistence: Option<Persistence>,
}

/// Everything that changes [`AppState`].
#[derive(Debug)]
pub enum Action {
    /// New state from the owner tab.
    Shared(Shared),
    /// The owner answered a command.
    Reply(Reply),
    /// This tab became the owner.
    Owner(bool),
    /// Show a conversation.
    Select(ContactId),
    /// Back to the list (narrow screens).
    Deselect,
    /// An invite was requested (for a conversation, or a new contact).
    Inviting(Option<ContactId>),
    /// The URL carried an invite (or it was used).
    IncomingInvite(Option<String>),
    /// Tell the person something, or stop telling.
    Notice(Option<String>),
    /// Open or close a dialog.
    Dialog(Option<Dialog>),
    /// A new build of the app waits to be taken.
    UpdateReady,
    /// The browser answered the request for persistent storage.
    Persistence(Persistence),
}

impl Reducible for AppState {
    type Action = Action;

    fn reduce(self: Rc<Self>, action: Action) -> Rc<Self> {
        let mut next = (*self).clone();
        match action {
            Action::Shared(shared) => {
                if next.selected.is_some_and(|id| !shared.view.contacts.iter().any(|c| c.id == id)) {
                    next.selected = None;
                }
                next.shared = Rc::new(shared);
            }
            Action::Reply(Reply::InviteMade(link)) => next.invite = Some((link, next.inviting_for)),
            Action::Reply(Reply::Open(id)) => {
                // An invite works once: the one on screen has (most likely) just been used.
                if next.invite.as_ref().is_some_and(|(_, target)| target.is_none_or(|t| t == id)) {
                    next.invite = None;
                }
                next.selected = Some(id);
                next.incoming_invite = None;
            }
            Action::Reply(Reply::InviteFetched { short, full }) => {
                if next.incoming_invite.as_deref() == Some(short.as_str()) {
                    match full {
                        Ok(full) => next.incoming_invite = Some(full),
                        Err(problem) => next.invite_problem = Some(problem),
                    }
                }
            }
            Action::Reply(Reply::Notice(text)) => next.notice = Some(text),
            Action::Reply(Reply::Unsent { contact, text, notice }) => {
                let count = next.unsent.as_ref().map_or(0, |u| u.count.wrapping_add(1));
                next.unsent = Some(Unsent { contact, text: text.into(), count });
                next.notice = Some(notice);
            }
            Action::Reply(Reply::Done) => next.notice = None,
            Action::Owner(owner) => next.owner = owner,
            Action::Select(id) => {
                next.selected = Some(id);
                next.notice = None;
                next.unsent = None;
            }
            Action::Deselect => {
                next.selected = None;
                next.unsent = None;
            }
            Action::Inviting(for_contact) => next.inviting_for = for_contact,
            Action::IncomingInvite(fragment) => {
                next.incoming_invite = fragment;
                next.invite_problem = None;
            }
            Action::Notice(notice) => next.notice = notice,
            Action::Dialog(dialog) => next.dialog = dialog,
            Action::UpdateReady => next.update_ready = true,
            Action::Persistence(persistence) => next.persistence = Some(persistence),
        }
        Rc::new(next)
    }
}
