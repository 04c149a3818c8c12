//! Transactions that spend commitment outputs with one party's key: the holder's delayed
//! `to_local`, the counterparty's `to_remote`, HTLC success (preimage) and timeout (after the
//! expiry) claims, and the penalty for a revoked commitment (penalty.rs builds its inputs).
//!
//! Every claim is version 2, pays one P2TR destination `input − feerate × vsize`, is signed
//! deterministically (BIP-340 without auxiliary randomness) and has exactly the vsize its fee
//! was computed for (the witness is sized before signing).

use bitcoin::hashes::Hash;
use bitcoin::key::TapTweak;
use bitcoin::secp256k1::{Keypair, Message, SecretKey};
use bitcoin::sighash::{Prevouts, SighashCache};
use bitcoin::taproot::LeafVersion;
use bitcoin::{
    absolute, transaction, Amount, FeeRate, OutPoint, ScriptBuf, Sequence, TapLeafHash,
    TapSighashType, Transaction, TxIn, TxOut, Witness,
};

use super::commitment::{ChannelParams, Commitment, Htlc, OutputKind, Side};
use super::keys::{derive_secret, ChannelSecrets};
use super::scripts::OutputTree;
use super::ChannelError;
use crate::params::BlockDelta;

/// How an input is spent.
#[derive(Debug, Clone)]
pub enum Path {
    /// Key path, with the internal key's secret (tweaked here with the output's merkle root).
    Key,
    /// Script leaf number `leaf` of the output's tree; `preimage` for an HTLC success leaf.
    Leaf {
        /// Index in [`OutputTree::leaves`].
        leaf: usize,
        /// The payment preimage, pushed under the signature.
        preimage: Option<[u8; 32]>,
    },
}

/// One input of a claim.
#[derive(Debug, Clone)]
pub struct ClaimInput {
    /// The spent output.
    pub outpoint: OutPoint,
    /// Its value and script.
    pub txout: TxOut,
    /// Its taproot tree.
    pub tree: OutputTree,
    /// How it is spent.
    pub path: Path,
    /// The key that signs (untweaked).
    pub secret: SecretKey,
    /// `nSequence` (the relative lock the script asks for).
    pub sequence: Sequence,
}

fn witness_items(input: &ClaimInput, sig: [u8; 64]) -> Result<Vec<Vec<u8>>, ChannelError> {
    match &input.path {
        Path::Key => Ok(vec![sig.to_vec()]),
        Path::Leaf { leaf, preimage } => {
            let script = input
                .tree
                .leaves
                .get(*leaf)
                .ok_or(ChannelError::NotClaimable {
                    reason: "no such leaf",
                })?;
            let control = input
                .tree
                .info
                .control_block(&(script.clone(), LeafVersion::TapScript))
                .ok_or(ChannelError::NotClaimable {
                    reason: "leaf not in the tree",
                })?;
            let mut items = vec![sig.to_vec()];
            if let Some(p) = preimage {
                items.push(p.to_vec());
            }
            items.push(script.to_bytes());
            items.push(control.serialize());
            Ok(items)
        }
    }
}

/// The preimages of `hashes` that `tx` reveals. An HTLC success claim pushes its preimage under
/// the signature ([`Path::Leaf`]), so the HTLC's offerer learns it from the chain when the payee
/// claims there instead of telling it. Every 32-byte witness item of every input is tried, so
/// the claim's exact shape does not matter.
pub fn revealed_preimages(
    tx: &Transaction,
    hashes: &std::collections::BTreeSet<bitcoin::hashes::sha256::Hash>,
) -> std::collections::BTreeMap<bitcoin::hashes::sha256::Hash, [u8; 32]> {
    tx.input
        .iter()
        .flat_map(|input| input.witness.iter())
        .filter_map(|item| <[u8; 32]>::try_from(item).ok())
        .map(|p| (bitcoin::hashes::sha256::Hash::hash(&p), p))
        .filter(|(hash, _)| hashes.contains(hash))
        .collect()
}

