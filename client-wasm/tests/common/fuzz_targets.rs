//! The decode entry points exercised by the fuzz targets in `fuzz/` and replayed over the committed
//! corpus by `core_fuzz_corpus.rs`. Each function must accept any bytes without panicking.

use std::sync::OnceLock;

use client_wasm::core::content::Payload;
use client_wasm::core::{
    Header, Identity, IdentityPublic, Invite, InviteSecret, Session, ShortLink, accept_invite, create_invite,
    envelope_kind,
};
use doorless_frames::RelayOrigin;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// The time at which fixtures are created and inputs are decoded.
pub const NOW: u64 = 1_767_225_600;

/// A fixed pair of identities with an established session each way, plus an unused invite secret.
pub struct Fixture {
    pub bob: Identity,
    pub alice_session: Session,
    pub bob_session: Session,
    pub invite_secret: InviteSecret,
    pub invite: Invite,
    pub initial_message: Vec<u8>,
    pub message: Vec<u8>,
}

/// Built once per process: key generation is far slower than one decode.
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let mut rng = ChaCha20Rng::from_seed([0xF5; 32]);
        let alice = Identity::generate(&mut rng);
        let bob = Identity::generate(&mut rng);
        let (invite, secret) = create_invite(&bob, [3; 32], "Bob", NOW, 3600, &mut rng);
        let (alice_session, initial) = accept_invite(&alice, &invite, b"hi", NOW, &mut rng).unwrap();
        let (mut bob_session, _) = secret.respond(&bob, &initial, NOW).unwrap();
        let message = bob_session.encrypt(b"hello", &mut rng).unwrap();
        let (invite, invite_secret) = create_invite(&bob, [4; 32], "Bob", NOW, 3600, &mut rng);
        let (_, initial_message) = accept_invite(&alice, &invite, b"hey", NOW, &mut rng).unwrap();
        Fixture { bob, alice_session, bob_session, invite_secret, invite, initial_message, message }
    })
}

/// Target `invite`: a URL fragment (UTF-8 or not).
pub fn invite(data: &[u8]) {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = Invite::from_fragment(s, NOW);
    }
    let _ = Invite::from_bytes(data, NOW);
}

/// The short link of the fixture's invite, on `https://relay.example`.
pub fn short_link() -> ShortLink {
    let relay = RelayOrigin::parse("https://relay.example").unwrap();
    ShortLink::for_invite(&fixture().invite, relay)
}

/// Target `short_invite`: a short link fragment (UTF-8 or not), and a sealed invite bundle as a relay
/// might return it for the fixture's short link.
pub fn short_invite(data: &[u8]) {
    if let Ok(s) = std::str::from_utf8(data)
        && let Ok(link) = ShortLink::parse(s)
    {
        assert_eq!(ShortLink::parse(&link.to_fragment()).ok(), Some(link));
    }
    if let Ok(invite) = short_link().open(data, NOW) {
        assert_eq!(invite, fixture().invite, "a bundle opened to another invite than the link's");
    }
}

/// Target `attachment`: a sealed segment as a relay might return it, opened as segment 0 of a
/// 65,537-byte file (two chunks) and, with the first 16 bytes taken as a length and padded length,
/// as the last segment of whatever layout they give.
pub fn attachment(data: &[u8]) {
    use client_wasm::core::attachment::{AttachmentSecret, Layout, SegmentCipher};
    let secret = AttachmentSecret::from_parts([0x41; 32], [0x42; 16]);
    let fixed = SegmentCipher::new(&secret, Layout::new(65_537).unwrap());
    if let Ok(opened) = fixed.open_segment(0, data) {
        assert_eq!(opened.len(), 65_537);
    }
    if let (Some(len), Some(padded)) = (data.get(..8), data.get(8..16)) {
        let len = u64::from_be_bytes(len.try_into().unwrap());
        let padded = u64::from_be_bytes(padded.try_into().unwrap());
        if let Ok(layout) = Layout::with_padded(len, padded) {
            let last = layout.segments() - 1;
            let _ = SegmentCipher::new(&secret, layout).open_segment(last, &data[16..]);
        }
    }
}

/// Target `envelope`: routing, then decryption by a live session or an invite secret.
pub fn envelope(data: &[u8]) {
    let f = fixture();
    let _ = envelope_kind(data);
    let mut session = f.alice_session.clone();
    let before = session.to_bytes();
    if session.decrypt(data).is_err() {
        assert_eq!(*session.to_bytes(), *before, "a failed decrypt changed the session");
    }
    let _ = f.invite_secret.clone().respond(&f.bob, data, NOW);
}

/// Target `header`: a plaintext ratchet header.
pub fn header(data: &[u8]) {
    if let Some(h) = Header::decode(data) {
        assert_eq!(h.encode().as_slice(), data);
    }
}

