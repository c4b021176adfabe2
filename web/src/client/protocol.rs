//! What tabs of one profile say to each other over the BroadcastChannel (postcard-encoded).

use client_wasm::engine::{ContactId, InviteLink, ProfileView};
use serde::{Deserialize, Serialize};

/// Something the person asked for. Any tab may ask; the owner tab carries it out.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Command {
    /// Create the profile.
    Start { name: String },
    /// Open a passphrase-locked profile.
    Unlock { passphrase: String },
    /// Make an invite (for an existing conversation: re-establish it).
    NewInvite { for_contact: Option<ContactId> },
    /// Accept the invite in a URL fragment.
    AcceptInvite { fragment: String },
    /// Send a text.
    Send { contact: ContactId, text: String },
    /// The conversation was seen.
    MarkRead { contact: ContactId },
    /// Safety numbers were compared: `shown` is the number the person saw.
    MarkVerified { contact: ContactId, shown: String },
    /// Accept a changed safety number.
    AcceptSafetyNumberChange { contact: ContactId },
    /// Change the display name.
    SetName { name: String },
    /// Set or remove (None) the passphrase lock.
    SetPassphrase { passphrase: Option<String> },
    /// Reconnect (after the relay address changed).
    Reconnect,
    /// Delete everything.
    DeleteAll,
}

/// The owner's answer to the tab that asked.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Reply {
    /// An invite was made.
    InviteMade(InviteLink),
    /// Show this conversation.
    Open(ContactId),
    /// Tell the person something (plain words, no secrets).
    Notice(String),
    /// Done; clear any notice.
    Done,
}

/// Where the profile is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Phase {
    /// Reading storage.
    #[default]
    Loading,
    /// No profile yet.
    NeedsProfile,
    /// Stored profile locked with a passphrase.
    Locked,
    /// Running.
    Ready,
}

/// The state every tab shows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Shared {
    /// Where the profile is.
    pub phase: Phase,
    /// Relay connection ready.
    pub connected: bool,
    /// A passphrase lock is set.
    pub locked_with_passphrase: bool,
    /// Storage works (false: private mode or blocked; nothing survives a reload).
    pub persistent: bool,
    /// The tab that owns the engine (a change means a new owner took over).
    pub owner_tab: u32,
    /// Contacts and conversations.
    pub view: ProfileView,
}

/// One message on the channel.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum TabMessage {
    /// The owner's current state.
    State(Shared),
    /// A follower asks the owner to do something; `seq` is acknowledged with `Done`.
    Command { from: u32, seq: u32, command: Command },
    /// The owner carried out command `seq` of tab `to`.
    Done { to: u32, seq: u32 },
    /// The owner answers one tab.
    Reply { to: u32, reply: Reply },
    /// A new tab asks for the current state.
    Hello,
    /// Everything was deleted: reload.
    Wiped,
}

impl TabMessage {
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        postcard::from_bytes(bytes).ok()
    }
}
