//! Project Wycheproof vectors (`tests/data/wycheproof/`, see its README) through the exact calls the
//! core makes: `kdf::x25519` (with its contributory check), `aead::{seal, open}`, and the Ed25519
//! verification of `IdentityPublic` (`VerifyingKey::from_bytes`, then `verify_strict`).
//!
//! `result` is honoured: `valid` must pass, `invalid` must fail, and `acceptable` may go either way
//! unless a flag says what the core must do (a low-order X25519 public key, or an all-zero shared
//! secret, must be refused by the contributory check). Vectors the core's API cannot express are
//! skipped with a counted reason, and every file's `numberOfTests` is checked against what ran or
//! was skipped, so nothing is dropped silently.

use client_wasm::core::{aead, kdf};
use ed25519_dalek::{Signature, VerifyingKey};
use serde_json::Value;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

const X25519: &str = include_str!("data/wycheproof/x25519_test.json");
const CHACHA20_POLY1305: &str = include_str!("data/wycheproof/chacha20_poly1305_test.json");
const ED25519: &str = include_str!("data/wycheproof/ed25519_test.json");

fn hex(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex field")).expect("valid hex")
}

fn flags(t: &Value) -> Vec<&str> {
    t["flags"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default()
}

/// Tallies one file's vectors; `finish` checks the total against `numberOfTests`.
#[derive(Default)]
struct Tally {
    passed: usize,
    skipped: Vec<(u64, &'static str)>,
    failures: Vec<String>,
}

impl Tally {
    fn check(&mut self, t: &Value, ok: bool, what: &str) {
        if ok {
            self.passed += 1;
        } else {
            self.failures.push(format!("tcId {} ({}): {what}", t["tcId"], t["comment"]));
        }
    }

    fn finish(self, file: &Value, name: &str) -> (usize, usize) {
        let declared = file["numberOfTests"].as_u64().expect("numberOfTests") as usize;
        let seen = self.passed + self.failures.len() + self.skipped.len();
        assert_eq!(seen, declared, "{name}: numberOfTests is {declared}, {seen} were run or skipped");
        assert!(
            self.failures.is_empty(),
            "{name}: {} failure(s):\n{}",
            self.failures.len(),
            self.failures.join("\n")
        );
        (self.passed, self.skipped.len())
    }
}

fn tests(file: &Value) -> impl Iterator<Item = (&Value, &Value)> {
    file["testGroups"]
        .as_array()
        .expect("testGroups")
        .iter()
        .flat_map(|g| g["tests"].as_array().expect("tests").iter().map(move |t| (g, t)))
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn wycheproof_x25519_through_the_core() {
    let file: Value = serde_json::from_str(X25519).unwrap();
    let mut tally = Tally::default();
    let mut refused_low_order = 0;
    for (_, t) in tests(&file) {
        let private: [u8; 32] = hex(&t["private"]).try_into().unwrap();
        let public: [u8; 32] = hex(&t["public"]).try_into().unwrap();
        let expected = hex(&t["shared"]);
        let got = kdf::x25519(&private, &public);
        let f = flags(t);
        let must_refuse = f.contains(&"LowOrderPublic")
            || f.contains(&"ZeroSharedSecret")
            || expected.iter().all(|b| *b == 0);
        match t["result"].as_str() {
            _ if must_refuse => {
                tally.check(t, got.is_none(), "a low-order key / zero secret was not refused");
                refused_low_order += 1;
            }
            Some("valid") => {
                tally.check(t, got.as_deref().map(|g| &g[..]) == Some(&expected[..]), "wrong shared secret")
            }
            // Twists and non-canonical keys: RFC 7748 computes them; if the core does, it must be right.
            Some("acceptable") => {
                tally.check(t, got.as_ref().is_none_or(|g| g[..] == expected[..]), "wrong shared secret")
            }
            Some("invalid") => tally.check(t, got.is_none(), "an invalid vector was accepted"),
            other => panic!("unknown result {other:?}"),
        }
    }
    assert!(refused_low_order >= 30, "the low-order vectors were not all seen");
    let (passed, skipped) = tally.finish(&file, "x25519_test.json");
    assert_eq!(skipped, 0);
    assert_eq!(passed, 518);
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn wycheproof_chacha20_poly1305_through_the_core() {
    let file: Value = serde_json::from_str(CHACHA20_POLY1305).unwrap();
    let mut tally = Tally::default();
    for (group, t) in tests(&file) {
        // The core's AEAD takes a 32-byte key and a 12-byte nonce by type: other sizes cannot be
        // expressed through its API (they are the `InvalidNonceSize` vectors).
        let iv = hex(&t["iv"]);
        let key = hex(&t["key"]);
        let (Ok(key), Ok(nonce)) = (<[u8; 32]>::try_from(key), <[u8; aead::NONCE_LEN]>::try_from(iv)) else {
            tally.skipped.push((t["tcId"].as_u64().unwrap(), "nonce or key size the core's API cannot take"));
            continue;
        };
        assert_eq!(group["tagSize"], 128);
        let (aad, msg) = (hex(&t["aad"]), hex(&t["msg"]));
        let sealed = [hex(&t["ct"]), hex(&t["tag"])].concat();
        match t["result"].as_str() {
            Some("valid") => {
                tally.check(
                    t,
                    aead::seal(&key, &nonce, &aad, &msg) == sealed
                        && aead::open(&key, &nonce, &aad, &sealed).as_deref() == Some(&msg[..]),
                    "seal or open disagrees",
                );
            }
            Some("invalid") => {
                tally.check(t, aead::open(&key, &nonce, &aad, &sealed).is_none(), "forgery opened")
            }
            other => panic!("unexpected result {other:?}"),
        }
    }
    let skipped_ids: Vec<u64> = tally.skipped.iter().map(|(id, _)| *id).collect();
    let (passed, skipped) = tally.finish(&file, "chacha20_poly1305_test.json");
    // Exactly the nine groups with a nonce that is not 96 bits.
    assert_eq!(skipped, 9, "skipped {skipped_ids:?}");
    assert_eq!(passed, 316);
}

/// The core's signature check, exactly as `IdentityPublic` makes it (that method is crate-private):
/// a key that does not decode fails, and `verify_strict` refuses small-order keys and
/// non-canonical signatures.
fn core_verify(public: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let (Ok(public), Ok(signature)) = (<[u8; 32]>::try_from(public), <[u8; 64]>::try_from(signature)) else {
        // The core's types hold exactly 32 and 64 bytes: anything else never reaches verification.
        return false;
    };
    match VerifyingKey::from_bytes(&public) {
        Ok(key) => key.verify_strict(message, &Signature::from_bytes(&signature)).is_ok(),
        Err(_) => false,
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn wycheproof_ed25519_through_the_core_verification() {
    let file: Value = serde_json::from_str(ED25519).unwrap();
    let mut tally = Tally::default();
    for (group, t) in tests(&file) {
        let public = hex(&group["publicKey"]["pk"]);
        let ok = core_verify(&public, &hex(&t["msg"]), &hex(&t["sig"]));
        match t["result"].as_str() {
            Some("valid") => tally.check(t, ok, "a valid signature was refused"),
            Some("invalid") => tally.check(t, !ok, "an invalid signature was accepted"),
            // None in this file today; either outcome would be allowed, so it is counted as skipped.
            Some("acceptable") => {
                tally.skipped.push((t["tcId"].as_u64().unwrap(), "acceptable: either outcome"))
            }
            other => panic!("unknown result {other:?}"),
        }
    }
    let (passed, skipped) = tally.finish(&file, "ed25519_test.json");
    assert_eq!((passed, skipped), (151, 0));
}
