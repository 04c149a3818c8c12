//! Why a tree could not be built or changed.

use bitcoin::secp256k1::PublicKey;
use bitcoin::Amount;

use crate::params::{Epoch, ParamsError};
use crate::types::ClientId;

/// Why a proposal does not describe a valid tree, or a tree cannot move to a new state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TreeError {
    /// The parameters themselves are invalid.
    #[error("invalid factory parameters: {0}")]
    Params(#[from] ParamsError),
    /// A factory needs at least one client.
    #[error("a factory needs at least one client")]
    NoClients,
    /// More clients than the parameters allow.
    #[error("{got} clients exceed the parameters' limit of {max}")]
    TooManyClients {
        /// Clients in the proposal.
        got: usize,
        /// The limit.
        max: u32,
    },
    /// The same key twice (two clients, or a client and the LSP).
    #[error("key {key} appears twice; every participant needs its own fresh factory key")]
    DuplicateKey {
        /// The repeated key.
        key: PublicKey,
    },
    /// An output would be below the P2TR dust threshold.
    #[error("client {client}'s {what} of {amount} is below the dust threshold of 330 sat")]
    BelowDust {
        /// The client.
        client: ClientId,
        /// `"channel"` or `"L-stock"`.
        what: &'static str,
        /// The amount.
        amount: Amount,
    },
    /// The amounts add up to more than all bitcoin.
    #[error("the factory's amounts add up to more than 21 million BTC")]
    AmountOverflow,
    /// The funding output does not hold exactly what the tree needs.
    #[error("the funding output holds {got} but the tree needs exactly {expected}")]
    FundingAmountMismatch {
        /// What the tree needs: clients' amounts plus every pre-signed fee and anchor.
        expected: Amount,
        /// What the proposal says.
        got: Amount,
    },
    /// The epoch is past the last state the odometer can express.
    #[error("{epoch} is out of range: this tree has {count} epochs")]
    EpochOutOfRange {
        /// The epoch given.
        epoch: Epoch,
        /// Number of epochs.
        count: u32,
    },
    /// Every epoch is used; only a refresh or a new factory can go on.
    #[error("the factory used all its {count} epochs; refresh it or rotate to a new factory")]
    EpochsExhausted {
        /// Number of epochs.
        count: u32,
    },
    /// The root DW layer has no state left, so no refresh can supersede the current states.
    #[error("the root DW layer has no state left to refresh into; rotate to a new factory")]
    RefreshExhausted,
    /// A refresh must move the timeout later.
    #[error("a refresh must start after the current start height")]
    RefreshNotLater,
    /// The timeout is not a valid block height.
    #[error("the factory timeout overflows the block height range")]
    HeightOverflow,
    /// MuSig2 key aggregation failed (an invalid key set).
    #[error("MuSig2 key aggregation failed")]
    KeyAggregation,
    /// No such client.
    #[error("there is no client {0} in this factory")]
    NoSuchClient(ClientId),
}
