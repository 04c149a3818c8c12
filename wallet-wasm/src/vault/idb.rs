//! IndexedDB, awaited: each `IDBRequest` and `IDBTransaction` becomes a future.
//!
//! The futures are built eagerly (handlers attached before the caller yields), so several
//! requests can be issued in one transaction and awaited afterwards; a transaction stays open
//! only while the browser has requests for it, so no other `.await` may come between its
//! requests.

use std::cell::Cell;
use std::rc::Rc;

use js_sys::{Array, Function, Promise, Reflect, Uint8Array};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{IdbDatabase, IdbFactory, IdbObjectStore, IdbRequest, IdbTransaction};

use super::format::{DB_VERSION, STORE};
use super::{describe, VaultError};

fn storage_error(e: JsValue) -> VaultError {
    VaultError::Storage(describe(&e))
}

/// The page's IndexedDB.
pub(crate) fn factory() -> Result<IdbFactory, VaultError> {
    let window = web_sys::window().ok_or(VaultError::Unavailable("a browser window"))?;
    window
        .indexed_db()
        .map_err(storage_error)?
        .ok_or(VaultError::Unavailable("IndexedDB"))
}

/// Awaits `request`'s success (its `result`) or failure (its `error`).
pub(crate) fn request(
    request: &IdbRequest,
) -> impl std::future::Future<Output = Result<JsValue, VaultError>> {
    let promise = Promise::new(&mut |resolve, reject| {
        request.set_onsuccess(Some(&resolve));
        request.set_onerror(Some(&reject));
    });
    let request = request.clone();
    async move {
        let outcome = JsFuture::from(promise).await;
        request.set_onsuccess(None);
        request.set_onerror(None);
        match outcome {
            Ok(_) => request.result().map_err(storage_error),
            Err(_) => Err(request_error(&request)),
        }
    }
}

fn request_error(request: &IdbRequest) -> VaultError {
    match request.error() {
        Ok(Some(e)) => VaultError::Storage(format!("{}: {}", e.name(), e.message())),
        Ok(None) => VaultError::Storage("request failed".into()),
        Err(e) => storage_error(e),
    }
}

/// Awaits `tx`'s commit; an error or abort is an error.
pub(crate) fn committed(
    tx: &IdbTransaction,
) -> impl std::future::Future<Output = Result<(), VaultError>> {
    let promise = Promise::new(&mut |resolve, reject| {
        tx.set_oncomplete(Some(&resolve));
        tx.set_onerror(Some(&reject));
        tx.set_onabort(Some(&reject));
    });
    let tx = tx.clone();
    async move {
        let outcome = JsFuture::from(promise).await;
        tx.set_oncomplete(None);
        tx.set_onerror(None);
        tx.set_onabort(None);
        match outcome {
            Ok(_) => Ok(()),
            Err(_) => Err(match tx.error() {
                Some(e) => VaultError::Storage(format!("{}: {}", e.name(), e.message())),
                None => VaultError::Storage("transaction aborted".into()),
            }),
        }
    }
}

