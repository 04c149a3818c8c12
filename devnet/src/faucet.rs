//! The faucet: a key the devnet owns, paid by every block the devnet mines, spending its mature
//! coinbase outputs with transactions signed here (bitcoind has no wallet).
//!
//! Its coins are the index's confirmed outputs to the faucet address (coinbases only once
//! mature), minus what its own unconfirmed transactions spend, plus their unconfirmed change.
//! Confirmed coins are preferred; change is chained (at most [`MAX_CHAIN_DEPTH`] deep) so many
//! payments fit in one block.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use bitcoin::hashes::Hash;
use bitcoin::key::{Keypair, Secp256k1, TapTweak};
use bitcoin::secp256k1::{All, Message, SecretKey};
use bitcoin::sighash::{Prevouts, SighashCache, TapSighashType};
use bitcoin::transaction::Version;
use bitcoin::{absolute, taproot, Address, Amount, FeeRate, Network, OutPoint, ScriptBuf};
use bitcoin::{Sequence, Transaction, TxIn, TxOut, Txid, Witness};

use crate::error::DevnetError;
use crate::index::{ChainIndex, IndexStore, MempoolSnapshot, SpkHash};
use crate::rpc::RpcClient;

/// The faucet's feerate, unless the node takes only more (`-minrelaytxfee`).
const FEE_RATE: FeeRate = FeeRate::from_sat_per_vb_u32(2);
/// Change below this is left to the fee (P2TR dust limit).
const DUST: Amount = Amount::from_sat(330);
/// Blocks before a coinbase output may be spent.
const COINBASE_MATURITY: u32 = 100;
/// Longest chain of unconfirmed faucet transactions (well inside Core's mempool limits).
pub(crate) const MAX_CHAIN_DEPTH: u32 = 24;
/// Most inputs in one faucet transaction.
const MAX_INPUTS: usize = 500;
/// Where the faucet key lives inside the datadir.
const KEY_FILE: &str = "devnet-faucet.key";

/// Why the faucet could not pay.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FaucetError {
    /// Nothing to send.
    #[error("the faucet was asked for zero; ask for at least the dust limit (330 sat)")]
    ZeroAmount,
    /// Not enough spendable coins.
    #[error(
        "the faucet can spend {available} but needs {needed}; mine blocks \
         (coinbase outputs need 100 confirmations) or mine one to confirm pending payments"
    )]
    InsufficientFunds {
        /// Amount plus fee.
        needed: Amount,
        /// Sum of spendable coins.
        available: Amount,
    },
    /// bitcoind did not accept the faucet's transaction.
    #[error("bitcoind rejected the faucet transaction: {0}")]
    Rejected(String),
    /// Signing failed (a bug, reported rather than panicking).
    #[error("faucet could not sign: {0}")]
    Signing(String),
}

/// A coin the faucet can spend.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Coin {
    outpoint: OutPoint,
    txout: TxOut,
    /// 0 if confirmed, else 1 + the depth of its deepest parent coin.
    depth: u32,
}

/// A faucet transaction that was in the mempool when last looked.
#[derive(Debug, Clone)]
struct Pending {
    txid: Txid,
    spent: Vec<OutPoint>,
    change: Option<Coin>,
}

/// The devnet's faucet.
#[derive(Debug)]
pub(crate) struct Faucet {
    secp: Secp256k1<All>,
    keypair: Keypair,
    address: Address,
    pending: tokio::sync::Mutex<Vec<Pending>>,
}

