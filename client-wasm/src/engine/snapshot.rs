//! The engine's stored form: `version: u8 = 1 | postcard(SnapshotV1)`.
//!
//! Every secret (identity, ratchet sessions, invite secrets, mailbox keys) is in here, so the bytes
//! are only ever written encrypted (see `browser::Vault`), and the intermediate buffers are zeroized.
//! A new version adds a new struct and a migration in [`Engine::from_bytes`]; old snapshots stay
//! readable.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use super::{Contact, ContactId, Engine, Link, Mailbox, Message, Outgoing, PendingInvite};
use crate::core::{self, Identity, InviteSecret, Session};
use doorless_frames::MailboxId;

/// The current snapshot version.
pub const SNAPSHOT_VERSION: u8 = 1;

/// Why stored bytes are not an engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// Empty, truncated or otherwise undecodable.
    #[error("stored state is corrupt")]
    Corrupt,
    /// Written by a newer version of Doorless.
    #[error("stored state has an unsupported version")]
    UnsupportedVersion,
}

#[derive(Serialize, Deserialize)]
struct SnapshotV1 {
    identity: Vec<u8>,
    name: String,
    contacts: Vec<ContactV1>,
    invites: Vec<InviteV1>,
    next_contact: u32,
    unconfirmed: Vec<(u32, Outgoing)>,
    next_request: u32,
    undecryptable: u32,
}

#[derive(Serialize, Deserialize)]
struct ContactV1 {
    id: ContactId,
    name: String,
    session: Vec<u8>,
    inbox: [u8; 32],
    outbox: [u8; 32],
    messages: Vec<Message>,
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

impl Drop for SnapshotV1 {
    fn drop(&mut self) {
        self.identity.zeroize();
        for contact in &mut self.contacts {
            contact.session.zeroize();
            contact.inbox.zeroize();
        }
        for invite in &mut self.invites {
            invite.secret.zeroize();
            invite.inbox.zeroize();
        }
    }
}

impl Engine {
    /// Everything needed to resume after a reload: identity, contacts with their ratchet sessions,
    /// open invites, conversations and the outbox. Secret: store it encrypted only.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let snapshot = SnapshotV1 {
            identity: self.identity.to_bytes().to_vec(),
            name: self.name.clone(),
            contacts: self
                .contacts
                .values()
                .map(|c| ContactV1 {
                    id: c.id,
                    name: c.name.clone(),
                    session: c.session.to_bytes().to_vec(),
                    inbox: *c.inbox.seed(),
                    outbox: c.outbox.0,
                    messages: c.messages.clone(),
                    unread: c.unread,
                    verified: c.verified,
                    blocked: c.blocked,
                })
                .collect(),
            invites: self
                .invites
                .iter()
                .map(|i| InviteV1 {
                    secret: i.secret.to_bytes().to_vec(),
                    inbox: *i.inbox.seed(),
                    for_contact: i.for_contact,
                })
                .collect(),
            next_contact: self.next_contact,
            unconfirmed: self.unconfirmed.iter().cloned().collect(),
            next_request: self.next_request,
            undecryptable: self.undecryptable,
        };
        let mut out = Zeroizing::new(vec![SNAPSHOT_VERSION]);
        // Serializing plain structs into a Vec cannot fail; an empty body would be refused on load.
        if let Ok(body) = postcard::to_allocvec(&snapshot).map(Zeroizing::new) {
            out.extend_from_slice(&body);
        }
        out
    }

    /// Restores an engine from [`Engine::to_bytes`]. Never panics on any input.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SnapshotError> {
        let (&version, body) = bytes.split_first().ok_or(SnapshotError::Corrupt)?;
        if version != SNAPSHOT_VERSION {
            return Err(SnapshotError::UnsupportedVersion);
        }
        let snapshot: SnapshotV1 = postcard::from_bytes(body).map_err(|_| SnapshotError::Corrupt)?;
        let identity = Identity::from_bytes(&snapshot.identity).map_err(|_| SnapshotError::Corrupt)?;
        let own = identity.public();
        let mut contacts = BTreeMap::new();
        for c in &snapshot.contacts {
            let session = Session::from_bytes(&c.session).map_err(|_| SnapshotError::Corrupt)?;
            let safety = core::safety_number(&own, session.peer_identity());
            contacts.insert(
                c.id,
                Contact {
                    id: c.id,
                    name: c.name.clone(),
                    session,
                    inbox: Mailbox::from_seed(&c.inbox),
                    outbox: MailboxId(c.outbox),
                    messages: c.messages.clone(),
                    unread: c.unread,
                    verified: c.verified,
                    blocked: c.blocked,
                    safety,
                },
            );
        }
        let mut invites = Vec::new();
        for i in &snapshot.invites {
            invites.push(PendingInvite {
                secret: InviteSecret::from_bytes(&i.secret).map_err(|_| SnapshotError::Corrupt)?,
                inbox: Mailbox::from_seed(&i.inbox),
                for_contact: i.for_contact,
            });
        }
        Ok(Self {
            identity,
            name: snapshot.name.clone(),
            contacts,
            invites,
            next_contact: snapshot.next_contact,
            link: Link::Down,
            unconfirmed: snapshot.unconfirmed.iter().cloned().collect::<VecDeque<_>>(),
            next_request: snapshot.next_request,
            undecryptable: snapshot.undecryptable,
            out: VecDeque::new(),
        })
    }
}
