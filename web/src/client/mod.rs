//! The side effects of the app: which tab owns the engine, and talking between tabs.
//!
//! Views never touch any of this directly: they call [`Client::command`] and read [`Shared`] state
//! from the reducer, which this module updates through [`Action`]s.

pub mod offline;
mod owner;
pub mod protocol;
pub mod settings;

use std::cell::RefCell;
use std::rc::Rc;

use client_wasm::browser::{self, TabChannel, Vault};
use client_wasm::core::ShortLink;
use gloo::timers::callback::Timeout;
use wasm_bindgen::JsValue;
use yew::Callback;

use crate::state::Action;
use owner::{Owner, Report};
use protocol::{Command, Reply, Shared, TabMessage};

struct Inner {
    tab: u32,
    /// Commands posted to the owner and not yet done, re-posted if a new owner takes over.
    pending: RefCell<Vec<(u32, Command)>>,
    next_seq: std::cell::Cell<u32>,
    /// The owner tab we last heard from.
    known_owner: std::cell::Cell<u32>,
    owner: RefCell<Option<Rc<Owner>>>,
    channel: RefCell<Option<TabChannel>>,
    /// Another tab of this profile has spoken on the channel (so there may be someone to tell).
    /// Until then, the owner does not encode its whole state for the channel on every change.
    heard_peer: std::cell::Cell<bool>,
    /// Without Web Locks: the wait for an owner to answer, before this tab takes ownership.
    probe: RefCell<Option<Timeout>>,
    dispatch: Callback<Action>,
}

/// Shared handle; equal when it is the same client (for yew props).
#[derive(Clone)]
pub struct Client(Rc<Inner>);

impl PartialEq for Client {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}

/// The owner's reports, delivered to this tab and, through the channel, to the others.
struct Reporter(std::rc::Weak<Inner>);

impl Reporter {
    fn with(&self, f: impl FnOnce(&Inner)) {
        if let Some(inner) = self.0.upgrade() {
            f(&inner);
        }
    }
}

impl Report for Reporter {
    fn state(&self, shared: Shared) {
        self.with(|inner| {
            if inner.heard_peer.get() {
                inner.post(&TabMessage::State(shared.clone()));
            }
            inner.dispatch.emit(Action::Shared(shared));
        });
    }

    fn reply(&self, to: u32, reply: Reply) {
        self.with(|inner| {
            if to == 0 || to == inner.tab {
                inner.dispatch.emit(Action::Reply(reply.clone()));
            }
            if to != inner.tab {
                inner.post(&TabMessage::Reply { to, reply });
            }
        });
    }

    fn message_from(&self, name: &str) {
        notify(name);
    }

    fn wiped(&self) {
        self.with(|inner| inner.post(&TabMessage::Wiped));
        reload();
    }
}

impl Inner {
    fn post(&self, message: &TabMessage) {
        let bytes = message.encode();
        if let (Some(channel), false) = (self.channel.borrow().as_ref(), bytes.is_empty()) {
            channel.post(&bytes);
        }
    }
}

