//! The chain as the exit planner sees it: confirmed transactions and the outputs they spent.
//!
//! The planner never asks a server; the driver fills a [`ChainView`] (e.g. a [`ChainSnapshot`]
//! from Esplora's `/tx/:txid/status` and `/tx/:txid/outspend/:vout`) and passes it in.

use std::collections::HashMap;

use bitcoin::absolute::Height;
use bitcoin::{OutPoint, Transaction, Txid};

/// What the planner needs to know about the chain. Only *confirmed* facts: a transaction in
/// the mempool counts as not there (broadcasting it again is harmless).
pub trait ChainView {
    /// Height of the current tip.
    fn tip_height(&self) -> Height;
    /// Height of the block that confirmed `txid`, if any.
    fn confirmation_height(&self, txid: &Txid) -> Option<Height>;
    /// The confirmed transaction that spent `outpoint`, if any.
    fn spending_txid(&self, outpoint: &OutPoint) -> Option<Txid>;
}

/// A plain in-memory [`ChainView`], filled by the driver (or a test).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainSnapshot {
    tip: Height,
    confirmed: HashMap<Txid, Height>,
    spends: HashMap<OutPoint, Txid>,
}

impl ChainSnapshot {
    /// An empty chain at `tip`.
    pub fn new(tip: Height) -> ChainSnapshot {
        ChainSnapshot {
            tip,
            confirmed: HashMap::new(),
            spends: HashMap::new(),
        }
    }

    /// Moves the tip.
    pub fn set_tip(&mut self, tip: Height) {
        self.tip = tip;
    }

    /// Records `tx` as confirmed at `height`, spending its inputs; raises the tip if needed.
    pub fn confirm(&mut self, tx: &Transaction, height: Height) {
        let txid = tx.compute_txid();
        self.confirmed.insert(txid, height);
        for input in &tx.input {
            self.spends.insert(input.previous_output, txid);
        }
        self.tip = self.tip.max(height);
    }

    /// Records a confirmation known only by id (e.g. the funding transaction).
    pub fn confirm_txid(&mut self, txid: Txid, height: Height) {
        self.confirmed.insert(txid, height);
        self.tip = self.tip.max(height);
    }

    /// Records that `outpoint` was spent by `txid`.
    pub fn record_spend(&mut self, outpoint: OutPoint, txid: Txid) {
        self.spends.insert(outpoint, txid);
    }
}

impl ChainView for ChainSnapshot {
    fn tip_height(&self) -> Height {
        self.tip
    }

    fn confirmation_height(&self, txid: &Txid) -> Option<Height> {
        self.confirmed.get(txid).copied()
    }

    fn spending_txid(&self, outpoint: &OutPoint) -> Option<Txid> {
        self.spends.get(outpoint).copied()
    }
}
