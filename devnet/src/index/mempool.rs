//! A live view of bitcoind's mempool: the txid list is re-read on every refresh, and only
//! transactions not seen before are fetched. Snapshots are immutable and cheap to share.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bitcoin::{OutPoint, Transaction, TxOut, Txid};

use crate::rpc::{RpcClient, RpcError};

/// A transaction in the mempool.
#[derive(Debug, Clone)]
pub(crate) struct MempoolTx {
    pub(crate) txid: Txid,
    pub(crate) tx: Arc<Transaction>,
    /// Order of first sight; higher is newer.
    pub(crate) seq: u64,
}

/// The mempool at one moment.
#[derive(Debug, Default)]
pub(crate) struct MempoolSnapshot {
    txs: HashMap<Txid, MempoolTx>,
    spenders: HashMap<OutPoint, (Txid, u32)>,
}

impl MempoolSnapshot {
    fn new(txs: HashMap<Txid, MempoolTx>) -> Self {
        let mut spenders = HashMap::new();
        for m in txs.values() {
            for (vin, input) in m.tx.input.iter().enumerate() {
                spenders.insert(input.previous_output, (m.txid, vin as u32));
            }
        }
        MempoolSnapshot { txs, spenders }
    }

    pub(crate) fn get(&self, txid: &Txid) -> Option<&MempoolTx> {
        self.txs.get(txid)
    }

    /// The mempool transaction spending `outpoint` and the input index, if any.
    pub(crate) fn spender_of(&self, outpoint: &OutPoint) -> Option<(Txid, u32)> {
        self.spenders.get(outpoint).copied()
    }

    /// The output at `outpoint` if a mempool transaction created it.
    pub(crate) fn output(&self, outpoint: &OutPoint) -> Option<&TxOut> {
        self.txs
            .get(&outpoint.txid)
            .and_then(|m| m.tx.output.get(outpoint.vout as usize))
    }

    /// All transactions, newest first.
    pub(crate) fn newest_first(&self) -> Vec<&MempoolTx> {
        let mut all: Vec<&MempoolTx> = self.txs.values().collect();
        all.sort_by(|a, b| b.seq.cmp(&a.seq).then(a.txid.cmp(&b.txid)));
        all
    }
}

/// Orders transactions so that each comes after any of its parents in the same batch.
fn parents_first(mut pending: Vec<(Txid, Arc<Transaction>)>) -> Vec<(Txid, Arc<Transaction>)> {
    let mut unplaced: HashSet<Txid> = pending.iter().map(|(t, _)| *t).collect();
    let mut ordered = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let (ready, rest): (Vec<_>, Vec<_>) = pending.into_iter().partition(|(_, tx)| {
            tx.input
                .iter()
                .all(|i| !unplaced.contains(&i.previous_output.txid))
        });
        if ready.is_empty() {
            // Not possible for valid transactions; keep them rather than loop forever.
            ordered.extend(rest);
            break;
        }
        for (txid, _) in &ready {
            unplaced.remove(txid);
        }
        ordered.extend(ready);
        pending = rest;
    }
    ordered
}

/// Keeps the transactions already fetched between refreshes.
#[derive(Debug, Default)]
pub(crate) struct MempoolCache {
    txs: HashMap<Txid, MempoolTx>,
    next_seq: u64,
    snapshot: Arc<MempoolSnapshot>,
}

impl MempoolCache {
    /// Re-reads the mempool and returns the current snapshot.
    pub(crate) async fn refresh(
        &mut self,
        rpc: &RpcClient,
    ) -> Result<Arc<MempoolSnapshot>, RpcError> {
        let ids: HashSet<Txid> = rpc.get_raw_mempool().await?.into_iter().collect();
        let before = self.txs.len();
        self.txs.retain(|txid, _| ids.contains(txid));
        let mut changed = self.txs.len() != before;
        let mut fresh = Vec::new();
        for txid in ids.iter().filter(|t| !self.txs.contains_key(*t)) {
            // It may have been mined or evicted since the list was read; then skip it.
            if let Some(tx) = rpc.get_raw_transaction(txid).await? {
                fresh.push((*txid, Arc::new(tx)));
            }
        }
        for (txid, tx) in parents_first(fresh) {
            changed = true;
            self.next_seq += 1;
            let seq = self.next_seq;
            self.txs.insert(txid, MempoolTx { txid, tx, seq });
        }
        if changed {
            self.snapshot = Arc::new(MempoolSnapshot::new(self.txs.clone()));
        }
        Ok(Arc::clone(&self.snapshot))
    }
}
