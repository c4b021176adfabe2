//! A hostile relay between engines. It follows the frame protocol (challenge, subscribe proof,
//! durable-ack deposit, sequenced delivery) but can hold back what it should deliver and then
//! tamper with it: flip bits, truncate, replay, reorder, drop, duplicate, deliver into the wrong
//! mailbox, or corrupt the initial handshake message. Each test checks what the clients do and that
//! the conversation still works afterwards. Key substitution at the (out-of-band) invite is shown to
//! be visible in the safety numbers and, for a verified contact, to block sending.

#[path = "common/relay.rs"]
mod relay;

use client_wasm::core::{INITIAL_ENVELOPE_SIZES, MESSAGE_ENVELOPE_SIZES};
use client_wasm::engine::{ContactId, Delivery, EngineError, Event, MessageKind};
use doorless_frames::Frame;
use doorless_frames::MailboxId;
use relay::{NOW, World, invite};

fn pair() -> (World, ContactId, ContactId) {
    relay::pair(7)
}

/// Bob sends an honest message after an attack: it must arrive and show.
fn still_works(w: &mut World, bob: ContactId, alice: ContactId, text: &str) {
    w.engines[1].send_text(alice, text, NOW, &mut w.rng).unwrap();
    w.pump();
    assert_eq!(w.texts(0, bob).last().map(String::as_str), Some(text));
    w.engines[0].send_text(bob, &format!("re: {text}"), NOW, &mut w.rng).unwrap();
    w.pump();
    assert_eq!(w.texts(1, alice).last().cloned(), Some(format!("re: {text}")));
}

fn flip(payload: &[u8], pos: usize, bit: usize) -> Vec<u8> {
    let mut p = payload.to_vec();
    p[pos] ^= 1 << (bit % 8);
    p
}

#[test]
fn a_flipped_bit_anywhere_in_a_message_is_undecryptable_and_harmless() {
    let (mut w, bob, alice) = pair();
    w.engines[1].send_text(alice, "first", NOW, &mut w.rng).unwrap();
    w.pump();
    let h = w.send_held(1, alice, "the real second", 0);
    assert_eq!(h.payload.len(), MESSAGE_ENVELOPE_SIZES[0]);
    // Every byte: version/kind (0..2), header nonce (2..14), encrypted header (14..54) and its tag
    // (54..70), body (70..326) and body tag (326..342).
    for pos in 0..h.payload.len() {
        let events = w.deliver(0, h.mailbox, h.seq, flip(&h.payload, pos, pos));
        assert_eq!(events, [Event::Undecryptable], "bit flipped at byte {pos}");
        assert_eq!(w.texts(0, bob), ["first"], "no message from a flip at byte {pos}");
    }
    assert_eq!(w.engines[0].undecryptable() as usize, h.payload.len());
    // None of it touched the session: the original still decrypts, and so do later messages.
    let events = w.deliver_held(&h);
    assert!(events.contains(&Event::MessageReceived(bob)));
    assert!(!events.contains(&Event::Gap(bob)));
    assert_eq!(w.texts(0, bob), ["first", "the real second"]);
    still_works(&mut w, bob, alice, "after the flips");
    assert_eq!(w.engines[0].undecryptable() as usize, h.payload.len());
}

