//! The confirmed-chain address index as a plain data structure: blocks are connected on top and
//! disconnected from the top, nothing else. No I/O; [`super::ChainIndex`] feeds it from bitcoind.
//!
//! Invariant: the store holds a contiguous chain from genesis (height 0) to its tip, and every
//! map reflects exactly the blocks in that chain. Heights are plain `u32` block heights here
//! (the store's own indices into that chain); the public API converts them to
//! [`bitcoin::absolute::Height`].

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use bitcoin::block::Header;
use bitcoin::hashes::{sha256, Hash};
use bitcoin::{Block, BlockHash, OutPoint, Script, Transaction, TxOut, Txid, Weight};

/// How many blocks the median time past looks back over.
const MEDIAN_TIME_SPAN: usize = 11;

/// Esplora's key for a script: the SHA-256 of the scriptPubKey, shown in forward byte order.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct SpkHash(sha256::Hash);

impl SpkHash {
    pub(crate) fn of(script: &Script) -> Self {
        SpkHash(sha256::Hash::hash(script.as_bytes()))
    }
}

impl FromStr for SpkHash {
    type Err = bitcoin::hashes::hex::HexToArrayError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        sha256::Hash::from_str(s).map(SpkHash)
    }
}

impl fmt::Display for SpkHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A block in the indexed chain.
#[derive(Debug, Clone)]
pub(crate) struct BlockEntry {
    pub(crate) hash: BlockHash,
    pub(crate) header: Header,
    pub(crate) txids: Vec<Txid>,
    pub(crate) size: usize,
    pub(crate) weight: Weight,
}

/// A confirmed transaction and where it sits.
#[derive(Debug, Clone)]
pub(crate) struct ConfirmedTx {
    pub(crate) tx: Arc<Transaction>,
    pub(crate) height: u32,
    pub(crate) pos: usize,
}

/// A confirmed output.
#[derive(Debug, Clone)]
pub(crate) struct OutputEntry {
    pub(crate) txout: TxOut,
    pub(crate) height: u32,
    pub(crate) coinbase: bool,
}

/// A confirmed spend of an output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SpendEntry {
    pub(crate) txid: Txid,
    pub(crate) vin: u32,
    pub(crate) height: u32,
}

/// A confirmed transaction touching a script, in chain order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TxRef {
    pub(crate) height: u32,
    pub(crate) pos: usize,
    pub(crate) txid: Txid,
}

/// Why a block could not be connected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ConnectError {
    #[error("block {block} does not build on the indexed tip {tip:?}")]
    NotOnTip {
        block: BlockHash,
        tip: Option<BlockHash>,
    },
    #[error("the chain is longer than a u32 height")]
    TooHigh,
}

/// The index of the confirmed chain.
#[derive(Debug, Default)]
pub(crate) struct IndexStore {
    blocks: Vec<BlockEntry>,
    heights: HashMap<BlockHash, u32>,
    txs: HashMap<Txid, ConfirmedTx>,
    outputs: HashMap<OutPoint, OutputEntry>,
    spends: HashMap<OutPoint, SpendEntry>,
    history: HashMap<SpkHash, Vec<TxRef>>,
    funded: HashMap<SpkHash, Vec<OutPoint>>,
}

impl IndexStore {
    /// The tip's height and hash; `None` before genesis is connected.
    pub(crate) fn tip(&self) -> Option<(u32, BlockHash)> {
        let last = self.blocks.last()?;
        Some((self.top_height()?, last.hash))
    }

    fn top_height(&self) -> Option<u32> {
        self.blocks.len().checked_sub(1).map(|h| h as u32)
    }

    pub(crate) fn block(&self, height: u32) -> Option<&BlockEntry> {
        self.blocks.get(height as usize)
    }

    pub(crate) fn height_of(&self, hash: &BlockHash) -> Option<u32> {
        self.heights.get(hash).copied()
    }

    pub(crate) fn tx(&self, txid: &Txid) -> Option<&ConfirmedTx> {
        self.txs.get(txid)
    }

    pub(crate) fn output(&self, outpoint: &OutPoint) -> Option<&OutputEntry> {
        self.outputs.get(outpoint)
    }

    pub(crate) fn spend(&self, outpoint: &OutPoint) -> Option<&SpendEntry> {
        self.spends.get(outpoint)
    }

