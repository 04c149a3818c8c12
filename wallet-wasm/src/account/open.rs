//! An open wallet: its vault, its keys and its profile.

use std::cell::RefCell;
use std::rc::Rc;

use crate::chain::TipWatch;
use crate::keys::{Seed, SweepIndex, WalletKeys};
use crate::session::{Storage, StoredPath, VaultStorage};
use crate::vault::{Protection, ProtectionMode, Vault};

use super::{AccountError, Profile, PROFILE_RECORD, SEED_RECORD, VAULT_NAME};

/// The open wallet. Holds the vault (and so its one-writer lock) while it lives.
pub struct Account {
    pub(super) vault: Rc<Vault>,
    keys: WalletKeys,
    profile: RefCell<Profile>,
    tips: TipWatch,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("vault", &self.vault)
            .field("profile", &self.profile)
            .finish()
    }
}

impl Account {
    /// Whether this browser profile holds a wallet, and how it opens.
    pub async fn stored_mode() -> Result<Option<ProtectionMode>, AccountError> {
        Ok(Vault::inspect(VAULT_NAME).await?)
    }

    /// Whether another tab has the wallet open (so this one cannot open it now).
    pub async fn open_elsewhere() -> Result<bool, AccountError> {
        Ok(Vault::open_elsewhere(VAULT_NAME).await?)
    }

    /// Creates the wallet from `seed` (new or restored words) with `protection`.
    pub async fn create(
        seed: &Seed,
        protection: Protection<'_>,
        profile: Profile,
    ) -> Result<Account, AccountError> {
        Account::create_in(VAULT_NAME, seed, protection, profile).await
    }

    /// [`Account::create`] in the vault named `name`.
    pub(crate) async fn create_in(
        name: &str,
        seed: &Seed,
        protection: Protection<'_>,
        profile: Profile,
    ) -> Result<Account, AccountError> {
        let vault = Vault::create(name, protection).await?;
        vault.put(SEED_RECORD, &seed.entropy()).await?;
        vault.put(PROFILE_RECORD, &profile.encode()).await?;
        Account::assemble(vault, seed, profile)
    }

    /// Restores the wallet from an exported backup file.
    pub async fn restore_backup(
        backup: &[u8],
        password: &str,
        protection: Protection<'_>,
    ) -> Result<Account, AccountError> {
        let vault = Vault::restore_backup(VAULT_NAME, backup, password, protection).await?;
        Account::load(vault).await
    }

    /// Opens the stored wallet (`passphrase` is `None` for a wallet without one).
    pub async fn open(passphrase: Option<&str>) -> Result<Account, AccountError> {
        Account::open_in(VAULT_NAME, passphrase).await
    }

    /// [`Account::open`] of the vault named `name`.
    pub(crate) async fn open_in(
        name: &str,
        passphrase: Option<&str>,
    ) -> Result<Account, AccountError> {
        let vault = Vault::open(name, passphrase).await?;
        Account::load(vault).await
    }

    async fn load(vault: Vault) -> Result<Account, AccountError> {
        let entropy = vault
            .get(SEED_RECORD)
            .await?
            .ok_or(AccountError::Damaged("seed"))?;
        let seed = Seed::from_entropy(&entropy).map_err(|_| AccountError::Damaged("seed"))?;
        let profile = vault
            .get(PROFILE_RECORD)
            .await?
            .and_then(|b| Profile::decode(&b))
            .ok_or(AccountError::Damaged("profile"))?;
        Account::assemble(vault, &seed, profile)
    }

    fn assemble(vault: Vault, seed: &Seed, profile: Profile) -> Result<Account, AccountError> {
        let keys = WalletKeys::new(seed, profile.network)?;
        let tips = TipWatch::starting_at(profile.highest_tip.unwrap_or(0));
        Ok(Account {
            vault: Rc::new(vault),
            keys,
            profile: RefCell::new(profile),
            tips,
        })
    }

    /// The highest tip this wallet has seen, shared by all its chain reads (a tip far below it
    /// is refused). Stored in the profile when a join starts and ends.
    pub fn tip_watch(&self) -> TipWatch {
        self.tips.clone()
    }

    /// The wallet's keys.
    pub fn keys(&self) -> &WalletKeys {
        &self.keys
    }

    /// A copy of the profile.
    pub fn profile(&self) -> Profile {
        self.profile.borrow().clone()
    }

    /// Changes the profile and stores it (durably) before returning.
    pub async fn update(&self, change: impl FnOnce(&mut Profile)) -> Result<Profile, AccountError> {
        let mut next = self.profile();
        change(&mut next);
        self.vault.put(PROFILE_RECORD, &next.encode()).await?;
        *self.profile.borrow_mut() = next.clone();
        Ok(next)
    }

    /// The address exits and sweeps pay to.
    pub fn sweep_address(&self) -> Result<bitcoin::Address, AccountError> {
        let index = SweepIndex::new(0)?;
        Ok(self.keys.sweep(index)?.address().clone())
    }

    /// The internal (BIP-86) key of [`sweep_address`](Self::sweep_address): its coins pay an
    /// exit's fee bumps.
    pub fn sweep_secret(&self) -> Result<bitcoin::secp256k1::SecretKey, AccountError> {
        let index = SweepIndex::new(0)?;
        Ok(self.keys.sweep(index)?.internal_keypair().secret_key())
    }

    /// The session storage inside this wallet's vault.
    pub fn storage(&self) -> VaultStorage {
        VaultStorage::new(self.vault.clone())
    }

    /// Every stored signed path.
    pub async fn paths(&self) -> Result<Vec<StoredPath>, AccountError> {
        Ok(self.storage().load_paths().await?)
    }

    /// How the vault is protected.
    pub fn mode(&self) -> ProtectionMode {
        self.vault.mode()
    }

    /// The whole wallet, encrypted under `password`, as a file's bytes.
    pub async fn export_backup(&self, password: &str) -> Result<Vec<u8>, AccountError> {
        Ok(self.vault.export_backup(password).await?)
    }

    /// How the wallet is protected now.
    pub fn protection(&self) -> ProtectionMode {
        self.vault.mode()
    }

    /// Re-encrypts the whole wallet under `protection` (a new passphrase, or the device key),
    /// all at once. Refused while a factory session writes to the wallet.
    pub async fn change_protection(&self, protection: Protection<'_>) -> Result<(), AccountError> {
        if Rc::strong_count(&self.vault) > 1 {
            return Err(AccountError::Busy("a factory session is running"));
        }
        Ok(self.vault.change_protection(protection).await?)
    }

    /// Deletes the wallet from this browser. Fails if something else still holds the vault.
    pub async fn wipe(self) -> Result<(), AccountError> {
        let vault = Rc::try_unwrap(self.vault)
            .map_err(|_| AccountError::Busy("a factory session is running"))?;
        Ok(vault.wipe().await?)
    }
}
