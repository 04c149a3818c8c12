//! Performing what the ceremonies ask (in order, each `Persist` committed before the next
//! action), reacting to their events, and the coordinator's timers and chain updates.

use std::sync::PoisonError;

use bitcoin::FeeRate;
use shared::ceremony::{Action, LspAction, LspChange, LspEvent, LspStatus, Reason, Round};
use shared::types::{ClientId, FactoryId, SessionId};
use shared::wire::WireMsg;

use super::chain::{ChainUpdate, Watched};
use super::coordinator::{Coordinator, Phase};
use super::persist::{FactoryState, MemberRow, StoreError};
use super::unix_now;
use crate::config::Underfilled;

/// Confirmation target for the funding transaction's fee rate.
const FUNDING_TARGET_BLOCKS: u16 = 6;

impl Coordinator {
    /// Performs every pending action of `factory`'s ceremony, in order.
    pub(super) async fn drain(&mut self, factory: FactoryId) {
        let (actions, round): (Vec<LspAction>, _) = match self
            .slots
            .get_mut(&factory)
            .and_then(|s| s.ceremony.as_mut())
        {
            Some(c) => (
                std::iter::from_fn(|| c.poll_action()).collect(),
                round_of(c),
            ),
            None => return,
        };
        if round.is_some() && round != self.slots.get(&factory).and_then(|s| s.round) {
            if let Some((session, round)) = round {
                tracing::debug!(%factory, %session, ?round, "signing round opened");
            }
            if let Some(slot) = self.slots.get_mut(&factory) {
                slot.round = round;
            }
        }
        for action in actions {
            match action {
                Action::Send(client, msg) => self.send_member(factory, client, msg),
                Action::Persist(change) => {
                    let what = match &change {
                        LspChange::SignRecords(_) => "double-sign records",
                        LspChange::FactorySigned(_) => "complete signature set",
                    };
                    if let Err(e) = self.persist(factory, change) {
                        // Nothing after an unstored change may happen: give the factory up.
                        tracing::error!(%factory, error = %e, "cannot persist; aborting the factory");
                        self.abort(factory, &format!("the LSP could not store its state: {e}"));
                        return;
                    }
                    tracing::debug!(%factory, what, "stored");
                }
                Action::Emit(event) => self.on_event(factory, event),
                Action::Broadcast(tx) => {
                    let txid = tx.compute_txid();
                    match self.wallet.broadcast(&tx).await {
                        Ok(_) => {
                            let now = unix_now();
                            if let Err(e) =
                                self.store
                                    .set_state(factory, FactoryState::Broadcast, None, now)
                            {
                                tracing::error!(%factory, error = %e, "cannot record the broadcast");
                            }
                        }
                        Err(e) => {
                            tracing::warn!(%factory, %txid, error = %e, "funding broadcast failed; the chain watcher retries")
                        }
                    }
                    self.watch
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(
                            factory,
                            Watched {
                                txid,
                                tx,
                                child: None,
                            },
                        );
                    // The stall counts from the tip at the broadcast, read now: the last
                    // height the chain watcher saw may lag it by a pass, and would start the
                    // first bump a block early.
                    let tip = self.wallet.tip_height().await.unwrap_or(0);
                    let height = self.height().max(tip);
                    if let Some(slot) = self.slots.get_mut(&factory) {
                        slot.phase = Phase::Broadcast;
                        slot.stall = Some(super::bump::Stall::from(height));
                    }
                }
            }
        }
    }

    fn persist(&mut self, factory: FactoryId, change: LspChange) -> Result<(), StoreError> {
        match change {
            LspChange::SignRecords(records) => self.store.save_guard_records(factory, &records),
            LspChange::FactorySigned(signed) => self.store.factory_signed(&signed, unix_now()),
        }
    }

