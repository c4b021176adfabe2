//! The owner tab: it alone runs the engine, holds the relay connection and writes storage.
//!
//! Invariant: state is saved before anything it produced leaves the tab. Every engine change
//! queues the frames it produced; one worker takes what changed in the engine since its last save
//! (the profile record and the changed log chunks, one transaction), and only once that has
//! committed sends the frames queued before it. A crash at any point leaves storage at a state whose
//! ciphertext was, at most, not yet sent, so nothing is lost and no message key is ever used twice.
//! Changes that arrive while a save is running are saved together by the next one.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use client_wasm::browser::{self, NamedRecords, RelaySocket, SocketEvent, StorageError, Vault};
use client_wasm::engine::{Engine, EngineError, Event, InviteConflict, LEGACY_RECORD, PROFILE_RECORD};
use client_wasm::lock::{self, LockError, LockKey};
use doorless_frames::Frame;
use futures_channel::mpsc;
use futures_util::StreamExt;
use gloo::timers::callback::Timeout;
use zeroize::Zeroizing;

use super::protocol::{Command, Connection, Passphrase, Phase, Reply, Shared};
use super::settings;

/// Reconnection waits, in milliseconds: doubled from the first up to the last.
const BACKOFF_MS: (u32, u32) = (250, 10_000);

/// Work for the save-then-send worker: frames an engine change produced (maybe none: the change
/// still needs saving).
type Job = Vec<Frame>;

/// What the owner reports to its tab.
pub trait Report {
    /// The shared state changed.
    fn state(&self, shared: Shared);
    /// A reply for the tab that asked.
    fn reply(&self, to: u32, reply: Reply);
    /// A message arrived (for notifications).
    fn message_from(&self, name: &str);
    /// Everything was wiped.
    fn wiped(&self);
}

pub struct Owner {
    me: Weak<Owner>,
    engine: RefCell<Option<Engine>>,
    phase: Cell<Phase>,
    connected: Cell<bool>,
    /// A connection attempt failed or a connection dropped since the last one was ready.
    failed: Cell<bool>,
    /// Stored records of a locked profile, until unlocked.
    locked: RefCell<Option<NamedRecords>>,
    lock_key: RefCell<Option<LockKey>>,
    vault: RefCell<Option<Rc<Vault>>>,
    socket: RefCell<Option<RelaySocket>>,
    retry: RefCell<Option<Timeout>>,
    backoff: Cell<u32>,
    jobs: mpsc::UnboundedSender<Job>,
    /// What the person did is saved and not yet shown: the worker shows it once the save is over.
    publish_after_save: Cell<bool>,
    /// A save that holds something the person did is running: until it is over, nothing is shown
    /// early (a message arriving meanwhile would otherwise show the unsaved change with it).
    person_change_saving: Cell<bool>,
    /// Commands that arrived while storage was still being read.
    waiting: RefCell<Vec<(u32, Command)>>,
    /// This tab's id.
    tab: u32,
    report: Rc<dyn Report>,
}

impl Owner {
    /// Becomes the owner: opens storage, restores the profile, connects.
    pub fn start(tab: u32, report: Rc<dyn Report>) -> Rc<Self> {
        let (jobs, queue) = mpsc::unbounded();
        let owner = Rc::new_cyclic(|me| Self {
            me: me.clone(),
            engine: RefCell::new(None),
            phase: Cell::new(Phase::Loading),
            connected: Cell::new(false),
            failed: Cell::new(false),
            locked: RefCell::new(None),
            lock_key: RefCell::new(None),
            vault: RefCell::new(None),
            socket: RefCell::new(None),
            retry: RefCell::new(None),
            backoff: Cell::new(BACKOFF_MS.0),
            jobs,
            publish_after_save: Cell::new(false),
            person_change_saving: Cell::new(false),
            waiting: RefCell::new(Vec::new()),
            tab,
            report,
        });
        let worker = Rc::downgrade(&owner);
        wasm_bindgen_futures::spawn_local(Self::worker(worker, queue));
        let loader = owner.clone();
        wasm_bindgen_futures::spawn_local(async move { loader.load().await });
        owner
    }