impl Client {
    /// Starts this tab: listens to the others, asks for the state, and queues for ownership.
    pub fn new(dispatch: Callback<Action>) -> Self {
        let mut tab = [0u8; 4];
        rand_core::Rng::fill_bytes(&mut browser::rng(), &mut tab);
        let inner = Rc::new(Inner {
            tab: u32::from_le_bytes(tab).max(1),
            pending: RefCell::new(Vec::new()),
            next_seq: std::cell::Cell::new(1),
            known_owner: std::cell::Cell::new(0),
            owner: RefCell::new(None),
            channel: RefCell::new(None),
            heard_peer: std::cell::Cell::new(false),
            probe: RefCell::new(None),
            dispatch,
        });
        let weak = Rc::downgrade(&inner);
        *inner.channel.borrow_mut() = TabChannel::open(move |bytes| {
            if let (Some(inner), Some(message)) = (weak.upgrade(), TabMessage::decode(&bytes)) {
                inner.heard_peer.set(true);
                Client(inner).on_tab_message(message);
            }
        });
        inner.post(&TabMessage::Hello);

        let weak = Rc::downgrade(&inner);
        let become_owner = move || {
            if let Some(inner) = weak.upgrade() {
                let owner = Owner::start(inner.tab, Rc::new(Reporter(Rc::downgrade(&inner))));
                *inner.owner.borrow_mut() = Some(owner.clone());
                inner.dispatch.emit(Action::Owner(true));
                // What this tab asked the previous owner and never heard back about.
                let pending = std::mem::take(&mut *inner.pending.borrow_mut());
                for (_, command) in pending {
                    owner.execute(inner.tab, command);
                }
            }
        };
        if !browser::request_ownership(become_owner.clone()) {
            // No Web Locks: this browser cannot hand the engine from tab to tab. Take it only if
            // no other tab answers the Hello above; otherwise follow that tab, and tell the
            // person to keep one tab. (Two tabs opened at the same moment can both get here: the
            // vault's generation check then stops the second one at its first save.)
            let weak = Rc::downgrade(&inner);
            *inner.probe.borrow_mut() = Some(Timeout::new(NO_LOCKS_PROBE_MS, move || {
                if let Some(inner) = weak.upgrade()
                    && inner.known_owner.get() == 0
                {
                    become_owner();
                }
            }));
        }
        Self(inner)
    }

    /// Carries out (owner) or forwards (other tabs) a command.
    pub fn command(&self, command: Command) {
        let owner = self.0.owner.borrow().clone();
        match owner {
            Some(owner) => owner.execute(self.0.tab, command),
            None if command.carries_secret() => self.post_sealed(command),
            None => {
                let seq = self.next_seq();
                self.0.pending.borrow_mut().push((seq, command.clone()));
                self.0.post(&TabMessage::Command { from: self.0.tab, seq, command });
            }
        }
    }

    fn next_seq(&self) -> u32 {
        let seq = self.0.next_seq.get();
        self.0.next_seq.set(seq.wrapping_add(1));
        seq
    }

    /// A command with a passphrase goes to the owner sealed under the profile's storage key. It
    /// is not kept for re-posting: if the owner changes before it arrives, the person asks again.
    fn post_sealed(&self, command: Command) {
        let seq = self.next_seq();
        let weak = Rc::downgrade(&self.0);
        wasm_bindgen_futures::spawn_local(async move {
            let plain = zeroize::Zeroizing::new(postcard::to_allocvec(&command).unwrap_or_default());
            drop(command);
            let sealed = match Vault::open().await {
                Ok(vault) => vault.seal_for_tabs(&plain).await.ok(),
                Err(_) => None,
            };
            let Some(inner) = weak.upgrade() else { return };
            match sealed {
                Some(sealed) => inner.post(&TabMessage::Sealed { from: inner.tab, seq, sealed }),
                None => inner.dispatch.emit(Action::Reply(Reply::Notice(SEAL_FAILED.into()))),
            }
        });
    }

    fn on_tab_message(&self, message: TabMessage) {
        let owner = self.0.owner.borrow().clone();
        match (message, owner) {
            (TabMessage::Hello, Some(owner)) => self.0.post(&TabMessage::State(owner.shared())),
            (TabMessage::Command { from, seq, command }, Some(owner)) => {
                // A secret must not arrive in clear; a tab that sends one this way is not ours.
                if !command.carries_secret() {
                    owner.execute(from, command);
                }
                self.0.post(&TabMessage::Done { to: from, seq });
            }
            (TabMessage::Sealed { from, seq, sealed }, Some(owner)) => {
                let weak = Rc::downgrade(&self.0);
                wasm_bindgen_futures::spawn_local(async move {
                    let command = owner.open_sealed(&sealed).await;
                    if let Some(command) = command {
                        owner.execute(from, command);
                    }
                    if let Some(inner) = weak.upgrade() {
                        inner.post(&TabMessage::Done { to: from, seq });
                    }
                });
            }
            (TabMessage::Done { to, seq }, None) if to == self.0.tab => {
                self.0.pending.borrow_mut().retain(|(s, _)| *s != seq);
            }
            (TabMessage::State(shared), None) => {
                if self.0.probe.borrow_mut().take().is_some() {
                    // No Web Locks, and another tab already runs the profile: this one follows it.
                    self.0.dispatch.emit(Action::Reply(Reply::Notice(NO_LOCKS_FOLLOWER.into())));
                }
                let previous = self.0.known_owner.replace(shared.owner_tab);
                if previous != 0 && previous != shared.owner_tab {
                    // A new owner: it never saw what we asked the old one.
                    let pending = self.0.pending.borrow().clone();
                    for (seq, command) in pending {
                        self.0.post(&TabMessage::Command { from: self.0.tab, seq, command });
                    }
                }
                self.0.dispatch.emit(Action::Shared(shared));
            }
            (TabMessage::Reply { to, reply }, None) if to == 0 || to == self.0.tab => {
                self.0.dispatch.emit(Action::Reply(reply));
            }
            (TabMessage::Wiped, _) => reload(),
            _ => {}
        }
    }
}

