//! The browser vault in a real browser (IndexedDB and WebCrypto): records round-trip, a save
//! replaces only what it names, and a record moved to another name does not decrypt.
#![cfg(target_arch = "wasm32")]

use client_wasm::browser::{StorageError, Vault};
use idb::{Factory, TransactionMode};
use wasm_bindgen::JsValue;
use wasm_bindgen_test::wasm_bindgen_test;
use zeroize::Zeroizing;

wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

fn records(pairs: &[(&str, &[u8])]) -> Vec<(String, Zeroizing<Vec<u8>>)> {
    pairs.iter().map(|(n, b)| ((*n).to_owned(), Zeroizing::new(b.to_vec()))).collect()
}

fn plain(loaded: &[(String, Zeroizing<Vec<u8>>)]) -> Vec<(String, Vec<u8>)> {
    loaded.iter().map(|(n, b)| (n.clone(), b.to_vec())).collect()
}

/// The raw (encrypted) stored value of a record, written back under another name.
async fn move_record(from: &str, to: &str) {
    let db = Factory::new().unwrap().open("doorless", None).unwrap().await.unwrap();
    let tx = db.transaction(&["kv"], TransactionMode::ReadWrite).unwrap();
    let store = tx.object_store("kv").unwrap();
    let value = store.get(JsValue::from_str(from)).unwrap().await.unwrap().unwrap();
    store.put(&value, Some(&JsValue::from_str(to))).unwrap();
    tx.await.unwrap();
    db.close();
}

/// Writes a record as the previous release did: the whole snapshot under `state`, sealed with the
/// profile's key and no additional data.
async fn put_legacy_record(plain: &[u8]) {
    use wasm_bindgen::JsCast;
    let db = Factory::new().unwrap().open("doorless", None).unwrap().await.unwrap();
    let tx = db.transaction(&["kv"], TransactionMode::ReadOnly).unwrap();
    let key: web_sys::CryptoKey = tx
        .object_store("kv")
        .unwrap()
        .get(JsValue::from_str("key"))
        .unwrap()
        .await
        .unwrap()
        .unwrap()
        .unchecked_into();
    let nonce = [7u8; 12];
    let params = web_sys::AesGcmParams::new("AES-GCM", &js_sys::Uint8Array::from(&nonce[..]));
    let subtle = web_sys::window().unwrap().crypto().unwrap().subtle();
    let promise = subtle.encrypt_with_object_and_u8_array(&params, &key, plain).unwrap();
    let ciphertext =
        js_sys::Uint8Array::new(&wasm_bindgen_futures::JsFuture::from(promise).await.unwrap()).to_vec();
    let record = js_sys::Uint8Array::from(&[&nonce[..], &ciphertext].concat()[..]);
    let tx = db.transaction(&["kv"], TransactionMode::ReadWrite).unwrap();
    tx.object_store("kv").unwrap().put(&record, Some(&JsValue::from_str("state"))).unwrap();
    tx.await.unwrap();
    db.close();
}

#[wasm_bindgen_test]
async fn the_record_of_the_previous_release_is_read_then_replaced() {
    Vault::open().await.unwrap().wipe().await.unwrap();
    drop(Vault::open().await.unwrap());
    put_legacy_record(b"old snapshot").await;
    let vault = Vault::open().await.unwrap();
    assert_eq!(plain(&vault.load().await.unwrap()), vec![("state".to_owned(), b"old snapshot".to_vec())]);
    vault.save(records(&[("profile", b"new")]), &[]).await.unwrap();
    assert_eq!(
        plain(&Vault::open().await.unwrap().load().await.unwrap()),
        vec![("profile".to_owned(), b"new".to_vec())],
        "the first save in the current format removes the old record"
    );
    vault.wipe().await.unwrap();
}

#[wasm_bindgen_test]
async fn a_save_deletes_the_records_it_names_before_writing() {
    let vault = Vault::open().await.unwrap();
    vault.wipe().await.unwrap();
    let vault = Vault::open().await.unwrap();
    let (chunk0, chunk1) = ("log/00000001/00000000", "log/00000001/00000001");
    vault.save(records(&[("profile", b"p1"), (chunk0, b"old 0"), (chunk1, b"old 1")]), &[]).await.unwrap();
    // A cleared conversation that goes on: both chunks deleted, chunk 0 written again.
    let deleted = [chunk0.to_owned(), chunk1.to_owned()];
    vault.save(records(&[("profile", b"p2"), (chunk0, b"new 0")]), &deleted).await.unwrap();
    assert_eq!(
        plain(&Vault::open().await.unwrap().load().await.unwrap()),
        vec![(chunk0.to_owned(), b"new 0".to_vec()), ("profile".to_owned(), b"p2".to_vec())]
    );
    vault.wipe().await.unwrap();
}

#[wasm_bindgen_test]
async fn records_round_trip_and_are_bound_to_their_names() {
    let vault = Vault::open().await.unwrap();
    vault.wipe().await.unwrap();
    let vault = Vault::open().await.unwrap();
    assert!(vault.load().await.unwrap().is_empty(), "a new profile has no records");

    vault.save(records(&[("profile", b"p1"), ("log/00000001/00000000", b"chunk 0")]), &[]).await.unwrap();
    vault.save(records(&[("profile", b"p2"), ("log/00000001/00000001", b"chunk 1")]), &[]).await.unwrap();
    let loaded = Vault::open().await.unwrap().load().await.unwrap();
    assert_eq!(
        plain(&loaded),
        vec![
            ("log/00000001/00000000".to_owned(), b"chunk 0".to_vec()),
            ("log/00000001/00000001".to_owned(), b"chunk 1".to_vec()),
            ("profile".to_owned(), b"p2".to_vec()),
        ],
        "a save replaces what it names and keeps the rest"
    );

    // Someone with access to the profile's storage swaps two chunks: they no longer decrypt.
    move_record("log/00000001/00000001", "log/00000001/00000000").await;
    assert_eq!(Vault::open().await.unwrap().load().await.unwrap_err(), StorageError::Corrupt);

    Vault::open().await.unwrap().wipe().await.unwrap();
    assert!(Vault::open().await.unwrap().load().await.unwrap().is_empty());
}

