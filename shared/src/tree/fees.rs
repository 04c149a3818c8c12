//! Sizes and endogenous fees of the tree's transactions, computed before they are built.
//!
//! Every tree transaction has the same skeleton: version 2, one input spent by a 64-byte
//! taproot key-path signature (`SIGHASH_DEFAULT`), `n` P2TR outputs and one P2A anchor. Its
//! weight is therefore a function of `n` alone, which lets a parent know what each child subtree
//! costs without building it. The unit tests check the formula against real signed transactions.

use bitcoin::{Amount, Weight};

use crate::params::FactoryParams;

/// Serialized size of a P2TR output: value (8), script length (1), `OP_1 <32 bytes>` (34).
const P2TR_OUTPUT_BYTES: u64 = 8 + 1 + 34;
/// Serialized size of a P2A output: value (8), script length (1), `OP_1 <0x4e73>` (4).
const P2A_OUTPUT_BYTES: u64 = 8 + 1 + 4;
/// Version (4), input count (1), the input (32 + 4 + 1 + 4), lock time (4).
const FIXED_BYTES: u64 = 4 + 1 + 41 + 4;
/// Segwit marker and flag (2), witness item count (1), signature length (1), signature (64).
pub(crate) const KEY_SPEND_WITNESS_WU: u64 = 2 + 1 + 1 + 64;

fn compact_size_len(n: u64) -> u64 {
    match n {
        0..=0xfc => 1,
        0xfd..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    }
}

/// Weight of a signed tree transaction with `p2tr_outputs` P2TR outputs plus its anchor.
pub(crate) fn signed_weight(p2tr_outputs: usize) -> Weight {
    let n = p2tr_outputs as u64;
    let base = FIXED_BYTES + compact_size_len(n + 1) + n * P2TR_OUTPUT_BYTES + P2A_OUTPUT_BYTES;
    Weight::from_wu(base * 4 + KEY_SPEND_WITNESS_WU)
}

/// Virtual size of a signed tree transaction with `p2tr_outputs` P2TR outputs plus its anchor.
pub(crate) fn signed_vsize(p2tr_outputs: usize) -> u64 {
    signed_weight(p2tr_outputs).to_vbytes_ceil()
}

/// The endogenous fee such a transaction pays: `fee_rate × vsize`, rounded up.
pub(crate) fn fee(params: &FactoryParams, p2tr_outputs: usize) -> Amount {
    params
        .fee_rate
        .fee_vb(signed_vsize(p2tr_outputs))
        .unwrap_or(Amount::MAX_MONEY)
}

/// What such a transaction takes out of its input besides its P2TR outputs: fee plus anchor.
pub(crate) fn overhead(params: &FactoryParams, p2tr_outputs: usize) -> Amount {
    fee(params, p2tr_outputs) + params.anchor_value
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;
    use bitcoin::transaction::Version;
    use bitcoin::{
        absolute, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid, Witness,
    };

    fn real(n: usize) -> Transaction {
        let p2tr = ScriptBuf::from_bytes([[0x51, 0x20].as_slice(), &[7u8; 32]].concat());
        let mut output: Vec<TxOut> = (0..n)
            .map(|_| TxOut {
                value: Amount::ONE_SAT,
                script_pubkey: p2tr.clone(),
            })
            .collect();
        output.push(TxOut {
            value: Amount::ONE_SAT,
            script_pubkey: ScriptBuf::new_p2a(),
        });
        Transaction {
            version: Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint::new(Txid::all_zeros(), 0),
                script_sig: ScriptBuf::new(),
                sequence: Sequence::MAX,
                witness: Witness::from_slice(&[[1u8; 64]]),
            }],
            output,
        }
    }

    #[test]
    fn formula_matches_real_transactions() {
        for n in [0, 1, 2, 3, 16, 250, 251, 252, 253, 300, 1024, 70_000] {
            assert_eq!(signed_weight(n), real(n).weight(), "n = {n}");
        }
        assert_eq!(signed_vsize(1), 124);
    }

    #[test]
    fn fee_rounds_up() {
        let mut p = FactoryParams::regtest();
        p.fee_rate = bitcoin::FeeRate::from_sat_per_kwu(251);
        assert!(fee(&p, 1).to_sat() * 1000 >= 251 * signed_weight(1).to_wu());
    }
}
