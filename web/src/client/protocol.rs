//! What tabs of one profile say to each other over the BroadcastChannel (postcard-encoded).

use std::fmt;

use client_wasm::core::content::AttachmentRef;
use client_wasm::engine::{ContactId, InviteId, InviteLink, ProfileView};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// A passphrase on its way from the field where it was typed to the owner tab: zeroized when
/// dropped, never printed, and never posted to other tabs in clear (see [`TabMessage::Sealed`]).
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Passphrase(Zeroizing<String>);

impl Passphrase {
    /// Takes the typed text.
    pub fn new(text: String) -> Self {
        Self(Zeroizing::new(text))
    }

    /// The text, for the key derivation.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(..)")
    }
}

/// Something the person asked for. Any tab may ask; the owner tab carries it out.
#[derive(Clone, Serialize, Deserialize)]
pub enum Command {
    /// Create the profile.
    Start { name: String },
    /// Open a passphrase-locked profile.
    Unlock { passphrase: Passphrase },
    /// Make an invite (for an existing conversation: re-establish it; or "Invite for" a name).
    NewInvite { for_contact: Option<ContactId>, for_name: Option<String> },
    /// Revoke a pending invite.
    RevokeInvite { invite: InviteId },
    /// Fetch the invite of a short link's fragment from the relay the link names.
    FetchInvite { fragment: String },
    /// Accept the invite in a URL fragment, naming the inviter `name` (None: the invite's name).
    AcceptInvite { fragment: String, name: Option<String> },
    /// Send a text.
    Send { contact: ContactId, text: String },
    /// Send the message announcing a file whose upload completed (it carries the file's key).
    SendAttachment { contact: ContactId, attachment: Box<AttachmentRef> },
    /// The conversation was seen.
    MarkRead { contact: ContactId },
    /// Safety numbers were compared: `shown` is the number the person saw.
    MarkVerified { contact: ContactId, shown: String },
    /// Accept a changed safety number.
    AcceptSafetyNumberChange { contact: ContactId },
    /// Change the display name.
    SetName { name: String },
    /// Give a contact another local name.
    RenameContact { contact: ContactId, name: String },
    /// Delete a conversation on this side (history, keys, mailboxes).
    DeleteConversation { contact: ContactId },
    /// Delete a conversation's history on this side.
    ClearHistory { contact: ContactId },
    /// Block (or unblock) a contact.
    SetBarred { contact: ContactId, barred: bool },
    /// Set or remove (None) the passphrase lock.
    SetPassphrase { passphrase: Option<Passphrase> },
    /// Reconnect (after the relay address changed).
    Reconnect,
    /// Move to the relay at the typed address (Settings, "Move to this relay").
    MoveTo { address: String },
    /// Try the relay again now rather than at the next scheduled attempt ("Retry now").
    RetryNow,
    /// Delete everything.
    DeleteAll,
}

impl Command {
    /// It carries a passphrase or a file's key: another tab gets it only sealed ([`TabMessage::Sealed`]).
    pub fn carries_secret(&self) -> bool {
        matches!(
            self,
            Command::Unlock { .. }
                | Command::SetPassphrase { passphrase: Some(_) }
                | Command::SendAttachment { .. }
        )
    }
}