impl Faucet {
    /// Loads the faucet key from `datadir`, creating one on first use.
    pub(crate) fn load_or_create(datadir: &Path) -> Result<Self, DevnetError> {
        let secp = Secp256k1::new();
        let path = datadir.join(KEY_FILE);
        let secret = match fs::read_to_string(&path) {
            Ok(text) => SecretKey::from_str(text.trim())
                .map_err(|_| DevnetError::FaucetKey { path: path.clone() })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let (secret, _) =
                    secp.generate_keypair(&mut bitcoin::secp256k1::rand::thread_rng());
                write_key(&path, &secret)?;
                secret
            }
            Err(source) => return Err(DevnetError::Datadir { path, source }),
        };
        let keypair = Keypair::from_secret_key(&secp, &secret);
        let (xonly, _) = keypair.x_only_public_key();
        let address = Address::p2tr(&secp, xonly, None, Network::Regtest);
        Ok(Faucet {
            secp,
            keypair,
            address,
            pending: tokio::sync::Mutex::new(Vec::new()),
        })
    }

    /// The faucet's address; blocks the devnet mines pay it.
    pub(crate) fn address(&self) -> &Address {
        &self.address
    }

    /// Pays `outputs` (in that order, change last) and returns the txid once bitcoind has it.
    pub(crate) async fn pay(
        &self,
        chain: &ChainIndex,
        rpc: &RpcClient,
        outputs: Vec<TxOut>,
    ) -> Result<Txid, DevnetError> {
        if outputs.iter().all(|o| o.value == Amount::ZERO) {
            return Err(FaucetError::ZeroAmount.into());
        }
        let mut pending = self.pending.lock().await;
        // Mempool first, then the chain: whatever left the mempool meanwhile is in the index.
        let mempool = chain.mempool().await?;
        chain.sync().await?;
        pending.retain(|p| mempool.get(&p.txid).is_some());
        let coins = spendable(
            &chain.read(),
            &mempool,
            &self.address.script_pubkey(),
            &pending,
        );
        let change_spk = self.address.script_pubkey();
        let rate = FEE_RATE.max(rpc.mempool_min_fee().await?);
        let plan = plan(coins, outputs, &change_spk, rate)?;
        let tx = self.sign(plan.tx, &plan.inputs)?;
        let txid = rpc
            .send_raw_transaction(&tx)
            .await
            .map_err(|e| match e.node_error() {
                Some((_, reason)) => DevnetError::Faucet(FaucetError::Rejected(reason.to_owned())),
                None => DevnetError::Rpc(e),
            })?;
        let depth = plan.inputs.iter().map(|c| c.depth).max().unwrap_or(0) + 1;
        let change = plan.change_vout.and_then(|vout| {
            let txout = tx.output.get(vout as usize)?.clone();
            let outpoint = OutPoint::new(txid, vout);
            Some(Coin {
                outpoint,
                txout,
                depth,
            })
        });
        pending.push(Pending {
            txid,
            spent: plan.inputs.iter().map(|c| c.outpoint).collect(),
            change,
        });
        tracing::debug!(%txid, inputs = plan.inputs.len(), "faucet paid");
        Ok(txid)
    }

    /// Signs every input with the faucet's tweaked key (BIP-341 key path, default sighash).
    fn sign(&self, mut tx: Transaction, inputs: &[Coin]) -> Result<Transaction, FaucetError> {
        let prevouts: Vec<TxOut> = inputs.iter().map(|c| c.txout.clone()).collect();
        let tweaked = self.keypair.tap_tweak(&self.secp, None).to_keypair();
        let mut cache = SighashCache::new(&mut tx);
        for index in 0..prevouts.len() {
            let sighash = cache
                .taproot_key_spend_signature_hash(
                    index,
                    &Prevouts::All(&prevouts),
                    TapSighashType::Default,
                )
                .map_err(|e| FaucetError::Signing(e.to_string()))?;
            let msg = Message::from_digest(sighash.to_byte_array());
            let signature = taproot::Signature {
                signature: self.secp.sign_schnorr_no_aux_rand(&msg, &tweaked),
                sighash_type: TapSighashType::Default,
            };
            let witness = cache
                .witness_mut(index)
                .ok_or_else(|| FaucetError::Signing(format!("no input {index}")))?;
            *witness = Witness::p2tr_key_spend(&signature);
        }
        Ok(tx)
    }
}

fn write_key(path: &PathBuf, secret: &SecretKey) -> Result<(), DevnetError> {
    fs::write(path, secret.display_secret().to_string()).map_err(|source| DevnetError::Datadir {
        path: path.clone(),
        source,
    })
}

/// The faucet's spendable coins: confirmed (mature) outputs to `spk` not spent in a block or
/// the mempool, plus pending change not yet spent or confirmed.
fn spendable(
    store: &IndexStore,
    mempool: &MempoolSnapshot,
    spk: &ScriptBuf,
    pending: &[Pending],
) -> Vec<Coin> {
    let next_height = store.tip().map_or(0, |(h, _)| h + 1);
    let spent: HashSet<OutPoint> = pending
        .iter()
        .flat_map(|p| p.spent.iter().copied())
        .collect();
    let confirmed = store.funded(&SpkHash::of(spk)).iter().filter_map(|op| {
        let out = store.output(op)?;
        let immature = out.coinbase && next_height < out.height + COINBASE_MATURITY;
        let unspent =
            store.spend(op).is_none() && !spent.contains(op) && mempool.spender_of(op).is_none();
        (unspent && !immature && out.txout.value > Amount::ZERO).then(|| Coin {
            outpoint: *op,
            txout: out.txout.clone(),
            depth: 0,
        })
    });
    let unconfirmed = pending
        .iter()
        .filter_map(|p| p.change.clone())
        .filter(|c| !spent.contains(&c.outpoint) && store.output(&c.outpoint).is_none());
    confirmed.chain(unconfirmed).collect()
}

