//! A cooperative exit to an on-chain address: a *swap out*. The wallet pays from its channel,
//! and the LSP pays the same amount (less its fee) on chain, each payment released only by the
//! other.
//!
//! 1. The wallet picks a preimage `P` (kept secret) and a claim key, and offers the LSP an HTLC
//!    of `amount + fee` for `H = SHA256(P)` on its channel, with a [`SwapOutRequest`].
//! 2. Once that HTLC is committed, the LSP funds an output of `amount` to the
//!    [`SwapScript`]: the wallet's claim key with `P`, or the LSP's refund key once the tip
//!    reaches height `R` (a payee window before the wallet's HTLC expires,
//!    [`SwapPolicy::refund_height`]), and says where ([`SwapOutFunded`]).
//! 3. The wallet checks the output on chain against its own numbers, waits for
//!    [`SwapPolicy::confirmations`], and claims it to its address with `P` while `R` is more
//!    than [`SwapPolicy::claim_margin`] blocks away ([`tx::build_claim`]).
//! 4. The LSP reads `P` from the claim's witness ([`tx::preimage_in`]) and settles the wallet's
//!    HTLC with it. Unclaimed at `R`, the LSP takes the output back ([`tx::build_refund`]) and,
//!    once its refund confirmed, fails the HTLC back.
//!
//! Neither side can lose: the wallet reveals `P` only in a claim of a confirmed output that pays
//! it, early enough to confirm before the refund opens; the LSP learns `P` from that claim at
//! `R` at the latest, a whole payee window before the HTLC expires, time enough to walk the
//! wallet's tree and claim the HTLC on chain should the wallet not settle it.

pub mod tx;

use bitcoin::absolute::Height;
use bitcoin::hashes::{sha256, Hash};
use bitcoin::opcodes::all::{OP_CHECKSIG, OP_CLTV, OP_DROP, OP_EQUALVERIFY, OP_SHA256, OP_SIZE};
use bitcoin::secp256k1::XOnlyPublicKey;
use bitcoin::taproot::TaprootBuilder;
use bitcoin::{Amount, Network, OutPoint, ScriptBuf};
use serde::{Deserialize, Serialize};

use crate::channel::scripts::{nums_key, OutputTree};
use crate::pay::{ChannelId, ChannelPolicy};

/// The output the LSP funds for a swap out: no key path (the NUMS point), two leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwapScript {
    /// `SHA256` of the wallet's preimage.
    pub hash: sha256::Hash,
    /// The wallet's key for the claim leaf.
    pub claim_key: XOnlyPublicKey,
    /// The LSP's key for the refund leaf.
    pub refund_key: XOnlyPublicKey,
    /// The refund leaf is valid once the tip reaches this height (its CLTV, and the refund's
    /// lock time: mined in the next block).
    pub refund_height: Height,
}

impl SwapScript {
    /// `OP_SIZE 32 OP_EQUALVERIFY OP_SHA256 <hash> OP_EQUALVERIFY <claim_key> OP_CHECKSIG`.
    pub fn claim_leaf(&self) -> ScriptBuf {
        bitcoin::script::Builder::new()
            .push_opcode(OP_SIZE)
            .push_int(32)
            .push_opcode(OP_EQUALVERIFY)
            .push_opcode(OP_SHA256)
            .push_slice(self.hash.to_byte_array())
            .push_opcode(OP_EQUALVERIFY)
            .push_x_only_key(&self.claim_key)
            .push_opcode(OP_CHECKSIG)
            .into_script()
    }

    /// `<refund_height> OP_CHECKLOCKTIMEVERIFY OP_DROP <refund_key> OP_CHECKSIG`.
    pub fn refund_leaf(&self) -> ScriptBuf {
        bitcoin::script::Builder::new()
            .push_int(i64::from(self.refund_height.to_consensus_u32()))
            .push_opcode(OP_CLTV)
            .push_opcode(OP_DROP)
            .push_x_only_key(&self.refund_key)
            .push_opcode(OP_CHECKSIG)
            .into_script()
    }

    /// The taproot tree: the NUMS point as internal key (no key path), the claim and refund
    /// leaves at depth 1 (in that order in [`OutputTree::leaves`]).
    pub fn tree(&self) -> OutputTree {
        let secp = crate::secp::ctx();
        let leaves = vec![self.claim_leaf(), self.refund_leaf()];
        let info = TaprootBuilder::new()
            .add_leaf(1, leaves[0].clone())
            .and_then(|b| b.add_leaf(1, leaves[1].clone()))
            .expect("two leaves at depth 1")
            .finalize(secp, nums_key())
            .expect("a complete tree");
        OutputTree { info, leaves }
    }

    /// The P2TR `scriptPubKey` the LSP pays.
    pub fn script_pubkey(&self) -> ScriptBuf {
        self.tree().script_pubkey()
    }
}