/// Target `session_state`: a stored session; a decoded one must re-encode identically (a session of
/// an older stored version is re-encoded in the current one, which then round-trips) and keep working.
pub fn session_state(data: &[u8]) {
    if let Ok(mut s) = Session::from_bytes(data) {
        let encoded = s.to_bytes();
        if data.first() == Some(&client_wasm::core::SESSION_VERSION) {
            assert_eq!(&*encoded, data);
        } else {
            let again = Session::from_bytes(&encoded).expect("a re-encoded session decodes");
            assert_eq!(*again.to_bytes(), *encoded);
        }
        let _ = s.decrypt(&fixture().message);
        let mut rng = ChaCha20Rng::from_seed([1; 32]);
        let _ = s.encrypt(b"x", &mut rng);
    }
    let _ = InviteSecret::from_bytes(data);
}

/// Target `identity`: a stored identity and a public identity.
pub fn identity(data: &[u8]) {
    if let Ok(id) = Identity::from_bytes(data) {
        assert_eq!(&*id.to_bytes(), data);
    }
    if let Ok(public) = IdentityPublic::from_bytes(data) {
        assert_eq!(public.to_bytes(), data);
    }
}

/// Target `group_credential`: a Doorless group credential from a member's leaf (docs/groups.md §2);
/// one that decodes encodes back to the same bytes, and checking it against any key never panics.
pub fn group_credential(data: &[u8]) {
    if let Ok(credential) = client_wasm::groups::DoorlessCredential::from_bytes(data) {
        assert_eq!(credential.to_bytes(), data);
        let key = data.get(data.len().saturating_sub(32)..).unwrap_or_default().to_vec();
        let _ = credential.verify(&key.into());
    }
}

/// Target `content`: a decrypted payload.
pub fn content(data: &[u8]) {
    if let Ok(p) = Payload::decode(data) {
        assert_eq!(p.encode().unwrap(), data);
    }
}

/// Target `frame`: a relay frame.
pub fn frame(data: &[u8]) {
    if let Ok(frame) = doorless_frames::Frame::decode(data) {
        // One encoding per frame: what decodes encodes back to the same bytes.
        assert_eq!(frame.encode(), data);
    }
}

/// Record names a `stored_records` input can use (chosen by its first byte).
pub const RECORD_NAMES: [&str; 6] = [
    "profile",
    "state",
    "log/00000001/00000000",
    "log/00000001/00000001",
    "log/00000001/00000002",
    "log/00000002/00000000",
];

/// Encodes records as a `stored_records` input: per record, a name index, a u32 LE length, bytes.
pub fn encode_records<'a>(records: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, bytes) in records {
        let index = RECORD_NAMES.iter().position(|n| *n == name).expect("a known record name");
        out.push(index as u8);
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(bytes);
    }
    out
}

/// The records of a `stored_records` input (a truncated length takes what is there).
pub fn decode_records(mut data: &[u8]) -> Vec<(&'static str, &[u8])> {
    let mut records = Vec::new();
    while let Some((&index, rest)) = data.split_first() {
        let Some((len, rest)) = rest.split_first_chunk::<4>() else { break };
        let len = (u32::from_le_bytes(*len) as usize).min(rest.len());
        records.push((RECORD_NAMES[index as usize % RECORD_NAMES.len()], &rest[..len]));
        data = &rest[len..];
    }
    records
}

/// Target `stored_records`: what the browser vault hands back (after decryption) on start. A
/// restored engine's own records must restore to the same conversations.
pub fn stored_records(data: &[u8]) {
    use client_wasm::engine::Engine;
    let records = decode_records(data);
    let Ok(mut engine) = Engine::restore(records) else { return };
    let texts = |e: &Engine| -> Vec<Vec<String>> {
        e.contacts().map(|c| c.messages.iter().map(|m| m.text.clone()).collect()).collect()
    };
    engine.rewrite_all();
    let named: Vec<_> = engine.take_records().into_named().collect();
    let again = Engine::restore(named.iter().map(|(n, b)| (n.as_str(), b.as_slice())))
        .expect("an engine's own records restore");
    assert_eq!(texts(&again), texts(&engine));
}

/// One fuzz entry point.
pub type Target = fn(&[u8]);

/// Every target by name (the fuzz target and corpus directory names).
pub const TARGETS: [(&str, Target); 11] = [
    ("invite", invite),
    ("short_invite", short_invite),
    ("attachment", attachment),
    ("envelope", envelope),
    ("header", header),
    ("session_state", session_state),
    ("identity", identity),
    ("group_credential", group_credential),
    ("content", content),
    ("frame", frame),
    ("stored_records", stored_records),
];
