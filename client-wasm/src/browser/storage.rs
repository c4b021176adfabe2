//! Encrypted persistence in IndexedDB.
//!
//! One database, `doorless`, with one object store, `kv`. The record `key` is a non-extractable
//! AES-256-GCM `CryptoKey` made by WebCrypto in this browser profile: script can use it but never read
//! it, so a copy of the profile's files without the browser's key store is ciphertext. Every other
//! record is one of the engine's named records (see `engine::Records`), encrypted under that key with
//! a fresh random 96-bit nonce per write and its name as additional data (a record moved to another
//! name does not decrypt): `nonce (12) || AES-GCM ciphertext`. A save writes its records in one
//! transaction, so storage holds either all of them or none.
//!
//! The single `state` record of earlier releases was encrypted without additional data; it is still
//! read, and the first save deletes it in the same transaction that writes its replacement.
//!
//! Every write transaction asks for `durability: "strict"`: a save reports success only once the
//! browser has it on disk, so a power cut after a send cannot roll the ratchet back to a state
//! whose next message key the relay has already seen (Chromium 121+, Firefox and Safari default to
//! "relaxed", which reports success before the data is flushed).
//!
//! The record `generation` (a plain number, not secret) counts saves. A vault remembers the
//! generation it read, and a save reads it again inside its own read-write transaction: if it
//! changed, another writer (a second tab running the engine, or an older copy of the profile put
//! back under a running tab) got there first, and the save is refused with
//! [`StorageError::Conflict`] instead of silently forking the ratchet. Profiles stored before the
//! counter existed have no such record and start at 0.

use std::cell::Cell;

use idb::builder::{DatabaseBuilder, ObjectStoreBuilder};
use idb::{Factory, Transaction, TransactionMode};
use js_sys::{Array, Object, Reflect, Uint8Array};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{AesGcmParams, AesKeyGenParams, CryptoKey, IdbDatabase, IdbTransaction, SubtleCrypto};
use zeroize::Zeroizing;

use crate::engine::LEGACY_RECORD;

const DB_NAME: &str = "doorless";
const STORE: &str = "kv";
const KEY_RECORD: &str = "key";
/// The save counter (see the module documentation).
pub const GENERATION_RECORD: &str = "generation";
const NONCE_LEN: usize = 12;
/// Additional data of messages sealed for other tabs; no record name can equal it.
const TAB_MESSAGE_AAD: &[u8] = b"doorless tab message\0";

#[wasm_bindgen]
extern "C" {
    /// `IDBDatabase`, seen through the one method web-sys offers only behind its unstable-API flag.
    #[wasm_bindgen(js_name = IDBDatabase)]
    type DatabaseWithOptions;

    /// `IDBDatabase.transaction(stores, mode, options)`. Browsers that do not know `durability`
    /// ignore it.
    #[wasm_bindgen(method, catch, js_name = transaction)]
    fn transaction_with_options(
        this: &DatabaseWithOptions,
        stores: &Array,
        mode: &str,
        options: &Object,
    ) -> Result<IdbTransaction, JsValue>;
}

/// Why storage failed. Carries no data from the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    /// IndexedDB is not available (private mode in some browsers, or disabled).
    #[error("browser storage is not available")]
    Unavailable,
    /// WebCrypto refused an operation.
    #[error("browser cryptography failed")]
    Crypto,
    /// The stored state does not decrypt under this profile's key.
    #[error("stored data could not be decrypted")]
    Corrupt,
    /// A write failed (the disk may be full); the previous state is still stored.
    #[error("could not save; the previous state is kept")]
    WriteFailed,
    /// Storage was changed by another writer since this vault read it (another tab running the
    /// engine, or an older copy of the profile restored); nothing was written.
    #[error("the stored profile was changed elsewhere; nothing was saved")]
    Conflict,
}

/// Records by name, as the engine writes them and the vault stores them.
pub type NamedRecords = Vec<(String, Zeroizing<Vec<u8>>)>;

/// The encrypted store of one browser profile.
pub struct Vault {
    db: IdbDatabase,
    /// Closes this connection when another one wants to delete or upgrade the database ("Delete
    /// all data" in another tab), which would otherwise wait for this one forever.
    _on_version_change: Closure<dyn FnMut()>,
    key: CryptoKey,
    /// The record of earlier releases is stored (the next save deletes it).
    legacy: Cell<bool>,
    /// The generation this vault last read or wrote; a save expects to find it.
    generation: Cell<u64>,
}

