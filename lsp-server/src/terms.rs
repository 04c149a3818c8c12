//! The terms this LSP publishes, signed fresh on each request with a short expiry.

use std::time::{SystemTime, UNIX_EPOCH};

use bitcoin::secp256k1::{Keypair, Secp256k1};
use bitcoin::Amount;
use shared::terms::{FactorySchedule, FeeSchedule, SignedTerms, TermsBody, TreeTerms};

use crate::config::Config;

/// How long a served quote binds the LSP.
pub const TERMS_VALIDITY_SECS: u64 = 3600;

/// Builds and signs the current terms.
pub fn current(config: &Config, key: &Keypair, tip_height: u32) -> SignedTerms {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let body = TermsBody {
        network: config.network,
        lsp_pubkey: key.x_only_public_key().0,
        name: config.name.clone(),
        fees: FeeSchedule {
            join_fee: Amount::from_sat(1_000),
            liquidity_fee_ppm: 5_000,
            routing_fee_base: Amount::from_sat(1),
            routing_fee_ppm: 1_000,
        },
        min_channel: Amount::from_sat(10_000),
        max_channel: Amount::from_sat(10_000_000),
        min_liquidity: Amount::from_sat(10_000),
        max_liquidity: Amount::from_sat(10_000_000),
        schedule: FactorySchedule {
            interval_blocks: 144,
            active_blocks: 4_320,
            dying_blocks: 432,
            next_start_height: tip_height.saturating_add(1),
            open_slots: 64,
            max_clients: 64,
        },
        liveness: "Open your wallet at least once during your factory's dying period (about 3 days each month) to move your funds to a new factory. If you miss it, your funds come back to you on chain after the factory's timeout.".into(),
        tree: TreeTerms { arity: 2, states_per_layer: 4, step_blocks: 144, presigned_fee_rate_sat_vb: 2 },
        esplora_url: config.advertised_esplora_url().to_string(),
        issued_at: now,
        expires_at: now + TERMS_VALIDITY_SECS,
    };
    body.sign(&Secp256k1::signing_only(), key)
}
