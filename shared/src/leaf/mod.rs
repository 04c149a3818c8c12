//! Leaf states: how a client buys inbound liquidity from its leaf's L-stock.
//!
//! A leaf is a Decker-Wattenhofer layer of its own, with two signers (the client and the LSP)
//! and `K` states ([`FactoryParams::states_per_layer`]). Every state spends the same output of
//! the leaf's parent, state `e` with relative delay `(K-1-e)·S`, so the newest state can always
//! confirm first. State 0 is the tree's leaf. State `e` pays
//!
//! - `channel`: `channel₀ + sold_e`, key path MuSig2(client, LSP), like state 0;
//! - `L-stock`: `lstock₀ - sold_e`, with state 0's scripts;
//! - the anchor. Sizes never change, so neither does the fee.
//!
//! Selling liquidity moves the leaf from state `e` to `e+1` with more sold. The superseded
//! state's L-stock gets a [redistribution](LeafState::redistribution) transaction: key path,
//! co-signed before the new state is used, paying that whole L-stock (less its fee and anchor)
//! to the client's factory key. An LSP that gets an old state confirmed (say while the client
//! is offline past the new state's shorter delay) hands the client that L-stock; the client
//! publishes the redistribution before the L-stock's CSV lets the LSP sweep it.
//!
//! The redistribution is only ever signed for a *superseded* state, so it never lets the client
//! take the L-stock of the state the leaf is in. A side signs each leaf epoch at most once: the
//! [`LeafStates`] record it keeps is its double-sign guard for these versioned spends (the
//! prevout guard of [`crate::musig`] covers every other spend, including redistributions).
//!
//! `docs/protocol.md`, "Leaf states and inbound liquidity", specifies the ceremony.

mod advance;
pub mod flow;
mod messages;
mod states;
mod sweep;
#[cfg(test)]
mod tests;

use bitcoin::{Amount, OutPoint, Sequence, TxOut};
use serde::{Deserialize, Serialize};

pub use advance::{Advance, AdvanceError};
pub use messages::{LeafPartials, LeafSigned, LiquidityAccept, LiquidityOffer, LiquidityRequest};
pub use states::{LeafStates, LeafStatesError};
pub use sweep::SweepError;

use crate::channel::CommitmentSpec;
use crate::params::{BlockDelta, FactoryParams};
use crate::path::ClientPath;
use crate::tree::{scripts, NodeKind, TreeNode, P2TR_DUST};

/// A leaf's state number, counting up from 0 (the tree's own leaf).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct LeafEpoch(pub u8);

impl LeafEpoch {
    /// State 0: the leaf built with the tree.
    pub const FIRST: LeafEpoch = LeafEpoch(0);

    /// The next state's number.
    pub fn next(self) -> Option<LeafEpoch> {
        self.0.checked_add(1).map(LeafEpoch)
    }
}

impl core::fmt::Display for LeafEpoch {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "leaf state {}", self.0)
    }
}

/// The relative delay of leaf state `epoch`: `(K-1-e)·S`, or `None` past the last state.
pub fn delay(params: &FactoryParams, epoch: LeafEpoch) -> Option<BlockDelta> {
    let left = params
        .states_per_layer
        .checked_sub(1)?
        .checked_sub(epoch.0)?;
    params.step.checked_mul(u32::from(left))
}

/// The smallest L-stock a state may keep: enough for its redistribution to pay its fee and
/// anchor and still leave the client a spendable output.
pub fn min_lstock(params: &FactoryParams) -> Amount {
    crate::tree::fee_of(params, 1) + params.anchor_value + P2TR_DUST
}

/// The opening state of the channel on a purchase's new leaf state, from the `live`
/// channel's: `client − price`, `LSP + amount + price`, the live fee rate, no HTLCs. Both sides
/// compute it from their own copy of the live channel. `None` if the balance does not cover
/// the price.
pub fn opening_spec(
    live: &CommitmentSpec,
    amount: Amount,
    price: Amount,
) -> Option<CommitmentSpec> {
    Some(CommitmentSpec {
        client_balance: live.client_balance.checked_sub(price)?,
        lsp_balance: live.lsp_balance + amount + price,
        htlcs: Vec::new(),
        feerate: live.feerate,
    })
}

/// Why a leaf state could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LeafError {
    /// Every state of the leaf's layer is used; the client gets more in its next factory.
    #[error("this leaf has used all its {count} states; buy liquidity in the next factory")]
    Exhausted {
        /// States per leaf.
        count: u8,
    },
    /// The sale does not leave the L-stock its minimum.
    #[error("only {available} of inbound liquidity is left in this leaf; {asked} was asked")]
    TooMuch {
        /// What may still be sold.
        available: Amount,
        /// What was asked.
        asked: Amount,
    },
    /// A sale of nothing.
    #[error("a liquidity purchase must be of at least one sat")]
    Nothing,
}