fn subtle() -> Result<SubtleCrypto, StorageError> {
    let global = js_sys::global();
    let crypto =
        js_sys::Reflect::get(&global, &JsValue::from_str("crypto")).map_err(|_| StorageError::Crypto)?;
    let crypto: web_sys::Crypto = crypto.dyn_into().map_err(|_| StorageError::Crypto)?;
    Ok(crypto.subtle())
}

async fn open_db() -> Result<(IdbDatabase, Closure<dyn FnMut()>), StorageError> {
    let db = DatabaseBuilder::new(DB_NAME)
        .version(1)
        .add_object_store(ObjectStoreBuilder::new(STORE))
        .build()
        .await
        .map(IdbDatabase::from)
        .map_err(|_| StorageError::Unavailable)?;
    let handle = db.clone();
    let on_version_change = Closure::<dyn FnMut()>::new(move || handle.close());
    db.set_onversionchange(Some(on_version_change.as_ref().unchecked_ref()));
    Ok((db, on_version_change))
}

fn transaction(db: &IdbDatabase, mode: TransactionMode) -> Result<Transaction, StorageError> {
    let stores = Array::of1(&JsValue::from_str(STORE));
    match mode {
        TransactionMode::ReadWrite => {
            let options = Object::new();
            Reflect::set(&options, &JsValue::from_str("durability"), &JsValue::from_str("strict"))
                .map_err(|_| StorageError::WriteFailed)?;
            db.unchecked_ref::<DatabaseWithOptions>()
                .transaction_with_options(&stores, "readwrite", &options)
                .map(Transaction::from)
                .map_err(|_| StorageError::WriteFailed)
        }
        _ => db
            .transaction_with_str_sequence(&stores)
            .map(Transaction::from)
            .map_err(|_| StorageError::Unavailable),
    }
}

/// The stored generation; absent (a profile from before the counter) is 0.
fn generation_of(value: Option<JsValue>) -> Result<u64, StorageError> {
    match value.filter(|v| !v.is_undefined() && !v.is_null()) {
        None => Ok(0),
        Some(v) => v
            .as_f64()
            .filter(|n| n.fract() == 0.0 && *n >= 0.0 && *n <= 9_007_199_254_740_991.0)
            .map(|n| n as u64)
            .ok_or(StorageError::Corrupt),
    }
}

impl Vault {
    /// Opens the store, making this profile's storage key on first use.
    pub async fn open() -> Result<Self, StorageError> {
        let (db, on_version_change) = open_db().await?;
        let existing = get(&db, KEY_RECORD).await?;
        let key = match existing.and_then(|k| k.dyn_into::<CryptoKey>().ok()) {
            Some(key) => key,
            None => {
                let params = AesKeyGenParams::new("AES-GCM", 256);
                let usages = Array::of2(&JsValue::from_str("encrypt"), &JsValue::from_str("decrypt"));
                let promise = subtle()?
                    .generate_key_with_object(&params, false, &usages)
                    .map_err(|_| StorageError::Crypto)?;
                let key: CryptoKey =
                    JsFuture::from(promise).await.map_err(|_| StorageError::Crypto)?.unchecked_into();
                put(&db, KEY_RECORD, &key).await?;
                key
            }
        };
        Ok(Self {
            db,
            _on_version_change: on_version_change,
            key,
            legacy: Cell::new(false),
            generation: Cell::new(0),
        })
    }

    /// The generation this vault last read or wrote.
    pub fn generation(&self) -> u64 {
        self.generation.get()
    }

