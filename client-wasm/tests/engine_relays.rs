//! Addresses carry their relay: profiles whose home relays differ, talking through two in-test
//! relays. Each engine keeps one connection per relay that [`Engine::relays`] names (the home
//! relay always, a contact's relay while a deposit waits for it), as the owner tab does.

#[path = "common/net.rs"]
mod net;
#[path = "common/relay.rs"]
mod relay;

use client_wasm::engine::{
    Delivery, Engine, Event, FetchId, INVITE_FETCH_TIMEOUT_SECS, PROFILE_RECORD, ShortInviteError,
};
use doorless_frames::{Frame, MailboxId};
use net::{Net, origin};
use relay::NOW;

const RELAY_1: &str = "wss://relay-one.test/ws";
const RELAY_2: &str = "wss://relay-two.test:8443/ws";

/// Alice's home is relay 1 and Bob's relay 2.
fn two(seed: u8) -> Net {
    Net::new(&[RELAY_1, RELAY_2], &[("Alice", 0), ("Bob", 1)], seed)
}

#[test]
fn profiles_on_two_relays_pair_and_talk_both_ways_whoever_invites() {
    for inviter in [0, 1] {
        let mut net = two(30 + inviter as u8);
        let (at_inviter, at_joiner) = net.invite(inviter);
        let (bob, alice) = if inviter == 0 { (at_inviter, at_joiner) } else { (at_joiner, at_inviter) };
        assert_eq!(net.engines[0].contact(bob).unwrap().name, "Bob");
        assert_eq!(net.engines[1].contact(alice).unwrap().name, "Alice");
        // Each deposits on the other's relay.
        assert_eq!(net.engines[0].contact_relay(bob), Some(&origin(RELAY_2)));
        assert_eq!(net.engines[1].contact_relay(alice), Some(&origin(RELAY_1)));

        net.engines[1].send_text(alice, "hello from relay two", NOW, &mut net.rng).unwrap();
        net.pump();
        net.engines[0].send_text(bob, "hello from relay one", NOW, &mut net.rng).unwrap();
        net.pump();
        let both = ["hello from relay two", "hello from relay one"];
        assert_eq!(net.texts(0, bob), both);
        assert_eq!(net.texts(1, alice), both);
        assert_eq!(net.delivery(0, bob), Delivery::Delivered);
        assert_eq!(net.delivery(1, alice), Delivery::Delivered);
        // Each reads only on its home relay (the inviter's printed mailbox is retired once the
        // joiner wrote to the fresh one), and keeps no other connection once nothing waits.
        for (i, home) in [(0, 0), (1, 1)] {
            assert!(net.subscribed(home, i) >= 1);
            assert_eq!(net.subscribed(1 - home, i), 0, "engine {i} subscribes on its home relay only");
            let uses = net.engines[i].relays();
            assert_eq!(uses.len(), 1, "engine {i}: {uses:?}");
            assert!(uses[0].home && uses[0].inboxes && uses[0].waiting.is_empty());
            assert_eq!(net.conns[i], [home]);
        }
        assert_eq!(net.engines[0].contact(bob).unwrap().missing(), 0);
        assert_eq!(net.engines[1].contact(alice).unwrap().missing(), 0);
    }
}

#[test]
fn the_invite_names_the_inviters_relay_and_the_joiner_deposits_there() {
    let mut net = two(40);
    let link = net.engines[0].create_invite(None, NOW, &mut net.rng).unwrap();
    let invite = net.engines[1].read_invite(&link.fragment, NOW).unwrap();
    assert_eq!(invite.relay(), Some(&origin(RELAY_1)));
    net.pump();
    net.engines[1].accept_invite(&link.fragment, NOW, &mut net.rng).unwrap();
    // Bob needs relay 1 now, for Alice's (waiting) contact only.
    let uses = net.engines[1].relays();
    let alice = net.engines[1].contacts().next().unwrap().id;
    assert_eq!(uses.len(), 2);
    assert_eq!((uses[1].origin.clone(), uses[1].home, uses[1].inboxes), (origin(RELAY_1), false, false));
    assert_eq!(uses[1].waiting, [alice]);
    net.pump();
    assert_eq!(net.engines[0].contacts().count(), 1);
    assert!(net.engines[1].contact(alice).unwrap().awaiting_since.is_none(), "Alice's answer reached Bob");
}

