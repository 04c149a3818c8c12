//! The chain watcher: reads the tip (bounded by a timeout) and polls every broadcast funding
//! transaction, rebroadcasts one Esplora does not know (a failed or dropped broadcast), and
//! reports to the coordinator. It never decides anything; the coordinator compares confirmations with the
//! configured depth.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bitcoin::{Transaction, Txid};
use shared::types::FactoryId;
use tokio::sync::mpsc;

use super::Inbound;
use crate::wallet::{LspWallet, TxStatus};

/// A funding transaction being watched.
#[derive(Debug, Clone)]
pub struct Watched {
    /// Its id.
    pub txid: Txid,
    /// The signed transaction, to rebroadcast.
    pub tx: Transaction,
    /// A child paying for it (fee bump), rebroadcast after it.
    pub child: Option<Transaction>,
}

/// The watch list, shared by the coordinator (which edits it) and the watcher.
pub type WatchList = Arc<Mutex<BTreeMap<FactoryId, Watched>>>;

/// One round of observations.
#[derive(Debug, Clone, Default)]
pub struct ChainUpdate {
    /// The tip height, if Esplora answered.
    pub height: Option<u32>,
    /// Confirmations of each watched funding transaction (0 while unconfirmed).
    pub confirmations: Vec<(FactoryId, Txid, u32)>,
}

/// Polls every `every` until the coordinator is gone.
pub(crate) async fn watch_chain(
    esplora: esplora_client::AsyncClient,
    wallet: Arc<LspWallet>,
    list: WatchList,
    to: mpsc::Sender<Inbound>,
    every: Duration,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let mut update = ChainUpdate {
            // Read here, not from the shared tip: the coordinator times funding bumps from
            // it, and a tip lagging by a second after a burst of blocks would start one early.
            height: crate::tip::read_once(&esplora).await,
            confirmations: Vec::new(),
        };
        let watched: Vec<(FactoryId, Watched)> = list
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(f, w)| (*f, w.clone()))
            .collect();
        for (factory, w) in watched {
            match wallet.tx_status(w.txid).await {
                Ok(TxStatus::Unknown) => {
                    if let Err(e) = wallet.broadcast(&w.tx).await {
                        tracing::warn!(%factory, txid = %w.txid, error = %e, "funding rebroadcast failed");
                    } else if let Some(child) = &w.child {
                        if let Err(e) = wallet.broadcast(child).await {
                            tracing::warn!(%factory, error = %e, "fee-bump rebroadcast failed");
                        }
                    }
                    update.confirmations.push((factory, w.txid, 0));
                }
                Ok(status) => update
                    .confirmations
                    .push((factory, w.txid, status.confirmations())),
                Err(e) => {
                    tracing::debug!(%factory, error = %e, "funding status unavailable")
                }
            }
        }
        if to.send(Inbound::Chain(update)).await.is_err() {
            return;
        }
    }
}
