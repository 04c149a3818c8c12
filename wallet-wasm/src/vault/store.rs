//! The [`Vault`] handle: create or open a vault, read and write records, change its protection,
//! wipe it.

use js_sys::Uint8Array;
use std::cell::{Cell, RefCell};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::IdbDatabase;

use super::crypto::{self, AesKey};
use super::format::{
    record_aad, record_key, record_name, Header, Protection, ProtectionMode, StoredProtection,
    CHECK_AAD, CHECK_KEY, CHECK_PLAINTEXT, DEVICE_KEY, META_KEY,
};
use super::idb::{self, Mode};
use super::lock::TabLock;
use super::{describe, VaultError};

/// An open vault: the only writer of its IndexedDB database while it lives (it holds the
/// database's Web Lock). Every record is encrypted. Dropping it closes the database and
/// releases the lock.
pub struct Vault {
    name: String,
    db: IdbDatabase,
    /// Replaced only by [`Vault::change_protection`].
    key: RefCell<AesKey>,
    mode: Cell<ProtectionMode>,
    /// Set while [`Vault::change_protection`] re-encrypts: writes are refused meanwhile, so
    /// none can be overwritten by the re-encrypted copy.
    changing: Cell<bool>,
    _on_versionchange: Closure<dyn FnMut()>,
    /// `Some` until [`Vault::close`] takes it.
    lock: Option<TabLock>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("name", &self.name)
            .field("mode", &self.mode.get())
            .finish()
    }
}

/// The Web Lock name of vault `name`.
fn lock_name(name: &str) -> String {
    format!("superscalar-vault/{name}")
}

/// Closes `db` when dropped, unless taken.
struct OpenDb(Option<IdbDatabase>);

impl OpenDb {
    fn db(&self) -> &IdbDatabase {
        self.0
            .as_ref()
            .expect("taken only by `take`, which consumes the guard")
    }

    fn take(mut self) -> IdbDatabase {
        self.0.take().expect("taken only once")
    }
}

impl Drop for OpenDb {
    fn drop(&mut self) {
        if let Some(db) = &self.0 {
            db.close();
        }
    }
}

async fn read_header(db: &IdbDatabase) -> Result<Option<Header>, VaultError> {
    match idb::get_bytes(db, META_KEY).await? {
        None => Ok(None),
        Some(bytes) => Header::decode(&bytes).map(Some),
    }
}

impl Vault {
    /// Creates vault `name` with `protection` and opens it. Refuses if one exists
    /// ([`VaultError::AlreadyExists`]) or another tab holds the name
    /// ([`VaultError::OtherTabOpen`]).
    pub async fn create(name: &str, protection: Protection<'_>) -> Result<Vault, VaultError> {
        Vault::create_with(name, protection, Vec::new()).await
    }

    /// Creates vault `name` holding `records` (name, value), all in one transaction.
    pub(crate) async fn create_with(
        name: &str,
        protection: Protection<'_>,
        records: Vec<(String, zeroize::Zeroizing<Vec<u8>>)>,
    ) -> Result<Vault, VaultError> {
        if protection == Protection::Passphrase("") {
            return Err(VaultError::EmptyPassphrase);
        }
        let lock = TabLock::acquire(&lock_name(name)).await?;
        let db = OpenDb(idb::open(name, true).await?);
        if read_header(db.db()).await?.is_some() {
            return Err(VaultError::AlreadyExists(name.into()));
        }
        let (stored, key) = new_key(protection).await?;
        let mut sealed = Vec::with_capacity(records.len());
        for (record, value) in &records {
            sealed.push((
                record.as_str(),
                crypto::seal(&key, &record_aad(record), value).await?,
            ));
        }
        let check = crypto::seal(&key, CHECK_AAD, CHECK_PLAINTEXT).await?;

        let (tx, store) = idb::transaction(db.db(), Mode::Write)?;
        // Whatever an interrupted earlier attempt left goes; the header is written last.
        store
            .clear()
            .map_err(|e| VaultError::Storage(describe(&e)))?;
        write_key(&store, stored, &key)?;
        idb::put(&store, CHECK_KEY, &bytes(&check))?;
        for (record, value) in &sealed {
            idb::put(&store, &record_key(record), &bytes(value))?;
        }
        idb::put(&store, META_KEY, &bytes(&Header::new(stored).encode()))?;
        idb::committed(&tx).await?;
        Ok(Vault::assemble(name, db.take(), key, stored.mode(), lock))
    }

