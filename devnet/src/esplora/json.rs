//! Esplora's JSON shapes, field for field as Blockstream's electrs writes them (and as
//! esplora-client 0.12 reads them), built from the index and the mempool.

use bitcoin::{Address, BlockHash, Network, OutPoint, Script, Transaction, TxMerkleNode, TxOut};
use bitcoin::{Amount, Txid};
use serde::Serialize;

use crate::index::{IndexStore, MempoolSnapshot};

/// `status` of a transaction or UTXO.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub(crate) struct TxStatusJson {
    pub(crate) confirmed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) block_height: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) block_hash: Option<BlockHash>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) block_time: Option<u32>,
}

impl TxStatusJson {
    pub(crate) const UNCONFIRMED: TxStatusJson = TxStatusJson {
        confirmed: false,
        block_height: None,
        block_hash: None,
        block_time: None,
    };

    /// Confirmed at `height` of the indexed chain.
    pub(crate) fn at(store: &IndexStore, height: u32) -> Self {
        match store.block(height) {
            Some(block) => TxStatusJson {
                confirmed: true,
                block_height: Some(height),
                block_hash: Some(block.hash),
                block_time: Some(block.header.time),
            },
            None => Self::UNCONFIRMED,
        }
    }

    /// The status of `txid`: confirmed if indexed, else unconfirmed (also when unknown).
    pub(crate) fn of(store: &IndexStore, txid: &Txid) -> Self {
        store
            .tx(txid)
            .map_or(Self::UNCONFIRMED, |c| Self::at(store, c.height))
    }
}

/// One output (`vout` entry or an input's `prevout`).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct VoutJson {
    scriptpubkey: String,
    scriptpubkey_asm: String,
    scriptpubkey_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    scriptpubkey_address: Option<String>,
    value: u64,
}

impl VoutJson {
    pub(crate) fn new(txout: &TxOut) -> Self {
        let spk = &txout.script_pubkey;
        VoutJson {
            scriptpubkey: hex::encode(spk.as_bytes()),
            scriptpubkey_asm: spk.to_asm_string(),
            scriptpubkey_type: script_type(spk),
            scriptpubkey_address: Address::from_script(spk, Network::Regtest)
                .ok()
                .map(|a| a.to_string()),
            value: txout.value.to_sat(),
        }
    }
}

/// Esplora's name for a script's template.
fn script_type(spk: &Script) -> &'static str {
    if spk.is_p2pk() {
        "p2pk"
    } else if spk.is_p2pkh() {
        "p2pkh"
    } else if spk.is_p2sh() {
        "p2sh"
    } else if spk.is_p2wpkh() {
        "v0_p2wpkh"
    } else if spk.is_p2wsh() {
        "v0_p2wsh"
    } else if spk.is_p2tr() {
        "v1_p2tr"
    } else if spk.is_op_return() {
        "op_return"
    } else if spk.witness_version().is_some() && spk.as_bytes() == [0x51, 0x02, 0x4e, 0x73] {
        "anchor"
    } else if spk.is_multisig() {
        "multisig"
    } else if spk.is_empty() {
        "empty"
    } else {
        "unknown"
    }
}

/// One input.
#[derive(Debug, Clone, Serialize)]
struct VinJson {
    txid: Txid,
    vout: u32,
    prevout: Option<VoutJson>,
    scriptsig: String,
    scriptsig_asm: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    witness: Vec<String>,
    is_coinbase: bool,
    sequence: u32,
}

/// A transaction.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TxJson {
    txid: Txid,
    version: i32,
    locktime: u32,
    vin: Vec<VinJson>,
    vout: Vec<VoutJson>,
    size: usize,
    weight: u64,
    fee: u64,
    status: TxStatusJson,
}

/// Finds the output an input spends: confirmed (index) or unconfirmed (mempool).
pub(crate) fn prevout<'a>(
    store: &'a IndexStore,
    mempool: &'a MempoolSnapshot,
    outpoint: &OutPoint,
) -> Option<&'a TxOut> {
    store
        .output(outpoint)
        .map(|o| &o.txout)
        .or_else(|| mempool.output(outpoint))
}