    /// Confirmed transactions touching `spk`, oldest first.
    pub(crate) fn history(&self, spk: &SpkHash) -> &[TxRef] {
        self.history.get(spk).map_or(&[], Vec::as_slice)
    }

    /// Confirmed outputs paying `spk`, oldest first (spent or not).
    pub(crate) fn funded(&self, spk: &SpkHash) -> &[OutPoint] {
        self.funded.get(spk).map_or(&[], Vec::as_slice)
    }

    /// The median of the last 11 block times ending at `height` (BIP-113).
    pub(crate) fn median_time_past(&self, height: u32) -> Option<u32> {
        let end = height as usize + 1;
        if end > self.blocks.len() {
            return None;
        }
        let start = end.saturating_sub(MEDIAN_TIME_SPAN);
        let mut times: Vec<u32> = self.blocks[start..end]
            .iter()
            .map(|b| b.header.time)
            .collect();
        times.sort_unstable();
        times.get(times.len() / 2).copied()
    }

    /// Adds `block` on top of the tip (or as genesis into an empty store).
    pub(crate) fn connect(&mut self, block: &Block) -> Result<(), ConnectError> {
        let hash = block.block_hash();
        let tip = self.blocks.last().map(|b| b.hash);
        let builds_on_tip = match tip {
            Some(tip) => block.header.prev_blockhash == tip,
            None => block.header.prev_blockhash == BlockHash::all_zeros(),
        };
        if !builds_on_tip {
            return Err(ConnectError::NotOnTip { block: hash, tip });
        }
        let height = u32::try_from(self.blocks.len()).map_err(|_| ConnectError::TooHigh)?;
        let mut txids = Vec::with_capacity(block.txdata.len());
        for (pos, tx) in block.txdata.iter().enumerate() {
            let txid = tx.compute_txid();
            txids.push(txid);
            self.connect_tx(tx, txid, height, pos);
        }
        self.blocks.push(BlockEntry {
            hash,
            header: block.header,
            txids,
            size: block.total_size(),
            weight: block.weight(),
        });
        self.heights.insert(hash, height);
        Ok(())
    }

    fn connect_tx(&mut self, tx: &Transaction, txid: Txid, height: u32, pos: usize) {
        let coinbase = tx.is_coinbase();
        let mut touched = Vec::new();
        if !coinbase {
            for (vin, input) in tx.input.iter().enumerate() {
                if let Some(prev) = self.outputs.get(&input.previous_output) {
                    touched.push(SpkHash::of(&prev.txout.script_pubkey));
                }
                let spend = SpendEntry {
                    txid,
                    vin: vin as u32,
                    height,
                };
                self.spends.insert(input.previous_output, spend);
            }
        }
        for (vout, txout) in tx.output.iter().enumerate() {
            let outpoint = OutPoint::new(txid, vout as u32);
            let spk = SpkHash::of(&txout.script_pubkey);
            self.funded.entry(spk).or_default().push(outpoint);
            let entry = OutputEntry {
                txout: txout.clone(),
                height,
                coinbase,
            };
            self.outputs.insert(outpoint, entry);
            touched.push(spk);
        }
        touched.sort_unstable();
        touched.dedup();
        for spk in touched {
            self.history
                .entry(spk)
                .or_default()
                .push(TxRef { height, pos, txid });
        }
        let confirmed = ConfirmedTx {
            tx: Arc::new(tx.clone()),
            height,
            pos,
        };
        self.txs.insert(txid, confirmed);
    }

