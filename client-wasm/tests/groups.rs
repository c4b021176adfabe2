//! Doorless groups on mls-rs with our provider, natively and seeded: a group of three (add,
//! encrypt, remove; the removed member reads nothing after), the refusal of external commits,
//! external senders and unencrypted handshake messages, and the credential with its vector
//! (`docs/test-vectors/groups-credential-v1.json`, docs/groups.md §2).

use client_wasm::core::Identity;
use client_wasm::groups::credential::{CREDENTIAL_SIGNATURE_CONTEXT, signing_identity};
use client_wasm::groups::{
    CredentialError, DoorlessCredential, DoorlessCrypto, DoorlessIdentityProvider, Group, GroupClient,
    GroupError, GroupEvent, SUITE,
};
use mls_rs::extension::built_in::ExternalSendersExt;
use mls_rs::{CipherSuiteProvider, Client, CryptoProvider, ExtensionList, IdentityProvider, MlsMessage};
use mls_rs_core::crypto::{SignaturePublicKey, SignatureSecretKey};
use mls_rs_core::identity::MemberValidationContext;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

const NOW: u64 = 1_700_000_000;

struct Person {
    identity: Identity,
    client: GroupClient,
}

fn person(rng: &mut ChaCha20Rng) -> Person {
    let identity = Identity::generate(rng);
    let client = GroupClient::new(&identity, rng).unwrap();
    Person { identity, client }
}

/// Alice creates a group and adds Bob and Carol in one Commit; both join from the Welcome.
fn group_of_three(rng: &mut ChaCha20Rng) -> ([Person; 3], [Group; 3]) {
    let (alice, bob, carol) = (person(rng), person(rng), person(rng));
    let mut a = alice.client.create_group(vec![7; 32], NOW).unwrap();
    let kp_b = bob.client.key_package(NOW).unwrap();
    let kp_c = carol.client.key_package(NOW).unwrap();
    let commit = a.add_members(&[&kp_b, &kp_c], NOW).unwrap();
    a.apply_pending_commit().unwrap();
    let welcome = commit.welcome.unwrap();
    let b = bob.client.join(&welcome, NOW).unwrap();
    let c = carol.client.join(&welcome, NOW).unwrap();
    ([alice, bob, carol], [a, b, c])
}

