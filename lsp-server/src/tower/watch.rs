//! The tower's pass, every few seconds, over every watched channel, from what Esplora says:
//!
//! 1. Nothing to do while the factory's funding output is unspent and the tip is below the
//!    timeout `T`: the wallet may come back, and the distribution transaction is still the
//!    way out of an idle factory.
//! 2. Otherwise the exit planner ([`ExitKit::next_action`]) says what is due, as it would to the
//!    wallet: each signed tree transaction as soon as its lock allows (the newest state, so a
//!    stale DW or leaf state is answered), or the distribution transaction from `T` on.
//! 3. Once the leaf is confirmed, the channel output is watched: a spender the wallet left a
//!    penalty for gets it, at the lowest rung paying today's urgent rate, one rung higher per
//!    block the revoked commitment has been confirmed, until a penalty confirms.
//!
//! The tower holds no key of a client's. Without a fee wallet it cannot add a fee to a tree
//! transaction the node refuses for its fee; it says so in its log and in the channel's status,
//! and tries again every pass. With one (`--fee-wallet`, the operator's own coins), each such
//! transaction goes out with a child through its anchor, as the LSP's own walk does.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use bitcoin::secp256k1::XOnlyPublicKey;
use bitcoin::{FeeRate, OutPoint, Transaction, Txid};
use esplora_client::AsyncClient;
use serde::Serialize;
use shared::exit::{ChainView, ExitAction};
use shared::pay::ChannelId;

use super::store::{TowerStore, Watched};
use crate::channels::{read, read_chain, read_refusal, Published, Publisher};

/// What the tower last saw and did for one channel (for its status endpoint and log).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChannelReport {
    /// In words: watching, walking, waiting, answered.
    pub state: String,
    /// Transactions the tower published, oldest first (kind and txid).
    pub published: Vec<String>,
    /// The revoked commitment it answered with a penalty, once seen.
    pub revoked_seen: Option<Txid>,
    /// The penalty that confirmed, if one did.
    pub penalty_confirmed: Option<Txid>,
    /// The highest penalty rung published (the tower never goes back below it).
    pub rung: Option<usize>,
    /// Nothing is left to do: the penalty confirmed, the distribution paid, or the factory
    /// closed another way. The pass skips the channel.
    pub done: bool,
}

/// Reports by channel, shared with the HTTP status endpoint.
pub(super) type Reports = Arc<Mutex<BTreeMap<(XOnlyPublicKey, ChannelId), ChannelReport>>>;

/// One pass over every watched channel.
pub(super) async fn pass(
    esplora: &AsyncClient,
    store: &TowerStore,
    reports: &Reports,
    publisher: Option<&Publisher>,
) {
    let watched = store.watched();
    let Some(tip) = read("tip", esplora.get_height()).await else {
        return;
    };
    // Today's urgent rate, read once a channel needs it (most passes have none going on chain).
    let mut target: Option<Option<FeeRate>> = None;
    // One read per funding output, however many of its members a tower watches.
    let mut funding_spent: BTreeMap<OutPoint, bool> = BTreeMap::new();
    for w in watched {
        let key = (w.identity, w.channel);
        let mut report = reports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .cloned()
            .unwrap_or_default();
        if report.done {
            continue;
        }

        let funding = w.kit.latest().funding_outpoint();
        let spent = match funding_spent.get(&funding) {
            Some(s) => *s,
            None => {
                let Some(status) = read(
                    "outspend",
                    esplora.get_output_status(&funding.txid, u64::from(funding.vout)),
                )
                .await
                else {
                    continue;
                };
                // Only a confirmed spend: an unconfirmed one may be a close the wallet signed.
                let s = status.is_some_and(|s| s.spent && s.status.is_some_and(|st| st.confirmed));
                funding_spent.insert(funding, s);
                s
            }
        };
        if !spent && tip < w.kit.latest().timeout().to_consensus_u32() {
            report.state = "watching: the factory's funding output is unspent".into();
        } else {
            if target.is_none() {
                let estimates = read("fee estimates", esplora.get_fee_estimates()).await;
                target = Some(
                    estimates.map(|e| shared::fees::pick_fee_rate(&e, shared::fees::URGENT_BLOCKS)),
                );
            }
            let target = target.flatten();
            step(esplora, store, &w, target, publisher, &mut report).await;
        }
        reports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, report);
    }
}