    async fn load(&self) {
        let vault = match Vault::open().await {
            Ok(vault) => Some(Rc::new(vault)),
            Err(_) => None,
        };
        let stored = match &vault {
            Some(v) => v.load().await,
            None => Ok(Vec::new()),
        };
        *self.vault.borrow_mut() = vault;
        match stored {
            Ok(records) if records.is_empty() => self.phase.set(Phase::NeedsProfile),
            Ok(records) if records.iter().any(|(_, bytes)| lock::is_locked(bytes)) => {
                *self.locked.borrow_mut() = Some(records);
                self.phase.set(Phase::Locked);
            }
            Ok(records) => match open_engine(&records, None) {
                Some(engine) => self.run(engine),
                None => {
                    self.phase.set(Phase::NeedsProfile);
                    self.report.reply(0, Reply::Notice(STORED_CORRUPT.into()));
                }
            },
            Err(_) => {
                self.phase.set(Phase::NeedsProfile);
                self.report.reply(0, Reply::Notice(STORED_CORRUPT.into()));
            }
        }
        self.publish();
        let waiting = std::mem::take(&mut *self.waiting.borrow_mut());
        for (from, command) in waiting {
            self.execute(from, command);
        }
    }

    fn run(&self, engine: Engine) {
        *self.engine.borrow_mut() = Some(engine);
        self.phase.set(Phase::Ready);
        self.connect();
    }

    /// The state all tabs show.
    pub fn shared(&self) -> Shared {
        Shared {
            phase: self.phase.get(),
            connection: match (self.phase.get(), self.connected.get(), self.failed.get()) {
                (Phase::Ready, true, _) => Connection::Connected,
                (Phase::Ready, false, true) => Connection::Offline,
                (Phase::Ready, false, false) => Connection::Connecting,
                _ => Connection::Idle,
            },
            locked_with_passphrase: self.lock_key.borrow().is_some() || self.locked.borrow().is_some(),
            persistent: self.vault.borrow().is_some(),
            owner_tab: self.tab,
            view: self.engine.borrow().as_ref().map(Engine::view).unwrap_or_default(),
        }
    }

    fn publish(&self) {
        self.report.state(self.shared());
    }

    /// Carries out a command from any tab.
    pub fn execute(&self, from: u32, command: Command) {
        match self.phase.get() {
            Phase::Loading => {
                self.waiting.borrow_mut().push((from, command));
                return;
            }
            Phase::Elsewhere => {
                self.report.reply(from, Reply::Notice(ELSEWHERE.into()));
                return;
            }
            _ => {}
        }
        let now = browser::now();
        let mut rng = browser::rng();
        let reply = match command {
            Command::Start { name } => {
                if self.phase.get() == Phase::NeedsProfile && !name.trim().is_empty() {
                    self.run(Engine::new(&name, &mut rng));
                    self.changed();
                }
                Reply::Done
            }
            Command::Unlock { passphrase } => self.unlock(passphrase.as_str()),
            Command::NewInvite { for_contact, for_name } => self.with_engine(|e| {
                match for_name.as_deref().filter(|n| !n.trim().is_empty()) {
                    Some(name) if for_contact.is_none() => e.create_invite_for(name, now, &mut rng),
                    _ => e.create_invite(for_contact, now, &mut rng),
                }
                .map(Reply::InviteMade)
            }),
            Command::RevokeInvite { invite } => {
                self.with_engine(|e| e.revoke_invite(invite).map(|()| Reply::Done))
            }
            Command::AcceptInvite { fragment, name } => self.with_engine(|e| {
                let name = name.as_deref().filter(|n| !n.trim().is_empty());
                match e.accept_invite_as(&fragment, name, None, now, &mut rng) {
                    // The same identity keys: the same person. Their conversation goes on (history,
                    // verification and the name given to them stay); no second contact is made.
                    Err(EngineError::InviteConflict(known @ InviteConflict::KnownContact(_))) => {
                        e.accept_invite_as(&fragment, None, Some(known), now, &mut rng)
                    }
                    other => other,
                }
                .map(Reply::Open)
            }),
            Command::Send { contact, text } => {
                match self.with_engine(|e| e.send_text(contact, &text, now, &mut rng).map(|_| Reply::Done)) {
                    // Refused: nothing was queued, so the text goes back to the composer.
                    Reply::Notice(notice) => Reply::Unsent { contact, text, notice },
                    reply => reply,
                }
            }
            Command::MarkRead { contact } => self.with_engine(|e| {
                e.mark_read(contact);
                Ok(Reply::Done)
            }),
            Command::MarkVerified { contact, shown } => {
                self.with_engine(|e| e.mark_verified(contact, &shown).map(|_| Reply::Done))
            }
            Command::AcceptSafetyNumberChange { contact } => {
                self.with_engine(|e| e.accept_safety_number_change(contact).map(|_| Reply::Done))
            }
            Command::SetName { name } => {
                self.with_engine(|e| e.set_name(&name, now, &mut rng).map(|_| Reply::Done))
            }
            Command::RenameContact { contact, name } => {
                self.with_engine(|e| e.rename_contact(contact, &name).map(|()| Reply::Done))
            }
            Command::DeleteConversation { contact } => {
                self.with_engine(|e| e.delete_conversation(contact).map(|()| Reply::Done))
            }
            Command::ClearHistory { contact } => {
                self.with_engine(|e| e.clear_history(contact).map(|()| Reply::Done))
            }
            Command::SetBarred { contact, barred } => {
                self.with_engine(|e| e.set_barred(contact, barred).map(|()| Reply::Done))
            }
            Command::SetPassphrase { passphrase } => {
                self.set_passphrase(passphrase.as_ref().map(Passphrase::as_str))
            }
            Command::Reconnect => {
                self.socket.borrow_mut().take();
                self.disconnected();
                Reply::Done
            }
            Command::RetryNow => {
                // The scheduled attempt is dropped and the wait starts again from the shortest.
                self.retry.borrow_mut().take();
                self.backoff.set(BACKOFF_MS.0);
                if self.socket.borrow().is_none() {
                    self.connect();
                }
                Reply::Done
            }
            Command::DeleteAll => {
                self.delete_all();
                return;
            }
        };
        self.report.reply(from, reply);
    }

