//! What the wallet stores about channels and payments, and where ([`PayStore`]).
//!
//! Contract (as for the session's `Storage`): when a `save_*` returns `Ok` the data survives a
//! crash. The driver stores a channel's changes before anything they allow is sent, an invoice's
//! preimage before the invoice is shown, a payment before its HTLC is offered, and a leaf's
//! signing record and its pending advance before the advance's partial signatures leave.
//!
//! A channel lives on one leaf state at a time; each leaf state's channel has its own log
//! ([`LeafChannel`]). Buying liquidity moves the channel to the next leaf state
//! ([`LeafRecord`]); the old channel's log stays, frozen at its final commitment.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bitcoin::hashes::sha256;
use bitcoin::Amount;
use serde::{Deserialize, Serialize};
use shared::channel::{ChannelChange, CommitmentSpec};
use shared::leaf::{LeafEpoch, LeafStates};
use shared::pay::{ChannelId, ChannelOpen};

use crate::session::StorageError;

/// An invoice this wallet issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceRecord {
    /// Payment hash.
    pub hash: sha256::Hash,
    /// Its preimage (released only to an HTLC paying at least `amount`).
    pub preimage: [u8; 32],
    /// The invoice text.
    pub invoice: String,
    /// Amount asked.
    #[serde(with = "bitcoin::amount::serde::as_sat")]
    pub amount: Amount,
    /// Description.
    pub description: String,
    /// Unix time made.
    pub created_at: u64,
    /// Unix time it stops being payable.
    pub expires_at: u64,
    /// Unix time it was paid.
    pub paid_at: Option<u64>,
}

/// Which way a payment went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// This wallet paid.
    Sent,
    /// This wallet was paid.
    Received,
    /// This wallet bought inbound liquidity: `amount` is the liquidity, `fee` its price (what
    /// left the balance).
    Liquidity,
}

/// Where a payment is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Under way.
    Pending,
    /// Done.
    Complete,
    /// Failed, with the reason in words.
    Failed(String),
}

/// One line of the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRecord {
    /// Payment hash.
    pub hash: sha256::Hash,
    /// Direction.
    pub direction: Direction,
    /// Amount paid to the payee.
    #[serde(with = "bitcoin::amount::serde::as_sat")]
    pub amount: Amount,
    /// Routing fee paid (sent payments).
    #[serde(with = "bitcoin::amount::serde::as_sat")]
    pub fee: Amount,
    /// Of `fee`, what the Lightning Network's route took, for a payment that went out of the
    /// provider (`None` inside it, or not known yet).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "bitcoin::amount::serde::as_sat::opt"
    )]
    pub network_fee: Option<Amount>,
    /// The join fee the provider took from it (received payments: at most one of a channel's,
    /// its first that left enough; `amount` is the invoice's, the balance grew by `amount`
    /// less this).
    #[serde(default, with = "bitcoin::amount::serde::as_sat")]
    pub join_fee: Amount,
    /// Description.
    pub description: String,
    /// Status.
    pub status: PaymentStatus,
    /// Unix time started.
    pub created_at: u64,
    /// Unix time settled or failed.
    pub done_at: Option<u64>,
    /// The channel and HTLC id it went over.
    pub channel: Option<(ChannelId, u64)>,
    /// The preimage (proof of payment), once known.
    pub preimage: Option<[u8; 32]>,
    /// For a payment to an on-chain address (`shared::swap`), what the wallet claims it with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swap: Option<Box<SwapRecord>>,
}

/// A payment to an on-chain address: the HTLC pays the provider, which pays an output the
/// wallet claims with the preimage (`shared::swap`). Stored before the HTLC is offered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwapRecord {
    /// The address, as the user gave it.
    pub address: String,
    /// Its script: where the claim pays.
    pub destination: bitcoin::ScriptBuf,
    /// The preimage, revealed only in the claim.
    pub preimage: [u8; 32],
    /// The claim key.
    pub claim_secret: bitcoin::secp256k1::SecretKey,
    /// The HTLC's expiry height (the refund height follows from it).
    pub expiry: u32,
    /// The provider's output, once it said where and the wallet checked what it could.
    pub funded: Option<shared::swap::SwapOutFunded>,
    /// The claim, stored before its first broadcast (a replacement paying more takes its
    /// place the same way).
    pub claim: Option<bitcoin::Transaction>,
    /// The tip when the current claim was built: it is replaced at most once a block.
    #[serde(default)]
    pub claimed_at: Option<u32>,
    /// The height at which the claim confirmed: the coins are at the address, and the wallet
    /// stops watching.
    #[serde(default)]
    pub claim_confirmed: Option<u32>,
    /// The provider's refund confirmed before any claim: the output is gone, and the wallet
    /// stops watching.
    #[serde(default)]
    pub refunded: bool,
}

