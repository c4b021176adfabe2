//! The RFC 9420 interoperability vectors (suite 3 cases, `tests/vectors/mls/`) and the RFC 9180
//! HPKE vector of the suite's HPKE, run through our crypto provider (`client_wasm::groups::provider`).
//!
//! - crypto-basics, key-schedule, secret-tree, welcome, tree-math, message-protection (the
//!   PrivateMessage forms): the MLS derivations and framing written out here (RFC 9420 §5, §6, §8,
//!   §9, §12.4.3) on top of the provider's KDF, hash, AEAD, signature and HPKE, since mls-rs keeps
//!   its own versions of them private;
//! - passive-client-welcome and passive-client-handling-commit: mls-rs itself, on our provider,
//!   joins from each Welcome and follows each Commit, and must reach the published epoch
//!   authenticators.
//!
//! Not run: the PublicMessage forms of message-protection (Doorless refuses PublicMessages) and
//! treekem, which needs mls-rs internals (an UpdatePath against a given tree) that its public API
//! does not offer; its paths are exercised by the passive-client cases and `tests/groups.rs`.

use client_wasm::groups::DoorlessCrypto;
use client_wasm::groups::provider::{GroupRng, suite_hpke};
use mls_rs::client_builder::MlsConfig;
use mls_rs::identity::basic::BasicIdentityProvider;
use mls_rs::mls_rs_codec::MlsEncode;
use mls_rs::psk::ExternalPskId;
use mls_rs::storage_provider::KeyPackageData;
use mls_rs::{CipherSuiteProvider, Client, CryptoProvider, MlsMessage};
use mls_rs_core::crypto::{
    HpkeCiphertext, HpkeContextR, HpkePublicKey, HpkeSecretKey, SignaturePublicKey, SignatureSecretKey,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde_json::Value;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

fn vectors(name: &str) -> Vec<Value> {
    // Compiled in, so that the same tests run in headless Chrome.
    let text = match name {
        "crypto-basics" => include_str!("vectors/mls/crypto-basics.json"),
        "key-schedule" => include_str!("vectors/mls/key-schedule.json"),
        "secret-tree" => include_str!("vectors/mls/secret-tree.json"),
        "welcome" => include_str!("vectors/mls/welcome.json"),
        "message-protection" => include_str!("vectors/mls/message-protection.json"),
        "tree-math" => include_str!("vectors/mls/tree-math.json"),
        "passive-client-welcome" => include_str!("vectors/mls/passive-client-welcome.json"),
        "passive-client-handling-commit" => include_str!("vectors/mls/passive-client-handling-commit.json"),
        _ => panic!("unknown vector file {name}"),
    };
    let cases: Vec<Value> = serde_json::from_str(text).unwrap();
    let cases: Vec<Value> =
        cases.into_iter().filter(|c| c.get("cipher_suite").is_none_or(|s| s == 3)).collect();
    assert!(!cases.is_empty(), "{name}: no suite-3 case");
    cases
}

fn h(value: &Value, key: &str) -> Vec<u8> {
    hex::decode(value[key].as_str().unwrap_or_else(|| panic!("{key} missing"))).unwrap()
}

fn n(value: &Value, key: &str) -> u64 {
    value[key].as_u64().unwrap_or_else(|| panic!("{key} missing"))
}

fn crypto() -> DoorlessCrypto {
    DoorlessCrypto::new(&mut ChaCha20Rng::from_seed([9; 32]))
}

fn suite() -> impl CipherSuiteProvider {
    crypto().cipher_suite_provider(client_wasm::groups::SUITE).unwrap()
}

// --- RFC 9420 encodings and derivations, on the provider -------------------------------------

/// `opaque data<V>`: a QUIC variable-length integer length, then the bytes (RFC 9420 §2.1.2).
fn vec_v(out: &mut Vec<u8>, data: &[u8]) {
    let len = data.len() as u64;
    if len < 1 << 6 {
        out.push(len as u8);
    } else if len < 1 << 14 {
        out.extend_from_slice(&((len as u16) | 0x4000).to_be_bytes());
    } else {
        out.extend_from_slice(&((len as u32) | 0x8000_0000).to_be_bytes());
    }
    out.extend_from_slice(data);
}

fn labeled(label: &str, context: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    vec_v(&mut out, format!("MLS 1.0 {label}").as_bytes());
    vec_v(&mut out, context);
    out
}

fn expand_with_label<P: CipherSuiteProvider>(
    cs: &P,
    secret: &[u8],
    label: &str,
    context: &[u8],
    len: usize,
) -> Vec<u8> {
    let mut info = (len as u16).to_be_bytes().to_vec();
    info.extend_from_slice(&labeled(label, context));
    cs.kdf_expand(secret, &info, len).unwrap().to_vec()
}

fn derive_secret<P: CipherSuiteProvider>(cs: &P, secret: &[u8], label: &str) -> Vec<u8> {
    expand_with_label(cs, secret, label, &[], cs.kdf_extract_size())
}

fn derive_tree_secret<P: CipherSuiteProvider>(
    cs: &P,
    secret: &[u8],
    label: &str,
    generation: u32,
    len: usize,
) -> Vec<u8> {
    expand_with_label(cs, secret, label, &generation.to_be_bytes(), len)
}

fn ref_hash<P: CipherSuiteProvider>(cs: &P, label: &[u8], value: &[u8]) -> Vec<u8> {
    let mut input = Vec::new();
    vec_v(&mut input, label);
    vec_v(&mut input, value);
    cs.hash(&input).unwrap()
}

fn extract<P: CipherSuiteProvider>(cs: &P, salt: &[u8], ikm: &[u8]) -> Vec<u8> {
    cs.kdf_extract(salt, ikm).unwrap().to_vec()
}

// --- RFC 9180 ---------------------------------------------------------------------------------

/// RFC 9180 A.2.1: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20Poly1305, base mode.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn rfc9180_a_2_1_base_mode() {
    let hx = |s: &str| hex::decode(s).unwrap();
    let info = hx("4f6465206f6e2061204772656369616e2055726e");
    let ikm_r = hx("1ac01f181fdf9f352797655161c58b75c656a6cc2716dcb66372da835542e1df");
    let pk_rm = hx("4310ee97d88cc1f088a5576c77ab0cf5c3ac797f3d95139c6c84b5429c59662a");
    let sk_rm = hx("8057991eef8f1f1af18f4a9491d16a1ce333f695d4db8e38da75975c4478e0fb");
    let ikm_e = hx("909a9b35d3dc4713a5e72a4da274b55d3d3821a37e5d099e74a647db583a904b");
    let sk_em = hx("f4ec9b33b792c372c1d2c2063507b684ef925b8c75a42dbcbf57d63ccd381600");
    let enc = hx("1afa08d3dec047a643885163f1180476fa7ddb54c6a8029ea33f95796bf2ac4a");
    let pt = hx("4265617574792069732074727574682c20747275746820626561757479");
    let aad0 = hx("436f756e742d30");
    let ct0 =
        hx("1c5250d8034ec2b784ba2cfd69dbdb8af406cfe3ff938e131f0def8c8b60b4db21993c62ce81883d2dd1b51a28");
    let exported = hx("5acb09211139c43b3090489a9da433e8a30ee7188ba8b0a9a1ccf0c229283e53");

    // DeriveKeyPair, for the recipient's and the sender's ephemeral key (the ephemeral key of a
    // seal comes from the provider's random stream, so the sender side is checked through it).
    let hpke = suite_hpke(GroupRng::from_rng(&mut ChaCha20Rng::from_seed([3; 32])));
    let (sk, pk) = hpke.derive(&ikm_r).unwrap();
    assert_eq!((sk.to_vec(), pk.to_vec()), (sk_rm.clone(), pk_rm.clone()));
    let (sk_e, pk_e) = hpke.derive(&ikm_e).unwrap();
    assert_eq!((sk_e.to_vec(), pk_e.to_vec()), (sk_em, enc.clone()));

    // Receiver.
    let (sk_rm, pk_rm) = (HpkeSecretKey::from(sk_rm), HpkePublicKey::from(pk_rm));
    let mut ctx = hpke.setup_receiver(&enc, &sk_rm, &pk_rm, &info, None).unwrap();
    assert_eq!(ctx.open(Some(&aad0), &ct0).unwrap().to_vec(), pt);
    assert_eq!(ctx.export(b"TestContext", 32).unwrap().to_vec(), exported);
    // A second open with the same sequence number fails (the nonce moved on).
    assert!(ctx.open(Some(&aad0), &ct0).is_err());

    // A seal with a fresh ephemeral key opens with the recipient's key.
    let sealed = hpke.seal(&pk_rm, &info, None, Some(&aad0), &pt).unwrap();
    assert_ne!(sealed.kem_output, enc);
    assert_eq!(hpke.open(&sealed, &sk_rm, &pk_rm, &info, None, Some(&aad0)).unwrap().to_vec(), pt);
}

