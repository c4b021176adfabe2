//! The engine's stored form: named records, written together (specified in `docs/stored-profile.md`).
//!
//! - `profile`: `version: u8 = 7 | postcard(ProfileV7)` — identity, contacts with their ratchet
//!   sessions and message counts, open invites, the outbox. Rewritten on every save; its size does
//!   not grow with the conversations. Version 7 is version 6 followed, per contact, by when its
//!   inbox was made and every old inbox still read (moving and rotation); in a version 7 record
//!   the version 6 fields for the retiring inbox are always empty. Version 6 records are still
//!   read (their one retiring inbox kept, every inbox due for rotation). Version 6 is version 5 followed by the relay of every
//!   address (the home relay; per contact its inbox's, outbox's and retiring inbox's; per invite
//!   and per unconfirmed deposit its mailbox's); version 5 records are still read, every address
//!   on the home relay (the one relay an earlier release used). Version 5 added, per contact, the name they call themselves
//!   beside the name this profile gave them, and per invite its id and the "Invite for" name;
//!   version 4 records are still read (the name they call themselves is the stored name).
//!   Version 4 added, per contact, whether the person blocked it
//!   (`barred`) and since when a conversation waits for the inviter's first message
//!   (`awaiting_since`); version 3 records are still read (nobody blocked, nothing awaited). Version 3 added, per contact, the invite mailbox still read
//!   after the move to a fresh one (`retiring`) and whether that move is still to be announced,
//!   and per invite the count of failed answers; version 2 records are still read (no invite
//!   mailbox to retire, no failures counted).
//! - `log/<contact>/<chunk>` (hex): `version: u8 = 4 | postcard(Vec<Message>)` — one chunk of a
//!   conversation ([`super::log::CHUNK_LEN`] messages). Written only when it changed. Version 4
//!   adds the message kind `Attachment` (index 4) and, after each message's `delivery`, its
//!   attachment (`Option<AttachmentRef>`: the file's address, read capability and key, so chunks
//!   now hold secrets too); version 3 chunks (messages without that field) are still read, as
//!   messages without an attachment. Version 3 added the message kind `Renamed` (index 3); version
//!   2 added `Lost` (index 2, with a count). Version 1 and 2 chunks (subsets of 3) are still read,
//!   and an older build refuses a newer chunk as unsupported rather than corrupt.
//! - `state`: the version-1 snapshot of earlier releases (everything in one record, messages
//!   included). Still read; the first save replaces it with the records above.
//!
//! Every secret (identity, ratchet sessions, invite secrets, mailbox keys) is in the profile record,
//! and the chunks hold the conversations, so records are only ever written encrypted (see
//! `browser::Vault`), and the intermediate buffers are zeroized. A new version adds a new struct and
//! a migration in [`Engine::restore`]; old records stay readable.

use std::collections::{BTreeMap, VecDeque};
use std::mem::take;

use serde::{Deserialize, Serialize};

use zeroize::{Zeroize, Zeroizing};

use super::log::{Log, MissingChunk};
use super::{
    Contact, ContactId, Delivery, Engine, InviteId, Mailbox, Message, MessageId, MessageKind, Outgoing,
    PendingInvite, Retiring,
};
use crate::core::{self, Identity, InviteSecret, Session};
use doorless_frames::{MailboxId, RelayOrigin};

/// The current version of the profile record.
pub const PROFILE_VERSION: u8 = 7;
/// The previous version of the profile record (read, never written).
const PROFILE_V6: u8 = 6;
/// An earlier version of the profile record (read, never written).
const PROFILE_V5: u8 = 5;
/// An earlier version of the profile record (read, never written).
const PROFILE_V4: u8 = 4;
/// An earlier version of the profile record (read, never written).
const PROFILE_V3: u8 = 3;
/// An earlier version of the profile record (read, never written).
const PROFILE_V2: u8 = 2;
/// The version of the single-record snapshot of earlier releases.
const LEGACY_VERSION: u8 = 1;
/// The current version of a log chunk record.
const CHUNK_VERSION: u8 = 4;
/// The last version of a log chunk record whose messages have no attachment field.
const CHUNK_V3: u8 = 3;
/// The oldest version of a log chunk record (each version is a subset of the next).
const CHUNK_V1: u8 = 1;

