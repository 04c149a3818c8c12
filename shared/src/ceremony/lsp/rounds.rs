//! The LSP's round handlers: collect, verify, aggregate, and move to the next round.

use std::mem;

use super::super::error::CeremonyError;
use super::super::messages::{
    AggNonces, ExclusionReason, FinalSigs, FundingBroadcast, NodeMap, Nonces, PartialSigs, Refuse,
    Round, SigsStored,
};
use super::super::proposal::Proposer;
use super::super::Action;
use super::session::{AckRound, Core};
use super::{LspCeremony, LspChange, LspEvent, Phase, SignedFactory};
use crate::musig::SignGuard;
use crate::types::{ClientId, Now};
use crate::wire::WireMsg;

impl<P: Proposer, G: SignGuard> LspCeremony<P, G> {
    pub(super) fn on_nonces<R: rand::RngCore + rand::CryptoRng>(
        &mut self,
        now: Now,
        from: ClientId,
        m: Nonces,
        rng: &mut R,
    ) -> Result<(), CeremonyError> {
        let Phase::Nonces(core, round) = &mut self.phase else {
            return Err(CeremonyError::OutOfOrder {
                message: "nonces",
                state: self.phase.name(),
            });
        };
        if round.got.contains_key(&from) {
            return Err(CeremonyError::OutOfOrder {
                message: "nonces",
                state: "already received",
            });
        }
        let expected = core.nodes_of.get(&from).into_iter().flatten();
        if !m.nonces.covers_exactly(expected) {
            let reason = ExclusionReason::WrongNodes {
                round: Round::Nonces,
            };
            self.exclude_and_restart(now, rng, vec![(from, reason)]);
            return Ok(());
        }
        round.got.insert(from, m.nonces.into_map());
        if round.got.len() == self.members.len() {
            self.finish_nonces(now);
        }
        Ok(())
    }

    pub(super) fn finish_nonces(&mut self, now: Now) {
        let (core, round) = match mem::replace(&mut self.phase, Phase::Moving) {
            Phase::Nonces(core, round) => (core, round),
            other => {
                self.phase = other;
                return;
            }
        };
        // Consuming transition: the LSP's secret nonces are gone after this call.
        let (next, records) = match round.finish(&core, &self.config.secret_key, &mut self.guard) {
            Ok(done) => done,
            Err(refusal) => return self.fail(refusal.0),
        };
        self.persist(LspChange::SignRecords(records));
        let respond_by = now
            .unix_time
            .saturating_add(self.config.timeouts.partials_secs);
        for (client, nodes) in &core.nodes_of {
            let map = nodes
                .iter()
                .filter_map(|n| next.aggs.get(n).map(|a| (*n, a.clone())));
            let Ok(agg_nonces) = NodeMap::new(map.collect()) else {
                continue;
            };
            let msg = AggNonces {
                factory: self.config.factory,
                session: core.session,
                agg_nonces,
                respond_by,
            };
            self.send(*client, WireMsg::AggNonces(msg));
        }
        let mut core = core;
        core.deadline = respond_by;
        self.phase = Phase::Partials(core, next);
    }

    pub(super) fn on_partials<R: rand::RngCore + rand::CryptoRng>(
        &mut self,
        now: Now,
        from: ClientId,
        m: PartialSigs,
        rng: &mut R,
    ) -> Result<(), CeremonyError> {
        let Phase::Partials(core, round) = &mut self.phase else {
            return Err(CeremonyError::OutOfOrder {
                message: "partial_sigs",
                state: self.phase.name(),
            });
        };
        if round.got.contains_key(&from) {
            return Err(CeremonyError::OutOfOrder {
                message: "partial_sigs",
                state: "already received",
            });
        }
        let expected = core.nodes_of.get(&from).into_iter().flatten();
        let verdict = match self.members.get(&from) {
            _ if !m.partials.covers_exactly(expected) => Err(ExclusionReason::WrongNodes {
                round: Round::PartialSigs,
            }),
            Some(member) => round.verify(core, from, &member.pubkey, m.partials.as_map()),
            None => return Err(CeremonyError::NotAMember { client: from }),
        };
        if let Err(reason) = verdict {
            self.exclude_and_restart(now, rng, vec![(from, reason)]);
            return Ok(());
        }
        round.got.insert(from, m.partials.into_map());
        if round.got.len() == self.members.len() {
            self.finish_partials(now);
        }
        Ok(())
    }

