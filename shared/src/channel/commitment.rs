//! Commitment transactions: one per side per state, spending the channel output by MuSig2 key
//! path.
//!
//! Layout (all deterministic from the [`CommitmentSpec`], the holder and the keys):
//! - version 2, one input (the channel output), `nSequence = 0x80 ‖ upper 24 bits` and
//!   `nLockTime = 0x20 ‖ lower 24 bits` of the obscured commitment number (BOLT-3 encoding:
//!   no lock is enforced, and a punisher reads the number back from a transaction on chain);
//! - outputs `to_local`, `to_remote`, one per untrimmed HTLC, and a P2A anchor, sorted by
//!   (value, `scriptPubKey`, expiry, offerer, id);
//! - the LSP pays the fee (`feerate × vsize`, vsize counting both main outputs, the anchor and
//!   every untrimmed HTLC) and the anchor's value out of its balance;
//! - a main output below the dust limit is left out; an HTLC below `dust + claim fee` is trimmed;
//!   what they held goes to the fee.

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::PublicKey;
use bitcoin::sighash::{Prevouts, SighashCache};
use bitcoin::{
    absolute, transaction, Amount, FeeRate, OutPoint, ScriptBuf, Sequence, TapSighash,
    TapSighashType, Transaction, TxIn, TxOut, Witness,
};
use serde::{Deserialize, Serialize};

use super::keys::CommitmentKeys;
use super::scripts::{self, OutputTree};
use super::ChannelError;
use crate::musig::{key_sort, JobKeys};
use crate::params::BlockDelta;

/// Virtual size assumed for a transaction claiming one HTLC output by script path (used to trim
/// HTLCs that would cost more to claim than they hold).
pub const HTLC_CLAIM_VBYTES: u64 = 160;

/// The two parties of a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Side {
    /// The LSP (funds the channel, pays commitment fees, drives commitment rounds).
    Lsp,
    /// The client.
    Client,
}

impl Side {
    /// The other party.
    pub fn other(self) -> Side {
        match self {
            Side::Lsp => Side::Client,
            Side::Client => Side::Lsp,
        }
    }
}

/// A pending HTLC, identified by its offerer and the offerer's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Htlc {
    /// Who pays it (its amount came out of this side's balance).
    pub offerer: Side,
    /// The offerer's sequential HTLC id.
    pub id: u64,
    /// Amount.
    pub amount: Amount,
    /// SHA-256 payment hash.
    pub hash: sha256::Hash,
    /// Absolute expiry height (the payer's timeout path opens there).
    pub expiry: absolute::Height,
}

/// What a channel state is: balances (excluding pending HTLCs), HTLCs and the commitment fee rate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitmentSpec {
    /// The LSP's balance, before commitment fee and anchor.
    pub lsp_balance: Amount,
    /// The client's balance.
    pub client_balance: Amount,
    /// Pending HTLCs.
    pub htlcs: Vec<Htlc>,
    /// Fee rate of the commitment transactions.
    pub feerate: FeeRate,
}

impl CommitmentSpec {
    /// A side's balance.
    pub fn balance(&self, side: Side) -> Amount {
        match side {
            Side::Lsp => self.lsp_balance,
            Side::Client => self.client_balance,
        }
    }

    /// Mutable balance of a side.
    pub fn balance_mut(&mut self, side: Side) -> &mut Amount {
        match side {
            Side::Lsp => &mut self.lsp_balance,
            Side::Client => &mut self.client_balance,
        }
    }

    /// Sum of balances and HTLCs (constant over the channel's life).
    pub fn total(&self) -> Amount {
        self.htlcs
            .iter()
            .fold(self.lsp_balance + self.client_balance, |a, h| a + h.amount)
    }
}

/// The fixed parameters of a channel, agreed when it opens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelParams {
    /// The channel output (a leaf's `channel` output, or any MuSig2(client, LSP) BIP-86 output).
    pub funding: OutPoint,
    /// Its value and script.
    pub funding_output: TxOut,
    /// The LSP's key in the channel output's MuSig2 aggregate.
    pub lsp_funding_key: PublicKey,
    /// The client's key in the channel output's MuSig2 aggregate.
    pub client_funding_key: PublicKey,
    /// Blocks a commitment's holder waits before `to_local` (and its HTLC claims) are its own.
    pub to_self_delay: BlockDelta,
    /// Outputs below this are not created (330 sat: the P2TR dust limit).
    pub dust_limit: Amount,
    /// Value of the P2A anchor (240 sat, as on every tree transaction).
    pub anchor: Amount,
    /// Blocks a side allows for getting its commitment confirmed before an HTLC deadline
    /// (regtest 6; mainnet should use at least 18). An HTLC's expiry must exceed
    /// `now + walk + to_self_delay + htlc_margin` when it is added.
    pub htlc_margin: BlockDelta,
    /// Blocks it may take to get the channel output itself on chain before a commitment can
    /// be: the worst walk of the leaf's tree path (`ClientPath::worst_exit_blocks`), or 0 for
    /// a channel whose output is already confirmed. Each side starts that walk early enough
    /// for its HTLC deadlines ([`crate::channel::Channel::poll_timeout`]).
    #[serde(default)]
    pub walk: BlockDelta,
}

