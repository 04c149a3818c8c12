//! The LSP's timeout-leaf sweep of a state output, built from keys and heights only: the leaf
//! `<height> OP_CHECKLOCKTIMEVERIFY OP_DROP <LSP> OP_CHECKSIG`, its taproot commitment under
//! MuSig2(LSP + the clients below the output), and a script-path spend signed by the LSP alone.

use bitcoin::absolute::{Height, LockTime};
use bitcoin::hashes::Hash;
use bitcoin::opcodes::all::{OP_CHECKSIG, OP_CLTV, OP_DROP};
use bitcoin::secp256k1::{Keypair, Message, PublicKey, Secp256k1, SecretKey};
use bitcoin::sighash::{Prevouts, SighashCache};
use bitcoin::taproot::{LeafVersion, TaprootBuilder, TaprootSpendInfo};
use bitcoin::{
    Amount, OutPoint, ScriptBuf, Sequence, TapLeafHash, TapSighashType, Transaction, TxIn, TxOut,
    Witness,
};
use shared::tree::{FactoryProposal, FactoryTree, TreeNode};

use super::expect::musig_internal;

/// The timeout leaf locked to `height`, written out opcode by opcode.
fn timeout_leaf(height: Height, lsp: &PublicKey) -> ScriptBuf {
    bitcoin::script::Builder::new()
        .push_int(i64::from(height.to_consensus_u32()))
        .push_opcode(OP_CLTV)
        .push_opcode(OP_DROP)
        .push_x_only_key(&lsp.x_only_public_key().0)
        .push_opcode(OP_CHECKSIG)
        .into_script()
}

/// The tree node spending `outpoint` (it names the output's signers and holds the output).
fn spender(tree: &FactoryTree, outpoint: OutPoint) -> &TreeNode {
    tree.nodes()
        .iter()
        .find(|n| n.spent_outpoint() == outpoint)
        .unwrap_or_else(|| panic!("no tree node spends {outpoint}"))
}

/// The taproot tree of the output `node` spends, if it carried the timeout leaf at `height`.
fn spend_info(
    proposal: &FactoryProposal,
    node: &TreeNode,
    height: Height,
) -> (ScriptBuf, TaprootSpendInfo) {
    let mut signers: Vec<PublicKey> = proposal.clients
        [node.signers.start.0 as usize..node.signers.end.0 as usize]
        .iter()
        .map(|c| c.key)
        .collect();
    signers.push(proposal.lsp_key);
    let script = timeout_leaf(height, &proposal.lsp_key);
    let info = TaprootBuilder::new()
        .add_leaf(0, script.clone())
        .expect("one leaf")
        .finalize(&Secp256k1::verification_only(), musig_internal(&signers))
        .expect("a complete tree");
    (script, info)
}

/// Whether the (state) output `outpoint` of `tree` commits to the timeout leaf at `height`.
pub fn commits_to_timeout_leaf(
    proposal: &FactoryProposal,
    tree: &FactoryTree,
    outpoint: OutPoint,
    height: Height,
) -> bool {
    let node = spender(tree, outpoint);
    let (_, info) = spend_info(proposal, node, height);
    node.prevout.script_pubkey == ScriptBuf::new_p2tr_tweaked(info.output_key())
}

/// The LSP's sweep of the state output `outpoint` through its timeout leaf at `leaf_height`
/// (which the output must commit to), with `nLockTime = lock_time`, paying the LSP's key minus
/// a 1000-sat fee. Signed by the LSP alone.
pub fn lsp_sweep(
    proposal: &FactoryProposal,
    tree: &FactoryTree,
    lsp: &SecretKey,
    outpoint: OutPoint,
    leaf_height: Height,
    lock_time: Height,
) -> Transaction {
    let secp = Secp256k1::new();
    let node = spender(tree, outpoint);
    let (script, info) = spend_info(proposal, node, leaf_height);
    assert_eq!(
        node.prevout.script_pubkey,
        ScriptBuf::new_p2tr_tweaked(info.output_key()),
        "{outpoint} commits to the timeout leaf at {leaf_height}"
    );
    let prevout = node.prevout.clone();
    let keypair = Keypair::from_secret_key(&secp, lsp);
    let mut tx = Transaction {
        version: bitcoin::transaction::Version::TWO,
        lock_time: LockTime::Blocks(lock_time),
        input: vec![TxIn {
            previous_output: outpoint,
            script_sig: ScriptBuf::new(),
            sequence: Sequence::ENABLE_LOCKTIME_NO_RBF,
            witness: Witness::new(),
        }],
        output: vec![TxOut {
            value: prevout.value - Amount::from_sat(1_000),
            script_pubkey: ScriptBuf::new_p2tr(&secp, keypair.x_only_public_key().0, None),
        }],
    };
    let leaf_hash = TapLeafHash::from_script(&script, LeafVersion::TapScript);
    let sighash = SighashCache::new(&tx)
        .taproot_script_spend_signature_hash(
            0,
            &Prevouts::All(&[&prevout]),
            leaf_hash,
            TapSighashType::Default,
        )
        .expect("one input, one prevout");
    let sig =
        secp.sign_schnorr_no_aux_rand(&Message::from_digest(sighash.to_byte_array()), &keypair);
    let control = info
        .control_block(&(script.clone(), LeafVersion::TapScript))
        .expect("the leaf is in the tree");
    tx.input[0].witness = Witness::from_slice(&[
        sig.serialize().to_vec(),
        script.to_bytes(),
        control.serialize(),
    ]);
    tx
}
