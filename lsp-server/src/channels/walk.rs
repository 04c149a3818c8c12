//! The LSP going on chain on a channel by itself: when an HTLC deadline passes
//! (`Channel::poll_timeout`: an HTLC it offered nears its expiry, or one it fulfilled was never
//! settled), the channel's commitment can only be published once its leaf is on chain. So the
//! LSP walks the client's tree path with the same planner a wallet uses for its exit
//! (`shared::exit::ExitKit`, built from the stored proposal, the ceremony's final signatures
//! and the leaf's states), broadcasting each transaction as soon as its relative lock allows,
//! then publishes its latest commitment. From there the channel watch takes over: the channel
//! output is spent, and it claims what is the LSP's (`Channel::claims_for`).
//!
//! The walk runs inside the channel watch's pass, every few seconds, from what Esplora says
//! is confirmed; it holds no state of its own beyond the kit, so a restart simply starts it
//! again when the deadline is found passed once more. Every transaction on the way was signed
//! at an older fee rate, so each goes out through [`Publisher`]: alone if it pays today's
//! rate, else with a child through its anchor, paid from the LSP's wallet.

use std::collections::BTreeSet;

use bitcoin::absolute::Height;
use bitcoin::{Amount, FeeRate, Transaction, Txid};
use esplora_client::AsyncClient;
use shared::exit::{ChainSnapshot, ExitAction, ExitKit};
use shared::pay::ChannelId;

use super::onchain::read;
use super::publish::{Published, Publisher};

/// One channel the LSP is taking on chain.
#[derive(Debug, Clone)]
pub(super) struct Walk {
    /// The client's signed path and leaf states.
    pub(super) kit: ExitKit,
    /// The LSP's latest signed commitment, published once the leaf is confirmed.
    pub(super) commitment: Transaction,
    /// What the channel output the commitment spends holds (its fee is this less its outputs).
    pub(super) channel_value: Amount,
}

/// The chain as the planner needs it: the tip, which of the kit's transactions confirmed, and
/// what spent each output on its paths, and the kit's confirmed transactions. `None` when any
/// read fails (the step waits).
pub(crate) async fn read_chain(
    esplora: &AsyncClient,
    kit: &ExitKit,
) -> Option<(ChainSnapshot, BTreeSet<Txid>)> {
    let tip = read("tip", esplora.get_height()).await?;
    let mut chain = ChainSnapshot::new(Height::from_consensus(tip).ok()?);
    let (txids, outpoints) = kit.watched();
    let mut confirmed = BTreeSet::new();
    for txid in txids {
        let status = read("tx status", esplora.get_tx_status(&txid)).await?;
        if let (true, Some(h)) = (status.confirmed, status.block_height) {
            chain.confirm_txid(txid, Height::from_consensus(h).ok()?);
            confirmed.insert(txid);
        }
    }
    for op in outpoints
        .into_iter()
        .filter(|o| confirmed.contains(&o.txid))
    {
        let Some(status) = read(
            "outspend",
            esplora.get_output_status(&op.txid, u64::from(op.vout)),
        )
        .await?
        else {
            continue;
        };
        if let (true, Some(spender), Some(s)) = (status.spent, status.txid, status.status) {
            if let (true, Some(h)) = (s.confirmed, s.block_height) {
                chain.record_spend(op, spender);
                chain.confirm_txid(spender, Height::from_consensus(h).ok()?);
            }
        }
    }
    Some((chain, confirmed))
}

