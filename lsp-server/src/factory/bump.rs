//! Stalled funding: when a broadcast funding transaction stays unconfirmed for
//! `--funding-bump-blocks` blocks, the coordinator raises its fee with a child (CPFP, see
//! `crate::wallet::LspWallet::cpfp`), and again after each further such stretch, each time to
//! at least 1.5 times the package rate before and never below the current estimate.

use std::sync::PoisonError;

use bitcoin::{FeeRate, Txid};
use shared::types::FactoryId;

use super::coordinator::Coordinator;

/// Blocks' worth of fee estimate the bump aims at: the next couple of blocks.
const BUMP_TARGET_BLOCKS: u16 = 2;

/// Where a factory's fee bumping stands.
#[derive(Debug, Clone, Copy)]
pub(super) struct Stall {
    /// Height from which the current stretch without a confirmation counts.
    since: u32,
    /// The package rate paid now (the parent's own, until the first child).
    rate: Option<FeeRate>,
    /// The current child.
    child: Option<Txid>,
}

impl Stall {
    /// A funding transaction broadcast at `height`.
    pub(super) fn from(height: u32) -> Stall {
        Stall {
            since: height,
            rate: None,
            child: None,
        }
    }
}

impl Coordinator {
    /// Called for each watched funding transaction still unconfirmed at `height`.
    pub(super) async fn bump_if_stalled(&mut self, factory: FactoryId) {
        let after = self.settings.bump_after_blocks;
        let height = self.height();
        let Some(slot) = self.slots.get_mut(&factory) else {
            return;
        };
        // Restored factories count from the first look after the restart.
        let stall = slot.stall.get_or_insert(Stall::from(height));
        if after == 0 || height < stall.since.saturating_add(after) {
            return;
        }
        let stall = *stall;
        let Some(parent) = self
            .watch
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&factory)
            .map(|w| w.tx.clone())
        else {
            return;
        };
        let estimate = match self.wallet.fee_rate_estimate(BUMP_TARGET_BLOCKS).await {
            Ok(rate) => rate,
            Err(e) => {
                tracing::warn!(%factory, error = %e, "no fee estimate; bumping from the current rate");
                FeeRate::BROADCAST_MIN
            }
        };
        let current = stall.rate.unwrap_or_else(|| {
            self.wallet
                .fee_rate_of(&parent)
                .unwrap_or(FeeRate::BROADCAST_MIN)
        });
        let raised = FeeRate::from_sat_per_kwu(current.to_sat_per_kwu().saturating_mul(3) / 2 + 1);
        let target = raised.max(estimate);
        let next = Stall {
            since: height,
            ..stall
        };
        let bumped = self.wallet.cpfp(&parent, stall.child, target);
        let Some(slot) = self.slots.get_mut(&factory) else {
            return;
        };
        match bumped {
            Ok(bump) => {
                let child_txid = bump.child.compute_txid();
                tracing::info!(
                    %factory, parent = %parent.compute_txid(), child = %child_txid,
                    package_sat_per_vb = bump.package_rate.to_sat_per_vb_ceil(),
                    "funding stalled; bumped its fee with a child"
                );
                slot.stall = Some(Stall {
                    rate: Some(bump.package_rate),
                    child: Some(child_txid),
                    ..next
                });
                if let Err(e) = self.wallet.broadcast(&bump.child).await {
                    tracing::warn!(%factory, error = %e, "fee-bump broadcast failed; the chain watcher retries");
                }
                if let Some(w) = self
                    .watch
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get_mut(&factory)
                {
                    w.child = Some(bump.child);
                }
            }
            Err(e) => {
                tracing::warn!(%factory, error = %e, "funding stalled and cannot be bumped");
                slot.stall = Some(next);
            }
        }
    }
}
