//! Known-answer tests: published vectors (RFC 7748, RFC 8439, RFC 5869) through the exact functions the
//! core calls, and hex KATs for every protocol KDF step. The KDF expectations were computed with an
//! independent implementation (Python's `hmac`/`hashlib`), not with this crate.

use client_wasm::core::{IdentityPublic, aead, kdf, safety_number};

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

fn h32(s: &str) -> [u8; 32] {
    hex::decode(s).unwrap().try_into().unwrap()
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn rfc7748_x25519() {
    // Section 5.2, first test vector.
    let out = kdf::x25519(
        &h32("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4"),
        &h32("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c"),
    )
    .unwrap();
    assert_eq!(hex::encode(*out), "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552");

    // Section 6.1: Diffie-Hellman between Alice and Bob.
    let a = h32("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
    let b = h32("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
    let a_pub = kdf::x25519_public(&a);
    let b_pub = kdf::x25519_public(&b);
    assert_eq!(hex::encode(a_pub), "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
    assert_eq!(hex::encode(b_pub), "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
    let k = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";
    assert_eq!(hex::encode(*kdf::x25519(&a, &b_pub).unwrap()), k);
    assert_eq!(hex::encode(*kdf::x25519(&b, &a_pub).unwrap()), k);

    // Low-order points give a non-contributory result, which the core refuses.
    assert!(kdf::x25519(&a, &[0; 32]).is_none());
    let mut one = [0u8; 32];
    one[0] = 1;
    assert!(kdf::x25519(&a, &one).is_none());
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn rfc8439_chacha20_poly1305() {
    // Section 2.8.2.
    let key = h32("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
    let nonce: [u8; 12] = hex::decode("070000004041424344454647").unwrap().try_into().unwrap();
    let aad = hex::decode("50515253c0c1c2c3c4c5c6c7").unwrap();
    let plaintext = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
    let expected = concat!(
        "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6",
        "3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36",
        "92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc",
        "3ff4def08e4b7a9de576d26586cec64b6116",
        "1ae10b594f09e26a7e902ecbd0600691",
    );
    let sealed = aead::seal(&key, &nonce, &aad, plaintext);
    assert_eq!(hex::encode(&sealed), expected);
    assert_eq!(aead::open(&key, &nonce, &aad, &sealed).unwrap(), plaintext);
    let mut tampered = sealed.clone();
    tampered[0] ^= 1;
    assert!(aead::open(&key, &nonce, &aad, &tampered).is_none());
    assert!(aead::open(&key, &nonce, b"other", &sealed).is_none());
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn rfc5869_hkdf_sha256() {
    // Appendix A.1 (test case 1).
    let mut okm = [0u8; 42];
    let salt: Vec<u8> = (0u8..13).collect();
    let info: Vec<u8> = (0xf0u8..0xfa).collect();
    assert!(kdf::hkdf_sha256(&salt, &[0x0b; 22], &[&info[..4], &info[4..]], &mut okm));
    assert_eq!(
        hex::encode(okm),
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    );
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn kat_pqxdh_kdf() {
    let (sk, hka, nhkb) = kdf::pqxdh(&[1; 32], &[2; 32], &[3; 32], &[4; 32], &[5; 32]);
    assert_eq!(hex::encode(*sk), "1960a53c961754a16db78aee79238b101d93286c701667f8b8e10ddcc67b02b9");
    assert_eq!(hex::encode(*hka), "ac99e50b47e35d9c9a9a99f30ceba8675abb8e01185b320ed883acd181e2c6ff");
    assert_eq!(hex::encode(*nhkb), "e97fae00a92b3daae27cac4c9f8bf33ead5ef842b2e3263204e55e042cb7b859");
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn kat_initial_identity_key() {
    let k = kdf::initial_identity_key(&[3; 32], &[4; 32], &[5; 32]);
    assert_eq!(hex::encode(*k), "5ad8dd0fa45b46807b29c37464a26fe6c6388a40c9f6c2250a78975fc0d296fc");
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn kat_root_kdf() {
    let (rk, ck, nhk) = kdf::root(&[0x10; 32], &[0x11; 32]);
    assert_eq!(hex::encode(*rk), "9b60de73b1540d9baa0e0d17027a766a1d9895e29cb741520757d6f8103b5362");
    assert_eq!(hex::encode(*ck), "baf51a83815954c010400d40d05a709dd8ff9dc494429005fb5a9f09c6e7b319");
    assert_eq!(hex::encode(*nhk), "4b17050833266fc2b36e79e1d7833a8545f9cd5d94874444b3d6b1828ce09e30");
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn kat_chain_kdf() {
    let (next, mk) = kdf::chain(&[0x20; 32]);
    assert_eq!(hex::encode(*next), "08eeb2f32ea7fced86c132ad038c449e5a777cd58477fe2384989a4091dc6545");
    assert_eq!(hex::encode(*mk), "f5f5383d5678ae547419696e967d8b77e5f26bd16e5ff5440bba81db1308d3f2");
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn kat_message_keys() {
    let (key, nonce) = kdf::message_keys(&[0x30; 32]);
    assert_eq!(hex::encode(*key), "1b7550ce7a87e7c5f0eb0377fe0f6af8df8ba92ca3bdccae5410910c9ec0d6b6");
    assert_eq!(hex::encode(nonce), "1aa635a86d4f243c0369fef8");
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn kat_message_keys_v2() {
    let (key, nonce) = kdf::message_keys_v2(&[0x30; 32], &[0x31; 12]);
    assert_eq!(hex::encode(*key), "9c0be6b14758003abb8dc325200fcc94fc05174d6e5c2af767fd275ca0fc450d");
    assert_eq!(hex::encode(nonce), "6e0ade223551b29966439d00");
    // The header nonce enters the derivation: another one gives another key and nonce.
    let (other_key, other_nonce) = kdf::message_keys_v2(&[0x30; 32], &[0x32; 12]);
    assert_ne!(*other_key, *key);
    assert_ne!(other_nonce, nonce);
}

/// The safety number's iterated hash ends at h(5199): h0 and 5,199 further SHA-512 rounds, 5,200
/// hashes in all (computed independently with Python's hashlib; h(5200) gives another payload).
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn kat_safety_number_ends_at_h5199() {
    // The identities are those of docs/test-vectors/doorless-v2.json.
    let vectors: serde_json::Value =
        serde_json::from_str(include_str!("../../docs/test-vectors/doorless-v2.json")).unwrap();
    let identity = |who: &str| {
        IdentityPublic::from_bytes(&hex::decode(vectors[who]["identity_public"].as_str().unwrap()).unwrap())
            .unwrap()
    };
    let qr = safety_number(&identity("alice"), &identity("bob")).qr_payload();
    assert_eq!(
        hex::encode(qr),
        concat!(
            "01",
            "36823517ba597fa7fd9261c49666f77d1ac687c2ec4a179ae5c8dd502a8921ea",
            "fbb0a8e82666751a37d35634ff8f5996039633b2dea3cbfdc2495788740665cd",
        )
    );
}
