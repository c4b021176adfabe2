//! Groups: MLS (RFC 9420) through mls-rs, on our own crypto provider, with Doorless credentials.
//!
//! - `provider`: the one cipher suite (X25519, ChaCha20-Poly1305, SHA-256, Ed25519) on the
//!   workspace's crypto crates, with HPKE (RFC 9180) and randomness passed in.
//! - `credential`: the credential binding a member's MLS key to their Doorless identity, and the
//!   identity provider that checks it (docs/groups.md §2).
//! - `group`: the client configuration and rules (no external commits or senders, only encrypted
//!   handshake messages) and a small group API.
//!
//! Like `core`, this module is sans-IO: randomness and time are parameters.

#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

/// mls-rs carries provider errors as `AnyError`: keep ours as the boxed source (their text names no
/// input).
macro_rules! into_any_error {
    ($error:ty) => {
        impl mls_rs_core::error::IntoAnyError for $error {
            fn into_dyn_error(self) -> Result<Box<dyn std::error::Error + Send + Sync>, Self> {
                Ok(Box::new(self))
            }
        }
    };
}
use into_any_error;

pub mod credential;
pub mod group;
pub mod provider;

pub use credential::{
    CREDENTIAL_LEN, CredentialError, DOORLESS_CREDENTIAL_TYPE, DoorlessCredential, DoorlessIdentityProvider,
};
pub use group::{
    Commit, DoorlessConfig, DoorlessRules, Group, GroupClient, GroupError, GroupEvent, GroupMember,
    RulesError,
};
pub use provider::{DoorlessCrypto, ProviderError, SUITE};
