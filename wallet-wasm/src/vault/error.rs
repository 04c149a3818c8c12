//! Errors of the vault. Each says what went wrong and what the user can do.

/// Why a vault operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VaultError {
    /// No wallet is stored under this name.
    #[error("no wallet is stored under \"{0}\" in this browser; create one or restore a backup")]
    NotFound(String),
    /// A wallet is already stored under this name; it is never overwritten.
    #[error("a wallet is already stored under \"{0}\"; open it, or wipe it first")]
    AlreadyExists(String),
    /// The passphrase does not open this vault.
    #[error("wrong passphrase")]
    WrongPassphrase,
    /// The vault is protected by a passphrase and none was given.
    #[error("this wallet is protected by a passphrase; enter it to open the wallet")]
    PassphraseRequired,
    /// A passphrase was given but the vault has none.
    #[error("this wallet has no passphrase; open it without one")]
    NoPassphraseSet,
    /// An empty passphrase or backup password was given.
    #[error("the passphrase must not be empty; choose one, or choose no passphrase")]
    EmptyPassphrase,
    /// Another tab or window of this site holds the vault.
    #[error("the wallet is open in another tab or window; close it there, then try again")]
    OtherTabOpen,
    /// The backup password does not open this backup.
    #[error("wrong backup password")]
    WrongBackupPassword,
    /// The bytes are not a backup of this wallet's format, or are damaged.
    #[error("this is not a wallet backup, or it is damaged: {0}")]
    BadBackup(String),
    /// A stored record fails authentication or cannot be read: changed outside the wallet, or
    /// damaged.
    #[error("stored data ({0}) is damaged or was changed outside this wallet; restore a backup")]
    Corrupt(String),
    /// The vault was written by a newer wallet.
    #[error("this wallet was stored by a newer version (format {0}); update the app")]
    UnsupportedVersion(u32),
    /// The browser lacks an API the vault needs.
    #[error("{0} is not available in this browser (an old browser, or a page that is not HTTPS?)")]
    Unavailable(&'static str),
    /// The vault refuses writes for a moment.
    #[error("{0}; try again in a moment")]
    Busy(&'static str),
    /// IndexedDB failed.
    #[error("browser storage failed: {0}")]
    Storage(String),
    /// WebCrypto failed (other than a failed authentication, which has its own variant).
    #[error("browser cryptography failed: {0}")]
    Crypto(String),
}
