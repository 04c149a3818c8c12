//! The Lightning node's seed: 64 random bytes as hex in `ln.seed` (mode 0600), created on first
//! start, never logged.
//!
//! It is separate from the on-chain wallet's `wallet.seed` so that either can be rotated, backed
//! up or moved without the other, and so that turning the node on never changes the wallet's
//! keys. Everything the node owns (its node id, channel keys, its own on-chain wallet) derives
//! from it; the channel state that goes with it lives in the node's storage directory.

use std::fmt;
use std::path::{Path, PathBuf};

use rand::RngCore;

use super::LnError;

/// File name of the seed in the data dir.
pub(crate) const SEED_FILE: &str = "ln.seed";
/// LDK's entropy length.
const SEED_LEN: usize = ldk_node::config::WALLET_KEYS_SEED_LEN;

/// The node's 64-byte seed. Never printed.
pub(crate) struct LnSeed([u8; SEED_LEN]);

impl fmt::Debug for LnSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LnSeed(..)")
    }
}

impl LnSeed {
    /// Loads the seed from `data_dir`, creating one on first start.
    ///
    /// Refuses to create a seed when `storage` (the node's state) already exists: that state
    /// belongs to a seed that was lost, and a new one could not spend its channels.
    pub(crate) fn load_or_create(data_dir: &Path, storage: &Path) -> Result<LnSeed, LnError> {
        let path = data_dir.join(SEED_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                crate::private_file::warn_if_readable_by_others(&path);
                LnSeed::parse(&text).ok_or(LnError::BadSeed { path })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if storage.exists() {
                    return Err(LnError::SeedMissing {
                        seed: path,
                        storage: storage.to_path_buf(),
                    });
                }
                let mut bytes = [0u8; SEED_LEN];
                rand::thread_rng().fill_bytes(&mut bytes);
                crate::private_file::write(data_dir, &path, &hex::encode(bytes))?;
                tracing::info!(path = %path.display(), "created a new Lightning node seed; back it up");
                Ok(LnSeed(bytes))
            }
            Err(source) => Err(crate::private_file::FileError {
                action: "read",
                path,
                source,
            }
            .into()),
        }
    }

    fn parse(text: &str) -> Option<LnSeed> {
        let bytes = hex::decode(text.trim()).ok()?;
        Some(LnSeed(bytes.try_into().ok()?))
    }

    /// The bytes LDK derives every key from.
    pub(crate) fn bytes(&self) -> [u8; SEED_LEN] {
        self.0
    }
}

/// Where the node keeps its state: `ln/` in the data dir.
pub(crate) fn storage_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("ln")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_private_and_the_same_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let storage = storage_dir(dir.path());
        let a = LnSeed::load_or_create(dir.path(), &storage).unwrap();
        let b = LnSeed::load_or_create(dir.path(), &storage).unwrap();
        assert_eq!(a.bytes(), b.bytes());
        assert_ne!(a.bytes(), [0u8; SEED_LEN]);
        assert_eq!(format!("{a:?}"), "LnSeed(..)", "Debug shows nothing secret");
        let text = std::fs::read_to_string(dir.path().join(SEED_FILE)).unwrap();
        assert_eq!(text, hex::encode(a.bytes()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(SEED_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn refuses_a_new_seed_beside_existing_state_and_a_bad_seed() {
        let dir = tempfile::tempdir().unwrap();
        let storage = storage_dir(dir.path());
        std::fs::create_dir_all(&storage).unwrap();
        let err = LnSeed::load_or_create(dir.path(), &storage).unwrap_err();
        assert!(matches!(err, LnError::SeedMissing { .. }), "{err}");
        assert!(!dir.path().join(SEED_FILE).exists());

        std::fs::write(dir.path().join(SEED_FILE), "abcd").unwrap();
        let err = LnSeed::load_or_create(dir.path(), &storage).unwrap_err();
        assert!(matches!(err, LnError::BadSeed { .. }), "{err}");
        assert!(err.to_string().contains("backup"), "{err}");
    }
}