/// One leaf state's channel: the channel, and the leaf state whose channel output funds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LeafChannel {
    /// The channel.
    pub channel: ChannelId,
    /// The leaf state.
    pub leaf: LeafEpoch,
}

impl LeafChannel {
    /// The channel on `channel`'s leaf state 0 (before any purchase).
    pub fn first(channel: ChannelId) -> LeafChannel {
        LeafChannel {
            channel,
            leaf: LeafEpoch::FIRST,
        }
    }

    /// The channel an open message is about.
    pub fn of(open: &ChannelOpen) -> LeafChannel {
        LeafChannel {
            channel: open.channel,
            leaf: open.leaf,
        }
    }
}

impl core::fmt::Display for LeafChannel {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} on {}", self.channel, self.leaf)
    }
}

/// How a leaf state's channel (from state 1 on) opened: balances carried over from the channel
/// it replaced, and where its changes start in its log (an interrupted attempt's changes come
/// before; only their double-sign records are replayed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Opening {
    /// The opening state: the old channel's balances less the price, plus the liquidity.
    pub spec: CommitmentSpec,
    /// The index in the log of this attempt's first change.
    pub log_from: u64,
}

/// One attempt at opening a leaf state's channel: the liquidity it was for, and where its
/// changes start in that channel's log. Attempts for the same amount open the same commitment
/// on the same output, so a later one replays the double-sign records of the earlier ones;
/// another amount is another output, whose records do not apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// Liquidity asked.
    #[serde(with = "bitcoin::amount::serde::as_sat")]
    pub amount: Amount,
    /// The index in the log of its first change.
    pub log_from: u64,
}

/// A channel's leaf once liquidity was bought (or is being bought): its signed states with the
/// double-sign record, how each later state's channel opened, and every attempt at it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeafRecord {
    /// The leaf's states (the newest is the one the live channel lives on).
    pub states: LeafStates,
    /// The opening of each leaf state's channel, from state 1 on.
    pub openings: BTreeMap<LeafEpoch, Opening>,
    /// The attempts at each later leaf state's channel, oldest first (stored before the
    /// wallet's side of the channel is sent).
    #[serde(default)]
    pub attempts: BTreeMap<LeafEpoch, Vec<Attempt>>,
}

/// A purchase whose partial signatures left (stored just before): until `leaf_signed` arrives
/// the live channel stays frozen, and after a reconnection the wallet asks again for the same
/// amount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingAdvance {
    /// The leaf state being signed.
    pub leaf: LeafEpoch,
    /// Liquidity bought.
    #[serde(with = "bitcoin::amount::serde::as_sat")]
    pub amount: Amount,
    /// Its price.
    #[serde(with = "bitcoin::amount::serde::as_sat")]
    pub price: Amount,
    /// How the new leaf state's channel opened.
    pub opening: Opening,
}

/// Everything stored, as loaded at start.
#[derive(Debug, Clone, Default)]
pub struct PayState {
    /// Per leaf state's channel: the LSP's open message and the changes, in order.
    pub channels: BTreeMap<LeafChannel, (Option<ChannelOpen>, Vec<ChannelChange>)>,
    /// The leaves that advanced (or are being signed), by channel.
    pub leaves: BTreeMap<ChannelId, LeafRecord>,
    /// Purchases whose partial signatures left, by channel.
    pub advances: BTreeMap<ChannelId, PendingAdvance>,
    /// Invoices by hash.
    pub invoices: BTreeMap<sha256::Hash, InvoiceRecord>,
    /// Payments, in the order they started.
    pub payments: Vec<PaymentRecord>,
}

