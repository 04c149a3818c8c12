//! Partial cooperation: the parts of a factory's tree every member below has left.
//!
//! A factory one member never left cannot close by key path: its funding output needs every
//! key. Its tree goes on chain instead (the member's own exit, or the LSP's walk before the
//! timeout). But every output of the tree is a MuSig2 key of the LSP and the members below it,
//! so once the tree above an output is on chain and every member below it released its key,
//! the LSP spends that output alone by key path ([`super::build_sweep`]): one transaction for
//! the whole subtree, instead of walking each moved channel to its commitment and claiming it.
//!
//! [`released_frontier`] names the highest such subtrees; the LSP waits for the transaction
//! that creates each one's output, sweeps it, and goes one level down ([`children`]) if a
//! member got the subtree's own transaction mined first.

use std::collections::{BTreeSet, HashMap};

use bitcoin::Txid;

use crate::tree::{FactoryTree, NodeKind, TreeNode};
use crate::types::{ClientId, NodeId};

/// Whether the LSP may take `node`'s input by key path: a tree transaction (not the
/// distribution or a redistribution) whose every signer released its key.
fn all_released(node: &TreeNode, released: &BTreeSet<ClientId>) -> bool {
    matches!(
        node.kind,
        NodeKind::Split { .. }
            | NodeKind::Kickoff { .. }
            | NodeKind::State { .. }
            | NodeKind::Leaf { .. }
    ) && (node.signers.start.0..node.signers.end.0).all(|c| released.contains(&ClientId(c)))
}

/// The highest nodes of `tree` whose input the LSP may take by key path with `released`: every
/// member below released its key, and the node above (if any) has a member who did not. A
/// node whose input is the funding output is listed only when every member released (then
/// the key-path close takes the funding output; the sweep starts below it if the tree went
/// on chain instead).
pub fn released_frontier(tree: &FactoryTree, released: &BTreeSet<ClientId>) -> Vec<NodeId> {
    // Each node's txid once: a parent is looked up by the txid its child spends.
    let by_txid: HashMap<Txid, &TreeNode> = tree.nodes().iter().map(|n| (n.txid(), n)).collect();
    tree.nodes()
        .iter()
        .filter(|n| all_released(n, released))
        .filter(|n| {
            // The tree transaction whose output it spends (none: the funding output).
            let parent = by_txid.get(&n.spent_outpoint().txid);
            parent.is_none_or(|p| !all_released(p, released))
        })
        .map(|n| n.id)
        .collect()
}

/// The tree transactions that spend an output of `node`.
pub fn children(tree: &FactoryTree, node: NodeId) -> Vec<NodeId> {
    let Some(txid) = tree.node(node).map(TreeNode::txid) else {
        return Vec::new();
    };
    tree.nodes()
        .iter()
        .filter(|n| n.kind != NodeKind::Distribution && n.spent_outpoint().txid == txid)
        .map(|n| n.id)
        .collect()
}
