//! The owner tab: it alone runs the engine, holds the relay connections and writes storage.
//!
//! One connection per relay the engine needs (`Engine::relays`): the home relay always, a
//! contact's relay while a deposit waits for it (opened on demand, closed by the worker once
//! nothing waits), each with its own backoff.
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
use client_wasm::engine::{
    ContactId, Engine, EngineError, Event, FetchId, INVITE_FETCH_TIMEOUT_SECS, InviteConflict, InviteLink,
    LEGACY_RECORD, PROFILE_RECORD, ShortInviteError, relay_address,
};
use client_wasm::lock::{self, LockError, LockKey};
use doorless_frames::{Frame, RelayOrigin};
use futures_channel::mpsc;
use futures_util::StreamExt;
use gloo::timers::callback::{Interval, Timeout};
use zeroize::Zeroizing;

use super::protocol::{Command, Connection, Passphrase, Phase, Reply, Shared};
use super::settings;

/// Reconnection waits, in milliseconds: doubled from the first up to the last.
const BACKOFF_MS: (u32, u32) = (250, 10_000);

/// Work for the save-then-send worker: frames an engine change produced, each with the relay it
/// goes to (maybe none: the change still needs saving).
type Job = Vec<(RelayOrigin, Frame)>;

/// One relay connection.
struct Conn {
    origin: RelayOrigin,
    socket: Option<RelaySocket>,
    retry: Option<Timeout>,
    /// The next reconnection wait, in milliseconds.
    backoff: u32,
    /// The engine is subscribed and sends on it.
    ready: bool,
    /// An attempt failed or the connection dropped since it was last ready.
    failed: bool,
}

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
    /// Stored records of a locked profile, until unlocked.
    locked: RefCell<Option<NamedRecords>>,
    lock_key: RefCell<Option<LockKey>>,
    vault: RefCell<Option<Rc<Vault>>>,
    /// The relay connections (the home relay's first once the engine runs).
    conns: RefCell<Vec<Conn>>,
    jobs: mpsc::UnboundedSender<Job>,
    /// What the person did is saved and not yet shown: the worker shows it once the save is over.
    publish_after_save: Cell<bool>,
    /// A save that holds something the person did is running: until it is over, nothing is shown
    /// early (a message arriving meanwhile would otherwise show the unsaved change with it).
    person_change_saving: Cell<bool>,
    /// Commands that arrived while storage was still being read.
    waiting: RefCell<Vec<(u32, Command)>>,
    /// Invites whose short link comes once the relay stored their bundle, with the tab that asked.
    awaiting_links: RefCell<Vec<(u32, InviteLink)>>,
    /// Short links whose invite is being fetched: the fetch, the tab that asked, the link, and the
    /// timer that gives up on it.
    fetches: RefCell<Vec<(FetchId, u32, String, Timeout)>>,
    /// This tab's id.
    tab: u32,
    report: Rc<dyn Report>,
    /// Runs the engine's schedule (inbox rotation, old inboxes dropped) while the profile is open.
    schedule: RefCell<Option<Interval>>,
}