    fn unlock(&self, passphrase: &str) -> Reply {
        let key = {
            let locked = self.locked.borrow();
            let Some(records) = locked.as_ref() else { return Reply::Done };
            // Argon2id once, on the profile record; the other records open with the same key.
            let profile = records.iter().find(|(name, _)| name == PROFILE_RECORD || name == LEGACY_RECORD);
            match profile.map(|(_, bytes)| lock::open(bytes, Some(passphrase))) {
                Some(Ok((_, key))) => key,
                Some(Err(LockError::WrongPassphrase)) => return Reply::Notice("Wrong passphrase.".into()),
                _ => return Reply::Notice(STORED_CORRUPT.into()),
            }
        };
        let engine = self.locked.borrow().as_ref().and_then(|records| open_engine(records, key.as_ref()));
        match engine {
            Some(engine) => {
                *self.lock_key.borrow_mut() = key;
                self.locked.borrow_mut().take();
                self.run(engine);
                self.publish();
                Reply::Done
            }
            None => Reply::Notice(STORED_CORRUPT.into()),
        }
    }

    fn set_passphrase(&self, passphrase: Option<&str>) -> Reply {
        // The view checks it too; this holds for a command from any tab.
        if let Some(Err(refused)) = passphrase.map(lock::check_strength) {
            return Reply::Notice(refused.to_string());
        }
        let key = match passphrase {
            Some(p) => match LockKey::new(p, &mut browser::rng()) {
                Ok(key) => Some(key),
                Err(_) => return Reply::Notice("The passphrase lock could not be set.".into()),
            },
            None => None,
        };
        *self.lock_key.borrow_mut() = key;
        // Every record is sealed again under the new lock (or none), in one save.
        if let Some(engine) = self.engine.borrow_mut().as_mut() {
            engine.rewrite_all();
        }
        self.changed();
        Reply::Notice(
            if passphrase.is_some() { "Passphrase lock is on." } else { "Passphrase lock is off." }.into(),
        )
    }

    fn with_engine(&self, f: impl FnOnce(&mut Engine) -> Result<Reply, EngineError>) -> Reply {
        let result = match self.engine.borrow_mut().as_mut() {
            Some(engine) => f(engine),
            None => return Reply::Done,
        };
        self.changed();
        match result {
            Ok(reply) => reply,
            Err(err) => Reply::Notice(describe(&err)),
        }
    }

    /// The engine changed after a command: queue a save and the frames it produced; tabs are told
    /// once the save is over. So what the person sees they did (a message "waiting to send") is
    /// already stored: closing the browser right then loses nothing. The frames leave the tab as
    /// soon as the save is over, so the other person waits no longer for it.
    fn changed(&self) {
        self.queue_save(false);
    }

    /// The engine changed with what arrived from the relay: the views update first (the person
    /// waits for the message), then the save (which only holds back acknowledgements).
    fn received(&self) {
        self.queue_save(true);
    }

    fn queue_save(&self, views_first: bool) {
        let frames = match self.engine.borrow_mut().as_mut() {
            Some(engine) => engine.take_frames(),
            None => return,
        };
        // Views go first only when they hold nothing the person did that is not saved yet.
        if views_first && !self.publish_after_save.get() && !self.person_change_saving.get() {
            self.publish();
        } else {
            self.publish_after_save.set(true);
        }
        let _ = self.jobs.unbounded_send(frames);
    }

