//! The unilateral exit planner: from a client's stored paths and the chain, the next step.
//!
//! The client keeps one signed [`ClientPath`] per state it co-signed (an [`ExitKit`]). The
//! planner walks from the funding output down, following what is confirmed:
//!
//! - an output spent by a transaction of one of the stored versions narrows the walk to the
//!   versions that share it (so if an *older* DW state confirmed, the walk continues with that
//!   epoch's transactions, which the client holds and signed);
//! - at the first unspent output it proposes the newest version's transaction, or, if its
//!   relative lock has not passed, the height to wait for;
//! - the funding output may instead be spent by the distribution transaction;
//! - at the leaf, a kit holding [`LeafStates`] proposes the newest leaf state; if a superseded
//!   state confirmed instead, it proposes that state's redistribution (the stale L-stock pays
//!   the client) before declaring the leaf done.
//!
//! The rule at the funding output, with `T` the (earliest stored) distribution lock, `T_sweep`
//! the sweep height of the timeout leaf, and `W` the path's worst-case walk
//! ([`ClientPath::worst_exit_blocks`]):
//!
//! 1. funding output spent by a tree transaction (the LSP's or anyone's, at any height): the
//!    distribution transaction is dead; walk the tree at once. Parameters guarantee
//!    `T_sweep >= T + worst_exit(N) + margin >= T + W + margin`, so a walk started at any tip
//!    up to `T` has its leaf confirmed by `T + W`, before the LSP may sweep;
//! 2. funding output unspent, tip `>= T`: broadcast the distribution transaction (it is valid
//!    in the next block);
//! 3. funding output unspent, `tip + W <= T`: walk the tree; its leaf confirms by block `T`,
//!    before the distribution transaction could (block `T + 1`);
//! 4. otherwise wait for the distribution transaction (`WaitUntil(T)`): it comes no later than
//!    the tree would, pays the client its whole leaf value, and leaves the funding output (so
//!    the distribution transaction, which offline clients rely on) alone. Waiting is safe only
//!    because of rule 1: the driver calls again at every block, so the walk starts the moment
//!    the funding output is spent (a driver that only woke at `T` would still fit, later).
//!
//! It is a pure function of its inputs, so the driver simply calls it again after every block.

use std::collections::BTreeSet;

use bitcoin::absolute::Height;
use bitcoin::{Amount, OutPoint, Transaction, Txid};
use serde::{Deserialize, Serialize};

use super::ChainView;
use crate::leaf::{LeafState, LeafStates};
use crate::params::{BlockDelta, Epoch};
use crate::path::ClientPath;
use crate::tree::NodeKind;
use crate::types::NodeId;

/// Every signed state of one client's path in one factory, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitKit {
    versions: Vec<ClientPath>,
    /// The leaf's states once liquidity was bought (state 0 alone needs no record).
    #[serde(default)]
    leaf: Option<LeafStates>,
    /// A leaf state this client signed without receiving its final signature (a purchase whose
    /// `leaf_signed` never came): never broadcast, but recognised if the LSP publishes it.
    #[serde(default)]
    expected: Option<LeafState>,
}

/// Why a path cannot join an [`ExitKit`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExitError {
    /// A node lacks its final signature; an exit could not use it.
    #[error("node {node} of {epoch} has no signature; store a path only once the ceremony ends")]
    Unsigned {
        /// The node.
        node: NodeId,
        /// The path's epoch.
        epoch: Epoch,
    },
    /// The path is not shaped like a path (no nodes, a node without one input…).
    #[error("the path is malformed; it cannot be used for an exit")]
    Malformed,
    /// A stored signature does not verify.
    #[error("the signature of node {0} does not verify; the stored path is corrupt")]
    BadSignature(NodeId),
    /// The path belongs to another factory or another client.
    #[error("this path belongs to another factory or client than the kit")]
    OtherFactory,
    /// Two different paths claim the same epoch.
    #[error("a different path for {0} is already stored; the LSP equivocated, keep both and exit")]
    Conflict(Epoch),
}