#[test]
fn a_truncated_message_is_undecryptable_and_harmless() {
    let (mut w, bob, alice) = pair();
    // Long enough for the second bucket, so a cut to the first bucket's size has a valid length.
    let long = "x".repeat(600);
    let h = w.send_held(1, alice, &long, 0);
    assert_eq!(h.payload.len(), MESSAGE_ENVELOPE_SIZES[1]);
    let cuts = [0, 1, 2, 14, 70, MESSAGE_ENVELOPE_SIZES[0], h.payload.len() - 16, h.payload.len() - 1];
    for (n, cut) in cuts.into_iter().enumerate() {
        let events = w.deliver(0, h.mailbox, h.seq, h.payload[..cut].to_vec());
        assert_eq!(events, [Event::Undecryptable], "cut to {cut}");
        assert_eq!(w.engines[0].undecryptable() as usize, n + 1);
        assert!(w.texts(0, bob).is_empty());
    }
    // Extending is no better than cutting.
    let mut longer = h.payload.clone();
    longer.extend_from_slice(&[0; 7]);
    assert_eq!(w.deliver(0, h.mailbox, h.seq, longer), [Event::Undecryptable]);
    w.deliver_held(&h);
    assert_eq!(w.texts(0, bob), [long]);
    still_works(&mut w, bob, alice, "after the cuts");
}

#[test]
fn a_replayed_blob_under_a_new_seq_is_rejected() {
    let (mut w, bob, alice) = pair();
    let h = w.send_held(1, alice, "pay Mallory 10", 0);
    w.deliver_held(&h);
    assert_eq!(w.texts(0, bob), ["pay Mallory 10"]);
    // The relay delivers the same blob again, as if it were new.
    let events = w.deliver(0, h.mailbox, h.seq + 100, h.payload.clone());
    assert_eq!(events, [Event::Undecryptable]);
    assert_eq!(w.texts(0, bob), ["pay Mallory 10"]);
    // And again after the conversation moved on (new ratchet steps on both sides).
    still_works(&mut w, bob, alice, "moved on");
    let events = w.deliver(0, h.mailbox, h.seq + 200, h.payload.clone());
    assert_eq!(events, [Event::Undecryptable]);
    assert_eq!(w.texts(0, bob), ["pay Mallory 10", "moved on", "re: moved on"]);
    assert_eq!(w.engines[0].undecryptable(), 2);
    still_works(&mut w, bob, alice, "still fine");
}

#[test]
fn reordered_messages_both_decrypt_and_show_once_in_arrival_order() {
    let (mut w, bob, alice) = pair();
    let m1 = w.send_held(1, alice, "m1", 0);
    let m2 = w.send_held(1, alice, "m2", 0);
    let events = w.deliver_held(&m2);
    assert!(events.contains(&Event::MessageReceived(bob)));
    assert_eq!(w.engines[0].contact(bob).unwrap().missing(), 1);
    let events = w.deliver_held(&m1);
    assert!(events.contains(&Event::MessageReceived(bob)));
    assert_eq!(w.engines[0].contact(bob).unwrap().missing(), 0);
    assert_eq!(w.texts(0, bob), ["m2", "m1"]);
    assert_eq!(w.engines[0].undecryptable(), 0);
    still_works(&mut w, bob, alice, "m3");
    assert_eq!(w.texts(0, bob), ["m2", "m1", "m3", "re: m3"]);
}

#[test]
fn a_dropped_message_is_a_gap_until_delivered_late() {
    let (mut w, bob, alice) = pair();
    let m1 = w.send_held(1, alice, "m1", 0);
    let m2 = w.send_held(1, alice, "m2", 0);
    let events = w.deliver_held(&m2);
    assert!(events.contains(&Event::Gap(bob)));
    assert_eq!(w.engines[0].contact(bob).unwrap().missing(), 1);
    assert_eq!(w.texts(0, bob), ["m2"]);
    // The gap survives an honest message in between.
    still_works(&mut w, bob, alice, "m3");
    assert_eq!(w.engines[0].contact(bob).unwrap().missing(), 1);
    // Delivered late, m1 fills it.
    let events = w.deliver_held(&m1);
    assert!(events.contains(&Event::MessageReceived(bob)));
    assert_eq!(w.engines[0].contact(bob).unwrap().missing(), 0);
    assert_eq!(w.texts(0, bob), ["m2", "m3", "re: m3", "m1"]);
    still_works(&mut w, bob, alice, "m4");
}

