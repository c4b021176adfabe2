//! The side effects: the engine, the relay socket with reconnection, and the clock.
//!
//! Views never touch these directly; they call the methods here, which report back through
//! [`Action`]s.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use client_wasm::browser::{self, RelaySocket, SocketEvent};
use client_wasm::engine::{ContactId, Engine, EngineError, Event};
use gloo::timers::callback::Timeout;
use yew::Callback;

use crate::state::Action;

/// Reconnection waits, in milliseconds: doubled from the first up to the last.
const BACKOFF_MS: (u32, u32) = (250, 10_000);

/// The app's single engine and relay connection.
pub struct Client {
    engine: RefCell<Option<Engine>>,
    socket: RefCell<Option<RelaySocket>>,
    retry: RefCell<Option<Timeout>>,
    backoff: Cell<u32>,
    relay_url: String,
    dispatch: Callback<Action>,
}

/// Shared handle; equal when it is the same client (for yew contexts).
#[derive(Clone)]
pub struct ClientHandle(pub Rc<Client>);

impl PartialEq for ClientHandle {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}

impl std::ops::Deref for ClientHandle {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.0
    }
}

/// The relay's WebSocket URL: the page's own origin.
fn default_relay_url() -> String {
    let location = gloo::utils::window().location();
    let scheme = if location.protocol().as_deref() == Ok("https:") { "wss" } else { "ws" };
    let host = location.host().unwrap_or_default();
    format!("{scheme}://{host}/ws")
}

impl ClientHandle {
    /// A client that reports through `dispatch`.
    pub fn new(dispatch: Callback<Action>) -> Self {
        Self(Rc::new(Client {
            engine: RefCell::new(None),
            socket: RefCell::new(None),
            retry: RefCell::new(None),
            backoff: Cell::new(BACKOFF_MS.0),
            relay_url: default_relay_url(),
            dispatch,
        }))
    }

    /// Creates the profile (identity made here, in the tab) and connects.
    pub fn start(&self, name: &str) {
        *self.engine.borrow_mut() = Some(Engine::new(name, &mut browser::rng()));
        self.dispatch.emit(Action::Started);
        self.connect();
    }

    /// Reads the engine.
    pub fn with_engine<R>(&self, f: impl FnOnce(&Engine) -> R) -> Option<R> {
        self.engine.borrow().as_ref().map(f)
    }

    fn with_engine_mut<R>(&self, f: impl FnOnce(&mut Engine) -> R) -> Option<R> {
        let result = self.engine.borrow_mut().as_mut().map(f);
        self.flush();
        self.dispatch.emit(Action::EngineChanged);
        result
    }

    /// Makes an invite.
    pub fn new_invite(&self) {
        match self.with_engine_mut(|e| e.create_invite(browser::now(), &mut browser::rng())) {
            Some(Ok(link)) => self.dispatch.emit(Action::InviteMade(link)),
            Some(Err(err)) => self.notice(&err),
            None => {}
        }
    }

    /// Accepts the invite in `fragment`.
    pub fn accept_invite(&self, fragment: &str) {
        match self.with_engine_mut(|e| e.accept_invite(fragment, browser::now(), &mut browser::rng())) {
            Some(Ok(id)) => {
                self.dispatch.emit(Action::IncomingInvite(None));
                self.dispatch.emit(Action::Select(id));
                clear_fragment();
            }
            Some(Err(err)) => self.notice(&err),
            None => {}
        }
    }

    /// Sends a text message.
    pub fn send(&self, contact: ContactId, text: &str) -> bool {
        match self.with_engine_mut(|e| e.send_text(contact, text, browser::now(), &mut browser::rng())) {
            Some(Ok(_)) => true,
            Some(Err(err)) => {
                self.notice(&err);
                false
            }
            None => false,
        }
    }

    fn notice(&self, err: &EngineError) {
        self.dispatch.emit(Action::Notice(Some(describe(err))));
    }

