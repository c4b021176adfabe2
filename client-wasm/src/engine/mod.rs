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

mod attach;
mod log;
mod mailbox;
mod moving;
mod short_links;
mod snapshot;
mod view;

use std::collections::{BTreeMap, VecDeque};
use std::mem::take;

use doorless_frames::{ErrorCode, Frame, MailboxId, RelayOrigin};
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};

use crate::core::content::AttachmentRef;
use crate::core::{
    self, Content, EnvelopeKind, INVITE_RESPONSE_GRACE_SECS, Identity, IdentityPublic, Invite, InviteSecret,
    MessageId, Payload, SafetyNumber, Session,
};
pub use log::{CHUNK_LEN, Chunk, Log};
pub use mailbox::{Mailbox, SUBSCRIBE_BATCH};
pub use moving::{MoveProgress, OLD_INBOX_SECS, ROTATION_SECS, RelayAddressError, RelayInUse, relay_address};
pub use short_links::{FetchId, INVITE_FETCH_TIMEOUT_SECS, ShortInviteError};
pub use snapshot::{ChunkKey, LEGACY_RECORD, PROFILE_RECORD, Records, SnapshotError};
pub use view::{ContactView, InviteView, ProfileView, RelayView};

/// How long an invite stays valid.
pub const INVITE_TTL_SECS: u64 = 7 * 24 * 60 * 60;
/// Longest display name, in bytes (the invite carries at most this much).
pub const MAX_NAME_LEN: usize = core::MAX_INVITER_NAME_LEN;

/// Blobs in an invite's mailbox that fail to answer it before the invite is retired (deleted,
/// zeroized, no longer subscribed): enough for a relay's retries and a few strays, few enough that
/// a stranger with the link cannot make the inviter try answers without end.
pub const MAX_FAILED_ANSWERS: u32 = 16;

/// Why [`Engine::accept_invite`] asks the person before it goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum InviteConflict {
    /// The inviter's identity is already this contact's: accepting re-establishes that
    /// conversation (a new session) instead of making a second contact.
    KnownContact(ContactId),
    /// A different identity uses the display name of this verified contact: accepting makes a
    /// new, unverified contact.
    NameOfVerifiedContact(ContactId),
}

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
    /// A notice: this many of the contact's messages can no longer be received (a gap longer than
    /// the ratchet keeps keys for: the relay dropped them, or they expired while nobody read them).
    Lost {
        /// How many.
        count: u32,
    },
    /// A notice: the contact now calls themselves the message's `text` (a name they sent; the name
    /// this profile gave them stays).
    Renamed,
    /// A file ([`Message::attachment`]); `text` is its file name.
    Attachment,
}

/// One entry in a conversation. `Debug` prints no text.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Unique id carried inside the encryption (random for notices).
    pub id: MessageId,
    /// Text or notice.
    pub kind: MessageKind,
    /// Whether this side wrote it.
    pub outgoing: bool,
    /// The text (empty for notices, except [`MessageKind::Renamed`]: the name they sent).
    pub text: String,
    /// Sender's clock, unix seconds.
    pub sent_at: u64,
    /// This side's clock when it was written or received, unix seconds.
    pub received_at: u64,
    /// For outgoing messages, how far it got.
    pub delivery: Delivery,
    /// For [`MessageKind::Attachment`], where the file is and how to open it (secret).
    pub attachment: Option<Box<AttachmentRef>>,
}

impl Message {
    /// A message from a contact, as received.
    fn incoming(id: MessageId, kind: MessageKind, text: String, sent_at: u64, now: u64) -> Self {
        let delivery = Delivery::Delivered;
        Self { id, kind, outgoing: false, text, sent_at, received_at: now, delivery, attachment: None }
    }
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("kind", &self.kind)
            .field("outgoing", &self.outgoing)
            .field("len", &self.text.len())
            .field("delivery", &self.delivery)
            .finish_non_exhaustive()
    }
}

/// An inbox we moved away from (the one printed in an invite link, or one left by a rotation or
/// a move to another relay), still read until the contact is known to write to the fresh one
/// (see `moving.rs`).
struct Retiring {
    inbox: Mailbox,
    /// The relay it is on (`None`: the home relay).
    relay: Option<RelayOrigin>,
    /// Dropped after this time (unix seconds) in any case: the last announcement was sent
    /// [`OLD_INBOX_SECS`] before, as long as the relay keeps a blob. `u64::MAX` while the
    /// announcement waits (the contact is blocked).
    until: u64,
    /// A message arrived on the fresh mailbox: dropped at the next connection (not at once, so
    /// that blobs the relay delivers from it in the same burst are still read).
    switched: bool,
}

/// A person this profile talks to. `Debug` prints no name or message.
pub struct Contact {
    /// Handle.
    pub id: ContactId,
    /// The name this profile gave them (its local name): what the list and the header show. Set
    /// from "Invite for" or at accept time, and never by anything the contact sends.
    pub name: String,
    /// The name they call themselves: sent in their invite, their answer to ours, or a rename.
    /// Shown beside [`Contact::name`] when it differs, never instead of it.
    pub their_name: String,
    /// The ratchet session with them.
    session: Session,
    /// Our mailbox for this contact: they deposit here.
    inbox: Mailbox,
    /// The relay of `inbox`, where we subscribe: our home relay when it was made (`None`: the
    /// home relay, whichever it is; profiles of earlier releases).
    inbox_relay: Option<RelayOrigin>,
    /// Their mailbox for us: we deposit here.
    outbox: MailboxId,
    /// The relay of `outbox`: the contact's relay (`None`: our home relay, as for a version 1
    /// invite and the profiles of earlier releases).
    outbox_relay: Option<RelayOrigin>,
    /// The conversation, oldest first.
    pub messages: Log,
    /// Incoming messages not yet seen.
    pub unread: u32,
    /// The person compared safety numbers and marked them verified.
    pub verified: bool,
    /// The safety number changed while verified: nothing is deposited for this contact until
    /// the person accepts the change.
    pub blocked: bool,
    /// Cached: derived from both identities.
    safety: SafetyNumber,
    /// Inboxes we moved away from, oldest first, until the contact has moved too (see
    /// [`Retiring`]).
    retiring: Vec<Retiring>,
    /// When `inbox` was made (unix seconds; 0: before this was recorded): the rotation schedule.
    inbox_since: u64,
    /// Our fresh `inbox` is still to be announced to the contact (waits while blocked).
    announce: bool,
    /// The person blocked this contact ([`Engine::set_barred`]): what they send is decrypted (so
    /// the session stays in step) and dropped unseen and unanswered, and nothing is deposited for
    /// them.
    pub barred: bool,
    /// We accepted their invite at this time (unix seconds) and nothing from them has been read
    /// on that session yet: the conversation waits for them to confirm. Cleared by the first
    /// message that decrypts.
    pub awaiting_since: Option<u64>,
}

impl std::fmt::Debug for Contact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Contact")
            .field("id", &self.id)
            .field("messages", &self.messages.len())
            .field("verified", &self.verified)
            .field("blocked", &self.blocked)
            .field("barred", &self.barred)
            .finish_non_exhaustive()
    }
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

    /// The name they call themselves, when a person would take it for another name than the one
    /// this profile gave them (see [`Contact::their_name`]).
    pub fn calls_themselves(&self) -> Option<&str> {
        (!same_name(&self.name, &self.their_name)).then_some(self.their_name.as_str())
    }

    /// They sent `name` (a rename, or the name in a new invite or answer): kept as
    /// [`Contact::their_name`], and a change is recorded in the conversation. Whether it changed.
    fn now_called(&mut self, name: &str, now: u64) -> bool {
        let name = name.trim();
        if name.is_empty() || name == self.their_name {
            return false;
        }
        name.clone_into(&mut self.their_name);
        self.messages.push(Message {
            id: [0; 16],
            kind: MessageKind::Renamed,
            outgoing: false,
            text: name.to_owned(),
            sent_at: now,
            received_at: now,
            delivery: Delivery::Delivered,
            attachment: None,
        });
        true
    }
}