    /// Every stored record, decrypted, by name (empty on first run).
    pub async fn load(&self) -> Result<NamedRecords, StorageError> {
        let tx = transaction(&self.db, TransactionMode::ReadOnly)?;
        let store = tx.object_store(STORE).map_err(|_| StorageError::Unavailable)?;
        let keys = store.get_all_keys(None, None).map_err(|_| StorageError::Unavailable)?;
        let values = store.get_all(None, None).map_err(|_| StorageError::Unavailable)?;
        let keys = keys.await.map_err(|_| StorageError::Unavailable)?;
        let values = values.await.map_err(|_| StorageError::Unavailable)?;
        if keys.len() != values.len() {
            return Err(StorageError::Corrupt);
        }
        // Start every decryption, then collect: WebCrypto works on them concurrently.
        let mut pending = Vec::new();
        let mut generation = 0;
        for (key, value) in keys.into_iter().zip(values) {
            let Some(name) = key.as_string() else { return Err(StorageError::Corrupt) };
            if name == KEY_RECORD {
                continue;
            }
            if name == GENERATION_RECORD {
                generation = generation_of(Some(value))?;
                continue;
            }
            let sealed = Uint8Array::new(&value).to_vec();
            let legacy = name == LEGACY_RECORD;
            self.legacy.set(self.legacy.get() || legacy);
            let aad = (!legacy).then_some(name.as_bytes());
            let promise = self.decrypt(&sealed, aad)?;
            pending.push((name, promise));
        }
        let mut records = Vec::with_capacity(pending.len());
        for (name, promise) in pending {
            let plain = JsFuture::from(promise).await.map_err(|_| StorageError::Corrupt)?;
            records.push((name, Zeroizing::new(Uint8Array::new(&plain).to_vec())));
        }
        self.generation.set(generation);
        Ok(records)
    }

    fn decrypt(&self, sealed: &[u8], aad: Option<&[u8]>) -> Result<js_sys::Promise, StorageError> {
        if sealed.len() < NONCE_LEN + 16 {
            return Err(StorageError::Corrupt);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let params = AesGcmParams::new("AES-GCM", &Uint8Array::from(nonce));
        if let Some(aad) = aad {
            params.set_additional_data(&Uint8Array::from(aad));
        }
        subtle()?
            .decrypt_with_object_and_u8_array(&params, &self.key, ciphertext)
            .map_err(|_| StorageError::Corrupt)
    }

    /// Starts AES-GCM under the profile's key with a fresh random nonce; [`finish_seal`] makes
    /// the stored form `nonce (12) || ciphertext`. Started together, WebCrypto runs them
    /// concurrently.
    fn start_seal(
        &self,
        aad: &[u8],
        plain: &[u8],
    ) -> Result<([u8; NONCE_LEN], js_sys::Promise), StorageError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| StorageError::Crypto)?;
        let params = AesGcmParams::new("AES-GCM", &Uint8Array::from(&nonce[..]));
        params.set_additional_data(&Uint8Array::from(aad));
        let promise = subtle()?
            .encrypt_with_object_and_u8_array(&params, &self.key, plain)
            .map_err(|_| StorageError::Crypto)?;
        Ok((nonce, promise))
    }

    /// Seals a message for another tab of this profile (they share the profile's key; nothing
    /// outside this browser profile can open it). Bound to its purpose by the additional data.
    pub async fn seal_for_tabs(&self, plain: &[u8]) -> Result<Vec<u8>, StorageError> {
        let (nonce, promise) = self.start_seal(TAB_MESSAGE_AAD, plain)?;
        Ok(finish_seal(nonce, promise).await?.to_vec())
    }

    /// Opens what [`Vault::seal_for_tabs`] sealed in another tab of this profile.
    pub async fn open_from_tabs(&self, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, StorageError> {
        let promise = self.decrypt(sealed, Some(TAB_MESSAGE_AAD))?;
        let plain = JsFuture::from(promise).await.map_err(|_| StorageError::Corrupt)?;
        Ok(Zeroizing::new(Uint8Array::new(&plain).to_vec()))
    }

    /// Encrypts and stores these records in one strictly durable transaction: after a crash,
    /// storage holds all of them or none (and then the previous ones). Removes the record of
    /// earlier releases. Refused with [`StorageError::Conflict`], writing nothing, if the stored
    /// generation is not the one this vault last read or wrote.
    pub async fn save(&self, records: NamedRecords, deleted: &[String]) -> Result<(), StorageError> {
        let mut pending = Vec::with_capacity(records.len());
        for (name, plain) in records {
            let (nonce, promise) = self.start_seal(name.as_bytes(), &plain)?;
            pending.push((name, nonce, promise));
        }
        let mut sealed = Vec::with_capacity(pending.len());
        for (name, nonce, promise) in pending {
            sealed.push((name, finish_seal(nonce, promise).await?));
        }
        let tx = transaction(&self.db, TransactionMode::ReadWrite)?;
        let store = tx.object_store(STORE).map_err(|_| StorageError::WriteFailed)?;
        // Read inside this transaction, so no other writer can slip in between check and write.
        let stored = store
            .get(JsValue::from_str(GENERATION_RECORD))
            .map_err(|_| StorageError::WriteFailed)?
            .await
            .map_err(|_| StorageError::WriteFailed)?;
        let expected = self.generation.get();
        if generation_of(stored)? != expected {
            let _ = tx.abort();
            return Err(StorageError::Conflict);
        }
        let next = expected + 1;
        #[allow(clippy::cast_precision_loss)] // far below 2^53
        store
            .put(&JsValue::from_f64(next as f64), Some(&JsValue::from_str(GENERATION_RECORD)))
            .map_err(|_| StorageError::WriteFailed)?;
        // Deletions first: a record deleted and written again in one save is the new one.
        for name in deleted {
            store.delete(JsValue::from_str(name)).map_err(|_| StorageError::WriteFailed)?;
        }
        for (name, record) in &sealed {
            store.put(record, Some(&JsValue::from_str(name))).map_err(|_| StorageError::WriteFailed)?;
        }
        if self.legacy.get() {
            store.delete(JsValue::from_str(LEGACY_RECORD)).map_err(|_| StorageError::WriteFailed)?;
        }
        // A write counts only once the transaction has committed.
        match tx.await {
            Ok(idb::TransactionResult::Committed) => {
                self.legacy.set(false);
                self.generation.set(next);
                Ok(())
            }
            _ => Err(StorageError::WriteFailed),
        }
    }

    /// Deletes everything this profile stored (the key included).
    pub async fn wipe(&self) -> Result<(), StorageError> {
        self.db.close();
        let factory = Factory::new().map_err(|_| StorageError::Unavailable)?;
        factory
            .delete(DB_NAME)
            .map_err(|_| StorageError::Unavailable)?
            .await
            .map_err(|_| StorageError::WriteFailed)
    }
}

