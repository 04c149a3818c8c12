//! Errors of the LSP's on-chain wallet. Each message says what went wrong and what to do next.

use std::path::PathBuf;

use bdk_wallet::error::{BuildFeeBumpError, CreateTxError};
use bitcoin::{Address, Amount, FeeRate, Network, Txid};

/// Everything [`LspWallet`](super::LspWallet) can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalletError {
    /// Reading or writing a file in the data dir failed.
    #[error("cannot {action} {path}: {source}; check that the data dir exists and the LSP may write to it")]
    Io {
        /// What was being done, e.g. "read".
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// `wallet.seed` exists but does not hold a seed.
    #[error("{path} does not hold a 32-byte hex seed; restore it from your backup (a new seed would not own this wallet's funds)")]
    BadSeed {
        /// The seed file.
        path: PathBuf,
    },
    /// The database exists but the seed is gone: creating a new seed would orphan the funds.
    #[error("{database} exists but {seed} is missing; restore the seed from your backup, or move {database} away to start an empty wallet")]
    SeedMissing {
        /// Where the seed should be.
        seed: PathBuf,
        /// The wallet database that needs it.
        database: PathBuf,
    },
    /// SQLite failed.
    #[error("wallet database {path} failed: {source}; check disk space and permissions")]
    Database {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The database was written by a newer LSP.
    #[error("wallet database {path} has schema {found}, newer than this LSP knows ({known}); run a newer LSP")]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// Its schema version.
        found: u32,
        /// The newest schema this build knows.
        known: u32,
    },
    /// A stored record does not decode.
    #[error("wallet database {path} holds an unreadable record: {source}; restore it from a backup, or move it away and sync again")]
    CorruptRecord {
        /// The database file.
        path: PathBuf,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },
    /// The database belongs to another seed or network, or its contents are inconsistent.
    #[error("wallet database {path} does not fit this seed and network ({reason}); use the data dir that belongs to this wallet.seed and network")]
    Mismatch {
        /// The database file.
        path: PathBuf,
        /// What did not match.
        reason: String,
    },
    /// Deriving keys or descriptors from the seed failed.
    #[error("cannot derive the wallet's keys: {0}")]
    Keys(String),
    /// The Esplora server failed or could not be reached.
    #[error("Esplora at {url} failed: {source}; check that it is running and reachable")]
    Esplora {
        /// The server.
        url: String,
        /// The client's error.
        #[source]
        source: Box<esplora_client::Error>,
    },
    /// Esplora answered with something that cannot be right.
    #[error("Esplora at {url} sent a bad answer ({what}); check that it serves {network}")]
    BadAnswer {
        /// The server.
        url: String,
        /// What was wrong.
        what: String,
        /// The wallet's network.
        network: Network,
    },
    /// Esplora's blocks do not connect to the chain the wallet has stored.
    #[error("Esplora at {url} serves a chain that does not connect to the wallet's ({reason}); check that it serves {network}")]
    ChainMismatch {
        /// The server.
        url: String,
        /// BDK's explanation.
        reason: String,
        /// The wallet's network.
        network: Network,
    },
    /// Not enough coins for the outputs and the fee.
    #[error("wallet has {} sats, needs {}; send funds to {address}", available.to_sat(), needed.to_sat())]
    InsufficientFunds {
        /// What coin selection could spend.
        available: Amount,
        /// What the outputs and fee need.
        needed: Amount,
        /// A fresh address of this wallet to fund it.
        address: Address,
    },
    /// An output is too small to relay.
    #[error("output {index} is below the dust limit; pay it at least the dust amount of its script (330 sats for P2TR)")]
    Dust {
        /// Index in the outputs that were passed.
        index: usize,
    },
    /// `fund` was called with no outputs.
    #[error("no outputs to pay; pass at least one")]
    NoOutputs,
    /// A fee bump asks for less than BIP 125 requires.
    #[error("the replacement must pay at least {} sat/vB; ask for a higher fee rate", required.to_sat_per_vb_ceil())]
    FeeRateTooLow {
        /// The lowest rate that replaces.
        required: FeeRate,
    },
    /// A fee bump pays less absolute fee than BIP 125 requires.
    #[error("the replacement must pay at least {} sats in fees; ask for a higher fee rate", required.to_sat())]
    FeeTooLow {
        /// The lowest absolute fee that replaces.
        required: Amount,
    },
    /// The fee would exceed the wallet's sanity cap.
    #[error("the fee rate would be {} sat/vB, above the cap of {} sat/vB; ask for a lower rate", fee_rate.to_sat_per_vb_ceil(), cap.to_sat_per_vb_ceil())]
    AbsurdFee {
        /// The transaction's fee rate.
        fee_rate: FeeRate,
        /// The cap.
        cap: FeeRate,
    },
    /// Building the transaction failed for another reason.
    #[error("cannot build the transaction: {0}")]
    Build(#[source] Box<CreateTxError>),
    /// Signing or finalizing failed: the seed and the database disagree.
    #[error("cannot sign the transaction ({0}); wallet.seed does not match the wallet database")]
    Signing(String),
    /// The inputs of a transaction to rebuild are no longer the wallet's unspent coins.
    #[error("the coins transaction {txid} spent are no longer available ({reason}); the factory must be funded anew")]
    InputsGone {
        /// The transaction whose inputs were asked for.
        txid: Txid,
        /// BDK's explanation.
        reason: String,
    },
    /// The transaction is not in the wallet.
    #[error("transaction {0} is not in this wallet; sync first, or check the txid")]
    UnknownTx(Txid),
    /// None of the transaction's outputs is this wallet's, so no child can bump it.
    #[error("transaction {0} pays nothing back to this wallet; there is no output to bump it with (CPFP)")]
    NothingToSpend(Txid),
    /// The transaction has no P2A anchor output for a child to spend.
    #[error(
        "transaction {0} has no P2A anchor output; nothing but its own signers can raise its fee"
    )]
    NoAnchor(Txid),
    /// The transaction is already confirmed.
    #[error("transaction {0} is already confirmed; there is nothing to bump")]
    AlreadyConfirmed(Txid),
    /// The transaction does not signal replaceability.
    #[error("transaction {0} does not signal replaceability (BIP 125); wait for it, or spend one of its outputs with a higher fee (CPFP)")]
    NotReplaceable(Txid),
    /// Fee bumping failed for another reason.
    #[error("cannot bump the fee of {txid}: {source}; sync and try again")]
    Bump {
        /// The transaction to replace.
        txid: Txid,
        /// BDK's error.
        #[source]
        source: BuildFeeBumpError,
    },
    /// Esplora refused the transaction.
    #[error("Esplora at {url} refused transaction {txid}: {source}; sync the wallet, then fund or bump again")]
    Broadcast {
        /// The server.
        url: String,
        /// The transaction.
        txid: Txid,
        /// The client's error (it carries the node's reason).
        #[source]
        source: Box<esplora_client::Error>,
    },
    /// A panic while the wallet was locked left its memory state unknown.
    #[error("the wallet's state is unknown after an earlier panic; restart the LSP (what is on disk is consistent)")]
    Poisoned,
    /// A background task for blocking disk work failed.
    #[error("the wallet's disk task failed: {0}; restart the LSP")]
    Task(String),
}

impl From<crate::private_file::FileError> for WalletError {
    fn from(e: crate::private_file::FileError) -> Self {
        WalletError::Io {
            action: e.action,
            path: e.path,
            source: e.source,
        }
    }
}
