//! The messenger engine: contacts, mailboxes and conversations on top of the protocol core.
//!
//! Sans-IO like the core: the browser adapter feeds it relay frames, the time and a random number
//! generator, and sends the frames it returns. Nothing here touches a socket, a clock or storage,
//! so every behaviour of a conversation is testable natively.
//!
//! ```
//! use client_wasm::engine::Engine;
//! # let mut rng = rand_chacha::ChaCha20Rng::from_seed([7; 32]);
//! # use rand_core::SeedableRng;
//! let mut alice = Engine::new("Alice", &mut rng);
//! let link = alice.create_invite(1_700_000_000, &mut rng).unwrap();
//! assert!(!link.fragment.is_empty());
//! ```

mod mailbox;

use std::collections::{BTreeMap, VecDeque};

use doorless_frames::{ErrorCode, Frame, MailboxId};
use rand_core::CryptoRng;

use crate::core::{self, Content, Identity, Invite, InviteSecret, Payload, Session};
pub use mailbox::Mailbox;

/// How long an invite stays valid.
pub const INVITE_TTL_SECS: u64 = 7 * 24 * 60 * 60;

/// A contact's handle inside one engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContactId(pub u32);

/// Where an outgoing message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Encrypted and waiting for the relay.
    Pending,
    /// The relay has stored it durably.
    Sent,
    /// The other side's engine decrypted it.
    Delivered,
}

/// One message in a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Unique id carried inside the encryption.
    pub id: [u8; 16],
    /// Whether this side wrote it.
    pub outgoing: bool,
    /// The text.
    pub text: String,
    /// Sender's clock, unix seconds.
    pub sent_at: u64,
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
    pub messages: Vec<Message>,
}

/// A link made by [`Engine::create_invite`].
#[derive(Debug, Clone, PartialEq, Eq)]
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
}

/// Something the user interface shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A new contact was added (an invite was answered or accepted).
    ContactAdded(ContactId),
    /// A message arrived.
    MessageReceived(ContactId),
    /// An outgoing message's delivery state changed.
    DeliveryChanged(ContactId),
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
    /// This invite was made by this very profile.
    #[error("this is your own invite")]
    OwnInvite,
}

/// The connection as the engine sees it.
#[derive(Debug, Default)]
enum Link {
    /// No socket.
    #[default]
    Down,
    /// Hello sent, waiting for the challenge.
    Greeting,
    /// Subscribed (or subscribing) with this challenge.
    Ready { challenge: [u8; 32] },
}

/// A deposit waiting for the relay's `Deposited`.
#[derive(Debug, Clone)]
struct Outgoing {
    mailbox: MailboxId,
    payload: Vec<u8>,
    /// The message it carries, for delivery state.
    message: Option<(ContactId, [u8; 16])>,
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
    /// Deposits not yet confirmed durable, in order; re-sent after a reconnect.
    unconfirmed: VecDeque<(u32, Outgoing)>,
    next_request: u32,
    /// Frames for the socket.
    out: VecDeque<Frame>,
}

