//! The terms this LSP publishes, signed fresh on each request with a short expiry.
//!
//! The tree and lifetime figures come from the network's [`FactoryParams`], the same parameters
//! the factory proposer builds every tree with, so what a wallet is quoted is what it is asked
//! to sign.

use std::time::{SystemTime, UNIX_EPOCH};

use bitcoin::secp256k1::Keypair;
use bitcoin::Amount;
use shared::lifecycle::Ladder;
use shared::swap::SwapOutTerms;
use shared::terms::{FactorySchedule, FeeSchedule, SignedTerms, TermsBody};

use crate::config::Config;

/// How long a served quote binds the LSP.
pub const TERMS_VALIDITY_SECS: u64 = 3600;

/// What changes from one request to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moment {
    /// Chain tip height.
    pub tip_height: u32,
    /// Free slots in the factory now gathering (the whole size if none is).
    pub open_slots: u32,
    /// The LSP's Lightning node, if it runs one.
    pub lightning_node: Option<bitcoin::secp256k1::PublicKey>,
}

/// The unsigned terms, as quotes are computed from them.
pub fn body(config: &Config, key: &Keypair, moment: Moment) -> TermsBody {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let params = config.factory_params();
    let max_clients = u32::try_from(config.factory_size()).unwrap_or(u32::MAX);
    TermsBody {
        network: config.network,
        lsp_pubkey: key.x_only_public_key().0,
        name: config.name.clone(),
        fees: fees(),
        min_channel: Amount::from_sat(10_000),
        max_channel: Amount::from_sat(10_000_000),
        min_liquidity: LIQUIDITY.0,
        max_liquidity: LIQUIDITY.1,
        schedule: FactorySchedule {
            interval_blocks: config.ladder().map_or(0, Ladder::interval),
            active_blocks: params.active.to_blocks(),
            dying_blocks: params.dying.to_blocks(),
            next_start_height: config.ladder().map_or(moment.tip_height.saturating_add(1), |l| {
                l.next_rung(moment.tip_height).to_consensus_u32()
            }),
            open_slots: moment.open_slots.min(max_clients),
            max_clients,
        },
        liveness: "Open your wallet at least once during your factory's dying period to move your funds to a new factory. If you miss it, the provider closes your channel on chain shortly before the factory's timeout and pays your balance to your own key, where your wallet finds it whenever you open it again; or open it again before the timeout and your wallet takes its funds out on chain itself. A wallet that never comes back after the LSP has published the factory can lose its funds to the LSP's timeout.".into(),
        tree: params,
        esplora_url: config.advertised_esplora_url().to_string(),
        issued_at: now,
        expires_at: now + TERMS_VALIDITY_SECS,
        lightning_node: moment.lightning_node,
        swap_out: Some(swap_out()),
    }
}

/// The smallest and largest inbound liquidity this LSP sells in one go (at join, and per
/// purchase from a leaf's L-stock).
pub const LIQUIDITY: (Amount, Amount) = (Amount::from_sat(10_000), Amount::from_sat(10_000_000));

/// The fees this LSP charges (published in its terms; the payment router charges them).
pub fn fees() -> FeeSchedule {
    FeeSchedule {
        join_fee: Amount::from_sat(1_000),
        liquidity_fee_ppm: 5_000,
        routing_fee_base: Amount::from_sat(1),
        routing_fee_ppm: 1_000,
    }
}

/// What this LSP charges to send a wallet's balance on chain (`shared::swap`): the flat part
/// covers its funding transaction, and the refund should the wallet never claim.
pub fn swap_out() -> SwapOutTerms {
    SwapOutTerms {
        fee_base: Amount::from_sat(500),
        fee_ppm: 1_000,
        min: Amount::from_sat(10_000),
        max: Amount::from_sat(10_000_000),
    }
}

/// Builds and signs the current terms.
pub fn current(config: &Config, key: &Keypair, moment: Moment) -> SignedTerms {
    body(config, key, moment).sign(shared::secp::ctx(), key)
}
