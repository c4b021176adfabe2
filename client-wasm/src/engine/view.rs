//! What the user interface shows, as plain data: the owner tab builds it from the engine and
//! other tabs of the same profile receive it over a BroadcastChannel. No secrets in here.

use serde::{Deserialize, Serialize};

use super::{Chunk, ContactId, Engine, InviteId, Message, MoveProgress, same_name};

/// One conversation as shown. `Debug` prints no name or message.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactView {
    /// Handle.
    pub id: ContactId,
    /// The name this profile gave them (shown in the list and the header).
    pub name: String,
    /// The name they call themselves, when it differs from `name` (shown beside it).
    pub calls_themselves: Option<String>,
    /// Another contact is shown under the same name (case and surrounding space ignored).
    pub same_name_as_other: bool,
    /// The conversation, oldest first, in the engine's chunks: shared, not copied, so building
    /// a view costs one pointer per chunk, and a view compares equal chunk by chunk.
    pub chunks: Vec<Chunk>,
    /// Unseen incoming messages.
    pub unread: u32,
    /// Safety number compared and marked verified.
    pub verified: bool,
    /// Safety number changed while verified; sending waits for acceptance.
    pub blocked: bool,
    /// Blocked by the person ("Block"): nothing from them is shown, nothing goes to them.
    pub barred: bool,
    /// Waiting for the inviter's first message since this time (unix seconds).
    pub awaiting_since: Option<u64>,
    /// Everything deposited for them is stored by the relay (nothing waits in the outbox).
    pub all_stored: bool,
    /// Messages the ratchet announced that have not arrived.
    pub missing: u32,
    /// The safety number as grouped digits.
    pub safety_digits: String,
    /// The safety number's QR payload.
    pub safety_qr: Vec<u8>,
}

impl ContactView {
    /// The conversation, oldest first.
    pub fn messages(&self) -> impl DoubleEndedIterator<Item = &Message> {
        self.chunks.iter().flat_map(|c| c.iter())
    }

    /// How many messages the conversation has.
    pub fn message_count(&self) -> usize {
        self.chunks.iter().map(|c| c.len()).sum()
    }
}

impl std::fmt::Debug for ContactView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContactView")
            .field("id", &self.id)
            .field("messages", &self.message_count())
            .field("unread", &self.unread)
            .field("verified", &self.verified)
            .field("blocked", &self.blocked)
            .finish_non_exhaustive()
    }
}

/// An invite this profile made that nobody has answered yet. `Debug` prints no name.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteView {
    /// Handle (for [`Engine::revoke_invite`]).
    pub id: InviteId,
    /// Who it is for: the "Invite for" name, or the contact a re-invite is for.
    pub for_name: Option<String>,
    /// Expiry, unix seconds. Answers are still taken for a grace period after it.
    pub expires_at: u64,
}

impl std::fmt::Debug for InviteView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InviteView")
            .field("id", &self.id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// The whole profile as shown. `Debug` prints no name or message.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileView {
    /// Own display name.
    pub name: String,
    /// Conversations, most recent activity first.
    pub contacts: Vec<ContactView>,
    /// Invites nobody has answered yet, oldest first (expired ones included until the engine
    /// drops them: the view filters by the time it shows them at).
    pub invites: Vec<InviteView>,
    /// Deposits waiting for the relay.
    pub outbox: u32,
    /// Blobs that failed to decrypt (tampered, replayed or foreign), ever.
    pub undecryptable: u32,
    /// The relays this profile talks to and why, home first ([`Engine::relays_in_use`]).
    pub relays: Vec<RelayView>,
    /// A move to another relay under way ([`Engine::move_progress`]).
    pub moving: Option<MoveProgress>,
}

/// A relay this profile talks to, and why (Settings, "Relays").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayView {
    /// The relay's origin (`https://relay.example`).
    pub origin: String,
    /// The home relay: our inboxes are made there.
    pub home: bool,
    /// Old inboxes are still read there (after a move), or an open invite's.
    pub draining: bool,
    /// Contacts whose mailbox for us is there.
    pub contacts: Vec<ContactId>,
}

impl std::fmt::Debug for ProfileView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProfileView")
            .field("contacts", &self.contacts)
            .field("invites", &self.invites)
            .field("outbox", &self.outbox)
            .field("undecryptable", &self.undecryptable)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Invites nobody has answered yet, oldest first.
    pub fn pending_invites(&self) -> impl Iterator<Item = InviteView> + '_ {
        self.invites.iter().map(|i| InviteView {
            id: i.id,
            for_name: i
                .for_name
                .clone()
                .or_else(|| i.for_contact.and_then(|c| self.contacts.get(&c)).map(|c| c.name.clone())),
            expires_at: i.secret.expires_at(),
        })
    }

    /// The view of everything.
    pub fn view(&self) -> ProfileView {
        let mut contacts: Vec<ContactView> = self
            .contacts()
            .map(|c| ContactView {
                id: c.id,
                name: c.name.clone(),
                calls_themselves: c.calls_themselves().map(str::to_owned),
                same_name_as_other: self
                    .contacts()
                    .any(|other| other.id != c.id && same_name(&other.name, &c.name)),
                chunks: c.messages.chunks().to_vec(),
                unread: c.unread,
                verified: c.verified,
                blocked: c.blocked,
                barred: c.barred,
                awaiting_since: c.awaiting_since,
                all_stored: self.all_stored(c.id),
                missing: u32::try_from(c.missing()).unwrap_or(u32::MAX),
                safety_digits: c.safety_number().digits(),
                safety_qr: c.safety_number().qr_payload(),
            })
            .collect();
        contacts.sort_by_key(|c| std::cmp::Reverse(c.messages().next_back().map_or(0, |m| m.received_at)));
        ProfileView {
            name: self.name.clone(),
            contacts,
            invites: self.pending_invites().collect(),
            outbox: u32::try_from(self.unconfirmed()).unwrap_or(u32::MAX),
            undecryptable: self.undecryptable,
            relays: self
                .relays_in_use()
                .into_iter()
                .map(|u| RelayView {
                    origin: u.origin.as_str().to_owned(),
                    home: u.home,
                    draining: u.draining,
                    contacts: u.contacts,
                })
                .collect(),
            moving: self.move_progress(),
        }
    }
}