fn message(sender: u32, plaintext: &[u8]) -> GroupEvent {
    GroupEvent::Message { sender, plaintext: plaintext.to_vec() }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn group_of_three_add_encrypt_remove() {
    let mut rng = ChaCha20Rng::from_seed([1; 32]);
    let (people, [mut a, mut b, mut c]) = group_of_three(&mut rng);

    // Everyone sees the same epoch, the same members with the same Doorless identities.
    assert_eq!((a.epoch(), b.epoch(), c.epoch()), (1, 1, 1));
    let members = a.members().unwrap();
    assert_eq!(members, b.members().unwrap());
    assert_eq!(members, c.members().unwrap());
    let identities: Vec<_> = members.iter().map(|m| m.identity.clone()).collect();
    assert_eq!(identities, people.iter().map(|p| p.identity.public()).collect::<Vec<_>>());
    assert_eq!(a.epoch_authenticator().unwrap(), b.epoch_authenticator().unwrap());
    assert_eq!(a.epoch_authenticator().unwrap(), c.epoch_authenticator().unwrap());

    let m1 = a.encrypt(b"hello group").unwrap();
    assert_eq!(b.process(&m1, NOW).unwrap(), message(0, b"hello group"));
    assert_eq!(c.process(&m1, NOW).unwrap(), message(0, b"hello group"));
    let m2 = b.encrypt(b"hi from bob").unwrap();
    assert_eq!(a.process(&m2, NOW).unwrap(), message(b.own_index(), b"hi from bob"));
    assert_eq!(c.process(&m2, NOW).unwrap(), message(b.own_index(), b"hi from bob"));
    // A message is accepted once: the relay replaying it gets an error, not a second copy.
    assert!(c.process(&m2, NOW).is_err());

    // Alice removes Carol.
    let carol_index = c.own_index();
    let removal = a.remove_member(carol_index, NOW).unwrap();
    assert!(removal.welcome.is_none());
    a.apply_pending_commit().unwrap();
    assert_eq!(b.process(&removal.commit, NOW).unwrap(), GroupEvent::Commit { committer: 0 });
    assert_eq!(c.process(&removal.commit, NOW).unwrap(), GroupEvent::Removed { committer: 0 });
    assert_eq!((a.epoch(), b.epoch()), (2, 2));
    assert_eq!(a.members().unwrap().len(), 2);
    assert_eq!(a.members().unwrap(), b.members().unwrap());
    assert!(a.members().unwrap().iter().all(|m| m.identity != people[2].identity.public()));
    assert_eq!(a.epoch_authenticator().unwrap(), b.epoch_authenticator().unwrap());

    // After the removal, Carol decrypts nothing: not Alice's, not Bob's, not the next Commit.
    let m3 = a.encrypt(b"after carol left").unwrap();
    let m4 = b.encrypt(b"bob after carol left").unwrap();
    assert_eq!(b.process(&m3, NOW).unwrap(), message(0, b"after carol left"));
    assert_eq!(a.process(&m4, NOW).unwrap(), message(b.own_index(), b"bob after carol left"));
    assert!(c.process(&m3, NOW).is_err());
    assert!(c.process(&m4, NOW).is_err());
    let kp = person(&mut rng).client.key_package(NOW).unwrap();
    let next = a.add_members(&[&kp], NOW).unwrap();
    a.apply_pending_commit().unwrap();
    assert!(c.process(&next.commit, NOW).is_err());
    assert_eq!(b.process(&next.commit, NOW).unwrap(), GroupEvent::Commit { committer: 0 });
    let m5 = a.encrypt(b"epoch three").unwrap();
    assert!(c.process(&m5, NOW).is_err());
    assert_eq!(b.process(&m5, NOW).unwrap(), message(0, b"epoch three"));
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn same_seed_same_group() {
    // Randomness is passed in: the same seed gives the same bytes (the core's determinism).
    let run = || {
        let mut rng = ChaCha20Rng::from_seed([2; 32]);
        let (_, [mut a, ..]) = group_of_three(&mut rng);
        (a.epoch_authenticator().unwrap(), a.encrypt(b"x").unwrap())
    };
    assert_eq!(run(), run());
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn commits_are_private_messages_and_public_ones_are_refused() {
    let mut rng = ChaCha20Rng::from_seed([3; 32]);
    let (_, [mut a, mut b, _]) = group_of_three(&mut rng);
    let commit = a.remove_member(2, NOW).unwrap();
    let wire = MlsMessage::from_bytes(&commit.commit).unwrap().wire_format();
    assert_eq!(wire, mls_rs::WireFormat::PrivateMessage);

    // A Welcome or a key package handed to `process` is refused before mls-rs sees it.
    let kp = person(&mut rng).client.key_package(NOW).unwrap();
    assert_eq!(b.process(&kp, NOW), Err(GroupError::NotPrivate));
    assert_eq!(b.process(b"\x00\x01garbage", NOW), Err(GroupError::Malformed));
}

/// A hostile client: a valid Doorless credential, but mls-rs's default rules (it will make
/// external commits). The refusal must come from the receiving members.
fn hostile_client(rng: &mut ChaCha20Rng) -> Client<impl mls_rs::client_builder::MlsConfig + use<>> {
    let identity = Identity::generate(rng);
    let crypto = DoorlessCrypto::new(rng);
    let (secret, public) = crypto.suite().signature_key_generate().unwrap();
    Client::builder()
        .crypto_provider(crypto)
        .identity_provider(DoorlessIdentityProvider)
        .signing_identity(signing_identity(&identity, public), secret, SUITE)
        .build()
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn external_commit_is_refused() {
    let mut rng = ChaCha20Rng::from_seed([4; 32]);
    let (_, [mut a, mut b, _]) = group_of_three(&mut rng);

    // Doorless never publishes a GroupInfo that allows external commits; suppose one leaked.
    let group_info = a.inner_mut().group_info_message_allowing_ext_commit(true).unwrap();
    let mallory = hostile_client(&mut rng);
    let (_, external_commit) = mallory.commit_external(group_info).unwrap();
    let bytes = external_commit.to_bytes().unwrap();

    // Through the Doorless API: an external commit is a PublicMessage, refused as such.
    assert_eq!(b.process(&bytes, NOW), Err(GroupError::NotPrivate));
    // Straight into mls-rs: the Doorless rules refuse a Commit by a non-member.
    let error = b.inner_mut().process_incoming_message(external_commit).unwrap_err();
    assert_eq!(GroupError::from(error), GroupError::External);
    assert_eq!(b.epoch(), 1);
    assert_eq!(b.members().unwrap().len(), 3);

    // And our own client will not make one either.
    let group_info = a.inner_mut().group_info_message_allowing_ext_commit(true).unwrap();
    let eve = person(&mut rng);
    assert!(eve.client.mls_client().commit_external(group_info).is_err());
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn external_senders_are_refused() {
    let mut rng = ChaCha20Rng::from_seed([5; 32]);
    let outsider = person(&mut rng);
    let sender = outsider.client.mls_client().signing_identity().unwrap().0.clone();
    let mut extensions = ExtensionList::new();
    extensions.set_from(ExternalSendersExt::new(vec![sender])).unwrap();

    // A Commit that would add an external sender: our client will not make it.
    let alice = person(&mut rng);
    let mut group = alice.client.create_group(vec![1; 32], NOW).unwrap();
    let commit =
        group.inner_mut().commit_builder().set_group_context_ext(extensions.clone()).unwrap().build();
    assert_eq!(GroupError::from(commit.unwrap_err()), GroupError::External);
    assert_eq!(group.epoch(), 0);

    // A group made by a hostile client with an external sender from the start: joining is refused
    // (mls-rs asks the identity provider about each external sender, and it refuses them all).
    let mallory = hostile_client(&mut rng);
    let bob = person(&mut rng);
    let now = Some(mls_rs::time::MlsTime::from(NOW));
    let mut hostile = mallory.create_group(extensions, ExtensionList::new(), now).unwrap();
    let kp = MlsMessage::from_bytes(&bob.client.key_package(NOW).unwrap()).unwrap();
    let output = hostile.commit_builder().commit_time(NOW.into()).add_member(kp).unwrap().build().unwrap();
    let welcome = output.welcome_messages[0].to_bytes().unwrap();
    assert_eq!(bob.client.join(&welcome, NOW).unwrap_err(), GroupError::Credential);
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn credential_binds_the_mls_key_to_the_identity() {
    let mut rng = ChaCha20Rng::from_seed([6; 32]);
    let alice = Identity::generate(&mut rng);
    let bob = Identity::generate(&mut rng);
    let crypto = DoorlessCrypto::new(&mut rng);
    let (_, key) = crypto.suite().signature_key_generate().unwrap();
    let (_, other_key) = crypto.suite().signature_key_generate().unwrap();
    let provider = DoorlessIdentityProvider;
    let validate = |id: &mls_rs::identity::SigningIdentity| {
        provider.validate_member(id, None, MemberValidationContext::None)
    };

    let good = signing_identity(&alice, key.clone());
    validate(&good).unwrap();
    assert_eq!(provider.identity(&good, &ExtensionList::new()).unwrap(), alice.public().ed25519().to_vec());

    // Alice's credential presented with another MLS key (a relay or member swapping keys).
    let swapped = mls_rs::identity::SigningIdentity::new(good.credential.clone(), other_key.clone());
    assert_eq!(validate(&swapped), Err(CredentialError::BadSignature));

    // A credential claiming Alice's identity with Bob's signature.
    let bob_cred = DoorlessCredential::issue(&bob, &key).to_bytes();
    let mut forged = DoorlessCredential::issue(&alice, &key).to_bytes();
    forged[130..].copy_from_slice(&bob_cred[130..]);
    assert_eq!(
        DoorlessCredential::from_bytes(&forged).unwrap().verify(&key),
        Err(CredentialError::BadSignature)
    );

    // Encoding errors.
    let bytes = DoorlessCredential::issue(&alice, &key).to_bytes();
    assert_eq!(DoorlessCredential::from_bytes(&[]), Err(CredentialError::Corrupt));
    assert_eq!(DoorlessCredential::from_bytes(&bytes[..bytes.len() - 1]), Err(CredentialError::Corrupt));
    let mut v2 = bytes.clone();
    v2[0] = 2;
    assert_eq!(DoorlessCredential::from_bytes(&v2), Err(CredentialError::UnsupportedVersion));
    let mut bad_identity = bytes.clone();
    bad_identity[40] ^= 1;
    assert_eq!(DoorlessCredential::from_bytes(&bad_identity), Err(CredentialError::BadIdentity));

    // A basic credential is not a Doorless one.
    let basic = mls_rs::identity::basic::BasicCredential::new(b"alice".to_vec()).into_credential();
    let basic = mls_rs::identity::SigningIdentity::new(basic, key.clone());
    assert_eq!(validate(&basic), Err(CredentialError::WrongType));

    // A member may change MLS key but not identity.
    let successor = signing_identity(&alice, other_key.clone());
    assert!(provider.valid_successor(&good, &successor, &ExtensionList::new()).unwrap());
    let impostor = signing_identity(&bob, other_key);
    assert!(!provider.valid_successor(&good, &impostor, &ExtensionList::new()).unwrap());

    // External senders are always refused.
    assert_eq!(provider.validate_external_sender(&good, None, None), Err(CredentialError::ExternalSender));
}

const VECTOR: &str = include_str!("../../docs/test-vectors/groups-credential-v1.json");

/// The credential vector: from fixed keys, the credential bytes and the signed message.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn credential_vector() {
    let identity_bytes = {
        let mut bytes = vec![1u8];
        bytes.extend_from_slice(&[0x11; 32]);
        bytes.extend_from_slice(&[0x22; 32]);
        bytes
    };
    let identity = Identity::from_bytes(&identity_bytes).unwrap();
    let mls_secret = SignatureSecretKey::new(vec![0x33; 32]);
    let crypto = DoorlessCrypto::new(&mut ChaCha20Rng::from_seed([0; 32]));
    let suite = crypto.cipher_suite_provider(SUITE).unwrap();
    let mls_public: SignaturePublicKey = suite.signature_key_derive_public(&mls_secret).unwrap();
    let credential = DoorlessCredential::issue(&identity, &mls_public);
    let mut signed = CREDENTIAL_SIGNATURE_CONTEXT.to_vec();
    signed.extend_from_slice(&[0x00, 0x03, 0x20]);
    signed.extend_from_slice(mls_public.as_bytes());

    let generated = serde_json::to_string_pretty(&serde_json::json!({
        "description": "Doorless group credential v1 (docs/groups.md §2); produced by client-wasm/tests/groups.rs",
        "identity_stored": hex::encode(&identity_bytes),
        "identity_public": hex::encode(identity.public().to_bytes()),
        "mls_signature_seed": hex::encode(mls_secret.as_bytes()),
        "mls_signature_public": hex::encode(mls_public.as_bytes()),
        "signed_message": hex::encode(&signed),
        "credential": hex::encode(credential.to_bytes()),
        "credential_type": 0xF0D1,
    }))
    .unwrap()
        + "\n";
    if std::env::var_os("DOORLESS_WRITE_VECTORS").is_some() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/test-vectors/groups-credential-v1.json");
        std::fs::write(path, &generated).unwrap();
    }
    assert_eq!(generated, VECTOR, "rerun with DOORLESS_WRITE_VECTORS=1 after an intentional change");

    // The signature in the credential is the identity key's Ed25519 signature of `signed`.
    let decoded = DoorlessCredential::from_bytes(&credential.to_bytes()).unwrap();
    decoded.verify(&mls_public).unwrap();
    let signature: [u8; 64] = credential.to_bytes()[130..].try_into().unwrap();
    let key = ed25519_dalek::VerifyingKey::from_bytes(identity.public().ed25519()).unwrap();
    key.verify_strict(&signed, &ed25519_dalek::Signature::from_bytes(&signature)).unwrap();
}