/// A message of a version 1 to 3 log chunk: no attachment (a version 1 or 2 chunk uses a subset of
/// the kinds).
#[derive(Clone, Serialize, Deserialize)]
struct MessageV3 {
    id: MessageId,
    kind: MessageKind,
    outgoing: bool,
    text: String,
    sent_at: u64,
    received_at: u64,
    delivery: Delivery,
}

impl From<MessageV3> for Message {
    fn from(m: MessageV3) -> Self {
        let MessageV3 { id, kind, outgoing, text, sent_at, received_at, delivery } = m;
        Self { id, kind, outgoing, text, sent_at, received_at, delivery, attachment: None }
    }
}

/// The profile record's name.
pub const PROFILE_RECORD: &str = "profile";
/// The single record of earlier releases (read, never written).
pub const LEGACY_RECORD: &str = "state";
const CHUNK_PREFIX: &str = "log/";

/// Why stored records are not an engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// Empty, truncated, incomplete or otherwise undecodable.
    #[error("stored state is corrupt")]
    Corrupt,
    /// Written by a newer version of Doorless.
    #[error("stored state has an unsupported version")]
    UnsupportedVersion,
}

impl From<MissingChunk> for SnapshotError {
    fn from(_: MissingChunk) -> Self {
        Self::Corrupt
    }
}

/// Which chunk of which conversation a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ChunkKey {
    /// The conversation.
    pub contact: ContactId,
    /// The chunk's position in it.
    pub index: u32,
}

impl ChunkKey {
    /// The record name, `log/<contact>/<index>` in fixed-width hex (so names sort by position).
    pub fn record_name(&self) -> String {
        format!("{CHUNK_PREFIX}{:08x}/{:08x}", self.contact.0, self.index)
    }

    /// The key of a chunk record name; `None` for any other name.
    pub fn parse(name: &str) -> Option<Self> {
        let (contact, index) = name.strip_prefix(CHUNK_PREFIX)?.split_once('/')?;
        let hex = |s: &str| (s.len() == 8).then(|| u32::from_str_radix(s, 16).ok()).flatten();
        Some(Self { contact: ContactId(hex(contact)?), index: hex(index)? })
    }
}

/// What a save writes, all in one transaction: the chunks of deleted or cleared conversations
/// are deleted first, then the profile and the log chunks that changed are written. (A cleared
/// conversation that goes on writes its chunk 0 again in the same save, after the deletion.)
pub struct Records {
    /// The profile record ([`PROFILE_RECORD`]).
    pub profile: Zeroizing<Vec<u8>>,
    /// Changed chunks.
    pub chunks: Vec<(ChunkKey, Zeroizing<Vec<u8>>)>,
    /// Chunks to delete (maybe never stored: deleting what is not there is no error).
    pub deleted: Vec<ChunkKey>,
}

impl Records {
    /// The names of the records to delete, before the writes.
    pub fn deleted_names(&self) -> Vec<String> {
        self.deleted.iter().map(ChunkKey::record_name).collect()
    }

    /// Every record with its name.
    pub fn into_named(self) -> impl Iterator<Item = (String, Zeroizing<Vec<u8>>)> {
        std::iter::once((PROFILE_RECORD.to_owned(), self.profile))
            .chain(self.chunks.into_iter().map(|(key, bytes)| (key.record_name(), bytes)))
    }
}

/// Version 6 followed by the inbox schedule and old inboxes of each contact, in contact order.
#[derive(Serialize, Deserialize)]
struct ProfileV7 {
    base: ProfileV6,
    moves: Vec<ContactMovesV7>,
}

#[derive(Serialize, Deserialize)]
struct ContactMovesV7 {
    /// When the current inbox was made (unix seconds; 0 for a migrated profile: due).
    inbox_since: u64,
    /// Old inboxes still read, oldest first.
    retiring: Vec<RetiringV7>,
}

/// An old inbox: a version 3 retiring inbox followed by its relay (`None`: the home relay).
#[derive(Clone, Serialize, Deserialize)]
struct RetiringV7 {
    base: RetiringV1,
    relay: Option<String>,
}

/// Version 5 followed by where each of its addresses is (postcard writes the nested struct as its
/// fields, so this is the flat list of docs/stored-profile.md).
#[derive(Serialize, Deserialize)]
struct ProfileV6 {
    base: ProfileV5,
    relays: RelaysV6,
}

