//! A member's side of Doorless groups on mls-rs: the client configuration (our provider, our
//! credentials, our rules) and a small group API that only speaks encrypted handshake messages.
//!
//! Rules every Doorless client enforces (docs/groups.md §3): no external commits, no external
//! senders or proposals from non-members, Commits and application messages only as MLS
//! PrivateMessages. Time and randomness are parameters.

use mls_rs::WireFormat;
use mls_rs::client_builder::PaddingMode;
use mls_rs::client_builder::{BaseConfig, WithCryptoProvider, WithIdentityProvider, WithMlsRules};
use mls_rs::error::MlsError;
use mls_rs::extension::ExtensionType;
use mls_rs::group::{CommitEffect, GroupContext, ReceivedMessage, Roster};
use mls_rs::mls_rules::{CommitDirection, CommitOptions, CommitSource, EncryptionOptions, ProposalBundle};
use mls_rs::time::MlsTime;
use mls_rs::{CipherSuiteProvider, Client, ExtensionList, MlsMessage, MlsRules};
use mls_rs_core::identity::SigningIdentity;
use rand_core::CryptoRng;

use crate::core::{Identity, IdentityPublic};

use super::credential::{DoorlessCredential, DoorlessIdentityProvider, signing_identity};
use super::provider::{DoorlessCrypto, SUITE};

/// Why a group operation failed. Coarse on purpose: no member names, keys or plaintext.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    /// A message arrived as an MLS PublicMessage (or another wire format than PrivateMessage):
    /// every Doorless Commit and application message is encrypted.
    #[error("unencrypted group message refused")]
    NotPrivate,
    /// The message does not decode as MLS.
    #[error("malformed group message")]
    Malformed,
    /// The Welcome or key package bytes are not of the expected MLS kind.
    #[error("unexpected group message kind")]
    UnexpectedKind,
    /// A Commit from a non-member (external commit) or a proposal from a non-member.
    #[error("change by a non-member refused")]
    External,
    /// A member's credential is missing, malformed or does not bind their key.
    #[error("member credential refused")]
    Credential,
    /// No member at that position.
    #[error("no such member")]
    NoSuchMember,
    /// mls-rs refused or failed (wrong epoch, bad signature, decryption failure, ...).
    #[error("group operation failed")]
    Mls,
}

impl From<MlsError> for GroupError {
    fn from(error: MlsError) -> Self {
        match error {
            MlsError::IdentityProviderError(_) => GroupError::Credential,
            MlsError::MlsRulesError(inner) if inner.inner_dyn_error().is::<RulesError>() => {
                GroupError::External
            }
            _ => GroupError::Mls,
        }
    }
}

/// Why the Doorless MLS rules refused a Commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RulesError {
    /// The Commit is an external commit (by a non-member joining on their own).
    #[error("external commit refused")]
    ExternalCommit,
    /// A proposal in the Commit was sent by a non-member.
    #[error("proposal by a non-member refused")]
    ExternalProposal,
    /// The Commit would name external senders in the group context.
    #[error("external senders refused")]
    ExternalSenders,
}

super::into_any_error!(RulesError);

/// The MLS rules of Doorless groups.
#[derive(Clone, Copy, Debug, Default)]
pub struct DoorlessRules;

impl MlsRules for DoorlessRules {
    type Error = RulesError;

    fn filter_proposals(
        &self,
        _direction: CommitDirection,
        source: CommitSource,
        _current_roster: &Roster,
        _current_context: &GroupContext,
        proposals: ProposalBundle,
    ) -> Result<ProposalBundle, Self::Error> {
        if let CommitSource::NewMember(_) = source {
            return Err(RulesError::ExternalCommit);
        }
        if proposals.iter_proposals().any(|p| !matches!(p.sender, mls_rs::group::Sender::Member(_))) {
            return Err(RulesError::ExternalProposal);
        }
        if proposals.group_context_ext_proposals().iter().any(|p| has_external_senders(&p.proposal)) {
            return Err(RulesError::ExternalSenders);
        }
        Ok(proposals)
    }

    fn commit_options(
        &self,
        _new_roster: &Roster,
        _new_context: &GroupContext,
        _proposals: &ProposalBundle,
    ) -> Result<CommitOptions, Self::Error> {
        // Every Commit updates the committer's path (post-compromise security for each change),
        // the Welcome carries the tree (no out-of-band tree service), never a GroupInfo that would
        // allow an external commit.
        Ok(CommitOptions::new()
            .with_path_required(true)
            .with_ratchet_tree_extension(true)
            .with_allow_external_commit(false))
    }

    fn encryption_options(
        &self,
        _current_roster: &Roster,
        _current_context: &GroupContext,
    ) -> Result<EncryptionOptions, Self::Error> {
        Ok(EncryptionOptions::new(true, PaddingMode::Padme))
    }
}

