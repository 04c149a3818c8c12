//! What one side keeps about one leaf: its signed states, the redistributions of the superseded
//! ones, and the double-sign record of the leaf's versioned spends.

use std::collections::BTreeMap;

use bitcoin::{Amount, OutPoint, TapSighash};
use serde::{Deserialize, Serialize};

use super::{LeafEpoch, LeafState};
use crate::path::ClientPath;
use crate::tree::TreeNode;

/// Why a leaf state was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LeafStatesError {
    /// The state is not the one after the latest.
    #[error("expected {expected}, got {got}")]
    OutOfOrder {
        /// The only epoch that may come next.
        expected: LeafEpoch,
        /// The one offered.
        got: LeafEpoch,
    },
    /// This side already signed a different transaction for that state.
    #[error("refusing to sign {0} again with a different transaction")]
    Conflict(LeafEpoch),
    /// A new state must sell more than the one it replaces.
    #[error("a new leaf state must move more liquidity into the channel than the last")]
    NotMore,
    /// A transaction lacks its signature, or it does not verify.
    #[error("the {0} is not validly signed")]
    Unsigned(&'static str),
    /// The state is not of this leaf.
    #[error("that transaction is not a state of this leaf")]
    OtherLeaf,
}

/// One side's record of a leaf.
///
/// Invariants: `states[i].epoch == i` and every state is fully signed; `redistributions[i]`
/// spends the L-stock of `states[i]` and is fully signed, for every `i` but the last state;
/// `signing` holds the sighash this side agreed to sign for each epoch (see the module docs of
/// [`crate::leaf`]), and is durable before any partial signature leaves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeafStates {
    states: Vec<LeafState>,
    redistributions: Vec<TreeNode>,
    signing: BTreeMap<LeafEpoch, TapSighash>,
    /// What every state keeps in its L-stock ([`super::min_lstock`]).
    #[serde(with = "bitcoin::amount::serde::as_sat")]
    min_lstock: Amount,
    /// The leaf's last state.
    last: LeafEpoch,
}

impl LeafStates {
    /// A leaf in state 0, as the tree built it (`path` must be signed for an exit to use it).
    pub fn new(path: &ClientPath) -> LeafStates {
        let params = &path.proposal().params;
        LeafStates {
            states: vec![LeafState::first(path)],
            redistributions: Vec::new(),
            signing: BTreeMap::new(),
            min_lstock: super::min_lstock(params),
            last: LeafEpoch(params.states_per_layer.saturating_sub(1)),
        }
    }

    /// What may still be sold: the latest L-stock above its minimum, or nothing once the
    /// leaf is in its last state.
    pub fn available(&self) -> Amount {
        let latest = self.latest();
        if latest.epoch >= self.last {
            return Amount::ZERO;
        }
        latest
            .lstock_value()
            .checked_sub(self.min_lstock)
            .unwrap_or(Amount::ZERO)
    }

    /// The newest state.
    pub fn latest(&self) -> &LeafState {
        self.states.last().expect("a leaf always has state 0")
    }

    /// Every state, oldest first.
    pub fn states(&self) -> &[LeafState] {
        &self.states
    }

    /// The signed redistribution of a superseded state's L-stock.
    pub fn redistribution(&self, epoch: LeafEpoch) -> Option<&TreeNode> {
        self.redistributions.get(usize::from(epoch.0))
    }

    /// The state whose transaction is `txid`.
    pub fn by_txid(&self, txid: &bitcoin::Txid) -> Option<&LeafState> {
        self.states.iter().find(|s| s.node.txid() == *txid)
    }

    /// The outpoint every state spends (the leaf's parent output).
    pub fn parent(&self) -> OutPoint {
        self.latest().node.spent_outpoint()
    }

    /// Records that this side is about to sign `next` (the state after the latest), or
    /// refuses: a different transaction for an epoch already agreed, an epoch out of order, or
    /// a state that does not sell more. Recording the same state again succeeds (a retry).
    /// Persist the record before the partial signature leaves.
    pub fn record_signing(&mut self, next: &LeafState) -> Result<(), LeafStatesError> {
        let latest = self.latest();
        let expected = latest.epoch.next().unwrap_or(latest.epoch);
        if next.epoch != expected || expected == latest.epoch {
            return Err(LeafStatesError::OutOfOrder {
                expected,
                got: next.epoch,
            });
        }
        if next.node.spent_outpoint() != latest.node.spent_outpoint() {
            return Err(LeafStatesError::OtherLeaf);
        }
        if next.sold <= latest.sold {
            return Err(LeafStatesError::NotMore);
        }
        let sighash = next.node.sighash();
        match self.signing.get(&next.epoch) {
            Some(recorded) if *recorded != sighash => Err(LeafStatesError::Conflict(next.epoch)),
            _ => {
                self.signing.insert(next.epoch, sighash);
                Ok(())
            }
        }
    }

    /// Moves the leaf to `next`, with the redistribution of the state it supersedes. Both must
    /// be fully signed, and `next` the state this side recorded.
    pub fn advance(
        &mut self,
        next: LeafState,
        redistribution: TreeNode,
    ) -> Result<(), LeafStatesError> {
        let latest = self.latest();
        if next.epoch.0 != latest.epoch.0.wrapping_add(1)
            || self.signing.get(&next.epoch) != Some(&next.node.sighash())
        {
            return Err(LeafStatesError::OutOfOrder {
                expected: latest.epoch.next().unwrap_or(latest.epoch),
                got: next.epoch,
            });
        }
        let signed = |n: &TreeNode| n.signature.is_some_and(|s| n.verify_signature(&s));
        if !signed(&next.node) {
            return Err(LeafStatesError::Unsigned("new leaf state"));
        }
        if redistribution.spent_outpoint() != latest.lstock_outpoint() {
            return Err(LeafStatesError::OtherLeaf);
        }
        if !signed(&redistribution) {
            return Err(LeafStatesError::Unsigned("redistribution"));
        }
        self.redistributions.push(redistribution);
        self.states.push(next);
        Ok(())
    }
}
