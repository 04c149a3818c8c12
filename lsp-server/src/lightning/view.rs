//! What the admin API and `/metrics` show of the Lightning node: plain serializable snapshots
//! of LDK's state, taken when asked, so they never drift from the node.
//!
//! Amounts in whole sats are [`Amount`]s serialized as sats; channel capacities stay in msat
//! (`_msat` fields), the unit HTLCs move in.

use bitcoin::Amount;
use ldk_node::{
    BalanceDetails, ChannelDetails, LightningBalance, PeerDetails, PendingSweepBalance,
};
use serde::Serialize;

/// The node itself.
#[derive(Debug, Clone, Serialize)]
pub struct NodeInfo {
    /// Its public key, which peers connect to.
    pub node_id: String,
    /// `node_id@address` for each address peers can reach it at, to paste into another node.
    pub uris: Vec<String>,
    /// Where it listens.
    pub listening_addresses: Vec<String>,
    /// What it announces for its public channels.
    pub announcement_addresses: Vec<String>,
    /// Its alias in the graph.
    pub alias: Option<String>,
    /// The chain it runs on.
    pub network: String,
    /// The block its channel state is synced to.
    pub best_block_height: u32,
    /// Whether it runs.
    pub running: bool,
    /// Unix time of the last sync of its channels with the chain, if any.
    pub last_lightning_sync: Option<u64>,
    /// Unix time of the last sync of its on-chain wallet, if any.
    pub last_onchain_sync: Option<u64>,
}

/// One channel.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelView {
    /// The id to close it by (decimal).
    pub user_channel_id: String,
    /// The protocol's channel id (hex).
    pub channel_id: String,
    /// The peer.
    pub counterparty_node_id: String,
    /// `txid:vout` of its funding output, once known.
    pub funding_txo: Option<String>,
    /// Its short channel id, once confirmed deep enough.
    pub short_channel_id: Option<u64>,
    /// Its capacity.
    #[serde(with = "bitcoin::amount::serde::as_sat")]
    pub value_sat: Amount,
    /// What the node can send in it now.
    pub outbound_capacity_msat: u64,
    /// What it can receive in it now.
    pub inbound_capacity_msat: u64,
    /// Whether the node opened it (and pays its commitment fees).
    pub is_outbound: bool,
    /// Whether both sides exchanged `channel_ready`.
    pub is_ready: bool,
    /// Whether it is ready and the peer is connected.
    pub is_usable: bool,
    /// Whether it is public.
    pub is_announced: bool,
    /// Confirmations of the funding transaction.
    pub confirmations: Option<u32>,
    /// Confirmations needed before it is ready.
    pub confirmations_required: Option<u32>,
}

impl From<&ChannelDetails> for ChannelView {
    fn from(c: &ChannelDetails) -> Self {
        ChannelView {
            user_channel_id: c.user_channel_id.0.to_string(),
            channel_id: c.channel_id.to_string(),
            counterparty_node_id: c.counterparty_node_id.to_string(),
            funding_txo: c.funding_txo.map(|o| o.to_string()),
            short_channel_id: c.short_channel_id,
            value_sat: Amount::from_sat(c.channel_value_sats),
            outbound_capacity_msat: c.outbound_capacity_msat,
            inbound_capacity_msat: c.inbound_capacity_msat,
            is_outbound: c.is_outbound,
            is_ready: c.is_channel_ready,
            is_usable: c.is_usable,
            is_announced: c.is_announced,
            confirmations: c.confirmations,
            confirmations_required: c.confirmations_required,
        }
    }
}

/// One peer.
#[derive(Debug, Clone, Serialize)]
pub struct PeerView {
    /// Its node id.
    pub node_id: String,
    /// Where it is (or was) reached.
    pub address: String,
    /// Whether it is connected now.
    pub is_connected: bool,
    /// Whether the node reconnects to it after a restart.
    pub is_persisted: bool,
}

impl From<&PeerDetails> for PeerView {
    fn from(p: &PeerDetails) -> Self {
        PeerView {
            node_id: p.node_id.to_string(),
            address: p.address.to_string(),
            is_connected: p.is_connected,
            is_persisted: p.is_persisted,
        }
    }
}

/// The node's money, on chain and in channels.
#[derive(Debug, Clone, Serialize)]
pub struct BalancesView {
    /// Every on-chain coin of the node's wallet, confirmed or not.
    #[serde(with = "bitcoin::amount::serde::as_sat")]
    pub onchain_total_sat: Amount,
    /// What it may spend (the total less the anchor reserve).
    #[serde(with = "bitcoin::amount::serde::as_sat")]
    pub onchain_spendable_sat: Amount,
    /// Kept on chain to bump the fees of anchor channels' closing transactions.
    #[serde(with = "bitcoin::amount::serde::as_sat")]
    pub anchor_reserve_sat: Amount,
    /// What the node could claim from its channels (less on-chain fees), summed.
    #[serde(with = "bitcoin::amount::serde::as_sat")]
    pub lightning_total_sat: Amount,
    /// That sum, item by item.
    pub lightning: Vec<LightningItem>,
    /// Outputs of closed channels on their way to the wallet, summed.
    #[serde(with = "bitcoin::amount::serde::as_sat")]
    pub pending_from_closures_sat: Amount,
}