#[test]
fn a_duplicated_delivery_shows_once() {
    let (mut w, bob, alice) = pair();
    let h = w.send_held(1, alice, "once only", 0);
    let first = w.deliver_held(&h);
    assert!(first.contains(&Event::MessageReceived(bob)));
    let second = w.deliver_held(&h);
    assert!(!second.contains(&Event::MessageReceived(bob)));
    // The message key is gone after the first delivery: the copy cannot even be opened.
    assert_eq!(second, [Event::Undecryptable]);
    assert_eq!(w.texts(0, bob), ["once only"]);
    assert_eq!(w.engines[0].contact(bob).unwrap().unread, 1);
    still_works(&mut w, bob, alice, "next");
    assert_eq!(w.texts(0, bob), ["once only", "next", "re: next"]);
}

#[test]
fn a_blob_put_into_another_contacts_mailbox_is_undecryptable() {
    let mut w = World::new(&["Alice", "Bob", "Carol"], 7);
    let (bob, alice) = invite(&mut w, 0, 1);
    let (carol, alice_at_carol) = invite(&mut w, 0, 2);
    // Learn Alice's mailbox for Carol from a message Carol deposits there.
    let from_carol = w.send_held(2, alice_at_carol, "hi from Carol", 0);
    w.deliver_held(&from_carol);
    let carol_box = from_carol.mailbox;

    let h = w.send_held(1, alice, "for Alice, from Bob", 0);
    assert_ne!(h.mailbox, carol_box);
    let events = w.deliver(0, carol_box, 50, h.payload.clone());
    assert_eq!(events, [Event::Undecryptable]);
    assert_eq!(w.texts(0, carol), ["hi from Carol"]);
    assert!(w.texts(0, bob).is_empty());
    // A mailbox Alice does not have at all.
    let events = w.deliver(0, MailboxId([0xee; 32]), 1, h.payload.clone());
    assert_eq!(events, [Event::Undecryptable]);
    assert_eq!(w.engines[0].undecryptable(), 2);

    // Both conversations are intact.
    w.deliver_held(&h);
    assert_eq!(w.texts(0, bob), ["for Alice, from Bob"]);
    still_works(&mut w, bob, alice, "Bob again");
    w.engines[2].send_text(alice_at_carol, "Carol again", NOW, &mut w.rng).unwrap();
    w.pump();
    assert_eq!(w.texts(0, carol), ["hi from Carol", "Carol again"]);
}

#[test]
fn a_man_in_the_middle_at_the_invite_shows_in_the_safety_numbers() {
    // An honest pair: both sides compute the same number.
    let (w, bob, alice) = pair();
    let honest_a = w.engines[0].contact(bob).unwrap().safety_number().digits();
    assert_eq!(honest_a, w.engines[1].contact(alice).unwrap().safety_number().digits());

    // Now the out-of-band channel is Mallory's: she answers Alice's invite posing as "Bob", and
    // gives Bob an invite of her own posing as "Alice".
    let mut w = World::new(&["Alice", "Bob", "Alice", "Bob"], 7);
    let (fake_bob, _) = invite(&mut w, 0, 3);
    let (_, fake_alice) = invite(&mut w, 2, 1);
    let at_alice = w.engines[0].contact(fake_bob).unwrap();
    let at_bob = w.engines[1].contact(fake_alice).unwrap();
    // The names are only claims: both look right.
    assert_eq!(at_alice.name, "Bob");
    assert_eq!(at_bob.name, "Alice");
    // The safety numbers do not match, which is what comparing them catches.
    assert_ne!(at_alice.safety_number().digits(), at_bob.safety_number().digits());
    assert_ne!(at_alice.safety_number().digits(), honest_a);
}

