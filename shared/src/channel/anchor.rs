//! Bumping a commitment's fee through its P2A anchor (CPFP).
//!
//! The child spends the anchor (keyless: empty `scriptSig` and witness) and one wallet coin
//! paying to a BIP-86 key, and returns the change to `change`. Its fee brings the package
//! (commitment + child) to `package_rate`: `fee = rate × (parent vsize + child vsize) − parent
//! fee`. The child is version 2, `nLockTime` 0, every input `nSequence = 0xFFFFFFFD` (replaceable
//! by a higher bump).

use bitcoin::hashes::Hash;
use bitcoin::key::TapTweak;
use bitcoin::secp256k1::{Keypair, Message, SecretKey};
use bitcoin::sighash::{Prevouts, SighashCache};
use bitcoin::{
    absolute, transaction, Amount, FeeRate, OutPoint, ScriptBuf, Sequence, TapSighashType,
    Transaction, TxIn, TxOut, Witness,
};

use super::ChannelError;

/// Builds and signs the CPFP child of `parent` (whose fee is `parent_fee`) through its anchor,
/// with the wallet coin `coin` (a BIP-86 output of `coin_key`).
pub fn build_cpfp(
    parent: &Transaction,
    parent_fee: Amount,
    coin: (OutPoint, TxOut),
    coin_key: &SecretKey,
    change: ScriptBuf,
    package_rate: FeeRate,
    dust: Amount,
) -> Result<Transaction, ChannelError> {
    let secp = crate::secp::ctx();
    let anchor_vout = parent
        .output
        .iter()
        .position(|o| o.script_pubkey == ScriptBuf::new_p2a())
        .ok_or(ChannelError::NotClaimable {
            reason: "the parent has no P2A anchor",
        })?;
    let anchor = parent.output[anchor_vout].clone();
    let keypair = Keypair::from_secret_key(secp, coin_key).tap_tweak(secp, None);
    if ScriptBuf::new_p2tr_tweaked(
        keypair
            .to_keypair()
            .x_only_public_key()
            .0
            .dangerous_assume_tweaked(),
    ) != coin.1.script_pubkey
    {
        return Err(ChannelError::NotClaimable {
            reason: "the coin is not a BIP-86 output of the given key",
        });
    }
    let total = anchor.value + coin.1.value;
    let mut tx = Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: vec![
            TxIn {
                previous_output: OutPoint::new(parent.compute_txid(), anchor_vout as u32),
                script_sig: ScriptBuf::new(),
                sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                witness: Witness::new(),
            },
            TxIn {
                previous_output: coin.0,
                script_sig: ScriptBuf::new(),
                sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                witness: Witness::from_slice(&[[0u8; 64]]),
            },
        ],
        output: vec![TxOut {
            value: total,
            script_pubkey: change,
        }],
    };
    let package_vsize = (parent.vsize() + tx.vsize()) as u64;
    let fee = package_rate
        .fee_vb(package_vsize)
        .and_then(|f| f.checked_sub(parent_fee))
        .ok_or(ChannelError::NotClaimable {
            reason: "the parent already pays this rate",
        })?;
    tx.output[0].value =
        total
            .checked_sub(fee)
            .filter(|v| *v >= dust)
            .ok_or(ChannelError::NotClaimable {
                reason: "the wallet coin cannot pay the bump",
            })?;
    let sighash = SighashCache::new(&tx)
        .taproot_key_spend_signature_hash(
            1,
            &Prevouts::All(&[anchor, coin.1]),
            TapSighashType::Default,
        )
        .map_err(|_| ChannelError::NotClaimable { reason: "sighash" })?;
    let sig = secp.sign_schnorr_no_aux_rand(
        &Message::from_digest(sighash.to_byte_array()),
        &keypair.to_keypair(),
    );
    tx.input[1].witness = Witness::from_slice(&[sig.serialize()]);
    Ok(tx)
}