/// What the client should do next.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExitAction {
    /// Broadcast this signed transaction now (again, if it is in the mempool but unconfirmed).
    Broadcast {
        /// The node.
        node: NodeId,
        /// What it is.
        kind: NodeKind,
        /// The signed transaction.
        tx: Transaction,
        /// The fee it pays (its input's value, known from the tree, less its outputs): what a
        /// fee bump must top up, with no chain read.
        fee: Amount,
    },
    /// Nothing can be broadcast yet; call again once the tip reaches `height`. When `node` is
    /// the distribution transaction, call again at every block before that too: if the funding
    /// output gets spent, the walk must start at once.
    WaitUntil {
        /// Tip height from which the next transaction is valid in the next block.
        height: Height,
        /// The node waiting for its lock.
        node: NodeId,
    },
    /// The funding transaction is not confirmed; there is nothing to exit from yet.
    WaitForFunding,
    /// Done with the tree: the client's leaf is confirmed and its channel output is on chain.
    LeafConfirmed {
        /// The leaf transaction.
        leaf: Txid,
        /// The channel output (close the channel from here).
        channel: OutPoint,
        /// Height of the leaf's block.
        height: Height,
    },
    /// Done: the distribution transaction confirmed and pays the client's key.
    Distributed {
        /// The distribution transaction.
        txid: Txid,
        /// The client's output in it.
        payout: OutPoint,
    },
    /// The walk cannot go on with the client's data.
    Stuck(ExitProblem),
}

/// Why an exit cannot go on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExitProblem {
    /// An output on the path was spent by a transaction of none of the stored states: a
    /// cooperative close or rotation (check the client's new factory), or, after the sweep
    /// height, the LSP's timeout path.
    UnknownSpend {
        /// The spent output.
        outpoint: OutPoint,
        /// The unknown spender.
        spender: Txid,
    },
}

impl ExitKit {
    /// A kit holding one signed path.
    pub fn new(path: ClientPath) -> Result<ExitKit, ExitError> {
        let mut kit = ExitKit {
            versions: Vec::new(),
            leaf: None,
            expected: None,
        };
        kit.add(path)?;
        Ok(kit)
    }

    /// Adds another signed state of the same client in the same factory. Every signature is
    /// verified, so the kit never holds a transaction that could not be broadcast.
    pub fn add(&mut self, path: ClientPath) -> Result<(), ExitError> {
        crate::verify::check_well_formed(&path).map_err(|_| ExitError::Malformed)?;
        let all = || path.nodes().iter().chain([path.distribution()]);
        if let Some(n) = all().find(|n| n.signature.is_none()) {
            return Err(ExitError::Unsigned {
                node: n.id,
                epoch: path.epoch(),
            });
        }
        if let Some(n) = all().find(|n| n.signature.is_some_and(|s| !n.verify_signature(&s))) {
            return Err(ExitError::BadSignature(n.id));
        }
        if let Some(first) = self.versions.first() {
            if first.funding_outpoint() != path.funding_outpoint()
                || first.client() != path.client()
                || first.client_key() != path.client_key()
            {
                return Err(ExitError::OtherFactory);
            }
        }
        match self
            .versions
            .binary_search_by_key(&path.epoch(), |v| v.epoch())
        {
            Ok(i) if self.versions[i] == path => Ok(()),
            Ok(_) => Err(ExitError::Conflict(path.epoch())),
            Err(i) => {
                self.versions.insert(i, path);
                Ok(())
            }
        }
    }

    /// The same kit rebuilt path by path, so every signature in it is verified again: for a
    /// kit that came from elsewhere (deserialized), before acting on it.
    pub fn rechecked(&self) -> Result<ExitKit, ExitError> {
        let mut versions = self.versions.iter().cloned();
        let mut kit = ExitKit::new(versions.next().ok_or(ExitError::Malformed)?)?;
        for path in versions {
            kit.add(path)?;
        }
        if let Some(leaf) = &self.leaf {
            kit.set_leaf(leaf.clone())?;
        }
        if let Some(state) = &self.expected {
            kit.expect_leaf(state.clone())?;
        }
        Ok(kit)
    }