/// One state of a client's leaf.
///
/// Invariant: `node` is the path's leaf with `nSequence = delay(epoch)`, `channel₀ + sold` in
/// output 0 and `lstock₀ - sold` in output 1, and `lstock₀ - sold >= min_lstock`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeafState {
    /// Its number.
    pub epoch: LeafEpoch,
    /// L-stock sold to the client so far (moved into the channel).
    #[serde(with = "bitcoin::amount::serde::as_sat")]
    pub sold: Amount,
    /// The transaction, with its signature once both sides signed.
    pub node: TreeNode,
}

impl LeafState {
    /// State 0: the path's own leaf (signed if the path is).
    pub fn first(path: &ClientPath) -> LeafState {
        LeafState {
            epoch: LeafEpoch::FIRST,
            sold: Amount::ZERO,
            node: path.leaf().clone(),
        }
    }

    /// State `epoch` of `path`'s leaf, having sold `sold` in total (unsigned, unless it is
    /// state 0 with nothing sold).
    pub fn build(
        path: &ClientPath,
        epoch: LeafEpoch,
        sold: Amount,
    ) -> Result<LeafState, LeafError> {
        let params = &path.proposal().params;
        let delay = delay(params, epoch).ok_or(LeafError::Exhausted {
            count: params.states_per_layer,
        })?;
        let first = path.leaf();
        let available = first.tx.output[1]
            .value
            .checked_sub(min_lstock(params))
            .unwrap_or(Amount::ZERO);
        if sold > available {
            return Err(LeafError::TooMuch {
                available,
                asked: sold,
            });
        }
        if epoch == LeafEpoch::FIRST && sold == Amount::ZERO {
            return Ok(LeafState::first(path));
        }
        let mut node = first.clone();
        node.signature = None;
        node.tx.input[0].sequence = delay
            .to_relative_sequence()
            .unwrap_or(Sequence::ENABLE_LOCKTIME_NO_RBF);
        node.tx.output[0].value = first.tx.output[0].value + sold;
        node.tx.output[1].value = first.tx.output[1].value - sold;
        Ok(LeafState { epoch, sold, node })
    }

    /// The state after this one, selling `more` on top of what is sold.
    pub fn next(&self, path: &ClientPath, more: Amount) -> Result<LeafState, LeafError> {
        if more == Amount::ZERO {
            return Err(LeafError::Nothing);
        }
        let params = &path.proposal().params;
        let epoch = self
            .epoch
            .next()
            .filter(|e| delay(params, *e).is_some())
            .ok_or(LeafError::Exhausted {
                count: params.states_per_layer,
            })?;
        LeafState::build(path, epoch, self.sold + more)
    }

    /// What may still be sold from this state's L-stock.
    pub fn available(&self, params: &FactoryParams) -> Amount {
        self.lstock_value()
            .checked_sub(min_lstock(params))
            .unwrap_or(Amount::ZERO)
    }

    /// The channel output (vout 0).
    pub fn channel_outpoint(&self) -> OutPoint {
        OutPoint::new(self.node.txid(), 0)
    }

    /// The channel output.
    pub fn channel_output(&self) -> &TxOut {
        &self.node.tx.output[0]
    }

    /// The L-stock output (vout 1).
    pub fn lstock_outpoint(&self) -> OutPoint {
        OutPoint::new(self.node.txid(), 1)
    }

    /// The L-stock's value.
    pub fn lstock_value(&self) -> Amount {
        self.node.tx.output[1].value
    }

    /// The redistribution transaction of this state's L-stock (unsigned): spends it by key path
    /// MuSig2(client, LSP) and pays it, less fee and anchor, to the client's factory key.
    /// Signed only once this state is superseded.
    pub fn redistribution(&self, path: &ClientPath) -> TreeNode {
        let params = &path.proposal().params;
        let secp = crate::secp::ctx();
        let lstock = self.node.tx.output[1].clone();
        let client = path.client_key().x_only_public_key().0;
        let pay = TxOut {
            value: lstock.value - crate::tree::fee_of(params, 1) - params.anchor_value,
            script_pubkey: scripts::p2tr(secp, client, None),
        };
        let tx = bitcoin::Transaction {
            version: bitcoin::transaction::Version::TWO,
            lock_time: bitcoin::absolute::LockTime::ZERO,
            input: vec![bitcoin::TxIn {
                previous_output: self.lstock_outpoint(),
                script_sig: bitcoin::ScriptBuf::new(),
                sequence: Sequence::MAX,
                witness: bitcoin::Witness::new(),
            }],
            output: vec![pay, scripts::anchor_output(params.anchor_value)],
        };
        let lsp = path.proposal().lsp_key.x_only_public_key().0;
        TreeNode {
            id: self.node.id,
            kind: NodeKind::Redistribution {
                client: path.client(),
                epoch: self.epoch,
            },
            signers: self.node.signers,
            tx,
            prevout: lstock,
            merkle_root: Some(scripts::single_leaf_root(&scripts::lstock_script(
                params.lstock_csv,
                lsp,
            ))),
            signature: None,
        }
    }
}