#[test]
fn a_deposit_is_confirmed_only_by_the_relay_it_went_to() {
    let mut net = two(50);
    let (bob, alice) = net.invite(0);
    // Bob has written to Alice's fresh inbox: her deposits no longer carry its announcement.
    net.send(1, alice, "hi");
    net.engines[0].send_text(bob, "to relay two", NOW, &mut net.rng).unwrap();
    // Take Alice's frames by hand: the deposit goes to relay 2 (connected on demand).
    net.sync(0);
    let frames = net.engines[0].take_relay_frames();
    assert!(frames.iter().all(|(o, f)| *o == origin(RELAY_2) && matches!(f, Frame::Hello)), "{frames:?}");
    let challenge = Frame::Challenge { challenge: [9; 32], max_frame_len: 262_144 };
    net.engines[0].on_relay_frame(&origin(RELAY_2), challenge, NOW, &mut net.rng);
    let frames = net.engines[0].take_relay_frames();
    let request = frames
        .iter()
        .find_map(|(o, f)| match f {
            Frame::Deposit { request, .. } if *o == origin(RELAY_2) => Some(*request),
            _ => None,
        })
        .expect("the deposit goes to relay 2");
    // Relay 1 cannot confirm what went to relay 2.
    net.engines[0].on_relay_frame(&origin(RELAY_1), Frame::Deposited { request }, NOW, &mut net.rng);
    assert_eq!(net.engines[0].unconfirmed(), 1);
    assert_eq!(net.delivery(0, bob), Delivery::Pending);
    net.engines[0].on_relay_frame(&origin(RELAY_2), Frame::Deposited { request }, NOW, &mut net.rng);
    assert_eq!(net.engines[0].unconfirmed(), 0);
    assert_eq!(net.delivery(0, bob), Delivery::Sent);
}

#[test]
fn messages_for_a_relay_that_is_down_wait_across_a_reload_then_go() {
    let mut net = two(60);
    let (bob, alice) = net.invite(0);
    net.set_up(1, false);
    net.engines[0].send_text(bob, "while relay two is down", NOW, &mut net.rng).unwrap();
    net.pump();
    // Alice's own relay is fine; the message waits for Bob's.
    assert!(net.engines[0].is_connected());
    assert!(!net.engines[0].is_connected_to(&origin(RELAY_2)));
    assert_eq!(net.delivery(0, bob), Delivery::Pending);
    let waiting = net.engines[0].relays();
    assert_eq!(waiting.len(), 2);
    assert_eq!((waiting[1].origin.clone(), waiting[1].waiting.clone()), (origin(RELAY_2), vec![bob]));
    // Bob, reading on relay 2, is offline too; his message to Alice still reaches relay 1 later.
    net.reload(0);
    assert_eq!(net.stores[0][PROFILE_RECORD][0], 7);
    assert_eq!(net.engines[0].relays()[1].waiting, [bob], "the waiting deposit kept its relay");
    net.set_up(1, true);
    assert_eq!(net.texts(1, alice), ["while relay two is down"]);
    assert_eq!(net.delivery(0, bob), Delivery::Delivered);
    net.engines[1].send_text(alice, "back", NOW, &mut net.rng).unwrap();
    net.pump();
    assert_eq!(net.texts(0, bob), ["while relay two is down", "back"]);
    assert_eq!(net.conns[0], [0], "Alice closed relay 2 once nothing waited");
}

#[test]
fn a_relay_that_is_down_holds_up_only_its_own_deposits() {
    let mut net = two(70);
    // Carol shares Alice's relay.
    let mut carol = Engine::new("Carol", &mut net.rng);
    carol.set_home_relay(RELAY_1).unwrap();
    net.add(carol);
    let (bob, _) = net.invite(0);
    let link = net.engines[0].create_invite(None, NOW, &mut net.rng).unwrap();
    net.pump();
    let alice_at_carol = net.engines[2].accept_invite(&link.fragment, NOW, &mut net.rng).unwrap();
    net.pump();
    let carol_at_alice = net.engines[0].contacts().last().unwrap().id;
    net.set_up(1, false);
    net.engines[0].send_text(bob, "waits", NOW, &mut net.rng).unwrap();
    net.engines[0].send_text(carol_at_alice, "goes", NOW, &mut net.rng).unwrap();
    net.pump();
    assert_eq!(net.texts(2, alice_at_carol), ["goes"]);
    assert_eq!(net.delivery(0, carol_at_alice), Delivery::Delivered);
    assert_eq!(net.delivery(0, bob), Delivery::Pending);
    assert!(net.engines[0].all_stored(carol_at_alice) && !net.engines[0].all_stored(bob));
}