    /// Removes the tip block and everything it added; returns its hash.
    pub(crate) fn disconnect_tip(&mut self) -> Option<BlockHash> {
        let height = self.top_height()?;
        let entry = self.blocks.pop()?;
        self.heights.remove(&entry.hash);
        let in_block: HashSet<Txid> = entry.txids.iter().copied().collect();
        let mut touched = HashSet::new();
        for txid in entry.txids.iter().rev() {
            let Some(confirmed) = self.txs.remove(txid) else {
                continue;
            };
            for (vout, txout) in confirmed.tx.output.iter().enumerate() {
                self.outputs.remove(&OutPoint::new(*txid, vout as u32));
                touched.insert(SpkHash::of(&txout.script_pubkey));
            }
            if !confirmed.tx.is_coinbase() {
                for input in &confirmed.tx.input {
                    self.spends.remove(&input.previous_output);
                    if let Some(prev) = self.outputs.get(&input.previous_output) {
                        touched.insert(SpkHash::of(&prev.txout.script_pubkey));
                    }
                }
            }
        }
        for spk in touched {
            if let Some(refs) = self.history.get_mut(&spk) {
                while refs.last().is_some_and(|r| r.height == height) {
                    refs.pop();
                }
                if refs.is_empty() {
                    self.history.remove(&spk);
                }
            }
            if let Some(ops) = self.funded.get_mut(&spk) {
                while ops.last().is_some_and(|op| in_block.contains(&op.txid)) {
                    ops.pop();
                }
                if ops.is_empty() {
                    self.funded.remove(&spk);
                }
            }
        }
        Some(entry.hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::block::Version as BlockVersion;
    use bitcoin::hashes::Hash;
    use bitcoin::script::Builder;
    use bitcoin::transaction::Version;
    use bitcoin::{
        absolute, Amount, CompactTarget, ScriptBuf, Sequence, TxIn, TxMerkleNode, Witness,
    };

    fn spk(n: u8) -> ScriptBuf {
        ScriptBuf::new_op_return([n])
    }

    fn coinbase(height: u32, to: &ScriptBuf) -> Transaction {
        Transaction {
            version: Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint::null(),
                script_sig: Builder::new().push_int(i64::from(height)).into_script(),
                sequence: Sequence::MAX,
                witness: Witness::new(),
            }],
            output: vec![TxOut {
                value: Amount::from_sat(50_000),
                script_pubkey: to.clone(),
            }],
        }
    }

    fn spend(from: OutPoint, to: &ScriptBuf, sats: u64) -> Transaction {
        Transaction {
            version: Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: vec![TxIn {
                previous_output: from,
                script_sig: ScriptBuf::new(),
                sequence: Sequence::MAX,
                witness: Witness::new(),
            }],
            output: vec![TxOut {
                value: Amount::from_sat(sats),
                script_pubkey: to.clone(),
            }],
        }
    }

    fn block(prev: BlockHash, time: u32, txdata: Vec<Transaction>) -> Block {
        Block {
            header: Header {
                version: BlockVersion::TWO,
                prev_blockhash: prev,
                merkle_root: TxMerkleNode::all_zeros(),
                time,
                bits: CompactTarget::from_consensus(0x207fffff),
                nonce: 0,
            },
            txdata,
        }
    }

    #[test]
    fn connect_and_disconnect_restore_the_same_view() {
        let (a, b) = (spk(1), spk(2));
        let mut store = IndexStore::default();
        let genesis = block(BlockHash::all_zeros(), 100, vec![coinbase(0, &a)]);
        store.connect(&genesis).expect("genesis");
        let cb1 = coinbase(1, &a);
        let funding = OutPoint::new(genesis.txdata[0].compute_txid(), 0);
        let pay = spend(funding, &b, 40_000);
        let b1 = block(genesis.block_hash(), 200, vec![cb1, pay.clone()]);
        store.connect(&b1).expect("child of genesis");

        let (sa, sb) = (SpkHash::of(&a), SpkHash::of(&b));
        assert_eq!(store.tip(), Some((1, b1.block_hash())));
        assert_eq!(store.history(&sa).len(), 3, "two coinbases and the spend");
        assert_eq!(store.history(&sb).len(), 1);
        assert_eq!(
            store.spend(&funding).map(|s| s.txid),
            Some(pay.compute_txid())
        );
        assert_eq!(store.median_time_past(1), Some(200));

        assert_eq!(store.disconnect_tip(), Some(b1.block_hash()));
        assert_eq!(store.tip(), Some((0, genesis.block_hash())));
        assert!(store.spend(&funding).is_none());
        assert_eq!(store.history(&sa).len(), 1);
        assert!(store.history(&sb).is_empty());
        assert!(store.funded(&sb).is_empty());
        assert!(store.tx(&pay.compute_txid()).is_none());
    }

    #[test]
    fn rejects_a_block_that_does_not_extend_the_tip() {
        let mut store = IndexStore::default();
        let genesis = block(BlockHash::all_zeros(), 1, vec![coinbase(0, &spk(1))]);
        store.connect(&genesis).expect("genesis");
        let orphan = block(BlockHash::all_zeros(), 2, vec![coinbase(1, &spk(1))]);
        assert!(matches!(
            store.connect(&orphan),
            Err(ConnectError::NotOnTip { .. })
        ));
    }
}
