//! Where a session learns the chain: the tip (for the proposal's timeout checks) and the
//! funding transaction's confirmations. The wallet never takes the LSP's word for either.

use bitcoin::{Transaction, Txid};

use crate::chain::{ChainError, Esplora};

/// A read-only view of the chain.
#[allow(async_fn_in_trait)]
pub trait ChainSource {
    /// The tip height.
    async fn tip_height(&self) -> Result<u32, ChainError>;

    /// Confirmations of `txid`: 0 when unconfirmed or unknown.
    async fn confirmations(&self, txid: &Txid) -> Result<u32, ChainError>;

    /// The transaction, if the chain source knows it.
    async fn transaction(&self, txid: &Txid) -> Result<Option<Transaction>, ChainError>;
}

/// An Esplora endpoint (any: the wallet's own choice, not necessarily the LSP's).
#[derive(Debug, Clone)]
pub struct EsploraChain {
    url: String,
    client: Esplora,
}

impl EsploraChain {
    /// A chain source reading `url`.
    pub fn new(url: &str) -> Result<Self, ChainError> {
        Ok(EsploraChain {
            url: url.to_owned(),
            client: crate::chain::esplora(url)?,
        })
    }

    fn error(&self, source: esplora_client::Error) -> ChainError {
        ChainError::Esplora {
            url: self.url.clone(),
            source,
        }
    }
}

impl ChainSource for EsploraChain {
    async fn tip_height(&self) -> Result<u32, ChainError> {
        self.client.get_height().await.map_err(|e| self.error(e))
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
}