/// A `Hello` or `Inbox` naming something other than a relay origin (in its normalised form) is not
/// followed; one naming no relay means the relay it came through (as from an earlier release).
#[test]
fn a_relay_named_by_a_peer_must_be_a_relay_origin() {
    use client_wasm::core::{Content, Identity, Invite, Payload, accept_invite};
    let mut net = two(80);
    let mallory = Identity::generate(&mut net.rng);
    let answer = |net: &mut Net, relay: Option<&str>| {
        let link = net.engines[0].create_invite(None, NOW, &mut net.rng).unwrap();
        net.pump();
        let invite = Invite::from_fragment(&link.fragment, NOW).unwrap();
        let hello =
            Content::Hello { name: "Mallory".into(), reply_mailbox: [5; 32], relay: relay.map(Into::into) };
        let hello = Payload::new(hello, NOW, &mut net.rng).encode().unwrap();
        let (session, initial) = accept_invite(&mallory, &invite, &hello, NOW, &mut net.rng).unwrap();
        net.inject(0, MailboxId(invite.reply_mailbox()), initial);
        (session, MailboxId(invite.reply_mailbox()))
    };
    // (An empty origin is not encoded at all: it is the form that names no relay.)
    for bad in ["HTTPS://relay-two.test:8443", "https://relay-two.test:8443/ws", "relay-two.test"] {
        answer(&mut net, Some(bad));
        assert_eq!(net.engines[0].contacts().count(), 0, "{bad:?} is no relay origin");
    }
    // No relay named: the answer came through relay 1, so Mallory's mailbox is there.
    let (mut session, printed) = answer(&mut net, None);
    let contact = net.engines[0].contacts().next().expect("a contact").id;
    assert_eq!(net.engines[0].contact_relay(contact), Some(&origin(RELAY_1)));
    let mut announce = |net: &mut Net, mailbox: [u8; 32], relay: Option<&str>| {
        let inbox = Content::Inbox { mailbox, relay: relay.map(Into::into) };
        let inbox = Payload::new(inbox, NOW, &mut net.rng).encode().unwrap();
        let envelope = session.encrypt(&inbox, &mut net.rng).unwrap();
        net.inject(0, printed, envelope);
    };
    announce(&mut net, [6; 32], Some("not a relay"));
    assert_eq!(net.engines[0].contact_relay(contact), Some(&origin(RELAY_1)), "not followed");
    announce(&mut net, [7; 32], Some("https://relay-two.test:8443"));
    assert_eq!(net.engines[0].contact_relay(contact), Some(&origin(RELAY_2)));
    // Alice's next message goes to that mailbox on relay 2.
    net.engines[0].send_text(contact, "to the new address", NOW, &mut net.rng).unwrap();
    net.pump();
    assert!(net.relays[1].stored.contains_key(&MailboxId([7; 32])));
}

/// Alice (relay 1) makes an invite; the short link once relay 1 stored its bundle.
fn short_link(net: &mut Net) -> (client_wasm::engine::InviteId, String) {
    let link = net.engines[0].create_invite(None, NOW, &mut net.rng).unwrap();
    assert_eq!(net.engines[0].short_link(link.invite), None, "no short link before the bundle is stored");
    assert!(net.engines[0].short_link_pending(link.invite));
    net.pump();
    assert!(net.events[0].contains(&Event::ShortLinkReady(link.invite)));
    (link.invite, net.engines[0].short_link(link.invite).expect("stored: the short link is given"))
}

/// Bob (relay 2) fetches a short link's invite; returns what became of it.
fn fetch(net: &mut Net, fragment: &str) -> (FetchId, Vec<Event>) {
    let before = net.events[1].len();
    let id = net.engines[1].fetch_invite(fragment, NOW).unwrap();
    assert!(
        net.engines[1].relays().iter().any(|u| u.origin == origin(RELAY_1) && u.invites),
        "the relay of the link is needed while the invite is fetched"
    );
    net.pump();
    (id, net.events[1][before..].to_vec())
}