/// The relays of a version 5 profile's addresses, each list in the order of the list it
/// describes; `None` is the home relay (whichever it is).
#[derive(Serialize, Deserialize)]
struct RelaysV6 {
    /// The relay new inboxes are made on; `None` until the profile first connected.
    home: Option<String>,
    contacts: Vec<ContactRelaysV6>,
    /// Each invite's mailbox's.
    invites: Vec<Option<String>>,
    /// Each unconfirmed deposit's mailbox's.
    unconfirmed: Vec<Option<String>>,
}

#[derive(Serialize, Deserialize)]
struct ContactRelaysV6 {
    inbox: Option<String>,
    outbox: Option<String>,
    retiring: Option<String>,
}

impl RelaysV6 {
    /// A version 5 profile's: every address on the home relay, the one relay it used.
    fn home_only(p: &ProfileV5) -> Self {
        Self {
            home: None,
            contacts: p
                .contacts
                .iter()
                .map(|_| ContactRelaysV6 { inbox: None, outbox: None, retiring: None })
                .collect(),
            invites: vec![None; p.invites.len()],
            unconfirmed: vec![None; p.unconfirmed.len()],
        }
    }
}

/// A stored relay origin; only the normalised form is one.
fn origin(stored: Option<&String>) -> Result<Option<RelayOrigin>, SnapshotError> {
    stored
        .map(|s| RelayOrigin::parse(s).ok().filter(|o| o.as_str() == s).ok_or(SnapshotError::Corrupt))
        .transpose()
}

fn stored_origin(relay: Option<&RelayOrigin>) -> Option<String> {
    relay.map(|r| r.as_str().to_owned())
}

/// A stored profile, every version: the versions differ only in their contact and invite records.
/// Each version's type is an alias below; postcard writes the fields in this order.
#[derive(Serialize, Deserialize)]
struct StoredProfile<C: StoredSecrets, I: StoredSecrets> {
    identity: Vec<u8>,
    name: String,
    contacts: Vec<C>,
    invites: Vec<I>,
    next_contact: u32,
    unconfirmed: Vec<(u32, Outgoing)>,
    next_request: u32,
    undecryptable: u32,
}

type ProfileV5 = StoredProfile<ContactV5, InviteV5>;
type ProfileV4 = StoredProfile<ContactV4, InviteV3>;
type ProfileV3 = StoredProfile<ContactV3, InviteV3>;
type ProfileV2 = StoredProfile<ContactV2, InviteV1>;
/// The single-record snapshot of the earliest releases (contacts hold their whole log).
type SnapshotV1 = StoredProfile<ContactV1, InviteV1>;

/// The secret fields of a stored contact or invite record, wiped when its profile is dropped.
trait StoredSecrets {
    fn zeroize_secrets(&mut self);
}

impl<C: StoredSecrets, I: StoredSecrets> Drop for StoredProfile<C, I> {
    fn drop(&mut self) {
        self.identity.zeroize();
        self.contacts.iter_mut().for_each(StoredSecrets::zeroize_secrets);
        self.invites.iter_mut().for_each(StoredSecrets::zeroize_secrets);
    }
}

impl<C: StoredSecrets, I: StoredSecrets> StoredProfile<C, I> {
    /// The same profile with each contact and invite record converted (fields are taken, not
    /// moved: both types zeroize their secrets on drop).
    fn convert<D: StoredSecrets, J: StoredSecrets>(
        mut self,
        contact: impl FnMut(&mut C) -> D,
        invite: impl FnMut(&mut I) -> J,
    ) -> StoredProfile<D, J> {
        StoredProfile {
            identity: take(&mut self.identity),
            name: take(&mut self.name),
            contacts: self.contacts.iter_mut().map(contact).collect(),
            invites: self.invites.iter_mut().map(invite).collect(),
            next_contact: self.next_contact,
            unconfirmed: take(&mut self.unconfirmed),
            next_request: self.next_request,
            undecryptable: self.undecryptable,
        }
    }

    fn counters(&self) -> Counters {
        Counters {
            next_contact: self.next_contact,
            next_request: self.next_request,
            undecryptable: self.undecryptable,
        }
    }
}

/// The secrets every contact and invite record version holds: a contact's session and inbox seed,
/// an invite's secret and inbox seed.
macro_rules! stored_secrets {
    ($($t:ty: $first:ident, $second:ident);* $(;)?) => {$(
        impl StoredSecrets for $t {
            fn zeroize_secrets(&mut self) {
                self.$first.zeroize();
                self.$second.zeroize();
            }
        }
    )*};
}