impl Drop for Vault {
    /// Closes the connection at once (a connection left to the garbage collector would hold up
    /// "Delete all data" in another handle until it is collected).
    fn drop(&mut self) {
        self.db.set_onversionchange(None);
        self.db.close();
    }
}

async fn finish_seal(nonce: [u8; NONCE_LEN], promise: js_sys::Promise) -> Result<Uint8Array, StorageError> {
    let ciphertext = JsFuture::from(promise).await.map_err(|_| StorageError::Crypto)?;
    let ciphertext = Uint8Array::new(&ciphertext);
    let record = Uint8Array::new_with_length((NONCE_LEN as u32) + ciphertext.length());
    record.set(&Uint8Array::from(&nonce[..]), 0);
    record.set(&ciphertext, NONCE_LEN as u32);
    Ok(record)
}

async fn get(db: &IdbDatabase, key: &str) -> Result<Option<JsValue>, StorageError> {
    let tx = transaction(db, TransactionMode::ReadOnly)?;
    let store = tx.object_store(STORE).map_err(|_| StorageError::Unavailable)?;
    let value = store
        .get(JsValue::from_str(key))
        .map_err(|_| StorageError::Unavailable)?
        .await
        .map_err(|_| StorageError::Unavailable)?;
    Ok(value.filter(|v| !v.is_undefined() && !v.is_null()))
}

async fn put(db: &IdbDatabase, key: &str, value: &JsValue) -> Result<(), StorageError> {
    let tx = transaction(db, TransactionMode::ReadWrite)?;
    let store = tx.object_store(STORE).map_err(|_| StorageError::WriteFailed)?;
    // Issue the request, then wait for the transaction itself: a write counts only once committed.
    let _request = store.put(value, Some(&JsValue::from_str(key))).map_err(|_| StorageError::WriteFailed)?;
    match tx.await {
        Ok(idb::TransactionResult::Committed) => Ok(()),
        _ => Err(StorageError::WriteFailed),
    }
}
