//! A picture of the factory from one client's point of view: the chain of transactions from
//! the shared on-chain coin down to this client's leaf, with how many other clients branch off
//! at each step, and where an exit stands. Pure data; `web/` draws it as SVG.

use bitcoin::{Amount, Txid};
use shared::path::ClientPath;
use shared::tree::NodeKind;

/// Where one transaction of the path stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeStatus {
    /// Signed and stored, not on chain (the normal state while the factory lives).
    Signed,
    /// Confirmed on chain (an exit or a close is under way).
    Confirmed,
    /// The next transaction an exit would broadcast.
    Next,
}

/// One box of the picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PictureNode {
    /// Short name for people: "Shared coin", "Step 1 starts", "Wait", "Branch", "Your leaf".
    pub label: String,
    /// One short line of detail (fits the picture's box on a phone): delays, amounts.
    pub detail: String,
    /// The transaction (the funding transaction for the first box).
    pub txid: Txid,
    /// Clients whose branches leave the path at this box (they are not drawn one by one).
    pub others: u32,
    /// Where it stands.
    pub status: NodeStatus,
}

/// The label of the client's own leaf box.
pub const LEAF_LABEL: &str = "Your leaf";

/// The leaf box's detail: the channel, and the liquidity still for sale in the leaf.
pub fn leaf_detail(for_sale: Amount) -> String {
    format!("channel + {} to buy", crate::format::sats(for_sale))
}

/// With the liquidity for sale now (after purchases the stored path's leaf, state 0, holds
/// more than is left), the leaf box says what is left.
pub fn with_leaf_for_sale(
    mut boxes: Vec<PictureNode>,
    for_sale: Option<Amount>,
) -> Vec<PictureNode> {
    if let (Some(leaf), Some(left)) = (
        boxes.iter_mut().rev().find(|b| b.label == LEAF_LABEL),
        for_sale,
    ) {
        leaf.detail = leaf_detail(left);
    }
    boxes
}

/// With one of this client's leaf states confirmed (`leaf`: whichever state it was, the tree's
/// own leaf or a newer one after a liquidity purchase), the leaf box is on chain, and shows
/// that transaction.
pub fn with_leaf_on_chain(mut boxes: Vec<PictureNode>, leaf: Option<Txid>) -> Vec<PictureNode> {
    if let (Some(b), Some(txid)) = (boxes.iter_mut().rev().find(|b| b.label == LEAF_LABEL), leaf) {
        b.txid = txid;
        b.status = NodeStatus::Confirmed;
    }
    boxes
}

/// The label of the payout box (the distribution transaction, once on chain).
pub const PAYOUT_LABEL: &str = "Payout to everyone";