stored_secrets!(
    ContactV2: session, inbox;
    ContactV1: session, inbox;
    InviteV3: secret, inbox;
    InviteV1: secret, inbox;
);

/// Records that extend the previous version's record hold its secrets in `base`.
macro_rules! stored_secrets_in_base {
    ($($t:ty),*) => {$(
        impl StoredSecrets for $t {
            fn zeroize_secrets(&mut self) {
                self.base.zeroize_secrets();
            }
        }
    )*};
}

stored_secrets_in_base!(ContactV5, ContactV4, ContactV3, InviteV5);

/// A version 4 contact followed by the name they call themselves (postcard writes a nested
/// struct as its fields, so this is the flat list of docs/stored-profile.md).
#[derive(Serialize, Deserialize)]
struct ContactV5 {
    base: ContactV4,
    their_name: String,
}

/// A version 3 invite followed by its id and the "Invite for" name.
#[derive(Serialize, Deserialize)]
struct InviteV5 {
    base: InviteV3,
    id: u32,
    for_name: Option<String>,
}

/// A version 3 contact followed by the person's "Block" and the time the joiner accepted.
#[derive(Serialize, Deserialize)]
struct ContactV4 {
    base: ContactV3,
    /// Blocked by the person ("Block").
    barred: bool,
    /// Accepted their invite then; nothing read from them since.
    awaiting_since: Option<u64>,
}

/// A version 2 contact followed by the printed mailbox it retires and whether the fresh inbox is
/// still to be announced.
#[derive(Serialize, Deserialize)]
struct ContactV3 {
    base: ContactV2,
    retiring: Option<RetiringV1>,
    announce: bool,
}

#[derive(Clone, Serialize, Deserialize)]
struct RetiringV1 {
    /// The mailbox's private seed.
    inbox: [u8; 32],
    until: u64,
    switched: bool,
}

#[derive(Serialize, Deserialize)]
struct InviteV3 {
    secret: Vec<u8>,
    inbox: [u8; 32],
    for_contact: Option<ContactId>,
    failed: u32,
}

#[derive(Serialize, Deserialize)]
struct ContactV2 {
    id: ContactId,
    name: String,
    session: Vec<u8>,
    inbox: [u8; 32],
    outbox: [u8; 32],
    /// Messages in the log: its chunks must add up to exactly this.
    messages: u32,
    unread: u32,
    verified: bool,
    blocked: bool,
}

#[derive(Serialize, Deserialize)]
struct ContactV1 {
    id: ContactId,
    name: String,
    session: Vec<u8>,
    inbox: [u8; 32],
    outbox: [u8; 32],
    messages: Vec<MessageV3>,
    unread: u32,
    verified: bool,
    blocked: bool,
}

#[derive(Serialize, Deserialize)]
struct InviteV1 {
    secret: Vec<u8>,
    inbox: [u8; 32],
    for_contact: Option<ContactId>,
}

/// Version 4 is version 5 where each contact calls themselves what this profile calls them,
/// and no invite has an "Invite for" name (ids are given in order).
impl From<ProfileV4> for ProfileV5 {
    fn from(p: ProfileV4) -> Self {
        let mut id = 0;
        p.convert(
            |c| ContactV5 { their_name: c.base.base.name.clone(), base: take_contact_v4(c) },
            |i| {
                id += 1;
                InviteV5 { base: take_invite_v3(i), id, for_name: None }
            },
        )
    }
}

impl Drop for RetiringV1 {
    fn drop(&mut self) {
        self.inbox.zeroize();
    }
}

/// Version 3 is version 4 with nobody blocked.
impl From<ProfileV3> for ProfileV4 {
    fn from(p: ProfileV3) -> Self {
        p.convert(
            |c| ContactV4 { base: take_contact_v3(c), barred: false, awaiting_since: None },
            take_invite_v3,
        )
    }
}

/// Version 2 is version 3 with nothing to retire, no announcement due and no failed answers.
impl From<ProfileV2> for ProfileV3 {
    fn from(p: ProfileV2) -> Self {
        p.convert(
            |c| ContactV3 { base: take_contact_v2(c), retiring: None, announce: false },
            |i| InviteV3 {
                secret: take(&mut i.secret),
                inbox: i.inbox,
                for_contact: i.for_contact,
                failed: 0,
            },
        )
    }
}

