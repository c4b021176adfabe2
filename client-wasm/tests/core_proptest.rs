//! Seeded property tests: random interleavings of two parties with loss, duplication, reordering and
//! storage round-trips at random points. Native only (proptest does not run in the browser).
#![cfg(not(target_arch = "wasm32"))]

use client_wasm::core::{DecryptError, Identity, Invite, Session, accept_invite, create_invite};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const NOW: u64 = 1_750_000_000;

#[derive(Debug, Clone)]
enum Action {
    Send(usize),
    Deliver(usize),
    Duplicate(usize),
    Drop(usize),
    Restore(usize),
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        4 => (0..2usize).prop_map(Action::Send),
        4 => any::<usize>().prop_map(Action::Deliver),
        1 => any::<usize>().prop_map(Action::Duplicate),
        1 => any::<usize>().prop_map(Action::Drop),
        1 => (0..2usize).prop_map(Action::Restore),
    ]
}

struct InFlight {
    to: usize,
    plaintext: Vec<u8>,
    envelope: Vec<u8>,
    delivered: bool,
}

fn run(seed: u64, actions: &[Action]) -> Result<(), TestCaseError> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let alice = Identity::generate(&mut rng);
    let bob = Identity::generate(&mut rng);
    let (invite, secret) = create_invite(&bob, [1; 32], "Bob", NOW, 3600, &mut rng);
    let invite = Invite::from_fragment(&invite.to_fragment(), NOW).unwrap();
    let (sa, initial) = accept_invite(&alice, &invite, b"hello", NOW, &mut rng).unwrap();
    let (sb, first) = secret.respond(&bob, &initial, NOW).unwrap();
    prop_assert_eq!(first, b"hello".to_vec());
    let mut sessions: [Session; 2] = [sa, sb];
    let mut network: Vec<InFlight> = Vec::new();
    let mut counter = 0u32;

    for action in actions {
        match *action {
            Action::Send(from) => {
                counter += 1;
                let plaintext = format!("{from}:{counter}").into_bytes();
                let envelope = sessions[from].encrypt(&plaintext, &mut rng).unwrap();
                network.push(InFlight { to: 1 - from, plaintext, envelope, delivered: false });
            }
            Action::Deliver(i) if !network.is_empty() => {
                let msg = network.remove(i % network.len());
                let session = &mut sessions[msg.to];
                let before = session.to_bytes();
                let result = session.decrypt(&msg.envelope);
                if msg.delivered {
                    prop_assert_eq!(result, Err(DecryptError::Invalid));
                    prop_assert_eq!(&*session.to_bytes(), &*before);
                } else {
                    prop_assert_eq!(result.map(|d| d.plaintext), Ok(msg.plaintext.clone()));
                    // Remaining copies of this message are now duplicates.
                    for other in network.iter_mut().filter(|m| m.envelope == msg.envelope) {
                        other.delivered = true;
                    }
                }
            }
            Action::Duplicate(i) if !network.is_empty() => {
                let msg = &network[i % network.len()];
                let copy = InFlight {
                    to: msg.to,
                    plaintext: msg.plaintext.clone(),
                    envelope: msg.envelope.clone(),
                    delivered: msg.delivered,
                };
                network.push(copy);
            }
            Action::Drop(i) if !network.is_empty() => {
                network.remove(i % network.len());
            }
            Action::Restore(who) => {
                let bytes = sessions[who].to_bytes();
                sessions[who] = Session::from_bytes(&bytes).unwrap();
                prop_assert_eq!(&*sessions[who].to_bytes(), &*bytes);
            }
            _ => {}
        }
    }
    // Whatever happened, the two can still talk both ways.
    for from in [0, 1] {
        let env = sessions[from].encrypt(b"final", &mut rng).unwrap();
        prop_assert_eq!(sessions[1 - from].decrypt(&env).unwrap().plaintext, b"final".to_vec());
    }
    Ok(())
}

#[test]
fn random_interleavings_with_loss_duplication_reordering_and_restore() {
    let config = Config { cases: 96, failure_persistence: None, ..Config::default() };
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[0x5e; 32]);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let strategy = (any::<u64>(), proptest::collection::vec(action(), 1..250));
    runner.run(&strategy, |(seed, actions)| run(seed, &actions)).unwrap();
}

#[test]
fn random_garbage_never_changes_a_session() {
    let config = Config { cases: 256, failure_persistence: None, ..Config::default() };
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[0x6a; 32]);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let alice = Identity::generate(&mut rng);
    let bob = Identity::generate(&mut rng);
    let (invite, secret) = create_invite(&bob, [1; 32], "Bob", NOW, 3600, &mut rng);
    let (_, initial) = accept_invite(&alice, &invite, b"x", NOW, &mut rng).unwrap();
    let (session, _) = secret.respond(&bob, &initial, NOW).unwrap();
    let before = session.to_bytes();
    let strategy = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..400),
        proptest::collection::vec(any::<u8>(), 342..=342).prop_map(|mut v| {
            v[0] = 1;
            v[1] = 2;
            v
        }),
    ];
    runner
        .run(&strategy, |bytes| {
            let mut s = Session::from_bytes(&before).unwrap();
            prop_assert!(s.decrypt(&bytes).is_err());
            prop_assert_eq!(&*s.to_bytes(), &*before);
            Ok(())
        })
        .unwrap();
}
