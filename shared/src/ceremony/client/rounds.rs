//! The client's round handlers: one consuming transition per LSP message.

use std::mem;

use super::super::error::CeremonyError;
use super::super::jobs::{generate_nonces, JobSet};
use super::super::messages::{
    AggNonces, Excluded, FinalSigs, FundingBroadcast, JoinAccepted, NodeMap, Nonces, PartialSigs,
    Propose, Reason, SigsStored,
};
use super::super::proposal::{JobSource, RebuildContext, Refusal};
use super::{
    ClientCeremony, ClientChange, ClientEvent, ClientOutcome, Membership, NoncesSent, PartialsSent,
    Phase, SignedPath,
};
use crate::musig::{verify_final, SignGuard};
use crate::types::{FactoryId, Now, SessionId};
use crate::wire::WireMsg;

impl<J: JobSource, G: SignGuard> ClientCeremony<J, G> {
    /// How long to wait for the LSP's next message when it promised one by `by`: from then
    /// (or now, if that has passed), plus the grace period.
    fn wait_from(&self, now: Now, by: u64) -> u64 {
        by.max(now.unix_time).saturating_add(self.config.grace_secs)
    }

    pub(super) fn on_join_accepted(
        &mut self,
        now: Now,
        m: JoinAccepted,
    ) -> Result<(), CeremonyError> {
        if let Phase::Joined { wait_until } = self.phase {
            return self.on_gathering_postponed(now, m, wait_until);
        }
        self.expect_joining("join_accepted")?;
        let member = Membership {
            factory: m.factory,
            client: m.client,
            lsp_key: m.lsp_key,
            quote: m.quote,
        };
        self.member = Some(member);
        let q = m.quote;
        let problem = if q.channel != self.config.channel || q.liquidity != self.config.liquidity {
            Some(format!(
                "quote is for channel {} and liquidity {}, but {} and {} were asked",
                q.channel, q.liquidity, self.config.channel, self.config.liquidity
            ))
        } else if q.fee > self.config.max_fee {
            Some(format!(
                "fee {} exceeds the accepted maximum {}",
                q.fee, self.config.max_fee
            ))
        } else {
            None
        };
        if let Some(problem) = problem {
            self.refuse(Refusal::new(problem));
            return Ok(());
        }
        self.wait_for_proposal(now, &m, 0);
        Ok(())
    }

    /// Waits for the proposal `m` promised (and at least until `at_least`), and says so.
    fn wait_for_proposal(&mut self, now: Now, m: &JoinAccepted, at_least: u64) {
        let wait_until = self.wait_from(now, m.start_by).max(at_least);
        self.phase = Phase::Joined { wait_until };
        self.emit(ClientEvent::Joined {
            factory: m.factory,
            client: m.client,
            quote: m.quote,
            start_by: m.start_by,
        });
    }

    /// A `join_accepted` again while waiting for the proposal: the LSP's ladder rung did not
    /// fill and it keeps gathering until a later one. Taken only for the same membership and
    /// quote; the wait only grows.
    fn on_gathering_postponed(
        &mut self,
        now: Now,
        m: JoinAccepted,
        wait_until: u64,
    ) -> Result<(), CeremonyError> {
        let same = self.member.is_some_and(|member| {
            (member.factory, member.client, member.lsp_key, member.quote)
                == (m.factory, m.client, m.lsp_key, m.quote)
        });
        if !same {
            return Err(CeremonyError::OutOfOrder {
                message: "join_accepted",
                state: self.phase.name(),
            });
        }
        self.wait_for_proposal(now, &m, wait_until);
        Ok(())
    }

    pub(super) fn on_propose<R: rand::RngCore + rand::CryptoRng>(
        &mut self,
        now: Now,
        m: Propose,
        rng: &mut R,
    ) -> Result<(), CeremonyError> {
        let member = self.joined_member("propose")?;
        let session = m.payload.session;
        if m.payload.factory != member.factory {
            return Err(CeremonyError::WrongFactory {
                got: m.payload.factory,
                want: member.factory,
            });
        }
        if let Some(current) = self.session {
            if session <= current {
                return Err(CeremonyError::StaleSession {
                    got: session,
                    current,
                });
            }
        }
        // A new session replaces any older one; its secret nonces are dropped (and wiped) here.
        self.session = Some(session);
        self.phase = Phase::Moving;
        let ctx = RebuildContext {
            factory: member.factory,
            session,
            client: member.client,
            pubkey: self.pubkey,
            lsp_key: member.lsp_key,
            quote: member.quote,
            now,
        };
        let jobs = match self
            .job_source
            .rebuild_with_keys(&ctx, &m.payload)
            .and_then(|(jobs, known)| JobSet::for_signer(jobs, known, &self.pubkey))
        {
            Ok(jobs) => jobs,
            Err(refusal) => {
                self.refuse(refusal);
                return Ok(());
            }
        };
        let nodes = jobs.nodes().copied().collect();
        let (nonces, publics) = generate_nonces(
            rng,
            &self.config.secret_key,
            &jobs,
            &nodes,
            member.factory,
            session,
        );
        let count = publics.len();
        let nonces_msg = match NodeMap::new(publics) {
            Ok(map) => Nonces {
                factory: member.factory,
                session,
                nonces: map,
            },
            Err(e) => {
                self.refuse(Refusal::new(e.to_string()));
                return Ok(());
            }
        };
        let wait_until = self.wait_from(now, m.respond_by);
        self.phase = Phase::NoncesSent(Box::new(NoncesSent {
            session,
            payload: m.payload,
            jobs,
            nonces,
            wait_until,
        }));
        self.send(WireMsg::Nonces(nonces_msg));
        self.emit(ClientEvent::SessionStarted {
            session,
            nodes: count,
        });
        Ok(())
    }

