//! Files in a conversation, natively: the attachment message (content type 6) travels through the
//! in-test relay, lands in both logs, survives a reload, and old log chunks still open.

#[path = "common/relay.rs"]
mod relay;

use client_wasm::core::ContentError;
use client_wasm::core::attachment::padded_len;
use client_wasm::core::content::AttachmentRef;
use client_wasm::engine::{Delivery, Engine, EngineError, MessageKind, PROFILE_RECORD};
use relay::NOW;

fn file(name: &str) -> AttachmentRef {
    let len = 5 * 1024 * 1024 + 3;
    AttachmentRef {
        relay: relay::relay_origin().as_str().to_owned(),
        blob: [0x11; 16],
        read: [0x22; 32],
        key: [0x33; 32],
        nonce: [0x44; 16],
        len,
        padded: padded_len(len).unwrap(),
        digest: [0x55; 32],
        mime: "image/png".into(),
        name: name.into(),
        thumbnail: vec![0x66; 100],
        expires: NOW + 7 * 24 * 3600,
    }
}

#[test]
fn a_file_is_announced_and_lands_in_both_logs_and_survives_a_reload() {
    let (mut w, bob, alice) = relay::pair(7);
    let id = w.engines[0].send_attachment(bob, file("holiday.png"), NOW, &mut w.rng).unwrap();
    w.pump();
    for (i, contact, outgoing) in [(0, bob, true), (1, alice, false)] {
        let messages = &w.engines[i].contact(contact).unwrap().messages;
        let m = messages.last().unwrap();
        assert_eq!(
            (m.id, m.kind, m.outgoing, m.text.as_str()),
            (id, MessageKind::Attachment, outgoing, "holiday.png")
        );
        assert_eq!(m.attachment.as_deref(), Some(&file("holiday.png")));
        assert_eq!(m.delivery, Delivery::Delivered, "a receipt came back for the file");
    }
    assert_eq!(w.engines[1].contact(alice).unwrap().unread, 1);
    // Stored as a version 4 chunk, and back.
    for i in [0, 1] {
        w.reload(i);
        assert!(w.stores[i].iter().filter(|(n, _)| n.starts_with("log/")).all(|(_, b)| b[0] == 4));
    }
    let m = w.engines[1].contact(alice).unwrap().messages.last().unwrap().clone();
    assert_eq!((m.kind, m.attachment.as_deref()), (MessageKind::Attachment, Some(&file("holiday.png"))));
    assert!(format!("{m:?} {:?}", m.attachment).find("holiday").is_none(), "Debug shows no name");
}

#[test]
fn a_file_delivered_twice_is_shown_once() {
    let (mut w, bob, alice) = relay::pair(8);
    w.relay.hold.insert(1);
    w.engines[0].send_attachment(bob, file("a.pdf"), NOW, &mut w.rng).unwrap();
    w.pump();
    w.relay.hold.remove(&1);
    let held = w.relay.held.pop().unwrap();
    w.deliver_held(&held);
    w.deliver_held(&held);
    let files = w.engines[1]
        .contact(alice)
        .unwrap()
        .messages
        .iter()
        .filter(|m| m.kind == MessageKind::Attachment)
        .count();
    assert_eq!(files, 1);
}

#[test]
fn a_file_whose_fields_are_out_of_form_is_not_sent() {
    let (mut w, bob, _) = relay::pair(9);
    let mut unsafe_name = file("x");
    unsafe_name.name = "../../x".into();
    let mut bad_sizes = file("x");
    bad_sizes.padded += 1;
    for f in [unsafe_name, bad_sizes] {
        let sent = w.engines[0].send_attachment(bob, f, NOW, &mut w.rng);
        assert!(matches!(sent, Err(EngineError::Content(ContentError::Corrupt))), "{sent:?}");
    }
    assert!(w.engines[0].contact(bob).unwrap().messages.iter().all(|m| m.kind != MessageKind::Attachment));
}

/// A profile whose log chunks are version 3 (`fixtures/profile-v5.bin`) opens with every message
/// and no attachment; its chunks are rewritten as version 4 and open again the same.
#[test]
fn version_3_log_chunks_open_and_are_rewritten_as_version_4() {
    let records: Vec<(String, Vec<u8>)> =
        postcard::from_bytes(include_bytes!("fixtures/profile-v5.bin")).unwrap();
    assert!(records.iter().filter(|(n, _)| n.starts_with("log/")).all(|(_, b)| b[0] == 3));
    let mut engine = Engine::restore(records.iter().map(|(n, b)| (n.as_str(), b.as_slice()))).unwrap();
    let before: Vec<_> = engine.contacts().flat_map(|c| c.messages.iter().cloned()).collect();
    assert!(before.len() > 64, "the fixture spans several chunks");
    assert!(before.iter().all(|m| m.attachment.is_none() && m.kind != MessageKind::Attachment));
    engine.rewrite_all();
    let stored: Vec<(String, Vec<u8>)> =
        engine.take_records().into_named().map(|(n, b)| (n, b.to_vec())).collect();
    assert!(stored.iter().filter(|(n, _)| n.starts_with("log/")).all(|(_, b)| b[0] == 4));
    assert!(stored.iter().any(|(n, _)| n == PROFILE_RECORD));
    let again = Engine::restore(stored.iter().map(|(n, b)| (n.as_str(), b.as_slice()))).unwrap();
    let after: Vec<_> = again.contacts().flat_map(|c| c.messages.iter().cloned()).collect();
    assert_eq!(after, before);
}
