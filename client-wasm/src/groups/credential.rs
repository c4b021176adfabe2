//! The Doorless credential (docs/groups.md §2): a member's MLS signature key signed by their Doorless
//! identity key, so that a member of a group is the person of the 1:1 chats, with the same safety
//! number; and the identity provider that checks it for mls-rs.

use mls_rs_core::crypto::SignaturePublicKey;
use mls_rs_core::extension::ExtensionList;
use mls_rs_core::identity::{
    Credential, CredentialType, CustomCredential, IdentityProvider, MemberValidationContext, SigningIdentity,
};
use mls_rs_core::time::MlsTime;

use crate::core::{IDENTITY_PUBLIC_LEN, Identity, IdentityPublic};

use super::provider::SUITE;

/// The MLS credential type of a Doorless credential (RFC 9420 private-use range).
pub const DOORLESS_CREDENTIAL_TYPE: CredentialType = CredentialType::new(0xF0D1);
/// Version byte of the credential encoding.
pub const CREDENTIAL_VERSION: u8 = 1;
/// Length of an MLS signature public key of the suite (Ed25519).
pub const MLS_SIGNATURE_KEY_LEN: usize = 32;
/// Length of the encoded credential: version, identity, signature.
pub const CREDENTIAL_LEN: usize = 1 + IDENTITY_PUBLIC_LEN + 64;
/// Domain separation of the identity key's signature over the MLS signature key.
pub const CREDENTIAL_SIGNATURE_CONTEXT: &[u8] = b"Doorless-v1 group credential";

/// Why a credential, or a member or sender presenting one, was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// The credential is not of the Doorless type.
    #[error("credential type is not Doorless")]
    WrongType,
    /// The bytes have the wrong length or structure.
    #[error("credential encoding is corrupt")]
    Corrupt,
    /// The version byte is not one this build understands.
    #[error("credential encoding has an unsupported version")]
    UnsupportedVersion,
    /// The identity inside is invalid (its own signature does not verify).
    #[error("credential identity is invalid")]
    BadIdentity,
    /// The identity key's signature over the MLS signature key does not verify.
    #[error("credential signature is invalid")]
    BadSignature,
    /// External senders are never accepted in a Doorless group.
    #[error("external senders are not allowed")]
    ExternalSender,
}

super::into_any_error!(CredentialError);

/// A decoded Doorless credential: who the member is, and their signature binding an MLS key.
#[derive(Clone, PartialEq, Eq)]
pub struct DoorlessCredential {
    identity: IdentityPublic,
    signature: [u8; 64],
}

impl std::fmt::Debug for DoorlessCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DoorlessCredential").finish_non_exhaustive()
    }
}

/// The message the identity key signs: context, suite (u16 BE), key length (u8), MLS signature key.
fn signed_message(signature_key: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(CREDENTIAL_SIGNATURE_CONTEXT.len() + 3 + signature_key.len());
    message.extend_from_slice(CREDENTIAL_SIGNATURE_CONTEXT);
    message.extend_from_slice(&u16::from(SUITE).to_be_bytes());
    // Callers pass MLS_SIGNATURE_KEY_LEN bytes; a longer key could not be a suite-3 key anyway.
    message.push(u8::try_from(signature_key.len()).unwrap_or(u8::MAX));
    message.extend_from_slice(signature_key);
    message
}

impl DoorlessCredential {
    /// Signs `signature_key` (the member's MLS signature public key) with `identity`.
    pub fn issue(identity: &Identity, signature_key: &SignaturePublicKey) -> Self {
        Self {
            identity: identity.public(),
            signature: identity.sign(&signed_message(signature_key.as_bytes())),
        }
    }

    /// The member's Doorless identity.
    pub fn identity(&self) -> &IdentityPublic {
        &self.identity
    }

    /// Checks that the identity signed `signature_key` for this suite.
    pub fn verify(&self, signature_key: &SignaturePublicKey) -> Result<(), CredentialError> {
        let key = signature_key.as_bytes();
        if key.len() != MLS_SIGNATURE_KEY_LEN {
            return Err(CredentialError::BadSignature);
        }
        if self.identity.verify(&signed_message(key), &self.signature) {
            Ok(())
        } else {
            Err(CredentialError::BadSignature)
        }
    }