#[test]
fn a_verified_contact_whose_key_is_substituted_blocks_sending() {
    let mut w = World::new(&["Alice", "Bob", "Mallory"], 7);
    let (bob, alice) = invite(&mut w, 0, 1);
    let number = w.engines[0].contact(bob).unwrap().safety_number().digits();
    assert_eq!(number, w.engines[1].contact(alice).unwrap().safety_number().digits());
    let n = w.engines[0].contact(bob).unwrap().safety_number().digits();
    w.engines[0].mark_verified(bob, &n).unwrap();

    // Alice re-invites Bob; the link is intercepted and answered by Mallory (posing as "Bob").
    w.engines[2].set_name("Bob", NOW, &mut w.rng).unwrap();
    let link = w.engines[0].create_invite(Some(bob), NOW, &mut w.rng).unwrap();
    w.pump();
    w.engines[2].accept_invite(&link.fragment, NOW, &mut w.rng).unwrap();
    w.pump();

    assert!(w.events[0].contains(&Event::SafetyNumberChanged(bob)));
    let contact = w.engines[0].contact(bob).unwrap();
    assert!(contact.blocked && !contact.verified);
    assert_ne!(contact.safety_number().digits(), number);
    assert!(matches!(
        w.engines[0].send_text(bob, "the launch code is 0000", NOW, &mut w.rng),
        Err(EngineError::SafetyNumberChanged)
    ));
    w.pump();
    assert_eq!(w.count_received(2), 0, "Mallory got nothing");
}

#[test]
fn a_tampered_initial_message_adds_no_contact_and_does_not_use_up_the_invite() {
    let mut w = World::new(&["Alice", "Bob"], 7);
    // Offsets in the initial message: kind 0..2, EK_A_pub 2..34, KEM ciphertext 34..1122, sealed
    // identity 1122..1251 and its tag 1251..1267, then the first ratchet message (1267..).
    let positions = [1, 2, 33, 34, 600, 1121, 1122, 1200, 1266, 1267, 1290, 1400, 1600];
    for (n, pos) in positions.into_iter().enumerate() {
        // A new Bob (a new identity) each time, so each answer makes a new contact.
        fresh_bob(&mut w);
        let link = w.engines[0].create_invite(None, NOW, &mut w.rng).unwrap();
        w.pump();
        let h = held_answer(&mut w, 1, &link.fragment);
        assert!(w.relay.held.is_empty());
        assert_eq!(h.payload.len(), INITIAL_ENVELOPE_SIZES[0]);
        let events = w.deliver(0, h.mailbox, h.seq, flip(&h.payload, pos, n));
        assert_eq!(events, [Event::Undecryptable], "byte {pos} flipped");
        assert_eq!(w.engines[0].contacts().count(), n, "no contact from a flip at byte {pos}");
        // The honest blob, delivered afterwards, still answers the invite.
        assert!(w.deliver_held(&h).iter().any(|e| matches!(e, Event::ContactAdded(_))));
        assert_eq!(w.engines[0].contacts().count(), n + 1);
    }
    assert_eq!(w.engines[0].undecryptable() as usize, positions.len());
    // Truncated: the same.
    fresh_bob(&mut w);
    let link = w.engines[0].create_invite(None, NOW, &mut w.rng).unwrap();
    w.pump();
    let h = held_answer(&mut w, 1, &link.fragment);
    let cut = h.payload[..h.payload.len() - 1].to_vec();
    assert_eq!(w.deliver(0, h.mailbox, h.seq, cut), [Event::Undecryptable]);
    assert_eq!(w.engines[0].contacts().count(), positions.len());

    // Alice's engine is unharmed: the untouched handshake works, and so does the conversation.
    w.deliver_held(&h);
    let bob = w.engines[0].contacts().last().unwrap().id;
    assert!(w.events[0].contains(&Event::ContactAdded(bob)));
    let alice = w.engines[1].contacts().next().unwrap().id;
    still_works(&mut w, bob, alice, "hello after all that");
}

fn fresh_bob(w: &mut World) {
    w.disconnect(1);
    w.engines[1] = client_wasm::engine::Engine::new("Bob", &mut w.rng);
    w.connect(1);
}