    pub(super) fn finish_partials(&mut self, now: Now) {
        let (mut core, round) = match mem::replace(&mut self.phase, Phase::Moving) {
            Phase::Partials(core, round) => (core, round),
            other => {
                self.phase = other;
                return;
            }
        };
        let next = match round.finish(&core) {
            Ok(next) => next,
            Err(refusal) => return self.fail(refusal.0),
        };
        let respond_by = now.unix_time.saturating_add(self.config.timeouts.ack_secs);
        for (client, nodes) in &core.nodes_of {
            let map = nodes
                .iter()
                .filter_map(|n| next.signatures.get(n).map(|s| (*n, *s)));
            let Ok(signatures) = NodeMap::new(map.collect()) else {
                continue;
            };
            let msg = FinalSigs {
                factory: self.config.factory,
                session: core.session,
                signatures,
                respond_by,
            };
            self.send(*client, WireMsg::FinalSigs(msg));
        }
        core.deadline = respond_by;
        self.phase = Phase::Acks(core, next);
    }

    pub(super) fn on_ack(&mut self, from: ClientId, _m: SigsStored) -> Result<(), CeremonyError> {
        let Phase::Acks(_, round) = &mut self.phase else {
            return Err(CeremonyError::OutOfOrder {
                message: "sigs_stored",
                state: self.phase.name(),
            });
        };
        if !round.acked.insert(from) {
            return Err(CeremonyError::OutOfOrder {
                message: "sigs_stored",
                state: "already received",
            });
        }
        if round.acked.len() == self.members.len() {
            self.finish_acks();
        }
        Ok(())
    }

    pub(super) fn finish_acks(&mut self) {
        let (core, round): (Box<Core>, AckRound) =
            match mem::replace(&mut self.phase, Phase::Moving) {
                Phase::Acks(core, round) => (core, round),
                other => {
                    self.phase = other;
                    return;
                }
            };
        let core = *core;
        let txid = core.funding_tx.compute_txid();
        let signed = SignedFactory {
            factory: self.config.factory,
            session: core.session,
            payload: core.payload,
            members: self.members.clone(),
            jobs: core.jobs.jobs().cloned().collect(),
            signatures: round.signatures,
            funding_txid: txid,
        };
        self.persist(LspChange::FactorySigned(Box::new(signed)));
        self.actions.push_back(Action::Broadcast(core.funding_tx));
        let clients: Vec<ClientId> = self.members.keys().copied().collect();
        for client in clients {
            let msg = FundingBroadcast {
                factory: self.config.factory,
                session: core.session,
                txid,
            };
            self.send(client, WireMsg::FundingBroadcast(msg));
        }
        self.emit(LspEvent::FundingBroadcast {
            session: core.session,
            txid,
        });
        self.phase = Phase::AwaitingConfirmation {
            session: core.session,
            txid,
        };
    }

    pub(super) fn on_refuse<R: rand::RngCore + rand::CryptoRng>(
        &mut self,
        now: Now,
        from: ClientId,
        m: Refuse,
        rng: &mut R,
    ) -> Result<(), CeremonyError> {
        if m.factory != self.config.factory {
            return Err(CeremonyError::WrongFactory {
                got: m.factory,
                want: self.config.factory,
            });
        }
        match self.phase {
            Phase::Gathering => {
                self.members.remove(&from);
                self.emit(LspEvent::MemberLeft { client: from });
                Ok(())
            }
            Phase::Nonces(..) | Phase::Partials(..) | Phase::Acks(..) => {
                if let Some(session) = m.session {
                    self.check_session(m.factory, session)?;
                }
                let reason = ExclusionReason::Refused { reason: m.reason };
                self.exclude_and_restart(now, rng, vec![(from, reason)]);
                Ok(())
            }
            _ => Err(CeremonyError::OutOfOrder {
                message: "refuse",
                state: self.phase.name(),
            }),
        }
    }
}
