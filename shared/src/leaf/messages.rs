//! The leaf-advance messages (carried in `WireMsg`), in the order they travel.

use bitcoin::secp256k1::schnorr;
use bitcoin::Amount;
use serde::{Deserialize, Serialize};

use super::LeafEpoch;
use crate::musig::{PartialSig, PubNonce};
use crate::pay::{ChannelId, ChannelOpen};

/// Wallet → LSP: buy `amount` of inbound liquidity on `channel`'s leaf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiquidityRequest {
    /// The channel whose leaf advances.
    pub channel: ChannelId,
    /// Liquidity to move from the L-stock into the channel.
    #[serde(with = "bitcoin::amount::serde::as_sat")]
    pub amount: Amount,
}

/// LSP → wallet: the advance it offers, its side of the new channel, and its public nonces
/// for the new leaf state and the redistribution of the current one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiquidityOffer {
    /// The channel.
    pub channel: ChannelId,
    /// The new leaf state.
    pub leaf: LeafEpoch,
    /// Liquidity moved.
    #[serde(with = "bitcoin::amount::serde::as_sat")]
    pub amount: Amount,
    /// What the client pays for it, out of its channel balance.
    #[serde(with = "bitcoin::amount::serde::as_sat")]
    pub price: Amount,
    /// The LSP's basepoints for the channel on the new state's output.
    pub open: ChannelOpen,
    /// The LSP's nonces: new state, redistribution.
    pub nonces: [PubNonce; 2],
}

/// Wallet → LSP: the offer is accepted; the wallet's side of the new channel. Round 0 of the
/// new channel follows (`channel` frames with `leaf` set).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiquidityAccept {
    /// The channel.
    pub channel: ChannelId,
    /// The new leaf state.
    pub leaf: LeafEpoch,
    /// The wallet's basepoints for the new channel.
    pub open: ChannelOpen,
}

/// Wallet → LSP, once round 0 of the new channel is done: its nonces and partial signatures
/// for the new state and the redistribution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeafPartials {
    /// The channel.
    pub channel: ChannelId,
    /// The new leaf state.
    pub leaf: LeafEpoch,
    /// The wallet's nonces.
    pub nonces: [PubNonce; 2],
    /// The wallet's partial signatures.
    pub partials: [PartialSig; 2],
}

/// LSP → wallet: both final signatures. The leaf is in its new state, and the channel lives on
/// the new state's output. Sent again when the wallet re-opens its channel before storing it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeafSigned {
    /// The channel.
    pub channel: ChannelId,
    /// The new leaf state.
    pub leaf: LeafEpoch,
    /// New state, redistribution.
    pub signatures: [schnorr::Signature; 2],
}