    /// Opens vault `name`: with its passphrase, or with `None` when it has none. A wrong
    /// passphrase is [`VaultError::WrongPassphrase`].
    pub async fn open(name: &str, passphrase: Option<&str>) -> Result<Vault, VaultError> {
        let lock = TabLock::acquire(&lock_name(name)).await?;
        let db = OpenDb(idb::open(name, false).await?);
        if db.0.is_none() {
            return Err(VaultError::NotFound(name.into()));
        }
        let header = read_header(db.db())
            .await?
            .ok_or_else(|| VaultError::NotFound(name.into()))?;
        let key = match (header.protection, passphrase) {
            (StoredProtection::Passphrase { kdf }, Some(passphrase)) => {
                crypto::passphrase_key(passphrase, kdf).await?
            }
            (StoredProtection::Passphrase { .. }, None) => {
                return Err(VaultError::PassphraseRequired)
            }
            (StoredProtection::DeviceKey, Some(_)) => return Err(VaultError::NoPassphraseSet),
            (StoredProtection::DeviceKey, None) => {
                let stored = idb::get(db.db(), DEVICE_KEY).await?;
                AesKey::from_stored(
                    stored.ok_or_else(|| VaultError::Corrupt("device key missing".into()))?,
                )?
            }
        };
        let check = idb::get_bytes(db.db(), CHECK_KEY)
            .await?
            .ok_or_else(|| VaultError::Corrupt("check record missing".into()))?;
        match crypto::open(&key, CHECK_AAD, &check).await? {
            Ok(plain) if plain == CHECK_PLAINTEXT => {}
            _ => {
                return Err(match header.protection.mode() {
                    ProtectionMode::Passphrase => VaultError::WrongPassphrase,
                    ProtectionMode::DeviceKey => {
                        VaultError::Corrupt("the device key does not open this wallet".into())
                    }
                })
            }
        }
        Ok(Vault::assemble(
            name,
            db.take(),
            key,
            header.protection.mode(),
            lock,
        ))
    }

    /// How vault `name` is protected, or `None` if there is none. Takes no lock and opens
    /// nothing for writing.
    pub async fn inspect(name: &str) -> Result<Option<ProtectionMode>, VaultError> {
        let Some(db) = idb::open(name, false).await? else {
            return Ok(None);
        };
        let db = OpenDb(Some(db));
        Ok(read_header(db.db()).await?.map(|h| h.protection.mode()))
    }

