//! The wallet's seed and the descriptors derived from it.
//!
//! The seed is 32 random bytes stored as hex in `wallet.seed` (mode 0600), created on first start
//! and never logged: [`Seed`]'s `Debug` prints nothing secret. The descriptors are BIP 86 taproot
//! (`tr(xprv/86'/coin'/0'/0/*)` for receiving, `/1/*` for change); only their public halves reach
//! the wallet database.

use std::fmt;
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
                crate::private_file::warn_if_readable_by_others(&path);
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
                crate::private_file::write(data_dir, &path, &hex::encode(bytes))?;
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