/// Builds and signs a claim of `inputs` to `destination` at `feerate`, with `lock_time`.
pub fn build_claim(
    inputs: &[ClaimInput],
    destination: ScriptBuf,
    feerate: FeeRate,
    lock_time: absolute::LockTime,
    dust: Amount,
) -> Result<Transaction, ChannelError> {
    let secp = crate::secp::ctx();
    let total: Amount = inputs.iter().map(|i| i.txout.value).sum();
    let mut tx = Transaction {
        version: transaction::Version::TWO,
        lock_time,
        input: inputs
            .iter()
            .map(|i| TxIn {
                previous_output: i.outpoint,
                script_sig: ScriptBuf::new(),
                sequence: i.sequence,
                witness: Witness::new(),
            })
            .collect(),
        output: vec![TxOut {
            value: total,
            script_pubkey: destination,
        }],
    };
    for (txin, input) in tx.input.iter_mut().zip(inputs) {
        txin.witness = Witness::from_slice(&witness_items(input, [0u8; 64])?);
    }
    let fee = feerate
        .fee_vb(tx.vsize() as u64)
        .ok_or(ChannelError::NotClaimable {
            reason: "fee overflow",
        })?;
    let value =
        total
            .checked_sub(fee)
            .filter(|v| *v >= dust)
            .ok_or(ChannelError::NotClaimable {
                reason: "the outputs do not cover the claim's fee",
            })?;
    tx.output[0].value = value;
    let prevouts: Vec<TxOut> = inputs.iter().map(|i| i.txout.clone()).collect();
    let mut witnesses = Vec::new();
    {
        let mut cache = SighashCache::new(&tx);
        for (n, input) in inputs.iter().enumerate() {
            let keypair = Keypair::from_secret_key(secp, &input.secret);
            let (sighash, keypair) = match &input.path {
                Path::Key => {
                    let sighash = cache
                        .taproot_key_spend_signature_hash(
                            n,
                            &Prevouts::All(&prevouts),
                            TapSighashType::Default,
                        )
                        .map_err(|_| ChannelError::NotClaimable { reason: "sighash" })?;
                    let tweaked = keypair
                        .tap_tweak(secp, input.tree.info.merkle_root())
                        .to_keypair();
                    if tweaked.x_only_public_key().0
                        != input.tree.info.output_key().to_x_only_public_key()
                    {
                        return Err(ChannelError::NotClaimable {
                            reason: "the key does not open this output's key path",
                        });
                    }
                    (sighash, tweaked)
                }
                Path::Leaf { leaf, .. } => {
                    let script = &input.tree.leaves[*leaf];
                    let sighash = cache
                        .taproot_script_spend_signature_hash(
                            n,
                            &Prevouts::All(&prevouts),
                            TapLeafHash::from_script(script, LeafVersion::TapScript),
                            TapSighashType::Default,
                        )
                        .map_err(|_| ChannelError::NotClaimable { reason: "sighash" })?;
                    (sighash, keypair)
                }
            };
            let msg = Message::from_digest(sighash.to_byte_array());
            let sig = secp.sign_schnorr_no_aux_rand(&msg, &keypair);
            witnesses.push(witness_items(input, sig.serialize())?);
        }
    }
    for (txin, w) in tx.input.iter_mut().zip(witnesses) {
        txin.witness = Witness::from_slice(&w);
    }
    Ok(tx)
}

fn output_input(
    commitment: &Commitment,
    vout: u32,
    path: Path,
    secret: SecretKey,
    sequence: Sequence,
) -> Result<ClaimInput, ChannelError> {
    let (_, tree) = &commitment.outputs[vout as usize];
    let tree = tree.clone().ok_or(ChannelError::NotClaimable {
        reason: "the anchor is not claimed here",
    })?;
    Ok(ClaimInput {
        outpoint: OutPoint::new(commitment.tx.compute_txid(), vout),
        txout: commitment.tx.output[vout as usize].clone(),
        tree,
        path,
        secret,
        sequence,
    })
}

fn seq(delay: BlockDelta) -> Result<Sequence, ChannelError> {
    delay.to_relative_sequence().ok_or(ChannelError::Params {
        reason: "relative delay does not fit BIP-68",
    })
}

