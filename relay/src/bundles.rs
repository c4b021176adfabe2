//! Invite bundles for short invite links (docs/relay-protocol.md, "Invite bundles").
//!
//! A bundle is kept as one blob in a mailbox of its own, so every [`Store`] keeps bundles with the
//! same durability, TTL, sweeper and byte quotas as mailboxes, with no backend-specific code. The
//! mailbox id is `SHA-256("Doorless bundle" ‖ bundle id)`: nobody can subscribe to it (that needs
//! a public key hashing to it), and it cannot collide with a mailbox id made from a key. The blob
//! is `delete_hash (32) ‖ bundle`; only the bundle is ever handed out.

use std::sync::Arc;

use doorless_frames::{BUNDLE_ID_LEN, ErrorCode, Frame, MailboxId};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::store::{Store, StoreError};

/// Bundles one connection may store (a person makes an invite at a time).
pub const MAX_BUNDLES_PER_CONNECTION: usize = 16;

/// Domain separation of the mailbox a bundle is kept in.
const BUNDLE_MAILBOX_DOMAIN: &[u8] = b"Doorless bundle";

/// The mailbox that holds the bundle `id`.
pub fn bundle_mailbox(id: &[u8; BUNDLE_ID_LEN]) -> MailboxId {
    MailboxId(Sha256::new().chain_update(BUNDLE_MAILBOX_DOMAIN).chain_update(id).finalize().into())
}

/// The answer to a bundle request: a frame, or an error code for the request (never fatal).
pub type Answer = Result<Frame, ErrorCode>;

fn refused(err: &StoreError) -> Answer {
    if let StoreError::Backend(_) = err {
        tracing::warn!(error = %err, "bundle storage failed");
    }
    Err(err.code())
}

/// A bundle as stored: its sequence number in its mailbox, its delete hash, the bundle.
type Stored = (u64, [u8; 32], bytes::Bytes);

/// The stored blob of `id` (the oldest, if somebody deposited more in its mailbox).
async fn stored(store: &Arc<dyn Store>, id: &[u8; BUNDLE_ID_LEN]) -> Result<Option<Stored>, StoreError> {
    let blobs = store.fetch(bundle_mailbox(id), 0, 1).await?;
    Ok(blobs.into_iter().next().and_then(|blob| {
        let hash: [u8; 32] = blob.payload.get(..32)?.try_into().ok()?;
        Some((blob.seq, hash, blob.payload.slice(32..)))
    }))
}

/// `PutBundle`: stores the bundle, unless one is stored under `id` already (then it is confirmed
/// if it has the same delete hash, a re-upload, and refused otherwise).
pub async fn put(
    store: Arc<dyn Store>,
    request: u32,
    id: [u8; BUNDLE_ID_LEN],
    delete_hash: [u8; 32],
    bundle: Vec<u8>,
) -> Answer {
    match stored(&store, &id).await {
        Ok(Some((_, hash, _))) if bool::from(hash.ct_eq(&delete_hash)) => Ok(Frame::BundleStored { request }),
        Ok(Some(_)) => Err(ErrorCode::BadProof),
        Ok(None) => {
            let blob = [&delete_hash[..], &bundle].concat();
            match store.deposit(bundle_mailbox(&id), blob).await {
                Ok(_) => Ok(Frame::BundleStored { request }),
                Err(err) => refused(&err),
            }
        }
        Err(err) => refused(&err),
    }
}

/// `GetBundle`: the bundle as stored, or `NoSuchBundle`.
pub async fn get(store: Arc<dyn Store>, request: u32, id: [u8; BUNDLE_ID_LEN]) -> Answer {
    match stored(&store, &id).await {
        Ok(Some((_, _, bundle))) => Ok(Frame::Bundle { request, bundle: bundle.to_vec() }),
        Ok(None) => Err(ErrorCode::NoSuchBundle),
        Err(err) => refused(&err),
    }
}

/// `DeleteBundle`: deletes the bundle if `delete_secret` hashes to its delete hash (constant-time
/// comparison); confirmed as well when nothing is stored under `id`.
pub async fn delete(
    store: Arc<dyn Store>,
    request: u32,
    id: [u8; BUNDLE_ID_LEN],
    delete_secret: [u8; 32],
) -> Answer {
    let presented: [u8; 32] = Sha256::digest(delete_secret).into();
    match stored(&store, &id).await {
        Ok(Some((_, hash, _))) if !bool::from(hash.ct_eq(&presented)) => Err(ErrorCode::BadProof),
        Ok(Some((seq, _, _))) => match store.ack(bundle_mailbox(&id), seq).await {
            Ok(_) => Ok(Frame::BundleDeleted { request }),
            Err(err) => refused(&err),
        },
        Ok(None) => Ok(Frame::BundleDeleted { request }),
        Err(err) => refused(&err),
    }
}
