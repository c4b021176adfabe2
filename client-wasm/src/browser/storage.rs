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

use idb::builder::{DatabaseBuilder, ObjectStoreBuilder};
use idb::{Database, Factory, TransactionMode};
use js_sys::{Array, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{AesGcmParams, AesKeyGenParams, CryptoKey, SubtleCrypto};
use zeroize::Zeroizing;

use crate::engine::LEGACY_RECORD;

const DB_NAME: &str = "doorless";
const STORE: &str = "kv";
const KEY_RECORD: &str = "key";
const NONCE_LEN: usize = 12;

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
}

/// Records by name, as the engine writes them and the vault stores them.
pub type NamedRecords = Vec<(String, Zeroizing<Vec<u8>>)>;

/// The encrypted store of one browser profile.
pub struct Vault {
    db: Database,
    key: CryptoKey,
    /// The record of earlier releases is stored (the next save deletes it).
    legacy: std::cell::Cell<bool>,
}

fn subtle() -> Result<SubtleCrypto, StorageError> {
    let global = js_sys::global();
    let crypto =
        js_sys::Reflect::get(&global, &JsValue::from_str("crypto")).map_err(|_| StorageError::Crypto)?;
    let crypto: web_sys::Crypto = crypto.dyn_into().map_err(|_| StorageError::Crypto)?;
    Ok(crypto.subtle())
}

async fn open_db() -> Result<Database, StorageError> {
    DatabaseBuilder::new(DB_NAME)
        .version(1)
        .add_object_store(ObjectStoreBuilder::new(STORE))
        .build()
        .await
        .map_err(|_| StorageError::Unavailable)
}

impl Vault {
    /// Opens the store, making this profile's storage key on first use.
    pub async fn open() -> Result<Self, StorageError> {
        let db = open_db().await?;
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
        Ok(Self { db, key, legacy: std::cell::Cell::new(false) })
    }

    /// Every stored record, decrypted, by name (empty on first run).
    pub async fn load(&self) -> Result<NamedRecords, StorageError> {
        let tx = self
            .db
            .transaction(&[STORE], TransactionMode::ReadOnly)
            .map_err(|_| StorageError::Unavailable)?;
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
        for (key, value) in keys.into_iter().zip(values) {
            let Some(name) = key.as_string() else { return Err(StorageError::Corrupt) };
            if name == KEY_RECORD {
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

    /// Encrypts and stores these records in one transaction: after a crash, storage holds all of
    /// them or none (and then the previous ones). Removes the record of earlier releases.
    pub async fn save(&self, records: NamedRecords) -> Result<(), StorageError> {
        let mut pending = Vec::with_capacity(records.len());
        for (name, plain) in records {
            let mut nonce = [0u8; NONCE_LEN];
            getrandom::fill(&mut nonce).map_err(|_| StorageError::Crypto)?;
            let params = AesGcmParams::new("AES-GCM", &Uint8Array::from(&nonce[..]));
            params.set_additional_data(&Uint8Array::from(name.as_bytes()));
            let promise = subtle()?
                .encrypt_with_object_and_u8_array(&params, &self.key, &plain)
                .map_err(|_| StorageError::Crypto)?;
            pending.push((name, nonce, promise));
        }
        let mut sealed = Vec::with_capacity(pending.len());
        for (name, nonce, promise) in pending {
            let ciphertext = JsFuture::from(promise).await.map_err(|_| StorageError::Crypto)?;
            let ciphertext = Uint8Array::new(&ciphertext);
            let record = Uint8Array::new_with_length((NONCE_LEN as u32) + ciphertext.length());
            record.set(&Uint8Array::from(&nonce[..]), 0);
            record.set(&ciphertext, NONCE_LEN as u32);
            sealed.push((name, record));
        }
        let tx = self
            .db
            .transaction(&[STORE], TransactionMode::ReadWrite)
            .map_err(|_| StorageError::WriteFailed)?;
        let store = tx.object_store(STORE).map_err(|_| StorageError::WriteFailed)?;
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
        self.db.close();
    }
}

async fn get(db: &Database, key: &str) -> Result<Option<JsValue>, StorageError> {
    let tx = db.transaction(&[STORE], TransactionMode::ReadOnly).map_err(|_| StorageError::Unavailable)?;
    let store = tx.object_store(STORE).map_err(|_| StorageError::Unavailable)?;
    let value = store
        .get(JsValue::from_str(key))
        .map_err(|_| StorageError::Unavailable)?
        .await
        .map_err(|_| StorageError::Unavailable)?;
    Ok(value.filter(|v| !v.is_undefined() && !v.is_null()))
}

async fn put(db: &Database, key: &str, value: &JsValue) -> Result<(), StorageError> {
    let tx = db.transaction(&[STORE], TransactionMode::ReadWrite).map_err(|_| StorageError::WriteFailed)?;
    let store = tx.object_store(STORE).map_err(|_| StorageError::WriteFailed)?;
    // Issue the request, then wait for the transaction itself: a write counts only once committed.
    let _request = store.put(value, Some(&JsValue::from_str(key))).map_err(|_| StorageError::WriteFailed)?;
    match tx.await {
        Ok(idb::TransactionResult::Committed) => Ok(()),
        _ => Err(StorageError::WriteFailed),
    }
}