/// A link made by [`Engine::create_invite`]. `Debug` prints the expiry only: the link is the way in.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteLink {
    /// The URL fragment (without `#`): the whole invite. Never sent to any server.
    pub fragment: String,
    /// Expiry, unix seconds.
    pub expires_at: u64,
    /// The pending invite it is (in [`Engine::pending_invites`] until answered, revoked or expired).
    pub invite: InviteId,
}

impl std::fmt::Debug for InviteLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InviteLink").field("expires_at", &self.expires_at).finish_non_exhaustive()
    }
}

/// An invite's handle inside one engine (stored with it, so it stays the same across reloads).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct InviteId(pub u32);

/// An invite this profile made and nobody has answered yet. `Debug` prints no name or secret.
struct PendingInvite {
    id: InviteId,
    secret: InviteSecret,
    inbox: Mailbox,
    /// The relay of `inbox` (`None`: the home relay).
    relay: Option<RelayOrigin>,
    /// Made from a conversation to re-establish it (after the contact lost their data, say).
    for_contact: Option<ContactId>,
    /// "Invite for": the local name the contact who answers gets.
    for_name: Option<String>,
    /// Blobs that failed to answer it (see [`MAX_FAILED_ANSWERS`]). A blob delivered again is
    /// counted again: the relay's numbers are not trusted to tell one blob from another.
    failed: u32,
    /// The lowest relay number of a ratchet message that arrived before the answer in this
    /// connection (left unacknowledged, so no acknowledgement at or above it is sent).
    deferred: Option<u64>,
}

impl std::fmt::Debug for PendingInvite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingInvite")
            .field("id", &self.id)
            .field("for_contact", &self.for_contact)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl PendingInvite {
    fn new(
        id: InviteId,
        secret: InviteSecret,
        inbox: Mailbox,
        relay: Option<RelayOrigin>,
        for_contact: Option<ContactId>,
    ) -> Self {
        Self { id, secret, inbox, relay, for_contact, for_name: None, failed: 0, deferred: None }
    }

    /// Answers are taken until the invite's expiry plus the grace period.
    fn expired(&self, now: u64) -> bool {
        now > self.secret.expires_at().saturating_add(INVITE_RESPONSE_GRACE_SECS)
    }
}

/// What became of a delivered blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handled {
    /// Processed, or failed for good (tampered, replayed, foreign, expired): acknowledge it.
    Done,
    /// Could be processed by a later state (a message before the invite answer it follows):
    /// leave it with the relay, which delivers it again.
    Later,
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
    /// Messages of this contact were given up for good (see [`MessageKind::Lost`]).
    MessagesLost(ContactId),
    /// The ratchet saw message numbers that have not arrived: dropped or delayed by the relay.
    Gap(ContactId),
    /// The relay refused something; the code is stable and contains no user data.
    RelayError(ErrorCode),
    /// A new invite was answered by the identity of an existing contact: that conversation goes
    /// on with a new session (no second contact is made).
    Reestablished(ContactId),
    /// A new contact (a different identity) uses the display name of a verified contact.
    NameOfVerifiedContact {
        /// The new, unverified contact.
        contact: ContactId,
        /// The verified contact whose name it uses.
        verified: ContactId,
    },
    /// A blob in one of our mailboxes could not be decrypted (tampered, replayed or foreign); it
    /// was dropped without touching any session.
    Undecryptable,
    /// The relay stored this invite's bundle: its short link can be given out
    /// ([`Engine::short_link`]).
    ShortLinkReady(InviteId),
    /// A short link's invite was fetched and matches the link ([`Engine::take_fetched_invite`]).
    InviteFetched(FetchId),
    /// A short link's invite could not be fetched, or did not match the link.
    InviteFetchFailed(FetchId, ShortInviteError),
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
    /// The safety number the person compared is not the contact's current one (it changed
    /// while it was shown): nothing was marked.
    #[error("the safety number changed since it was shown")]
    SafetyNumberMismatch,
    /// The invite is from a known contact, or uses a verified contact's name: ask the person,
    /// then call [`Engine::accept_invite_despite`].
    #[error("the invite needs confirmation")]
    InviteConflict(InviteConflict),
    /// The relay's address is not an `http(s)://` or `ws(s)://` URL with a plain host.
    #[error("invalid relay address")]
    InvalidRelayUrl,
    /// The person blocked this contact: nothing is sent to them until they are unblocked.
    #[error("contact blocked")]
    Barred,
    /// No pending invite with that id (answered, expired or revoked already).
    #[error("unknown invite")]
    UnknownInvite,
    /// The short invite link could not be read.
    #[error(transparent)]
    ShortLink(#[from] core::ShortLinkError),
}

/// One relay connection as the engine sees it (no entry: no socket).
#[derive(Debug)]
enum Link {
    /// Hello sent to the relay, waiting for the challenge.
    Greeting,
    /// Subscribed (or subscribing) to the relay, with this challenge.
    Ready { challenge: [u8; 32] },
}

/// A deposit waiting for the relay's `Deposited`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Outgoing {
    /// Destination mailbox id (raw: the frame crate's type has no serde).
    mailbox: [u8; 32],
    payload: Vec<u8>,
    /// The message it carries, for delivery state.
    message: Option<(ContactId, MessageId)>,
    /// The relay of `mailbox` (`None`: the home relay). Stored beside the other fields (profile
    /// version 6), not among them, so that older records keep their layout.
    #[serde(skip)]
    relay: Option<RelayOrigin>,
}

/// A relay this profile needs a connection to, and why ([`Engine::relays`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayUse {
    /// The relay.
    pub origin: RelayOrigin,
    /// It is the home relay: our inboxes are there, so it is always needed.
    pub home: bool,
    /// Some of our inboxes are on it (subscribed while connected).
    pub inboxes: bool,
    /// Contacts whose deposits wait for it (their mailbox is on it), in order.
    pub waiting: Vec<ContactId>,
    /// A short invite link's bundle is being stored on it, or fetched from it.
    pub invites: bool,
}

/// One profile's messenger state. `Debug` prints counts only.
pub struct Engine {
    identity: Identity,
    name: String,
    contacts: BTreeMap<ContactId, Contact>,
    invites: Vec<PendingInvite>,
    next_contact: u32,
    /// The next [`InviteId`] (not stored: one more than the highest stored).
    next_invite: u32,
    /// The relay our new inboxes are made on (and invites name): set by
    /// [`Engine::set_home_relay`], or else by the first connection.
    home: Option<RelayOrigin>,
    /// The connections open now, one per relay.
    links: Vec<(RelayOrigin, Link)>,
    /// Deposits not yet confirmed durable, in order; re-sent after a reconnect. Stored, so a crash
    /// after encrypting never loses a message (the ratchet has moved on; the ciphertext is kept).
    unconfirmed: VecDeque<(u32, Outgoing)>,
    next_request: u32,
    /// Blobs in our mailboxes that did not decrypt (tampering, replays, foreign data): a count only.
    undecryptable: u32,
    /// A mailbox to subscribe again once the current delivery is acknowledged (an answered
    /// invite's, where a blob was left for later), so the relay delivers that blob again.
    resubscribe: Option<(Option<RelayOrigin>, Mailbox)>,
    /// Frames for the sockets, each with the relay it goes to.
    out: VecDeque<(RelayOrigin, Frame)>,
    /// Log chunk records of deleted or cleared conversations, to delete at the next save.
    deleted: Vec<snapshot::ChunkKey>,
    /// The deletions handed to the save under way, handed again if it fails.
    deleting: Vec<snapshot::ChunkKey>,
    /// Mailboxes of deleted conversations still subscribed on this connection: what arrives in
    /// them is acknowledged (so the relay deletes it) and dropped. Not subscribed again.
    forgotten: Vec<MailboxId>,
    /// Short invite links being uploaded and fetched (not stored).
    short: short_links::ShortLinks,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("contacts", &self.contacts.len())
            .field("invites", &self.invites.len())
            .field("links", &self.links.len())
            .field("unconfirmed", &self.unconfirmed.len())
            .finish_non_exhaustive()
    }
}

