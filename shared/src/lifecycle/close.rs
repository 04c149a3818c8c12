//! The cooperative close of a whole factory: one key-path spend of its funding output, signed by
//! the LSP alone with every member's released key and its own.
//!
//! Version 2, one input (the funding output, `nSequence = 0xFFFFFFFD`), `nLockTime` 0, one
//! output to the LSP's `destination` carrying the funding amount less `ceil(fee_rate × vsize)`.
//! No anchor: a stuck close is replaced by the LSP at a higher rate (it holds every key), and
//! nothing in it is time-critical while the factory is far from its timeout.

use std::collections::BTreeMap;

use bitcoin::secp256k1::SecretKey;
use bitcoin::sighash::{Prevouts, SighashCache};
use bitcoin::{
    absolute, transaction, Amount, FeeRate, ScriptBuf, Sequence, TapSighash, TapSighashType,
    Transaction, TxIn, TxOut, Witness,
};

use crate::musig::{public_key, sign_with_every_key, JobKeys, MusigError};
use crate::tree::{ClientRange, FactoryProposal, TreeError};
use crate::types::ClientId;

/// Why a factory cannot be closed by key path.
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
    #[error("the fee of {fee} leaves nothing of the factory's {amount}")]
    CannotAffordFee {
        /// The fee.
        fee: Amount,
        /// The funding amount.
        amount: Amount,
    },
    /// The tree's keys cannot be aggregated.
    #[error(transparent)]
    Tree(#[from] TreeError),
    /// Signing failed.
    #[error(transparent)]
    Musig(#[from] MusigError),
}

/// The funding output as the close spends it.
fn funding_txout(proposal: &FactoryProposal) -> Result<TxOut, CloseError> {
    Ok(FactoryProposal::funding_output(
        &proposal.params,
        &proposal.lsp_key,
        &proposal.clients,
    )?)
}

/// Builds the unsigned close of `proposal`'s factory, paying `destination`.
pub fn build_close(
    proposal: &FactoryProposal,
    destination: &ScriptBuf,
    fee_rate: FeeRate,
) -> Result<Transaction, CloseError> {
    let mut tx = Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: proposal.funding_outpoint,
            script_sig: ScriptBuf::new(),
            sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
            witness: Witness::from_slice(&[[0u8; 64]]),
        }],
        output: vec![TxOut {
            value: proposal.funding_amount,
            script_pubkey: destination.clone(),
        }],
    };
    let fee = fee_rate
        .fee_vb(tx.vsize() as u64)
        .unwrap_or(Amount::MAX_MONEY);
    let cannot = CloseError::CannotAffordFee {
        fee,
        amount: proposal.funding_amount,
    };
    let left = proposal.funding_amount.checked_sub(fee).ok_or(cannot)?;
    if left <= destination.minimal_non_dust() {
        return Err(CloseError::CannotAffordFee {
            fee,
            amount: proposal.funding_amount,
        });
    }
    tx.output[0].value = left;
    tx.input[0].witness = Witness::new();
    Ok(tx)
}

/// BIP-341 key-path sighash of the close's input.
pub fn close_sighash(
    proposal: &FactoryProposal,
    tx: &Transaction,
) -> Result<TapSighash, CloseError> {
    let prevout = funding_txout(proposal)?;
    Ok(SighashCache::new(tx)
        .taproot_key_spend_signature_hash(0, &Prevouts::All(&[&prevout]), TapSighashType::Default)
        .expect("one input, one prevout"))
}

/// Signs `tx` (from [`build_close`]) with the LSP's factory key and every member's released
/// key, after checking each key is its member's.
pub fn sign_close<R: rand::RngCore + rand::CryptoRng>(
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
    for (i, entry) in proposal.clients.iter().enumerate() {
        let client = i as u32;
        let secret = released
            .get(&ClientId(client))
            .ok_or(CloseError::MissingKey { client })?;
        if public_key(secret) != entry.key {
            return Err(CloseError::WrongKey { client });
        }
        secrets.push(*secret);
    }
    let all = ClientRange {
        start: ClientId(0),
        end: ClientId(proposal.client_count()),
    };
    let keys = JobKeys::new(&proposal.signers(all), None)?;
    let sighash = close_sighash(proposal, &tx)?;
    let sig = sign_with_every_key(rng, &keys, &secrets, &sighash)?;
    tx.input[0].witness = Witness::from_slice(&[sig.serialize()]);
    Ok(tx)
}