// --- RFC 9420 vectors -----------------------------------------------------------------------

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn crypto_basics() {
    let cs = suite();
    for case in vectors("crypto-basics") {
        let v = &case["ref_hash"];
        assert_eq!(ref_hash(&cs, v["label"].as_str().unwrap().as_bytes(), &h(v, "value")), h(v, "out"));

        let v = &case["expand_with_label"];
        let out = expand_with_label(
            &cs,
            &h(v, "secret"),
            v["label"].as_str().unwrap(),
            &h(v, "context"),
            n(v, "length") as usize,
        );
        assert_eq!(out, h(v, "out"));

        let v = &case["derive_secret"];
        assert_eq!(derive_secret(&cs, &h(v, "secret"), v["label"].as_str().unwrap()), h(v, "out"));

        let v = &case["derive_tree_secret"];
        let out = derive_tree_secret(
            &cs,
            &h(v, "secret"),
            v["label"].as_str().unwrap(),
            n(v, "generation") as u32,
            n(v, "length") as usize,
        );
        assert_eq!(out, h(v, "out"));

        let v = &case["sign_with_label"];
        let content = labeled(v["label"].as_str().unwrap(), &h(v, "content"));
        let (private, public) = (SignatureSecretKey::new(h(v, "priv")), SignaturePublicKey::new(h(v, "pub")));
        assert_eq!(cs.signature_key_derive_public(&private).unwrap(), public);
        // Ed25519 is deterministic: our signature is the vector's, and the vector's verifies.
        assert_eq!(cs.sign(&private, &content).unwrap(), h(v, "signature"));
        cs.verify(&public, &h(v, "signature"), &content).unwrap();
        let mut bad = h(v, "signature");
        bad[0] ^= 1;
        assert!(cs.verify(&public, &bad, &content).is_err());

        let v = &case["encrypt_with_label"];
        let info = labeled(v["label"].as_str().unwrap(), &h(v, "context"));
        let (private, public) = (HpkeSecretKey::from(h(v, "priv")), HpkePublicKey::from(h(v, "pub")));
        let ciphertext = HpkeCiphertext { kem_output: h(v, "kem_output"), ciphertext: h(v, "ciphertext") };
        assert_eq!(
            cs.hpke_open(&ciphertext, &private, &public, &info, None).unwrap().to_vec(),
            h(v, "plaintext")
        );
        let sealed = cs.hpke_seal(&public, &info, None, &h(v, "plaintext")).unwrap();
        assert_eq!(
            cs.hpke_open(&sealed, &private, &public, &info, None).unwrap().to_vec(),
            h(v, "plaintext")
        );
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn key_schedule() {
    let cs = suite();
    let nh = cs.kdf_extract_size();
    for case in vectors("key-schedule") {
        let mut init_secret = h(&case, "initial_init_secret");
        for epoch in case["epochs"].as_array().unwrap() {
            let context = h(epoch, "group_context");
            let joiner = expand_with_label(
                &cs,
                &extract(&cs, &init_secret, &h(epoch, "commit_secret")),
                "joiner",
                &context,
                nh,
            );
            assert_eq!(joiner, h(epoch, "joiner_secret"));
            let member = extract(&cs, &joiner, &h(epoch, "psk_secret"));
            assert_eq!(derive_secret(&cs, &member, "welcome"), h(epoch, "welcome_secret"));
            let epoch_secret = expand_with_label(&cs, &member, "epoch", &context, nh);
            for (label, key) in [
                ("sender data", "sender_data_secret"),
                ("encryption", "encryption_secret"),
                ("exporter", "exporter_secret"),
                ("external", "external_secret"),
                ("confirm", "confirmation_key"),
                ("membership", "membership_key"),
                ("resumption", "resumption_psk"),
                ("authentication", "epoch_authenticator"),
            ] {
                assert_eq!(derive_secret(&cs, &epoch_secret, label), h(epoch, key), "{key}");
            }
            // The external key pair is HPKE's DeriveKeyPair of the external secret.
            let (_, external_pub) = cs.kem_derive(&h(epoch, "external_secret")).unwrap();
            assert_eq!(external_pub.to_vec(), h(epoch, "external_pub"));

            let exporter = &epoch["exporter"];
            let secret =
                derive_secret(&cs, &h(epoch, "exporter_secret"), exporter["label"].as_str().unwrap());
            let context_hash = cs.hash(&h(exporter, "context")).unwrap();
            let exported =
                expand_with_label(&cs, &secret, "exported", &context_hash, n(exporter, "length") as usize);
            assert_eq!(exported, h(exporter, "secret"));

            init_secret = derive_secret(&cs, &epoch_secret, "init");
            assert_eq!(init_secret, h(epoch, "init_secret"));
        }
    }
}

// Tree math of RFC 9420 §4.1.1 (array representation), for the secret tree.
fn level(x: u64) -> u32 {
    x.trailing_ones()
}

fn root(n_leaves: u64) -> u64 {
    let width = 2 * n_leaves - 1;
    (1 << (63 - width.leading_zeros())) - 1
}

fn left(x: u64) -> Option<u64> {
    let k = level(x);
    (k > 0).then(|| x ^ (1 << (k - 1)))
}

fn right(x: u64) -> Option<u64> {
    let k = level(x);
    (k > 0).then(|| x ^ (3 << (k - 1)))
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn tree_math() {
    for case in vectors("tree-math") {
        let n_leaves = n(&case, "n_leaves");
        assert_eq!(root(n_leaves), n(&case, "root"));
        for (x, (l, r)) in
            case["left"].as_array().unwrap().iter().zip(case["right"].as_array().unwrap()).enumerate()
        {
            assert_eq!(left(x as u64), l.as_u64(), "left({x})");
            // Within a tree that is not full, the right child may lie beyond the nodes: the vector
            // gives the in-tree right child, which this helper is used for only in full trees.
            if r.as_u64().is_some() && (n_leaves & (n_leaves - 1)) == 0 {
                assert_eq!(right(x as u64), r.as_u64(), "right({x})");
            }
        }
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn secret_tree() {
    let cs = suite();
    let (nh, nk, nn) = (cs.kdf_extract_size(), cs.aead_key_size(), cs.aead_nonce_size());
    for case in vectors("secret-tree") {
        let sender_data = &case["sender_data"];
        let sample = &h(sender_data, "ciphertext")[..nh];
        let secret = h(sender_data, "sender_data_secret");
        assert_eq!(expand_with_label(&cs, &secret, "key", sample, nk), h(sender_data, "key"));
        assert_eq!(expand_with_label(&cs, &secret, "nonce", sample, nn), h(sender_data, "nonce"));

        let leaves = case["leaves"].as_array().unwrap();
        let n_leaves = leaves.len() as u64;
        assert!(n_leaves.is_power_of_two());
        let encryption_secret = h(&case, "encryption_secret");
        for (leaf, expected) in leaves.iter().enumerate() {
            // Walk from the root to the leaf's node (2 * leaf), deriving "left"/"right" secrets.
            let target = 2 * leaf as u64;
            let (mut node, mut secret) = (root(n_leaves), encryption_secret.clone());
            while node != target {
                let (child, side) = if target < node {
                    (left(node).unwrap(), "left")
                } else {
                    (right(node).unwrap(), "right")
                };
                secret = expand_with_label(&cs, &secret, "tree", side.as_bytes(), nh);
                node = child;
            }
            for kind in ["handshake", "application"] {
                let mut ratchet = expand_with_label(&cs, &secret, kind, &[], nh);
                let mut generation = 0u32;
                for step in expected.as_array().unwrap() {
                    let wanted = n(step, "generation") as u32;
                    while generation < wanted {
                        ratchet = derive_tree_secret(&cs, &ratchet, "secret", generation, nh);
                        generation += 1;
                    }
                    assert_eq!(
                        derive_tree_secret(&cs, &ratchet, "key", generation, nk),
                        h(step, &format!("{kind}_key"))
                    );
                    assert_eq!(
                        derive_tree_secret(&cs, &ratchet, "nonce", generation, nn),
                        h(step, &format!("{kind}_nonce"))
                    );
                }
            }
        }
    }
}

/// A reader of the TLS presentation language as MLS uses it.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> &'a [u8] {
        let (head, tail) = self.0.split_at(len);
        self.0 = tail;
        head
    }
    fn varint(&mut self) -> usize {
        let first = self.0[0];
        match first >> 6 {
            0 => self.take(1)[0] as usize,
            1 => (u16::from_be_bytes(self.take(2).try_into().unwrap()) & 0x3fff) as usize,
            2 => (u32::from_be_bytes(self.take(4).try_into().unwrap()) & 0x3fff_ffff) as usize,
            _ => panic!("invalid varint"),
        }
    }
    fn vec_v(&mut self) -> &'a [u8] {
        let len = self.varint();
        self.take(len)
    }
}

/// The Welcome vector: the group secrets decrypt with the init key, the GroupInfo decrypts under
/// the welcome secret, its signature verifies under the signer's key and its confirmation tag
/// under the epoch's confirmation key (RFC 9420 §12.4.3.1).
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn welcome() {
    let cs = suite();
    let nh = cs.kdf_extract_size();
    for case in vectors("welcome") {
        // MLSMessage: version(2) wire_format(2) Welcome.
        let message = h(&case, "welcome");
        let mut r = Reader(&message);
        assert_eq!(r.take(4), [0, 1, 0, 3]);
        assert_eq!(r.take(2), [0, 3], "cipher suite");
        let mut secrets = Reader(r.vec_v());
        let encrypted_group_info = r.vec_v();
        assert!(r.0.is_empty());

        let key_package =
            MlsMessage::from_bytes(&h(&case, "key_package")).unwrap().into_key_package().unwrap();
        let key_package_ref =
            ref_hash(&cs, b"MLS 1.0 KeyPackage Reference", &key_package.mls_encode_to_vec().unwrap());
        let new_member = secrets.vec_v();
        assert_eq!(new_member, key_package_ref);
        let ciphertext =
            HpkeCiphertext { kem_output: secrets.vec_v().to_vec(), ciphertext: secrets.vec_v().to_vec() };
        let init_priv = HpkeSecretKey::from(h(&case, "init_priv"));
        let init_pub = HpkePublicKey::from(key_package.hpke_init_key.to_vec());
        let info = labeled("Welcome", encrypted_group_info);
        let group_secrets = cs.hpke_open(&ciphertext, &init_priv, &init_pub, &info, None).unwrap();
        let joiner_secret = Reader(&group_secrets).vec_v().to_vec();

        // No PSKs in this case: psk_secret is Nh zero bytes.
        let member = extract(&cs, &joiner_secret, &vec![0; nh]);
        let welcome_secret = derive_secret(&cs, &member, "welcome");
        let key = expand_with_label(&cs, &welcome_secret, "key", &[], cs.aead_key_size());
        let nonce = expand_with_label(&cs, &welcome_secret, "nonce", &[], cs.aead_nonce_size());
        let group_info = cs.aead_open(&key, encrypted_group_info, None, &nonce).unwrap();

        // GroupInfo: GroupContext, extensions<V>, confirmation_tag<V>, signer(4), signature<V>.
        let mut r = Reader(&group_info);
        let context_start = r.0;
        r.take(4); // version, cipher suite
        r.vec_v(); // group id
        r.take(8); // epoch
        r.vec_v(); // tree hash
        let confirmed_transcript_hash = r.vec_v();
        r.vec_v(); // extensions
        let context = &context_start[..context_start.len() - r.0.len()];
        r.vec_v(); // GroupInfo extensions
        let confirmation_tag = r.vec_v();
        r.take(4); // signer
        let tbs = &group_info[..group_info.len() - r.0.len()];
        let signature = r.vec_v();
        assert!(r.0.is_empty());

        let signer = SignaturePublicKey::new(h(&case, "signer_pub"));
        cs.verify(&signer, signature, &labeled("GroupInfoTBS", tbs)).unwrap();
        let epoch_secret = expand_with_label(&cs, &member, "epoch", context, nh);
        let confirmation_key = derive_secret(&cs, &epoch_secret, "confirm");
        assert_eq!(cs.mac(&confirmation_key, confirmed_transcript_hash).unwrap(), confirmation_tag);
    }
}

/// Message protection, PrivateMessage forms: with the vector's epoch secrets and a secret tree of
/// two members, sender leaf 1, each message decrypts (sender data, then content) to the expected
/// content, its reuse guard applied, and its signature verifies over FramedContentTBS with the
/// group context (RFC 9420 §6.1, §6.3).
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn message_protection_private() {
    let cs = suite();
    let (nh, nk, nn) = (cs.kdf_extract_size(), cs.aead_key_size(), cs.aead_nonce_size());
    for case in vectors("message-protection") {
        let group_id = h(&case, "group_id");
        let epoch = n(&case, "epoch");
        let mut context = vec![0, 1, 0, 3];
        vec_v(&mut context, &group_id);
        context.extend_from_slice(&epoch.to_be_bytes());
        vec_v(&mut context, &h(&case, "tree_hash"));
        vec_v(&mut context, &h(&case, "confirmed_transcript_hash"));
        vec_v(&mut context, &[]);
        let signature_pub = SignaturePublicKey::new(h(&case, "signature_pub"));
        // Leaf 1 of two is node 2, the right child of the root (node 1).
        let leaf_secret = expand_with_label(&cs, &h(&case, "encryption_secret"), "tree", b"right", nh);

        let mut app_content = Vec::new();
        vec_v(&mut app_content, &h(&case, "application"));
        for (name, content_type, content) in [
            ("application_priv", 1u8, app_content),
            ("proposal_priv", 2, h(&case, "proposal")),
            ("commit_priv", 3, h(&case, "commit")),
        ] {
            let message = h(&case, name);
            let mut r = Reader(&message);
            assert_eq!(r.take(4), [0, 1, 0, 2], "{name}: MLS 1.0 PrivateMessage");
            assert_eq!(r.vec_v(), group_id);
            assert_eq!(u64::from_be_bytes(r.take(8).try_into().unwrap()), epoch);
            assert_eq!(r.take(1), [content_type]);
            let authenticated_data = r.vec_v();
            let encrypted_sender_data = r.vec_v();
            let ciphertext = r.vec_v();
            assert!(r.0.is_empty());

            // Sender data.
            let sample = &ciphertext[..nh.min(ciphertext.len())];
            let secret = h(&case, "sender_data_secret");
            let key = expand_with_label(&cs, &secret, "key", sample, nk);
            let nonce = expand_with_label(&cs, &secret, "nonce", sample, nn);
            // SenderDataAAD is the start of PrivateContentAAD.
            let mut aad = Vec::new();
            vec_v(&mut aad, &group_id);
            aad.extend_from_slice(&epoch.to_be_bytes());
            aad.push(content_type);
            let sender_data = cs.aead_open(&key, encrypted_sender_data, Some(&aad), &nonce).unwrap();
            assert_eq!(sender_data.len(), 12);
            assert_eq!(sender_data[..4], 1u32.to_be_bytes(), "{name}: sender leaf 1");
            let generation = u32::from_be_bytes(sender_data[4..8].try_into().unwrap());
            let reuse_guard = &sender_data[8..12];

            // Content key of the sender's handshake or application ratchet at that generation.
            let kind = if content_type == 1 { "application" } else { "handshake" };
            let mut ratchet = expand_with_label(&cs, &leaf_secret, kind, &[], nh);
            for g in 0..generation {
                ratchet = derive_tree_secret(&cs, &ratchet, "secret", g, nh);
            }
            let key = derive_tree_secret(&cs, &ratchet, "key", generation, nk);
            let mut nonce = derive_tree_secret(&cs, &ratchet, "nonce", generation, nn);
            for (n, g) in nonce.iter_mut().zip(reuse_guard) {
                *n ^= g;
            }
            vec_v(&mut aad, authenticated_data);
            let plaintext = cs.aead_open(&key, ciphertext, Some(&aad), &nonce).unwrap();

            // PrivateMessageContent: content, signature<V>, [confirmation_tag<V>], zero padding.
            assert_eq!(&plaintext[..content.len()], content, "{name}: content");
            let mut r = Reader(&plaintext[content.len()..]);
            let signature = r.vec_v();
            if content_type == 3 {
                assert_eq!(r.vec_v().len(), nh, "{name}: confirmation tag");
            }
            assert!(r.0.iter().all(|&b| b == 0), "{name}: padding");

            // FramedContentTBS: version, wire format, FramedContent, GroupContext (member sender).
            let mut tbs = vec![0, 1, 0, 2];
            vec_v(&mut tbs, &group_id);
            tbs.extend_from_slice(&epoch.to_be_bytes());
            tbs.push(1); // sender type: member
            tbs.extend_from_slice(&1u32.to_be_bytes());
            vec_v(&mut tbs, authenticated_data);
            tbs.push(content_type);
            tbs.extend_from_slice(&content);
            tbs.extend_from_slice(&context);
            cs.verify(&signature_pub, signature, &labeled("FramedContentTBS", &tbs)).unwrap();
        }
    }
}

// --- Passive clients: mls-rs on our provider --------------------------------------------------

fn passive_client(case: &Value) -> Client<impl MlsConfig> {
    let cs = suite();
    let key_package_message = MlsMessage::from_bytes(&h(case, "key_package")).unwrap();
    let key_package = key_package_message.into_key_package().unwrap();
    let key_package_bytes = key_package.mls_encode_to_vec().unwrap();
    let reference = ref_hash(&cs, b"MLS 1.0 KeyPackage Reference", &key_package_bytes);

    let mut builder = Client::builder()
        .crypto_provider(crypto())
        .identity_provider(BasicIdentityProvider)
        .signer(SignatureSecretKey::new(h(case, "signature_priv")));
    for psk in case["external_psks"].as_array().unwrap() {
        builder = builder.psk(ExternalPskId::new(h(psk, "psk_id")), h(psk, "psk").into());
    }
    let client = builder.build();
    client.key_package_store().insert(
        reference,
        KeyPackageData::new(
            key_package_bytes,
            HpkeSecretKey::from(h(case, "init_priv")),
            HpkeSecretKey::from(h(case, "encryption_priv")),
            u64::MAX,
        ),
    );
    client
}

fn run_passive(name: &str) -> usize {
    let mut epochs = 0;
    for (i, case) in vectors(name).iter().enumerate() {
        let client = passive_client(case);
        let tree = case["ratchet_tree"].as_str().map(|t| hex::decode(t).unwrap());
        let tree = tree.as_deref().map(|t| mls_rs::group::ExportedTree::from_bytes(t).unwrap());
        let welcome = MlsMessage::from_bytes(&h(case, "welcome")).unwrap();
        let (mut group, _) = client
            .join_group(tree, &welcome, None)
            .unwrap_or_else(|e| panic!("{name} case {i}: join: {e:?}"));
        assert_eq!(
            group.epoch_authenticator().unwrap().to_vec(),
            h(case, "initial_epoch_authenticator"),
            "{name} case {i}"
        );
        for (e, epoch) in case["epochs"].as_array().unwrap().iter().enumerate() {
            for proposal in epoch["proposals"].as_array().unwrap() {
                let proposal =
                    MlsMessage::from_bytes(&hex::decode(proposal.as_str().unwrap()).unwrap()).unwrap();
                group
                    .process_incoming_message(proposal)
                    .unwrap_or_else(|err| panic!("{name} case {i} epoch {e}: proposal: {err:?}"));
            }
            let commit = MlsMessage::from_bytes(&h(epoch, "commit")).unwrap();
            group
                .process_incoming_message(commit)
                .unwrap_or_else(|err| panic!("{name} case {i} epoch {e}: commit: {err:?}"));
            assert_eq!(
                group.epoch_authenticator().unwrap().to_vec(),
                h(epoch, "epoch_authenticator"),
                "{name} case {i} epoch {e}"
            );
            epochs += 1;
        }
    }
    epochs
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn passive_client_welcome() {
    run_passive("passive-client-welcome");
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn passive_client_handling_commit() {
    assert!(run_passive("passive-client-handling-commit") > 0);
}
