//! The wallet's Esplora side: chain sync, broadcast, transaction status and fee estimates.

use bdk_esplora::EsploraAsyncExt;
use bdk_wallet::chain::spk_client::{FullScanRequest, SyncRequest};
use bdk_wallet::{KeychainKind, Update};
use bitcoin::absolute::Height;
use bitcoin::{FeeRate, Transaction, Txid};

use super::{unix_now, LspWallet, WalletError};

/// Unused addresses in a row after which a full scan stops.
const STOP_GAP: usize = 20;
/// Esplora requests in flight at once during a sync.
const PARALLEL_REQUESTS: usize = 4;
pub(super) use shared::fees::{pick_fee_rate, FEE_RATE_CAP};

/// Where a transaction stands, as Esplora sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxStatus {
    /// Esplora does not know it: never broadcast, replaced, or dropped from the mempool.
    Unknown,
    /// In the mempool.
    Unconfirmed,
    /// In a block.
    Confirmed {
        /// The block's height.
        height: Height,
        /// Blocks from that one to the tip, both included (1 when it is the tip).
        confirmations: u32,
    },
}

impl TxStatus {
    /// Confirmations: 0 unless confirmed.
    pub fn confirmations(&self) -> u32 {
        match self {
            TxStatus::Confirmed { confirmations, .. } => *confirmations,
            TxStatus::Unknown | TxStatus::Unconfirmed => 0,
        }
    }
}

enum Request {
    Full(FullScanRequest<KeychainKind>),
    Partial(SyncRequest<(KeychainKind, u32)>),
}

impl LspWallet {
    /// Brings the wallet up to Esplora's view of the chain and mempool, and persists it.
    ///
    /// The first sync (no block seen yet) is a full scan of both keychains up to a gap of 20
    /// unused addresses; later ones check every revealed address and every unconfirmed
    /// transaction, and drop the ones the mempool no longer has.
    pub async fn sync(&self) -> Result<(), WalletError> {
        let request = {
            let state = self.lock()?;
            if state.wallet.latest_checkpoint().height() == 0 {
                Request::Full(state.wallet.start_full_scan().build())
            } else {
                Request::Partial(state.wallet.start_sync_with_revealed_spks().build())
            }
        };
        let update: Update = match request {
            Request::Full(request) => {
                tracing::debug!(url = %self.esplora_url, "wallet full scan");
                self.esplora
                    .full_scan(request, STOP_GAP, PARALLEL_REQUESTS)
                    .await
                    .map_err(|e| self.esplora_error(e))?
                    .into()
            }
            Request::Partial(request) => self
                .esplora
                .sync(request, PARALLEL_REQUESTS)
                .await
                .map_err(|e| self.esplora_error(e))?
                .into(),
        };
        let mut state = self.lock()?;
        state
            .wallet
            .apply_update(update)
            .map_err(|e| WalletError::ChainMismatch {
                url: self.esplora_url.clone(),
                reason: e.to_string(),
                network: self.network,
            })?;
        state.persist()?;
        tracing::debug!(
            tip = state.wallet.latest_checkpoint().height(),
            "wallet synced"
        );
        Ok(())
    }

    /// Sends `tx` to the network through Esplora, and records it as seen now.
    pub async fn broadcast(&self, tx: &Transaction) -> Result<Txid, WalletError> {
        let txid = tx.compute_txid();
        self.esplora
            .broadcast(tx)
            .await
            .map_err(|source| WalletError::Broadcast {
                url: self.esplora_url.clone(),
                txid,
                source: Box::new(source),
            })?;
        let mut state = self.lock()?;
        state
            .wallet
            .apply_unconfirmed_txs([(tx.clone(), unix_now())]);
        state.persist()?;
        tracing::info!(%txid, "broadcast on-chain transaction");
        Ok(txid)
    }

    /// Where `txid` stands now (any transaction, not only this wallet's).
    pub async fn tx_status(&self, txid: Txid) -> Result<TxStatus, WalletError> {
        let Some(info) = self
            .esplora
            .get_tx_info(&txid)
            .await
            .map_err(|e| self.esplora_error(Box::new(e)))?
        else {
            return Ok(TxStatus::Unknown);
        };
        let block_height = match (info.status.confirmed, info.status.block_height) {
            (false, _) => return Ok(TxStatus::Unconfirmed),
            (true, None) => return Err(self.bad_answer(format!("{txid} confirmed at no height"))),
            (true, Some(h)) => h,
        };
        let height = Height::from_consensus(block_height)
            .map_err(|e| self.bad_answer(format!("block height {block_height}: {e}")))?;
        let tip = self
            .esplora
            .get_height()
            .await
            .map_err(|e| self.esplora_error(Box::new(e)))?;
        // The tip may lag the transaction's block by a moment; it still has one confirmation.
        let confirmations = tip.saturating_sub(block_height).saturating_add(1);
        Ok(TxStatus::Confirmed {
            height,
            confirmations,
        })
    }

    /// The chain tip as Esplora reports it now (bounded like every tip read), or `None`.
    pub async fn tip_height(&self) -> Option<u32> {
        crate::tip::read_once(&self.esplora).await
    }

    /// A fee rate to confirm within `target_blocks`, from Esplora's `/fee-estimates`, never
    /// below 1 sat/vB (regtest has no estimates: it gets the floor) nor above 1000 sat/vB.
    pub async fn fee_rate_estimate(&self, target_blocks: u16) -> Result<FeeRate, WalletError> {
        let estimates = self
            .esplora
            .get_fee_estimates()
            .await
            .map_err(|e| self.esplora_error(Box::new(e)))?;
        Ok(pick_fee_rate(&estimates, target_blocks))
    }

    fn esplora_error(&self, source: Box<esplora_client::Error>) -> WalletError {
        WalletError::Esplora {
            url: self.esplora_url.clone(),
            source,
        }
    }

    fn bad_answer(&self, what: String) -> WalletError {
        WalletError::BadAnswer {
            url: self.esplora_url.clone(),
            what,
            network: self.network,
        }
    }
}