fn has_external_senders(extensions: &ExtensionList) -> bool {
    extensions.has_extension(ExtensionType::EXTERNAL_SENDERS)
}

/// The mls-rs client configuration of Doorless.
pub type DoorlessConfig = WithMlsRules<
    DoorlessRules,
    WithIdentityProvider<DoorlessIdentityProvider, WithCryptoProvider<DoorlessCrypto, BaseConfig>>,
>;

/// One profile's MLS client: its MLS signature key, bound to its Doorless identity.
pub struct GroupClient {
    client: Client<DoorlessConfig>,
}

impl std::fmt::Debug for GroupClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GroupClient")
    }
}

fn time(now: u64) -> MlsTime {
    MlsTime::from(now)
}

fn decode(bytes: &[u8]) -> Result<MlsMessage, GroupError> {
    MlsMessage::from_bytes(bytes).map_err(|_| GroupError::Malformed)
}

fn encode(message: &MlsMessage) -> Result<Vec<u8>, GroupError> {
    message.to_bytes().map_err(|_| GroupError::Mls)
}

impl GroupClient {
    /// A client for `identity` with a fresh MLS signature key; all its randomness comes from a
    /// stream seeded by `rng`.
    pub fn new<R: CryptoRng + ?Sized>(identity: &Identity, rng: &mut R) -> Result<Self, GroupError> {
        let crypto = DoorlessCrypto::new(rng);
        let (secret, public) = crypto.suite().signature_key_generate().map_err(|_| GroupError::Mls)?;
        let signing_identity = signing_identity(identity, public);
        let client = Client::builder()
            .crypto_provider(crypto)
            .identity_provider(DoorlessIdentityProvider)
            .mls_rules(DoorlessRules)
            .signing_identity(signing_identity, secret, SUITE)
            .build();
        Ok(Self { client })
    }

    /// A key package for one invitation into a group (MLS message bytes; use once).
    pub fn key_package(&self, now: u64) -> Result<Vec<u8>, GroupError> {
        let message = self.client.generate_key_package_message(
            ExtensionList::new(),
            ExtensionList::new(),
            Some(time(now)),
        )?;
        encode(&message)
    }

    /// Creates a group of one with the given id.
    pub fn create_group(&self, group_id: Vec<u8>, now: u64) -> Result<Group, GroupError> {
        let group = self.client.create_group_with_id(
            group_id,
            ExtensionList::new(),
            ExtensionList::new(),
            Some(time(now)),
        )?;
        Ok(Group { group })
    }

    /// The underlying mls-rs client, for tests of what the rules refuse.
    #[doc(hidden)]
    pub fn mls_client(&self) -> &Client<DoorlessConfig> {
        &self.client
    }

    /// Joins from a Welcome (which carries the ratchet tree).
    pub fn join(&self, welcome: &[u8], now: u64) -> Result<Group, GroupError> {
        let welcome = decode(welcome)?;
        if welcome.wire_format() != WireFormat::Welcome {
            return Err(GroupError::UnexpectedKind);
        }
        let (group, _) = self.client.join_group(None, &welcome, Some(time(now)))?;
        // A group made by another implementation could name external senders from the start.
        if has_external_senders(&group.context().extensions) {
            return Err(GroupError::External);
        }
        Ok(Group { group })
    }
}

/// The output of a Commit made by this member: the Commit for the group's log, and the Welcome for
/// new members if it added any.
#[derive(Clone)]
pub struct Commit {
    /// The Commit (an MLS PrivateMessage) for the other members.
    pub commit: Vec<u8>,
    /// The Welcome for the added members, if any.
    pub welcome: Option<Vec<u8>>,
}

impl std::fmt::Debug for Commit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Commit").field("commit_len", &self.commit.len()).finish_non_exhaustive()
    }
}

/// What a processed group message was.
#[derive(Clone, PartialEq, Eq)]
pub enum GroupEvent {
    /// An application message from the member at `sender`.
    Message {
        /// The sender's position in the group.
        sender: u32,
        /// The plaintext.
        plaintext: Vec<u8>,
    },
    /// A Commit by the member at `committer` moved the group to a new epoch.
    Commit {
        /// The committer's position in the group.
        committer: u32,
    },
    /// A Commit removed this member: nothing more can be read.
    Removed {
        /// The committer's position in the group.
        committer: u32,
    },
}

impl std::fmt::Debug for GroupEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GroupEvent::Message { sender, .. } => {
                f.debug_struct("Message").field("sender", sender).finish_non_exhaustive()
            }
            GroupEvent::Commit { committer } => {
                f.debug_struct("Commit").field("committer", committer).finish()
            }
            GroupEvent::Removed { committer } => {
                f.debug_struct("Removed").field("committer", committer).finish()
            }
        }
    }
}

