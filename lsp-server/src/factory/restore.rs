//! Start-up: what the coordinator does with the factories the store says were unfinished.
//!
//! A factory that was gathering or signing is aborted (its ceremony state, with its secret
//! nonces, died with the process; its funding transaction was never broadcast and is dropped
//! from the wallet); its members will get `aborted` when they come back. A factory that was
//! signed or broadcast is watched again, and its members get `funding_broadcast`.

use std::collections::BTreeSet;
use std::sync::PoisonError;

use shared::ceremony::{Aborted, FundingBroadcast, Reason};
use shared::wire::WireMsg;

use super::chain::Watched;
use super::coordinator::{encode, Coordinator, Phase, Slot};
use super::persist::{FactoryState, StoreError};
use super::unix_now;

impl Coordinator {
    pub(super) fn restore(&mut self) -> Result<(), StoreError> {
        let now = unix_now();
        for f in self.store.load_unfinished()? {
            let (phase, frame) = match f.state {
                FactoryState::Signed | FactoryState::Broadcast => {
                    let (Some(tx), Some(session)) = (&f.funding_tx, f.session) else {
                        continue;
                    };
                    let txid = tx.compute_txid();
                    tracing::info!(factory = %f.id, %txid, "resuming confirmation tracking");
                    self.watch
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(
                            f.id,
                            Watched {
                                txid,
                                tx: tx.clone(),
                                child: None,
                            },
                        );
                    let msg = WireMsg::FundingBroadcast(FundingBroadcast {
                        factory: f.id,
                        session,
                        txid,
                    });
                    (Phase::Broadcast, encode(msg))
                }
                _ => {
                    let reason = "the LSP restarted during the ceremony; nothing was broadcast";
                    tracing::warn!(factory = %f.id, "aborting a ceremony interrupted by a restart");
                    self.store
                        .set_state(f.id, FactoryState::Aborted, Some(reason), now)?;
                    if let Some(tx) = &f.funding_tx {
                        if let Err(e) = self.wallet.abandon(tx.compute_txid()) {
                            tracing::warn!(factory = %f.id, error = %e, "cannot abandon funding");
                        }
                    }
                    let msg = WireMsg::Aborted(Aborted {
                        factory: f.id,
                        session: f.session,
                        reason: Reason::new(reason),
                    });
                    (Phase::Done, encode(msg))
                }
            };
            for (client, identity) in &f.members {
                let peer = self.peers.entry(*identity).or_default();
                peer.membership = Some((f.id, *client));
                peer.last_frame = Some(frame.clone());
            }
            self.slots.insert(
                f.id,
                Slot {
                    ceremony: None,
                    funding: None,
                    identities: f.members.into_iter().collect(),
                    excluded: BTreeSet::new(),
                    phase,
                    full: true,
                    session: f.session,
                    members_stored: true,
                    stall: None,
                    ended_at: (phase == Phase::Done).then_some(now),
                    round: None,
                },
            );
        }
        Ok(())
    }

    /// Broadcasts every watched funding transaction once (after a restart), so the wallet's
    /// first sync sees them in the mempool instead of freeing their coins.
    pub(crate) async fn resume_broadcasts(&self) {
        let watched: Vec<Watched> = self
            .watch
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        for w in watched {
            if let Err(e) = self.wallet.broadcast(&w.tx).await {
                tracing::debug!(txid = %w.txid, error = %e, "funding rebroadcast at start-up");
            }
        }
    }
}