    fn on_event(&mut self, factory: FactoryId, event: LspEvent) {
        let now = unix_now();
        match event {
            LspEvent::MemberJoined { .. } => {}
            LspEvent::MemberLeft { client } => {
                tracing::info!(%factory, %client, "member left before the start");
                self.forget_member(factory, client);
                if let Some(slot) = self.slots.get_mut(&factory) {
                    slot.full = false;
                }
                self.publish_open_slots();
            }
            LspEvent::GatheringFull => {
                if let Some(slot) = self.slots.get_mut(&factory) {
                    slot.full = true;
                }
                // The next join opens the next factory.
                if self.gathering == Some(factory) {
                    self.gathering = None;
                }
                self.publish_open_slots();
            }
            LspEvent::SessionStarted { session, members } => {
                tracing::info!(%factory, %session, members, "signing session started");
                if let Err(e) = self.session_started(factory, session) {
                    tracing::error!(%factory, error = %e, "cannot persist the session");
                    self.abort(factory, &format!("the LSP could not store its state: {e}"));
                }
            }
            LspEvent::Excluded {
                client,
                session,
                reason,
            } => {
                tracing::info!(%factory, %client, %session, %reason, "member excluded");
                if let Err(e) = self
                    .store
                    .client_excluded(factory, client, &reason.to_string())
                {
                    tracing::error!(%factory, error = %e, "cannot record an exclusion");
                }
                if let Some(slot) = self.slots.get_mut(&factory) {
                    slot.excluded.insert(client);
                }
                if let Some(identity) = self.identity_of(factory, client) {
                    if let Some(peer) = self.peers.get_mut(&identity) {
                        peer.away_since = None;
                    }
                }
            }
            LspEvent::FundingBroadcast { session, txid } => {
                tracing::info!(%factory, %session, %txid, "every member stored its path; funding broadcast")
            }
            LspEvent::FactoryFunded { txid, height } => {
                tracing::info!(%factory, %txid, %height, "factory funded");
                self.finish(factory, FactoryState::Funded, None, now);
            }
            LspEvent::Failed { reason } => {
                tracing::warn!(%factory, %reason, "factory failed; nothing was broadcast");
                self.abandon_funding(factory);
                self.finish(factory, FactoryState::Failed, Some(reason.as_str()), now);
            }
        }
    }

    fn session_started(
        &mut self,
        factory: FactoryId,
        session: shared::types::SessionId,
    ) -> Result<(), StoreError> {
        let Some(slot) = self.slots.get_mut(&factory) else {
            return Ok(());
        };
        slot.session = Some(session);
        if slot.phase == Phase::Gathering {
            slot.phase = Phase::Signing;
            if self.gathering == Some(factory) {
                self.gathering = None;
            }
        }
        let last = slot.funding.as_ref().and_then(|f| {
            f.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .last
                .clone()
        });
        let members: Vec<MemberRow> = if slot.members_stored {
            Vec::new()
        } else {
            let ceremony_members = slot.ceremony.as_ref().map(|c| c.members());
            ceremony_members
                .into_iter()
                .flatten()
                .filter_map(|(client, member)| {
                    Some(MemberRow {
                        client: *client,
                        identity: *slot.identities.get(client)?,
                        member: member.clone(),
                    })
                })
                .collect()
        };
        slot.members_stored = true;
        let proposal = last.as_ref().map(|(p, tx)| (p, tx));
        self.store
            .session_started(factory, session, proposal, &members, unix_now())?;
        self.publish_open_slots();
        Ok(())
    }

    /// Gives a factory up on the LSP's own failure: tells every member, forgets the ceremony.
    fn abort(&mut self, factory: FactoryId, reason: &str) {
        let Some(slot) = self.slots.get_mut(&factory) else {
            return;
        };
        let session = slot.session;
        let members: Vec<ClientId> = slot
            .ceremony
            .as_ref()
            .map(|c| c.members().keys().copied().collect())
            .unwrap_or_default();
        for client in members {
            let msg = WireMsg::Aborted(shared::ceremony::Aborted {
                factory,
                session,
                reason: Reason::new(reason),
            });
            self.send_member(factory, client, msg);
        }
        self.abandon_funding(factory);
        self.finish(factory, FactoryState::Failed, Some(reason), unix_now());
    }

    fn abandon_funding(&mut self, factory: FactoryId) {
        let previous = self
            .slots
            .get(&factory)
            .and_then(|s| s.funding.as_ref())
            .and_then(|f| {
                f.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .previous
                    .clone()
            });
        if let Some(tx) = previous {
            if let Err(e) = self.wallet.abandon(tx.compute_txid()) {
                tracing::warn!(%factory, error = %e, "cannot abandon the funding transaction");
            }
        }
    }