/// A member's view of one group.
pub struct Group {
    group: mls_rs::Group<DoorlessConfig>,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group").field("epoch", &self.epoch()).finish_non_exhaustive()
    }
}

/// One member as every member sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupMember {
    /// Position in the group (stable while the member stays).
    pub index: u32,
    /// Doorless identity, checked through the credential.
    pub identity: IdentityPublic,
}

impl Group {
    /// The group's id.
    pub fn id(&self) -> &[u8] {
        self.group.group_id()
    }

    /// The current epoch.
    pub fn epoch(&self) -> u64 {
        self.group.current_epoch()
    }

    /// This member's position.
    pub fn own_index(&self) -> u32 {
        self.group.current_member_index()
    }

    /// The epoch authenticator (RFC 9420 §8.7): equal for every member in the same epoch with the
    /// same view, so comparing it detects a split.
    pub fn epoch_authenticator(&self) -> Result<Vec<u8>, GroupError> {
        Ok(self.group.epoch_authenticator()?.to_vec())
    }

    /// The members with their Doorless identities.
    pub fn members(&self) -> Result<Vec<GroupMember>, GroupError> {
        self.group
            .roster()
            .members_iter()
            .map(|member| {
                let credential = DoorlessCredential::verified(&member.signing_identity)
                    .map_err(|_| GroupError::Credential)?;
                Ok(GroupMember { index: member.index, identity: credential.identity().clone() })
            })
            .collect()
    }

    fn commit_output(&mut self, output: mls_rs::group::CommitOutput) -> Result<Commit, GroupError> {
        let welcome = output.welcome_messages.first().map(encode).transpose()?;
        Ok(Commit { commit: encode(&output.commit_message)?, welcome })
    }

    /// Commits adding the members of `key_packages` (pending until [`Self::apply_pending_commit`]).
    pub fn add_members(&mut self, key_packages: &[&[u8]], now: u64) -> Result<Commit, GroupError> {
        let mut builder = self.group.commit_builder().commit_time(time(now));
        for key_package in key_packages {
            let key_package = decode(key_package)?;
            if key_package.wire_format() != WireFormat::KeyPackage {
                return Err(GroupError::UnexpectedKind);
            }
            builder = builder.add_member(key_package)?;
        }
        let output = builder.build()?;
        self.commit_output(output)
    }

    /// Commits removing the member at `index` (pending until [`Self::apply_pending_commit`]).
    pub fn remove_member(&mut self, index: u32, now: u64) -> Result<Commit, GroupError> {
        if self.group.member_at_index(index).is_none() {
            return Err(GroupError::NoSuchMember);
        }
        let output = self.group.commit_builder().commit_time(time(now)).remove_member(index)?.build()?;
        self.commit_output(output)
    }

    /// Applies this member's pending Commit (once the group's log accepted it).
    pub fn apply_pending_commit(&mut self) -> Result<(), GroupError> {
        self.group.apply_pending_commit()?;
        Ok(())
    }

    /// Encrypts an application message for the current epoch.
    pub fn encrypt(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, GroupError> {
        let message = self.group.encrypt_application_message(plaintext, Vec::new())?;
        encode(&message)
    }

    /// Processes a Commit or application message from the group's log. Anything but an MLS
    /// PrivateMessage is refused before mls-rs sees it.
    pub fn process(&mut self, bytes: &[u8], now: u64) -> Result<GroupEvent, GroupError> {
        let message = decode(bytes)?;
        if message.wire_format() != WireFormat::PrivateMessage {
            return Err(GroupError::NotPrivate);
        }
        match self.group.process_incoming_message_with_time(message, time(now))? {
            ReceivedMessage::ApplicationMessage(app) => {
                Ok(GroupEvent::Message { sender: app.sender_index, plaintext: app.data().to_vec() })
            }
            ReceivedMessage::Commit(commit) => match commit.effect {
                CommitEffect::Removed { .. } => Ok(GroupEvent::Removed { committer: commit.committer }),
                CommitEffect::NewEpoch(_) => Ok(GroupEvent::Commit { committer: commit.committer }),
                CommitEffect::ReInit(_) => Err(GroupError::Mls),
            },
            // Proposals by reference are not compiled in; a GroupInfo, Welcome or KeyPackage is
            // excluded by the wire format check above.
            _ => Err(GroupError::UnexpectedKind),
        }
    }

    /// The signing identity of the member at `index` (for tests and diagnostics).
    pub fn member_signing_identity(&self, index: u32) -> Option<SigningIdentity> {
        self.group.member_at_index(index).map(|m| m.signing_identity)
    }

    /// Access to the underlying mls-rs group, for tests of what the rules refuse.
    #[doc(hidden)]
    pub fn inner_mut(&mut self) -> &mut mls_rs::Group<DoorlessConfig> {
        &mut self.group
    }
}