/// Alice makes an invite; returns it and the mailbox its link names (public: anyone who saw the
/// link or the QR code knows it).
fn open_invite(w: &mut World) -> (client_wasm::engine::InviteLink, MailboxId) {
    let link = w.engines[0].create_invite(None, NOW, &mut w.rng).unwrap();
    w.pump();
    let mailbox = client_wasm::core::Invite::from_fragment(&link.fragment, NOW).unwrap().reply_mailbox();
    (link, MailboxId(mailbox))
}

/// Bob answers `fragment`; the relay keeps the initial message back and returns it.
fn held_answer(w: &mut World, joiner: usize, fragment: &str) -> relay::Held {
    w.relay.hold.insert(0);
    w.engines[joiner].accept_invite(fragment, NOW, &mut w.rng).unwrap();
    w.pump();
    w.relay.hold.remove(&0);
    w.relay.held.pop().unwrap()
}

#[test]
fn blobs_that_do_not_answer_an_invite_do_not_consume_it() {
    let mut w = World::new(&["Alice", "Bob", "Carol"], 7);
    let (link, target) = open_invite(&mut w);
    let (other, _) = open_invite(&mut w);
    // Five garbage bytes from someone who saw the link.
    w.inject(target, vec![1, 2, 3, 4, 5]);
    // Carol's honest answer to the *other* invite, replayed into this one's mailbox.
    let foreign = held_answer(&mut w, 2, &other.fragment);
    w.inject(target, foreign.payload.clone());
    assert_eq!(w.engines[0].contacts().count(), 0);
    // The real answer still works, and so does the other invite.
    let at_bob = w.engines[1].accept_invite(&link.fragment, NOW, &mut w.rng).unwrap();
    w.pump();
    assert_eq!(w.engines[0].contacts().count(), 1);
    w.deliver_held(&foreign);
    assert_eq!(w.engines[0].contacts().count(), 2);
    let bob = w.engines[0].contacts().find(|c| c.name == "Bob").unwrap().id;
    still_works(&mut w, bob, at_bob, "after the garbage");
}

#[test]
fn an_invite_is_retired_after_sixteen_failed_answers() {
    let mut w = World::new(&["Alice", "Bob"], 7);
    let (link, target) = open_invite(&mut w);
    for n in 0..client_wasm::engine::MAX_FAILED_ANSWERS {
        assert!(w.subscribed_on_reconnect(0).contains(&target), "still open after {n} failures");
        w.inject(target, vec![n as u8; INITIAL_ENVELOPE_SIZES[0]]);
        if n == 8 {
            // The count is stored.
            w.reload(0);
        }
    }
    assert!(!w.subscribed_on_reconnect(0).contains(&target), "retired");
    w.engines[1].accept_invite(&link.fragment, NOW, &mut w.rng).unwrap();
    w.pump();
    assert_eq!(w.engines[0].contacts().count(), 0);
}

#[test]
fn a_second_message_delivered_before_the_initial_one_waits_for_it() {
    let mut w = World::new(&["Alice", "Bob"], 7);
    let link = w.engines[0].create_invite(None, NOW, &mut w.rng).unwrap();
    w.pump();
    let initial = held_answer(&mut w, 1, &link.fragment);
    let alice = w.engines[1].contacts().next().unwrap().id;
    let second = w.send_held(1, alice, "right after the hello", 0);
    assert_eq!(second.mailbox, initial.mailbox);
    // The relay swaps them.
    w.deliver_held(&second);
    w.deliver_held(&initial);
    let bob = w.engines[0].contacts().next().expect("the invite was answered").id;
    assert_eq!(w.texts(0, bob), ["right after the hello"]);
    assert_eq!(w.engines[0].undecryptable(), 0, "the answer is not delivered a second time");
    still_works(&mut w, bob, alice, "in order again");
}