/// What an LSP charges for a swap out, in its signed terms; absent when it offers none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwapOutTerms {
    /// Flat part of the fee (it covers the LSP's funding transaction).
    #[serde(with = "bitcoin::amount::serde::as_sat")]
    pub fee_base: Amount,
    /// Proportional part, parts per million of the amount sent.
    pub fee_ppm: u32,
    /// Least amount the LSP sends on chain.
    #[serde(with = "bitcoin::amount::serde::as_sat")]
    pub min: Amount,
    /// Most amount the LSP sends on chain in one swap.
    #[serde(with = "bitcoin::amount::serde::as_sat")]
    pub max: Amount,
}

impl SwapOutTerms {
    /// The fee for sending `amount` on chain.
    pub fn fee(&self, amount: Amount) -> Amount {
        let ppm = amount.to_sat().saturating_mul(u64::from(self.fee_ppm)) / 1_000_000;
        self.fee_base + Amount::from_sat(ppm)
    }

    /// Why `amount` cannot be swapped out, in words; `None` when it can.
    pub fn refusal(&self, amount: Amount) -> Option<String> {
        if amount < self.min {
            return Some(format!(
                "the provider sends at least {} sats on chain",
                self.min.to_sat()
            ));
        }
        (amount > self.max).then(|| {
            format!(
                "the provider sends at most {} sats on chain at once",
                self.max.to_sat()
            )
        })
    }
}

/// The timing of a swap out on one network. Both sides compute it; nothing is negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwapPolicy {
    /// Confirmations the wallet waits for on the LSP's output before revealing its preimage
    /// in a claim (fewer, and the LSP could replace its funding after learning the preimage).
    pub confirmations: u32,
    /// The wallet claims only while the refund is more than this many blocks away, so that its
    /// claim confirms before the LSP can take the output back.
    pub claim_margin: u32,
    /// The channel policy whose payee window separates the refund height from the HTLC's expiry.
    pub channel: ChannelPolicy,
}

impl SwapPolicy {
    /// The policy for `network`.
    pub fn for_network(network: Network) -> SwapPolicy {
        let channel = ChannelPolicy::for_network(network);
        let confirmations = match network {
            Network::Bitcoin => 3,
            Network::Regtest => 1,
            _ => 2,
        };
        SwapPolicy {
            confirmations,
            claim_margin: channel.htlc_margin.to_blocks(),
            channel,
        }
    }

    /// The refund height for a wallet HTLC expiring at `expiry`: a payee window before it, so
    /// that the LSP, learning the preimage at the refund at the latest, still has the time to
    /// walk the wallet's tree and claim the HTLC on chain.
    pub fn refund_height(&self, expiry: u32) -> u32 {
        expiry.saturating_sub(self.channel.payee_window())
    }

    /// The expiry a wallet gives its swap's HTLC at tip `height`: room for the funding to
    /// confirm, the claim margin twice over (the wallet's window to claim, then the margin its
    /// claim has to confirm in), and the payee window after the refund.
    pub fn htlc_expiry(&self, height: u32) -> u32 {
        height + self.confirmations + 2 * self.claim_margin + self.channel.payee_window()
    }

    /// Whether the wallet may still reveal its preimage in a claim at tip `height`.
    pub fn may_claim(&self, height: u32, refund_height: Height) -> bool {
        height + self.claim_margin < refund_height.to_consensus_u32()
    }
}

/// Wallet → LSP: pay `amount` on chain to a [`SwapScript`] with this hash and claim key, against
/// the HTLC `htlc` the wallet is adding on `channel` (of `amount` plus the terms' fee). Sent just
/// before the HTLC's `add_htlc` update; answered with [`SwapOutFunded`] once the HTLC is
/// committed and the LSP paid, or with a `pay_result` that fails the HTLC back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwapOutRequest {
    /// The wallet's channel.
    pub channel: ChannelId,
    /// The wallet's HTLC id on it.
    pub htlc: u64,
    /// `SHA256` of the wallet's preimage (the HTLC's hash too).
    pub hash: sha256::Hash,
    /// What the LSP pays on chain.
    #[serde(with = "bitcoin::amount::serde::as_sat")]
    pub amount: Amount,
    /// The wallet's claim key.
    pub claim_key: XOnlyPublicKey,
}

/// LSP → wallet: the swap's output is paid (broadcast; the wallet checks it on chain).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwapOutFunded {
    /// The wallet's channel.
    pub channel: ChannelId,
    /// The wallet's HTLC id.
    pub htlc: u64,
    /// The output's script.
    pub script: SwapScript,
    /// The output.
    pub outpoint: OutPoint,
    /// Its value (the request's amount).
    #[serde(with = "bitcoin::amount::serde::as_sat")]
    pub amount: Amount,
}

#[cfg(test)]
mod tests;