/// One step of one channel whose factory is going on chain.
async fn step(
    esplora: &AsyncClient,
    store: &TowerStore,
    w: &Watched,
    target: Option<FeeRate>,
    publisher: Option<&Publisher>,
    report: &mut ChannelReport,
) {
    let Some((chain, confirmed)) = read_chain(esplora, &w.kit).await else {
        return;
    };
    match w.kit.next_action(&chain) {
        ExitAction::Broadcast { .. } if w.moved => {
            // The wallet moved its balance out and released the key: its old path is the
            // LSP's to take back. The penalties stay armed (an old commitment still pays
            // the wallet).
            report.state = "the wallet moved out of this channel: its path is not walked; an \
                old commitment is still answered"
                .into();
        }
        ExitAction::Broadcast { kind, tx, fee, .. } => {
            let what = format!("{kind:?}");
            report.state = format!("walking the client's path: {what}");
            let Some(publisher) = publisher else {
                publish(esplora, &tx, &what, w.channel, report).await;
                return;
            };
            // With a fee wallet: alone if it pays today's rate, else with a child.
            for txid in confirmed {
                publisher.confirmed(txid);
            }
            let txid = tx.compute_txid();
            let line = match publisher.publish(esplora, &tx, fee, target).await {
                Published::Alone => format!("{what} {txid}"),
                Published::WithChild { child } => format!("{what} {txid} with child {child}"),
                Published::NotYet => return,
            };
            if !report.published.contains(&line) {
                tracing::warn!(channel = %w.channel, %txid, what, "tower: published");
                report.published.push(line);
            }
        }
        ExitAction::LeafConfirmed { channel, .. } => {
            report.state = "the leaf is on chain: watching the channel output".into();
            let tip = chain.tip_height().to_consensus_u32();
            answer_spend(esplora, store, w, channel, tip, target, report).await;
        }
        ExitAction::WaitUntil { height, .. } => {
            report.state = format!("waiting for a lock until block {height}");
        }
        ExitAction::Distributed { txid, .. } => {
            report.state = format!("the distribution transaction {txid} paid the client");
            report.done = true;
        }
        ExitAction::WaitForFunding => report.state = "the factory is not funded".into(),
        ExitAction::Stuck(problem) => {
            // A cooperative close or a move: the wallet's new state is elsewhere.
            report.state = format!("nothing to walk: {problem:?}");
            report.done = true;
        }
        _ => {}
    }
}

/// Answers whatever spent the channel output `channel`, if the wallet left a penalty for it.
async fn answer_spend(
    esplora: &AsyncClient,
    store: &TowerStore,
    w: &Watched,
    channel: OutPoint,
    tip: u32,
    target: Option<FeeRate>,
    report: &mut ChannelReport,
) {
    let Some(Some(status)) = read(
        "outspend",
        esplora.get_output_status(&channel.txid, u64::from(channel.vout)),
    )
    .await
    else {
        return;
    };
    let Some(spender) = status.txid.filter(|_| status.spent) else {
        return;
    };
    let penalty = match store.penalty(&w.identity, w.channel, spender) {
        Ok(Some(p)) => p,
        Ok(None) => {
            report.state = format!("the channel output is spent by {spender}, not a revoked commitment it holds a penalty for");
            return;
        }
        Err(e) => {
            tracing::error!(error = %e, "tower: cannot read a penalty");
            return;
        }
    };
    report.revoked_seen = Some(spender);
    // Done once one of the penalty's rungs confirmed (not any spend: the LSP's own claim
    // after `to_self_delay` would be one too).
    let first = penalty.rungs[0].tx.input[0].previous_output;
    if let Some(Some(s)) = read(
        "outspend",
        esplora.get_output_status(&first.txid, u64::from(first.vout)),
    )
    .await
    {
        if let (true, Some(txid), Some(st)) = (s.spent, s.txid, s.status) {
            let ours = penalty.rungs.iter().any(|r| r.tx.compute_txid() == txid);
            if st.confirmed {
                report.state = if ours {
                    report.penalty_confirmed = Some(txid);
                    format!("answered: the penalty {txid} confirmed")
                } else {
                    format!("the revoked commitment's output went to {txid}, not the penalty")
                };
                report.done = true;
                return;
            }
        }
    }
    let waited = status
        .status
        .and_then(|s| s.block_height)
        .map_or(0, |h| tip.saturating_sub(h) as usize);
    report.state = format!("a revoked commitment {spender} is on chain: publishing its penalty");
    tracing::warn!(channel = %w.channel, %spender, waited, "tower: a revoked commitment spent the channel output");
    // Never below a rung already out (a replacement must pay more); a rung the node refuses
    // for its fee gives way to the next one in the same pass.
    let top = penalty.rungs.len() - 1;
    let from = penalty
        .rung_index(target, waited)
        .max(report.rung.unwrap_or(0));
    for index in from..=top {
        match publish(
            esplora,
            &penalty.rungs[index].tx,
            "penalty",
            w.channel,
            report,
        )
        .await
        {
            Outcome::Taken => {
                report.rung = Some(index);
                return;
            }
            Outcome::FeeRefused if index < top => continue,
            _ => return,
        }
    }
}

/// What the node did with a transaction.
enum Outcome {
    Taken,
    FeeRefused,
    NotYet,
}

async fn publish(
    esplora: &AsyncClient,
    tx: &Transaction,
    what: &str,
    channel: ChannelId,
    report: &mut ChannelReport,
) -> Outcome {
    let txid = tx.compute_txid();
    match read_refusal(esplora.broadcast(tx)).await {
        Ok(()) => {
            let line = format!("{what} {txid}");
            if !report.published.contains(&line) {
                tracing::warn!(%channel, %txid, what, "tower: published");
                report.published.push(line);
            }
            Outcome::Taken
        }
        Err(Some(reason)) if shared::fees::is_fee_refusal(&reason) => {
            tracing::error!(%channel, %txid, what, reason, "tower: the node refuses this transaction for its fee");
            report.state = format!("{what} {txid} pays less than the network takes today ({reason}); the tower holds no coin to add a fee, so the wallet or the provider must");
            Outcome::FeeRefused
        }
        Err(reason) => {
            tracing::debug!(%channel, %txid, what, ?reason, "tower: not taken yet");
            Outcome::NotYet
        }
    }
}
