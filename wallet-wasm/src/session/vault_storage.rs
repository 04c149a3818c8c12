//! Browser [`Storage`]: the session's records inside the encrypted IndexedDB [`Vault`].
//!
//! Layout (record names, in the clear like every vault record name; values encrypted):
//! `session/guard` holds every double-sign record (JSON list), and
//! `session/path/<factory>-<session>` one signed path each (JSON of [`StoredPath`]).
//!
//! Contract: [`Vault::put`] returns only after its IndexedDB transaction (with `durability:
//! "strict"`) has committed, so every `save_*` here is durable when it returns, which is what
//! the session relies on before it sends partial signatures or `sigs_stored`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use bitcoin::hashes::{sha256, Hash};
use shared::musig::GuardRecord;

use super::storage::{Storage, StorageError, StoredPath};
use crate::vault::{Vault, VaultError};

/// The record holding the double-sign records.
pub const GUARD_RECORD: &str = "session/guard";
/// The prefix of the records holding signed paths.
pub const PATH_PREFIX: &str = "session/path/";

/// The name of the record of one signed path.
fn path_record(path: &StoredPath) -> String {
    format!("{PATH_PREFIX}{}-{}", path.factory, path.session)
}

thread_local! {
    /// Each path record as last decoded, with the digest of the bytes it came from. Decoding a
    /// path parses every member's key (and rebuilds its distribution transaction the first
    /// time its factory is seen, `shared::path`), and the home screen reads every path every
    /// few seconds while a stored path changes only when a session stores it again: bytes
    /// already decoded are not decoded twice. Holds only the records the last read found.
    static DECODED: RefCell<HashMap<String, (sha256::Hash, StoredPath)>> =
        RefCell::new(HashMap::new());
}

/// A session's storage in an open vault (shared with the rest of the wallet).
#[derive(Debug, Clone)]
pub struct VaultStorage {
    vault: Rc<Vault>,
}

impl VaultStorage {
    /// Stores in `vault`.
    pub fn new(vault: Rc<Vault>) -> VaultStorage {
        VaultStorage { vault }
    }

    async fn read<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<Option<T>, StorageError> {
        read_json(&self.vault, name).await
    }

    async fn write<T: serde::Serialize>(&self, name: &str, value: &T) -> Result<(), StorageError> {
        write_json(&self.vault, name, value).await
    }
}

/// Reads and decodes the JSON record `name` of `vault` (none if absent).
pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(
    vault: &Vault,
    name: &str,
) -> Result<Option<T>, StorageError> {
    let Some(bytes) = vault.get(name).await.map_err(io("read", name))? else {
        return Ok(None);
    };
    decode(name, &bytes).map(Some)
}

/// Decodes the JSON `bytes` of record `name`.
fn decode<T: serde::de::DeserializeOwned>(name: &str, bytes: &[u8]) -> Result<T, StorageError> {
    serde_json::from_slice(bytes).map_err(|e| StorageError::Corrupt {
        path: name.into(),
        reason: e.to_string(),
    })
}

/// Encodes `value` as JSON into the record `name` of `vault` (durable when it returns).
pub(crate) async fn write_json<T: serde::Serialize + ?Sized>(
    vault: &Vault,
    name: &str,
    value: &T,
) -> Result<(), StorageError> {
    let bytes =
        zeroize::Zeroizing::new(
            serde_json::to_vec(value).map_err(|e| StorageError::Corrupt {
                path: name.into(),
                reason: e.to_string(),
            })?,
        );
    vault.put(name, &bytes).await.map_err(io("write", name))
}

/// Maps a vault failure on record `name` to a storage error saying what was being done.
pub(crate) fn io<'a>(
    action: &'static str,
    name: &'a str,
) -> impl Fn(VaultError) -> StorageError + 'a {
    move |e| StorageError::Io {
        action,
        path: format!("wallet record {name}"),
        reason: e.to_string(),
    }
}

impl Storage for VaultStorage {
    async fn save_guard_records(&mut self, records: &[GuardRecord]) -> Result<(), StorageError> {
        let mut all: Vec<GuardRecord> = self.read(GUARD_RECORD).await?.unwrap_or_default();
        all.extend_from_slice(records);
        all.sort();
        all.dedup();
        self.write(GUARD_RECORD, &all).await
    }

    async fn load_guard_records(&mut self) -> Result<Vec<GuardRecord>, StorageError> {
        Ok(self.read(GUARD_RECORD).await?.unwrap_or_default())
    }

    async fn save_path(&mut self, path: &StoredPath) -> Result<(), StorageError> {
        self.write(&path_record(path), path).await
    }

    async fn load_paths(&mut self) -> Result<Vec<StoredPath>, StorageError> {
        let names = self
            .vault
            .names()
            .await
            .map_err(io("list", "session/path/*"))?;
        let mut out = Vec::new();
        let mut seen = HashMap::new();
        for name in names.iter().filter(|n| n.starts_with(PATH_PREFIX)) {
            let Some(bytes) = self.vault.get(name).await.map_err(io("read", name))? else {
                continue;
            };
            let digest = sha256::Hash::hash(&bytes);
            let known = DECODED.with_borrow(|d| {
                d.get(name)
                    .filter(|(d, _)| *d == digest)
                    .map(|(_, p)| p.clone())
            });
            let path = match known {
                Some(path) => path,
                None => decode::<StoredPath>(name, &bytes)?,
            };
            seen.insert(name.clone(), (digest, path.clone()));
            out.push(path);
        }
        DECODED.set(seen);
        out.sort_by_key(|p| (p.factory, p.session));
        Ok(out)
    }
}