#[wasm_bindgen::prelude::wasm_bindgen(inline_js = r#"
export function spy_on_transactions() {
  const proto = IDBDatabase.prototype;
  if (!proto.__doorlessOriginal) {
    proto.__doorlessOriginal = proto.transaction;
    proto.transaction = function (stores, mode, options) {
      const tx = proto.__doorlessOriginal.call(this, stores, mode, options);
      if (mode === 'readwrite') globalThis.__doorlessWrites.push(tx.durability ?? 'unsupported');
      return tx;
    };
  }
  globalThis.__doorlessWrites = [];
}
export function write_durabilities() { return globalThis.__doorlessWrites.join(','); }
"#)]
extern "C" {
    fn spy_on_transactions();
    fn write_durabilities() -> String;
}

/// Writes the raw generation record, as an older copy of the profile put back would.
async fn put_generation(value: f64) {
    let db = Factory::new().unwrap().open("doorless", None).unwrap().await.unwrap();
    let tx = db.transaction(&["kv"], TransactionMode::ReadWrite).unwrap();
    tx.object_store("kv")
        .unwrap()
        .put(&JsValue::from_f64(value), Some(&JsValue::from_str("generation")))
        .unwrap();
    tx.await.unwrap();
    db.close();
}

#[wasm_bindgen_test]
async fn every_write_transaction_is_strictly_durable() {
    Vault::open().await.unwrap().wipe().await.unwrap();
    spy_on_transactions();
    // The first open writes the storage key; then a save; then a second save.
    let vault = Vault::open().await.unwrap();
    vault.load().await.unwrap();
    vault.save(records(&[("profile", b"p1")]), &[]).await.unwrap();
    vault.save(records(&[("profile", b"p2")]), &[]).await.unwrap();
    assert_eq!(
        write_durabilities(),
        "strict,strict,strict",
        "each read-write transaction asks for strict durability"
    );
    vault.wipe().await.unwrap();
}

#[wasm_bindgen_test]
async fn a_second_writer_is_refused_and_the_first_one_kept() {
    Vault::open().await.unwrap().wipe().await.unwrap();
    let first = Vault::open().await.unwrap();
    first.load().await.unwrap();
    first.save(records(&[("profile", b"start")]), &[]).await.unwrap();

    // Two tabs (or two engines) read the same stored state.
    let a = Vault::open().await.unwrap();
    let b = Vault::open().await.unwrap();
    a.load().await.unwrap();
    b.load().await.unwrap();
    a.save(records(&[("profile", b"from a")]), &[]).await.unwrap();
    let refused = b.save(records(&[("profile", b"from b")]), &[]).await;
    assert!(refused.is_err(), "a writer that did not see the last save must be refused");
    assert_eq!(refused.unwrap_err(), StorageError::Conflict);
    assert_eq!(
        plain(&Vault::open().await.unwrap().load().await.unwrap()),
        vec![("profile".to_owned(), b"from a".to_vec())],
        "the refused save wrote nothing"
    );
    // The writer that won goes on.
    a.save(records(&[("profile", b"a again")]), &[]).await.unwrap();
    a.wipe().await.unwrap();
}

#[wasm_bindgen_test]
async fn an_older_copy_put_back_under_a_running_tab_is_refused() {
    Vault::open().await.unwrap().wipe().await.unwrap();
    let vault = Vault::open().await.unwrap();
    vault.load().await.unwrap();
    vault.save(records(&[("profile", b"1")]), &[]).await.unwrap();
    vault.save(records(&[("profile", b"2")]), &[]).await.unwrap();
    vault.save(records(&[("profile", b"3")]), &[]).await.unwrap();
    // A backup taken after the first save is restored while the tab runs.
    put_generation(1.0).await;
    assert!(
        vault.save(records(&[("profile", b"4")]), &[]).await.is_err(),
        "the rolled-back store is not written over"
    );
    vault.wipe().await.unwrap();
}

#[wasm_bindgen_test]
async fn a_profile_stored_before_the_counter_opens_and_saves() {
    Vault::open().await.unwrap().wipe().await.unwrap();
    let vault = Vault::open().await.unwrap();
    vault.load().await.unwrap();
    vault.save(records(&[("profile", b"old")]), &[]).await.unwrap();
    // Remove the counter, as a profile saved by the previous release has none.
    let db = Factory::new().unwrap().open("doorless", None).unwrap().await.unwrap();
    let tx = db.transaction(&["kv"], TransactionMode::ReadWrite).unwrap();
    tx.object_store("kv").unwrap().delete(JsValue::from_str("generation")).unwrap();
    tx.await.unwrap();
    db.close();
    let reopened = Vault::open().await.unwrap();
    assert_eq!(plain(&reopened.load().await.unwrap()), vec![("profile".to_owned(), b"old".to_vec())]);
    reopened.save(records(&[("profile", b"new")]), &[]).await.unwrap();
    assert_eq!(
        plain(&Vault::open().await.unwrap().load().await.unwrap()),
        vec![("profile".to_owned(), b"new".to_vec())]
    );
    reopened.wipe().await.unwrap();
}