    /// What changed in the engine since the last save, sealed under the passphrase lock if set,
    /// and the names of the records to delete.
    fn records(&self) -> Option<(NamedRecords, Vec<String>)> {
        let records = self.engine.borrow_mut().as_mut()?.take_records();
        let deleted = records.deleted_names();
        let key = self.lock_key.borrow();
        let mut rng = browser::rng();
        let written = records
            .into_named()
            .map(|(name, bytes)| (name, lock::seal(&bytes, key.as_ref(), &mut rng)))
            .collect();
        Some((written, deleted))
    }

    async fn worker(me: Weak<Self>, mut queue: mpsc::UnboundedReceiver<Job>) {
        while let Some(first) = queue.next().await {
            let mut frames = first;
            while let Ok(more) = queue.try_recv() {
                frames.extend(more);
            }
            let Some(owner) = me.upgrade() else { return };
            // Taken after every queued change: one save covers all of them.
            let records = owner.records();
            // What the person did up to here is in this save; changes made while it runs set the
            // flag again and are shown after their own save.
            let show = owner.publish_after_save.take();
            owner.person_change_saving.set(show);
            let vault = owner.vault.borrow().clone();
            let saved = match (records, vault) {
                (Some((records, deleted)), Some(vault)) => vault.save(records, &deleted).await,
                _ => Ok(()),
            };
            owner.person_change_saving.set(false);
            if saved == Err(StorageError::Conflict) {
                // Another writer got there first: this tab's engine is behind what is stored, and
                // going on would fork the ratchet. Nothing it produced is sent.
                owner.stop_elsewhere();
                return;
            }
            if saved.is_err() {
                // Not saved: send nothing it produced, and write everything next time. Dropping
                // the connection makes the engine re-send its outbox after the next successful save.
                if let Some(engine) = owner.engine.borrow_mut().as_mut() {
                    engine.save_failed();
                }
                owner.report.reply(0, Reply::Notice(SAVE_FAILED.into()));
                owner.socket.borrow_mut().take();
                // (Which also shows the tabs where things stand.)
                owner.disconnected();
                continue;
            }
            if let Some(socket) = owner.socket.borrow().as_ref() {
                for frame in &frames {
                    socket.send(frame);
                }
            }
            if show {
                owner.publish();
            }
        }
    }

    /// Stops running the profile in this tab, sends nothing more, and says why.
    fn stop_elsewhere(&self) {
        self.engine.borrow_mut().take();
        self.socket.borrow_mut().take();
        self.retry.borrow_mut().take();
        self.connected.set(false);
        self.phase.set(Phase::Elsewhere);
        self.publish();
        self.report.reply(0, Reply::Notice(ELSEWHERE.into()));
    }

    /// A command another tab sealed under the profile's storage key (see `TabMessage::Sealed`).
    pub async fn open_sealed(&self, sealed: &[u8]) -> Option<Command> {
        let vault = self.vault.borrow().clone()?;
        let plain = vault.open_from_tabs(sealed).await.ok()?;
        postcard::from_bytes(&plain).ok()
    }

    fn connect(&self) {
        let me = self.me.clone();
        let socket = RelaySocket::connect(&settings::relay_url(), move |event| {
            if let Some(owner) = me.upgrade() {
                owner.on_socket(event);
            }
        });
        match socket {
            Ok(socket) => *self.socket.borrow_mut() = Some(socket),
            Err(_) => {
                self.failed.set(true);
                self.publish();
                self.schedule_reconnect();
            }
        }
    }

    fn on_socket(&self, event: SocketEvent) {
        match event {
            SocketEvent::Open => {
                self.backoff.set(BACKOFF_MS.0);
                // Subscribe proofs are bound to the relay the socket was opened to. A URL the engine
                // refuses (not http(s)/ws(s) with a plain host) leaves it offline: no Hello is sent.
                if let Some(engine) = self.engine.borrow_mut().as_mut() {
                    let _ = engine.on_connected(&settings::relay_url());
                }
                self.changed();
            }
            SocketEvent::Frame(frame) => {
                let now = browser::now();
                let events = match self.engine.borrow_mut().as_mut() {
                    Some(engine) => engine.on_frame(frame, now, &mut browser::rng()),
                    None => return,
                };
                let ready = self.engine.borrow().as_ref().is_some_and(Engine::is_connected);
                self.connected.set(ready);
                if ready {
                    self.failed.set(false);
                }
                for event in &events {
                    match event {
                        Event::ContactAdded(id) => self.report.reply(0, Reply::Open(*id)),
                        Event::MessageReceived(id) => {
                            let name = self
                                .engine
                                .borrow()
                                .as_ref()
                                .and_then(|e| e.contact(*id).map(|c| c.name.clone()));
                            if let Some(name) = name {
                                self.report.message_from(&name);
                            }
                        }
                        _ => {}
                    }
                }
                self.received();
            }
            SocketEvent::Malformed => {}
            SocketEvent::Closed => {
                self.socket.borrow_mut().take();
                self.disconnected();
            }
        }
    }