    fn connect(&self) {
        let weak = Rc::downgrade(&self.0);
        let socket = RelaySocket::connect(&self.relay_url, move |event| {
            if let Some(client) = weak.upgrade() {
                ClientHandle(client).on_socket(event);
            }
        });
        match socket {
            Ok(socket) => *self.socket.borrow_mut() = Some(socket),
            Err(_) => self.schedule_reconnect(),
        }
    }

    fn on_socket(&self, event: SocketEvent) {
        match event {
            SocketEvent::Open => {
                self.backoff.set(BACKOFF_MS.0);
                if let Some(engine) = self.engine.borrow_mut().as_mut() {
                    engine.on_connected();
                }
                self.flush();
            }
            SocketEvent::Frame(frame) => {
                let was_ready = self.with_engine(Engine::is_connected).unwrap_or(false);
                let events = self
                    .with_engine_mut(|e| e.on_frame(frame, browser::now(), &mut browser::rng()))
                    .unwrap_or_default();
                let ready = self.with_engine(Engine::is_connected).unwrap_or(false);
                if ready != was_ready {
                    self.dispatch.emit(Action::Connection(ready));
                }
                for event in events {
                    if let Event::ContactAdded(id) = event {
                        self.dispatch.emit(Action::Select(id));
                    }
                }
            }
            SocketEvent::Malformed => {}
            SocketEvent::Closed => {
                self.socket.borrow_mut().take();
                if let Some(engine) = self.engine.borrow_mut().as_mut() {
                    engine.on_disconnected();
                }
                self.dispatch.emit(Action::Connection(false));
                self.schedule_reconnect();
            }
        }
    }

    fn schedule_reconnect(&self) {
        let delay = self.backoff.get();
        self.backoff.set((delay * 2).min(BACKOFF_MS.1));
        let weak = Rc::downgrade(&self.0);
        *self.retry.borrow_mut() = Some(Timeout::new(delay, move || {
            if let Some(client) = weak.upgrade() {
                ClientHandle(client).connect();
            }
        }));
    }

    /// Sends what the engine has queued.
    fn flush(&self) {
        let frames = match self.engine.borrow_mut().as_mut() {
            Some(engine) => engine.take_frames(),
            None => return,
        };
        if let Some(socket) = self.socket.borrow().as_ref() {
            for frame in &frames {
                socket.send(frame);
            }
        }
    }
}

/// Plain words for an engine error; never includes keys, names or ids.
pub fn describe(err: &EngineError) -> String {
    use client_wasm::core::InviteError;
    match err {
        EngineError::Invite(InviteError::Expired) => "This invite has expired. Ask for a new one.".into(),
        EngineError::Invite(_) => "This invite link is damaged or incomplete. Ask for a new one.".into(),
        EngineError::OwnInvite => "This is your own invite. Send it to the person you want to talk to.".into(),
        EngineError::Handshake(_) => "This invite could not be used. Ask for a new one.".into(),
        EngineError::Session(_) => "The message could not be encrypted.".into(),
        EngineError::Content(_) => "The message is too long.".into(),
        EngineError::UnknownContact => "That conversation no longer exists.".into(),
        EngineError::EmptyMessage => "Type a message first.".into(),
    }
}

/// Removes the invite from the address bar once it has been used.
fn clear_fragment() {
    let window = gloo::utils::window();
    if let Ok(history) = window.history() {
        let path = window.location().pathname().unwrap_or_else(|_| "/".into());
        let _ = history.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&path));
    }
}

/// The invite fragment in the current URL, if any.
pub fn invite_in_url() -> Option<String> {
    let hash = gloo::utils::window().location().hash().ok()?;
    hash.strip_prefix("#invite=").filter(|f| !f.is_empty()).map(str::to_owned)
}

/// The URL that opens an invite.
pub fn invite_url(fragment: &str) -> String {
    let location = gloo::utils::window().location();
    let origin = location.origin().unwrap_or_default();
    format!("{origin}/#invite={fragment}")
}
