//! The numbers every leaf channel of a network is opened with, and the arithmetic of a route
//! through the LSP (fee and HTLC expiries). Both sides compute them; nothing here is negotiated.

use bitcoin::hashes::{sha256, Hash, HashEngine};
use bitcoin::secp256k1::SecretKey;
use bitcoin::{Amount, FeeRate, Network};

use super::messages::ChannelId;
use crate::channel::{ChannelError, ChannelParams};
use crate::leaf::{LeafEpoch, LeafState};
use crate::params::{BlockDelta, FactoryParams};
use crate::path::ClientPath;
use crate::terms::FeeSchedule;

/// Channel and routing constants for one network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelPolicy {
    /// Blocks a commitment's holder waits for its own balance and HTLC claims.
    pub to_self_delay: BlockDelta,
    /// Blocks allowed to get a commitment confirmed before an HTLC deadline.
    pub htlc_margin: BlockDelta,
    /// The worst tree walk `W` of any factory of the network's preset (its `max_clients`):
    /// blocks from the first broadcast to the leaf's confirmation, every state at its longest
    /// delay. A proposal whose walk is longer is refused (`check_proposal`), so every HTLC
    /// expiry derived from it covers getting any leaf on chain.
    pub walk: BlockDelta,
    /// Outputs below it are not created.
    pub dust_limit: Amount,
    /// Value of each commitment's P2A anchor.
    pub anchor: Amount,
    /// Fee rate of the opening commitments (the LSP pays; it raises it later with `Fee`).
    pub opening_feerate: FeeRate,
    /// Highest commitment fee rate a client accepts at open (the LSP's balance pays it, but a
    /// rate this high would leave the LSP nothing to route with).
    pub max_opening_feerate: FeeRate,
}

impl ChannelPolicy {
    /// The policy for `network`.
    pub fn for_network(network: Network) -> ChannelPolicy {
        let (delay, margin) = match network {
            Network::Bitcoin => (144, 18),
            Network::Regtest => (6, 6),
            _ => (36, 12),
        };
        let preset = FactoryParams::for_network(network);
        ChannelPolicy {
            to_self_delay: BlockDelta::from_blocks(delay),
            htlc_margin: BlockDelta::from_blocks(margin),
            walk: crate::exit::worst_case_unchecked(&preset, preset.max_clients).blocks,
            dust_limit: Amount::from_sat(330),
            anchor: Amount::from_sat(240),
            opening_feerate: FeeRate::from_sat_per_vb_u32(1),
            max_opening_feerate: FeeRate::from_sat_per_vb_u32(50),
        }
    }

    /// The least time a payee's HTLC must have left when it is added, and the final CLTV
    /// delta of every invoice: `W + to_self_delay + htlc_margin`. The payee walks its tree
    /// (`W`), gets its commitment confirmed (`htlc_margin`) and waits its success path's
    /// `to_self_delay`, all before the LSP's timeout path opens at the expiry.
    pub fn payee_window(&self) -> u32 {
        self.walk.to_blocks() + self.to_self_delay.to_blocks() + self.htlc_margin.to_blocks()
    }

    /// Blocks between the payer's HTLC expiry and the payee's (the LSP's CLTV delta):
    /// `W + 2·to_self_delay + htlc_margin`. The LSP's commitment towards the payee is on chain
    /// by the payee's expiry (it starts that walk `W` earlier), and its timeout claim waits its
    /// own `to_self_delay`, during which the payee may still claim with the preimage; once
    /// the LSP learns it, it walks the payer's tree, confirms its commitment and waits its
    /// success path's `to_self_delay`, all before the payer's timeout opens.
    pub fn expiry_delta(&self) -> u32 {
        self.payee_window() + self.to_self_delay.to_blocks()
    }

    /// The expiry height a payer gives its HTLC at tip `height`: room for the LSP's delta, the
    /// payee's window, and a few blocks of the payee's chain view lagging.
    pub fn payer_expiry(&self, height: u32) -> u32 {
        height + self.expiry_delta() + self.payee_window() + 6
    }

    /// The last height at which a channel of a factory timing out at `timeout` may take a
    /// payment: after it, a payer's HTLC (`payer_expiry`) would outlive the factory's timeout
    /// `T`, when the distribution transaction may pay out balances that the HTLC changed.
    pub fn routing_deadline(&self, timeout: u32) -> u32 {
        timeout.saturating_sub(self.payer_expiry(0))
    }

    /// The most blocks the LSP may give a route to an outside payee (its payment's whole CLTV,
    /// the payee's final delta included), for a payer's HTLC expiring at `incoming`, at tip
    /// `height`: the outside HTLC expires by `incoming − payee_window`, so that the LSP, which
    /// learns the preimage by then at the latest, still has the payee window to walk the
    /// payer's tree and claim its HTLC on chain. `None` when no block is left.
    pub fn outside_budget(&self, incoming: u32, height: u32) -> Option<u32> {
        incoming
            .checked_sub(height)?
            .checked_sub(self.payee_window())
            .filter(|b| *b > 0)
    }

    /// The expiry the LSP gives the payee's HTLC for an incoming one expiring at `incoming`.
    pub fn payee_expiry(&self, incoming: u32) -> u32 {
        incoming.saturating_sub(self.expiry_delta())
    }

