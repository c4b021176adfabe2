//! The messenger engine: contacts, mailboxes and conversations on top of the protocol core.
//!
//! Sans-IO like the core: the browser adapter feeds it relay frames, the time and a random number
//! generator, and sends the frames it returns. Nothing here touches a socket, a clock or storage,
//! so every behaviour of a conversation is testable natively.
//!
//! ```
//! use client_wasm::engine::Engine;
//! use rand_core::SeedableRng;
//!
//! let mut rng = rand_chacha::ChaCha20Rng::from_seed([7; 32]);
//! let mut alice = Engine::new("Alice", &mut rng);
//! let link = alice.create_invite(None, 1_700_000_000, &mut rng).unwrap();
//! assert!(!link.fragment.is_empty());
//! // Everything, sessions included, survives a round trip through storage.
//! let records: Vec<_> = alice.take_records().into_named().collect();
//! let restored = Engine::restore(records.iter().map(|(name, bytes)| (name.as_str(), &bytes[..]))).unwrap();
//! assert_eq!(restored.name(), "Alice");
//! ```

mod log;
mod mailbox;
mod snapshot;
mod view;

use std::collections::{BTreeMap, VecDeque};

use doorless_frames::{ErrorCode, Frame, MailboxId, RelayOrigin};
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};

use crate::core::{self, Content, Identity, Invite, InviteSecret, MessageId, Payload, SafetyNumber, Session};
pub use log::{CHUNK_LEN, Chunk, Log};
pub use mailbox::{Mailbox, SUBSCRIBE_BATCH};
pub use snapshot::{ChunkKey, LEGACY_RECORD, PROFILE_RECORD, Records, SnapshotError};
pub use view::{ContactView, ProfileView};

/// How long an invite stays valid.
pub const INVITE_TTL_SECS: u64 = 7 * 24 * 60 * 60;
/// Longest display name, in bytes (the invite carries at most this much).
pub const MAX_NAME_LEN: usize = core::MAX_INVITER_NAME_LEN;

/// A contact's handle inside one engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ContactId(pub u32);

/// Where an outgoing message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Delivery {
    /// Encrypted and waiting for the relay.
    Pending,
    /// The relay has stored it durably.
    Sent,
    /// The other side's engine decrypted it.
    Delivered,
}

/// What a conversation entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageKind {
    /// A text message.
    Text,
    /// A notice: the contact's safety number changed.
    SafetyNumberChanged,
}

/// One entry in a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Unique id carried inside the encryption (random for notices).
    pub id: MessageId,
    /// Text or notice.
    pub kind: MessageKind,
    /// Whether this side wrote it.
    pub outgoing: bool,
    /// The text (empty for notices).
    pub text: String,
    /// Sender's clock, unix seconds.
    pub sent_at: u64,
    /// This side's clock when it was written or received, unix seconds.
    pub received_at: u64,
    /// For outgoing messages, how far it got.
    pub delivery: Delivery,
}

/// A person this profile talks to.
#[derive(Debug)]
pub struct Contact {
    /// Handle.
    pub id: ContactId,
    /// Their display name, as they sent it.
    pub name: String,
    /// The ratchet session with them.
    session: Session,
    /// Our mailbox for this contact: they deposit here.
    inbox: Mailbox,
    /// Their mailbox for us: we deposit here.
    outbox: MailboxId,
    /// The conversation, oldest first.
    pub messages: Log,
    /// Incoming messages not yet seen.
    pub unread: u32,
    /// The person compared safety numbers and marked them verified.
    pub verified: bool,
    /// The safety number changed while verified: sending waits until the person accepts it.
    pub blocked: bool,
    /// Cached: derived from both identities.
    safety: SafetyNumber,
}

impl Contact {
    /// The safety number of this conversation.
    pub fn safety_number(&self) -> &SafetyNumber {
        &self.safety
    }

    /// Messages announced by the ratchet but not (yet) received: a gap the relay may have caused.
    pub fn missing(&self) -> usize {
        self.session.skipped_keys()
    }
}

/// A link made by [`Engine::create_invite`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteLink {
    /// The URL fragment (without `#`): the whole invite. Never sent to any server.
    pub fragment: String,
    /// Expiry, unix seconds.
    pub expires_at: u64,
}

