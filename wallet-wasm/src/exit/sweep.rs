//! The sweep: what the distribution transaction pays this wallet's factory key, moved to the
//! wallet's own on-chain address with one key-path spend.

use bitcoin::hashes::Hash;
use bitcoin::key::TapTweak;
use bitcoin::secp256k1::{Keypair, Message, SecretKey};
use bitcoin::sighash::{Prevouts, SighashCache};
use bitcoin::{
    absolute, transaction, Address, Amount, FeeRate, OutPoint, ScriptBuf, Sequence, TapSighashType,
    Transaction, TxIn, TxOut, Witness,
};

/// Why no sweep could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SweepError {
    /// The output is not this key's (BIP-86) output.
    #[error("the payout is not locked to this wallet's factory key")]
    NotOurs,
    /// The output is too small to pay for its own sweep.
    #[error("the payout of {value} is too small to pay the {fee} fee of moving it")]
    TooSmall {
        /// The output's value.
        value: Amount,
        /// The fee.
        fee: Amount,
    },
    /// Signing failed.
    #[error("cannot sign the sweep: {0}")]
    Sign(String),
}

/// A signed transaction moving `payout` (the output `prevout`, locked to `key`'s BIP-86
/// taproot output) to `to`, paying `fee_rate`.
pub fn build_sweep(
    payout: OutPoint,
    prevout: &TxOut,
    key: &SecretKey,
    to: &Address,
    fee_rate: FeeRate,
) -> Result<Transaction, SweepError> {
    let secp = shared::secp::ctx();
    let keypair = Keypair::from_secret_key(secp, key);
    let internal = keypair.x_only_public_key().0;
    if prevout.script_pubkey != ScriptBuf::new_p2tr(secp, internal, None) {
        return Err(SweepError::NotOurs);
    }
    let mut tx = Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: payout,
            script_sig: ScriptBuf::new(),
            sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
            // A placeholder of the real signature's size, to weigh the transaction.
            witness: Witness::from_slice(&[[0u8; 64]]),
        }],
        output: vec![TxOut {
            value: prevout.value,
            script_pubkey: to.script_pubkey(),
        }],
    };
    let fee = fee_rate
        .fee_vb(tx.vsize() as u64)
        .unwrap_or(Amount::MAX_MONEY);
    let value = prevout
        .value
        .checked_sub(fee)
        .filter(|v| *v >= to.script_pubkey().minimal_non_dust())
        .ok_or(SweepError::TooSmall {
            value: prevout.value,
            fee,
        })?;
    tx.output[0].value = value;
    let sighash = SighashCache::new(&tx)
        .taproot_key_spend_signature_hash(0, &Prevouts::All(&[prevout]), TapSighashType::Default)
        .map_err(|e| SweepError::Sign(e.to_string()))?;
    let tweaked = keypair.tap_tweak(secp, None);
    let msg = Message::from_digest(sighash.to_byte_array());
    let signature = secp.sign_schnorr_no_aux_rand(&msg, &tweaked.to_keypair());
    tx.input[0].witness = Witness::from_slice(&[signature.as_ref()]);
    Ok(tx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::{Network, Txid};

    #[test]
    fn sweep_signs_a_key_path_spend_and_pays_the_fee() {
        let secp = shared::secp::ctx();
        let key = SecretKey::from_slice(&[9u8; 32]).expect("valid key");
        let internal = Keypair::from_secret_key(secp, &key).x_only_public_key().0;
        let prevout = TxOut {
            value: Amount::from_sat(110_000),
            script_pubkey: ScriptBuf::new_p2tr(secp, internal, None),
        };
        let other = SecretKey::from_slice(&[8u8; 32]).expect("valid key");
        let to = Address::p2tr(
            secp,
            Keypair::from_secret_key(secp, &other).x_only_public_key().0,
            None,
            Network::Regtest,
        );
        let payout = OutPoint::new(Txid::all_zeros(), 2);
        let rate = FeeRate::from_sat_per_vb_u32(2);
        let tx = build_sweep(payout, &prevout, &key, &to, rate).expect("sweeps");
        let fee = prevout.value - tx.output[0].value;
        assert_eq!(fee, rate.fee_vb(tx.vsize() as u64).expect("fee"));
        assert_eq!(tx.output[0].script_pubkey, to.script_pubkey());
        // The signature verifies against the tweaked output key.
        let sighash = SighashCache::new(&tx)
            .taproot_key_spend_signature_hash(
                0,
                &Prevouts::All(&[&prevout]),
                TapSighashType::Default,
            )
            .expect("sighash");
        let sig = bitcoin::secp256k1::schnorr::Signature::from_slice(&tx.input[0].witness[0])
            .expect("a signature");
        let output_key = internal.tap_tweak(secp, None).0.to_x_only_public_key();
        secp.verify_schnorr(
            &sig,
            &Message::from_digest(sighash.to_byte_array()),
            &output_key,
        )
        .expect("verifies");
        // Someone else's key cannot sweep it.
        assert_eq!(
            build_sweep(payout, &prevout, &other, &to, rate),
            Err(SweepError::NotOurs)
        );
    }
}
