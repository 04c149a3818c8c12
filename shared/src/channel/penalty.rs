//! The penalty for a revoked commitment: one transaction that takes every output of it.
//!
//! The punisher knows its revocation basepoint secret and, once the commitment is revoked, the
//! holder's per-commitment secret; together they give the revocation secret, the internal key
//! of `to_local` and of every HTLC output, which it spends by key path (tweaked with each
//! output's merkle root). The punisher's own `to_remote` joins the same transaction through its
//! leaf (1-block CSV, so the penalty must confirm at least one block after the commitment, which
//! it always does). No holder path is open before `to_self_delay` blocks, so a punisher that sees
//! the commitment within that window always wins.

use bitcoin::secp256k1::SecretKey;
use bitcoin::{absolute, FeeRate, ScriptBuf, Sequence, Transaction};

use super::claim::{build_claim, to_remote_input, ClaimInput, Path};
use super::commitment::{ChannelParams, Commitment, OutputKind};
use super::keys::{revocation_secret, ChannelSecrets};
use super::ChannelError;

/// Builds and signs the penalty of revoked `commitment` (held by the other side) with the
/// holder's revealed per-commitment secret `revealed`, paying everything to `destination`.
pub fn build_penalty(
    params: &ChannelParams,
    commitment: &Commitment,
    mine: &ChannelSecrets,
    revealed: &SecretKey,
    destination: ScriptBuf,
    feerate: FeeRate,
) -> Result<Transaction, ChannelError> {
    let revocation = revocation_secret(&mine.revocation, revealed);
    let txid = commitment.tx.compute_txid();
    let mut inputs: Vec<ClaimInput> = Vec::new();
    for (vout, (kind, tree)) in commitment.outputs.iter().enumerate() {
        match (kind, tree) {
            (OutputKind::ToLocal | OutputKind::Htlc(_), Some(tree)) => inputs.push(ClaimInput {
                outpoint: bitcoin::OutPoint::new(txid, vout as u32),
                txout: commitment.tx.output[vout].clone(),
                tree: tree.clone(),
                path: Path::Key,
                secret: revocation,
                sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
            }),
            (OutputKind::ToRemote, _) => inputs.push(to_remote_input(commitment, mine)?),
            _ => {}
        }
    }
    if inputs.is_empty() {
        return Err(ChannelError::NotClaimable {
            reason: "the revoked commitment has nothing to take",
        });
    }
    build_claim(
        &inputs,
        destination,
        feerate,
        absolute::LockTime::ZERO,
        params.dust_limit,
    )
}