/// The holder's `to_local` after `to_self_delay` (its own commitment; `point` is its
/// per-commitment point for that commitment).
pub fn to_local_input(
    params: &ChannelParams,
    commitment: &Commitment,
    mine: &ChannelSecrets,
    point: &bitcoin::secp256k1::PublicKey,
) -> Result<ClaimInput, ChannelError> {
    let vout = commitment
        .vout(OutputKind::ToLocal)
        .ok_or(ChannelError::NotClaimable {
            reason: "the commitment has no to_local output",
        })?;
    let secret = derive_secret(&mine.delayed_payment, point);
    output_input(
        commitment,
        vout,
        Path::Leaf {
            leaf: 0,
            preimage: None,
        },
        secret,
        seq(params.to_self_delay)?,
    )
}

/// The counterparty's `to_remote` (static payment key, 1 block after the commitment).
pub fn to_remote_input(
    commitment: &Commitment,
    mine: &ChannelSecrets,
) -> Result<ClaimInput, ChannelError> {
    let vout = commitment
        .vout(OutputKind::ToRemote)
        .ok_or(ChannelError::NotClaimable {
            reason: "the commitment has no to_remote output",
        })?;
    output_input(
        commitment,
        vout,
        Path::Leaf {
            leaf: 0,
            preimage: None,
        },
        mine.payment,
        seq(BlockDelta::from_blocks(1))?,
    )
}

/// `me`'s delay on an HTLC of `commitment`: `to_self_delay` on its own commitment, else 1.
fn my_delay(params: &ChannelParams, commitment: &Commitment, me: Side) -> BlockDelta {
    if commitment.holder == me {
        params.to_self_delay
    } else {
        BlockDelta::from_blocks(1)
    }
}

/// `me`'s HTLC key secret on `commitment` (whose holder's per-commitment point is `point`).
fn htlc_secret(mine: &ChannelSecrets, point: &bitcoin::secp256k1::PublicKey) -> SecretKey {
    derive_secret(&mine.htlc, point)
}

/// The payee's claim of `htlc` with its preimage (success leaf).
pub fn htlc_success_input(
    params: &ChannelParams,
    commitment: &Commitment,
    me: Side,
    mine: &ChannelSecrets,
    point: &bitcoin::secp256k1::PublicKey,
    htlc: &Htlc,
    preimage: [u8; 32],
) -> Result<ClaimInput, ChannelError> {
    if htlc.offerer == me {
        return Err(ChannelError::NotClaimable {
            reason: "the payer cannot claim with the preimage",
        });
    }
    htlc_leaf_input(params, commitment, me, mine, point, htlc, 0, Some(preimage))
}

/// The payer's claim of `htlc` after its expiry (timeout leaf); the claim's `nLockTime` must be
/// at least `htlc.expiry`.
pub fn htlc_timeout_input(
    params: &ChannelParams,
    commitment: &Commitment,
    me: Side,
    mine: &ChannelSecrets,
    point: &bitcoin::secp256k1::PublicKey,
    htlc: &Htlc,
) -> Result<ClaimInput, ChannelError> {
    if htlc.offerer != me {
        return Err(ChannelError::NotClaimable {
            reason: "only the payer can time an HTLC out",
        });
    }
    htlc_leaf_input(params, commitment, me, mine, point, htlc, 1, None)
}

/// `me`'s spend of `htlc`'s output on `commitment` by script leaf `leaf` (0: success with the
/// preimage, 1: timeout), after `me`'s delay on that commitment.
#[allow(clippy::too_many_arguments)]
fn htlc_leaf_input(
    params: &ChannelParams,
    commitment: &Commitment,
    me: Side,
    mine: &ChannelSecrets,
    point: &bitcoin::secp256k1::PublicKey,
    htlc: &Htlc,
    leaf: usize,
    preimage: Option<[u8; 32]>,
) -> Result<ClaimInput, ChannelError> {
    let vout = commitment
        .htlc_vout(htlc.offerer, htlc.id)
        .ok_or(ChannelError::NotClaimable {
            reason: "the HTLC has no output (trimmed or absent)",
        })?;
    output_input(
        commitment,
        vout,
        Path::Leaf { leaf, preimage },
        htlc_secret(mine, point),
        seq(my_delay(params, commitment, me))?,
    )
}