/// Without Web Locks, how long a new tab waits for an owner tab to answer its Hello.
const NO_LOCKS_PROBE_MS: u32 = 400;
const NO_LOCKS_FOLLOWER: &str = "This browser cannot coordinate Doorless tabs. Another tab runs this \
    profile: close the other Doorless tabs and reload this one, or keep using the other tab.";
const SEAL_FAILED: &str = "The passphrase could not be passed to the tab that runs Doorless. Try again.";

/// Reloads the page.
pub fn reload() {
    let _ = gloo::utils::window().location().reload();
}

/// A system notification for a new message, if the person opted in and this tab is hidden.
fn notify(name: &str) {
    let document = gloo::utils::document();
    if !settings::notifications() || !document.hidden() {
        return;
    }
    if web_sys::Notification::permission() != web_sys::NotificationPermission::Granted {
        return;
    }
    let options = web_sys::NotificationOptions::new();
    options.set_body(&format!("New message from {name}"));
    // One notification at a time, replaced by the next.
    options.set_tag("doorless-message");
    let _ = web_sys::Notification::new_with_options("Doorless", &options);
}

/// Asks the browser for notification permission (must follow a click).
pub fn request_notification_permission() {
    if let Ok(promise) = web_sys::Notification::request_permission() {
        wasm_bindgen_futures::spawn_local(async move {
            let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
        });
    }
}

/// Removes the invite from the address bar once it has been used.
pub fn clear_fragment() {
    let window = gloo::utils::window();
    if let Ok(history) = window.history() {
        let path = window.location().pathname().unwrap_or_else(|_| "/".into());
        let _ = history.replace_state_with_url(&JsValue::NULL, "", Some(&path));
    }
}

/// The invite fragment in the current URL, if any: a full invite (`#invite=…`) or a short link
/// (`#1/KEY/RELAY`, docs/protocol.md §3.1).
pub fn invite_in_url() -> Option<String> {
    let hash = gloo::utils::window().location().hash().ok()?;
    let fragment =
        hash.strip_prefix("#invite=").or_else(|| hash.strip_prefix('#').filter(|f| ShortLink::looks_like(f)));
    fragment.filter(|f| !f.is_empty()).map(str::to_owned)
}

/// The URL that opens an invite: this app's address and the fragment (a short link's as it is, a
/// full invite's after `invite=`).
pub fn invite_url(fragment: &str) -> String {
    let location = gloo::utils::window().location();
    let origin = location.origin().unwrap_or_default();
    if ShortLink::looks_like(fragment) {
        format!("{origin}/#{fragment}")
    } else {
        format!("{origin}/#invite={fragment}")
    }
}

/// The SRI hash of the running wasm, as Trunk wrote it into index.html: what `cargo xtask verify`
/// compares against a reproducible build.
pub fn build_hash() -> String {
    let document = gloo::utils::document();
    document
        .query_selector(
            "link[rel=preload][as=fetch][type='application/wasm'], link[rel=preload][href$='.wasm']",
        )
        .ok()
        .flatten()
        .and_then(|el| el.get_attribute("integrity"))
        .unwrap_or_else(|| "unknown (development build)".into())
}