impl Owner {
    /// Becomes the owner: opens storage, restores the profile, connects.
    pub fn start(tab: u32, report: Rc<dyn Report>) -> Rc<Self> {
        let (jobs, queue) = mpsc::unbounded();
        let owner = Rc::new_cyclic(|me| Self {
            me: me.clone(),
            engine: RefCell::new(None),
            phase: Cell::new(Phase::Loading),
            locked: RefCell::new(None),
            lock_key: RefCell::new(None),
            vault: RefCell::new(None),
            conns: RefCell::new(Vec::new()),
            jobs,
            publish_after_save: Cell::new(false),
            person_change_saving: Cell::new(false),
            waiting: RefCell::new(Vec::new()),
            awaiting_links: RefCell::new(Vec::new()),
            fetches: RefCell::new(Vec::new()),
            tab,
            report,
            schedule: RefCell::new(None),
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

    fn run(&self, mut engine: Engine) {
        // The relay this copy of the app talks to (or the one set in Settings) is home. A
        // profile of an earlier release has every address there. An address the engine refuses
        // leaves it without a home: offline.
        let _ = engine.set_home_relay(&settings::relay_url());
        *self.engine.borrow_mut() = Some(engine);
        self.phase.set(Phase::Ready);
        self.sync_conns(false);
        let me = self.me.clone();
        *self.schedule.borrow_mut() = Some(Interval::new(SCHEDULE_MS, move || {
            if let Some(owner) = me.upgrade() {
                owner.tick();
            }
        }));
    }

    /// The engine's schedule: inboxes due are rotated, old inboxes no longer needed are dropped.
    fn tick(&self) {
        if let Some(engine) = self.engine.borrow_mut().as_mut() {
            engine.tick(browser::now(), &mut browser::rng());
        }
        self.changed();
    }

    /// The state all tabs show.
    pub fn shared(&self) -> Shared {
        let engine = self.engine.borrow();
        let home = engine.as_ref().and_then(|e| e.home_relay().cloned());
        let conns = self.conns.borrow();
        let home_conn = conns.iter().find(|c| Some(&c.origin) == home.as_ref());
        // Contacts whose deposits wait for a relay that could not be reached.
        let mut unreachable: Vec<ContactId> = Vec::new();
        for need in engine.as_ref().map(Engine::relays).unwrap_or_default() {
            if !need.home && conns.iter().any(|c| c.origin == need.origin && c.failed && !c.ready) {
                unreachable.extend(need.waiting);
            }
        }
        Shared {
            phase: self.phase.get(),
            connection: match (self.phase.get(), home_conn.map(|c| (c.ready, c.failed))) {
                (Phase::Ready, Some((true, _))) => Connection::Connected,
                (Phase::Ready, Some((false, false))) => Connection::Connecting,
                (Phase::Ready, _) => Connection::Offline,
                _ => Connection::Idle,
            },
            unreachable,
            locked_with_passphrase: self.lock_key.borrow().is_some() || self.locked.borrow().is_some(),
            persistent: self.vault.borrow().is_some(),
            owner_tab: self.tab,
            view: engine.as_ref().map(Engine::view).unwrap_or_default(),
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
                let link = match for_name.as_deref().filter(|n| !n.trim().is_empty()) {
                    Some(name) if for_contact.is_none() => e.create_invite_for(name, now, &mut rng),
                    _ => e.create_invite(for_contact, now, &mut rng),
                }?;
                // The short link is shown once the relay stored the invite's bundle; an invite
                // without one (too long to seal) is shown as a full link at once.
                if e.short_link_pending(link.invite) {
                    self.awaiting_links.borrow_mut().push((from, link));
                    Ok(Reply::Done)
                } else {
                    Ok(Reply::InviteMade(link))
                }
            }),
            Command::FetchInvite { fragment } => {
                let fetched = self.engine.borrow_mut().as_mut().map(|e| e.fetch_invite(&fragment, now));
                match fetched {
                    Some(Ok(id)) => {
                        let me = self.me.clone();
                        let timer =
                            Timeout::new((INVITE_FETCH_TIMEOUT_SECS as u32) * 1000 + 100, move || {
                                if let Some(owner) = me.upgrade() {
                                    let events = match owner.engine.borrow_mut().as_mut() {
                                        Some(engine) => engine.check_invite_fetches(browser::now()),
                                        None => return,
                                    };
                                    owner.on_events(&events);
                                    owner.changed();
                                }
                            });
                        self.fetches.borrow_mut().push((id, from, fragment, timer));
                        self.changed();
                        Reply::Done
                    }
                    Some(Err(err)) => Reply::InviteFetched { short: fragment, full: Err(describe(&err)) },
                    None => Reply::Done,
                }
            }
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
            Command::SendAttachment { contact, attachment } => self
                .with_engine(|e| e.send_attachment(contact, *attachment, now, &mut rng).map(|_| Reply::Done)),
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
                // The relay address in Settings changed: that relay is home from now on.
                if let Some(engine) = self.engine.borrow_mut().as_mut() {
                    let _ = engine.set_home_relay(&settings::relay_url());
                }
                self.disconnect_all();
                Reply::Done
            }
            Command::MoveTo { address } => match relay_address(&address) {
                Err(refused) => Reply::Notice(refused.to_string()),
                Ok(origin) => {
                    let reply =
                        self.with_engine(|e| e.move_to(origin.as_str(), now, &mut rng).map(|()| Reply::Done));
                    // This copy of the app opens the profile on the new relay from now on.
                    settings::set_relay_url(&settings::socket_url(&origin));
                    self.sync_conns(false);
                    self.publish();
                    reply
                }
            },
            Command::RetryNow => {
                // Scheduled attempts are dropped and the waits start again from the shortest.
                let idle: Vec<RelayOrigin> = self
                    .conns
                    .borrow_mut()
                    .iter_mut()
                    .filter(|c| c.socket.is_none())
                    .map(|c| {
                        c.retry = None;
                        c.backoff = BACKOFF_MS.0;
                        c.origin.clone()
                    })
                    .collect();
                for origin in idle {
                    self.connect(&origin);
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
            Some(engine) => engine.take_relay_frames(),
            None => return,
        };
        // A relay needed now (a deposit for a contact on it) is connected at once; idle ones are
        // closed by the worker, outside the socket's own event handlers.
        self.sync_conns(false);
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
                // (Which also shows the tabs where things stand.)
                owner.disconnect_all();
                continue;
            }
            {
                let conns = owner.conns.borrow();
                for (origin, frame) in &frames {
                    if let Some(socket) =
                        conns.iter().find(|c| c.origin == *origin).and_then(|c| c.socket.as_ref())
                    {
                        socket.send(frame);
                    }
                }
            }
            owner.sync_conns(true);
            if show {
                owner.publish();
            }
        }
    }