/// Display names that a person would take for the same (case and surrounding space ignored).
pub(crate) fn same_name(a: &str, b: &str) -> bool {
    a.trim().to_lowercase() == b.trim().to_lowercase()
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
            next_invite: 1,
            home: None,
            links: Vec::new(),
            unconfirmed: VecDeque::new(),
            next_request: 1,
            undecryptable: 0,
            resubscribe: None,
            out: VecDeque::new(),
            deleted: Vec::new(),
            deleting: Vec::new(),
            forgotten: Vec::new(),
            short: Default::default(),
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

    /// Whether the connection to the home relay is ready.
    pub fn is_connected(&self) -> bool {
        self.home.as_ref().is_some_and(|home| self.is_connected_to(home))
    }

    /// Whether the connection to `relay` is ready.
    pub fn is_connected_to(&self, relay: &RelayOrigin) -> bool {
        self.challenge(relay).is_some()
    }

    /// The home relay: where our inboxes are made and what invites and announcements name. `None`
    /// until [`Engine::set_home_relay`] or the first connection.
    pub fn home_relay(&self) -> Option<&RelayOrigin> {
        self.home.as_ref()
    }

    /// Sets the home relay (`relay_url` as for [`Engine::on_connected`]). Addresses recorded as
    /// "the home relay" (made before any home was known, or stored by an earlier release) stay on
    /// the relay that was home until now.
    pub fn set_home_relay(&mut self, relay_url: &str) -> Result<(), EngineError> {
        let origin = RelayOrigin::parse(relay_url).map_err(|_| EngineError::InvalidRelayUrl)?;
        if let Some(old) = self.home.clone().filter(|old| *old != origin) {
            self.pin_addresses(&old);
        }
        self.home = Some(origin);
        Ok(())
    }

    /// Every address recorded as "the home relay" is recorded as `home` explicitly.
    fn pin_addresses(&mut self, home: &RelayOrigin) {
        let pin = |relay: &mut Option<RelayOrigin>| {
            relay.get_or_insert_with(|| home.clone());
        };
        for contact in self.contacts.values_mut() {
            pin(&mut contact.inbox_relay);
            pin(&mut contact.outbox_relay);
            contact.retiring.iter_mut().for_each(|r| pin(&mut r.relay));
        }
        self.invites.iter_mut().for_each(|i| pin(&mut i.relay));
        self.unconfirmed.iter_mut().for_each(|(_, o)| pin(&mut o.relay));
    }

    /// The relay an address is on: itself, or the home relay for `None`.
    fn resolve<'a>(&'a self, relay: &'a Option<RelayOrigin>) -> Option<&'a RelayOrigin> {
        relay.as_ref().or(self.home.as_ref())
    }

    /// Whether an address on `relay` is on `origin`.
    fn is_on(&self, relay: &Option<RelayOrigin>, origin: &RelayOrigin) -> bool {
        self.resolve(relay) == Some(origin)
    }

    /// The challenge of the ready connection to `relay`.
    fn challenge(&self, relay: &RelayOrigin) -> Option<[u8; 32]> {
        self.links.iter().find(|(o, _)| o == relay).and_then(|(_, link)| match link {
            Link::Ready { challenge } => Some(*challenge),
            Link::Greeting => None,
        })
    }

    /// The relay that holds `contact`'s mailbox for us (where we deposit).
    pub fn contact_relay(&self, contact: ContactId) -> Option<&RelayOrigin> {
        self.resolve(&self.contacts.get(&contact)?.outbox_relay)
    }

    /// The relays this profile needs a connection to, and why: the home relay always; a relay
    /// holding some of our inboxes always (they are read there); a contact's relay only while a
    /// deposit for it waits (receiving never needs it, and a deposit is confirmed on the same
    /// connection within a round trip, so the connection can close once nothing waits). Home
    /// first, then in the order of first need.
    pub fn relays(&self) -> Vec<RelayUse> {
        let mut uses: Vec<RelayUse> = Vec::new();
        if let Some(home) = &self.home {
            relay_use(&mut uses, home).home = true;
        }
        for relay in self.inbox_relays() {
            if let Some(origin) = self.resolve(relay) {
                relay_use(&mut uses, origin).inboxes = true;
            }
        }
        for origin in self.short.relays() {
            relay_use(&mut uses, origin).invites = true;
        }
        for (_, outgoing) in &self.unconfirmed {
            let Some(origin) = self.resolve(&outgoing.relay) else { continue };
            let contact = outgoing
                .message
                .map(|(c, _)| c)
                .or_else(|| self.contacts.values().find(|c| c.outbox.0 == outgoing.mailbox).map(|c| c.id));
            let waiting = &mut relay_use(&mut uses, origin).waiting;
            if let Some(contact) = contact
                && !waiting.contains(&contact)
            {
                waiting.push(contact);
            }
        }
        uses
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
        self.make_invite(for_contact, None, now, rng)
    }

    /// Makes a one-time invite for someone new ("Invite for"): whoever answers it becomes a
    /// contact named `local_name`, whatever name they send (that one is kept beside it).
    pub fn create_invite_for(
        &mut self,
        local_name: &str,
        now: u64,
        rng: &mut impl CryptoRng,
    ) -> Result<InviteLink, EngineError> {
        let local_name = valid_name(local_name)?;
        self.make_invite(None, Some(local_name), now, rng)
    }

    fn make_invite(
        &mut self,
        for_contact: Option<ContactId>,
        for_name: Option<String>,
        now: u64,
        rng: &mut impl CryptoRng,
    ) -> Result<InviteLink, EngineError> {
        let inbox = Mailbox::generate(rng);
        // An invite names the relay its mailbox is on (version 2) once the home relay is known.
        let (invite, secret) = match &self.home {
            Some(home) => core::create_invite_on(
                &self.identity,
                inbox.id().0,
                home,
                &self.name,
                now,
                INVITE_TTL_SECS,
                rng,
            ),
            None => core::create_invite(&self.identity, inbox.id().0, &self.name, now, INVITE_TTL_SECS, rng),
        };
        let relay = self.home.clone();
        self.subscribe(&relay, &inbox);
        let id = InviteId(self.next_invite);
        let link = InviteLink { fragment: invite.to_fragment(), expires_at: invite.expires_at(), invite: id };
        self.next_invite = self.next_invite.wrapping_add(1).max(1);
        let mut pending = PendingInvite::new(id, secret, inbox, relay, for_contact);
        pending.for_name = for_name;
        self.invites.push(pending);
        self.upload_short_link(&invite, id, rng);
        Ok(link)
    }

    /// Revokes a pending invite: its secret is deleted (zeroized on drop) and its mailbox is
    /// never subscribed again, so an answer to it is never read. An answer the relay still
    /// delivers on this connection is acknowledged (deleted at the relay) and dropped.
    pub fn revoke_invite(&mut self, invite: InviteId) -> Result<(), EngineError> {
        let pos = self.invites.iter().position(|i| i.id == invite).ok_or(EngineError::UnknownInvite)?;
        let revoked = self.invites.remove(pos);
        self.forgotten.push(revoked.inbox.id());
        self.delete_short_link(&revoked);
        Ok(())
    }

    /// Reads an invite link's fragment (for showing who invites, before accepting).
    pub fn read_invite(&self, fragment: &str, now: u64) -> Result<Invite, EngineError> {
        let invite = Invite::from_fragment(fragment, now)?;
        if invite.inviter().ct_eq(&self.identity.public()) {
            return Err(EngineError::OwnInvite);
        }
        Ok(invite)
    }

    /// Whether accepting `invite` needs the person's confirmation first: the inviter is already a
    /// contact, or uses a verified contact's name.
    pub fn invite_conflict(&self, invite: &Invite) -> Option<InviteConflict> {
        self.conflict_as(invite, invite.inviter_name())
    }

    /// As [`Engine::invite_conflict`], for a contact to be named `local_name`.
    fn conflict_as(&self, invite: &Invite, local_name: &str) -> Option<InviteConflict> {
        if let Some(id) = self.contact_with_identity(invite.inviter()) {
            return Some(InviteConflict::KnownContact(id));
        }
        self.verified_with_name(local_name).map(InviteConflict::NameOfVerifiedContact)
    }

    /// Accepts an invite: runs the handshake, adds the contact and queues the first message.
    /// Refused with [`EngineError::InviteConflict`] if [`Engine::invite_conflict`] finds one.
    pub fn accept_invite(
        &mut self,
        fragment: &str,
        now: u64,
        rng: &mut impl CryptoRng,
    ) -> Result<ContactId, EngineError> {
        self.accept_invite_as(fragment, None, None, now, rng)
    }

    /// Accepts an invite after the person confirmed `conflict` (as [`Engine::accept_invite`]
    /// reported it). For [`InviteConflict::KnownContact`] the existing conversation is
    /// re-established (new session and mailboxes, same contact, messages and verification); for
    /// [`InviteConflict::NameOfVerifiedContact`] a new contact is made. Refused if the conflict is
    /// not the one the invite has now.
    pub fn accept_invite_despite(
        &mut self,
        fragment: &str,
        conflict: InviteConflict,
        now: u64,
        rng: &mut impl CryptoRng,
    ) -> Result<ContactId, EngineError> {
        self.accept_invite_as(fragment, None, Some(conflict), now, rng)
    }

    /// Accepts an invite as [`Engine::accept_invite`] (or, with `confirmed`,
    /// [`Engine::accept_invite_despite`]) does, naming a new contact `local_name` (the person may
    /// change the name the invite shows; `None` keeps it). A known contact keeps the name it has
    /// unless `local_name` is given. The name the inviter sent is kept beside it either way.
    pub fn accept_invite_as(
        &mut self,
        fragment: &str,
        local_name: Option<&str>,
        confirmed: Option<InviteConflict>,
        now: u64,
        rng: &mut impl CryptoRng,
    ) -> Result<ContactId, EngineError> {
        let invite = self.read_invite(fragment, now)?;
        let local_name = local_name.map(valid_name).transpose()?;
        let conflict = self.conflict_as(&invite, local_name.as_deref().unwrap_or(invite.inviter_name()));
        if let Some(conflict) = conflict
            && confirmed != Some(conflict)
        {
            return Err(EngineError::InviteConflict(conflict));
        }
        let inbox = Mailbox::generate(rng);
        let inbox_relay = self.home.clone();
        // Only an invite that names its relay (version 2) is answered with the joiner's relay: an
        // inviter of an earlier release reads the shorter Hello only, and shares our relay.
        let relay = invite.relay().and(self.home.as_ref()).map(|home| home.as_str().to_owned());
        let hello = Content::Hello { name: self.name.clone(), reply_mailbox: inbox.id().0, relay };
        let hello = Payload::new(hello, now, rng);
        let (session, initial) = core::accept_invite(&self.identity, &invite, &hello.encode()?, now, rng)?;
        let outbox = MailboxId(invite.reply_mailbox());
        let outbox_relay = invite.relay().cloned();
        self.subscribe(&inbox_relay, &inbox);
        let id = match conflict {
            Some(InviteConflict::KnownContact(id)) => {
                let contact = self.contacts.get_mut(&id).ok_or(EngineError::UnknownContact)?;
                // Same identity: the safety number, verification and conversation stay.
                contact.session = session;
                contact.inbox = inbox;
                contact.inbox_relay = inbox_relay;
                contact.outbox = outbox;
                contact.outbox_relay = outbox_relay.clone();
                contact.retiring.clear();
                contact.announce = false;
                contact.inbox_since = now;
                if let Some(local_name) = local_name {
                    contact.name = local_name;
                }
                contact.now_called(invite.inviter_name(), now);
                id
            }
            _ => {
                let their_name = invite.inviter_name().to_owned();
                let name = local_name.unwrap_or_else(|| their_name.clone());
                self.add_contact(
                    name,
                    their_name,
                    session,
                    (inbox, inbox_relay),
                    (outbox, outbox_relay.clone()),
                    now,
                )
            }
        };
        if let Some(contact) = self.contacts.get_mut(&id) {
            contact.awaiting_since = Some(now);
        }
        self.deposit(Outgoing { mailbox: outbox.0, payload: initial, message: None, relay: outbox_relay });
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
        let content = Content::Text { body: text.to_owned() };
        self.send_message(contact, content, MessageKind::Text, text.to_owned(), None, now, rng)
    }

    /// Encrypts and queues a message the conversation shows, and puts it in the log.
    #[allow(clippy::too_many_arguments)]
    fn send_message(
        &mut self,
        contact: ContactId,
        content: Content,
        kind: MessageKind,
        text: String,
        attachment: Option<Box<AttachmentRef>>,
        now: u64,
        rng: &mut impl CryptoRng,
    ) -> Result<MessageId, EngineError> {
        let entry = self.contacts.get(&contact).ok_or(EngineError::UnknownContact)?;
        if entry.blocked {
            return Err(EngineError::SafetyNumberChanged);
        }
        if entry.barred {
            return Err(EngineError::Barred);
        }
        let payload = Payload::new(content, now, rng);
        let id = payload.id;
        self.send_payload(contact, &payload, Some(id), now, rng)?;
        if let Some(entry) = self.contacts.get_mut(&contact) {
            entry.messages.push(Message {
                id,
                kind,
                outgoing: true,
                text,
                sent_at: now,
                received_at: now,
                delivery: Delivery::Pending,
                attachment,
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
        // A blocked contact (a changed key not yet accepted) does not learn the new name.
        let ids: Vec<ContactId> =
            self.contacts.values().filter(|c| !c.blocked && !c.barred).map(|c| c.id).collect();
        for id in ids {
            let payload = Payload::new(Content::Profile { name: name.clone() }, now, rng);
            self.send_payload(id, &payload, None, now, rng)?;
        }
        Ok(())
    }

    /// Gives a contact another local name (the name shown for them on this side only; they are
    /// not told, and the name they call themselves stays beside it).
    pub fn rename_contact(&mut self, contact: ContactId, name: &str) -> Result<(), EngineError> {
        let name = valid_name(name)?;
        self.contacts.get_mut(&contact).ok_or(EngineError::UnknownContact)?.name = name;
        Ok(())
    }

    /// The person compared the safety number `shown` (as shown to them; spaces are ignored) and it
    /// matched: mark the contact verified. Refused with [`EngineError::SafetyNumberMismatch`] if
    /// the contact's safety number is no longer the one shown.
    pub fn mark_verified(&mut self, contact: ContactId, shown: &str) -> Result<(), EngineError> {
        let entry = self.contacts.get_mut(&contact).ok_or(EngineError::UnknownContact)?;
        let shown: String = shown.chars().filter(|c| !c.is_whitespace()).collect();
        if shown != entry.safety.raw_digits() {
            return Err(EngineError::SafetyNumberMismatch);
        }
        entry.verified = true;
        entry.blocked = false;
        Ok(())
    }

    /// The person accepts a changed safety number: sending is allowed again (the contact is no
    /// longer verified until compared again). A fresh mailbox still to be announced goes out
    /// with the next deposit for the contact.
    pub fn accept_safety_number_change(&mut self, contact: ContactId) -> Result<(), EngineError> {
        let entry = self.contacts.get_mut(&contact).ok_or(EngineError::UnknownContact)?;
        entry.blocked = false;
        Ok(())
    }

    /// Deletes a conversation on this side: its history, its session (keys zeroized on drop),
    /// its mailboxes (never subscribed again; what still arrives in them on this connection is
    /// acknowledged and dropped), its unsent deposits and the invites made to re-establish it.
    /// Its stored records go with the next save. Nothing is sent to the contact; if they write
    /// again, nothing of it is read.
    pub fn delete_conversation(&mut self, contact: ContactId) -> Result<(), EngineError> {
        let entry = self.contacts.remove(&contact).ok_or(EngineError::UnknownContact)?;
        self.forget_log(contact, &entry.messages);
        self.forgotten.push(entry.inbox.id());
        self.forgotten.extend(entry.retiring.iter().map(|r| r.inbox.id()));
        self.forgotten
            .extend(self.invites.iter().filter(|i| i.for_contact == Some(contact)).map(|i| i.inbox.id()));
        self.invites.retain(|i| i.for_contact != Some(contact));
        self.drop_unsent(contact, entry.outbox);
        Ok(())
    }

    /// Deletes a conversation's history on this side; the contact and the session stay.
    pub fn clear_history(&mut self, contact: ContactId) -> Result<(), EngineError> {
        let entry = self.contacts.get_mut(&contact).ok_or(EngineError::UnknownContact)?;
        let log = std::mem::take(&mut entry.messages);
        entry.unread = 0;
        self.forget_log(contact, &log);
        Ok(())
    }

    /// Blocks (or unblocks) a contact. While blocked, what they send is decrypted, so the session
    /// stays in step, and acknowledged, so the relay deletes it, but never shown and never
    /// answered (no receipt); nothing is deposited for them (unsent deposits are dropped, and
    /// name changes skip them). They are not told.
    pub fn set_barred(&mut self, contact: ContactId, barred: bool) -> Result<(), EngineError> {
        let entry = self.contacts.get_mut(&contact).ok_or(EngineError::UnknownContact)?;
        entry.barred = barred;
        if barred {
            let outbox = entry.outbox;
            self.drop_unsent(contact, outbox);
        }
        Ok(())
    }

    /// Whether the relay has stored everything we deposited for `contact` (nothing of it waits
    /// in the outbox). For a conversation still waiting for its first answer: our answer to the
    /// invite is with the relay, so a long silence means the invite went to someone else first.
    pub fn all_stored(&self, contact: ContactId) -> bool {
        let Some(entry) = self.contacts.get(&contact) else { return false };
        !self.unconfirmed.iter().any(|(_, o)| o.mailbox == entry.outbox.0)
    }

    /// Every stored chunk of `log` is deleted at the next save.
    fn forget_log(&mut self, contact: ContactId, log: &Log) {
        let chunks = u32::try_from(log.chunks().len()).unwrap_or(u32::MAX);
        self.deleted.extend((0..chunks).map(|index| snapshot::ChunkKey { contact, index }));
    }

    /// Forgets deposits for `contact` not yet confirmed by the relay (none is sent again).
    fn drop_unsent(&mut self, contact: ContactId, outbox: MailboxId) {
        self.unconfirmed.retain(|(_, o)| {
            o.mailbox != outbox.0 && o.message.is_none_or(|(for_contact, _)| for_contact != contact)
        });
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
    /// can use them (docs/relay-protocol.md, "The subscribe proof"). The first relay connected
    /// becomes the home relay if none is set. Returns the relay's origin, which names this
    /// connection in [`Engine::take_relay_frames`] and [`Engine::on_relay_frame`].
    pub fn on_connected(&mut self, relay_url: &str) -> Result<RelayOrigin, EngineError> {
        let origin = RelayOrigin::parse(relay_url).map_err(|_| EngineError::InvalidRelayUrl)?;
        self.home.get_or_insert_with(|| origin.clone());
        self.drop_link(&origin);
        self.links.push((origin.clone(), Link::Greeting));
        self.out.push_back((origin.clone(), Frame::Hello));
        Ok(origin)
    }

    /// Every socket closed: unconfirmed deposits wait for the next connections.
    pub fn on_disconnected(&mut self) {
        let open: Vec<RelayOrigin> = self.links.iter().map(|(o, _)| o.clone()).collect();
        for origin in open {
            self.on_relay_disconnected(&origin);
        }
    }

    /// The socket to `relay` closed: deposits for it wait for the next connection to it.
    pub fn on_relay_disconnected(&mut self, relay: &RelayOrigin) {
        self.drop_link(relay);
        if self.home.as_ref() == Some(relay) {
            // Not subscribed on the next connection: nothing more arrives in them.
            self.forgotten.clear();
        }
        for invite in &mut self.invites {
            // The relay delivers everything unacknowledged again on the next connection.
            if invite.relay.as_ref().or(self.home.as_ref()) == Some(relay) {
                invite.deferred = None;
            }
        }
    }

    /// Forgets the connection to `relay` and the frames still queued for it.
    fn drop_link(&mut self, relay: &RelayOrigin) {
        self.links.retain(|(o, _)| o != relay);
        self.out.retain(|(o, _)| o != relay);
    }

    /// Forgets invites past their expiry plus grace (their secrets are zeroized on drop) and
    /// printed mailboxes the joiner has left or whose time is up, so they are not subscribed again.
    fn expire(&mut self, now: u64) {
        self.invites.retain(|i| !i.expired(now));
        for contact in self.contacts.values_mut() {
            contact.retiring.retain(|r| !r.switched && now <= r.until);
        }
    }

    fn may_acknowledge(&self, mailbox: MailboxId, seq: u64) -> bool {
        let deferred = self.invites.iter().find(|i| i.inbox.id() == mailbox).and_then(|i| i.deferred);
        deferred.is_none_or(|first| seq < first)
    }

    /// Frames to send now, in order, for a profile with one connection (every address on the
    /// relay it is connected to). With several, use [`Engine::take_relay_frames`].
    pub fn take_frames(&mut self) -> Vec<Frame> {
        self.out.drain(..).map(|(_, frame)| frame).collect()
    }

    /// Frames to send now, each with the relay whose socket it goes to, in order per relay.
    pub fn take_relay_frames(&mut self) -> Vec<(RelayOrigin, Frame)> {
        self.out.drain(..).collect()
    }

    /// Handles one frame from the home relay (see [`Engine::on_relay_frame`]); without a home
    /// relay (never connected) it is ignored.
    pub fn on_frame(&mut self, frame: Frame, now: u64, rng: &mut impl CryptoRng) -> Vec<Event> {
        match self.home.clone() {
            Some(home) => self.on_relay_frame(&home, frame, now, rng),
            None => Vec::new(),
        }
    }

    /// Handles one frame from the relay at `relay`.
    pub fn on_relay_frame(
        &mut self,
        relay: &RelayOrigin,
        frame: Frame,
        now: u64,
        rng: &mut impl CryptoRng,
    ) -> Vec<Event> {
        if let Some(events) = self.on_short_link_frame(relay, &frame, now) {
            return events;
        }
        let mut events = Vec::new();
        match frame {
            Frame::Challenge { challenge, .. } => {
                let Some((_, link)) = self.links.iter_mut().find(|(o, _)| o == relay) else {
                    // Not connected as far as the engine knows: nothing to sign for.
                    return events;
                };
                *link = Link::Ready { challenge };
                self.expire(now);
                let inboxes: Vec<Mailbox> = self
                    .contacts
                    .values()
                    .flat_map(|c| {
                        // Old inboxes first: the relay delivers what waits in them before what
                        // the contact wrote after moving (docs/protocol.md, "Moving").
                        c.retiring.iter().map(|r| (&r.relay, &r.inbox)).chain([(&c.inbox_relay, &c.inbox)])
                    })
                    .chain(self.invites.iter().map(|i| (&i.relay, &i.inbox)))
                    .filter(|(on, _)| self.is_on(on, relay))
                    .map(|(_, inbox)| inbox.clone())
                    .collect();
                self.subscribe_all(relay, &inboxes);
                // Deposits for this relay go again, in order; the others keep their place.
                let (resend, keep): (Vec<_>, Vec<_>) =
                    take(&mut self.unconfirmed).into_iter().partition(|(_, o)| self.is_on(&o.relay, relay));
                self.unconfirmed = keep.into();
                for (_, outgoing) in resend {
                    self.deposit(outgoing);
                }
                self.short_links_ready(relay);
            }
            Frame::Deposited { request } => {
                let pos =
                    self.unconfirmed.iter().position(|(r, o)| *r == request && self.is_on(&o.relay, relay));
                if let Some((_, outgoing)) = pos.and_then(|pos| self.unconfirmed.remove(pos))
                    && let Some((contact, id)) = outgoing.message
                {
                    self.set_delivery(contact, id, Delivery::Sent, &mut events);
                }
            }
            Frame::Deliver { mailbox, seq, payload } => {
                let before = events.len();
                let handled = self.receive(relay, mailbox, seq, &payload, now, rng, &mut events);
                let failed = events[before..].iter().filter(|e| **e == Event::Undecryptable).count();
                self.undecryptable =
                    self.undecryptable.saturating_add(u32::try_from(failed).unwrap_or(u32::MAX));
                // Acknowledge what was processed and what failed for good (it would fail on every
                // delivery); leave what a later state could process (docs/protocol.md, "Receiving").
                // An acknowledgement removes every earlier blob of the mailbox too, so none is sent
                // at or above a blob left for later.
                if handled == Handled::Done && self.may_acknowledge(mailbox, seq) {
                    self.out.push_back((relay.clone(), Frame::Ack { mailbox, seq }));
                }
                // After the acknowledgement, so the answer itself is not delivered again.
                if let Some((on, inbox)) = self.resubscribe.take() {
                    self.subscribe(&on, &inbox);
                }
            }
            Frame::Error { code, .. } => events.push(Event::RelayError(code)),
            Frame::Ping { nonce } => self.out.push_back((relay.clone(), Frame::Pong { nonce })),
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
            Frame::Subscribed { .. }
            | Frame::Pong { .. }
            | Frame::BundleStored { .. }
            | Frame::Bundle { .. }
            | Frame::BundleDeleted { .. } => {}
            // Client-to-relay frames are not expected from the relay; ignore them.
            Frame::Hello
            | Frame::Subscribe { .. }
            | Frame::SubscribeBatch { .. }
            | Frame::Deposit { .. }
            | Frame::Ack { .. }
            | Frame::PutBundle { .. }
            | Frame::GetBundle { .. }
            | Frame::DeleteBundle { .. } => {}
        }
        events
    }

    #[allow(clippy::too_many_arguments)]
    fn receive(
        &mut self,
        via: &RelayOrigin,
        mailbox: MailboxId,
        seq: u64,
        payload: &[u8],
        now: u64,
        rng: &mut impl CryptoRng,
        events: &mut Vec<Event>,
    ) -> Handled {
        if self.forgotten.contains(&mailbox) {
            return Handled::Done;
        }
        let found = self.contacts.values_mut().find_map(|c| {
            if c.inbox.id() == mailbox {
                Some((c, true))
            } else if c.retiring.iter().any(|r| r.inbox.id() == mailbox) {
                Some((c, false))
            } else {
                None
            }
        });
        if let Some((contact, on_current)) = found {
            let id = contact.id;
            let missing_before = contact.session.skipped_keys();
            // Every failure here is for good: tampered, replayed, foreign, or too far ahead in its
            // chain (the messages before it were dropped: no later state brings them).
            let Ok(decrypted) = contact.session.decrypt(payload) else {
                events.push(Event::Undecryptable);
                return Handled::Done;
            };
            let plaintext = decrypted.plaintext;
            // They wrote on this session: the invite reached them.
            contact.awaiting_since = None;
            if decrypted.lost > 0 && !contact.barred {
                contact.messages.push(Message {
                    id: [0; 16],
                    kind: MessageKind::Lost { count: decrypted.lost },
                    outgoing: false,
                    text: String::new(),
                    sent_at: now,
                    received_at: now,
                    delivery: Delivery::Delivered,
                    attachment: None,
                });
                events.push(Event::MessagesLost(id));
            }
            if on_current {
                moving::switched(contact);
            }
            if contact.session.skipped_keys() > missing_before {
                events.push(Event::Gap(id));
            }
            match Payload::decode(&plaintext) {
                Ok(content) => self.on_payload(id, content, via, now, rng, events),
                Err(_) => events.push(Event::Undecryptable),
            }
            return Handled::Done;
        }
        if let Some(pos) = self.invites.iter().position(|i| i.inbox.id() == mailbox) {
            return self.answer_invite(via, pos, seq, payload, now, rng, events);
        }
        events.push(Event::Undecryptable);
        Handled::Done
    }

    /// A blob in a pending invite's mailbox. Only an answer that verifies consumes the invite; a
    /// failed one counts towards [`MAX_FAILED_ANSWERS`].
    #[allow(clippy::too_many_arguments)]
    fn answer_invite(
        &mut self,
        via: &RelayOrigin,
        pos: usize,
        seq: u64,
        payload: &[u8],
        now: u64,
        rng: &mut impl CryptoRng,
        events: &mut Vec<Event>,
    ) -> Handled {
        let invite = &mut self.invites[pos];
        if invite.expired(now) {
            // Dropping it zeroizes its secrets.
            self.invites.remove(pos);
            events.push(Event::Undecryptable);
            return Handled::Done;
        }
        if matches!(core::envelope_kind(payload), Ok(EnvelopeKind::Message)) {
            // A ratchet message of the session this invite's answer starts, delivered before the
            // answer: the answer makes it readable.
            invite.deferred = Some(invite.deferred.map_or(seq, |first| first.min(seq)));
            return Handled::Later;
        }
        let Some((session, name, reply)) = self.open_answer(&self.invites[pos], payload, via, now) else {
            events.push(Event::Undecryptable);
            let invite = &mut self.invites[pos];
            // A blob behind one left for later is delivered again (its acknowledgement is held
            // back), so it is not counted: a stranger must not retire the invite by reconnects.
            if invite.deferred.is_none_or(|first| seq < first) {
                invite.failed += 1;
            }
            if invite.failed >= MAX_FAILED_ANSWERS {
                self.invites.remove(pos);
            }
            return Handled::Done;
        };
        let pending = self.invites.remove(pos);
        self.delete_short_link(&pending);
        self.answered(pending, session, name, reply, now, rng, events);
        Handled::Done
    }

    /// The session, name and reply address of a verifying answer (a `Hello` without a relay
    /// names a mailbox on the relay it came through, `via`). The invite's secret is used through
    /// a copy (zeroized when dropped), so a failed answer leaves the invite as it was.
    fn open_answer(
        &self,
        invite: &PendingInvite,
        payload: &[u8],
        via: &RelayOrigin,
        now: u64,
    ) -> Option<(Session, String, Address)> {
        let (session, first) = invite.secret.clone().respond(&self.identity, payload, now).ok()?;
        let Content::Hello { name, reply_mailbox, relay } = Payload::decode(&first).ok()?.content else {
            return None;
        };
        let relay = named_relay(relay.as_deref(), via)?;
        self.usable_outbox(&reply_mailbox, None).then_some((
            session,
            name,
            (MailboxId(reply_mailbox), Some(relay)),
        ))
    }

    /// Whether `mailbox`, named by a peer, may be written to: not all zero, not one of our own
    /// mailboxes (we would fill our own inbox) and not another contact's (the peer would direct
    /// our messages into someone else's conversation).
    fn usable_outbox(&self, mailbox: &[u8; 32], except: Option<ContactId>) -> bool {
        let mailbox = MailboxId(*mailbox);
        mailbox.0 != [0; 32]
            && !self.invites.iter().any(|i| i.inbox.id() == mailbox)
            && !self.contacts.values().any(|c| {
                c.inbox.id() == mailbox
                    || c.retiring.iter().any(|r| r.inbox.id() == mailbox)
                    || (Some(c.id) != except && c.outbox == mailbox)
            })
    }

    fn contact_with_identity(&self, identity: &IdentityPublic) -> Option<ContactId> {
        self.contacts.values().find(|c| c.session.peer_identity().ct_eq(identity)).map(|c| c.id)
    }

    fn verified_with_name(&self, name: &str) -> Option<ContactId> {
        self.contacts.values().find(|c| c.verified && same_name(&c.name, name)).map(|c| c.id)
    }

    /// An invite was answered: a new contact, or a re-established conversation (re-invite, or the
    /// answer of a known identity). The inviter moves to a fresh mailbox, announced as the first
    /// message it sends; the printed one is read until the joiner has moved.
    #[allow(clippy::too_many_arguments)]
    fn answered(
        &mut self,
        pending: PendingInvite,
        session: Session,
        name: String,
        (reply, reply_relay): Address,
        now: u64,
        rng: &mut impl CryptoRng,
        events: &mut Vec<Event>,
    ) {
        let fresh = Mailbox::generate(rng);
        let fresh_relay = self.home.clone();
        self.subscribe(&fresh_relay, &fresh);
        if pending.deferred.is_some() {
            // Subscribing again makes the relay deliver what was left for this answer.
            self.resubscribe = Some((pending.relay.clone(), pending.inbox.clone()));
        }
        let retiring = Retiring {
            inbox: pending.inbox.clone(),
            relay: pending.relay.clone(),
            until: u64::MAX,
            switched: false,
        };
        let target = pending
            .for_contact
            .filter(|id| self.contacts.contains_key(id))
            .or_else(|| self.contact_with_identity(session.peer_identity()));
        let own = self.identity.public();
        let id = if let Some(contact) = target.and_then(|id| self.contacts.get_mut(&id)) {
            // Same conversation, new session. A different identity is a key change.
            let changed = !contact.session.peer_identity().ct_eq(session.peer_identity());
            contact.safety = core::safety_number(&own, session.peer_identity());
            contact.session = session;
            contact.inbox = fresh;
            contact.inbox_relay = fresh_relay;
            contact.outbox = reply;
            contact.outbox_relay = reply_relay;
            // The name this profile gave them stays; the one they sent is noted if it changed.
            if contact.now_called(&name, now) {
                events.push(Event::ProfileChanged(contact.id));
            }
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
                    attachment: None,
                });
                events.push(Event::SafetyNumberChanged(contact.id));
            } else if pending.for_contact.is_none() {
                events.push(Event::Reestablished(contact.id));
            }
            contact.id
        } else {
            let local = pending.for_name.clone().unwrap_or_else(|| name.clone());
            let twin_of = self.verified_with_name(&local);
            let id = self.add_contact(local, name, session, (fresh, fresh_relay), (reply, reply_relay), now);
            events.push(Event::ContactAdded(id));
            if let Some(verified) = twin_of {
                events.push(Event::NameOfVerifiedContact { contact: id, verified });
            }
            id
        };
        if let Some(contact) = self.contacts.get_mut(&id) {
            contact.retiring.push(retiring);
            contact.inbox_since = now;
            contact.announce = true;
            if !contact.blocked {
                // An error leaves the announcement for the next deposit to this contact.
                let _ = self.announce_inbox(id, now, rng);
            }
        }
    }

    /// Puts a text or file from a contact in the log (once per id) and acknowledges it.
    fn receive_message(
        &mut self,
        contact: ContactId,
        message: Message,
        now: u64,
        rng: &mut impl CryptoRng,
        events: &mut Vec<Event>,
    ) {
        let Some(entry) = self.contacts.get_mut(&contact) else { return };
        let id = message.id;
        // De-duplicate by message id: a deposit re-sent after a lost confirmation arrives twice.
        if !entry.messages.has_incoming(&id) {
            entry.messages.push(message);
            entry.unread += 1;
            events.push(Event::MessageReceived(contact));
        }
        // Tell the sender it arrived (again, if this was a duplicate: the first receipt may be what
        // got lost).
        let receipt = Payload::new(Content::Receipt { delivered: vec![id] }, now, rng);
        // A blocked contact gets no receipt (nothing at all until the change is accepted).
        let _ = self.send_payload(contact, &receipt, None, now, rng);
    }

    fn on_payload(
        &mut self,
        contact: ContactId,
        payload: Payload,
        via: &RelayOrigin,
        now: u64,
        rng: &mut impl CryptoRng,
        events: &mut Vec<Event>,
    ) {
        let Some(entry) = self.contacts.get_mut(&contact) else { return };
        // Blocked: nothing they send is shown or answered; only a mailbox move is followed, so
        // that unblocking them later still reaches them.
        if entry.barred && !matches!(payload.content, Content::Inbox { .. }) {
            return;
        }
        match payload.content {
            Content::Text { body } => {
                let message = Message::incoming(payload.id, MessageKind::Text, body, payload.sent_at, now);
                self.receive_message(contact, message, now, rng, events);
            }
            Content::Attachment(attachment) => {
                let name = attachment.name.clone();
                let mut message =
                    Message::incoming(payload.id, MessageKind::Attachment, name, payload.sent_at, now);
                message.attachment = Some(attachment);
                self.receive_message(contact, message, now, rng, events);
            }
            Content::Receipt { delivered } => {
                for id in delivered {
                    self.set_delivery(contact, id, Delivery::Delivered, events);
                }
            }
            Content::Profile { name } => {
                if !name.trim().is_empty() && entry.now_called(&name, now) {
                    events.push(Event::ProfileChanged(contact));
                }
            }
            Content::Inbox { mailbox, relay } => {
                // An origin that is not a relay's leaves the current address (the sender keeps
                // reading it until its time is up).
                if let Some(relay) = named_relay(relay.as_deref(), via)
                    && self.usable_outbox(&mailbox, Some(contact))
                    && let Some(entry) = self.contacts.get_mut(&contact)
                {
                    let old = std::mem::replace(&mut entry.outbox, MailboxId(mailbox));
                    entry.outbox_relay = Some(relay.clone());
                    // What waits for the relay goes to the new address too.
                    for (_, outgoing) in &mut self.unconfirmed {
                        if outgoing.mailbox == old.0 {
                            outgoing.mailbox = mailbox;
                            outgoing.relay = Some(relay.clone());
                        }
                    }
                }
            }
            // A second Hello inside an established session means nothing.
            Content::Hello { .. } => {}
        }
    }

    /// Encrypts `payload` for `contact` and queues the deposit, after the announcement of a fresh
    /// mailbox if one is due. Refused for a blocked contact: nothing is deposited for it.
    fn send_payload(
        &mut self,
        contact: ContactId,
        payload: &Payload,
        message: Option<MessageId>,
        now: u64,
        rng: &mut impl CryptoRng,
    ) -> Result<(), EngineError> {
        let entry = self.contacts.get(&contact).ok_or(EngineError::UnknownContact)?;
        if entry.blocked {
            return Err(EngineError::SafetyNumberChanged);
        }
        if entry.barred {
            return Err(EngineError::Barred);
        }
        if entry.announce || moving::unswitched(entry) {
            self.announce_inbox(contact, now, rng)?;
        }
        self.encrypt_and_deposit(contact, payload, message, rng)
    }

    /// Tells `contact` the mailbox we read from now on; the old ones are kept for as long as
    /// the relay keeps the announcement.
    fn announce_inbox(
        &mut self,
        contact: ContactId,
        now: u64,
        rng: &mut impl CryptoRng,
    ) -> Result<(), EngineError> {
        let entry = self.contacts.get(&contact).ok_or(EngineError::UnknownContact)?;
        // Named whenever known, so that the contact writes to it whichever relay it reads us on.
        let relay = self.resolve(&entry.inbox_relay).map(|r| r.as_str().to_owned());
        let announcement = Payload::new(Content::Inbox { mailbox: entry.inbox.id().0, relay }, now, rng);
        self.encrypt_and_deposit(contact, &announcement, None, rng)?;
        if let Some(entry) = self.contacts.get_mut(&contact) {
            entry.announce = false;
            for retiring in entry.retiring.iter_mut().filter(|r| !r.switched) {
                retiring.until = now.saturating_add(OLD_INBOX_SECS);
            }
        }
        Ok(())
    }

    fn encrypt_and_deposit(
        &mut self,
        contact: ContactId,
        payload: &Payload,
        message: Option<MessageId>,
        rng: &mut impl CryptoRng,
    ) -> Result<(), EngineError> {
        let entry = self.contacts.get_mut(&contact).ok_or(EngineError::UnknownContact)?;
        let envelope = entry.session.encrypt(&payload.encode()?, rng)?;
        let (mailbox, relay) = (entry.outbox.0, entry.outbox_relay.clone());
        let message = message.map(|id| (contact, id));
        self.deposit(Outgoing { mailbox, payload: envelope, message, relay });
        Ok(())
    }

    fn set_delivery(&mut self, contact: ContactId, id: MessageId, state: Delivery, events: &mut Vec<Event>) {
        let Some(log) = self.contacts.get_mut(&contact).map(|c| &mut c.messages) else { return };
        // Delivery only moves forward: a late `Deposited` must not undo a receipt.
        if let Some(index) = log.find_outgoing(&id)
            && rank(state) > rank(log[index].delivery)
        {
            log.update(index, |m| m.delivery = state);
            events.push(Event::DeliveryChanged(contact));
        }
    }

    fn add_contact(
        &mut self,
        name: String,
        their_name: String,
        session: Session,
        (inbox, inbox_relay): (Mailbox, Option<RelayOrigin>),
        (outbox, outbox_relay): Address,
        now: u64,
    ) -> ContactId {
        let id = ContactId(self.next_contact);
        self.next_contact += 1;
        let safety = core::safety_number(&self.identity.public(), session.peer_identity());
        self.contacts.insert(
            id,
            Contact {
                id,
                name,
                their_name,
                session,
                inbox,
                inbox_relay,
                outbox,
                outbox_relay,
                messages: Log::default(),
                unread: 0,
                verified: false,
                blocked: false,
                safety,
                retiring: Vec::new(),
                inbox_since: now,
                announce: false,
                barred: false,
                awaiting_since: None,
            },
        );
        id
    }

    /// Subscribes to `inbox` on `relay` if that connection is ready (otherwise when it is).
    fn subscribe(&mut self, relay: &Option<RelayOrigin>, inbox: &Mailbox) {
        if let Some(origin) = self.resolve(relay).cloned() {
            self.subscribe_all(&origin, std::slice::from_ref(inbox));
        }
    }

    /// Subscribes to `inboxes` on `relay` with as few frames as the batch size allows.
    fn subscribe_all(&mut self, relay: &RelayOrigin, inboxes: &[Mailbox]) {
        let Some(challenge) = self.challenge(relay) else { return };
        for chunk in inboxes.chunks(SUBSCRIBE_BATCH) {
            let request = self.request_id();
            self.out.push_back((relay.clone(), mailbox::subscribe_frame(request, relay, &challenge, chunk)));
        }
    }

    /// Queues a deposit: sent at once if its relay's connection is ready, and again on each
    /// new connection to that relay until the relay confirms it.
    fn deposit(&mut self, outgoing: Outgoing) {
        let request = self.request_id();
        if let Some(origin) = self.resolve(&outgoing.relay).filter(|o| self.is_connected_to(o)).cloned() {
            self.out.push_back((
                origin,
                Frame::Deposit {
                    request,
                    mailbox: MailboxId(outgoing.mailbox),
                    payload: outgoing.payload.clone(),
                },
            ));
        }
        self.unconfirmed.push_back((request, outgoing));
    }

    fn request_id(&mut self) -> u32 {
        let id = self.next_request;
        self.next_request = self.next_request.wrapping_add(1).max(1);
        id
    }
}

/// The entry of `origin` in `uses`, added if it has none.
fn relay_use<'a>(uses: &'a mut Vec<RelayUse>, origin: &RelayOrigin) -> &'a mut RelayUse {
    let pos = match uses.iter().position(|u| u.origin == *origin) {
        Some(pos) => pos,
        None => {
            uses.push(RelayUse {
                origin: origin.clone(),
                home: false,
                inboxes: false,
                waiting: Vec::new(),
                invites: false,
            });
            uses.len() - 1
        }
    };
    &mut uses[pos]
}

