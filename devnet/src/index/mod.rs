//! The devnet's own small address index over bitcoind: confirmed blocks in an in-memory
//! [`IndexStore`] kept in step with the node's best chain (reorgs are followed by disconnecting
//! back to the fork point), plus a live [`MempoolSnapshot`].
//!
//! Reading order for a consistent view: take the mempool snapshot first, then sync the chain
//! ([`ChainIndex::view`] does both), so a transaction mined in between shows up confirmed
//! rather than nowhere.

mod mempool;
mod store;

use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};

use bitcoin::absolute::Height;

pub(crate) use mempool::{MempoolSnapshot, MempoolTx};
pub(crate) use store::{IndexStore, SpkHash};

use crate::error::DevnetError;
use crate::rpc::RpcClient;

/// How many times one sync restarts when the node's chain changes under it.
const MAX_SYNC_ROUNDS: usize = 20;

/// The address index, shared by every request handler.
#[derive(Debug)]
pub(crate) struct ChainIndex {
    rpc: RpcClient,
    store: RwLock<IndexStore>,
    sync_lock: tokio::sync::Mutex<()>,
    mempool: tokio::sync::Mutex<mempool::MempoolCache>,
}

impl ChainIndex {
    pub(crate) fn new(rpc: RpcClient) -> Self {
        ChainIndex {
            rpc,
            store: RwLock::new(IndexStore::default()),
            sync_lock: tokio::sync::Mutex::new(()),
            mempool: tokio::sync::Mutex::new(mempool::MempoolCache::default()),
        }
    }

    /// Read access to the confirmed index. Do not hold it across an `.await`.
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, IndexStore> {
        self.store.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, IndexStore> {
        self.store.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The current mempool.
    pub(crate) async fn mempool(&self) -> Result<Arc<MempoolSnapshot>, DevnetError> {
        Ok(self.mempool.lock().await.refresh(&self.rpc).await?)
    }

    /// A fresh mempool snapshot with the chain synced after it (see the module docs).
    pub(crate) async fn view(&self) -> Result<Arc<MempoolSnapshot>, DevnetError> {
        let mempool = self.mempool().await?;
        self.sync().await?;
        Ok(mempool)
    }

    /// Brings the index to the node's best tip; returns the indexed tip height.
    pub(crate) async fn sync(&self) -> Result<Height, DevnetError> {
        let _one_syncer = self.sync_lock.lock().await;
        for _ in 0..MAX_SYNC_ROUNDS {
            let best = self.rpc.get_best_block_hash().await?;
            let tip = self.read().tip();
            if let Some((height, hash)) = tip {
                if hash == best {
                    return to_height(height);
                }
            }
            self.rewind_to_common_ancestor().await?;
            self.connect_up_to_node_tip().await?;
        }
        Err(DevnetError::Index(format!(
            "the node's chain kept changing during {MAX_SYNC_ROUNDS} sync rounds"
        )))
    }

    /// Disconnects indexed blocks until the indexed tip is on the node's best chain.
    async fn rewind_to_common_ancestor(&self) -> Result<(), DevnetError> {
        loop {
            let Some((height, hash)) = self.read().tip() else {
                return Ok(());
            };
            if self.rpc.get_block_hash(to_height(height)?).await? == Some(hash) {
                return Ok(());
            }
            let gone = self.write().disconnect_tip();
            tracing::info!(height, block = ?gone, "reorg: disconnected block from the index");
        }
    }

    /// Connects the node's blocks above the indexed tip, stopping early if they stop fitting
    /// (the caller then starts another round).
    async fn connect_up_to_node_tip(&self) -> Result<(), DevnetError> {
        let count = self.rpc.get_block_count().await?.to_consensus_u32();
        let next = self.read().tip().map_or(0, |(h, _)| h + 1);
        for height in next..=count {
            let Some(hash) = self.rpc.get_block_hash(to_height(height)?).await? else {
                return Ok(());
            };
            let Some(block) = self.rpc.get_block(&hash).await? else {
                return Ok(());
            };
            if let Err(e) = self.write().connect(&block) {
                tracing::debug!(error = %e, "chain moved during sync; starting over");
                return Ok(());
            }
        }
        Ok(())
    }
}

pub(crate) fn to_height(height: u32) -> Result<Height, DevnetError> {
    Height::from_consensus(height)
        .map_err(|e| DevnetError::Index(format!("height {height} out of range: {e}")))
}