impl ChannelParams {
    /// The MuSig2 keys of the channel output (BIP-86 tweak); checks the output pays to them.
    pub fn funding_keys(&self) -> Result<JobKeys, ChannelError> {
        let mut signers = vec![self.lsp_funding_key, self.client_funding_key];
        key_sort(&mut signers);
        let keys = JobKeys::new(&signers, None)?;
        let expected = ScriptBuf::new_p2tr_tweaked(
            bitcoin::key::TweakedPublicKey::dangerous_assume_tweaked(keys.output_key()),
        );
        if expected != self.funding_output.script_pubkey {
            return Err(ChannelError::Params {
                reason: "the funding output does not pay MuSig2(client, LSP)",
            });
        }
        Ok(keys)
    }
}

/// What one output of a commitment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    /// The holder's delayed (revocable) balance.
    ToLocal,
    /// The counterparty's balance.
    ToRemote,
    /// An HTLC.
    Htlc(Htlc),
    /// The P2A anchor.
    Anchor,
}

/// One built, unsigned commitment transaction.
#[derive(Debug, Clone)]
pub struct Commitment {
    /// Whose commitment it is (who can broadcast it).
    pub holder: Side,
    /// Its number.
    pub number: u64,
    /// The transaction, without the funding signature.
    pub tx: Transaction,
    /// For each output, what it is and its taproot tree (none for the anchor).
    pub outputs: Vec<(OutputKind, Option<OutputTree>)>,
    /// The keys it was built with.
    pub keys: CommitmentKeys,
}

/// The factor XORed into commitment numbers: the lower 48 bits of
/// `SHA256(LSP payment basepoint ‖ client payment basepoint)`.
pub fn obscuring_factor(lsp_payment: &PublicKey, client_payment: &PublicKey) -> u64 {
    let mut data = lsp_payment.serialize().to_vec();
    data.extend_from_slice(&client_payment.serialize());
    let h = sha256::Hash::hash(&data).to_byte_array();
    let mut v = [0u8; 8];
    v[2..].copy_from_slice(&h[26..]);
    u64::from_be_bytes(v)
}

/// `(nSequence, nLockTime)` carrying the obscured commitment number.
pub fn encode_number(number: u64, factor: u64) -> (Sequence, absolute::LockTime) {
    let obscured = (number ^ factor) & 0xFFFF_FFFF_FFFF;
    let seq = 0x8000_0000 | ((obscured >> 24) as u32 & 0xFF_FFFF);
    let lock = 0x2000_0000 | (obscured as u32 & 0xFF_FFFF);
    (Sequence(seq), absolute::LockTime::from_consensus(lock))
}

/// The commitment number a transaction carries, if it has the commitment encoding.
pub fn decode_number(tx: &Transaction, factor: u64) -> Option<u64> {
    let seq = tx.input.first()?.sequence.0;
    let lock = tx.lock_time.to_consensus_u32();
    if seq >> 24 != 0x80 || lock >> 24 != 0x20 {
        return None;
    }
    let obscured = (u64::from(seq & 0xFF_FFFF) << 24) | u64::from(lock & 0xFF_FFFF);
    Some((obscured ^ factor) & 0xFFFF_FFFF_FFFF)
}

/// Whether an HTLC of `amount` gets an output at `feerate`.
pub fn htlc_is_trimmed(amount: Amount, feerate: FeeRate, dust: Amount) -> bool {
    let claim = feerate
        .fee_vb(HTLC_CLAIM_VBYTES)
        .unwrap_or(Amount::MAX_MONEY);
    amount < dust.checked_add(claim).unwrap_or(Amount::MAX_MONEY)
}

/// Fee of a commitment with `htlc_outputs` untrimmed HTLCs at `feerate`.
pub fn commitment_fee(htlc_outputs: usize, feerate: FeeRate) -> Amount {
    let p2tr = TxOut {
        value: Amount::ZERO,
        script_pubkey: ScriptBuf::new_p2tr_tweaked(
            bitcoin::key::TweakedPublicKey::dangerous_assume_tweaked(
                bitcoin::secp256k1::XOnlyPublicKey::from_slice(&scripts::NUMS)
                    .expect("valid point"),
            ),
        ),
    };
    let mut output = vec![p2tr; 2 + htlc_outputs];
    output.push(TxOut {
        value: Amount::ZERO,
        script_pubkey: ScriptBuf::new_p2a(),
    });
    let tx = Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            witness: Witness::from_slice(&[[0u8; 64]]),
            ..TxIn::default()
        }],
        output,
    };
    feerate
        .fee_vb(tx.vsize() as u64)
        .unwrap_or(Amount::MAX_MONEY)
}