#[test]
fn a_short_link_names_the_inviters_relay_and_pairs_profiles_on_two_relays() {
    let mut net = two(60);
    let (_, fragment) = short_link(&mut net);
    assert!(fragment.len() < 100 && fragment.ends_with("/relay-one.test"), "{fragment}");
    assert_eq!(net.relays[0].bundles.len(), 1, "the bundle is on the inviter's relay");
    let (id, events) = fetch(&mut net, &fragment);
    assert_eq!(events, [Event::InviteFetched(id)]);
    let full = net.engines[1].take_fetched_invite(id).expect("fetched");
    assert_eq!(net.engines[1].take_fetched_invite(id), None, "handed out once");
    // From here exactly as with a full link.
    let alice = net.engines[1].accept_invite(&full, NOW, &mut net.rng).unwrap();
    net.pump();
    let bob = net.engines[0].contacts().last().unwrap().id;
    assert!(net.relays[0].bundles.is_empty(), "the inviter deleted the bundle once answered");
    net.engines[1].send_text(alice, "hi Alice", NOW, &mut net.rng).unwrap();
    net.pump();
    net.engines[0].send_text(bob, "hi Bob", NOW, &mut net.rng).unwrap();
    net.pump();
    assert_eq!(net.texts(0, bob), ["hi Alice", "hi Bob"]);
    assert_eq!(net.texts(1, alice), ["hi Alice", "hi Bob"]);
    assert!(!net.engines[1].relays().iter().any(|u| u.invites), "nothing left to fetch");
}

#[test]
fn a_relay_that_alters_the_bundle_is_refused_by_name() {
    let mut net = two(61);
    let (_, fragment) = short_link(&mut net);
    net.relays[0].bundle_mode = relay::BundleMode::Tamper;
    let (id, events) = fetch(&mut net, &fragment);
    let altered = ShortInviteError::Altered { relay: "relay-one.test".into() };
    assert_eq!(events, [Event::InviteFetchFailed(id, altered.clone())]);
    assert_eq!(altered.to_string(), "the invite from relay-one.test was altered");
    assert_eq!(net.engines[1].take_fetched_invite(id), None);
    assert_eq!(net.engines[1].contacts().count(), 0);
    assert!(
        !net.engines[1].relays().iter().any(|u| u.origin == origin(RELAY_1)),
        "connection no longer needed"
    );
}

#[test]
fn a_relay_that_withholds_the_bundle_times_out() {
    let mut net = two(62);
    let (_, fragment) = short_link(&mut net);
    net.relays[0].bundle_mode = relay::BundleMode::Withhold;
    let (id, events) = fetch(&mut net, &fragment);
    assert_eq!(events, []);
    assert_eq!(net.engines[1].check_invite_fetches(NOW + INVITE_FETCH_TIMEOUT_SECS - 1), []);
    let withheld = ShortInviteError::Withheld { relay: "relay-one.test".into() };
    assert_eq!(
        net.engines[1].check_invite_fetches(NOW + INVITE_FETCH_TIMEOUT_SECS),
        [Event::InviteFetchFailed(id, withheld)]
    );
    assert!(!net.engines[1].relays().iter().any(|u| u.invites));
    // A relay that is down is the same to the joiner: no invite in time.
    let mut net = two(63);
    let (_, fragment) = short_link(&mut net);
    net.set_up(0, false);
    let (id, events) = fetch(&mut net, &fragment);
    assert_eq!(events, []);
    assert!(matches!(
        net.engines[1].check_invite_fetches(NOW + INVITE_FETCH_TIMEOUT_SECS)[..],
        [Event::InviteFetchFailed(got, ShortInviteError::Withheld { .. })] if got == id
    ));
}

#[test]
fn a_revoked_invites_bundle_is_deleted_and_its_link_finds_nothing() {
    let mut net = two(64);
    let (invite, fragment) = short_link(&mut net);
    net.engines[0].revoke_invite(invite).unwrap();
    net.pump();
    assert!(net.relays[0].bundles.is_empty());
    let (id, events) = fetch(&mut net, &fragment);
    assert_eq!(
        events,
        [Event::InviteFetchFailed(id, ShortInviteError::Gone { relay: "relay-one.test".into() })]
    );
}

#[test]
fn the_short_link_waits_for_the_home_relay_to_store_the_bundle() {
    let mut net = two(65);
    net.set_up(0, false);
    let link = net.engines[0].create_invite(None, NOW, &mut net.rng).unwrap();
    net.pump();
    assert_eq!(net.engines[0].short_link(link.invite), None);
    assert!(net.relays[0].bundles.is_empty());
    net.set_up(0, true);
    assert!(net.events[0].contains(&Event::ShortLinkReady(link.invite)));
    let fragment = net.engines[0].short_link(link.invite).unwrap();
    let (id, events) = fetch(&mut net, &fragment);
    assert_eq!(events, [Event::InviteFetched(id)]);
}