/// One item of the node's Lightning balance.
#[derive(Debug, Clone, Serialize)]
pub struct LightningItem {
    /// The channel (hex).
    pub channel_id: String,
    /// The peer.
    pub counterparty_node_id: String,
    /// LDK's kind of claim, e.g. `claimable_on_channel_close`.
    pub kind: &'static str,
    /// What the node can claim.
    #[serde(with = "bitcoin::amount::serde::as_sat")]
    pub amount_sat: Amount,
    /// For an open channel the node funded: the commitment transaction's fee, which it pays
    /// and which `amount_sat` leaves out.
    #[serde(with = "bitcoin::amount::serde::as_sat")]
    pub commitment_fee_sat: Amount,
}

impl From<&LightningBalance> for LightningItem {
    fn from(b: &LightningBalance) -> Self {
        use LightningBalance as B;
        let (kind, channel, peer, amount, fee) = match b {
            B::ClaimableOnChannelClose {
                channel_id,
                counterparty_node_id,
                amount_satoshis,
                transaction_fee_satoshis,
                ..
            } => (
                "claimable_on_channel_close",
                channel_id,
                counterparty_node_id,
                amount_satoshis,
                *transaction_fee_satoshis,
            ),
            B::ClaimableAwaitingConfirmations {
                channel_id,
                counterparty_node_id,
                amount_satoshis,
                ..
            } => (
                "claimable_awaiting_confirmations",
                channel_id,
                counterparty_node_id,
                amount_satoshis,
                0,
            ),
            B::ContentiousClaimable {
                channel_id,
                counterparty_node_id,
                amount_satoshis,
                ..
            } => (
                "contentious_claimable",
                channel_id,
                counterparty_node_id,
                amount_satoshis,
                0,
            ),
            B::MaybeTimeoutClaimableHTLC {
                channel_id,
                counterparty_node_id,
                amount_satoshis,
                ..
            } => (
                "maybe_timeout_claimable_htlc",
                channel_id,
                counterparty_node_id,
                amount_satoshis,
                0,
            ),
            B::MaybePreimageClaimableHTLC {
                channel_id,
                counterparty_node_id,
                amount_satoshis,
                ..
            } => (
                "maybe_preimage_claimable_htlc",
                channel_id,
                counterparty_node_id,
                amount_satoshis,
                0,
            ),
            B::CounterpartyRevokedOutputClaimable {
                channel_id,
                counterparty_node_id,
                amount_satoshis,
                ..
            } => (
                "counterparty_revoked_output_claimable",
                channel_id,
                counterparty_node_id,
                amount_satoshis,
                0,
            ),
        };
        LightningItem {
            channel_id: channel.to_string(),
            counterparty_node_id: peer.to_string(),
            kind,
            amount_sat: Amount::from_sat(*amount),
            commitment_fee_sat: Amount::from_sat(fee),
        }
    }
}

impl From<&BalanceDetails> for BalancesView {
    fn from(b: &BalanceDetails) -> Self {
        let pending = b
            .pending_balances_from_channel_closures
            .iter()
            .map(|p| match p {
                PendingSweepBalance::PendingBroadcast {
                    amount_satoshis, ..
                }
                | PendingSweepBalance::BroadcastAwaitingConfirmation {
                    amount_satoshis, ..
                }
                | PendingSweepBalance::AwaitingThresholdConfirmations {
                    amount_satoshis, ..
                } => *amount_satoshis,
            })
            .sum();
        BalancesView {
            onchain_total_sat: Amount::from_sat(b.total_onchain_balance_sats),
            onchain_spendable_sat: Amount::from_sat(b.spendable_onchain_balance_sats),
            anchor_reserve_sat: Amount::from_sat(b.total_anchor_channels_reserve_sats),
            lightning_total_sat: Amount::from_sat(b.total_lightning_balance_sats),
            lightning: b
                .lightning_balances
                .iter()
                .map(LightningItem::from)
                .collect(),
            pending_from_closures_sat: Amount::from_sat(pending),
        }
    }
}

/// The node's gauges for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LnGauges {
    /// Channels whose both sides sent `channel_ready`.
    pub channels_ready: u64,
    /// Channels still opening.
    pub channels_pending: u64,
    /// Peers connected now.
    pub peers_connected: u64,
    /// What the node can send, summed over its channels.
    pub outbound_capacity: Amount,
    /// What it can receive, summed over its channels.
    pub inbound_capacity: Amount,
    /// Its on-chain wallet's total.
    pub onchain_total: Amount,
}

impl LnGauges {
    /// The gauges of these channels, peers and balances (capacities rounded down to sats).
    pub fn of(
        channels: &[ChannelDetails],
        peers: &[PeerDetails],
        balances: &BalanceDetails,
    ) -> Self {
        let ready = channels.iter().filter(|c| c.is_channel_ready).count() as u64;
        let msat_to_sat = |msat: u64| Amount::from_sat(msat / 1000);
        LnGauges {
            channels_ready: ready,
            channels_pending: channels.len() as u64 - ready,
            peers_connected: peers.iter().filter(|p| p.is_connected).count() as u64,
            outbound_capacity: msat_to_sat(channels.iter().map(|c| c.outbound_capacity_msat).sum()),
            inbound_capacity: msat_to_sat(channels.iter().map(|c| c.inbound_capacity_msat).sum()),
            onchain_total: Amount::from_sat(balances.total_onchain_balance_sats),
        }
    }
}
