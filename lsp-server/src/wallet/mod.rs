//! The LSP's on-chain wallet for its own funds: BDK over a taproot (BIP 86) descriptor, synced
//! through Esplora, persisted in `wallet.sqlite` beside a `wallet.seed` in the data dir.
//!
//! Call order: [`LspWallet::open`] once; [`sync`](LspWallet::sync) before reading balances or
//! spending (the first sync is a full scan, later ones check revealed addresses only);
//! [`fund`](LspWallet::fund) to build, sign and store a transaction, then
//! [`broadcast`](LspWallet::broadcast) it; [`bump_fee`](LspWallet::bump_fee) replaces an
//! unconfirmed one (every transaction signals RBF); [`tx_status`](LspWallet::tx_status) and
//! [`fee_rate_estimate`](LspWallet::fee_rate_estimate) ask Esplora.
//!
//! Guarantees: a transaction is persisted before it is returned, so nothing can be broadcast that
//! the wallet would forget after a crash; a funding transaction that never reaches the network is
//! dropped (its coins freed) by the next sync; the seed and private descriptors are never logged
//! nor written to the database. Methods that touch only memory and disk are plain functions; the
//! ones that talk to Esplora are `async`, and no lock is held across a network call.

mod chain;
mod cpfp;
mod error;
mod seed;
mod spend;
mod store;
#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};

use bdk_wallet::{KeychainKind, PersistedWallet, Wallet};
use bitcoin::bip32::Xpriv;
use bitcoin::{Address, Amount, Network};
use esplora_client::AsyncClient;

pub use chain::TxStatus;
pub use cpfp::Bump;
pub use error::WalletError;

use seed::Seed;
use store::WalletStore;

/// The LSP's on-chain wallet. Share it behind an `Arc`; every method takes `&self`.
pub struct LspWallet {
    state: Mutex<State>,
    esplora: AsyncClient,
    esplora_url: String,
    /// Signs every input: the BIP 32 master key the descriptors derive from.
    master: Xpriv,
    network: Network,
    /// Pre-signed transactions the LSP must publish whose fee bump this wallet could not pay
    /// at its last try (`channels::publish`): the operator must fund the wallet.
    unfunded: Mutex<std::collections::BTreeSet<bitcoin::Txid>>,
}

impl std::fmt::Debug for LspWallet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LspWallet")
            .field("network", &self.network)
            .field("esplora_url", &self.esplora_url)
            .finish_non_exhaustive()
    }
}

/// The BDK wallet and where its changes go; always locked together.
struct State {
    wallet: PersistedWallet<WalletStore>,
    store: WalletStore,
}

impl State {
    /// Writes every staged change to `wallet.sqlite`.
    fn persist(&mut self) -> Result<(), WalletError> {
        self.wallet.persist(&mut self.store)?;
        Ok(())
    }
}

/// What the wallet owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Balance {
    /// In confirmed outputs (immature coinbase outputs excluded).
    pub confirmed: Amount,
    /// In unconfirmed outputs, our own change included.
    pub pending: Amount,
}

impl Balance {
    /// Confirmed plus pending.
    pub fn total(&self) -> Amount {
        self.confirmed + self.pending
    }
}

impl LspWallet {
    /// Opens the wallet in `data_dir` (creating the seed and database on first start) for
    /// `network`, reading the chain from the Esplora server at `esplora_url`.
    ///
    /// Does not contact Esplora; call [`sync`](Self::sync) next. The disk work runs on tokio's
    /// blocking pool.
    pub async fn open(
        data_dir: &Path,
        network: Network,
        esplora_url: &str,
    ) -> Result<LspWallet, WalletError> {
        let dir = data_dir.to_path_buf();
        let (state, master) = tokio::task::spawn_blocking(move || open_blocking(&dir, network))
            .await
            .map_err(|e| WalletError::Task(e.to_string()))??;
        let esplora_url = esplora_url.trim_end_matches('/').to_owned();
        let esplora = esplora_client::Builder::new(&esplora_url)
            .build_async()
            .map_err(|source| WalletError::Esplora {
                url: esplora_url.clone(),
                source: Box::new(source),
            })?;
        Ok(LspWallet {
            state: Mutex::new(state),
            esplora,
            esplora_url,
            master,
            network,
            unfunded: Mutex::default(),
        })
    }

    /// Records whether the fee bump of `parent` could be paid at its last try.
    pub fn bump_funded(&self, parent: bitcoin::Txid, funded: bool) {
        let mut unfunded = self
            .unfunded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if funded {
            unfunded.remove(&parent);
        } else {
            unfunded.insert(parent);
        }
    }

    /// How many pre-signed transactions wait for this wallet to pay their fee bump.
    pub fn unfunded_bumps(&self) -> u64 {
        self.unfunded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len() as u64
    }

    /// The network the wallet was opened for.
    pub fn network(&self) -> Network {
        self.network
    }

    /// The balance as of the last sync (plus what this wallet spent and received since).
    pub fn balance(&self) -> Balance {
        // Reading is safe even after a panic elsewhere: nothing is written here.
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let b = state.wallet.balance();
        Balance {
            confirmed: b.confirmed,
            pending: b.trusted_pending + b.untrusted_pending,
        }
    }

    /// A new receiving address (persisted as revealed, so syncs watch it).
    pub fn next_address(&self) -> Result<Address, WalletError> {
        let mut state = self.lock()?;
        let info = state.wallet.reveal_next_address(KeychainKind::External);
        state.persist()?;
        Ok(info.address)
    }

    /// The first receiving address no transaction paid yet (revealing one only when every
    /// revealed address was used), for showing the operator.
    pub fn receive_address(&self) -> Result<Address, WalletError> {
        let mut state = self.lock()?;
        let info = state.wallet.next_unused_address(KeychainKind::External);
        state.persist()?;
        Ok(info.address)
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>, WalletError> {
        self.state.lock().map_err(|_| WalletError::Poisoned)
    }
}

/// Loads (or creates) the seed, the database and the BDK wallet.
fn open_blocking(dir: &Path, network: Network) -> Result<(State, Xpriv), WalletError> {
    std::fs::create_dir_all(dir).map_err(|source| WalletError::Io {
        action: "create",
        path: dir.to_path_buf(),
        source,
    })?;
    let db_path = dir.join(store::DB_FILE);
    let seed = Seed::load_or_create(dir, &db_path)?;
    let master = seed.master_key(network)?;
    let descriptors = seed::descriptors(&master, network);
    let mut store = WalletStore::open(&db_path)?;
    let loaded = Wallet::load()
        .descriptor(KeychainKind::External, Some(descriptors.external.clone()))
        .descriptor(KeychainKind::Internal, Some(descriptors.internal.clone()))
        .check_network(network)
        .load_wallet(&mut store)
        .map_err(|e| match e {
            bdk_wallet::LoadWithPersistError::Persist(e) => e,
            bdk_wallet::LoadWithPersistError::InvalidChangeSet(e) => WalletError::Mismatch {
                path: db_path.clone(),
                reason: e.to_string(),
            },
        })?;
    let wallet = match loaded {
        Some(wallet) => wallet,
        None => Wallet::create(descriptors.external, descriptors.internal)
            .network(network)
            .create_wallet(&mut store)
            .map_err(|e| match e {
                bdk_wallet::CreateWithPersistError::Persist(e) => e,
                other => WalletError::Mismatch {
                    path: db_path.clone(),
                    reason: other.to_string(),
                },
            })?,
    };
    Ok((State { wallet, store }, master))
}

/// Seconds since the Unix epoch, for BDK's mempool "last seen" marks.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