    /// Stops running the profile in this tab, sends nothing more, and says why.
    fn stop_elsewhere(&self) {
        self.engine.borrow_mut().take();
        self.conns.borrow_mut().clear();
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

    /// Opens a connection to every relay the engine needs that has none; with `close`, also
    /// closes the connections to relays it no longer needs (never the home relay's). Not called
    /// with `close` from a socket's own event handler, which closing would drop mid-call.
    fn sync_conns(&self, close: bool) {
        let needed: Vec<RelayOrigin> = match self.engine.borrow().as_ref() {
            Some(engine) => engine.relays().into_iter().map(|u| u.origin).collect(),
            None => return,
        };
        if close {
            let idle: Vec<RelayOrigin> = self
                .conns
                .borrow()
                .iter()
                .filter(|c| !needed.contains(&c.origin))
                .map(|c| c.origin.clone())
                .collect();
            if !idle.is_empty() {
                self.conns.borrow_mut().retain(|c| !idle.contains(&c.origin));
                if let Some(engine) = self.engine.borrow_mut().as_mut() {
                    idle.iter().for_each(|origin| engine.on_relay_disconnected(origin));
                }
            }
        }
        for origin in needed {
            if self.conns.borrow().iter().any(|c| c.origin == origin) {
                continue;
            }
            self.conns.borrow_mut().push(Conn {
                origin: origin.clone(),
                socket: None,
                retry: None,
                backoff: BACKOFF_MS.0,
                ready: false,
                failed: false,
            });
            self.connect(&origin);
        }
    }

    /// Runs `f` on the connection to `origin`, if there is one.
    fn with_conn<T>(&self, origin: &RelayOrigin, f: impl FnOnce(&mut Conn) -> T) -> Option<T> {
        self.conns.borrow_mut().iter_mut().find(|c| c.origin == *origin).map(f)
    }

    fn connect(&self, origin: &RelayOrigin) {
        let me = self.me.clone();
        let from = origin.clone();
        let socket = RelaySocket::connect(&settings::socket_url(origin), move |event| {
            if let Some(owner) = me.upgrade() {
                owner.on_socket(&from, event);
            }
        });
        match socket {
            Ok(socket) => {
                self.with_conn(origin, |c| c.socket = Some(socket));
            }
            Err(_) => {
                self.with_conn(origin, |c| c.failed = true);
                self.publish();
                self.schedule_reconnect(origin);
            }
        }
    }

    fn on_socket(&self, origin: &RelayOrigin, event: SocketEvent) {
        match event {
            SocketEvent::Open => {
                self.with_conn(origin, |c| c.backoff = BACKOFF_MS.0);
                // Subscribe proofs are bound to the relay the socket was opened to.
                if let Some(engine) = self.engine.borrow_mut().as_mut() {
                    let _ = engine.on_connected(origin.as_str());
                    engine.tick(browser::now(), &mut browser::rng());
                }
                self.changed();
            }
            SocketEvent::Frame(frame) => {
                let now = browser::now();
                let events = match self.engine.borrow_mut().as_mut() {
                    Some(engine) => engine.on_relay_frame(origin, frame, now, &mut browser::rng()),
                    None => return,
                };
                let ready = self.engine.borrow().as_ref().is_some_and(|e| e.is_connected_to(origin));
                self.with_conn(origin, |c| {
                    c.ready = ready;
                    if ready {
                        c.failed = false;
                    }
                });
                self.on_events(&events);
                self.received();
            }
            SocketEvent::Malformed => {}
            SocketEvent::Closed => self.disconnected(origin),
        }
    }

    /// Tells the tabs what the engine's events mean for them.
    fn on_events(&self, events: &[Event]) {
        for event in events {
            match event {
                Event::ContactAdded(id) => self.report.reply(0, Reply::Open(*id)),
                Event::MessageReceived(id) => {
                    let name =
                        self.engine.borrow().as_ref().and_then(|e| e.contact(*id).map(|c| c.name.clone()));
                    if let Some(name) = name {
                        self.report.message_from(&name);
                    }
                }
                Event::ShortLinkReady(invite) => {
                    let waiting = {
                        let mut awaiting = self.awaiting_links.borrow_mut();
                        let pos = awaiting.iter().position(|(_, link)| link.invite == *invite);
                        pos.map(|pos| awaiting.remove(pos))
                    };
                    let short = self.engine.borrow().as_ref().and_then(|e| e.short_link(*invite));
                    if let (Some((to, link)), Some(fragment)) = (waiting, short) {
                        self.report.reply(to, Reply::InviteMade(InviteLink { fragment, ..link }));
                    }
                }
                Event::InviteFetched(id) | Event::InviteFetchFailed(id, _) => {
                    let fetch = {
                        let mut fetches = self.fetches.borrow_mut();
                        let pos = fetches.iter().position(|(f, ..)| f == id);
                        pos.map(|pos| fetches.remove(pos))
                    };
                    let Some((_, to, short, timer)) = fetch else { continue };
                    // Not dropped here: this may run inside the timer's own callback. Firing
                    // later finds the fetch over and does nothing.
                    timer.forget();
                    let full = match event {
                        Event::InviteFetchFailed(_, err) => Err(describe_fetch(err)),
                        _ => self
                            .engine
                            .borrow_mut()
                            .as_mut()
                            .and_then(|e| e.take_fetched_invite(*id))
                            .ok_or_else(|| describe_fetch(&ShortInviteError::Gone { relay: String::new() })),
                    };
                    self.report.reply(to, Reply::InviteFetched { short, full });
                }
                _ => {}
            }
        }
    }

    /// The connection to `origin` closed (or is closed): what waits for it waits; retry later.
    fn disconnected(&self, origin: &RelayOrigin) {
        let socket = self.with_conn(origin, |c| {
            c.ready = false;
            c.failed = true;
            c.socket.take()
        });
        if let Some(engine) = self.engine.borrow_mut().as_mut() {
            engine.on_relay_disconnected(origin);
        }
        self.publish();
        self.schedule_reconnect(origin);
        // Dropped last: this may run inside the socket's own close handler.
        drop(socket);
    }

    /// Closes every connection and retries each.
    fn disconnect_all(&self) {
        let origins: Vec<RelayOrigin> = self.conns.borrow().iter().map(|c| c.origin.clone()).collect();
        for origin in origins {
            self.disconnected(&origin);
        }
        // The home relay may have changed (Settings): connect to what is needed now.
        self.sync_conns(true);
    }

    fn schedule_reconnect(&self, origin: &RelayOrigin) {
        let me = self.me.clone();
        let to = origin.clone();
        self.with_conn(origin, |c| {
            let delay = c.backoff;
            c.backoff = (delay * 2).min(BACKOFF_MS.1);
            c.retry = Some(Timeout::new(delay, move || {
                if let Some(owner) = me.upgrade()
                    && owner.with_conn(&to, |c| c.socket.is_none()) == Some(true)
                {
                    owner.connect(&to);
                }
            }));
        });
    }

    fn delete_all(&self) {
        self.engine.borrow_mut().take();
        self.conns.borrow_mut().clear();
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

/// How often the engine's schedule runs (inboxes rotate weekly; this only bounds the delay).
const SCHEDULE_MS: u32 = 10 * 60 * 1000;

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
        EngineError::ShortLink(client_wasm::core::ShortLinkError::UnsupportedVersion) => {
            "This invite was made by a newer version of Doorless. Reload the page, or ask for a new invite."
                .into()
        }
        EngineError::ShortLink(_) => "This invite link is damaged or incomplete. Ask for a new one.".into(),
    }
}

/// Plain words for a short link whose invite could not be fetched: the relay the link names, and
/// nothing else from the link.
pub fn describe_fetch(err: &ShortInviteError) -> String {
    match err {
        ShortInviteError::Altered { relay } => format!(
            "The invite from {relay} was altered on the way, so Doorless refused it. \
             Ask for a new invite, sent another way."
        ),
        ShortInviteError::Withheld { relay } => format!(
            "{relay} did not hand over the invite in time. It may be down, or it may be holding \
             the invite back. Try again later, or ask for a new invite."
        ),
        ShortInviteError::Gone { .. } => {
            "This invite was already used, revoked or has expired. Ask for a new one.".into()
        }
        ShortInviteError::Invite(err) => describe(&EngineError::Invite(*err)),
    }
}
