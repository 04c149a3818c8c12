//! One client's view of a factory: the nodes from the funding output to its leaf, and the
//! distribution transaction, built without materialising the rest of the tree.
//!
//! Cost: O(depth) transactions are built and hashed. Key aggregation cannot be O(depth): the
//! output a path node spends is MuSig2 of the LSP and *every* client below it (the root's is all
//! N clients), and each sibling output the path's transactions commit to is MuSig2 of that
//! sibling's clients. A client must compute these itself, or it would sign outputs it cannot
//! check. So building a path costs about `N·arity/(arity-1)` point multiplications for the
//! interior outputs and N tweaks for the distribution transaction's outputs (which pay every
//! client), and never allocates any node off the path. For N = 1024 that is a few
//! milliseconds natively.
//!
//! A `ClientPath` is what the wallet stores for exits: it serializes with serde, and carries the
//! proposal it was built from, so [`crate::verify::check_path`] can rebuild and compare it after
//! loading it from storage.

use bitcoin::absolute::Height;
use bitcoin::secp256k1::{schnorr, PublicKey};
use bitcoin::{OutPoint, TxOut};

use crate::exit::ExitCost;
use crate::musig::KeyAgg;
use crate::params::{BlockDelta, Epoch};
use crate::tree::{Builder, FactoryProposal, NodeKind, SignatureError, TreeError, TreeNode};
use crate::types::{ClientId, NodeId, SigningJob};

mod stored;

/// What one client needs of a factory state: its path, the distribution transaction, and the
/// proposal they were built from, with signatures once the ceremony produced them. Serialized
/// compactly ([`stored`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientPath {
    proposal: FactoryProposal,
    client: ClientId,
    timeout: Height,
    sweep_height: Height,
    nodes: Vec<TreeNode>,
    distribution: TreeNode,
}

impl ClientPath {
    /// Builds `client`'s path of the tree described by `proposal` (checking the proposal as
    /// [`crate::tree::FactoryTree::build`] does).
    pub fn build(proposal: &FactoryProposal, client: ClientId) -> Result<ClientPath, TreeError> {
        Ok(ClientPath::build_with_keys(proposal, client)?.0)
    }

    /// [`ClientPath::build`], also returning the key aggregations the build made: every output
    /// the path spends or creates, each signer set once. Signing the path's jobs with them
    /// (`JobKeys` by [`KeyAgg::tweaked`]) saves aggregating the same sets again.
    pub fn build_with_keys(
        proposal: &FactoryProposal,
        client: ClientId,
    ) -> Result<(ClientPath, Vec<KeyAgg>), TreeError> {
        let b = Builder::new(proposal)?;
        let nodes = b.path(client)?;
        let path = ClientPath {
            timeout: b.timeout(),
            sweep_height: b.sweep_height(),
            distribution: b.distribution(),
            proposal: proposal.clone(),
            client,
            nodes,
        };
        Ok((path, b.into_aggregations()))
    }

    pub(crate) fn from_parts(
        proposal: FactoryProposal,
        client: ClientId,
        (timeout, sweep_height): (Height, Height),
        nodes: Vec<TreeNode>,
        distribution: TreeNode,
    ) -> ClientPath {
        ClientPath {
            proposal,
            client,
            timeout,
            sweep_height,
            nodes,
            distribution,
        }
    }

    /// The proposal this path was built from.
    pub fn proposal(&self) -> &FactoryProposal {
        &self.proposal
    }

    /// The client.
    pub fn client(&self) -> ClientId {
        self.client
    }

    /// The client's factory key.
    pub fn client_key(&self) -> PublicKey {
        self.proposal.clients[self.client.0 as usize].key
    }

    /// The DW epoch of this state.
    pub fn epoch(&self) -> Epoch {
        self.proposal.epoch
    }

    /// The factory timeout `T` of this state: the distribution transaction's `nLockTime`.
    pub fn timeout(&self) -> Height {
        self.timeout
    }

    /// The sweep height `T_sweep` of this state: the lock of the LSP's timeout leaf on every
    /// state output. A tree exit must have its leaf confirmed by this height.
    pub fn sweep_height(&self) -> Height {
        self.sweep_height
    }

    /// The funding outpoint.
    pub fn funding_outpoint(&self) -> OutPoint {
        self.proposal.funding_outpoint
    }

    /// The funding output (what the first node spends).
    pub fn funding_output(&self) -> &TxOut {
        &self.nodes[0].prevout
    }

    /// The nodes from the root (spending the funding output) to the leaf.
    pub fn nodes(&self) -> &[TreeNode] {
        &self.nodes
    }

