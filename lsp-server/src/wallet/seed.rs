//! The wallet's seed and the descriptors derived from it.
//!
//! The seed is 32 random bytes stored as hex in `wallet.seed` (mode 0600), created on first start
//! and never logged: [`Seed`]'s `Debug` prints nothing secret. The descriptors are BIP 86 taproot
//! (`tr(xprv/86'/coin'/0'/0/*)` for receiving, `/1/*` for change); only their public halves reach
//! the wallet database.

use std::fmt;
use std::io::Write;
use std::path::Path;

use bitcoin::bip32::Xpriv;
use bitcoin::{Network, NetworkKind};
use rand::RngCore;

use super::WalletError;

/// File name of the seed in the data dir.
pub(crate) const SEED_FILE: &str = "wallet.seed";
const SEED_LEN: usize = 32;

/// The wallet's 32-byte seed. Never printed.
pub(crate) struct Seed([u8; SEED_LEN]);

impl fmt::Debug for Seed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Seed(..)")
    }
}

impl Seed {
    /// Loads the seed from `data_dir`, creating one on first start.
    ///
    /// Refuses to create a seed when `database` already exists: that database belongs to a seed
    /// that was lost, and a new one would not own its funds.
    pub(crate) fn load_or_create(data_dir: &Path, database: &Path) -> Result<Seed, WalletError> {
        let path = data_dir.join(SEED_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                warn_if_readable_by_others(&path);
                Seed::parse(&text).ok_or(WalletError::BadSeed { path })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if database.exists() {
                    return Err(WalletError::SeedMissing {
                        seed: path,
                        database: database.to_path_buf(),
                    });
                }
                let mut bytes = [0u8; SEED_LEN];
                rand::thread_rng().fill_bytes(&mut bytes);
                write_private(data_dir, &path, &hex::encode(bytes))?;
                tracing::info!(path = %path.display(), "created a new on-chain wallet seed; back it up");
                Ok(Seed(bytes))
            }
            Err(source) => Err(WalletError::Io {
                action: "read",
                path,
                source,
            }),
        }
    }

    fn parse(text: &str) -> Option<Seed> {
        let bytes = hex::decode(text.trim()).ok()?;
        Some(Seed(bytes.try_into().ok()?))
    }

    /// The BIP 32 master key for `network`.
    pub(crate) fn master_key(&self, network: Network) -> Result<Xpriv, WalletError> {
        Xpriv::new_master(NetworkKind::from(network), &self.0)
            .map_err(|e| WalletError::Keys(e.to_string()))
    }
}

/// The receive and change descriptors (with private keys: never log them).
pub(crate) struct Descriptors {
    pub(crate) external: String,
    pub(crate) internal: String,
}

impl fmt::Debug for Descriptors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Descriptors(..)")
    }
}

/// BIP 86 descriptors of `master`: coin type 0 on mainnet, 1 on every test network.
pub(crate) fn descriptors(master: &Xpriv, network: Network) -> Descriptors {
    let coin = match network {
        Network::Bitcoin => 0,
        _ => 1,
    };
    Descriptors {
        external: format!("tr({master}/86'/{coin}'/0'/0/*)"),
        internal: format!("tr({master}/86'/{coin}'/0'/1/*)"),
    }
}

/// The seed should be readable by the LSP's user alone; say so (without stopping) if not.
fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(path = %path.display(), "the wallet seed is readable by other users; run chmod 600 on it");
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// Writes `contents` to `path` with mode 0600 through a temporary file and a rename, so a crash
/// never leaves a half-written seed behind.
fn write_private(dir: &Path, path: &Path, contents: &str) -> Result<(), WalletError> {
    let tmp = path.with_extension("seed.tmp");
    let io = |action, path: &Path| {
        let path = path.to_path_buf();
        move |source| WalletError::Io {
            action,
            path,
            source,
        }
    };
    // A leftover from a crash may have other permissions: start afresh.
    if let Err(source) = std::fs::remove_file(&tmp) {
        if source.kind() != std::io::ErrorKind::NotFound {
            return Err(io("remove", &tmp)(source));
        }
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut file = opts.open(&tmp).map_err(io("create", &tmp))?;
    file.write_all(contents.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io("write", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io("rename into place", path))?;
    // Make the rename itself durable.
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("sync", dir))?;
    Ok(())
}
