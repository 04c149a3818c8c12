//! What a session stores, and where: the [`Storage`] trait, the record of a signed path
//! ([`StoredPath`]), and [`MemoryStorage`].
//!
//! Contract: when a `save_*` call returns `Ok`, the data survives a crash of the wallet (the
//! native [`DirStorage`](super::DirStorage) writes a temporary file, fsyncs it, renames it over
//! the old one and fsyncs the directory). The session calls `save_guard_records` before it sends
//! the partial signatures those records allow, and `save_path` before it tells the LSP
//! `sigs_stored`.
//!
//! The browser stores in the encrypted IndexedDB vault (`VaultStorage`, wasm32 only: its
//! `save_*` return after the IndexedDB transaction committed). [`MemoryStorage`] keeps
//! everything in memory, for tests.

use bitcoin::secp256k1::XOnlyPublicKey;
use serde::{Deserialize, Serialize};
use shared::musig::GuardRecord;
use shared::path::ClientPath;
use shared::types::{FactoryId, SessionId};

/// Why storage failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// Reading or writing failed.
    #[error("cannot {action} {path}: {reason}; check free space and permissions")]
    Io {
        /// What was being done.
        action: &'static str,
        /// Which file.
        path: String,
        /// The OS error.
        reason: String,
    },
    /// A stored record does not decode.
    #[error("{path} holds an unreadable record: {reason}")]
    Corrupt {
        /// Which file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// A verified, fully signed exit path of one factory session, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredPath {
    /// The factory.
    pub factory: FactoryId,
    /// The session whose signatures these are (the one whose funding confirms is the factory).
    pub session: SessionId,
    /// The LSP's identity key.
    pub lsp: XOnlyPublicKey,
    /// The path, every node signed and verified.
    pub path: ClientPath,
}

/// Durable storage for a session. See the module's contract.
#[allow(async_fn_in_trait)]
pub trait Storage {
    /// Adds double-sign records (all of them durable when this returns).
    async fn save_guard_records(&mut self, records: &[GuardRecord]) -> Result<(), StorageError>;

    /// Every double-sign record stored so far.
    async fn load_guard_records(&mut self) -> Result<Vec<GuardRecord>, StorageError>;

    /// Stores a signed path (replacing one of the same factory and session).
    async fn save_path(&mut self, path: &StoredPath) -> Result<(), StorageError>;

    /// Every stored path.
    async fn load_paths(&mut self) -> Result<Vec<StoredPath>, StorageError>;
}

/// Keeps everything in memory (tests).
#[derive(Debug, Clone, Default)]
pub struct MemoryStorage {
    guard: Vec<GuardRecord>,
    paths: Vec<StoredPath>,
}

impl Storage for MemoryStorage {
    async fn save_guard_records(&mut self, records: &[GuardRecord]) -> Result<(), StorageError> {
        self.guard.extend_from_slice(records);
        Ok(())
    }

    async fn load_guard_records(&mut self) -> Result<Vec<GuardRecord>, StorageError> {
        Ok(self.guard.clone())
    }

    async fn save_path(&mut self, path: &StoredPath) -> Result<(), StorageError> {
        self.paths
            .retain(|p| (p.factory, p.session) != (path.factory, path.session));
        self.paths.push(path.clone());
        Ok(())
    }

    async fn load_paths(&mut self) -> Result<Vec<StoredPath>, StorageError> {
        Ok(self.paths.clone())
    }
}