    /// Encodes as `version(1) || identity_public(129) || signature(64)`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(CREDENTIAL_LEN);
        out.push(CREDENTIAL_VERSION);
        out.extend_from_slice(&self.identity.to_bytes());
        out.extend_from_slice(&self.signature);
        out
    }

    /// Decodes and checks the identity's own signature (not the binding: see [`Self::verify`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CredentialError> {
        match bytes.first() {
            None => return Err(CredentialError::Corrupt),
            Some(&CREDENTIAL_VERSION) => {}
            Some(_) => return Err(CredentialError::UnsupportedVersion),
        }
        if bytes.len() != CREDENTIAL_LEN {
            return Err(CredentialError::Corrupt);
        }
        let (identity, signature) = bytes[1..].split_at(IDENTITY_PUBLIC_LEN);
        let identity = IdentityPublic::from_bytes(identity).map_err(|_| CredentialError::BadIdentity)?;
        let signature = signature.try_into().map_err(|_| CredentialError::Corrupt)?;
        Ok(Self { identity, signature })
    }

    /// The MLS credential carrying this one.
    pub fn to_credential(&self) -> Credential {
        Credential::Custom(CustomCredential::new(DOORLESS_CREDENTIAL_TYPE, self.to_bytes()))
    }

    /// Decodes the Doorless credential of an MLS credential.
    pub fn from_credential(credential: &Credential) -> Result<Self, CredentialError> {
        match credential {
            Credential::Custom(custom) if custom.credential_type == DOORLESS_CREDENTIAL_TYPE => {
                Self::from_bytes(&custom.data)
            }
            _ => Err(CredentialError::WrongType),
        }
    }

    /// Decodes the credential of `signing_identity` and checks that it binds its signature key.
    pub fn verified(signing_identity: &SigningIdentity) -> Result<Self, CredentialError> {
        let credential = Self::from_credential(&signing_identity.credential)?;
        credential.verify(&signing_identity.signature_key)?;
        Ok(credential)
    }
}

/// The signing identity of a member: the MLS signature key with its Doorless credential.
pub fn signing_identity(identity: &Identity, signature_key: SignaturePublicKey) -> SigningIdentity {
    let credential = DoorlessCredential::issue(identity, &signature_key).to_credential();
    SigningIdentity::new(credential, signature_key)
}

/// The identity provider of Doorless groups: every member carries a valid Doorless credential; a
/// member's identity (for duplicate checks and updates) is their Ed25519 identity key; external
/// senders are refused.
#[derive(Clone, Copy, Debug, Default)]
pub struct DoorlessIdentityProvider;

impl IdentityProvider for DoorlessIdentityProvider {
    type Error = CredentialError;

    fn validate_member(
        &self,
        signing_identity: &SigningIdentity,
        _timestamp: Option<MlsTime>,
        _context: MemberValidationContext<'_>,
    ) -> Result<(), Self::Error> {
        DoorlessCredential::verified(signing_identity).map(|_| ())
    }

    fn validate_external_sender(
        &self,
        _signing_identity: &SigningIdentity,
        _timestamp: Option<MlsTime>,
        _extensions: Option<&ExtensionList>,
    ) -> Result<(), Self::Error> {
        Err(CredentialError::ExternalSender)
    }

    fn identity(
        &self,
        signing_identity: &SigningIdentity,
        _extensions: &ExtensionList,
    ) -> Result<Vec<u8>, Self::Error> {
        let credential = DoorlessCredential::from_credential(&signing_identity.credential)?;
        Ok(credential.identity.ed25519().to_vec())
    }

    fn valid_successor(
        &self,
        predecessor: &SigningIdentity,
        successor: &SigningIdentity,
        _extensions: &ExtensionList,
    ) -> Result<bool, Self::Error> {
        // A member may change their MLS key, never their Doorless identity: that is a new member.
        let before = DoorlessCredential::from_credential(&predecessor.credential)?;
        let after = DoorlessCredential::verified(successor)?;
        Ok(before.identity.ed25519() == after.identity.ed25519())
    }

    fn supported_types(&self) -> Vec<CredentialType> {
        vec![DOORLESS_CREDENTIAL_TYPE]
    }
}
