//! What the user interface shows, as plain data: the owner tab builds it from the engine and
//! other tabs of the same profile receive it over a BroadcastChannel. No secrets in here.

use serde::{Deserialize, Serialize};

use super::{ContactId, Engine, Message};

/// One conversation as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactView {
    /// Handle.
    pub id: ContactId,
    /// Display name.
    pub name: String,
    /// The conversation, oldest first.
    pub messages: Vec<Message>,
    /// Unseen incoming messages.
    pub unread: u32,
    /// Safety number compared and marked verified.
    pub verified: bool,
    /// Safety number changed while verified; sending waits for acceptance.
    pub blocked: bool,
    /// Messages the ratchet announced that have not arrived.
    pub missing: u32,
    /// The safety number as grouped digits.
    pub safety_digits: String,
    /// The safety number's QR payload.
    pub safety_qr: Vec<u8>,
}

/// The whole profile as shown.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileView {
    /// Own display name.
    pub name: String,
    /// Conversations, most recent activity first.
    pub contacts: Vec<ContactView>,
    /// Deposits waiting for the relay.
    pub outbox: u32,
    /// Blobs that failed to decrypt (tampered, replayed or foreign), ever.
    pub undecryptable: u32,
}

impl Engine {
    /// The view of everything.
    pub fn view(&self) -> ProfileView {
        let mut contacts: Vec<ContactView> = self
            .contacts()
            .map(|c| ContactView {
                id: c.id,
                name: c.name.clone(),
                messages: c.messages.clone(),
                unread: c.unread,
                verified: c.verified,
                blocked: c.blocked,
                missing: u32::try_from(c.missing()).unwrap_or(u32::MAX),
                safety_digits: c.safety_number().digits(),
                safety_qr: c.safety_number().qr_payload(),
            })
            .collect();
        contacts.sort_by_key(|c| std::cmp::Reverse(c.messages.last().map_or(0, |m| m.received_at)));
        ProfileView {
            name: self.name.clone(),
            contacts,
            outbox: u32::try_from(self.unconfirmed()).unwrap_or(u32::MAX),
            undecryptable: self.undecryptable,
        }
    }
}
