//! Where a session learns the chain: the tip (for the proposal's timeout checks) and the
//! funding transaction's confirmations. The wallet never takes the LSP's word for either, and
//! a tip it cannot read, or that contradicts one it saw, is an error (never height 0).

use bitcoin::{Transaction, Txid};

use crate::chain::{checked_tip, ChainError, Esplora, TipWatch};

/// A read-only view of the chain.
#[allow(async_fn_in_trait)]
pub trait ChainSource {
    /// The tip height, checked against the highest tip this wallet has seen
    /// ([`TipWatch`]).
    async fn tip_height(&self) -> Result<u32, ChainError>;

    /// Confirmations of `txid`: 0 when unconfirmed or unknown.
    async fn confirmations(&self, txid: &Txid) -> Result<u32, ChainError>;

    /// The transaction, if the chain source knows it.
    async fn transaction(&self, txid: &Txid) -> Result<Option<Transaction>, ChainError>;

    /// Sends `tx` to the network.
    async fn broadcast(&self, tx: &Transaction) -> Result<(), ChainError>;

    /// The transaction spending `outpoint` (in the mempool or a block) and whether it is
    /// confirmed, if any.
    async fn spender(
        &self,
        outpoint: bitcoin::OutPoint,
    ) -> Result<Option<(Txid, bool)>, ChainError>;

    /// Today's fee rate for confirming within `blocks` (`shared::fees::pick_fee_rate`).
    async fn fee_rate(&self, blocks: u16) -> Result<bitcoin::FeeRate, ChainError>;
}

/// An Esplora endpoint (any: the wallet's own choice, not necessarily the LSP's).
#[derive(Debug, Clone)]
pub struct EsploraChain {
    url: String,
    client: Esplora,
    watch: TipWatch,
}

impl EsploraChain {
    /// A chain source reading `url`, with a watch of its own.
    pub fn new(url: &str) -> Result<Self, ChainError> {
        EsploraChain::with_watch(url, TipWatch::new())
    }

    /// A chain source reading `url` whose tips are judged by `watch` (shared with the
    /// wallet's other chain reads).
    pub fn with_watch(url: &str, watch: TipWatch) -> Result<Self, ChainError> {
        Ok(EsploraChain {
            url: url.to_owned(),
            client: crate::chain::esplora(url)?,
            watch,
        })
    }

    /// The endpoint read.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn error(&self, source: esplora_client::Error) -> ChainError {
        ChainError::Esplora {
            url: self.url.clone(),
            source,
        }
    }
}

/// Coins at one address, as the chain source sees them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Coins {
    /// Every coin, confirmed or not.
    pub total: bitcoin::Amount,
    /// Coins in a block.
    pub confirmed: bitcoin::Amount,
    /// Confirmations of the most recent confirmed coin (0 with none confirmed).
    pub confirmations: u32,
}

impl EsploraChain {
    /// The coins at `address` now.
    pub async fn coins_at(&self, address: &bitcoin::Address) -> Result<Coins, ChainError> {
        let utxos = self
            .client
            .get_address_utxos(address)
            .await
            .map_err(|e| self.error(e))?;
        let mut coins = Coins::default();
        if utxos.is_empty() {
            return Ok(coins);
        }
        let tip = self.tip_height().await?;
        let mut newest: Option<u32> = None;
        for u in &utxos {
            coins.total += u.value;
            if let Some(h) = u.status.block_height.filter(|_| u.status.confirmed) {
                coins.confirmed += u.value;
                newest = Some(newest.map_or(h, |n| n.max(h)));
            }
        }
        coins.confirmations = newest.map_or(0, |h| tip.saturating_sub(h).saturating_add(1));
        Ok(coins)
    }
}

impl EsploraChain {
    /// The transaction spending `outpoint` (in the mempool or a block) and whether it is
    /// confirmed, if any.
    pub async fn spender(
        &self,
        outpoint: bitcoin::OutPoint,
    ) -> Result<Option<(Txid, bool)>, ChainError> {
        let status = self
            .client
            .get_output_status(&outpoint.txid, u64::from(outpoint.vout))
            .await
            .map_err(|e| self.error(e))?;
        Ok(status.filter(|s| s.spent).and_then(|s| {
            let confirmed = s.status.is_some_and(|st| st.confirmed);
            s.txid.map(|txid| (txid, confirmed))
        }))
    }
}

impl ChainSource for EsploraChain {
    async fn tip_height(&self) -> Result<u32, ChainError> {
        let tip = self.client.get_height().await.map_err(|e| self.error(e))?;
        checked_tip(&self.url, &self.watch, tip)
    }

    async fn confirmations(&self, txid: &Txid) -> Result<u32, ChainError> {
        let status = self
            .client
            .get_tx_status(txid)
            .await
            .map_err(|e| self.error(e))?;
        let Some(height) = status.block_height.filter(|_| status.confirmed) else {
            return Ok(0);
        };
        let tip = self.tip_height().await?;
        Ok(tip.saturating_sub(height).saturating_add(1))
    }

    async fn transaction(&self, txid: &Txid) -> Result<Option<Transaction>, ChainError> {
        self.client.get_tx(txid).await.map_err(|e| self.error(e))
    }

    async fn broadcast(&self, tx: &Transaction) -> Result<(), ChainError> {
        self.client.broadcast(tx).await.map_err(|e| self.error(e))
    }

    async fn spender(
        &self,
        outpoint: bitcoin::OutPoint,
    ) -> Result<Option<(Txid, bool)>, ChainError> {
        EsploraChain::spender(self, outpoint).await
    }

    async fn fee_rate(&self, blocks: u16) -> Result<bitcoin::FeeRate, ChainError> {
        let estimates = self
            .client
            .get_fee_estimates()
            .await
            .map_err(|e| self.error(e))?;
        Ok(shared::fees::pick_fee_rate(&estimates, blocks))
    }
}
