//! Native [`Storage`]: one directory of JSON files, each written atomically (temporary file,
//! fsync, rename, fsync of the directory), on tokio's blocking pool.
//!
//! Layout: `guard.json` (every double-sign record), `path-<factory>-<session>.json` (one per
//! signed path).

use std::io::Write;
use std::path::{Path, PathBuf};

use shared::musig::GuardRecord;

use super::storage::{Storage, StorageError, StoredPath};

const GUARD_FILE: &str = "guard.json";

/// A directory holding one wallet's session data.
#[derive(Debug, Clone)]
pub struct DirStorage {
    dir: PathBuf,
}

impl DirStorage {
    /// Uses `dir`, creating it if needed.
    pub fn open(dir: impl Into<PathBuf>) -> Result<DirStorage, StorageError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        Ok(DirStorage { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(PathBuf) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || work(dir))
            .await
            .map_err(|e| StorageError::Io {
                action: "run the storage task for",
                path: self.dir.display().to_string(),
                reason: e.to_string(),
            })?
    }
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl Fn(std::io::Error) -> StorageError + 'a {
    move |e| StorageError::Io {
        action,
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// Replaces `dir/name` with `bytes`, durably.
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), StorageError> {
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    let mut file = std::fs::File::create(&tmp).map_err(io("create", &tmp))?;
    file.write_all(bytes).map_err(io("write", &tmp))?;
    file.sync_all().map_err(io("fsync", &tmp))?;
    drop(file);
    std::fs::rename(&tmp, &path).map_err(io("rename", &path))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("fsync", dir))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, StorageError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StorageError::Corrupt {
                path: path.display().to_string(),
                reason: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io("read", path)(e)),
    }
}

fn encode<T: serde::Serialize>(value: &T, path: &Path) -> Result<Vec<u8>, StorageError> {
    serde_json::to_vec(value).map_err(|e| StorageError::Corrupt {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

impl Storage for DirStorage {
    async fn save_guard_records(&mut self, records: &[GuardRecord]) -> Result<(), StorageError> {
        let records = records.to_vec();
        self.blocking(move |dir| {
            let path = dir.join(GUARD_FILE);
            let mut all: Vec<GuardRecord> = read_json(&path)?.unwrap_or_default();
            all.extend(records);
            all.sort();
            all.dedup();
            write_atomic(&dir, GUARD_FILE, &encode(&all, &path)?)
        })
        .await
    }

    async fn load_guard_records(&mut self) -> Result<Vec<GuardRecord>, StorageError> {
        self.blocking(|dir| Ok(read_json(&dir.join(GUARD_FILE))?.unwrap_or_default()))
            .await
    }

    async fn save_path(&mut self, path: &StoredPath) -> Result<(), StorageError> {
        let record = path.clone();
        self.blocking(move |dir| {
            let name = format!("path-{}-{}.json", record.factory, record.session);
            let bytes = encode(&record, &dir.join(&name))?;
            write_atomic(&dir, &name, &bytes)
        })
        .await
    }

    async fn load_paths(&mut self) -> Result<Vec<StoredPath>, StorageError> {
        self.blocking(|dir| {
            let mut out = Vec::new();
            let entries = std::fs::read_dir(&dir).map_err(io("list", &dir))?;
            for entry in entries {
                let path = entry.map_err(io("list", &dir))?.path();
                let is_path = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("path-") && n.ends_with(".json"));
                if is_path {
                    out.extend(read_json::<StoredPath>(&path)?);
                }
            }
            out.sort_by_key(|p| (p.factory, p.session));
            Ok(out)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;
    use bitcoin::{OutPoint, TapSighash, Txid};

    #[tokio::test]
    async fn guard_records_accumulate_durably() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut storage = DirStorage::open(dir.path()).expect("open");
        let r = |v: u32, b: u8| GuardRecord {
            prevout: OutPoint::new(Txid::all_zeros(), v),
            sighash: TapSighash::from_byte_array([b; 32]),
        };
        storage.save_guard_records(&[r(1, 1)]).await.expect("save");
        storage
            .save_guard_records(&[r(2, 2), r(1, 1)])
            .await
            .expect("save");
        let mut reopened = DirStorage::open(dir.path()).expect("reopen");
        assert_eq!(
            reopened.load_guard_records().await.expect("load"),
            vec![r(1, 1), r(2, 2)]
        );
        assert!(reopened.load_paths().await.expect("paths").is_empty());
        assert!(!dir.path().join("guard.json.tmp").exists());
    }
}
