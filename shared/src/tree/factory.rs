//! The LSP's whole tree: every node of one factory state, its signatures, and its evolution
//! (epoch advance, refresh).

use bitcoin::absolute::Height;
use bitcoin::secp256k1::{schnorr, PublicKey};
use bitcoin::TxOut;

use super::build::Builder;
use super::layout::Layout;
use super::{FactoryProposal, SignatureError, TreeError, TreeNode};
use crate::params::Epoch;
use crate::path::ClientPath;
use crate::types::{ClientId, NodeId, SigningJob};

/// Every transaction of one factory state, addressable by [`NodeId`].
///
/// Nodes are numbered in pre-order (see `docs/protocol.md`, "Factory tree"); the distribution
/// transaction is the last node. Built only from a [`FactoryProposal`], so every participant who
/// rebuilds from the same proposal gets the same transactions.
#[derive(Debug, Clone)]
pub struct FactoryTree {
    proposal: FactoryProposal,
    layout: Layout,
    timeout: Height,
    sweep_height: Height,
    funding: TxOut,
    nodes: Vec<TreeNode>,
}

impl FactoryTree {
    /// Builds and checks the tree of a proposal.
    pub fn build(proposal: &FactoryProposal) -> Result<FactoryTree, TreeError> {
        Ok(FactoryTree::build_with_keys(proposal)?.0)
    }

    /// [`FactoryTree::build`], also returning the key aggregations the build made (every
    /// output's signer set, once), so whoever signs the tree's jobs need not aggregate again.
    pub fn build_with_keys(
        proposal: &FactoryProposal,
    ) -> Result<(FactoryTree, Vec<crate::musig::KeyAgg>), TreeError> {
        let b = Builder::new(proposal)?;
        let mut nodes = b.all()?;
        nodes.push(b.distribution());
        let tree = FactoryTree {
            layout: b.layout().clone(),
            timeout: b.timeout(),
            sweep_height: b.sweep_height(),
            funding: b.funding_txout(),
            proposal: proposal.clone(),
            nodes,
        };
        Ok((tree, b.into_aggregations()))
    }

    /// The proposal this tree was built from.
    pub fn proposal(&self) -> &FactoryProposal {
        &self.proposal
    }

    /// The epoch of this state.
    pub fn epoch(&self) -> Epoch {
        self.proposal.epoch
    }

    /// Number of epochs this tree's odometer has.
    pub fn epoch_count(&self) -> u32 {
        self.proposal.params.epoch_count(self.layout.dw_levels())
    }

    /// Number of DW layers in this tree (at most `params.dw_layers`).
    pub fn dw_layers(&self) -> u32 {
        self.layout.dw_levels()
    }

    /// The factory timeout `T`: the distribution transaction's `nLockTime`.
    pub fn timeout(&self) -> Height {
        self.timeout
    }

    /// The sweep height `T_sweep`: the lock of the LSP's timeout leaf on every state output.
    pub fn sweep_height(&self) -> Height {
        self.sweep_height
    }

    /// The funding output (what the LSP's funding transaction must create).
    pub fn funding_output(&self) -> &TxOut {
        &self.funding
    }

    /// Every node, in id order (the distribution transaction last).
    pub fn nodes(&self) -> &[TreeNode] {
        &self.nodes
    }

    /// One node.
    pub fn node(&self, id: NodeId) -> Option<&TreeNode> {
        self.nodes.get(id.0 as usize)
    }

    /// The root node (spends the funding output).
    pub fn root(&self) -> &TreeNode {
        &self.nodes[0]
    }

    /// The distribution transaction.
    pub fn distribution(&self) -> &TreeNode {
        &self.nodes[self.nodes.len() - 1]
    }

    /// Ids of the nodes from the root to `client`'s leaf, or `None` for an unknown client.
    pub fn path_ids(&self, client: ClientId) -> Option<Vec<NodeId>> {
        (client.0 < self.proposal.client_count()).then(|| {
            self.layout
                .path(client.0)
                .into_iter()
                .flat_map(|(span, id)| (0..span.own_txs()).map(move |i| NodeId(id.0 + i)))
                .collect()
        })
    }