#[test]
fn expired_invites_are_forgotten_and_no_longer_subscribed() {
    let mut w = World::new(&["Alice", "Bob"], 7);
    let (link, target) = open_invite(&mut w);
    w.now = link.expires_at + client_wasm::core::INVITE_RESPONSE_GRACE_SECS;
    assert!(w.subscribed_on_reconnect(0).contains(&target), "answers are taken until the grace ends");
    w.now += 1;
    assert!(!w.subscribed_on_reconnect(0).contains(&target));
    // And it is gone from storage.
    w.reload(0);
    assert!(!w.subscribed_on_reconnect(0).contains(&target));
}

#[test]
fn the_inviter_moves_off_the_mailbox_printed_in_the_link() {
    let mut w = World::new(&["Alice", "Bob"], 7);
    let (link, printed) = open_invite(&mut w);
    let alice = w.engines[1].accept_invite(&link.fragment, NOW, &mut w.rng).unwrap();
    w.pump();
    let bob = w.engines[0].contacts().next().unwrap().id;
    // Until Bob is known to have switched, Alice still reads the printed mailbox.
    assert!(w.subscribed_on_reconnect(0).contains(&printed));
    let h = w.send_held(1, alice, "first on the new mailbox", 0);
    assert_ne!(h.mailbox, printed, "Bob writes to the announced mailbox");
    w.deliver_held(&h);
    assert_eq!(w.texts(0, bob), ["first on the new mailbox"]);
    assert!(!w.subscribed_on_reconnect(0).contains(&printed), "the printed mailbox is dropped");
    // A stranger with the QR code reaches nobody.
    w.inject(printed, vec![0; INITIAL_ENVELOPE_SIZES[0]]);
    assert_eq!(w.engines[0].undecryptable(), 0);
    still_works(&mut w, bob, alice, "after the move");
    w.reload(0);
    w.reload(1);
    still_works(&mut w, bob, alice, "after reloads");
}

#[test]
fn the_printed_mailbox_is_dropped_when_its_time_is_up_even_if_the_joiner_is_silent() {
    let mut w = World::new(&["Alice", "Bob"], 7);
    let (link, printed) = open_invite(&mut w);
    w.engines[1].accept_invite(&link.fragment, NOW, &mut w.rng).unwrap();
    w.pump();
    // What is kept, and until when, is stored.
    w.reload(0);
    w.now = NOW + client_wasm::engine::INVITE_TTL_SECS;
    assert!(w.subscribed_on_reconnect(0).contains(&printed));
    w.now += 1;
    assert!(!w.subscribed_on_reconnect(0).contains(&printed));
}

#[test]
fn a_blocked_contact_gets_nothing_until_the_change_is_accepted() {
    let mut w = World::new(&["Alice", "Bob", "Mallory"], 7);
    let (bob, _) = invite(&mut w, 0, 1);
    let number = w.engines[0].contact(bob).unwrap().safety_number().digits();
    w.engines[0].mark_verified(bob, &number).unwrap();
    // Mallory answers Alice's re-invite for Bob and is now the blocked "Bob".
    w.engines[2].set_name("Bob", NOW, &mut w.rng).unwrap();
    let link = w.engines[0].create_invite(Some(bob), NOW, &mut w.rng).unwrap();
    w.pump();
    let alice_at_mallory = w.engines[2].accept_invite(&link.fragment, NOW, &mut w.rng).unwrap();
    w.pump();
    assert!(w.engines[0].contact(bob).unwrap().blocked);
    let outbox_before = w.engines[0].unconfirmed();
    let stored_before: usize = w.relay.stored.values().map(Vec::len).sum();

    // Mallory writes; Alice reads it (she can see what arrives) but sends no receipt.
    w.engines[2].send_text(alice_at_mallory, "it's me, Bob", NOW, &mut w.rng).unwrap();
    w.pump();
    assert_eq!(w.texts(0, bob).last().map(String::as_str), Some("it's me, Bob"));
    // Alice changes her name: the blocked key does not learn it.
    w.engines[0].set_name("Alice Liddell", NOW, &mut w.rng).unwrap();
    w.pump();
    assert_eq!(w.engines[2].contact(alice_at_mallory).unwrap().name, "Alice");
    let mine = w.engines[2].contact(alice_at_mallory).unwrap().messages.iter().last().unwrap().clone();
    assert_ne!(mine.delivery, Delivery::Delivered, "no receipt reached the blocked key");
    assert_eq!(w.engines[0].unconfirmed(), outbox_before);
    let stored_after: usize = w.relay.stored.values().map(Vec::len).sum();
    assert!(stored_after <= stored_before, "Alice deposited nothing for the blocked key");

    // Marking verified names the number that was shown: the old one is refused.
    assert!(matches!(w.engines[0].mark_verified(bob, &number), Err(EngineError::SafetyNumberMismatch)));
    assert!(w.engines[0].contact(bob).unwrap().blocked);
    w.engines[0].accept_safety_number_change(bob).unwrap();
    w.engines[0].send_text(bob, "who are you?", NOW, &mut w.rng).unwrap();
    w.pump();
    assert_eq!(w.texts(2, alice_at_mallory).last().map(String::as_str), Some("who are you?"));
}