    pub(super) fn on_agg_nonces(&mut self, now: Now, m: AggNonces) -> Result<(), CeremonyError> {
        self.check_current(m.factory, m.session)?;
        let state = match mem::replace(&mut self.phase, Phase::Moving) {
            Phase::NoncesSent(s) => s,
            other => return Err(self.restore(other, "agg_nonces")),
        };
        let NoncesSent {
            session,
            payload,
            jobs,
            nonces,
            ..
        } = *state;
        if !m.agg_nonces.covers_exactly(nonces.nodes()) {
            self.refuse(Refusal::new(
                "the LSP sent aggregated nonces for other nodes than ours",
            ));
            return Ok(());
        }
        // Consuming transition: the secret nonces are gone after this line, whatever happens.
        let signed = match nonces.sign(
            &self.config.secret_key,
            &jobs,
            m.agg_nonces.as_map(),
            &mut self.guard,
        ) {
            Ok(signed) => signed,
            Err(refusal) => {
                self.refuse(refusal);
                return Ok(());
            }
        };
        let partials = match NodeMap::new(signed.partials) {
            Ok(map) => map,
            Err(e) => {
                self.refuse(Refusal::new(e.to_string()));
                return Ok(());
            }
        };
        let wait_until = self.wait_from(now, m.respond_by);
        self.phase = Phase::PartialsSent(Box::new(PartialsSent {
            session,
            payload,
            jobs,
            wait_until,
        }));
        self.persist(ClientChange::SignRecords(signed.records));
        self.send(WireMsg::PartialSigs(PartialSigs {
            factory: m.factory,
            session,
            partials,
        }));
        Ok(())
    }

    pub(super) fn on_final_sigs(&mut self, now: Now, m: FinalSigs) -> Result<(), CeremonyError> {
        let member = self.check_current(m.factory, m.session)?;
        let state = match mem::replace(&mut self.phase, Phase::Moving) {
            Phase::PartialsSent(s) => s,
            other => return Err(self.restore(other, "final_sigs")),
        };
        let PartialsSent {
            session,
            payload,
            jobs,
            ..
        } = *state;
        if !m.signatures.covers_exactly(jobs.nodes()) {
            self.refuse(Refusal::new(
                "the LSP sent final signatures for other nodes than ours",
            ));
            return Ok(());
        }
        for (node, sig) in m.signatures.as_map() {
            let Some(p) = jobs.get(node) else { continue };
            if let Err(e) = verify_final(&p.keys, sig, &p.job.sighash) {
                self.refuse(Refusal::new(format!("final signature of node {node}: {e}")));
                return Ok(());
            }
        }
        let path = SignedPath {
            factory: m.factory,
            session,
            client: member.client,
            payload,
            jobs: jobs.jobs().cloned().collect(),
            signatures: m.signatures.into_map(),
        };
        let wait_until = self.wait_from(now, m.respond_by);
        self.phase = Phase::Stored {
            session,
            wait_until,
        };
        self.persist(ClientChange::PathSigned(Box::new(path)));
        self.send(WireMsg::SigsStored(SigsStored {
            factory: m.factory,
            session,
        }));
        self.emit(ClientEvent::FactorySigned {
            factory: m.factory,
            session,
        });
        Ok(())
    }

    pub(super) fn on_funding_broadcast(
        &mut self,
        m: FundingBroadcast,
    ) -> Result<(), CeremonyError> {
        self.check_current(m.factory, m.session)?;
        if !matches!(self.phase, Phase::Stored { .. }) {
            return Err(CeremonyError::OutOfOrder {
                message: "funding_broadcast",
                state: self.phase.name(),
            });
        }
        self.phase = Phase::AwaitingConfirmation { txid: m.txid };
        self.emit(ClientEvent::FundingBroadcast {
            factory: m.factory,
            txid: m.txid,
        });
        Ok(())
    }

    pub(super) fn on_excluded(&mut self, m: Excluded) -> Result<(), CeremonyError> {
        let member = self.joined_member("excluded")?;
        if m.factory != member.factory {
            return Err(CeremonyError::WrongFactory {
                got: m.factory,
                want: member.factory,
            });
        }
        if let Some(current) = self.session {
            if m.session < current {
                return Err(CeremonyError::StaleSession {
                    got: m.session,
                    current,
                });
            }
        }
        self.end(ClientOutcome::Excluded { reason: m.reason });
        Ok(())
    }

    pub(super) fn on_aborted(
        &mut self,
        factory: FactoryId,
        session: Option<SessionId>,
        reason: Reason,
    ) -> Result<(), CeremonyError> {
        let member = self.joined_member("aborted")?;
        if factory != member.factory {
            return Err(CeremonyError::WrongFactory {
                got: factory,
                want: member.factory,
            });
        }
        if let (Some(got), Some(current)) = (session, self.session) {
            if got < current {
                return Err(CeremonyError::StaleSession { got, current });
            }
        }
        self.end(ClientOutcome::Aborted { reason });
        Ok(())
    }
}