/// The path of `path`, top (the on-chain coin) to bottom (this client's leaf). `confirmed` tells
/// which transactions are on chain; the first unconfirmed one is marked [`NodeStatus::Next`].
///
/// Once the factory's distribution transaction is on chain (whoever sent it), the tree can
/// never go on chain: the picture is the shared coin and the payout, both on chain, with what
/// the payout gives this client.
pub fn path_picture(path: &ClientPath, confirmed: impl Fn(&Txid) -> bool) -> Vec<PictureNode> {
    let total = path.proposal().clients.len() as u32;
    let funding = path.funding_outpoint().txid;
    let coin = PictureNode {
        label: "Shared coin".into(),
        detail: format!(
            "{} for {total} member{}",
            crate::format::sats(path.funding_output().value),
            if total == 1 { "" } else { "s" }
        ),
        txid: funding,
        others: 0,
        status: if confirmed(&funding) {
            NodeStatus::Confirmed
        } else {
            NodeStatus::Signed
        },
    };
    let distribution = path.distribution();
    if confirmed(&distribution.txid()) {
        let yours = distribution
            .tx
            .output
            .get(path.distribution_outpoint().vout as usize)
            .map_or(Amount::ZERO, |o| o.value);
        return vec![
            PictureNode {
                status: NodeStatus::Confirmed,
                ..coin
            },
            PictureNode {
                label: PAYOUT_LABEL.into(),
                detail: format!("{} of it is yours", crate::format::sats(yours)),
                txid: distribution.txid(),
                others: total.saturating_sub(1),
                status: NodeStatus::Confirmed,
            },
        ];
    }
    let mut boxes = vec![coin];
    let nodes = path.nodes();
    for (i, node) in nodes.iter().enumerate() {
        let below = nodes.get(i + 1).map_or(1, |child| child.signers.len());
        let (label, detail) = match node.kind {
            NodeKind::Split { .. } => ("Branch".to_string(), "never changes".to_string()),
            NodeKind::Kickoff { layer, .. } => (
                format!("Step {} starts", layer + 1),
                "goes out at once".to_string(),
            ),
            NodeKind::State { delay, .. } => (
                "Wait".to_string(),
                format!("{} blocks after its start", delay.to_blocks()),
            ),
            NodeKind::Leaf { .. } => (
                LEAF_LABEL.to_string(),
                leaf_detail(node.tx.output.get(1).map_or(Amount::ZERO, |o| o.value)),
            ),
            NodeKind::Distribution | NodeKind::Redistribution { .. } => {
                ("Distribution".to_string(), String::new())
            }
        };
        let txid = node.txid();
        boxes.push(PictureNode {
            label,
            detail,
            txid,
            others: node.signers.len().saturating_sub(below),
            status: if confirmed(&txid) {
                NodeStatus::Confirmed
            } else {
                NodeStatus::Signed
            },
        });
    }
    if let Some(next) = boxes.iter_mut().find(|b| b.status == NodeStatus::Signed) {
        next.status = NodeStatus::Next;
    }
    boxes
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;
    use shared::params::FactoryParams;
    use shared::testing::{sample_proposal, TestKeys};
    use shared::types::ClientId;

    #[test]
    fn path_from_coin_to_leaf_counts_everyone_once() {
        let keys = TestKeys::generate(8, 1);
        let proposal = sample_proposal(FactoryParams::regtest(), &keys, 1);
        let path = ClientPath::build(&proposal, ClientId(3)).expect("builds");
        let picture = path_picture(&path, |_| false);
        assert_eq!(picture.len(), path.nodes().len() + 1);
        assert_eq!(picture[0].label, "Shared coin");
        assert_eq!(picture.last().map(|b| b.label.as_str()), Some("Your leaf"));
        // Every other client branches off exactly once on the way down.
        assert_eq!(picture.iter().map(|b| b.others).sum::<u32>(), 7);
        assert_eq!(picture[0].status, NodeStatus::Next);
    }

    #[test]
    fn next_is_the_first_unconfirmed() {
        let keys = TestKeys::generate(4, 2);
        let proposal = sample_proposal(FactoryParams::regtest(), &keys, 2);
        let path = ClientPath::build(&proposal, ClientId(0)).expect("builds");
        let on_chain = [path.funding_outpoint().txid, path.nodes()[0].txid()];
        let picture = path_picture(&path, |t| on_chain.contains(t));
        assert_eq!(picture[0].status, NodeStatus::Confirmed);
        assert_eq!(picture[1].status, NodeStatus::Confirmed);
        assert_eq!(picture[2].status, NodeStatus::Next);
        assert!(picture[3..].iter().all(|b| b.status == NodeStatus::Signed));
    }

    #[test]
    fn a_payout_on_chain_replaces_the_tree() {
        let keys = TestKeys::generate(4, 2);
        let proposal = sample_proposal(FactoryParams::regtest(), &keys, 2);
        let path = ClientPath::build(&proposal, ClientId(1)).expect("builds");
        let payout = path.distribution();
        let on_chain = [path.funding_outpoint().txid, payout.txid()];
        let picture = path_picture(&path, |t| on_chain.contains(t));
        assert_eq!(picture.len(), 2);
        assert!(picture.iter().all(|b| b.status == NodeStatus::Confirmed));
        assert_eq!(picture[1].label, PAYOUT_LABEL);
        assert_eq!(picture[1].txid, payout.txid());
        assert_eq!(picture[1].others, 3);
        let yours = payout.tx.output[1].value;
        assert_eq!(
            picture[1].detail,
            format!("{} of it is yours", crate::format::sats(yours))
        );
    }

    #[test]
    fn a_newer_leaf_state_on_chain_marks_the_leaf_box() {
        let keys = TestKeys::generate(4, 1);
        let proposal = sample_proposal(FactoryParams::regtest(), &keys, 1);
        let path = ClientPath::build(&proposal, ClientId(2)).expect("builds");
        let above: Vec<Txid> = path.nodes()[..path.nodes().len() - 1]
            .iter()
            .map(|n| n.txid())
            .collect();
        let picture = path_picture(&path, |t| {
            above.contains(t) || *t == path.funding_outpoint().txid
        });
        let leaf = picture.last().expect("the leaf box");
        assert_eq!(leaf.status, NodeStatus::Next);
        let newer = Txid::from_byte_array([7; 32]);
        let picture = with_leaf_on_chain(picture, Some(newer));
        let leaf = picture.last().expect("the leaf box");
        assert_eq!((leaf.status, leaf.txid), (NodeStatus::Confirmed, newer));
        assert!(picture.iter().all(|b| b.status == NodeStatus::Confirmed));
    }
}