#[test]
fn a_hello_must_name_a_mailbox_that_is_not_ours_or_another_contacts() {
    use client_wasm::core::{Content, Invite, Payload, accept_invite};
    let mut w = World::new(&["Alice", "Bob", "Carol", "Mallory"], 7);
    let (carol, alice) = invite(&mut w, 0, 2);
    // Carol writes first, so Alice's next deposit no longer repeats her inbox's announcement.
    w.engines[2].send_text(alice, "hi Alice", NOW, &mut w.rng).unwrap();
    w.pump();
    // Learn the mailbox Alice writes to for Carol, and one Alice reads.
    let to_carol = w.send_held(0, carol, "hi Carol", 2);
    w.deliver_held(&to_carol);
    let identity = client_wasm::core::Identity::generate(&mut w.rng);
    for reply_mailbox in [to_carol.mailbox.0, [0; 32]] {
        let link = w.engines[0].create_invite(None, NOW, &mut w.rng).unwrap();
        w.pump();
        let invite = Invite::from_fragment(&link.fragment, NOW).unwrap();
        let hello = Payload::new(
            Content::Hello { name: "Mallory".into(), reply_mailbox, relay: None },
            NOW,
            &mut w.rng,
        );
        let (_, initial) =
            accept_invite(&identity, &invite, &hello.encode().unwrap(), NOW, &mut w.rng).unwrap();
        w.inject(MailboxId(invite.reply_mailbox()), initial);
        assert_eq!(w.engines[0].contacts().count(), 1, "no contact that answers into someone else's mailbox");
    }
    // Alice's own invite mailbox as the reply: she would write into her own inbox.
    let link = w.engines[0].create_invite(None, NOW, &mut w.rng).unwrap();
    w.pump();
    let invite = Invite::from_fragment(&link.fragment, NOW).unwrap();
    let hello = Payload::new(
        Content::Hello { name: "Mallory".into(), reply_mailbox: invite.reply_mailbox(), relay: None },
        NOW,
        &mut w.rng,
    );
    let (_, initial) = accept_invite(&identity, &invite, &hello.encode().unwrap(), NOW, &mut w.rng).unwrap();
    w.inject(MailboxId(invite.reply_mailbox()), initial);
    assert_eq!(w.engines[0].contacts().count(), 1);
}