/// Opens database `name`. With `create`, makes it (and its store) if missing; without, a
/// missing database is `Ok(None)` and is not created.
pub(crate) async fn open(name: &str, create: bool) -> Result<Option<IdbDatabase>, VaultError> {
    let open = factory()?
        .open_with_u32(name, DB_VERSION)
        .map_err(storage_error)?;
    let upgrading = open.clone();
    let missing = Rc::new(Cell::new(false));
    let missing_in_upgrade = missing.clone();
    let on_upgrade = Closure::<dyn FnMut(JsValue)>::new(move |_event: JsValue| {
        if !create {
            // Aborting the version change leaves no database behind.
            missing_in_upgrade.set(true);
            if let Some(tx) = upgrading.transaction() {
                let _ = tx.abort();
            }
            return;
        }
        if let Ok(db) = upgrading.result().and_then(|r| r.dyn_into::<IdbDatabase>()) {
            if !db.object_store_names().contains(STORE) {
                // A failure here surfaces as a missing store at first use.
                let _ = db.create_object_store(STORE);
            }
        }
    });
    open.set_onupgradeneeded(Some(on_upgrade.as_ref().unchecked_ref()));
    let outcome = request(&open).await;
    open.set_onupgradeneeded(None);
    drop(on_upgrade);
    match outcome {
        Ok(db) => {
            let db: IdbDatabase = db
                .dyn_into()
                .map_err(|_| VaultError::Storage("open gave no database".into()))?;
            if db.object_store_names().contains(STORE) {
                Ok(Some(db))
            } else {
                db.close();
                Err(VaultError::Corrupt("database has no record store".into()))
            }
        }
        Err(_) if missing.get() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Deletes database `name` (no error if it does not exist).
pub(crate) async fn delete(name: &str) -> Result<(), VaultError> {
    let req = factory()?.delete_database(name).map_err(storage_error)?;
    request(&req).await.map(drop)
}

/// Read-only or read-write.
#[derive(Clone, Copy)]
pub(crate) enum Mode {
    Read,
    Write,
}

/// A transaction on the one store. Writes ask for strict durability (flushed to disk before
/// `complete`), so "stored" means stored before the wallet acts on it.
pub(crate) fn transaction(
    db: &IdbDatabase,
    mode: Mode,
) -> Result<(IdbTransaction, IdbObjectStore), VaultError> {
    let tx: IdbTransaction = match mode {
        Mode::Read => db.transaction_with_str(STORE).map_err(storage_error)?,
        Mode::Write => {
            // `transaction(store, mode, {durability})` is not in web-sys' stable API.
            let options = js_sys::Object::new();
            Reflect::set(&options, &"durability".into(), &"strict".into())
                .map_err(storage_error)?;
            let method: Function = Reflect::get(db, &"transaction".into())
                .and_then(|f| f.dyn_into())
                .map_err(storage_error)?;
            method
                .call3(db, &STORE.into(), &"readwrite".into(), &options)
                .and_then(|tx| tx.dyn_into())
                .map_err(storage_error)?
        }
    };
    let store = tx.object_store(STORE).map_err(storage_error)?;
    Ok((tx, store))
}

/// Issues a put of `value` at `key` (not awaited: await the transaction).
pub(crate) fn put(store: &IdbObjectStore, key: &str, value: &JsValue) -> Result<(), VaultError> {
    store
        .put_with_key(value, &key.into())
        .map(drop)
        .map_err(storage_error)
}

/// Issues a delete of `key` (not awaited: await the transaction).
pub(crate) fn remove(store: &IdbObjectStore, key: &str) -> Result<(), VaultError> {
    store.delete(&key.into()).map(drop).map_err(storage_error)
}

/// Reads the value at `key` in its own read transaction; `None` if absent.
pub(crate) async fn get(db: &IdbDatabase, key: &str) -> Result<Option<JsValue>, VaultError> {
    let (_tx, store) = transaction(db, Mode::Read)?;
    let value = request(&store.get(&key.into()).map_err(storage_error)?).await?;
    Ok((!value.is_undefined()).then_some(value))
}

/// Reads the bytes at `key`; `None` if absent, an error if the value is not bytes.
pub(crate) async fn get_bytes(db: &IdbDatabase, key: &str) -> Result<Option<Vec<u8>>, VaultError> {
    match get(db, key).await? {
        None => Ok(None),
        Some(value) => as_bytes(&value, key).map(Some),
    }
}

/// The bytes of a stored `Uint8Array`.
pub(crate) fn as_bytes(value: &JsValue, key: &str) -> Result<Vec<u8>, VaultError> {
    value
        .dyn_ref::<Uint8Array>()
        .map(Uint8Array::to_vec)
        .ok_or_else(|| VaultError::Corrupt(format!("record {key} is not bytes")))
}

/// All keys of the store that are strings, in key order.
pub(crate) async fn keys(db: &IdbDatabase) -> Result<Vec<String>, VaultError> {
    let (_tx, store) = transaction(db, Mode::Read)?;
    let all = request(&store.get_all_keys().map_err(storage_error)?).await?;
    let all: Array = all
        .dyn_into()
        .map_err(|_| VaultError::Storage("getAllKeys gave no array".into()))?;
    Ok(all.iter().filter_map(|k| k.as_string()).collect())
}

/// Every (key, value) of the store with a string key, from one read transaction.
pub(crate) async fn entries(db: &IdbDatabase) -> Result<Vec<(String, JsValue)>, VaultError> {
    let (_tx, store) = transaction(db, Mode::Read)?;
    // Both requests are issued before either is awaited, so they see the same snapshot.
    let keys = request(&store.get_all_keys().map_err(storage_error)?);
    let values = request(&store.get_all().map_err(storage_error)?);
    let (keys, values) = (keys.await?, values.await?);
    let keys: Array = keys
        .dyn_into()
        .map_err(|_| VaultError::Storage("getAllKeys gave no array".into()))?;
    let values: Array = values
        .dyn_into()
        .map_err(|_| VaultError::Storage("getAll gave no array".into()))?;
    if keys.length() != values.length() {
        return Err(VaultError::Storage(
            "keys and values differ in number".into(),
        ));
    }
    Ok(keys
        .iter()
        .zip(values.iter())
        .filter_map(|(k, v)| k.as_string().map(|k| (k, v)))
        .collect())
}

/// All values of the store, raw (for tests that look at what is at rest).
#[cfg(test)]
pub(crate) async fn raw_values(db: &IdbDatabase) -> Result<Vec<JsValue>, VaultError> {
    let (_tx, store) = transaction(db, Mode::Read)?;
    let all = request(&store.get_all().map_err(storage_error)?).await?;
    let all: Array = all
        .dyn_into()
        .map_err(|_| VaultError::Storage("getAll gave no array".into()))?;
    Ok(all.iter().collect())
}
