//! The chain as a client's exit planner sees it, read from Esplora, and the driver that walks
//! an exit exactly as the planner directs.

use std::collections::HashMap;

use bitcoin::absolute::Height;
use bitcoin::{OutPoint, Transaction, Txid};
use esplora_client::AsyncClient;
use shared::exit::{ChainView, ExitAction, ExitKit};
use shared::tree::NodeKind;
use shared::types::NodeId;

use super::{sub, Regtest, NON_BIP68_FINAL, NON_FINAL};

/// The chain as Esplora shows it, restricted to what a client's kit can spend or be spent
/// by: the tip, the confirmation height of every transaction of every stored state, and the
/// confirmed spender of every output those transactions spend.
#[derive(Debug, Clone)]
pub struct EsploraView {
    tip: Height,
    confirmed: HashMap<Txid, Height>,
    spends: HashMap<OutPoint, Txid>,
}

impl EsploraView {
    /// Reads Esplora: `/blocks/tip/height`, `/tx/:txid/status`, `/tx/:txid/outspend/:vout`.
    pub async fn fetch(esplora: &AsyncClient, kit: &ExitKit) -> EsploraView {
        let tip = esplora.get_height().await.expect("tip height");
        let tip = Height::from_consensus(tip).expect("a height");
        let (txids, outpoints) = kit.watched();
        let mut confirmed = HashMap::new();
        for txid in txids {
            let status = esplora.get_tx_status(&txid).await.expect("tx status");
            if let (true, Some(h)) = (status.confirmed, status.block_height) {
                confirmed.insert(txid, Height::from_consensus(h).expect("a height"));
            }
        }
        let mut spends = HashMap::new();
        for op in outpoints {
            if !confirmed.contains_key(&op.txid) {
                continue; // its creator is not confirmed: nothing can have spent it
            }
            let status = esplora
                .get_output_status(&op.txid, u64::from(op.vout))
                .await
                .expect("outspend")
                .expect("an output of a confirmed tx");
            // Only confirmed spends count; a mempool spend may still be replaced.
            if let (true, Some(spender), Some(s)) = (status.spent, status.txid, status.status) {
                if s.confirmed {
                    spends.insert(op, spender);
                }
            }
        }
        EsploraView {
            tip,
            confirmed,
            spends,
        }
    }
}

impl ChainView for EsploraView {
    fn tip_height(&self) -> Height {
        self.tip
    }

    fn confirmation_height(&self, txid: &Txid) -> Option<Height> {
        self.confirmed.get(txid).copied()
    }

    fn spending_txid(&self, outpoint: &OutPoint) -> Option<Txid> {
        self.spends.get(outpoint).copied()
    }
}

/// What one step of the exit driver did.
#[derive(Debug, Clone)]
pub enum Step {
    /// Broadcast (after `testmempoolaccept`) and confirmed at `height`.
    Broadcast {
        /// The node.
        node: NodeId,
        /// What it is.
        kind: NodeKind,
        /// Its txid.
        txid: Txid,
        /// Height of the block that confirmed it.
        height: Height,
    },
    /// Mined up to `until`, after checking the pending tx was refused one block earlier.
    Waited {
        /// The node that waited.
        node: NodeId,
        /// The tip height reached.
        until: Height,
    },
    /// The planner is done: `LeafConfirmed` or `Distributed`.
    Done(ExitAction),
}

/// The transaction the planner waits for at `node`: the newest stored state whose node spends
/// a confirmed, unspent output (the newest candidate still possible), or the earliest
/// distribution transaction.
fn pending_tx(kit: &ExitKit, view: &EsploraView, node: NodeId) -> (Transaction, &'static str) {
    if node == kit.latest().distribution().id {
        let earliest = kit
            .versions()
            .iter()
            .min_by_key(|v| v.timeout())
            .expect("a version");
        let tx = earliest.distribution().signed_tx().expect("signed");
        return (tx, NON_FINAL);
    }
    let tx = kit
        .versions()
        .iter()
        .rev()
        .filter_map(|v| v.node(node))
        .find(|n| {
            let spent = n.spent_outpoint();
            view.confirmation_height(&spent.txid).is_some() && view.spending_txid(&spent).is_none()
        })
        .and_then(|n| n.signed_tx())
        .expect("the planner waits for a node whose input is confirmed");
    (tx, NON_BIP68_FINAL)
}

/// One step of `kit`'s exit, exactly as the planner directs: broadcast (must pass
/// `testmempoolaccept`) and confirm; or mine to the height it names, checking the pending
/// transaction is refused one block before; or report that it is done.
pub async fn exit_step(rt: &Regtest, kit: &ExitKit) -> Step {
    let view = EsploraView::fetch(&rt.esplora, kit).await;
    let action = kit.next_action(&view);
    match action {
        ExitAction::Broadcast { node, kind, tx, .. } => {
            let vsize = kit
                .versions()
                .iter()
                .filter_map(|v| v.node(node))
                .find(|n| n.txid() == tx.compute_txid())
                .map(|n| n.vsize());
            let height = rt.confirm(&tx, vsize).await;
            Step::Broadcast {
                node,
                kind,
                txid: tx.compute_txid(),
                height,
            }
        }
        ExitAction::WaitUntil { height, node } => {
            let tip = view.tip_height();
            assert!(
                height > tip,
                "a wait moves forward: {height} after tip {tip}"
            );
            let (tx, reason) = pending_tx(kit, &view, node);
            // One block early the node must refuse it, for exactly the lock's reason.
            rt.mine_to(sub(height, 1)).await;
            rt.assert_cannot_broadcast(&tx, &[reason]).await;
            rt.mine_to(height).await;
            Step::Waited {
                node,
                until: height,
            }
        }
        done @ (ExitAction::LeafConfirmed { .. } | ExitAction::Distributed { .. }) => {
            Step::Done(done)
        }
        other => panic!("the exit cannot go on: {other:?}"),
    }
}

/// Runs [`exit_step`] until the planner is done (at most `limit` steps); returns the final
/// action and every step. After each wait, the next step must broadcast the node that waited.
pub async fn run_exit(rt: &Regtest, kit: &ExitKit, limit: usize) -> (ExitAction, Vec<Step>) {
    let mut steps = Vec::new();
    for _ in 0..limit {
        let step = exit_step(rt, kit).await;
        if let Some(Step::Waited { node: waited, .. }) = steps.last() {
            assert!(
                matches!(&step, Step::Broadcast { node, .. } if node == waited),
                "after waiting for {waited}, the planner broadcasts it: {step:?}"
            );
        }
        if let Step::Done(action) = step {
            return (action, steps);
        }
        steps.push(step);
    }
    panic!("the exit did not finish in {limit} steps: {steps:?}");
}