/// An unsigned faucet transaction and the coins it spends.
#[derive(Debug)]
struct Plan {
    tx: Transaction,
    inputs: Vec<Coin>,
    change_vout: Option<u32>,
}

/// Chooses coins (confirmed first, then shallowest change, larger first) to pay `outputs` plus
/// the fee, adding change to `change_spk` unless it would be dust.
fn plan(
    mut coins: Vec<Coin>,
    outputs: Vec<TxOut>,
    change_spk: &ScriptBuf,
    rate: FeeRate,
) -> Result<Plan, FaucetError> {
    coins.retain(|c| c.depth < MAX_CHAIN_DEPTH);
    coins.sort_by(|a, b| {
        a.depth
            .cmp(&b.depth)
            .then(b.txout.value.cmp(&a.txout.value))
    });
    let target = outputs.iter().map(|o| o.value).sum::<Amount>();
    let mut chosen = Vec::new();
    let mut total = Amount::ZERO;
    let mut needed = target;
    for coin in coins.into_iter().take(MAX_INPUTS) {
        total += coin.txout.value;
        chosen.push(coin);
        let with_change = TxOut {
            value: Amount::ZERO,
            script_pubkey: change_spk.clone(),
        };
        let fee = fee_for(&chosen, &outputs, Some(&with_change), rate);
        needed = target + fee;
        if total < needed {
            continue;
        }
        let change_value = total - needed;
        let mut all_outputs = outputs.clone();
        let change_vout = if change_value >= DUST {
            all_outputs.push(TxOut {
                value: change_value,
                script_pubkey: change_spk.clone(),
            });
            Some(outputs.len() as u32)
        } else {
            None
        };
        let tx = unsigned(&chosen, all_outputs);
        return Ok(Plan {
            tx,
            inputs: chosen,
            change_vout,
        });
    }
    Err(FaucetError::InsufficientFunds {
        needed,
        available: total,
    })
}

fn unsigned(inputs: &[Coin], output: Vec<TxOut>) -> Transaction {
    Transaction {
        version: Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: inputs
            .iter()
            .map(|c| TxIn {
                previous_output: c.outpoint,
                script_sig: ScriptBuf::new(),
                sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                witness: Witness::new(),
            })
            .collect(),
        output,
    }
}

/// The fee for spending `inputs` (key-path P2TR) to `outputs` (+ `change`) at `rate`.
fn fee_for(inputs: &[Coin], outputs: &[TxOut], change: Option<&TxOut>, rate: FeeRate) -> Amount {
    let mut tx = unsigned(inputs, outputs.iter().chain(change).cloned().collect());
    for input in &mut tx.input {
        input.witness = Witness::from_slice(&[[0u8; 64]]);
    }
    rate.fee_vb(tx.vsize() as u64).unwrap_or(Amount::MAX_MONEY)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coin(n: u8, sats: u64, depth: u32) -> Coin {
        Coin {
            outpoint: OutPoint::new(Txid::from_byte_array([n; 32]), 0),
            txout: TxOut {
                value: Amount::from_sat(sats),
                script_pubkey: ScriptBuf::new_op_return([n]),
            },
            depth,
        }
    }

    fn pay(sats: u64) -> Vec<TxOut> {
        vec![TxOut {
            value: Amount::from_sat(sats),
            script_pubkey: ScriptBuf::new_op_return([9]),
        }]
    }

    #[test]
    fn prefers_confirmed_coins_and_adds_change() {
        let change = ScriptBuf::new_op_return([7]);
        let coins = vec![coin(1, 1_000_000, 3), coin(2, 500_000, 0)];
        let plan = plan(coins, pay(100_000), &change, FEE_RATE).expect("enough");
        assert_eq!(plan.inputs.len(), 1);
        assert_eq!(plan.inputs[0].depth, 0);
        assert_eq!(plan.change_vout, Some(1));
        let fee = Amount::from_sat(500_000) - plan.tx.output.iter().map(|o| o.value).sum();
        assert!(fee > Amount::ZERO && fee < Amount::from_sat(1_000));
    }

    #[test]
    fn combines_coins_and_skips_too_deep_chains() {
        let change = ScriptBuf::new_op_return([7]);
        let coins = vec![
            coin(1, 60_000, 0),
            coin(2, 60_000, 0),
            coin(3, 10_000_000, MAX_CHAIN_DEPTH),
        ];
        let plan = plan(coins, pay(100_000), &change, FEE_RATE).expect("two coins suffice");
        assert_eq!(plan.inputs.len(), 2);
        let err = super::plan(vec![coin(1, 1_000, 0)], pay(100_000), &change, FEE_RATE);
        assert!(matches!(err, Err(FaucetError::InsufficientFunds { .. })));
    }
}