/// One step of `id`'s walk: publishes whatever the planner says is due, paying `target`.
pub(super) async fn step(
    esplora: &AsyncClient,
    publisher: &Publisher,
    target: Option<FeeRate>,
    id: ChannelId,
    walk: &Walk,
) {
    let Some((chain, confirmed)) = read_chain(esplora, &walk.kit).await else {
        return;
    };
    for txid in confirmed {
        publisher.confirmed(txid);
    }
    let (what, tx, fee) = match walk.kit.next_action(&chain) {
        ExitAction::Broadcast { kind, tx, fee, .. } => (format!("{kind:?}"), tx, fee),
        ExitAction::LeafConfirmed { .. } => (
            "commitment".to_string(),
            walk.commitment.clone(),
            shared::fees::fee_paid(&walk.commitment, walk.channel_value),
        ),
        ExitAction::Stuck(problem) => {
            tracing::error!(channel = %id, ?problem, "the LSP's walk to its commitment is stuck");
            return;
        }
        // A lock has not passed yet, the funding is unconfirmed, or the distribution paid out.
        _ => return,
    };
    let txid = tx.compute_txid();
    match publisher.publish(esplora, &tx, fee, target).await {
        Published::Alone => {
            tracing::warn!(channel = %id, %txid, what, "going on chain: published")
        }
        Published::WithChild { child } => {
            tracing::warn!(channel = %id, %txid, %child, what, "going on chain: published with a fee-paying child")
        }
        Published::NotYet => {
            tracing::debug!(channel = %id, %txid, what, "going on chain: not accepted yet")
        }
    }
}

impl super::Router {
    /// An HTLC deadline of `id` passed and `commitment` is the LSP's latest: start (or keep)
    /// walking the client's tree path towards it, and stop routing over the channel.
    pub(super) fn go_on_chain(&mut self, id: ChannelId, commitment: Transaction) {
        if let Some(walk) = self.chain.walks.get_mut(&id) {
            walk.commitment = commitment;
            return;
        }
        // The deadline stays passed once the commitment is on chain (its HTLCs stay in the
        // spec), so this is asked again at every tick: the claims answer from there.
        let Some(deadline) = self
            .links
            .get(&id)
            .filter(|l| {
                !matches!(
                    l.closing,
                    Some(super::onchain::Closing::ChannelOnChain { .. })
                )
            })
            .map(|l| l.channel.poll_timeout().unwrap_or(Height::ZERO))
        else {
            return;
        };
        tracing::warn!(channel = %id, %deadline, "an HTLC deadline passed: walking the tree to the LSP's commitment");
        if self.start_walk(id, commitment) {
            self.close_link(id, super::onchain::Closing::Overdue { deadline });
        }
    }

    /// Starts walking `id`'s tree path towards `commitment`. False if there is nothing to walk
    /// (no signed path, or the channel output is already spent).
    pub(super) fn start_walk(&mut self, id: ChannelId, commitment: Transaction) -> bool {
        let kit = match self.exit_kit(id) {
            Ok(kit) => kit,
            Err(e) => {
                tracing::error!(channel = %id, error = %e, "cannot go on chain: no signed path");
                return false;
            }
        };
        let Some(link) = self.links.get(&id) else {
            return false;
        };
        if matches!(
            link.closing,
            Some(super::onchain::Closing::ChannelOnChain { .. })
        ) {
            return false;
        }
        let channel_value = link.channel.params().funding_output.value;
        self.chain.walks.insert(
            id,
            Walk {
                kit,
                commitment,
                channel_value,
            },
        );
        true
    }

    /// The client's signed path of channel `id` (the stored proposal and the ceremony's final
    /// signatures) and its leaf's states.
    fn exit_kit(&self, id: ChannelId) -> Result<ExitKit, String> {
        let (_, mut path, _) = self.member_path(id).map_err(|e| e.to_string())?;
        let signatures = self
            .store
            .tree_signatures(id.factory)
            .map_err(|e| e.to_string())?;
        for (node, sig) in signatures {
            // The set covers the whole tree; only the path's nodes take theirs.
            let _ = path.set_signature(node, sig);
        }
        let mut kit = ExitKit::new(path).map_err(|e| e.to_string())?;
        if let Some(link) = self.links.get(&id) {
            if link.leaf.latest().epoch.0 > 0 {
                kit.set_leaf(link.leaf.clone()).map_err(|e| e.to_string())?;
            }
        }
        Ok(kit)
    }
}
