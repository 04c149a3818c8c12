//! The LSP's leaf watch. Once a leaf has sold liquidity, its older states pay the client more
//! L-stock than the newest, and each has a redistribution that hands that L-stock to the
//! client. So whenever a leaf's parent output appears on chain, the LSP must get the newest
//! leaf state confirmed. Its delay is the shortest, so it can always win if it is broadcast as
//! soon as BIP-68 allows.
//!
//! The router hands the watch, at every tick, the signed newest state of every advanced leaf.
//! The watch reads Esplora and broadcasts each state the moment it may enter the next block.
//! It never decides anything else, and one pass runs at a time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bitcoin::{OutPoint, Transaction};
use shared::pay::ChannelId;

/// One leaf to guard: its parent output, the newest state spending it, and that state's delay.
#[derive(Debug, Clone)]
pub(super) struct Guarded {
    pub(super) id: ChannelId,
    pub(super) parent: OutPoint,
    pub(super) newest: Transaction,
    pub(super) delay: u32,
}

/// Runs one pass over `leaves` in the background, unless one is still running.
pub(super) fn spawn_pass(
    esplora: esplora_client::AsyncClient,
    running: Arc<AtomicBool>,
    tip: u32,
    leaves: Vec<Guarded>,
) {
    if leaves.is_empty() || running.swap(true, Ordering::AcqRel) {
        return;
    }
    tokio::spawn(async move {
        for leaf in &leaves {
            // A hung Esplora must not hold the pass (and so every later pass) forever.
            let checked = tokio::time::timeout(PASS_TIMEOUT, check(&esplora, tip, leaf)).await;
            if checked.is_err() {
                tracing::warn!(channel = %leaf.id, "leaf watch: Esplora did not answer in time");
            }
        }
        running.store(false, Ordering::Release);
    });
}

/// How long the checks of one leaf may take.
const PASS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

async fn check(esplora: &esplora_client::AsyncClient, tip: u32, leaf: &Guarded) {
    let Ok(status) = esplora.get_tx_status(&leaf.parent.txid).await else {
        return;
    };
    let Some(confirmed) = status.block_height.filter(|_| status.confirmed) else {
        return; // the tree above the leaf is not on chain
    };
    let newest = leaf.newest.compute_txid();
    match esplora
        .get_output_status(&leaf.parent.txid, u64::from(leaf.parent.vout))
        .await
    {
        Ok(Some(out)) if out.spent => {
            if out.txid.is_some_and(|t| t != newest) {
                tracing::error!(channel = %leaf.id, spender = ?out.txid, "a superseded leaf state spent the leaf's parent output");
            }
            return;
        }
        Ok(_) => {}
        Err(_) => return,
    }
    // BIP-68: a delay of d blocks lets the state into block `confirmed + d`.
    if tip + 1 < confirmed + leaf.delay {
        return;
    }
    match esplora.broadcast(&leaf.newest).await {
        Ok(()) => {
            tracing::warn!(channel = %leaf.id, txid = %newest, "the leaf's tree is on chain: published its newest state")
        }
        // Its lock has passed, so a refusal means trouble (a fee too low for the mempool, or a
        // conflicting spend): the operator must look before an older state's lock passes too.
        Err(e) => {
            tracing::warn!(channel = %leaf.id, txid = %newest, error = %e, "the newest leaf state was refused; an older one could win the race")
        }
    }
}
