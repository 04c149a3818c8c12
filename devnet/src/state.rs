//! The devnet's shared state (RPC client, index, faucet, automine) and the operations that both
//! the library API and the HTTP API perform: mining, paying from the faucet, automining.

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use bitcoin::{Address, Amount, BlockHash, Network, TxOut, Txid};
use tokio::task::JoinHandle;

use crate::error::DevnetError;
use crate::faucet::Faucet;
use crate::index::ChainIndex;
use crate::rpc::RpcClient;

/// State shared by the [`Devnet`](crate::Devnet) handle, the HTTP handlers and the background
/// tasks.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) rpc: RpcClient,
    pub(crate) chain: ChainIndex,
    pub(crate) faucet: Faucet,
    pub(crate) esplora_url: String,
    automine: Mutex<Option<JoinHandle<()>>>,
    /// The least `/fee-estimates` answers, in thousandths of a sat/vB (0: the node's own).
    fee_floor_millis: std::sync::atomic::AtomicU64,
}

impl Shared {
    pub(crate) fn new(rpc: RpcClient, faucet: Faucet, esplora_url: String) -> Self {
        Shared {
            chain: ChainIndex::new(rpc.clone()),
            rpc,
            faucet,
            esplora_url,
            automine: Mutex::new(None),
            fee_floor_millis: Default::default(),
        }
    }

    /// Makes `/fee-estimates` answer at least `sat_per_vb` for every target (0 clears it), as
    /// a busy mempool would: what a test needs to see responses signed again at a higher fee.
    pub(crate) fn set_fee_floor(&self, sat_per_vb: f64) {
        let millis = (sat_per_vb.max(0.0) * 1000.0) as u64;
        self.fee_floor_millis
            .store(millis, std::sync::atomic::Ordering::Relaxed);
    }

    /// The floor [`Shared::set_fee_floor`] set, in sat/vB.
    pub(crate) fn fee_floor(&self) -> f64 {
        self.fee_floor_millis
            .load(std::sync::atomic::Ordering::Relaxed) as f64
            / 1000.0
    }

    /// Mines `blocks` blocks paying `address` and brings the index up to them.
    pub(crate) async fn mine_to(
        &self,
        address: &Address,
        blocks: u32,
    ) -> Result<Vec<BlockHash>, DevnetError> {
        if !address
            .as_unchecked()
            .is_valid_for_network(Network::Regtest)
        {
            return Err(DevnetError::WrongNetwork(address.to_string()));
        }
        let hashes = self.rpc.generate_to_address(blocks, address).await?;
        self.chain.sync().await?;
        Ok(hashes)
    }

    /// Mines `blocks` blocks paying the faucet.
    pub(crate) async fn mine(&self, blocks: u32) -> Result<Vec<BlockHash>, DevnetError> {
        self.mine_to(self.faucet.address(), blocks).await
    }

    /// Pays `amount` to `address` from the faucet.
    pub(crate) async fn pay(&self, address: &Address, amount: Amount) -> Result<Txid, DevnetError> {
        if !address
            .as_unchecked()
            .is_valid_for_network(Network::Regtest)
        {
            return Err(DevnetError::WrongNetwork(address.to_string()));
        }
        let output = TxOut {
            value: amount,
            script_pubkey: address.script_pubkey(),
        };
        self.faucet.pay(&self.chain, &self.rpc, vec![output]).await
    }

    /// Mines one block every `every` (replacing any earlier schedule); `None` stops.
    pub(crate) fn set_automine(self: &Arc<Self>, every: Option<Duration>) {
        let task = every.filter(|d| !d.is_zero()).map(|every| {
            let weak = Arc::downgrade(self);
            tokio::spawn(automine(weak, every))
        });
        let old = std::mem::replace(
            &mut *self.automine.lock().unwrap_or_else(PoisonError::into_inner),
            task,
        );
        if let Some(old) = old {
            old.abort();
        }
    }

    /// Stops the automine task, if any.
    pub(crate) fn stop_automine(&self) {
        let task = self
            .automine
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            task.abort();
        }
    }
}

async fn automine(state: Weak<Shared>, every: Duration) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        ticks.tick().await;
        let Some(state) = state.upgrade() else {
            return;
        };
        match state.mine(1).await {
            Ok(hashes) => tracing::info!(block = ?hashes.first(), "automined a block"),
            Err(e) => tracing::warn!(error = %e, "automine failed"),
        }
    }
}

/// Keeps the index close to the node's tip, for changes made behind the devnet's back (direct
/// RPC use). Ends when the devnet is gone.
pub(crate) async fn poll_tip(state: Weak<Shared>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let Some(state) = state.upgrade() else {
            return;
        };
        if let Err(e) = state.chain.sync().await {
            tracing::debug!(error = %e, "index poll failed");
        }
    }
}