/// Move a contact record out of a profile being converted (its secrets leave with it).
fn take_contact_v2(c: &mut ContactV2) -> ContactV2 {
    ContactV2 { name: take(&mut c.name), session: take(&mut c.session), ..*c }
}

fn take_contact_v3(c: &mut ContactV3) -> ContactV3 {
    ContactV3 { base: take_contact_v2(&mut c.base), retiring: c.retiring.take(), announce: c.announce }
}

fn take_contact_v4(c: &mut ContactV4) -> ContactV4 {
    ContactV4 { base: take_contact_v3(&mut c.base), barred: c.barred, awaiting_since: c.awaiting_since }
}

/// Moves a version 3 invite record out of a profile being converted.
fn take_invite_v3(i: &mut InviteV3) -> InviteV3 {
    InviteV3 { secret: take(&mut i.secret), ..*i }
}

/// One contact as stored, whatever the version.
struct StoredContact<'a> {
    id: ContactId,
    name: &'a str,
    their_name: &'a str,
    session: &'a [u8],
    inbox: &'a [u8; 32],
    outbox: [u8; 32],
    /// Relays of the inbox and the outbox (`None`: home).
    relays: [Option<RelayOrigin>; 2],
    log: Log,
    unread: u32,
    verified: bool,
    blocked: bool,
    /// Old inboxes with their relays, oldest first.
    retiring: Vec<(RetiringV1, Option<RelayOrigin>)>,
    inbox_since: u64,
    announce: bool,
    barred: bool,
    awaiting_since: Option<u64>,
}

/// One invite as stored, whatever the version.
struct StoredInvite<'a> {
    id: u32,
    secret: &'a [u8],
    inbox: &'a [u8; 32],
    for_contact: Option<ContactId>,
    for_name: Option<&'a str>,
    failed: u32,
    relay: Option<RelayOrigin>,
}

impl<'a> StoredInvite<'a> {
    /// A version 1 invite, given the id `id`.
    fn v1(i: &'a InviteV1, id: u32) -> Self {
        Self {
            id,
            secret: &i.secret,
            inbox: &i.inbox,
            for_contact: i.for_contact,
            for_name: None,
            failed: 0,
            relay: None,
        }
    }
}

impl<'a> StoredInvite<'a> {
    fn v5(i: &'a InviteV5, relay: Option<RelayOrigin>) -> Self {
        Self {
            id: i.id,
            secret: &i.base.secret,
            inbox: &i.base.inbox,
            for_contact: i.base.for_contact,
            for_name: i.for_name.as_deref(),
            failed: i.base.failed,
            relay,
        }
    }
}

fn decode<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, SnapshotError> {
    postcard::from_bytes(body).map_err(|_| SnapshotError::Corrupt)
}

fn versioned(version: u8, value: &impl Serialize) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(vec![version]);
    // Serializing plain structs into a Vec cannot fail; an empty body would be refused on load.
    if let Ok(body) = postcard::to_allocvec(value).map(Zeroizing::new) {
        out.extend_from_slice(&body);
    }
    out
}

