//! The cooperative close: one key-path spend of the channel output paying both latest balances.
//!
//! Version 2, one input (the channel output, `nSequence = 0xFFFFFFFD`), `nLockTime` 0; outputs
//! the LSP's and the client's payout scripts, sorted by (value, script), a balance below the dust
//! limit left out (to the fee). The LSP pays the fee, `ceil(fee_rate × vsize)`. There is no
//! anchor: nothing is time-critical once both sides agree, and a stuck close can be replaced by
//! either side's latest commitment. Only a state without HTLCs can be closed this way.

use bitcoin::sighash::{Prevouts, SighashCache};
use bitcoin::{
    absolute, transaction, Amount, FeeRate, ScriptBuf, Sequence, TapSighash, TapSighashType,
    Transaction, TxIn, TxOut, Witness,
};

use super::commitment::{ChannelParams, CommitmentSpec};
use super::ChannelError;

/// Builds the unsigned cooperative close of `spec`.
pub fn build_close(
    params: &ChannelParams,
    spec: &CommitmentSpec,
    lsp_script: &ScriptBuf,
    client_script: &ScriptBuf,
    feerate: FeeRate,
) -> Result<Transaction, ChannelError> {
    if !spec.htlcs.is_empty() {
        return Err(ChannelError::Params {
            reason: "a channel with pending HTLCs cannot close cooperatively",
        });
    }
    let mut tx = Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: params.funding,
            script_sig: ScriptBuf::new(),
            sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
            witness: Witness::from_slice(&[[0u8; 64]]),
        }],
        output: vec![
            TxOut {
                value: spec.lsp_balance,
                script_pubkey: lsp_script.clone(),
            },
            TxOut {
                value: spec.client_balance,
                script_pubkey: client_script.clone(),
            },
        ],
    };
    let fee = feerate
        .fee_vb(tx.vsize() as u64)
        .ok_or(ChannelError::Params {
            reason: "fee overflow",
        })?;
    tx.output[0].value = spec
        .lsp_balance
        .checked_sub(fee)
        .ok_or(ChannelError::CannotAffordFee { fee })?;
    tx.output.retain(|o| o.value >= params.dust_limit);
    tx.output
        .sort_by(|a, b| (a.value, &a.script_pubkey).cmp(&(b.value, &b.script_pubkey)));
    tx.input[0].witness = Witness::new();
    Ok(tx)
}

/// BIP-341 key-path sighash of the close's input.
pub fn close_sighash(params: &ChannelParams, tx: &Transaction) -> TapSighash {
    SighashCache::new(tx)
        .taproot_key_spend_signature_hash(
            0,
            &Prevouts::All(&[&params.funding_output]),
            TapSighashType::Default,
        )
        .expect("one input, one prevout")
}

/// What the close pays `script` (zero if it has no output).
pub fn paid_to(tx: &Transaction, script: &ScriptBuf) -> Amount {
    tx.output
        .iter()
        .filter(|o| &o.script_pubkey == script)
        .map(|o| o.value)
        .sum()
}
