//! Encrypted backups: every record in one file, sealed with a key from a backup password, and
//! restore from that file into a new vault.
//!
//! The file is a small JSON envelope (format, version, `pbkdf2-sha256`, iterations, salt — none
//! secret) around `iv || AES-256-GCM(records as JSON)`. Restoring needs only the file and the
//! password, not the browser it came from (a device key never enters a backup).

use zeroize::Zeroizing;

use super::crypto;
use super::format::{BackupContents, BackupEnvelope, BackupRecord, Protection, BACKUP_AAD};
use super::{Vault, VaultError};

impl Vault {
    /// All records, encrypted under `password` (PBKDF2-SHA256 with a fresh salt, AES-256-GCM).
    /// Use the vault's passphrase or a separate backup password; either way it is needed to
    /// restore.
    pub async fn export_backup(&self, password: &str) -> Result<Vec<u8>, VaultError> {
        let contents = BackupContents {
            records: self
                .read_all()
                .await?
                .into_iter()
                .map(|(name, value)| BackupRecord {
                    name,
                    value: value.to_vec(),
                })
                .collect(),
        };
        let params = crypto::fresh_kdf();
        let key = crypto::passphrase_key(password, params).await?;
        let sealed = crypto::seal(&key, BACKUP_AAD, &contents.encode()).await?;
        Ok(BackupEnvelope::new(params, sealed).encode())
    }

    /// Creates vault `name` protected by `protection` from `backup`. The backup is checked
    /// (password and integrity) before anything is written; an existing vault of that name is
    /// never overwritten ([`VaultError::AlreadyExists`]).
    pub async fn restore_backup(
        name: &str,
        backup: &[u8],
        password: &str,
        protection: Protection<'_>,
    ) -> Result<Vault, VaultError> {
        let envelope = BackupEnvelope::decode(backup)?;
        let key = crypto::passphrase_key(password, envelope.params).await?;
        let plain = match crypto::open(&key, BACKUP_AAD, &envelope.data).await? {
            Ok(plain) => Zeroizing::new(plain),
            Err(crypto::OpenFailed) => return Err(VaultError::WrongBackupPassword),
        };
        let mut contents = BackupContents::decode(&plain)?;
        let records = contents
            .records
            .iter_mut()
            .map(|r| {
                (
                    std::mem::take(&mut r.name),
                    Zeroizing::new(std::mem::take(&mut r.value)),
                )
            })
            .collect();
        Vault::create_with(name, protection, records).await
    }
}