/// An invite this profile made and nobody has answered yet.
#[derive(Debug)]
struct PendingInvite {
    secret: InviteSecret,
    inbox: Mailbox,
    /// Made from a conversation to re-establish it (after the contact lost their data, say).
    for_contact: Option<ContactId>,
}

/// Something the user interface shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A new contact was added (an invite was answered).
    ContactAdded(ContactId),
    /// A message arrived.
    MessageReceived(ContactId),
    /// An outgoing message's delivery state changed.
    DeliveryChanged(ContactId),
    /// The contact's identity key changed (a re-invite was answered by another key).
    SafetyNumberChanged(ContactId),
    /// The contact's display name changed.
    ProfileChanged(ContactId),
    /// The ratchet saw message numbers that have not arrived: dropped or delayed by the relay.
    Gap(ContactId),
    /// The relay refused something; the code is stable and contains no user data.
    RelayError(ErrorCode),
    /// A blob in one of our mailboxes could not be decrypted (tampered, replayed or foreign); it
    /// was dropped without touching any session.
    Undecryptable,
}

/// Why an engine operation failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The invite link could not be used.
    #[error(transparent)]
    Invite(#[from] core::InviteError),
    /// The handshake failed.
    #[error(transparent)]
    Handshake(#[from] core::HandshakeError),
    /// Encryption failed.
    #[error(transparent)]
    Session(#[from] core::SessionError),
    /// The message could not be encoded (it is too long, for example).
    #[error(transparent)]
    Content(#[from] core::ContentError),
    /// No contact with that id.
    #[error("unknown contact")]
    UnknownContact,
    /// The message is empty.
    #[error("empty message")]
    EmptyMessage,
    /// The display name is empty or too long.
    #[error("invalid display name")]
    InvalidName,
    /// This invite was made by this very profile.
    #[error("this is your own invite")]
    OwnInvite,
    /// The contact's safety number changed; sending waits until the change is accepted.
    #[error("safety number changed")]
    SafetyNumberChanged,
    /// The relay's address is not an `http(s)://` or `ws(s)://` URL with a plain host.
    #[error("invalid relay address")]
    InvalidRelayUrl,
}

/// The connection as the engine sees it.
#[derive(Debug, Default)]
enum Link {
    /// No socket.
    #[default]
    Down,
    /// Hello sent to the relay at this origin, waiting for the challenge.
    Greeting { origin: RelayOrigin },
    /// Subscribed (or subscribing) to the relay at this origin, with this challenge.
    Ready { origin: RelayOrigin, challenge: [u8; 32] },
}

/// A deposit waiting for the relay's `Deposited`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Outgoing {
    /// Destination mailbox id (raw: the frame crate's type has no serde).
    mailbox: [u8; 32],
    payload: Vec<u8>,
    /// The message it carries, for delivery state.
    message: Option<(ContactId, MessageId)>,
}

/// One profile's messenger state.
#[derive(Debug)]
pub struct Engine {
    identity: Identity,
    name: String,
    contacts: BTreeMap<ContactId, Contact>,
    invites: Vec<PendingInvite>,
    next_contact: u32,
    link: Link,
    /// Deposits not yet confirmed durable, in order; re-sent after a reconnect. Stored, so a crash
    /// after encrypting never loses a message (the ratchet has moved on; the ciphertext is kept).
    unconfirmed: VecDeque<(u32, Outgoing)>,
    next_request: u32,
    /// Blobs in our mailboxes that did not decrypt (tampering, replays, foreign data): a count only.
    undecryptable: u32,
    /// Frames for the socket.
    out: VecDeque<Frame>,
}

fn valid_name(name: &str) -> Result<String, EngineError> {
    let name = name.trim();
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(EngineError::InvalidName);
    }
    Ok(name.to_owned())
}

impl Engine {
    /// A new profile with a fresh identity. An invalid name is cut to fit (see [`MAX_NAME_LEN`]).
    pub fn new(name: &str, rng: &mut impl CryptoRng) -> Self {
        let mut name = name.trim().to_owned();
        while name.len() > MAX_NAME_LEN {
            name.pop();
        }
        Self::with_identity(Identity::generate(rng), name)
    }

    fn with_identity(identity: Identity, name: String) -> Self {
        Self {
            identity,
            name,
            contacts: BTreeMap::new(),
            invites: Vec::new(),
            next_contact: 1,
            link: Link::Down,
            unconfirmed: VecDeque::new(),
            next_request: 1,
            undecryptable: 0,
            out: VecDeque::new(),
        }
    }

    /// This profile's display name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// This profile's public identity.
    pub fn identity(&self) -> core::IdentityPublic {
        self.identity.public()
    }

    /// Contacts, in the order they were added.
    pub fn contacts(&self) -> impl Iterator<Item = &Contact> {
        self.contacts.values()
    }

    /// One contact.
    pub fn contact(&self, id: ContactId) -> Option<&Contact> {
        self.contacts.get(&id)
    }

    /// Whether the relay connection is ready.
    pub fn is_connected(&self) -> bool {
        matches!(self.link, Link::Ready { .. })
    }

    /// How many blobs in our mailboxes failed to decrypt since this profile was made.
    pub fn undecryptable(&self) -> u32 {
        self.undecryptable
    }

    /// Deposits the relay has not yet confirmed (the outbox).
    pub fn unconfirmed(&self) -> usize {
        self.unconfirmed.len()
    }

    /// Makes a one-time invite with a fresh mailbox to answer to. With `for_contact`, the answer
    /// re-establishes that conversation (and is checked against the contact's known identity).
    pub fn create_invite(
        &mut self,
        for_contact: Option<ContactId>,
        now: u64,
        rng: &mut impl CryptoRng,
    ) -> Result<InviteLink, EngineError> {
        if let Some(id) = for_contact {
            self.contacts.get(&id).ok_or(EngineError::UnknownContact)?;
        }
        let inbox = Mailbox::generate(rng);
        let (invite, secret) =
            core::create_invite(&self.identity, inbox.id().0, &self.name, now, INVITE_TTL_SECS, rng);
        self.subscribe(&inbox);
        let link = InviteLink { fragment: invite.to_fragment(), expires_at: invite.expires_at() };
        self.invites.push(PendingInvite { secret, inbox, for_contact });
        Ok(link)
    }

    /// Reads an invite link's fragment (for showing who invites, before accepting).
    pub fn read_invite(&self, fragment: &str, now: u64) -> Result<Invite, EngineError> {
        let invite = Invite::from_fragment(fragment, now)?;
        if invite.inviter().ct_eq(&self.identity.public()) {
            return Err(EngineError::OwnInvite);
        }
        Ok(invite)
    }

    /// Accepts an invite: runs the handshake, adds the contact and queues the first message.
    pub fn accept_invite(
        &mut self,
        fragment: &str,
        now: u64,
        rng: &mut impl CryptoRng,
    ) -> Result<ContactId, EngineError> {
        let invite = self.read_invite(fragment, now)?;
        let inbox = Mailbox::generate(rng);
        let hello =
            Payload::new(Content::Hello { name: self.name.clone(), reply_mailbox: inbox.id().0 }, now, rng);
        let (session, initial) = core::accept_invite(&self.identity, &invite, &hello.encode()?, now, rng)?;
        let outbox = MailboxId(invite.reply_mailbox());
        self.subscribe(&inbox);
        let id = self.add_contact(invite.inviter_name().to_owned(), session, inbox, outbox);
        self.deposit(Outgoing { mailbox: outbox.0, payload: initial, message: None });
        Ok(id)
    }

    /// Encrypts and queues a text message.
    pub fn send_text(
        &mut self,
        contact: ContactId,
        text: &str,
        now: u64,
        rng: &mut impl CryptoRng,
    ) -> Result<MessageId, EngineError> {
        if text.trim().is_empty() {
            return Err(EngineError::EmptyMessage);
        }
        let entry = self.contacts.get(&contact).ok_or(EngineError::UnknownContact)?;
        if entry.blocked {
            return Err(EngineError::SafetyNumberChanged);
        }
        let payload = Payload::new(Content::Text { body: text.to_owned() }, now, rng);
        let id = payload.id;
        self.send_payload(contact, &payload, Some(id), rng)?;
        if let Some(entry) = self.contacts.get_mut(&contact) {
            entry.messages.push(Message {
                id,
                kind: MessageKind::Text,
                outgoing: true,
                text: text.to_owned(),
                sent_at: now,
                received_at: now,
                delivery: Delivery::Pending,
            });
        }
        Ok(id)
    }

    /// Changes this profile's display name and tells every contact.
    pub fn set_name(&mut self, name: &str, now: u64, rng: &mut impl CryptoRng) -> Result<(), EngineError> {
        let name = valid_name(name)?;
        if name == self.name {
            return Ok(());
        }
        self.name = name.clone();
        let ids: Vec<ContactId> = self.contacts.keys().copied().collect();
        for id in ids {
            let payload = Payload::new(Content::Profile { name: name.clone() }, now, rng);
            self.send_payload(id, &payload, None, rng)?;
        }
        Ok(())
    }

    /// The person compared safety numbers: mark the contact verified.
    pub fn mark_verified(&mut self, contact: ContactId) -> Result<(), EngineError> {
        let entry = self.contacts.get_mut(&contact).ok_or(EngineError::UnknownContact)?;
        entry.verified = true;
        entry.blocked = false;
        Ok(())
    }

    /// The person accepts a changed safety number: sending is allowed again (the contact is no
    /// longer verified until compared again).
    pub fn accept_safety_number_change(&mut self, contact: ContactId) -> Result<(), EngineError> {
        let entry = self.contacts.get_mut(&contact).ok_or(EngineError::UnknownContact)?;
        entry.blocked = false;
        Ok(())
    }

    /// The person has seen the conversation.
    pub fn mark_read(&mut self, contact: ContactId) {
        if let Some(entry) = self.contacts.get_mut(&contact) {
            entry.unread = 0;
        }
    }

    /// The socket to the relay at `relay_url` opened: greet the relay. `relay_url` is the URL the
    /// socket was opened with (`wss://relay.example/ws`) or the relay's origin
    /// (`https://relay.example`): subscribe proofs are bound to that origin, so that no other relay
    /// can use them (docs/relay-protocol.md, "The subscribe proof").
    pub fn on_connected(&mut self, relay_url: &str) -> Result<(), EngineError> {
        let origin = RelayOrigin::parse(relay_url).map_err(|_| EngineError::InvalidRelayUrl)?;
        self.link = Link::Greeting { origin };
        self.out.push_back(Frame::Hello);
        Ok(())
    }

    /// The socket closed: unconfirmed deposits wait for the next connection.
    pub fn on_disconnected(&mut self) {
        self.link = Link::Down;
        self.out.clear();
    }

    /// Frames to send now, in order.
    pub fn take_frames(&mut self) -> Vec<Frame> {
        self.out.drain(..).collect()
    }

    /// Handles one frame from the relay.
    pub fn on_frame(&mut self, frame: Frame, now: u64, rng: &mut impl CryptoRng) -> Vec<Event> {
        let mut events = Vec::new();
        match frame {
            Frame::Challenge { challenge, .. } => {
                let origin = match std::mem::take(&mut self.link) {
                    Link::Greeting { origin } | Link::Ready { origin, .. } => origin,
                    // Not connected as far as the engine knows: nothing to sign for.
                    Link::Down => return events,
                };
                self.link = Link::Ready { origin, challenge };
                let inboxes: Vec<Mailbox> = self
                    .contacts
                    .values()
                    .map(|c| c.inbox.clone())
                    .chain(self.invites.iter().map(|i| i.inbox.clone()))
                    .collect();
                self.subscribe_all(&inboxes);
                let resend: Vec<Outgoing> = self.unconfirmed.drain(..).map(|(_, o)| o).collect();
                for outgoing in resend {
                    self.deposit(outgoing);
                }
            }
            Frame::Deposited { request } => {
                let pos = self.unconfirmed.iter().position(|(r, _)| *r == request);
                if let Some((_, outgoing)) = pos.and_then(|pos| self.unconfirmed.remove(pos))
                    && let Some((contact, id)) = outgoing.message
                {
                    self.set_delivery(contact, id, Delivery::Sent, &mut events);
                }
            }
            Frame::Deliver { mailbox, seq, payload } => {
                let before = events.len();
                self.receive(mailbox, &payload, now, rng, &mut events);
                let failed = events[before..].iter().filter(|e| **e == Event::Undecryptable).count();
                self.undecryptable =
                    self.undecryptable.saturating_add(u32::try_from(failed).unwrap_or(u32::MAX));
                // Acknowledge even what could not be decrypted: a blob that fails now fails forever,
                // and leaving it would make the relay deliver it again on every reconnect.
                self.out.push_back(Frame::Ack { mailbox, seq });
            }
            Frame::Error { code, .. } => events.push(Event::RelayError(code)),
            Frame::Ping { nonce } => self.out.push_back(Frame::Pong { nonce }),
            Frame::SubscribedBatch { results, .. } => {
                // A mailbox the relay refused stays offline; say so once per reason.
                let mut refused: Vec<ErrorCode> = Vec::new();
                for code in results.into_iter().flatten() {
                    if !refused.contains(&code) {
                        refused.push(code);
                        events.push(Event::RelayError(code));
                    }
                }
            }
            Frame::Subscribed { .. } | Frame::Pong { .. } => {}
            // Client-to-relay frames are not expected from the relay; ignore them.
            Frame::Hello
            | Frame::Subscribe { .. }
            | Frame::SubscribeBatch { .. }
            | Frame::Deposit { .. }
            | Frame::Ack { .. } => {}
        }
        events
    }

    fn receive(
        &mut self,
        mailbox: MailboxId,
        payload: &[u8],
        now: u64,
        rng: &mut impl CryptoRng,
        events: &mut Vec<Event>,
    ) {
        if let Some(contact) = self.contacts.values_mut().find(|c| c.inbox.id() == mailbox) {
            let id = contact.id;
            let missing_before = contact.session.skipped_keys();
            let Ok(plaintext) = contact.session.decrypt(payload) else {
                events.push(Event::Undecryptable);
                return;
            };
            if contact.session.skipped_keys() > missing_before {
                events.push(Event::Gap(id));
            }
            match Payload::decode(&plaintext) {
                Ok(content) => self.on_payload(id, content, now, rng, events),
                Err(_) => events.push(Event::Undecryptable),
            }
            return;
        }
        if let Some(pos) = self.invites.iter().position(|i| i.inbox.id() == mailbox) {
            self.answer_invite(pos, payload, now, events);
            return;
        }
        events.push(Event::Undecryptable);
    }

    fn answer_invite(&mut self, pos: usize, payload: &[u8], now: u64, events: &mut Vec<Event>) {
        // One-time: the invite's secrets are consumed (and zeroized) by the first answer, good or bad,
        // so a failed or replayed answer cannot be retried against them.
        let pending = self.invites.remove(pos);
        let Ok((session, first)) = pending.secret.respond(&self.identity, payload, now) else {
            events.push(Event::Undecryptable);
            return;
        };
        let hello = Payload::decode(&first).ok().and_then(|p| match p.content {
            Content::Hello { name, reply_mailbox } => Some((name, reply_mailbox)),
            _ => None,
        });
        let Some((name, reply)) = hello else {
            events.push(Event::Undecryptable);
            return;
        };
        let existing = pending.for_contact.and_then(|id| self.contacts.get_mut(&id));
        if let Some(contact) = existing {
            // A re-invite: same conversation, new session. A different identity is a key change.
            let changed = !contact.session.peer_identity().ct_eq(session.peer_identity());
            contact.safety = core::safety_number(&self.identity.public(), session.peer_identity());
            contact.session = session;
            contact.inbox = pending.inbox;
            contact.outbox = MailboxId(reply);
            contact.name = name;
            if changed {
                contact.blocked = contact.verified;
                contact.verified = false;
                contact.messages.push(Message {
                    id: [0; 16],
                    kind: MessageKind::SafetyNumberChanged,
                    outgoing: false,
                    text: String::new(),
                    sent_at: now,
                    received_at: now,
                    delivery: Delivery::Delivered,
                });
                events.push(Event::SafetyNumberChanged(contact.id));
            }
            return;
        }
        let id = self.add_contact(name, session, pending.inbox, MailboxId(reply));
        events.push(Event::ContactAdded(id));
    }

    fn on_payload(
        &mut self,
        contact: ContactId,
        payload: Payload,
        now: u64,
        rng: &mut impl CryptoRng,
        events: &mut Vec<Event>,
    ) {
        let Some(entry) = self.contacts.get_mut(&contact) else { return };
        match payload.content {
            Content::Text { body } => {
                let id = payload.id;
                // De-duplicate by message id: a deposit re-sent after a lost confirmation arrives twice.
                if !entry.messages.iter().any(|m| m.id == id && !m.outgoing) {
                    entry.messages.push(Message {
                        id,
                        kind: MessageKind::Text,
                        outgoing: false,
                        text: body,
                        sent_at: payload.sent_at,
                        received_at: now,
                        delivery: Delivery::Delivered,
                    });
                    entry.unread += 1;
                    events.push(Event::MessageReceived(contact));
                }
                // Tell the sender it arrived (again, if this was a duplicate: the first receipt may
                // be what got lost).
                let receipt = Payload::new(Content::Receipt { delivered: vec![id] }, now, rng);
                // A receipt that cannot be sent (blocked contact) is not worth an error.
                let _ = self.send_payload(contact, &receipt, None, rng);
            }
            Content::Receipt { delivered } => {
                for id in delivered {
                    self.set_delivery(contact, id, Delivery::Delivered, events);
                }
            }
            Content::Profile { name } => {
                if !name.trim().is_empty() {
                    entry.name = name;
                    events.push(Event::ProfileChanged(contact));
                }
            }
            // A second Hello inside an established session means nothing.
            Content::Hello { .. } => {}
        }
    }

    /// Encrypts `payload` for `contact` and queues the deposit.
    fn send_payload(
        &mut self,
        contact: ContactId,
        payload: &Payload,
        message: Option<MessageId>,
        rng: &mut impl CryptoRng,
    ) -> Result<(), EngineError> {
        let entry = self.contacts.get_mut(&contact).ok_or(EngineError::UnknownContact)?;
        let envelope = entry.session.encrypt(&payload.encode()?, rng)?;
        let mailbox = entry.outbox.0;
        self.deposit(Outgoing { mailbox, payload: envelope, message: message.map(|id| (contact, id)) });
        Ok(())
    }

    fn set_delivery(&mut self, contact: ContactId, id: MessageId, state: Delivery, events: &mut Vec<Event>) {
        let Some(log) = self.contacts.get_mut(&contact).map(|c| &mut c.messages) else { return };
        // Delivery only moves forward: a late `Deposited` must not undo a receipt.
        if let Some(index) = log.rposition(|m| m.outgoing && m.id == id)
            && rank(state) > rank(log[index].delivery)
        {
            log.update(index, |m| m.delivery = state);
            events.push(Event::DeliveryChanged(contact));
        }
    }

    fn add_contact(
        &mut self,
        name: String,
        session: Session,
        inbox: Mailbox,
        outbox: MailboxId,
    ) -> ContactId {
        let id = ContactId(self.next_contact);
        self.next_contact += 1;
        let safety = core::safety_number(&self.identity.public(), session.peer_identity());
        self.contacts.insert(
            id,
            Contact {
                id,
                name,
                session,
                inbox,
                outbox,
                messages: Log::default(),
                unread: 0,
                verified: false,
                blocked: false,
                safety,
            },
        );
        id
    }

    fn subscribe(&mut self, inbox: &Mailbox) {
        self.subscribe_all(std::slice::from_ref(inbox));
    }

    /// Subscribes to `inboxes` with as few frames as the batch size allows.
    fn subscribe_all(&mut self, inboxes: &[Mailbox]) {
        let Link::Ready { origin, challenge } = &self.link else { return };
        let (origin, challenge) = (origin.clone(), *challenge);
        for chunk in inboxes.chunks(SUBSCRIBE_BATCH) {
            let request = self.request_id();
            self.out.push_back(mailbox::subscribe_frame(request, &origin, &challenge, chunk));
        }
    }

    fn deposit(&mut self, outgoing: Outgoing) {
        let request = self.request_id();
        if matches!(self.link, Link::Ready { .. }) {
            self.out.push_back(Frame::Deposit {
                request,
                mailbox: MailboxId(outgoing.mailbox),
                payload: outgoing.payload.clone(),
            });
        }
        self.unconfirmed.push_back((request, outgoing));
    }

    fn request_id(&mut self) -> u32 {
        let id = self.next_request;
        self.next_request = self.next_request.wrapping_add(1).max(1);
        id
    }
}

fn rank(delivery: Delivery) -> u8 {
    match delivery {
        Delivery::Pending => 0,
        Delivery::Sent => 1,
        Delivery::Delivered => 2,
    }
}