    /// The expiry the LSP gives a wallet's HTLC for a payment from the Lightning Network that
    /// its node holds until `deadline` (the node fails it back upstream after that height):
    /// `deadline − to_self_delay − htlc_margin`. Should the wallet claim the HTLC on chain at
    /// the last moment, its success claim can come up to `to_self_delay` after the expiry (the
    /// LSP's timeout claim waits that long), and the LSP, seeing the preimage there, claims
    /// upstream within `htlc_margin`, still before the deadline.
    pub fn inbound_expiry(&self, deadline: u32) -> u32 {
        deadline
            .saturating_sub(self.to_self_delay.to_blocks())
            .saturating_sub(self.htlc_margin.to_blocks())
    }

    /// The final CLTV delta of an invoice the LSP's node holds for a wallet: the wallet's
    /// [`ChannelPolicy::payee_window`] from the tip when its HTLC is added, the margin of
    /// [`ChannelPolicy::inbound_expiry`], the node's own fail-back buffer
    /// ([`crate::timing::UPSTREAM_FAIL_BACK`]), and a few blocks of lag between the payer's tip
    /// and the LSP's.
    pub fn inbound_invoice_delta(&self) -> u32 {
        self.payee_window()
            + self.to_self_delay.to_blocks()
            + self.htlc_margin.to_blocks()
            + crate::timing::UPSTREAM_FAIL_BACK
            + 6
    }
}

/// The routing fee for delivering `amount`: `base + ceil(amount × ppm / 10⁶)`.
pub fn route_fee(fees: &FeeSchedule, amount: Amount) -> Amount {
    let ppm = u128::from(fees.routing_fee_ppm);
    let prop = (u128::from(amount.to_sat()) * ppm).div_ceil(1_000_000);
    fees.routing_fee_base + Amount::from_sat(prop as u64)
}

/// The routing fee `payer` owes for `invoice`: [`route_fee`], except between two channels of
/// one wallet (the payee's key is the payer's identity), which is free: that is how a wallet
/// moves its balance into a newer factory (`crate::lifecycle`), and the LSP earns nothing it
/// would not have earned by keeping the client.
pub fn route_fee_for(
    fees: &FeeSchedule,
    invoice: &super::ParsedInvoice,
    payer: &bitcoin::secp256k1::XOnlyPublicKey,
) -> Amount {
    if invoice.payee_identity() == *payer {
        Amount::ZERO
    } else {
        route_fee(fees, invoice.amount)
    }
}

/// The price of `amount` of inbound liquidity: `ceil(amount × liquidity_fee_ppm / 10⁶)`.
pub fn liquidity_price(fees: &FeeSchedule, amount: Amount) -> Amount {
    let ppm = u128::from(fees.liquidity_fee_ppm);
    Amount::from_sat((u128::from(amount.to_sat()) * ppm).div_ceil(1_000_000) as u64)
}

/// The parameters of the channel on `path`'s leaf (state 0): its `channel` output, funded by
/// MuSig2(client's factory key, LSP's factory key).
pub fn leaf_channel_params(
    path: &ClientPath,
    policy: &ChannelPolicy,
) -> Result<ChannelParams, ChannelError> {
    leaf_state_channel_params(path, &LeafState::first(path), policy)
}

/// The parameters of the channel on leaf state `state`'s `channel` output.
pub fn leaf_state_channel_params(
    path: &ClientPath,
    state: &LeafState,
    policy: &ChannelPolicy,
) -> Result<ChannelParams, ChannelError> {
    let funding = state.channel_outpoint();
    let funding_output = state
        .node
        .tx
        .output
        .get(funding.vout as usize)
        .cloned()
        .ok_or(ChannelError::Params {
            reason: "the leaf has no channel output",
        })?;
    Ok(ChannelParams {
        funding,
        funding_output,
        lsp_funding_key: path.proposal().lsp_key,
        client_funding_key: path.client_key(),
        to_self_delay: policy.to_self_delay,
        dust_limit: policy.dust_limit,
        anchor: policy.anchor,
        htlc_margin: policy.htlc_margin,
        walk: path.worst_exit_blocks(),
    })
}

/// The channel seed of one side of `channel` on leaf state `leaf`, from that side's factory
/// key (which is already unique to the factory):
/// `SHA256("superscalar/channel-seed" ‖ key ‖ factory ‖ client [‖ leaf, from state 1 on])`.
/// Each leaf state's channel has its own secrets, so revealing an old channel's revocation
/// secrets never reveals a new channel's.
pub fn channel_seed(factory_secret: &SecretKey, channel: ChannelId, leaf: LeafEpoch) -> [u8; 32] {
    let mut engine = sha256::Hash::engine();
    engine.input(b"superscalar/channel-seed");
    engine.input(&factory_secret.secret_bytes());
    engine.input(&channel.factory.0.to_be_bytes());
    engine.input(&channel.client.0.to_be_bytes());
    if leaf != LeafEpoch::FIRST {
        engine.input(&[leaf.0]);
    }
    sha256::Hash::from_engine(engine).to_byte_array()
}

/// The pseudo short channel id naming `channel` in invoices' route hints.
pub fn short_channel_id(channel: ChannelId) -> u64 {
    (channel.factory.0 << 32) | u64::from(channel.client.0)
}

/// The channel a [`short_channel_id`] names.
pub fn channel_of_short_id(scid: u64) -> ChannelId {
    ChannelId {
        factory: crate::types::FactoryId(scid >> 32),
        client: crate::types::ClientId(scid as u32),
    }
}