#[test]
fn messages_given_up_after_a_long_gap_show_in_the_conversation() {
    let (mut w, bob, alice) = pair();
    // The relay drops 1,100 of Bob's messages in a row: more than the skipped keys one step keeps.
    w.relay.hold.insert(0);
    for n in 0..1_100 {
        w.engines[1].send_text(alice, &format!("lost {n}"), NOW, &mut w.rng).unwrap();
        w.pump();
    }
    w.relay.hold.remove(&0);
    w.relay.held.clear();
    let stored: Vec<(MailboxId, u64)> =
        w.relay.stored.iter().flat_map(|(m, blobs)| blobs.iter().map(|(s, _)| (*m, *s))).collect();
    // Dropped for good: the relay deletes them as if acknowledged.
    for (mailbox, seq) in stored {
        w.relay.handle(0, Frame::Ack { mailbox, seq });
    }
    let events = {
        let h = w.send_held(1, alice, "after the gap", 0);
        w.deliver_held(&h)
    };
    assert!(events.contains(&Event::MessagesLost(bob)));
    let log: Vec<_> = w.engines[0].contact(bob).unwrap().messages.iter().cloned().collect();
    let lost: Vec<_> = log.iter().filter(|m| matches!(m.kind, MessageKind::Lost { .. })).collect();
    assert_eq!(lost.len(), 1);
    assert_eq!(lost[0].kind, MessageKind::Lost { count: 1_100 - client_wasm::core::MAX_SKIP });
    assert_eq!(log.last().unwrap().text, "after the gap");
    // The notice stays through a reload.
    w.reload(0);
    assert_eq!(
        w.engines[0]
            .contact(bob)
            .unwrap()
            .messages
            .iter()
            .filter(|m| matches!(m.kind, MessageKind::Lost { .. }))
            .count(),
        1
    );
    still_works(&mut w, bob, alice, "and on");
}

#[test]
fn a_stranger_cannot_retire_an_invite_by_waiting_for_reconnects() {
    let mut w = World::new(&["Alice", "Bob"], 7);
    let (link, target) = open_invite(&mut w);
    // Something shaped like a ratchet message (left for later, not acknowledged), then garbage
    // behind it, which the relay therefore delivers again on every connection.
    let mut message_like = vec![0x33; MESSAGE_ENVELOPE_SIZES[0]];
    message_like[..2]
        .copy_from_slice(&[client_wasm::core::ENVELOPE_VERSION, client_wasm::core::KIND_MESSAGE]);
    w.inject(target, message_like);
    for n in 0..4 {
        w.inject(target, vec![n; INITIAL_ENVELOPE_SIZES[0]]);
    }
    for _ in 0..client_wasm::engine::MAX_FAILED_ANSWERS {
        assert!(w.subscribed_on_reconnect(0).contains(&target));
    }
    let alice = w.engines[1].accept_invite(&link.fragment, NOW, &mut w.rng).unwrap();
    w.pump();
    let bob = w.engines[0].contacts().next().expect("the invite still works").id;
    still_works(&mut w, bob, alice, "despite the stranger");
}

/// The joiner has not heard back yet (the inviter's first message, which announces its new inbox,
/// is still on its way), so its next messages still go to the mailbox printed in the link: the
/// inviter reads them there, in order.
#[test]
fn messages_the_joiner_sends_before_hearing_back_are_read_on_the_printed_mailbox() {
    let mut w = World::new(&["Alice", "Bob"], 9);
    let (link, printed) = open_invite(&mut w);
    w.relay.hold.insert(1);
    let alice = w.engines[1].accept_invite(&link.fragment, NOW, &mut w.rng).unwrap();
    w.pump();
    let bob = w.engines[0].contacts().next().expect("the answer made a contact").id;
    // The inviter goes offline and comes back in between, and reloads.
    w.disconnect(0);
    w.reload(0);
    w.connect(0);
    for text in ["second", "third"] {
        w.engines[1].send_text(alice, text, NOW, &mut w.rng).unwrap();
        w.pump();
    }
    assert!(w.subscribed_on_reconnect(0).contains(&printed), "still reading the printed mailbox");
    assert_eq!(w.texts(0, bob), ["second", "third"]);
    assert_eq!(w.engines[0].undecryptable(), 0);
}
