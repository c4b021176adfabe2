//! Fuzz entry points for what the relay decodes from untrusted input beyond `Frame::decode` (which
//! the `frame` target covers): the subscribe proof. Shared by `fuzz_targets/subscribe.rs` and the
//! corpus replay test `relay/tests/fuzz_corpus.rs`. Each function must accept any bytes without
//! panicking.

use doorless_frames::{Frame, MailboxId, verify_subscribe_proof};

/// The relay's challenge for the connection the inputs arrive on (a relay picks it at random).
pub const CHALLENGE: [u8; 32] = [0x5a; 32];

/// Target `subscribe`: what the relay does with a `Subscribe` frame, and the proof check on raw
/// `challenge (32) || public key (32) || signature (64)` bytes.
pub fn subscribe(data: &[u8]) {
    if let Ok(Frame::Subscribe { public_key, signature, .. }) = Frame::decode(data)
        && let Ok(mailbox) = verify_subscribe_proof(&CHALLENGE, &public_key, &signature)
    {
        // A proof opens exactly the mailbox its key names, never another.
        assert_eq!(mailbox, MailboxId::from_public_key(&public_key));
    }
    if let (Some((challenge, rest)), true) = (data.split_first_chunk::<32>(), data.len() == 128)
        && let Some((public_key, signature)) = rest.split_first_chunk::<32>()
        && let Ok(signature) = <&[u8; 64]>::try_from(signature)
        && let Ok(mailbox) = verify_subscribe_proof(challenge, public_key, signature)
    {
        assert_eq!(mailbox, MailboxId::from_public_key(public_key));
    }
}

/// One fuzz entry point.
pub type Target = fn(&[u8]);

/// Every relay-side target by name (the fuzz target and corpus directory names).
pub const TARGETS: [(&str, Target); 1] = [("subscribe", subscribe)];
