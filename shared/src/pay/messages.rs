//! Channel and payment messages (carried in `WireMsg`).

use bitcoin::hashes::sha256;
use bitcoin::{Amount, FeeRate};
use serde::{Deserialize, Serialize};

use crate::channel::keys::{Basepoints, ChannelSecrets};
use crate::channel::{ChannelMsg, PeerInfo};
use crate::leaf::LeafEpoch;
use crate::types::{ClientId, FactoryId};

/// A channel: the leaf of `client` in `factory`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ChannelId {
    /// The factory.
    pub factory: FactoryId,
    /// The client's leaf.
    pub client: ClientId,
}

impl core::fmt::Display for ChannelId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}/{}", self.factory, self.client)
    }
}

/// Either side: this side's channel basepoints and first two per-commitment points. The wallet
/// sends it first (for every open factory, on every connection); the LSP answers with its own,
/// the same every time, and then starts (or resumes) the commitment rounds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelOpen {
    /// The channel.
    pub channel: ChannelId,
    /// The sender's basepoints.
    pub basepoints: Basepoints,
    /// The sender's per-commitment points of commitments 0 and 1.
    pub first_points: [bitcoin::secp256k1::PublicKey; 2],
    /// LSP only: the opening commitments' fee rate (the LSP pays it).
    pub feerate: Option<FeeRate>,
    /// How many of the receiver's channel updates the sender holds: the receiver sends again
    /// its uncommitted updates from this number on (some may have been lost with the last
    /// connection).
    #[serde(default)]
    pub next_update: u64,
    /// The leaf state whose channel output the channel lives on (0 until the wallet buys
    /// liquidity; see `crate::leaf`).
    #[serde(default)]
    pub leaf: LeafEpoch,
    /// Wallet only: it signed a purchase of this much liquidity for the next leaf state and
    /// has not seen it complete, so the live channel is frozen (the LSP offers it nothing and
    /// starts no round on it until the purchase completes).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "bitcoin::amount::serde::as_sat::opt"
    )]
    pub purchase: Option<Amount>,
}

impl ChannelOpen {
    /// The `channel_open` of the side holding `secrets` for `channel` on leaf state `leaf`
    /// (no fee rate, no updates held: set those fields as the sender needs).
    pub fn new(channel: ChannelId, leaf: LeafEpoch, secrets: &ChannelSecrets) -> ChannelOpen {
        ChannelOpen {
            channel,
            basepoints: secrets.basepoints(),
            first_points: secrets.first_points(),
            feerate: None,
            next_update: 0,
            leaf,
            purchase: None,
        }
    }

    /// Whether `other` opens the same channel with the same keys (ignoring `next_update`).
    pub fn same_keys(&self, other: &ChannelOpen) -> bool {
        self.channel == other.channel
            && self.leaf == other.leaf
            && self.same_points(other)
            && self.feerate == other.feerate
    }

    /// Whether `other` carries the same basepoints and first per-commitment points: the keys
    /// a peer may not change for a channel once it is stored.
    pub fn same_points(&self, other: &ChannelOpen) -> bool {
        self.basepoints == other.basepoints && self.first_points == other.first_points
    }
}

impl ChannelOpen {
    /// What the channel state machine needs about the sender.
    pub fn peer_info(&self) -> PeerInfo {
        PeerInfo {
            basepoints: self.basepoints,
            first_points: self.first_points,
        }
    }
}

/// One channel message (`shared::channel::ChannelMsg`) on one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelFrame {
    /// The channel.
    pub channel: ChannelId,
    /// The leaf state of the channel it is for: the live one, or, during a liquidity purchase,
    /// the new one.
    #[serde(default)]
    pub leaf: LeafEpoch,
    /// The message.
    pub msg: ChannelMsg,
}

/// Wallet → LSP: route the HTLC `htlc` the wallet is adding on `channel` to the payee of
/// `invoice`. Sent just before the HTLC's `add_htlc` update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayRequest {
    /// The payer's channel.
    pub channel: ChannelId,
    /// The payer's HTLC id on it.
    pub htlc: u64,
    /// The BOLT11 invoice being paid.
    pub invoice: String,
}

/// Why the LSP could not deliver a payment (the payer's HTLC is failed back).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PayFailure {
    /// The invoice's payee is not a client of this LSP.
    UnknownPayee,
    /// The payee's channels cannot receive this much.
    NoLiquidity,
    /// The payee did not come online within the LSP's wait.
    PayeeOffline,
    /// The invoice expired, or the HTLC's expiry is too close.
    Expired,
    /// The HTLC does not match the invoice (hash, amount or fee).
    Mismatch {
        /// What did not match.
        reason: String,
    },
    /// The payee refused the payment.
    Refused,
    /// A channel the payment needs is closing or closed on chain.
    ChannelClosed {
        /// Which, and why.
        reason: String,
    },
    /// The payee is outside the LSP, and the LSP's Lightning node could not pay it (or would
    /// not: no route within the fee or CLTV budget, not enough outbound liquidity).
    Network {
        /// Why, in words.
        reason: String,
    },
}

