//! The LSP's claim of a leaf's L-stock once the leaf is on chain.
//!
//! The L-stock output of the state the leaf is in is the LSP's: its key path needs the client
//! too, and its script path (`<lstock_csv> OP_CSV OP_DROP <LSP> OP_CHECKSIG`) lets the LSP alone
//! spend it `lstock_csv` blocks after the leaf confirms. When the leaf of a superseded state is
//! on chain instead, the client publishes its redistribution before that; this claim is for the
//! state the leaf is in, which the client cannot touch.

use bitcoin::hashes::Hash;
use bitcoin::secp256k1::{Keypair, Message, SecretKey};
use bitcoin::sighash::{Prevouts, SighashCache};
use bitcoin::taproot::{LeafVersion, TapLeafHash, TaprootBuilder};
use bitcoin::{
    absolute, transaction, FeeRate, ScriptBuf, TapSighashType, Transaction, TxIn, TxOut, Witness,
};

use super::LeafState;
use crate::path::ClientPath;
use crate::tree::{scripts, TreeError, P2TR_DUST};

/// Why the L-stock claim could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// The key given is not the factory's LSP key.
    #[error("the key is not the factory's LSP key")]
    NotTheLspKey,
    /// The L-stock CSV does not fit a relative lock.
    #[error("the L-stock CSV is not a valid relative lock")]
    BadCsv,
    /// The output's keys do not aggregate.
    #[error(transparent)]
    Tree(#[from] TreeError),
}

impl LeafState {
    /// The LSP's claim of this state's L-stock by its script path: version 2, `nSequence =
    /// lstock_csv`, one output paying `destination` the L-stock less `feerate × vsize`, signed
    /// with `lsp` (the factory's LSP key) without auxiliary randomness. `None` when what is left
    /// after the fee would be dust.
    pub fn lstock_sweep(
        &self,
        path: &ClientPath,
        lsp: &SecretKey,
        destination: ScriptBuf,
        feerate: FeeRate,
    ) -> Result<Option<Transaction>, SweepError> {
        let secp = crate::secp::ctx();
        let proposal = path.proposal();
        let keypair = Keypair::from_secret_key(secp, lsp);
        let (lsp_x, _) = keypair.x_only_public_key();
        if lsp_x != proposal.lsp_key.x_only_public_key().0 {
            return Err(SweepError::NotTheLspKey);
        }
        let script = scripts::lstock_script(proposal.params.lstock_csv, lsp_x);
        let internal = scripts::internal_key(&proposal.signers(self.node.signers))?;
        let info = TaprootBuilder::new()
            .add_leaf(0, script.clone())
            .expect("one leaf at depth 0")
            .finalize(secp, internal)
            .expect("a single leaf is a complete tree");
        let control = info
            .control_block(&(script.clone(), LeafVersion::TapScript))
            .expect("the leaf is in the tree");
        let sequence = proposal
            .params
            .lstock_csv
            .to_relative_sequence()
            .ok_or(SweepError::BadCsv)?;
        let prevout = self.node.tx.output[1].clone();
        let mut tx = Transaction {
            version: transaction::Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: vec![TxIn {
                previous_output: self.lstock_outpoint(),
                script_sig: ScriptBuf::new(),
                sequence,
                // Sized as signed: a 64-byte signature, the script and the control block.
                witness: Witness::from_slice(&[
                    vec![0u8; 64],
                    script.to_bytes(),
                    control.serialize(),
                ]),
            }],
            output: vec![TxOut {
                value: prevout.value,
                script_pubkey: destination,
            }],
        };
        let Some(fee) = feerate.fee_vb(tx.vsize() as u64) else {
            return Ok(None);
        };
        let Some(value) = prevout.value.checked_sub(fee).filter(|v| *v >= P2TR_DUST) else {
            return Ok(None);
        };
        tx.output[0].value = value;
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
        tx.input[0].witness = Witness::from_slice(&[
            sig.serialize().to_vec(),
            script.to_bytes(),
            control.serialize(),
        ]);
        Ok(Some(tx))
    }
}