    /// Whether another tab (or another `Vault` here) has vault `name` open right now. Asks the
    /// lock once and lets it go at once; for telling the user, not for deciding who writes.
    pub async fn open_elsewhere(name: &str) -> Result<bool, VaultError> {
        match TabLock::try_acquire(&lock_name(name)).await {
            Ok(lock) => {
                lock.release().await;
                Ok(false)
            }
            Err(VaultError::OtherTabOpen) => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// Whether a vault named `name` exists in this browser profile.
    pub async fn exists(name: &str) -> Result<bool, VaultError> {
        Ok(Vault::inspect(name).await?.is_some())
    }

    fn assemble(
        name: &str,
        db: IdbDatabase,
        key: AesKey,
        mode: ProtectionMode,
        lock: TabLock,
    ) -> Vault {
        // If another page deletes or upgrades the database, let it: close this connection.
        let closing = db.clone();
        let on_versionchange = Closure::<dyn FnMut()>::new(move || closing.close());
        db.set_onversionchange(Some(on_versionchange.as_ref().unchecked_ref()));
        Vault {
            name: name.into(),
            db,
            key: RefCell::new(key),
            mode: Cell::new(mode),
            changing: Cell::new(false),
            _on_versionchange: on_versionchange,
            lock: Some(lock),
        }
    }

    /// The vault's database name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How the vault is protected.
    pub fn mode(&self) -> ProtectionMode {
        self.mode.get()
    }

    /// The current key (a handle: cloning it copies no key bytes).
    fn key(&self) -> AesKey {
        self.key.borrow().clone()
    }

    /// Stores `value` as record `name` (encrypted), durably, replacing any earlier value.
    pub async fn put(&self, name: &str, value: &[u8]) -> Result<(), VaultError> {
        if self.changing.get() {
            return Err(VaultError::Busy("the wallet's protection is being changed"));
        }
        let sealed = crypto::seal(&self.key(), &record_aad(name), value).await?;
        let (tx, store) = idb::transaction(&self.db, Mode::Write)?;
        idb::put(&store, &record_key(name), &bytes(&sealed))?;
        idb::committed(&tx).await
    }

    /// Record `name`, decrypted; `None` if there is none.
    pub async fn get(&self, name: &str) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>, VaultError> {
        match idb::get_bytes(&self.db, &record_key(name)).await? {
            None => Ok(None),
            Some(sealed) => self.open_record(name, &sealed).await.map(Some),
        }
    }

    /// Deletes record `name` (no error if there is none).
    pub async fn remove(&self, name: &str) -> Result<(), VaultError> {
        let (tx, store) = idb::transaction(&self.db, Mode::Write)?;
        idb::remove(&store, &record_key(name))?;
        idb::committed(&tx).await
    }

    /// The names of all records (names are stored in the clear).
    pub async fn names(&self) -> Result<Vec<String>, VaultError> {
        let keys = idb::keys(&self.db).await?;
        Ok(keys
            .iter()
            .filter_map(|k| record_name(k))
            .map(String::from)
            .collect())
    }

    /// Every record, decrypted, from one consistent read.
    pub(crate) async fn read_all(
        &self,
    ) -> Result<Vec<(String, zeroize::Zeroizing<Vec<u8>>)>, VaultError> {
        let mut records = Vec::new();
        for (key, value) in idb::entries(&self.db).await? {
            let Some(name) = record_name(&key) else {
                continue;
            };
            let sealed = idb::as_bytes(&value, &key)?;
            records.push((name.to_string(), self.open_record(name, &sealed).await?));
        }
        Ok(records)
    }

    async fn open_record(
        &self,
        name: &str,
        sealed: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, VaultError> {
        match crypto::open(&self.key(), &record_aad(name), sealed).await? {
            Ok(plain) => Ok(zeroize::Zeroizing::new(plain)),
            Err(crypto::OpenFailed) => Err(VaultError::Corrupt(format!("record {name}"))),
        }
    }

    /// Re-encrypts everything under a new protection (a new passphrase, a passphrase added, or
    /// the passphrase removed), in one transaction: the vault is either all old or all new.
    pub async fn change_protection(&self, protection: Protection<'_>) -> Result<(), VaultError> {
        if self.changing.replace(true) {
            return Err(VaultError::Busy("the wallet's protection is being changed"));
        }
        let result = self.reencrypt(protection).await;
        self.changing.set(false);
        result
    }

    async fn reencrypt(&self, protection: Protection<'_>) -> Result<(), VaultError> {
        let records = self.read_all().await?;
        let (stored, key) = new_key(protection).await?;
        let mut sealed = Vec::with_capacity(records.len());
        for (name, value) in &records {
            sealed.push((
                record_key(name),
                crypto::seal(&key, &record_aad(name), value).await?,
            ));
        }
        let check = crypto::seal(&key, CHECK_AAD, CHECK_PLAINTEXT).await?;

        let (tx, store) = idb::transaction(&self.db, Mode::Write)?;
        write_key(&store, stored, &key)?;
        idb::put(&store, CHECK_KEY, &bytes(&check))?;
        for (stored_key, value) in &sealed {
            idb::put(&store, stored_key, &bytes(value))?;
        }
        idb::put(&store, META_KEY, &bytes(&Header::new(stored).encode()))?;
        idb::committed(&tx).await?;
        *self.key.borrow_mut() = key;
        self.mode.set(stored.mode());
        Ok(())
    }

    /// Closes the database and releases the lock, waiting until the browser has released it
    /// (dropping the vault releases it too, without waiting).
    pub async fn close(mut self) {
        let lock = self.lock.take();
        drop(self);
        if let Some(lock) = lock {
            lock.release().await;
        }
    }

    /// Deletes the whole database (every record, the header and any device key), then releases
    /// the lock. Irreversible: export a backup first.
    pub async fn wipe(self) -> Result<(), VaultError> {
        self.db.close();
        idb::delete(&self.name).await
    }

    /// The raw database, for tests that look at what is stored at rest.
    #[cfg(test)]
    pub(crate) fn database(&self) -> &IdbDatabase {
        &self.db
    }
}

impl Drop for Vault {
    fn drop(&mut self) {
        self.db.set_onversionchange(None);
        self.db.close();
    }
}

/// The key and stored protection for a new `protection`.
async fn new_key(protection: Protection<'_>) -> Result<(StoredProtection, AesKey), VaultError> {
    match protection {
        Protection::Passphrase(passphrase) => {
            let kdf = crypto::fresh_kdf();
            Ok((
                StoredProtection::Passphrase { kdf },
                crypto::passphrase_key(passphrase, kdf).await?,
            ))
        }
        Protection::DeviceKey => Ok((
            StoredProtection::DeviceKey,
            crypto::generate_device_key().await?,
        )),
    }
}

/// Stores the device key, or deletes any old one when the key comes from a passphrase.
fn write_key(
    store: &web_sys::IdbObjectStore,
    stored: StoredProtection,
    key: &AesKey,
) -> Result<(), VaultError> {
    match stored {
        StoredProtection::DeviceKey => idb::put(store, DEVICE_KEY, key.crypto_key()),
        StoredProtection::Passphrase { .. } => idb::remove(store, DEVICE_KEY),
    }
}

fn bytes(value: &[u8]) -> JsValue {
    Uint8Array::from(value).into()
}

/// Asks the browser to keep this site's storage under storage pressure
/// (`navigator.storage.persist()`); returns its answer. `false` is not an error: the browser
/// may decide by its own rules (Chromium grants it to installed or often-used sites).
pub async fn request_persistence() -> Result<bool, VaultError> {
    let window = web_sys::window().ok_or(VaultError::Unavailable("a browser window"))?;
    let storage = window.navigator().storage();
    let promise = storage
        .persist()
        .map_err(|_| VaultError::Unavailable("navigator.storage.persist"))?;
    let answer = JsFuture::from(promise)
        .await
        .map_err(|e| VaultError::Storage(describe(&e)))?;
    Ok(answer.as_bool().unwrap_or(false))
}