    /// Records the leaf's states after a liquidity purchase (replacing older records). Every
    /// state and redistribution in it is signed ([`LeafStates::advance`] checks that).
    pub fn set_leaf(&mut self, leaf: LeafStates) -> Result<(), ExitError> {
        if leaf.parent() != self.latest().leaf().spent_outpoint() {
            return Err(ExitError::OtherFactory);
        }
        self.leaf = Some(leaf);
        Ok(())
    }

    /// Records a leaf state this client signed but holds no final signature of: if it
    /// confirms (only the LSP can publish it), the walk ends at its channel output.
    pub fn expect_leaf(&mut self, state: LeafState) -> Result<(), ExitError> {
        if state.node.spent_outpoint() != self.latest().leaf().spent_outpoint() {
            return Err(ExitError::OtherFactory);
        }
        self.expected = Some(state);
        Ok(())
    }

    /// What a [`ChainView`] must know for [`ExitKit::next_action`]: the confirmation of each of
    /// these transactions, and the confirmed spender of each of these outputs (every spent
    /// output of every stored path, and each leaf state's L-stock).
    pub fn watched(&self) -> (BTreeSet<Txid>, BTreeSet<OutPoint>) {
        let mut txids = BTreeSet::new();
        let mut outpoints = BTreeSet::new();
        for version in &self.versions {
            txids.insert(version.funding_outpoint().txid);
            for node in version.nodes().iter().chain([version.distribution()]) {
                txids.insert(node.txid());
                outpoints.insert(node.spent_outpoint());
            }
        }
        let states = self.leaf.iter().flat_map(|l| l.states().iter());
        for state in states.chain(self.expected.iter()) {
            txids.insert(state.node.txid());
            outpoints.insert(state.lstock_outpoint());
        }
        (txids, outpoints)
    }

    /// The leaf's recorded states, if liquidity was bought.
    pub fn leaf(&self) -> Option<&LeafStates> {
        self.leaf.as_ref()
    }

    /// The stored states, oldest first.
    pub fn versions(&self) -> &[ClientPath] {
        &self.versions
    }

    /// The newest state.
    pub fn latest(&self) -> &ClientPath {
        self.versions.last().expect("a kit always holds a path")
    }

    /// The next step of a unilateral exit, given the chain.
    pub fn next_action(&self, chain: &impl ChainView) -> ExitAction {
        let latest = self.latest();
        let funding = latest.funding_outpoint();
        let Some(funded_at) = chain.confirmation_height(&funding.txid) else {
            return ExitAction::WaitForFunding;
        };
        let tip = chain.tip_height();
        // Newest first, so the first candidate is always the newest state still possible.
        let mut candidates: Vec<&ClientPath> = self.versions.iter().rev().collect();
        let (mut outpoint, mut created_at) = (funding, funded_at);
        for i in 0..latest.nodes().len() {
            let Some(spender) = chain.spending_txid(&outpoint) else {
                if i == 0 {
                    if let Some(action) = self.distribution_choice(tip) {
                        return action;
                    }
                }
                return self.step(candidates[0], i, created_at, tip);
            };
            if i == 0 {
                if let Some(v) = self
                    .versions
                    .iter()
                    .find(|v| v.distribution().txid() == spender)
                {
                    return ExitAction::Distributed {
                        txid: spender,
                        payout: v.distribution_outpoint(),
                    };
                }
            }
            if let Some(action) = self.leaf_spent(&outpoint, spender, chain) {
                return action;
            }
            candidates.retain(|v| v.nodes().get(i).map(|n| n.txid()) == Some(spender));
            if candidates.is_empty() {
                return ExitAction::Stuck(ExitProblem::UnknownSpend { outpoint, spender });
            }
            created_at = chain.confirmation_height(&spender).unwrap_or(tip);
            match candidates[0].nodes().get(i + 1) {
                Some(next) => outpoint = next.spent_outpoint(),
                None => {
                    return ExitAction::LeafConfirmed {
                        leaf: spender,
                        channel: OutPoint::new(spender, 0),
                        height: created_at,
                    }
                }
            }
        }
        // Paths always end with a leaf, so the loop returned; a kit cannot hold an empty path.
        ExitAction::Stuck(ExitProblem::UnknownSpend {
            outpoint,
            spender: outpoint.txid,
        })
    }