impl Engine {
    /// A new profile with a fresh identity.
    pub fn new(name: &str, rng: &mut impl CryptoRng) -> Self {
        Self {
            identity: Identity::generate(rng),
            name: name.trim().to_owned(),
            contacts: BTreeMap::new(),
            invites: Vec::new(),
            next_contact: 1,
            link: Link::Down,
            unconfirmed: VecDeque::new(),
            next_request: 1,
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

    /// Makes a one-time invite with a fresh mailbox to answer to.
    pub fn create_invite(&mut self, now: u64, rng: &mut impl CryptoRng) -> Result<InviteLink, EngineError> {
        let inbox = Mailbox::generate(rng);
        let (invite, secret) =
            core::create_invite(&self.identity, inbox.id().0, &self.name, now, INVITE_TTL_SECS, rng);
        self.subscribe(&inbox);
        let link = InviteLink { fragment: invite.to_fragment(), expires_at: invite.expires_at() };
        self.invites.push(PendingInvite { secret, inbox });
        Ok(link)
    }

    /// Reads an invite link's fragment (for showing who invites, before accepting).
    pub fn read_invite(&self, fragment: &str, now: u64) -> Result<Invite, EngineError> {
        let invite = Invite::from_fragment(fragment, now)?;
        if invite.inviter() == &self.identity.public() {
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
        self.deposit(Outgoing { mailbox: outbox, payload: initial, message: None });
        Ok(id)
    }

    /// Encrypts and queues a text message.
    pub fn send_text(
        &mut self,
        contact: ContactId,
        text: &str,
        now: u64,
        rng: &mut impl CryptoRng,
    ) -> Result<[u8; 16], EngineError> {
        if text.trim().is_empty() {
            return Err(EngineError::EmptyMessage);
        }
        let entry = self.contacts.get_mut(&contact).ok_or(EngineError::UnknownContact)?;
        let content = Payload::new(Content::Text { body: text.to_owned() }, now, rng);
        let payload = entry.session.encrypt(&content.encode()?, rng)?;
        let id = content.id;
        entry.messages.push(Message {
            id,
            outgoing: true,
            text: text.to_owned(),
            sent_at: now,
            delivery: Delivery::Pending,
        });
        let mailbox = entry.outbox;
        self.deposit(Outgoing { mailbox, payload, message: Some((contact, id)) });
        Ok(id)
    }

    /// The socket opened: greet the relay.
    pub fn on_connected(&mut self) {
        self.link = Link::Greeting;
        self.out.push_back(Frame::Hello);
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
                self.link = Link::Ready { challenge };
                let inboxes: Vec<Mailbox> = self
                    .contacts
                    .values()
                    .map(|c| c.inbox.clone())
                    .chain(self.invites.iter().map(|i| i.inbox.clone()))
                    .collect();
                for inbox in &inboxes {
                    self.subscribe(inbox);
                }
                let resend: Vec<Outgoing> = self.unconfirmed.drain(..).map(|(_, o)| o).collect();
                for outgoing in resend {
                    self.deposit(outgoing);
                }
            }
            Frame::Deposited { request } => {
                if let Some(pos) = self.unconfirmed.iter().position(|(r, _)| *r == request) {
                    if let Some((_, outgoing)) = self.unconfirmed.remove(pos) {
                        if let Some((contact, id)) = outgoing.message {
                            self.set_delivery(contact, id, Delivery::Sent, &mut events);
                        }
                    }
                }
            }
            Frame::Deliver { mailbox, seq, payload } => {
                self.receive(mailbox, &payload, now, rng, &mut events);
                // Acknowledge even what could not be decrypted: a blob that fails now fails forever,
                // and leaving it would make the relay deliver it again on every reconnect.
                self.out.push_back(Frame::Ack { mailbox, seq });
            }
            Frame::Error { code, .. } => events.push(Event::RelayError(code)),
            Frame::Ping { nonce } => self.out.push_back(Frame::Pong { nonce }),
            Frame::Subscribed { .. } | Frame::Pong { .. } => {}
            // Client-to-relay frames are not expected from the relay; ignore them.
            Frame::Hello | Frame::Subscribe { .. } | Frame::Deposit { .. } | Frame::Ack { .. } => {}
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
            let Ok(plaintext) = contact.session.decrypt(payload) else {
                events.push(Event::Undecryptable);
                return;
            };
            match Payload::decode(&plaintext) {
                Ok(content) => self.on_content(id, content, now, rng, events),
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
        let id = self.add_contact(name, session, pending.inbox, MailboxId(reply));
        events.push(Event::ContactAdded(id));
    }

    fn on_content(
        &mut self,
        contact: ContactId,
        payload: Payload,
        _now: u64,
        _rng: &mut impl CryptoRng,
        events: &mut Vec<Event>,
    ) {
        let Some(entry) = self.contacts.get_mut(&contact) else { return };
        if let Content::Text { body } = payload.content {
            let id = payload.id;
            // De-duplicate by message id: a deposit re-sent after a lost confirmation arrives twice.
            if entry.messages.iter().any(|m| m.id == id && !m.outgoing) {
                return;
            }
            entry.messages.push(Message {
                id,
                outgoing: false,
                text: body,
                sent_at: payload.sent_at,
                delivery: Delivery::Delivered,
            });
            events.push(Event::MessageReceived(contact));
        }
    }

    fn set_delivery(&mut self, contact: ContactId, id: [u8; 16], state: Delivery, events: &mut Vec<Event>) {
        if let Some(message) =
            self.contacts.get_mut(&contact).and_then(|c| c.messages.iter_mut().find(|m| m.id == id))
        {
            if message.delivery == Delivery::Pending || state == Delivery::Delivered {
                message.delivery = state;
                events.push(Event::DeliveryChanged(contact));
            }
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
        self.contacts.insert(id, Contact { id, name, session, inbox, outbox, messages: Vec::new() });
        id
    }

    fn subscribe(&mut self, inbox: &Mailbox) {
        if let Link::Ready { challenge } = self.link {
            let request = self.request_id();
            self.out.push_back(inbox.subscribe_frame(request, &challenge));
        }
    }

    fn deposit(&mut self, outgoing: Outgoing) {
        let request = self.request_id();
        if matches!(self.link, Link::Ready { .. }) {
            self.out.push_back(Frame::Deposit {
                request,
                mailbox: outgoing.mailbox,
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