    /// `client`'s leaf.
    pub fn leaf(&self, client: ClientId) -> Option<&TreeNode> {
        let id = *self.path_ids(client)?.last()?;
        self.node(id)
    }

    /// The part of the tree `client` stores: its path and the distribution transaction, with
    /// whatever signatures this tree holds.
    pub fn client_path(&self, client: ClientId) -> Option<ClientPath> {
        let nodes = self
            .path_ids(client)?
            .into_iter()
            .map(|id| self.nodes[id.0 as usize].clone());
        Some(ClientPath::from_parts(
            self.proposal.clone(),
            client,
            (self.timeout, self.sweep_height),
            nodes.collect(),
            self.distribution().clone(),
        ))
    }

    /// The signing job of one node.
    pub fn job(&self, node: &TreeNode) -> SigningJob {
        self.proposal.job(node)
    }

    /// A signing job for every node, in id order.
    pub fn signing_jobs(&self) -> Vec<SigningJob> {
        self.nodes.iter().map(|n| self.job(n)).collect()
    }

    /// Signing jobs of the nodes that have no signature yet (after an epoch advance, only the
    /// nodes that changed).
    pub fn unsigned_jobs(&self) -> Vec<SigningJob> {
        self.nodes
            .iter()
            .filter(|n| n.signature.is_none())
            .map(|n| self.job(n))
            .collect()
    }

    /// The jobs `signer` takes part in: all of them for the LSP; for a client, the nodes of its
    /// path and the distribution transaction. Empty for a stranger.
    pub fn jobs_for(&self, signer: &PublicKey) -> Vec<SigningJob> {
        if *signer == self.proposal.lsp_key {
            return self.signing_jobs();
        }
        let Some(client) = self.proposal.client_by_key(signer) else {
            return Vec::new();
        };
        let ids = self.path_ids(client).unwrap_or_default();
        ids.iter()
            .filter_map(|id| self.node(*id))
            .chain(std::iter::once(self.distribution()))
            .map(|n| self.job(n))
            .collect()
    }

    /// Attaches a node's final signature after verifying it.
    pub fn set_signature(
        &mut self,
        node: NodeId,
        sig: schnorr::Signature,
    ) -> Result<(), SignatureError> {
        self.nodes
            .get_mut(node.0 as usize)
            .ok_or(SignatureError::UnknownNode(node))?
            .set_signature(sig)
    }

    /// Whether every node is signed.
    pub fn is_fully_signed(&self) -> bool {
        self.nodes.iter().all(|n| n.signature.is_some())
    }

    /// The next DW state: same members and amounts, `epoch + 1`. Nodes whose transactions do not
    /// change keep their signatures; [`FactoryTree::unsigned_jobs`] lists what must be signed.
    pub fn advance_epoch(&self) -> Result<FactoryTree, TreeError> {
        let next = self.proposal.epoch.0 + 1;
        if next >= self.epoch_count() {
            return Err(TreeError::EpochsExhausted {
                count: self.epoch_count(),
            });
        }
        self.successor(FactoryProposal {
            epoch: Epoch(next),
            ..self.proposal.clone()
        })
    }

    /// Refresh: a new timeout and sweep height counted from `start`, same members and amounts.
    /// Jumps to the next value of the root DW layer's digit, so the new root states (which carry
    /// the new sweep height in their outputs) beat every older state. Static and kickoff
    /// transactions are unchanged.
    pub fn refresh(&self, start: Height) -> Result<FactoryTree, TreeError> {
        if start <= self.proposal.creation_height {
            return Err(TreeError::RefreshNotLater);
        }
        let epoch = self
            .proposal
            .params
            .next_top_epoch(self.layout.dw_levels(), self.proposal.epoch)
            .ok_or(TreeError::RefreshExhausted)?;
        self.successor(FactoryProposal {
            epoch,
            creation_height: start,
            ..self.proposal.clone()
        })
    }

    fn successor(&self, proposal: FactoryProposal) -> Result<FactoryTree, TreeError> {
        let mut next = FactoryTree::build(&proposal)?;
        for (new, old) in next.nodes.iter_mut().zip(&self.nodes) {
            if new.tx == old.tx && new.prevout == old.prevout {
                new.signature = old.signature;
            }
        }
        Ok(next)
    }
}