impl PayState {
    /// Adds `payment`, or replaces the one with its hash and direction.
    pub fn upsert_payment(&mut self, payment: &PaymentRecord) {
        match self
            .payments
            .iter_mut()
            .find(|p| p.hash == payment.hash && p.direction == payment.direction)
        {
            Some(p) => *p = payment.clone(),
            None => self.payments.push(payment.clone()),
        }
    }
}

/// Durable storage of channels and payments. See the module's contract.
#[allow(async_fn_in_trait)]
pub trait PayStore {
    /// Everything stored.
    async fn load(&mut self) -> Result<PayState, StorageError>;
    /// The LSP's open message of a leaf state's channel (once).
    async fn save_lsp_open(&mut self, open: &ChannelOpen) -> Result<(), StorageError>;
    /// Appends a leaf state's channel's changes, the first with sequence number `first_seq`.
    async fn append_changes(
        &mut self,
        channel: LeafChannel,
        first_seq: u64,
        changes: &[ChannelChange],
    ) -> Result<(), StorageError>;
    /// Stores (or replaces) an invoice.
    async fn save_invoice(&mut self, invoice: &InvoiceRecord) -> Result<(), StorageError>;
    /// Stores (or replaces, by hash and direction) a payment.
    async fn save_payment(&mut self, payment: &PaymentRecord) -> Result<(), StorageError>;
    /// Stores (or replaces) a channel's leaf record.
    async fn save_leaf(
        &mut self,
        channel: ChannelId,
        leaf: &LeafRecord,
    ) -> Result<(), StorageError>;
    /// Stores a channel's pending advance, or (`None`) forgets it.
    async fn save_advance(
        &mut self,
        channel: ChannelId,
        advance: Option<&PendingAdvance>,
    ) -> Result<(), StorageError>;
}

/// Keeps everything in memory, shared between clones (tests and benches: a "restarted" wallet
/// gets a clone of the same store).
#[derive(Debug, Clone, Default)]
pub struct MemoryPayStore(Arc<Mutex<PayState>>);

impl MemoryPayStore {
    /// A copy of what is stored.
    pub fn snapshot(&self) -> PayState {
        self.lock().clone()
    }

    fn lock(&self) -> MutexGuard<'_, PayState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl PayStore for MemoryPayStore {
    async fn load(&mut self) -> Result<PayState, StorageError> {
        Ok(self.lock().clone())
    }

    async fn save_lsp_open(&mut self, open: &ChannelOpen) -> Result<(), StorageError> {
        self.lock()
            .channels
            .entry(LeafChannel::of(open))
            .or_default()
            .0 = Some(open.clone());
        Ok(())
    }

    async fn append_changes(
        &mut self,
        channel: LeafChannel,
        first_seq: u64,
        changes: &[ChannelChange],
    ) -> Result<(), StorageError> {
        let mut state = self.lock();
        let log = &mut state.channels.entry(channel).or_default().1;
        if log.len() as u64 != first_seq {
            return Err(StorageError::Corrupt {
                path: format!("channel {channel}"),
                reason: format!("change {first_seq} follows {} stored ones", log.len()),
            });
        }
        log.extend_from_slice(changes);
        Ok(())
    }

    async fn save_invoice(&mut self, invoice: &InvoiceRecord) -> Result<(), StorageError> {
        self.lock().invoices.insert(invoice.hash, invoice.clone());
        Ok(())
    }

    async fn save_payment(&mut self, payment: &PaymentRecord) -> Result<(), StorageError> {
        self.lock().upsert_payment(payment);
        Ok(())
    }

    async fn save_leaf(
        &mut self,
        channel: ChannelId,
        leaf: &LeafRecord,
    ) -> Result<(), StorageError> {
        self.lock().leaves.insert(channel, leaf.clone());
        Ok(())
    }

    async fn save_advance(
        &mut self,
        channel: ChannelId,
        advance: Option<&PendingAdvance>,
    ) -> Result<(), StorageError> {
        let mut state = self.lock();
        match advance {
            Some(a) => state.advances.insert(channel, a.clone()),
            None => state.advances.remove(&channel),
        };
        Ok(())
    }
}
