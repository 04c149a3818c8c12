//! Errors of the account layer, each saying what the user can do.

use crate::keys::KeysError;
use crate::session::{SessionError, StorageError};
use crate::vault::VaultError;

/// Why an account operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccountError {
    /// The vault refused.
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// A key could not be made.
    #[error(transparent)]
    Keys(#[from] KeysError),
    /// The session's storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The factory session failed.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// A stored record of this wallet cannot be read.
    #[error("the wallet's {0} record is damaged; restore from your recovery words or a backup")]
    Damaged(&'static str),
    /// The chosen amounts are outside the LSP's terms.
    #[error("{0}")]
    Amounts(String),
    /// Something else still uses the wallet.
    #[error("the wallet is busy ({0}); wait until it is done, then try again")]
    Busy(&'static str),
    /// The stored paths cannot be used for an exit.
    #[error("cannot leave this factory: {0}")]
    Exit(String),
    /// The chain source could not be set up.
    #[error(transparent)]
    Chain(#[from] crate::chain::ChainError),
    /// A payment from the on-chain address cannot be made.
    #[error(transparent)]
    Send(#[from] crate::onchain::SendError),
}