    fn disconnected(&self) {
        if let Some(engine) = self.engine.borrow_mut().as_mut() {
            engine.on_disconnected();
        }
        self.connected.set(false);
        self.failed.set(true);
        self.publish();
        self.schedule_reconnect();
    }

    fn schedule_reconnect(&self) {
        let delay = self.backoff.get();
        self.backoff.set((delay * 2).min(BACKOFF_MS.1));
        let me = self.me.clone();
        *self.retry.borrow_mut() = Some(Timeout::new(delay, move || {
            if let Some(owner) = me.upgrade()
                && owner.socket.borrow().is_none()
            {
                owner.connect();
            }
        }));
    }

    fn delete_all(&self) {
        self.engine.borrow_mut().take();
        self.socket.borrow_mut().take();
        self.retry.borrow_mut().take();
        self.lock_key.borrow_mut().take();
        let vault = self.vault.borrow_mut().take();
        let report = self.report.clone();
        wasm_bindgen_futures::spawn_local(async move {
            if let Some(vault) = vault {
                let _ = vault.wipe().await;
            }
            settings::clear();
            report.wiped();
        });
    }
}

/// An engine from stored records, opened with the passphrase lock's key if the profile has one.
fn open_engine(records: &NamedRecords, key: Option<&LockKey>) -> Option<Engine> {
    let opened: Vec<(&str, Zeroizing<Vec<u8>>)> = records
        .iter()
        .map(|(name, bytes)| Some((name.as_str(), lock::open_with(bytes, key).ok()?)))
        .collect::<Option<_>>()?;
    Engine::restore(opened.iter().map(|(name, bytes)| (*name, bytes.as_slice()))).ok()
}

const ELSEWHERE: &str = "This profile is open in another Doorless tab or window, or its storage was \
    changed outside this tab. This tab stopped so that the two cannot disagree: close the other tabs \
    and reload this one.";
const STORED_CORRUPT: &str = "The stored profile could not be read. You can start a new one.";
const SAVE_FAILED: &str =
    "Could not save (is the disk full?). Nothing unsaved was sent; Doorless will retry when it reconnects.";

/// Plain words for an engine error; never includes keys, names or ids.
pub fn describe(err: &EngineError) -> String {
    use client_wasm::core::InviteError;
    match err {
        EngineError::Invite(InviteError::Expired) => "This invite has expired. Ask for a new one.".into(),
        EngineError::Invite(_) => "This invite link is damaged or incomplete. Ask for a new one.".into(),
        EngineError::OwnInvite => {
            "This is your own invite. Send it to the person you want to talk to.".into()
        }
        EngineError::Handshake(_) => "This invite could not be used. Ask for a new one.".into(),
        EngineError::Session(_) => "The message could not be encrypted.".into(),
        EngineError::Content(_) => "The message is too long.".into(),
        EngineError::UnknownContact => "That conversation no longer exists.".into(),
        EngineError::Barred => {
            "You blocked this contact. Unblock them in the conversation menu to send.".into()
        }
        EngineError::EmptyMessage => "Type a message first.".into(),
        EngineError::InvalidName => "A name needs 1 to 64 characters.".into(),
        EngineError::SafetyNumberChanged => {
            "The safety number changed. Accept the new safety number before sending.".into()
        }
        EngineError::SafetyNumberMismatch => {
            "The safety number changed while it was shown. Compare the new one.".into()
        }
        EngineError::InviteConflict(InviteConflict::KnownContact(_)) => {
            "This invite is from someone already in your conversations. Open that conversation instead."
                .into()
        }
        EngineError::InviteConflict(InviteConflict::NameOfVerifiedContact(_)) => {
            "You already have a verified contact with this name, and this invite is from someone else. \
             It was not accepted: give them another name to accept it."
                .into()
        }
        EngineError::UnknownInvite => "That invite was already answered, revoked or expired.".into(),
        EngineError::InvalidRelayUrl => "The relay address is not a ws:// or wss:// address.".into(),
    }
}