    /// Ends a factory: stores its final state and drops its ceremony (members keep their
    /// last frame for a resume).
    fn finish(&mut self, factory: FactoryId, state: FactoryState, reason: Option<&str>, now: u64) {
        if let Err(e) = self.store.set_state(factory, state, reason, now) {
            tracing::error!(%factory, error = %e, "cannot record the factory's end");
        }
        self.watch
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&factory);
        if let Some(slot) = self.slots.get_mut(&factory) {
            slot.phase = Phase::Done;
            slot.ended_at = Some(now);
            // Its secret state is gone already; what members need for a resume is in `peers`.
            slot.ceremony = None;
        }
        if self.gathering == Some(factory) {
            self.gathering = None;
        }
        let identities: Vec<_> = self
            .slots
            .get(&factory)
            .map(|s| s.identities.values().copied().collect())
            .unwrap_or_default();
        // Members keep their membership and last message (`funding_broadcast`, or how the
        // factory failed) until the factory is pruned: one that was away learns the outcome
        // when it comes back.
        for identity in identities {
            if let Some(peer) = self.peers.get_mut(&identity) {
                peer.away_since = None;
            }
        }
        self.publish_open_slots();
    }

    fn identity_of(
        &self,
        factory: FactoryId,
        client: ClientId,
    ) -> Option<bitcoin::secp256k1::XOnlyPublicKey> {
        self.slots.get(&factory)?.identities.get(&client).copied()
    }

    fn forget_member(&mut self, factory: FactoryId, client: ClientId) {
        let Some(identity) = self
            .slots
            .get_mut(&factory)
            .and_then(|s| s.identities.remove(&client))
        else {
            return;
        };
        if let Some(peer) = self.peers.get_mut(&identity) {
            if peer.membership == Some((factory, client)) {
                peer.membership = None;
                peer.away_since = None;
                peer.last_frame = None;
            }
        }
    }

    /// Fires what is due: absent members, round deadlines, factory starts.
    pub(super) async fn on_timers(&mut self) {
        let now = unix_now();
        self.prune(now);
        for (factory, client, identity) in self.overdue_members(now) {
            if let Some(peer) = self.peers.get_mut(&identity) {
                peer.away_since = None;
            }
            let refuse = self.absence(factory);
            let t = self.now();
            let Some(slot) = self.slots.get_mut(&factory) else {
                continue;
            };
            if !slot.is_active_member(client) {
                continue;
            }
            let Some(ceremony) = slot.ceremony.as_mut() else {
                continue;
            };
            tracing::info!(%factory, %client, "member did not come back in time");
            let _ = ceremony.handle_message(t, client, refuse, &mut self.rng);
            self.drain(factory).await;
        }
        let signing: Vec<FactoryId> = self
            .slots
            .iter()
            .filter(|(_, s)| s.phase == Phase::Signing)
            .map(|(f, _)| *f)
            .collect();
        for factory in &signing {
            let t = self.now();
            if let Some(c) = self
                .slots
                .get_mut(factory)
                .and_then(|s| s.ceremony.as_mut())
            {
                if c.poll_timeout().is_some_and(|d| d.has_passed(&t)) {
                    c.handle_timeout(t, &mut self.rng);
                    self.drain(*factory).await;
                }
            }
        }
        // Factories still gathering, oldest first: a full one waits only for the one signing.
        let mut busy = self.slots.values().any(|s| s.phase == Phase::Signing);
        let gathering: Vec<FactoryId> = self
            .slots
            .iter()
            .filter(|(_, s)| s.phase == Phase::Gathering)
            .map(|(f, _)| *f)
            .collect();
        for factory in gathering {
            let Some(slot) = self.slots.get(&factory) else {
                continue;
            };
            let members = slot.ceremony.as_ref().map_or(0, |c| c.members().len());
            // The end of gathering: its time, or the ladder's block for a rung.
            let t = self.now();
            let due = slot
                .ceremony
                .as_ref()
                .and_then(|c| c.poll_timeout())
                .is_some_and(|d| d.has_passed(&t));
            let enough = members >= self.settings.min_clients;
            if !busy && members > 0 && (slot.full || (due && enough)) {
                busy = true;
                self.start(factory).await;
            } else if due && !enough && members > 0 && self.postpone(factory, now) {
                // A rung too few joined: it waits for the next one, and so do they.
                self.drain(factory).await;
            } else if due && !enough {
                // Too few clients: the ceremony gives up and tells them.
                if let Some(c) = self
                    .slots
                    .get_mut(&factory)
                    .and_then(|s| s.ceremony.as_mut())
                {
                    c.handle_timeout(t, &mut self.rng);
                    self.drain(factory).await;
                }
            }
        }
    }

    /// Keeps a ladder rung that did not fill gathering until the next rung, when the operator
    /// chose to wait (`--underfilled-rung wait`); its members are told the new wait. False when
    /// it is to be called off instead.
    fn postpone(&mut self, factory: FactoryId, now: u64) -> bool {
        let (Some(ladder), Underfilled::Wait) = (self.settings.ladder, self.settings.underfilled)
        else {
            return false;
        };
        let rung = ladder.next_rung(self.height());
        let until = self.rung_wait(now, rung);
        let Some(slot) = self.slots.get_mut(&factory) else {
            return false;
        };
        let Some(ceremony) = slot.ceremony.as_mut() else {
            return false;
        };
        if ceremony.postpone(rung, until).is_err() {
            return false;
        }
        let members = ceremony.members().len();
        tracing::info!(%factory, members, %rung, "the rung did not fill; it gathers until the next");
        true
    }

    /// Syncs the wallet, picks the funding fee rate, and sends the first proposal.
    async fn start(&mut self, factory: FactoryId) {
        if let Err(e) = self.wallet.sync().await {
            tracing::warn!(%factory, error = %e, "wallet sync before funding failed; using the last known coins");
        }
        let fee_rate = self
            .wallet
            .fee_rate_estimate(FUNDING_TARGET_BLOCKS)
            .await
            .unwrap_or(FeeRate::BROADCAST_MIN);
        let now = self.now();
        let Some(slot) = self.slots.get_mut(&factory) else {
            return;
        };
        if let Some(f) = &slot.funding {
            f.lock().unwrap_or_else(PoisonError::into_inner).fee_rate = Some(fee_rate);
        }
        let Some(ceremony) = slot.ceremony.as_mut() else {
            return;
        };
        tracing::info!(%factory, members = ceremony.members().len(), "starting the ceremony");
        if let Err(e) = ceremony.start(now, &mut self.rng) {
            tracing::warn!(%factory, error = %e, "cannot start");
        }
        if matches!(ceremony.status(), LspStatus::Signing { .. }) {
            slot.phase = Phase::Signing;
        }
        if self.gathering == Some(factory) {
            self.gathering = None;
        }
        self.drain(factory).await;
    }

    /// Records the tip and acts on funding confirmations.
    pub(super) async fn on_chain(&mut self, update: ChainUpdate) {
        if let Some(h) = update.height {
            self.set_height(h);
        }
        let want = self.settings.confirmations;
        for (factory, txid, confirmations) in update.confirmations {
            if confirmations == 0 {
                self.bump_if_stalled(factory).await;
            }
            if confirmations < want {
                continue;
            }
            let now = self.now();
            let has_ceremony = self
                .slots
                .get(&factory)
                .is_some_and(|s| s.ceremony.is_some());
            if has_ceremony {
                if let Some(c) = self
                    .slots
                    .get_mut(&factory)
                    .and_then(|s| s.ceremony.as_mut())
                {
                    if let Err(e) = c.handle_funding_confirmed(now, txid) {
                        tracing::warn!(%factory, error = %e, "funding confirmation refused");
                    }
                }
                self.drain(factory).await;
            } else {
                tracing::info!(%factory, %txid, "restored factory funded");
                self.finish(factory, FactoryState::Funded, None, now.unix_time);
            }
        }
    }
}

/// The signing round a ceremony is in, if any.
fn round_of(ceremony: &super::coordinator::Ceremony) -> Option<(SessionId, Round)> {
    match ceremony.status() {
        LspStatus::Signing { session, round, .. } => Some((session, round)),
        _ => None,
    }
}
