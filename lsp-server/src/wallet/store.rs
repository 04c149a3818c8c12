//! Persistence of BDK's wallet state in `wallet.sqlite`, a database of its own.
//!
//! BDK hands over its state as [`ChangeSet`]s that merge. Each persisted change set is one JSON
//! row, appended in one statement (atomic in SQLite); loading merges the rows in order and, when
//! there are several, rewrites them as one row in a single transaction. The file holds only
//! public descriptors, never keys. The schema migrates by `PRAGMA user_version`.
//!
//! Why not BDK's own SQLite tables: when this store was written they needed another rusqlite
//! than the LSP's, and two SQLite builds cannot link into one binary. (The LSP is now on
//! rusqlite 0.31, the version LDK needs; this format stays, and leaving it would be a migration
//! of its own.)

use std::path::{Path, PathBuf};

use bdk_wallet::chain::Merge;
use bdk_wallet::{ChangeSet, WalletPersister};
use rusqlite::{params, Connection};

use super::WalletError;

/// File name of the wallet database in the data dir.
pub(crate) const DB_FILE: &str = "wallet.sqlite";

/// Migrations in order; entry `i` moves the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] =
    &["CREATE TABLE changesets (id INTEGER PRIMARY KEY AUTOINCREMENT, json TEXT NOT NULL);"];

/// BDK's persister over `wallet.sqlite`.
#[derive(Debug)]
pub(crate) struct WalletStore {
    conn: Connection,
    path: PathBuf,
}

impl WalletStore {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub(crate) fn open(path: &Path) -> Result<WalletStore, WalletError> {
        let conn = Connection::open(path).map_err(db_error(path))?;
        let mut store = WalletStore {
            conn,
            path: path.to_path_buf(),
        };
        store.setup()?;
        Ok(store)
    }

    fn setup(&mut self) -> Result<(), WalletError> {
        let err = db_error(&self.path);
        self.conn
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(&err)?;
        self.conn
            .pragma_update(None, "synchronous", "FULL")
            .map_err(&err)?;
        let current: u32 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(&err)?;
        let known = MIGRATIONS.len() as u32;
        if current > known {
            return Err(WalletError::SchemaTooNew {
                path: self.path.clone(),
                found: current,
                known,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
            let tx = self.conn.transaction().map_err(&err)?;
            tx.execute_batch(sql).map_err(&err)?;
            tx.pragma_update(None, "user_version", (i + 1) as u32)
                .map_err(&err)?;
            tx.commit().map_err(&err)?;
        }
        Ok(())
    }

    /// Everything stored, merged; compacts several rows into one.
    fn load(&mut self) -> Result<ChangeSet, WalletError> {
        let err = db_error(&self.path);
        let rows: Vec<String> = {
            let mut stmt = self
                .conn
                .prepare("SELECT json FROM changesets ORDER BY id")
                .map_err(&err)?;
            let rows = stmt.query_map([], |r| r.get(0)).map_err(&err)?;
            rows.collect::<Result<_, _>>().map_err(&err)?
        };
        let mut merged = ChangeSet::default();
        for json in &rows {
            let changeset: ChangeSet =
                serde_json::from_str(json).map_err(|source| WalletError::CorruptRecord {
                    path: self.path.clone(),
                    source,
                })?;
            merged.merge(changeset);
        }
        if rows.len() > 1 {
            let json = self.encode(&merged)?;
            let tx = self.conn.transaction().map_err(&err)?;
            tx.execute("DELETE FROM changesets", []).map_err(&err)?;
            tx.execute("INSERT INTO changesets (json) VALUES (?1)", params![json])
                .map_err(&err)?;
            tx.commit().map_err(&err)?;
        }
        Ok(merged)
    }

    /// Appends one change set (nothing when it is empty).
    fn append(&mut self, changeset: &ChangeSet) -> Result<(), WalletError> {
        if changeset.is_empty() {
            return Ok(());
        }
        let json = self.encode(changeset)?;
        self.conn
            .execute("INSERT INTO changesets (json) VALUES (?1)", params![json])
            .map_err(db_error(&self.path))?;
        Ok(())
    }

    fn encode(&self, changeset: &ChangeSet) -> Result<String, WalletError> {
        serde_json::to_string(changeset).map_err(|source| WalletError::CorruptRecord {
            path: self.path.clone(),
            source,
        })
    }

    /// Number of stored rows (for tests of compaction).
    #[cfg(test)]
    pub(crate) fn rows(&self) -> Result<u32, WalletError> {
        self.conn
            .query_row("SELECT COUNT(*) FROM changesets", [], |r| r.get(0))
            .map_err(db_error(&self.path))
    }
}

impl WalletPersister for WalletStore {
    type Error = WalletError;

    fn initialize(persister: &mut Self) -> Result<ChangeSet, WalletError> {
        persister.load()
    }

    fn persist(persister: &mut Self, changeset: &ChangeSet) -> Result<(), WalletError> {
        persister.append(changeset)
    }
}

fn db_error(path: &Path) -> impl Fn(rusqlite::Error) -> WalletError {
    let path = path.to_path_buf();
    move |source| WalletError::Database {
        path: path.clone(),
        source,
    }
}