impl Engine {
    /// What changed since the last call, to store: the profile record, always, and the log
    /// chunks that changed. Secret: store it encrypted only. If storing fails, call
    /// [`Engine::save_failed`] so the next call writes everything again.
    pub fn take_records(&mut self) -> Records {
        let mut chunks = Vec::new();
        for c in self.contacts.values_mut() {
            for (index, chunk) in c.messages.take_dirty() {
                let key = ChunkKey { contact: c.id, index };
                chunks.push((key, versioned(CHUNK_VERSION, &*chunk)));
            }
        }
        let base = ProfileV5 {
            identity: self.identity.to_bytes().to_vec(),
            name: self.name.clone(),
            contacts: self
                .contacts
                .values()
                .map(|c| ContactV5 {
                    their_name: c.their_name.clone(),
                    base: ContactV4 {
                        base: ContactV3 {
                            base: ContactV2 {
                                id: c.id,
                                name: c.name.clone(),
                                session: c.session.to_bytes().to_vec(),
                                inbox: *c.inbox.seed(),
                                outbox: c.outbox.0,
                                messages: u32::try_from(c.messages.len()).unwrap_or(u32::MAX),
                                unread: c.unread,
                                verified: c.verified,
                                blocked: c.blocked,
                            },
                            // Version 7 keeps them all in `moves`.
                            retiring: None,
                            announce: c.announce,
                        },
                        barred: c.barred,
                        awaiting_since: c.awaiting_since,
                    },
                })
                .collect(),
            invites: self.stored_invites(),
            next_contact: self.next_contact,
            unconfirmed: self.unconfirmed.iter().cloned().collect(),
            next_request: self.next_request,
            undecryptable: self.undecryptable,
        };
        let relays = RelaysV6 {
            home: stored_origin(self.home.as_ref()),
            contacts: self
                .contacts
                .values()
                .map(|c| ContactRelaysV6 {
                    inbox: stored_origin(c.inbox_relay.as_ref()),
                    outbox: stored_origin(c.outbox_relay.as_ref()),
                    retiring: None,
                })
                .collect(),
            invites: self.invites.iter().map(|i| stored_origin(i.relay.as_ref())).collect(),
            unconfirmed: self.unconfirmed.iter().map(|(_, o)| stored_origin(o.relay.as_ref())).collect(),
        };
        let moves = self
            .contacts
            .values()
            .map(|c| ContactMovesV7 {
                inbox_since: c.inbox_since,
                retiring: c
                    .retiring
                    .iter()
                    .map(|r| RetiringV7 {
                        base: RetiringV1 { inbox: *r.inbox.seed(), until: r.until, switched: r.switched },
                        relay: stored_origin(r.relay.as_ref()),
                    })
                    .collect(),
            })
            .collect();
        let profile = ProfileV7 { base: ProfileV6 { base, relays }, moves };
        let deleted = take(&mut self.deleted);
        self.deleting.clone_from(&deleted);
        Records { profile: versioned(PROFILE_VERSION, &profile), chunks, deleted }
    }

    /// The last records were not stored: the next [`Engine::take_records`] deletes what they
    /// deleted and writes every chunk.
    pub fn save_failed(&mut self) {
        let again = take(&mut self.deleting);
        self.deleted.extend(again);
        self.rewrite_all();
    }

    /// The next [`Engine::take_records`] writes every chunk (after the storage key changed, say).
    pub fn rewrite_all(&mut self) {
        for c in self.contacts.values_mut() {
            c.messages.mark_all();
        }
    }

    fn stored_invites(&self) -> Vec<InviteV5> {
        self.invites
            .iter()
            .map(|i| InviteV5 {
                base: InviteV3 {
                    secret: i.secret.to_bytes().to_vec(),
                    inbox: *i.inbox.seed(),
                    for_contact: i.for_contact,
                    failed: i.failed,
                },
                id: i.id.0,
                for_name: i.for_name.clone(),
            })
            .collect()
    }

    /// Restores an engine from its stored records (by name, as [`Records::into_named`] wrote them,
    /// or the single record of earlier releases). Never panics on any input; a missing or surplus
    /// chunk is [`SnapshotError::Corrupt`].
    pub fn restore<'a>(
        records: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> Result<Self, SnapshotError> {
        let mut profile = None;
        let mut legacy = None;
        let mut chunks: BTreeMap<ContactId, Vec<(u32, Vec<Message>)>> = BTreeMap::new();
        for (name, bytes) in records {
            if name == PROFILE_RECORD {
                profile = Some(bytes);
            } else if name == LEGACY_RECORD {
                legacy = Some(bytes);
            } else if let Some(key) = ChunkKey::parse(name) {
                let (&version, body) = bytes.split_first().ok_or(SnapshotError::Corrupt)?;
                let messages: Vec<Message> = match version {
                    CHUNK_VERSION => postcard::from_bytes(body).map_err(|_| SnapshotError::Corrupt)?,
                    CHUNK_V1..=CHUNK_V3 => postcard::from_bytes::<Vec<MessageV3>>(body)
                        .map_err(|_| SnapshotError::Corrupt)?
                        .into_iter()
                        .map(Message::from)
                        .collect(),
                    _ => return Err(SnapshotError::UnsupportedVersion),
                };
                chunks.entry(key.contact).or_default().push((key.index, messages));
            }
        }
        match (profile, legacy) {
            (Some(profile), _) => Self::from_profile(profile, chunks),
            (None, Some(legacy)) if chunks.is_empty() => {
                let mut engine = Self::from_bytes(legacy)?;
                // Nothing of it is in the current format yet.
                engine.rewrite_all();
                Ok(engine)
            }
            _ => Err(SnapshotError::Corrupt),
        }
    }