    /// The leaf's parent output `parent` was spent by `spender`: if that is a recorded leaf
    /// state, the leaf is done, after the redistribution of a superseded state's L-stock (which
    /// must confirm before the L-stock's CSV lets the LSP sweep it).
    fn leaf_spent(
        &self,
        parent: &OutPoint,
        spender: Txid,
        chain: &impl ChainView,
    ) -> Option<ExitAction> {
        let height = || {
            chain
                .confirmation_height(&spender)
                .unwrap_or(chain.tip_height())
        };
        if let Some(expected) = self
            .expected
            .as_ref()
            .filter(|e| e.node.txid() == spender && e.node.spent_outpoint() == *parent)
        {
            return Some(ExitAction::LeafConfirmed {
                leaf: spender,
                channel: expected.channel_outpoint(),
                height: height(),
            });
        }
        let leaf = self.leaf.as_ref().filter(|l| l.parent() == *parent)?;
        let state = leaf.by_txid(&spender)?;
        if let Some(r) = leaf.redistribution(state.epoch) {
            if chain.spending_txid(&state.lstock_outpoint()).is_none() {
                return Some(ExitAction::Broadcast {
                    node: r.id,
                    kind: r.kind,
                    tx: r.signed_tx()?,
                    fee: r.fee(),
                });
            }
        }
        Some(ExitAction::LeafConfirmed {
            leaf: spender,
            channel: state.channel_outpoint(),
            height: height(),
        })
    }

    /// Broadcast node `i` of `path` (the newest recorded leaf state in place of the leaf), or
    /// wait for its relative lock.
    fn step(&self, path: &ClientPath, i: usize, created_at: Height, tip: Height) -> ExitAction {
        let mut node = &path.nodes()[i];
        if let Some(leaf) = &self.leaf {
            if leaf.parent() == node.spent_outpoint() {
                node = &leaf.latest().node;
            }
        }
        // BIP-68: a delay of d blocks lets the spender into block `created_at + d`.
        let first_block = node
            .relative_delay()
            .after(created_at)
            .unwrap_or(created_at);
        let next_block = BlockDelta::from_blocks(1).after(tip).unwrap_or(tip);
        match (node.signed_tx(), next_block >= first_block) {
            (Some(tx), true) => ExitAction::Broadcast {
                node: node.id,
                kind: node.kind,
                tx,
                fee: node.fee(),
            },
            (_, _) => ExitAction::WaitUntil {
                height: Height::from_consensus(first_block.to_consensus_u32().saturating_sub(1))
                    .unwrap_or(first_block),
                node: node.id,
            },
        }
    }

    /// With the funding output unspent (rules 2 to 4 of the module docs): broadcast the
    /// earliest distribution transaction once it is valid; before that, `None` (walk the tree)
    /// if a worst-case tree exit started now has its leaf confirmed by block `T`, else wait
    /// for `T`.
    fn distribution_choice(&self, tip: Height) -> Option<ExitAction> {
        let earliest = self.versions.iter().min_by_key(|v| v.timeout())?;
        let (dist, timeout) = (earliest.distribution(), earliest.timeout());
        if tip >= timeout {
            let tx = dist.signed_tx()?;
            return Some(ExitAction::Broadcast {
                node: dist.id,
                kind: dist.kind,
                tx,
                fee: dist.fee(),
            });
        }
        // Every stored state has the same shape, so the same worst case.
        let leaf_by = self.latest().worst_exit_blocks().after(tip);
        let tree_first = leaf_by.is_some_and(|h| h <= timeout);
        (!tree_first).then_some(ExitAction::WaitUntil {
            height: timeout,
            node: dist.id,
        })
    }
}
