//! Key-path spends of the factory's outputs, signed by the LSP alone with the released keys of
//! the members below the output and its own:
//!
//! - the cooperative close of a whole factory spends its funding output ([`build_close`],
//!   [`sign_close`]);
//! - the sweep of a part of the tree every member below left spends the output a tree
//!   transaction would spend ([`build_sweep`], [`sign_sweep`]), once the tree above it is on
//!   chain (`super::sweep`).
//!
//! Version 2, one input (`nSequence = 0xFFFFFFFD`), `nLockTime` 0, one output to the LSP's
//! `destination` carrying the spent amount less `ceil(fee_rate × vsize)`. No anchor: a stuck
//! spend is replaced by the LSP at a higher rate (it holds every key), and nothing in it is
//! time-critical: the outputs it spends hold nothing of any member's.

use std::collections::BTreeMap;

use bitcoin::secp256k1::SecretKey;
use bitcoin::sighash::{Prevouts, SighashCache};
use bitcoin::taproot::TapNodeHash;
use bitcoin::{
    absolute, transaction, Amount, FeeRate, OutPoint, ScriptBuf, Sequence, TapSighash,
    TapSighashType, Transaction, TxIn, TxOut, Witness,
};

use crate::musig::{public_key, sign_with_every_key, JobKeys, MusigError};
use crate::tree::{ClientRange, FactoryProposal, TreeError, TreeNode};
use crate::types::ClientId;