    fn from_profile(
        bytes: &[u8],
        mut chunks: BTreeMap<ContactId, Vec<(u32, Vec<Message>)>>,
    ) -> Result<Self, SnapshotError> {
        let (&version, body) = bytes.split_first().ok_or(SnapshotError::Corrupt)?;
        let mut log = |id: ContactId, messages: u32| {
            Log::from_chunks(messages as usize, chunks.remove(&id).unwrap_or_default())
        };
        let ProfileV7 { base: ProfileV6 { base: p, relays }, moves } = match version {
            PROFILE_VERSION => decode(body)?,
            v if v > PROFILE_VERSION => return Err(SnapshotError::UnsupportedVersion),
            PROFILE_V6 => ProfileV7::from(decode::<ProfileV6>(body)?),
            v => {
                let base: ProfileV5 = match v {
                    PROFILE_V5 => decode(body)?,
                    PROFILE_V4 => decode::<ProfileV4>(body)?.into(),
                    PROFILE_V3 => ProfileV4::from(decode::<ProfileV3>(body)?).into(),
                    PROFILE_V2 => ProfileV4::from(ProfileV3::from(decode::<ProfileV2>(body)?)).into(),
                    _ => return Err(SnapshotError::Corrupt),
                };
                ProfileV7::from(ProfileV6 { relays: RelaysV6::home_only(&base), base })
            }
        };
        if relays.contacts.len() != p.contacts.len()
            || moves.len() != p.contacts.len()
            || relays.invites.len() != p.invites.len()
            || relays.unconfirmed.len() != p.unconfirmed.len()
        {
            return Err(SnapshotError::Corrupt);
        }
        let mut contacts = Vec::new();
        for ((contact, at), moved) in p.contacts.iter().zip(&relays.contacts).zip(&moves) {
            let ContactV5 {
                base: ContactV4 { base: ContactV3 { base: c, retiring, announce }, barred, awaiting_since },
                their_name,
            } = contact;
            contacts.push(StoredContact {
                id: c.id,
                name: &c.name,
                their_name,
                session: &c.session,
                inbox: &c.inbox,
                outbox: c.outbox,
                relays: [origin(at.inbox.as_ref())?, origin(at.outbox.as_ref())?],
                log: log(c.id, c.messages)?,
                unread: c.unread,
                verified: c.verified,
                blocked: c.blocked,
                retiring: stored_retiring(retiring.as_ref(), at.retiring.as_ref(), &moved.retiring)?,
                inbox_since: moved.inbox_since,
                announce: *announce,
                barred: *barred,
                awaiting_since: *awaiting_since,
            });
        }
        let mut invites = Vec::new();
        for (invite, relay) in p.invites.iter().zip(&relays.invites) {
            invites.push(StoredInvite::v5(invite, origin(relay.as_ref())?));
        }
        let mut unconfirmed = p.unconfirmed.clone();
        for ((_, outgoing), relay) in unconfirmed.iter_mut().zip(&relays.unconfirmed) {
            outgoing.relay = origin(relay.as_ref())?;
        }
        let mut engine = Self::assemble(&p.identity, &p.name, contacts, invites, &unconfirmed, p.counters())?;
        engine.home = origin(relays.home.as_ref())?;
        if !chunks.is_empty() {
            // Chunks of a conversation the profile does not have.
            return Err(SnapshotError::Corrupt);
        }
        Ok(engine)
    }

    /// Restores an engine from the single-record snapshot of earlier releases.
    fn from_bytes(bytes: &[u8]) -> Result<Self, SnapshotError> {
        let (&version, body) = bytes.split_first().ok_or(SnapshotError::Corrupt)?;
        if version != LEGACY_VERSION {
            return Err(SnapshotError::UnsupportedVersion);
        }
        let s: SnapshotV1 = postcard::from_bytes(body).map_err(|_| SnapshotError::Corrupt)?;
        let contacts = s
            .contacts
            .iter()
            .map(|c| {
                let mut log = Log::default();
                for m in &c.messages {
                    log.push(m.clone().into());
                }
                StoredContact {
                    id: c.id,
                    name: &c.name,
                    their_name: &c.name,
                    session: &c.session,
                    inbox: &c.inbox,
                    outbox: c.outbox,
                    relays: Default::default(),
                    log,
                    unread: c.unread,
                    verified: c.verified,
                    blocked: c.blocked,
                    retiring: Vec::new(),
                    inbox_since: 0,
                    announce: false,
                    barred: false,
                    awaiting_since: None,
                }
            })
            .collect();
        let invites = s.invites.iter().zip(1..).map(|(i, id)| StoredInvite::v1(i, id)).collect();
        Self::assemble(&s.identity, &s.name, contacts, invites, &s.unconfirmed, s.counters())
    }