    /// One node of the path (or the distribution transaction).
    pub fn node(&self, id: NodeId) -> Option<&TreeNode> {
        self.nodes
            .iter()
            .chain(std::iter::once(&self.distribution))
            .find(|n| n.id == id)
    }

    /// The client's leaf.
    pub fn leaf(&self) -> &TreeNode {
        &self.nodes[self.nodes.len() - 1]
    }

    /// The leaf's channel output (vout 0).
    pub fn channel_outpoint(&self) -> OutPoint {
        OutPoint::new(self.leaf().txid(), 0)
    }

    /// The leaf's L-stock output (vout 1).
    pub fn lstock_outpoint(&self) -> OutPoint {
        OutPoint::new(self.leaf().txid(), 1)
    }

    /// The distribution transaction.
    pub fn distribution(&self) -> &TreeNode {
        &self.distribution
    }

    /// The distribution output paying this client (vout = its id).
    pub fn distribution_outpoint(&self) -> OutPoint {
        OutPoint::new(self.distribution.txid(), self.client.0)
    }

    /// Every job this client signs: its path and the distribution transaction.
    pub fn signing_jobs(&self) -> Vec<SigningJob> {
        self.nodes
            .iter()
            .chain(std::iter::once(&self.distribution))
            .map(|n| self.proposal.job(n))
            .collect()
    }

    /// Attaches a node's final signature after verifying it.
    pub fn set_signature(
        &mut self,
        node: NodeId,
        sig: schnorr::Signature,
    ) -> Result<(), SignatureError> {
        self.nodes
            .iter_mut()
            .chain(std::iter::once(&mut self.distribution))
            .find(|n| n.id == node)
            .ok_or(SignatureError::UnknownNode(node))?
            .set_signature(sig)
    }

    /// Whether every node of the path and the distribution transaction carry a signature.
    pub fn is_fully_signed(&self) -> bool {
        self.nodes
            .iter()
            .chain(std::iter::once(&self.distribution))
            .all(|n| n.signature.is_some())
    }

    /// The next epoch's path (same members and amounts), for an epoch advance.
    pub fn advance_epoch(&self) -> Result<ClientPath, TreeError> {
        let next = FactoryProposal {
            epoch: Epoch(self.proposal.epoch.0 + 1),
            ..self.proposal.clone()
        };
        if next.epoch.0 >= self.proposal.epoch_count() {
            return Err(TreeError::EpochsExhausted {
                count: self.proposal.epoch_count(),
            });
        }
        ClientPath::build(&next, self.client)
    }

    /// Blocks a walk of this path can take from its first broadcast until the leaf confirms,
    /// whatever older states the LSP publishes: every state and the leaf at the longest delay
    /// `(K-1)·S`, every other transaction one block. At most `worst_case_cost(params, N).blocks`.
    pub fn worst_exit_blocks(&self) -> BlockDelta {
        let longest = self
            .proposal
            .params
            .max_state_delay()
            .unwrap_or(BlockDelta::MAX_RELATIVE)
            .to_blocks();
        let blocks = self.nodes.iter().fold(0u32, |sum, n| {
            let step = match n.kind {
                NodeKind::State { .. } | NodeKind::Leaf { .. } => longest.max(1),
                _ => 1,
            };
            sum.saturating_add(step)
        });
        BlockDelta::from_blocks(blocks)
    }

    /// The last height from which a walk of this path ([`ClientPath::worst_exit_blocks`]) still
    /// has its leaf confirmed `timeout_margin` blocks before the timeout `T`, when the
    /// distribution transaction (which pays the client the whole leaf) becomes valid:
    /// `T − W − margin`. The parameters put it at or after the end of the dying period
    /// (`timeout_delta >= active + dying + worst_exit(max_clients) + timeout_margin`).
    pub fn last_walk_start(&self) -> Height {
        let before = self
            .worst_exit_blocks()
            .to_blocks()
            .saturating_add(self.proposal.params.timeout_margin.to_blocks());
        Height::from_consensus(self.timeout.to_consensus_u32().saturating_sub(before))
            .unwrap_or(Height::ZERO)
    }

    /// What exiting through this path costs, with this epoch's delays: every node from the
    /// funding output to the leaf.
    pub fn exit_cost(&self) -> ExitCost {
        let mut cost = ExitCost::default();
        for n in &self.nodes {
            cost.txs += 1;
            cost.vbytes += n.vsize();
            cost.prepaid_fee += n.fee();
            cost.blocks = BlockDelta::from_blocks(
                cost.blocks.to_blocks() + n.relative_delay().to_blocks().max(1),
            );
        }
        cost
    }
}