/// A mailbox on a relay (`None`: the home relay).
type Address = (MailboxId, Option<RelayOrigin>);

/// The relay a peer named for a mailbox: `named` (an origin, only in its normalised form), or the
/// relay the message came through when it names none. `None` if `named` is not a relay origin.
fn named_relay(named: Option<&str>, via: &RelayOrigin) -> Option<RelayOrigin> {
    match named {
        None => Some(via.clone()),
        Some(origin) => RelayOrigin::parse(origin).ok().filter(|parsed| parsed.as_str() == origin),
    }
}

fn rank(delivery: Delivery) -> u8 {
    match delivery {
        Delivery::Pending => 0,
        Delivery::Sent => 1,
        Delivery::Delivered => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::{Rng, SeedableRng};

    const NOW: u64 = 1_750_000_000;

    /// Alice and Bob paired without a relay: Bob's initial message handed to Alice directly.
    fn paired(rng: &mut rand_chacha::ChaCha20Rng) -> (Engine, Engine, ContactId) {
        let mut alice = Engine::new("Alice", rng);
        let mut bob = Engine::new("Bob", rng);
        let link = alice.create_invite(None, NOW, rng).unwrap();
        bob.accept_invite(&link.fragment, NOW, rng).unwrap();
        let (_, initial) = bob.unconfirmed.pop_front().unwrap();
        let mut events = Vec::new();
        let via = RelayOrigin::parse("https://relay.test").unwrap();
        alice.receive(&via, MailboxId(initial.mailbox), 1, &initial.payload, NOW, rng, &mut events);
        let contact = alice.contacts().next().unwrap().id;
        (alice, bob, contact)
    }

    /// A receipt naming 1,024 ids, and a duplicate text, against a 100,000-message log: each id is
    /// found through the index, never by scanning the log. (Also bounded in time, generously: the
    /// scan it replaces took seconds in a debug build.)
    #[test]
    fn receipts_and_duplicates_do_not_scan_a_100_000_message_log() {
        let mut rng = rand_chacha::ChaCha20Rng::from_seed([3; 32]);
        let (mut alice, _, bob) = paired(&mut rng);
        let mut outgoing_ids = Vec::new();
        let mut last_incoming = [0; 16];
        {
            let contact = alice.contacts.get_mut(&bob).unwrap();
            for n in 0..100_000u32 {
                let mut id = [0u8; 16];
                rng.fill_bytes(&mut id);
                let outgoing = n % 2 == 0;
                if outgoing {
                    outgoing_ids.push(id);
                } else {
                    last_incoming = id;
                }
                contact.messages.push(Message {
                    id,
                    kind: MessageKind::Text,
                    outgoing,
                    text: String::new(),
                    sent_at: NOW,
                    received_at: NOW,
                    delivery: Delivery::Sent,
                    attachment: None,
                });
            }
        }
        let max = core::content::MAX_RECEIPT_IDS;
        let mut ids: Vec<MessageId> =
            outgoing_ids.iter().step_by(outgoing_ids.len() / (max - 1)).take(max - 1).copied().collect();
        // An id the log does not have costs no scan either.
        ids.push([0xff; 16]);
        assert_eq!(ids.len(), max);
        alice.contacts[&bob].messages.lookups.set(0);
        let started = std::time::Instant::now();
        let mut events = Vec::new();
        let receipt =
            Payload { id: [1; 16], sent_at: NOW, content: Content::Receipt { delivered: ids.clone() } };
        let via = RelayOrigin::parse("https://relay.test").unwrap();
        alice.on_payload(bob, receipt, &via, NOW, &mut rng, &mut events);
        let duplicate =
            Payload { id: last_incoming, sent_at: NOW, content: Content::Text { body: "again".into() } };
        alice.on_payload(bob, duplicate, &via, NOW, &mut rng, &mut events);
        let elapsed = started.elapsed();
        let contact = &alice.contacts[&bob];
        assert!(elapsed < std::time::Duration::from_millis(500), "took {elapsed:?}");
        // One index lookup per id, and one for the duplicate: nothing that grows with the log.
        assert_eq!(contact.messages.lookups.get(), ids.len() as u64 + 1);
        let delivered = contact.messages.iter().filter(|m| m.delivery == Delivery::Delivered).count();
        assert_eq!(delivered, ids.len() - 1);
        assert_eq!(contact.messages.len(), 100_000, "the duplicate text is not shown twice");
    }
}
