//! The tapscripts and taproot trees of a commitment's outputs.
//!
//! Every spendable commitment output is P2TR. `to_local` and HTLC outputs use the revocation key
//! as internal key, so a revoked commitment is swept by key path alone; `to_remote` has the BIP-341
//! NUMS point as internal key (no key path) and one script leaf. Every non-revocation path that a
//! party can take while the commitment is unconfirmed carries at least `1 OP_CHECKSEQUENCEVERIFY`,
//! so the only output spendable from the mempool is the anchor (no pinning through own outputs).

use bitcoin::hashes::{sha256, Hash};
use bitcoin::opcodes::all::{
    OP_CHECKSIGVERIFY, OP_CLTV, OP_CSV, OP_DROP, OP_EQUALVERIFY, OP_SHA256, OP_SIZE,
};
use bitcoin::secp256k1::{PublicKey, XOnlyPublicKey};
use bitcoin::taproot::{TaprootBuilder, TaprootSpendInfo};
use bitcoin::{absolute, ScriptBuf};

use crate::params::BlockDelta;

/// The BIP-341 "nothing up my sleeve" point `lift_x(SHA256(G))`: no one knows its discrete log.
pub const NUMS: [u8; 32] = [
    0x50, 0x92, 0x9b, 0x74, 0xc1, 0xa0, 0x49, 0x54, 0xb7, 0x8b, 0x4b, 0x60, 0x35, 0xe9, 0x7a, 0x5e,
    0x07, 0x8a, 0x5a, 0x0f, 0x28, 0xec, 0x96, 0xd5, 0x47, 0xbf, 0xee, 0x9a, 0xce, 0x80, 0x3a, 0xc0,
];

/// [`NUMS`] as a key.
pub fn nums_key() -> XOnlyPublicKey {
    XOnlyPublicKey::from_slice(&NUMS).expect("the NUMS point is on the curve")
}

fn xonly(key: &PublicKey) -> XOnlyPublicKey {
    key.x_only_public_key().0
}

fn csv(delay: BlockDelta) -> i64 {
    i64::from(delay.to_blocks())
}

/// `<key> OP_CHECKSIGVERIFY <delay> OP_CHECKSEQUENCEVERIFY`: `key` after `delay` blocks.
pub fn delayed_leaf(key: &PublicKey, delay: BlockDelta) -> ScriptBuf {
    bitcoin::script::Builder::new()
        .push_x_only_key(&xonly(key))
        .push_opcode(OP_CHECKSIGVERIFY)
        .push_int(csv(delay))
        .push_opcode(OP_CSV)
        .into_script()
}

/// HTLC success leaf: `OP_SIZE 32 OP_EQUALVERIFY OP_SHA256 <hash> OP_EQUALVERIFY <payee>
/// OP_CHECKSIGVERIFY <delay> OP_CHECKSEQUENCEVERIFY`.
pub fn htlc_success_leaf(hash: &sha256::Hash, payee: &PublicKey, delay: BlockDelta) -> ScriptBuf {
    bitcoin::script::Builder::new()
        .push_opcode(OP_SIZE)
        .push_int(32)
        .push_opcode(OP_EQUALVERIFY)
        .push_opcode(OP_SHA256)
        .push_slice(hash.to_byte_array())
        .push_opcode(OP_EQUALVERIFY)
        .push_x_only_key(&xonly(payee))
        .push_opcode(OP_CHECKSIGVERIFY)
        .push_int(csv(delay))
        .push_opcode(OP_CSV)
        .into_script()
}

/// HTLC timeout leaf: `<payer> OP_CHECKSIGVERIFY <cltv_expiry> OP_CHECKLOCKTIMEVERIFY OP_DROP
/// <delay> OP_CHECKSEQUENCEVERIFY`.
pub fn htlc_timeout_leaf(
    payer: &PublicKey,
    expiry: absolute::Height,
    delay: BlockDelta,
) -> ScriptBuf {
    bitcoin::script::Builder::new()
        .push_x_only_key(&xonly(payer))
        .push_opcode(OP_CHECKSIGVERIFY)
        .push_int(i64::from(expiry.to_consensus_u32()))
        .push_opcode(OP_CLTV)
        .push_opcode(OP_DROP)
        .push_int(csv(delay))
        .push_opcode(OP_CSV)
        .into_script()
}

/// A taproot output: its spend info and the leaves it commits to.
#[derive(Debug, Clone)]
pub struct OutputTree {
    /// Internal key, merkle root and control blocks.
    pub info: TaprootSpendInfo,
    /// The script leaves, in the order they were added.
    pub leaves: Vec<ScriptBuf>,
}

impl OutputTree {
    fn new(internal: XOnlyPublicKey, leaves: Vec<ScriptBuf>) -> Self {
        let secp = crate::secp::ctx();
        let depth = if leaves.len() == 1 { 0 } else { 1 };
        let mut builder = TaprootBuilder::new();
        for leaf in &leaves {
            builder = builder
                .add_leaf(depth, leaf.clone())
                .expect("one leaf at depth 0 or two at depth 1");
        }
        let info = builder.finalize(secp, internal).expect("a complete tree");
        Self { info, leaves }
    }

    /// The P2TR `scriptPubKey`.
    pub fn script_pubkey(&self) -> ScriptBuf {
        ScriptBuf::new_p2tr_tweaked(self.info.output_key())
    }
}

/// `to_local`: key path = revocation key; leaf = holder's delayed key after `to_self_delay`.
pub fn to_local(
    revocation: &PublicKey,
    delayed: &PublicKey,
    to_self_delay: BlockDelta,
) -> OutputTree {
    OutputTree::new(
        xonly(revocation),
        vec![delayed_leaf(delayed, to_self_delay)],
    )
}

/// `to_remote`: no key path (NUMS); leaf = the counterparty's payment key after 1 block.
pub fn to_remote(payment: &PublicKey) -> OutputTree {
    OutputTree::new(
        nums_key(),
        vec![delayed_leaf(payment, BlockDelta::from_blocks(1))],
    )
}

/// An HTLC output: key path = revocation key; leaves = [success, timeout].
///
/// The payee claims with the preimage after `payee_delay`, the payer after `expiry` and
/// `payer_delay`. On the holder's commitment the holder's delay is `to_self_delay` (so a revoked
/// commitment can still be punished) and the counterparty's is 1 block.
pub fn htlc(
    revocation: &PublicKey,
    hash: &sha256::Hash,
    payee: (&PublicKey, BlockDelta),
    payer: (&PublicKey, BlockDelta),
    expiry: absolute::Height,
) -> OutputTree {
    OutputTree::new(
        xonly(revocation),
        vec![
            htlc_success_leaf(hash, payee.0, payee.1),
            htlc_timeout_leaf(payer.0, expiry, payer.1),
        ],
    )
}