impl TxJson {
    pub(crate) fn new(store: &IndexStore, mempool: &MempoolSnapshot, tx: &Transaction) -> Self {
        let txid = tx.compute_txid();
        let coinbase = tx.is_coinbase();
        let mut inputs_value = Some(Amount::ZERO);
        let vin = tx
            .input
            .iter()
            .map(|input| {
                let prev = (!coinbase)
                    .then(|| prevout(store, mempool, &input.previous_output))
                    .flatten();
                inputs_value = match (inputs_value, prev) {
                    (Some(sum), Some(p)) => sum.checked_add(p.value),
                    _ => None,
                };
                VinJson {
                    txid: input.previous_output.txid,
                    vout: input.previous_output.vout,
                    prevout: prev.map(VoutJson::new),
                    scriptsig: hex::encode(input.script_sig.as_bytes()),
                    scriptsig_asm: input.script_sig.to_asm_string(),
                    witness: input.witness.iter().map(hex::encode).collect(),
                    is_coinbase: coinbase,
                    sequence: input.sequence.0,
                }
            })
            .collect();
        let outputs_value: Amount = tx.output.iter().map(|o| o.value).sum();
        let fee = match inputs_value {
            Some(inputs) if !coinbase => inputs.checked_sub(outputs_value).unwrap_or(Amount::ZERO),
            _ => Amount::ZERO,
        };
        TxJson {
            txid,
            version: tx.version.0,
            locktime: tx.lock_time.to_consensus_u32(),
            vin,
            vout: tx.output.iter().map(VoutJson::new).collect(),
            size: tx.total_size(),
            weight: tx.weight().to_wu(),
            fee: fee.to_sat(),
            status: TxStatusJson::of(store, &txid),
        }
    }
}

/// A block (`/block/:hash`, `/blocks`).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct BlockJson {
    id: BlockHash,
    height: u32,
    version: i32,
    timestamp: u32,
    tx_count: usize,
    size: usize,
    weight: u64,
    merkle_root: TxMerkleNode,
    previousblockhash: Option<BlockHash>,
    mediantime: u32,
    nonce: u32,
    bits: u32,
    difficulty: f64,
}

impl BlockJson {
    pub(crate) fn at(store: &IndexStore, height: u32) -> Option<Self> {
        let block = store.block(height)?;
        let header = &block.header;
        Some(BlockJson {
            id: block.hash,
            height,
            version: header.version.to_consensus(),
            timestamp: header.time,
            tx_count: block.txids.len(),
            size: block.size,
            weight: block.weight.to_wu(),
            merkle_root: header.merkle_root,
            previousblockhash: (height > 0).then_some(header.prev_blockhash),
            mediantime: store.median_time_past(height).unwrap_or(header.time),
            nonce: header.nonce,
            bits: header.bits.to_consensus(),
            difficulty: header.difficulty_float(),
        })
    }
}

/// `/block/:hash/status`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct BlockStatusJson {
    pub(crate) in_best_chain: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) height: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) next_best: Option<BlockHash>,
}

/// `/tx/:txid/outspend/:vout`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub(crate) struct OutspendJson {
    pub(crate) spent: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) txid: Option<Txid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) vin: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) status: Option<TxStatusJson>,
}

/// `/tx/:txid/merkle-proof`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct MerkleProofJson {
    pub(crate) block_height: u32,
    pub(crate) merkle: Vec<Txid>,
    pub(crate) pos: usize,
}

/// One entry of `/address/:addr/utxo`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct UtxoJson {
    pub(crate) txid: Txid,
    pub(crate) vout: u32,
    pub(crate) status: TxStatusJson,
    pub(crate) value: u64,
}

/// `chain_stats` / `mempool_stats`.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub(crate) struct TxoSummaryJson {
    pub(crate) funded_txo_count: u32,
    pub(crate) funded_txo_sum: u64,
    pub(crate) spent_txo_count: u32,
    pub(crate) spent_txo_sum: u64,
    pub(crate) tx_count: u32,
}

impl TxoSummaryJson {
    pub(crate) fn add_funded(&mut self, value: Amount) {
        self.funded_txo_count += 1;
        self.funded_txo_sum += value.to_sat();
    }

    pub(crate) fn add_spent(&mut self, value: Amount) {
        self.spent_txo_count += 1;
        self.spent_txo_sum += value.to_sat();
    }
}

/// `/mempool`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct MempoolStatsJson {
    pub(crate) count: usize,
    pub(crate) vsize: u64,
    pub(crate) total_fee: u64,
    pub(crate) fee_histogram: Vec<(f64, u64)>,
}

/// One entry of `/mempool/recent`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct MempoolRecentJson {
    pub(crate) txid: Txid,
    pub(crate) fee: u64,
    pub(crate) vsize: u64,
    pub(crate) value: u64,
}