/// Builds `holder`'s commitment `number` for `spec`; `to_remote` is
/// `scripts::to_remote(&keys.counterparty_payment)`, made once per channel.
#[allow(clippy::too_many_arguments)]
pub fn build(
    params: &ChannelParams,
    holder: Side,
    number: u64,
    spec: &CommitmentSpec,
    keys: &CommitmentKeys,
    to_remote: &OutputTree,
    factor: u64,
) -> Result<Commitment, ChannelError> {
    if spec.total() != params.funding_output.value {
        return Err(ChannelError::Params {
            reason: "balances and HTLCs do not add up to the channel's value",
        });
    }
    let delay = params.to_self_delay;
    let one = BlockDelta::from_blocks(1);
    let live: Vec<&Htlc> = spec
        .htlcs
        .iter()
        .filter(|h| !htlc_is_trimmed(h.amount, spec.feerate, params.dust_limit))
        .collect();
    let fee = commitment_fee(live.len(), spec.feerate);
    let lsp_main = spec
        .lsp_balance
        .checked_sub(fee + params.anchor)
        .ok_or(ChannelError::CannotAffordFee { fee })?;
    let (local, remote) = match holder {
        Side::Lsp => (lsp_main, spec.client_balance),
        Side::Client => (spec.client_balance, lsp_main),
    };
    // (output, kind, tree, expiry, offerer, id) for sorting.
    let mut outs: Vec<(TxOut, OutputKind, Option<OutputTree>, u32, u8, u64)> = Vec::new();
    if local >= params.dust_limit {
        let tree = scripts::to_local(&keys.revocation, &keys.holder_delayed, delay);
        outs.push((
            txout(local, &tree),
            OutputKind::ToLocal,
            Some(tree),
            0,
            0,
            0,
        ));
    }
    if remote >= params.dust_limit {
        outs.push((
            txout(remote, to_remote),
            OutputKind::ToRemote,
            Some(to_remote.clone()),
            0,
            0,
            0,
        ));
    }
    for h in live {
        let holder_offered = h.offerer == holder;
        let holder_key = (&keys.holder_htlc, delay);
        let counterparty_key = (&keys.counterparty_htlc, one);
        let (payee, payer) = if holder_offered {
            (counterparty_key, holder_key)
        } else {
            (holder_key, counterparty_key)
        };
        let tree = scripts::htlc(&keys.revocation, &h.hash, payee, payer, h.expiry);
        outs.push((
            txout(h.amount, &tree),
            OutputKind::Htlc(*h),
            Some(tree),
            h.expiry.to_consensus_u32(),
            h.offerer as u8,
            h.id,
        ));
    }
    outs.push((
        TxOut {
            value: params.anchor,
            script_pubkey: ScriptBuf::new_p2a(),
        },
        OutputKind::Anchor,
        None,
        0,
        0,
        0,
    ));
    outs.sort_by(|a, b| {
        (a.0.value, &a.0.script_pubkey, a.3, a.4, a.5).cmp(&(
            b.0.value,
            &b.0.script_pubkey,
            b.3,
            b.4,
            b.5,
        ))
    });
    let (sequence, lock_time) = encode_number(number, factor);
    let tx = Transaction {
        version: transaction::Version::TWO,
        lock_time,
        input: vec![TxIn {
            previous_output: params.funding,
            script_sig: ScriptBuf::new(),
            sequence,
            witness: Witness::new(),
        }],
        output: outs.iter().map(|o| o.0.clone()).collect(),
    };
    Ok(Commitment {
        holder,
        number,
        tx,
        outputs: outs.into_iter().map(|o| (o.1, o.2)).collect(),
        keys: *keys,
    })
}

fn txout(value: Amount, tree: &OutputTree) -> TxOut {
    TxOut {
        value,
        script_pubkey: tree.script_pubkey(),
    }
}

impl Commitment {
    /// BIP-341 key-path sighash (`SIGHASH_DEFAULT`) of the commitment's funding input.
    pub fn sighash(&self, params: &ChannelParams) -> TapSighash {
        SighashCache::new(&self.tx)
            .taproot_key_spend_signature_hash(
                0,
                &Prevouts::All(&[&params.funding_output]),
                TapSighashType::Default,
            )
            .expect("one input, one prevout")
    }

    /// The transaction with the aggregated funding signature in its witness.
    pub fn signed(&self, sig: &bitcoin::secp256k1::schnorr::Signature) -> Transaction {
        let mut tx = self.tx.clone();
        tx.input[0].witness = Witness::from_slice(&[sig.serialize()]);
        tx
    }

    /// The vout of the first output of `kind`.
    pub fn vout(&self, kind: OutputKind) -> Option<u32> {
        self.outputs
            .iter()
            .position(|(k, _)| *k == kind)
            .map(|i| i as u32)
    }

    /// Vout of the HTLC `(offerer, id)`, if it has an output.
    pub fn htlc_vout(&self, offerer: Side, id: u64) -> Option<u32> {
        self.outputs
            .iter()
            .position(
                |(k, _)| matches!(k, OutputKind::Htlc(h) if h.offerer == offerer && h.id == id),
            )
            .map(|i| i as u32)
    }

    /// Fee the commitment pays (input minus outputs).
    pub fn fee(&self, params: &ChannelParams) -> Amount {
        let out: Amount = self.tx.output.iter().map(|o| o.value).sum();
        params.funding_output.value - out
    }
}
