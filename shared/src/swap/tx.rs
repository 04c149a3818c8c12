//! The two ways a swap output is spent, and what its claim reveals. Both are single-input claims
//! built by [`crate::channel::claim::build_claim`] (witness sized before signing, one P2TR or
//! any other destination), so a swap spend has the exact vsize its fee was computed for.

use std::collections::BTreeSet;

use bitcoin::absolute::LockTime;
use bitcoin::secp256k1::SecretKey;
use bitcoin::{Amount, FeeRate, OutPoint, ScriptBuf, Sequence, Transaction, TxOut};

use super::SwapScript;
use crate::channel::claim::{build_claim as claim_tx, revealed_preimages, ClaimInput, Path};
use crate::channel::ChannelError;

/// The least a spend may leave its destination (P2TR dust).
pub const DUST: Amount = Amount::from_sat(330);

fn input(
    script: &SwapScript,
    outpoint: OutPoint,
    value: Amount,
    secret: SecretKey,
    path: Path,
    sequence: Sequence,
) -> ClaimInput {
    let tree = script.tree();
    ClaimInput {
        outpoint,
        txout: TxOut {
            value,
            script_pubkey: tree.script_pubkey(),
        },
        tree,
        path,
        secret,
        sequence,
    }
}

/// The wallet's claim of the swap output `outpoint` (worth `value`) to `destination` at
/// `feerate`, revealing `preimage`. Signals replaceability, so a claim that waits too long is
/// replaced by one paying more.
pub fn build_claim(
    script: &SwapScript,
    outpoint: OutPoint,
    value: Amount,
    claim_secret: SecretKey,
    preimage: [u8; 32],
    destination: ScriptBuf,
    feerate: FeeRate,
) -> Result<Transaction, ChannelError> {
    let path = Path::Leaf {
        leaf: 0,
        preimage: Some(preimage),
    };
    let input = input(
        script,
        outpoint,
        value,
        claim_secret,
        path,
        Sequence::ENABLE_RBF_NO_LOCKTIME,
    );
    claim_tx(&[input], destination, feerate, LockTime::ZERO, DUST)
}

/// The LSP's refund of the swap output, valid from [`SwapScript::refund_height`] (its lock
/// time).
pub fn build_refund(
    script: &SwapScript,
    outpoint: OutPoint,
    value: Amount,
    refund_secret: SecretKey,
    destination: ScriptBuf,
    feerate: FeeRate,
) -> Result<Transaction, ChannelError> {
    let path = Path::Leaf {
        leaf: 1,
        preimage: None,
    };
    let input = input(
        script,
        outpoint,
        value,
        refund_secret,
        path,
        Sequence::ENABLE_RBF_NO_LOCKTIME,
    );
    claim_tx(
        &[input],
        destination,
        feerate,
        LockTime::Blocks(script.refund_height),
        DUST,
    )
}

/// The wallet's preimage, if `spend` (a transaction spending the swap output) is its claim.
pub fn preimage_in(script: &SwapScript, spend: &Transaction) -> Option<[u8; 32]> {
    revealed_preimages(spend, &BTreeSet::from([script.hash])).remove(&script.hash)
}

/// The vsize of a claim (for showing its fee before anything is signed).
pub fn claim_vsize(destination: &ScriptBuf) -> u64 {
    let script = SwapScript {
        hash: bitcoin::hashes::Hash::all_zeros(),
        claim_key: crate::channel::scripts::nums_key(),
        refund_key: crate::channel::scripts::nums_key(),
        refund_height: bitcoin::absolute::Height::ZERO,
    };
    let secret = SecretKey::from_slice(&[1; 32]).expect("a valid secret");
    build_claim(
        &script,
        OutPoint::null(),
        Amount::from_sat(100_000),
        secret,
        [0; 32],
        destination.clone(),
        FeeRate::ZERO,
    )
    .map(|tx| tx.vsize() as u64)
    .expect("a claim of 100,000 sats at no fee builds")
}