/// Names the command and its ids only: no names, texts, invites or passphrases.
impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Start { .. } => f.write_str("Start"),
            Command::Unlock { .. } => f.write_str("Unlock"),
            Command::NewInvite { for_contact, .. } => {
                write!(f, "NewInvite {{ for_contact: {for_contact:?} }}")
            }
            Command::RevokeInvite { invite } => write!(f, "RevokeInvite {{ invite: {invite:?} }}"),
            Command::AcceptInvite { .. } => f.write_str("AcceptInvite"),
            Command::FetchInvite { .. } => f.write_str("FetchInvite"),
            Command::Send { contact, .. } => write!(f, "Send {{ contact: {contact:?} }}"),
            Command::SendAttachment { contact, .. } => write!(f, "SendAttachment {{ contact: {contact:?} }}"),
            Command::MarkRead { contact } => write!(f, "MarkRead {{ contact: {contact:?} }}"),
            Command::MarkVerified { contact, .. } => write!(f, "MarkVerified {{ contact: {contact:?} }}"),
            Command::AcceptSafetyNumberChange { contact } => {
                write!(f, "AcceptSafetyNumberChange {{ contact: {contact:?} }}")
            }
            Command::SetName { .. } => f.write_str("SetName"),
            Command::RenameContact { contact, .. } => write!(f, "RenameContact {{ contact: {contact:?} }}"),
            Command::DeleteConversation { contact } => {
                write!(f, "DeleteConversation {{ contact: {contact:?} }}")
            }
            Command::ClearHistory { contact } => write!(f, "ClearHistory {{ contact: {contact:?} }}"),
            Command::SetBarred { contact, barred } => {
                write!(f, "SetBarred {{ contact: {contact:?}, barred: {barred} }}")
            }
            Command::SetPassphrase { passphrase } => {
                write!(f, "SetPassphrase {{ lock: {} }}", passphrase.is_some())
            }
            Command::Reconnect => f.write_str("Reconnect"),
            Command::MoveTo { .. } => f.write_str("MoveTo"),
            Command::RetryNow => f.write_str("RetryNow"),
            Command::DeleteAll => f.write_str("DeleteAll"),
        }
    }
}

/// The owner's answer to the tab that asked.
#[derive(Clone, Serialize, Deserialize)]
pub enum Reply {
    /// An invite was made.
    InviteMade(InviteLink),
    /// Show this conversation.
    Open(ContactId),
    /// The invite of the short link `short` was fetched (the full invite's fragment), or why not
    /// (plain words).
    InviteFetched { short: String, full: Result<String, String> },
    /// Tell the person something (plain words, no secrets).
    Notice(String),
    /// The engine refused a text (too long, or the conversation cannot send): the text goes back
    /// into the composer of that conversation, and the person is told why.
    Unsent { contact: ContactId, text: String, notice: String },
    /// Done; clear any notice.
    Done,
}

/// Never prints a text or an invite.
impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reply::InviteMade(_) => f.write_str("InviteMade"),
            Reply::Open(id) => write!(f, "Open({id:?})"),
            Reply::InviteFetched { full, .. } => write!(f, "InviteFetched {{ ok: {} }}", full.is_ok()),
            Reply::Notice(_) => f.write_str("Notice"),
            Reply::Unsent { contact, .. } => write!(f, "Unsent {{ contact: {contact:?} }}"),
            Reply::Done => f.write_str("Done"),
        }
    }
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
    /// Stopped: another tab or window runs this profile (or its storage was changed under this
    /// tab), so this tab must not run the ratchet. Reloading looks again.
    Elsewhere,
}

/// The relay connection, as the status in the header shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Connection {
    /// Nothing tried yet (no profile, or still locked): nothing to report.
    #[default]
    Idle,
    /// The first attempt is under way and none has failed yet.
    Connecting,
    /// Talking to the relay.
    Connected,
    /// The relay was unreachable (or the connection dropped); retrying.
    Offline,
}

/// The state every tab shows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Shared {
    /// Where the profile is.
    pub phase: Phase,
    /// The home relay's connection.
    pub connection: Connection,
    /// Contacts whose relay could not be reached while something waits to be deposited there.
    pub unreachable: Vec<ContactId>,
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
    /// A follower asks the owner to do something; `seq` is acknowledged with `Done`. Never a
    /// command that [carries a secret](Command::carries_secret).
    Command { from: u32, seq: u32, command: Command },
    /// A command that carries a secret, encoded and sealed under the profile's storage key, which
    /// every tab of the profile can use and nothing outside the browser profile can
    /// (`Vault::seal_for_tabs`).
    Sealed { from: u32, seq: u32, sealed: Vec<u8> },
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
    /// The message's bytes for the channel; empty (and so never posted) for a command that
    /// carries a secret, which only travels [sealed](TabMessage::Sealed).
    pub fn encode(&self) -> Vec<u8> {
        if let TabMessage::Command { command, .. } = self
            && command.carries_secret()
        {
            return Vec::new();
        }
        postcard::to_allocvec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        postcard::from_bytes(bytes).ok()
    }
}
