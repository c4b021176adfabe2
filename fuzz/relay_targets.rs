//! Fuzz entry points for what the relay decodes from untrusted input beyond `Frame::decode` (which
//! the `frame` target covers): the subscribe proof, and the WebSocket layer under the frames.
//! Shared by `fuzz_targets/*.rs` and the corpus replay test `relay/tests/fuzz_corpus.rs`. Each
//! function must accept any bytes without panicking.

use std::pin::pin;
use std::task::{Context, Poll, Waker};

use doorless_frames::{Frame, MailboxId, RelayOrigin, verify_subscribe_proof};
use futures_util::Stream;
use relay::websocket::{Incoming, Role, reader};

/// The relay's challenge for the connection the inputs arrive on (a relay picks it at random).
pub const CHALLENGE: [u8; 32] = [0x5a; 32];

/// The relay's origin the inputs' proofs are checked against.
pub const ORIGIN: &str = "https://relay.example";

/// Target `subscribe`: what the relay does with a `Subscribe` or `SubscribeBatch` frame, and the
/// proof check on raw `challenge (32) || public key (32) || signature (64)` bytes.
pub fn subscribe(data: &[u8]) {
    let Ok(origin) = RelayOrigin::parse(ORIGIN) else { panic!("the fuzz origin is an origin") };
    // A proof opens exactly the mailbox its key names, never another.
    let check = |public_key: &[u8; 32], signature: &[u8; 64]| {
        if let Ok(mailbox) = verify_subscribe_proof(&origin, &CHALLENGE, public_key, signature) {
            assert_eq!(mailbox, MailboxId::from_public_key(public_key));
        }
    };
    match Frame::decode(data) {
        Ok(Frame::Subscribe { public_key, signature, .. }) => check(&public_key, &signature),
        Ok(Frame::SubscribeBatch { origin: claimed, proofs, .. }) if claimed == ORIGIN => {
            for proof in &proofs {
                check(&proof.public_key, &proof.signature);
            }
        }
        _ => {}
    }
    if let (Some((challenge, rest)), true) = (data.split_first_chunk::<32>(), data.len() == 128)
        && let Some((public_key, signature)) = rest.split_first_chunk::<32>()
        && let Ok(signature) = <&[u8; 64]>::try_from(signature)
        && let Ok(mailbox) = verify_subscribe_proof(&origin, challenge, public_key, signature)
    {
        assert_eq!(mailbox, MailboxId::from_public_key(public_key));
    }
}

/// Target `blobs`: what the attachment blob store reads from disk, a bucket or a request path: a
/// stored blob record, a blob id, a capability and a segment number. Whatever decodes is what its
/// encoding writes back, so one value has one form.
pub fn blobs(data: &[u8]) {
    if let Ok(record) = relay::blob::disk::Record::decode(data) {
        assert_eq!(record.encode().as_slice(), data, "a record read back differently");
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(id) = relay::blob::BlobId::decode(text) {
            assert_eq!(id.encode(), text, "a blob id with two forms");
        }
        if let Some(capability) = relay::blob::Capability::decode(text) {
            assert_eq!(capability.encode(), text, "a capability with two forms");
        }
        if let Ok(index) = relay::blob::routes::parse_index(text) {
            assert_eq!(index.to_string(), text, "a segment with two paths");
        }
    }
}

/// The message size limit the `websocket` target reads with.
pub const WEBSOCKET_LIMIT: usize = 4096;

/// Target `websocket`: the bytes a client sends after the opening handshake, through the relay's
/// WebSocket reader, to the end. Every message read is within the limit, and nothing is read after
/// an error.
pub fn websocket(data: &[u8]) {
    let mut messages = pin!(reader(std::io::Cursor::new(data.to_vec()), WEBSOCKET_LIMIT, Role::Server));
    // Reading from memory never waits, so polling with a waker that does nothing is enough.
    let mut cx = Context::from_waker(Waker::noop());
    let mut failed = false;
    while let Poll::Ready(next) = messages.as_mut().poll_next(&mut cx) {
        match next {
            None => return,
            Some(_) if failed => panic!("a message after an error"),
            Some(Ok(Incoming::Binary(bytes) | Incoming::Ping(bytes))) => {
                assert!(bytes.len() <= WEBSOCKET_LIMIT)
            }
            Some(Ok(_)) => {}
            Some(Err(_)) => failed = true,
        }
    }
    panic!("reading from memory waited");
}

/// One fuzz entry point.
pub type Target = fn(&[u8]);

/// Every relay-side target by name (the fuzz target and corpus directory names).
pub const TARGETS: [(&str, Target); 3] =
    [("subscribe", subscribe), ("websocket", websocket), ("blobs", blobs)];