impl PayFailure {
    /// What to tell the payer, in words.
    pub fn describe(&self) -> String {
        match self {
            PayFailure::UnknownPayee => "the recipient is not a client of this provider".into(),
            PayFailure::NoLiquidity => {
                "the recipient cannot receive that much right now (not enough inbound liquidity)"
                    .into()
            }
            PayFailure::PayeeOffline => {
                "the recipient's wallet was not online; ask them to open it and try again".into()
            }
            PayFailure::Expired => "the invoice has expired; ask for a new one".into(),
            PayFailure::Mismatch { reason } => {
                format!("the payment did not match the invoice: {reason}")
            }
            PayFailure::Refused => "the recipient's wallet refused the payment".into(),
            PayFailure::ChannelClosed { reason } => {
                format!("a channel this payment needs is closed: {reason}")
            }
            PayFailure::Network { reason } => {
                format!("the Lightning Network did not deliver it: {reason}")
            }
        }
    }
}

/// How a payment ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayOutcome {
    /// Delivered: the payee released the preimage.
    Paid {
        /// The preimage (proof of payment).
        preimage: [u8; 32],
        /// The routing fee the payer paid.
        #[serde(with = "bitcoin::amount::serde::as_sat")]
        fee: Amount,
        /// For a payment that went out to the Lightning Network: what of `fee` the route's
        /// nodes took (the LSP kept the rest). `None` for a payment inside the LSP.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            with = "bitcoin::amount::serde::as_sat::opt"
        )]
        network_fee: Option<Amount>,
    },
    /// Not delivered; the HTLC is failed back.
    Failed(PayFailure),
}

/// LSP → wallet: how the payment of [`PayRequest`] ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayResult {
    /// The payer's channel.
    pub channel: ChannelId,
    /// The payer's HTLC id.
    pub htlc: u64,
    /// The payment hash.
    pub hash: sha256::Hash,
    /// The outcome.
    pub outcome: PayOutcome,
}

/// LSP → wallet: the channel takes no more payments (its factory's tree or its commitment is
/// on chain, or its factory is too near its timeout). Sent when it happens and in answer to
/// anything on that channel; the wallet stops paying and receiving on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelClosed {
    /// The channel.
    pub channel: ChannelId,
    /// `closing` (its factory's tree is going on chain or its timeout is near) or `closed`
    /// (a commitment or a cooperative close is on chain).
    pub state: String,
    /// Why, in words.
    pub reason: String,
}

/// Wallet → LSP, before the user confirms a payment: could the payee of `invoice` receive it
/// now? Answered with [`RouteAnswer`]; nothing is reserved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteQuery {
    /// The BOLT11 invoice the user is about to pay.
    pub invoice: String,
}

/// LSP → wallet: what it knows of the payee of a [`RouteQuery`]'s invoice, right now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteAnswer {
    /// The invoice's payment hash.
    pub hash: sha256::Hash,
    /// `None` when the payment can go through now; otherwise why it would fail or wait, in
    /// words for the payer.
    pub warning: Option<String>,
    /// The payee is not the LSP's client: the payment goes out to the Lightning Network, whose
    /// routing fee the LSP pays out of its own fee (the payer pays no more than quoted).
    #[serde(default)]
    pub outside: bool,
}

/// Wallet → LSP, when the LSP runs a Lightning node (its terms name it): make the node the
/// payee of an invoice for the wallet's payment hash, so that anyone on the Lightning Network
/// can pay it. The node holds a payment that arrives for it, offers it to the wallet as an HTLC
/// in its channel, and claims it upstream only with the preimage the wallet reveals there (the
/// wallet keeps the preimage). Answered with [`InvoiceRegistered`], or an error about
/// [`crate::wire::ErrorAbout::Invoice`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceRegister {
    /// SHA-256 of the wallet's preimage.
    pub hash: sha256::Hash,
    /// What the payer pays (and the wallet receives, less a join fee it still owes).
    #[serde(with = "bitcoin::amount::serde::as_sat")]
    pub amount: Amount,
    /// Shown to the payer.
    pub description: String,
    /// Seconds the invoice stays payable.
    pub expiry_secs: u32,
}

/// LSP → wallet: the node's invoice for a [`InvoiceRegister`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceRegistered {
    /// The payment hash.
    pub hash: sha256::Hash,
    /// The BOLT11 invoice, signed by the LSP's Lightning node.
    pub invoice: String,
}

/// Wallet → LSP (regtest and signet demos only): pay this invoice of the wallet's from the
/// LSP's own side of a channel, as test sats. It arrives like any payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaucetRequest {
    /// The wallet's BOLT11 invoice (at most the LSP's `--faucet-max-sat`).
    pub invoice: String,
}