/// Why an output cannot be spent by key path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CloseError {
    /// A member's key is missing.
    #[error("client {client} has not released its factory key")]
    MissingKey {
        /// The first member without a key.
        client: u32,
    },
    /// A released key is not its member's key.
    #[error("the key held for client {client} is not its factory key")]
    WrongKey {
        /// The member.
        client: u32,
    },
    /// The LSP's key is not the factory's.
    #[error("the LSP's key is not this factory's LSP key")]
    WrongLspKey,
    /// The fee takes the whole output.
    #[error("the fee of {fee} leaves nothing of the output's {amount}")]
    CannotAffordFee {
        /// The fee.
        fee: Amount,
        /// The spent amount.
        amount: Amount,
    },
    /// The node is not one whose input the LSP sweeps (the distribution transaction).
    #[error("that node's input is not swept by key path")]
    NotSweepable,
    /// The tree's keys cannot be aggregated.
    #[error(transparent)]
    Tree(#[from] TreeError),
    /// Signing failed.
    #[error(transparent)]
    Musig(#[from] MusigError),
}

/// One output of the factory spent by key path: where it is, what it holds, and who signs it.
#[derive(Debug, Clone)]
struct KeySpend {
    outpoint: OutPoint,
    prevout: TxOut,
    /// The members whose keys (with the LSP's) make its internal key.
    signers: ClientRange,
    /// Its taproot merkle root (`None`: BIP-86).
    merkle_root: Option<TapNodeHash>,
}

impl KeySpend {
    /// The funding output.
    fn funding(proposal: &FactoryProposal) -> Result<KeySpend, CloseError> {
        Ok(KeySpend {
            outpoint: proposal.funding_outpoint,
            prevout: FactoryProposal::funding_output(
                &proposal.params,
                &proposal.lsp_key,
                &proposal.clients,
            )?,
            signers: ClientRange {
                start: ClientId(0),
                end: ClientId(proposal.client_count()),
            },
            merkle_root: None,
        })
    }

    /// The output `node` spends.
    fn input_of(node: &TreeNode) -> Result<KeySpend, CloseError> {
        if node.kind == crate::tree::NodeKind::Distribution {
            return Err(CloseError::NotSweepable);
        }
        Ok(KeySpend {
            outpoint: node.spent_outpoint(),
            prevout: node.prevout.clone(),
            signers: node.signers,
            merkle_root: node.merkle_root,
        })
    }

    /// The unsigned spend paying `destination`.
    fn build(&self, destination: &ScriptBuf, fee_rate: FeeRate) -> Result<Transaction, CloseError> {
        let amount = self.prevout.value;
        let mut tx = Transaction {
            version: transaction::Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: vec![TxIn {
                previous_output: self.outpoint,
                script_sig: ScriptBuf::new(),
                sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                witness: Witness::from_slice(&[[0u8; 64]]),
            }],
            output: vec![TxOut {
                value: amount,
                script_pubkey: destination.clone(),
            }],
        };
        let fee = fee_rate
            .fee_vb(tx.vsize() as u64)
            .unwrap_or(Amount::MAX_MONEY);
        let left = amount
            .checked_sub(fee)
            .filter(|left| *left > destination.minimal_non_dust())
            .ok_or(CloseError::CannotAffordFee { fee, amount })?;
        tx.output[0].value = left;
        tx.input[0].witness = Witness::new();
        Ok(tx)
    }

    /// BIP-341 key-path sighash of `tx`'s input.
    fn sighash(&self, tx: &Transaction) -> TapSighash {
        SighashCache::new(tx)
            .taproot_key_spend_signature_hash(
                0,
                &Prevouts::All(&[&self.prevout]),
                TapSighashType::Default,
            )
            .expect("one input, one prevout")
    }

    /// Signs `tx` with the LSP's factory key and the released key of every member below the
    /// output, after checking each key is its member's.
    fn sign<R: rand::RngCore + rand::CryptoRng>(
        &self,
        rng: &mut R,
        proposal: &FactoryProposal,
        mut tx: Transaction,
        lsp_secret: &SecretKey,
        released: &BTreeMap<ClientId, SecretKey>,
    ) -> Result<Transaction, CloseError> {
        if public_key(lsp_secret) != proposal.lsp_key {
            return Err(CloseError::WrongLspKey);
        }
        let mut secrets = vec![*lsp_secret];
        for client in self.signers.start.0..self.signers.end.0 {
            let secret = released
                .get(&ClientId(client))
                .ok_or(CloseError::MissingKey { client })?;
            let entry = proposal.clients.get(client as usize);
            if entry.map(|e| e.key) != Some(public_key(secret)) {
                return Err(CloseError::WrongKey { client });
            }
            secrets.push(*secret);
        }
        let keys = JobKeys::new(&proposal.signers(self.signers), self.merkle_root)?;
        let sig = sign_with_every_key(rng, &keys, &secrets, &self.sighash(&tx))?;
        tx.input[0].witness = Witness::from_slice(&[sig.serialize()]);
        Ok(tx)
    }
}

/// Builds the unsigned close of `proposal`'s factory, paying `destination`.
pub fn build_close(
    proposal: &FactoryProposal,
    destination: &ScriptBuf,
    fee_rate: FeeRate,
) -> Result<Transaction, CloseError> {
    KeySpend::funding(proposal)?.build(destination, fee_rate)
}

/// BIP-341 key-path sighash of the close's input.
pub fn close_sighash(
    proposal: &FactoryProposal,
    tx: &Transaction,
) -> Result<TapSighash, CloseError> {
    Ok(KeySpend::funding(proposal)?.sighash(tx))
}

/// Signs `tx` (from [`build_close`]) with the LSP's factory key and every member's released
/// key, after checking each key is its member's.
pub fn sign_close<R: rand::RngCore + rand::CryptoRng>(
    rng: &mut R,
    proposal: &FactoryProposal,
    tx: Transaction,
    lsp_secret: &SecretKey,
    released: &BTreeMap<ClientId, SecretKey>,
) -> Result<Transaction, CloseError> {
    KeySpend::funding(proposal)?.sign(rng, proposal, tx, lsp_secret, released)
}

/// Builds the unsigned sweep of the output `node` (a node of `proposal`'s tree) would spend,
/// paying `destination`.
pub fn build_sweep(
    node: &TreeNode,
    destination: &ScriptBuf,
    fee_rate: FeeRate,
) -> Result<Transaction, CloseError> {
    KeySpend::input_of(node)?.build(destination, fee_rate)
}

/// Signs `tx` (from [`build_sweep`]) with the LSP's factory key and the released key of every
/// member below `node`, after checking each key is its member's.
pub fn sign_sweep<R: rand::RngCore + rand::CryptoRng>(
    rng: &mut R,
    proposal: &FactoryProposal,
    node: &TreeNode,
    tx: Transaction,
    lsp_secret: &SecretKey,
    released: &BTreeMap<ClientId, SecretKey>,
) -> Result<Transaction, CloseError> {
    KeySpend::input_of(node)?.sign(rng, proposal, tx, lsp_secret, released)
}