    fn assemble(
        identity: &[u8],
        name: &str,
        stored: Vec<StoredContact<'_>>,
        stored_invites: Vec<StoredInvite<'_>>,
        unconfirmed: &[(u32, Outgoing)],
        Counters { next_contact, next_request, undecryptable }: Counters,
    ) -> Result<Self, SnapshotError> {
        let identity = Identity::from_bytes(identity).map_err(|_| SnapshotError::Corrupt)?;
        let own = identity.public();
        let mut contacts = BTreeMap::new();
        for c in stored {
            let session = Session::from_bytes(c.session).map_err(|_| SnapshotError::Corrupt)?;
            let safety = core::safety_number(&own, session.peer_identity());
            contacts.insert(
                c.id,
                Contact {
                    id: c.id,
                    name: c.name.to_owned(),
                    their_name: c.their_name.to_owned(),
                    session,
                    inbox: Mailbox::from_seed(c.inbox),
                    outbox: MailboxId(c.outbox),
                    inbox_relay: c.relays[0].clone(),
                    outbox_relay: c.relays[1].clone(),
                    messages: c.log,
                    unread: c.unread,
                    verified: c.verified,
                    blocked: c.blocked,
                    safety,
                    retiring: c
                        .retiring
                        .iter()
                        .map(|(r, relay)| Retiring {
                            inbox: Mailbox::from_seed(&r.inbox),
                            relay: relay.clone(),
                            until: r.until,
                            switched: r.switched,
                        })
                        .collect(),
                    inbox_since: c.inbox_since,
                    announce: c.announce,
                    barred: c.barred,
                    awaiting_since: c.awaiting_since,
                },
            );
        }
        let mut invites = Vec::new();
        for i in stored_invites {
            let secret = InviteSecret::from_bytes(i.secret).map_err(|_| SnapshotError::Corrupt)?;
            let id = InviteId(i.id);
            let mut invite =
                PendingInvite::new(id, secret, Mailbox::from_seed(i.inbox), i.relay, i.for_contact);
            invite.failed = i.failed;
            invite.for_name = i.for_name.map(str::to_owned);
            invites.push(invite);
        }
        let next_invite = invites.iter().map(|i| i.id.0).max().unwrap_or(0).wrapping_add(1).max(1);
        Ok(Self {
            identity,
            name: name.to_owned(),
            contacts,
            invites,
            next_contact,
            next_invite,
            home: None,
            links: Vec::new(),
            unconfirmed: unconfirmed.iter().cloned().collect::<VecDeque<_>>(),
            next_request,
            undecryptable,
            resubscribe: None,
            out: VecDeque::new(),
            deleted: Vec::new(),
            deleting: Vec::new(),
            forgotten: Vec::new(),
            short: Default::default(),
        })
    }
}

/// Version 6 is version 7 with its one retiring inbox (still in the version 6 fields) and every
/// inbox due for rotation.
impl From<ProfileV6> for ProfileV7 {
    fn from(base: ProfileV6) -> Self {
        let moves = base
            .base
            .contacts
            .iter()
            .map(|_| ContactMovesV7 { inbox_since: 0, retiring: Vec::new() })
            .collect();
        Self { base, moves }
    }
}

/// A contact's old inboxes: a version 6 retiring inbox (`v6`, on `v6_relay`), then version 7's.
fn stored_retiring(
    v6: Option<&RetiringV1>,
    v6_relay: Option<&String>,
    v7: &[RetiringV7],
) -> Result<Vec<(RetiringV1, Option<RelayOrigin>)>, SnapshotError> {
    let mut all = Vec::new();
    if let Some(r) = v6 {
        all.push((r.clone(), origin(v6_relay)?));
    }
    for r in v7 {
        all.push((r.base.clone(), origin(r.relay.as_ref())?));
    }
    Ok(all)
}

/// The plain counters of a stored profile.
struct Counters {
    next_contact: u32,
    next_request: u32,
    undecryptable: u32,
}
