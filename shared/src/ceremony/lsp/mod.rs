//! The LSP's side of the creation ceremony: gathers members, coordinates the MuSig2 rounds,
//! blames and excludes, restarts, and finally broadcasts the funding transaction.
//!
//! Guarantees: the LSP never sees a client's secret nonce (it sums public nonces); each client
//! receives only the aggregated nonces and final signatures of its own nodes; every partial
//! signature is verified on arrival, and a bad one excludes exactly its sender; the funding
//! transaction is broadcast only after the whole signature set is persisted and every member
//! confirmed it stored its path.

mod rounds;
mod session;
mod types;

pub use types::{
    LspAction, LspChange, LspConfig, LspEvent, LspStatus, RoundTimeouts, SignedFactory,
};

use std::collections::{BTreeMap, VecDeque};

use bitcoin::absolute::Height;
use bitcoin::secp256k1::PublicKey;
use bitcoin::Txid;

use self::session::{AckRound, Core, NonceRound, PartialRound};
use super::error::{CeremonyError, JoinError};
use super::jobs::generate_nonces;
use super::messages::{
    Aborted, Excluded, ExclusionReason, JoinAccepted, JoinRequest, Propose, Quote, Reason, Round,
};
use super::proposal::{Member, ProposalPayload, ProposalRequest, Proposer, Refusal};
use super::{Action, Deadline};
use crate::musig::{public_key, SignGuard};
use crate::types::{ClientId, FactoryId, Now, SessionId};
use crate::wire::WireMsg;

#[derive(Debug)]
enum Phase {
    Gathering,
    Nonces(Box<Core>, NonceRound),
    Partials(Box<Core>, PartialRound),
    Acks(Box<Core>, AckRound),
    AwaitingConfirmation {
        session: SessionId,
        txid: Txid,
    },
    Funded {
        txid: Txid,
    },
    Failed {
        reason: Reason,
    },
    /// Exists only inside a transition that moved the previous phase out; never observable.
    Moving,
}

impl Phase {
    fn name(&self) -> &'static str {
        match self {
            Phase::Gathering => "gathering members",
            Phase::Nonces(..) => "collecting nonces",
            Phase::Partials(..) => "collecting partial signatures",
            Phase::Acks(..) => "collecting acknowledgements",
            Phase::AwaitingConfirmation { .. } => "waiting for the funding confirmation",
            Phase::Funded { .. } => "funded",
            Phase::Failed { .. } | Phase::Moving => "ended",
        }
    }

    fn session(&self) -> Option<SessionId> {
        match self {
            Phase::Nonces(core, _) | Phase::Partials(core, _) | Phase::Acks(core, _) => {
                Some(core.session)
            }
            Phase::AwaitingConfirmation { session, .. } => Some(*session),
            _ => None,
        }
    }
}

/// The LSP's creation-ceremony state machine for one factory.
///
/// Call order: [`new`](Self::new) → [`handle_join`](Self::handle_join) per joining client (the
/// driver binds the returned [`ClientId`] to the connection) → [`start`](Self::start) (or let
/// the gathering deadline pass) → [`handle_message`](Self::handle_message) for every member
/// message, [`handle_timeout`](Self::handle_timeout) when [`poll_timeout`](Self::poll_timeout)
/// passes → [`handle_funding_confirmed`](Self::handle_funding_confirmed). After each input,
/// drain [`poll_action`](Self::poll_action).
pub struct LspCeremony<P, G> {
    config: LspConfig,
    pubkey: PublicKey,
    proposer: P,
    guard: G,
    members: BTreeMap<ClientId, Member>,
    next_client: u32,
    last_session: Option<SessionId>,
    phase: Phase,
    actions: VecDeque<LspAction>,
}

impl<P: Proposer, G: SignGuard> LspCeremony<P, G> {
    /// A ceremony gathering members until `config.gather_until`.
    pub fn new(config: LspConfig, proposer: P, guard: G) -> Self {
        let pubkey = public_key(&config.secret_key);
        LspCeremony {
            config,
            pubkey,
            proposer,
            guard,
            members: BTreeMap::new(),
            next_client: 0,
            last_session: None,
            phase: Phase::Gathering,
            actions: VecDeque::new(),
        }
    }

    /// The LSP's factory key.
    pub fn pubkey(&self) -> PublicKey {
        self.pubkey
    }

    /// Current members (excluded clients are gone).
    pub fn members(&self) -> &BTreeMap<ClientId, Member> {
        &self.members
    }

    /// When gathering ends: the unix time announced to joiners (`start_by`) and, for a ladder
    /// rung, the height that ends it.
    pub fn gathering_end(&self) -> (u64, Option<Height>) {
        (self.config.gather_until, self.config.start_height)
    }

    /// The guard.
    pub fn guard(&self) -> &G {
        &self.guard
    }

    /// Where the ceremony is.
    pub fn status(&self) -> LspStatus {
        match &self.phase {
            Phase::Gathering => LspStatus::Gathering {
                members: self.members.len(),
            },
            Phase::Nonces(core, r) => LspStatus::Signing {
                session: core.session,
                round: Round::Nonces,
                waiting_on: self.members.len() - r.got.len(),
            },
            Phase::Partials(core, r) => LspStatus::Signing {
                session: core.session,
                round: Round::PartialSigs,
                waiting_on: self.members.len() - r.got.len(),
            },
            Phase::Acks(core, r) => LspStatus::Signing {
                session: core.session,
                round: Round::Ack,
                waiting_on: self.members.len() - r.acked.len(),
            },
            Phase::AwaitingConfirmation { txid, .. } => {
                LspStatus::AwaitingConfirmation { txid: *txid }
            }
            Phase::Funded { txid } => LspStatus::Funded { txid: *txid },
            Phase::Failed { reason } => LspStatus::Failed {
                reason: reason.clone(),
            },
            Phase::Moving => LspStatus::Failed {
                reason: Reason::new("interrupted"),
            },
        }
    }

    /// The next action for the driver, in order.
    pub fn poll_action(&mut self) -> Option<LspAction> {
        self.actions.pop_front()
    }

    /// When to call [`handle_timeout`](Self::handle_timeout): end of gathering or of the
    /// current round.
    pub fn poll_timeout(&self) -> Option<Deadline> {
        match &self.phase {
            Phase::Gathering => Some(match self.config.start_height {
                Some(height) => Deadline::Height(height),
                None => Deadline::UnixTime(self.config.gather_until),
            }),
            Phase::Nonces(core, _) | Phase::Partials(core, _) | Phase::Acks(core, _) => {
                Some(Deadline::UnixTime(core.deadline))
            }
            _ => None,
        }
    }

    /// A client asks to join. On success it is a member with the returned id and a
    /// [`JoinAccepted`] is queued for it; on error send [`JoinError::reply`] on its connection.
    pub fn handle_join(&mut self, _now: Now, request: JoinRequest) -> Result<ClientId, JoinError> {
        if !matches!(self.phase, Phase::Gathering) {
            return Err(JoinError::Closed);
        }
        if self.members.len() >= self.config.max_clients {
            return Err(JoinError::Full {
                max: self.config.max_clients,
            });
        }
        if request.pubkey == self.pubkey
            || self.members.values().any(|m| m.pubkey == request.pubkey)
        {
            return Err(JoinError::DuplicateKey);
        }
        let quote = Quote::for_request(&self.config.terms, &request)?;
        let client = ClientId(self.next_client);
        self.next_client += 1;
        self.members.insert(
            client,
            Member {
                pubkey: request.pubkey,
                quote,
            },
        );
        self.accepted(client, quote);
        self.emit(LspEvent::MemberJoined {
            client,
            pubkey: request.pubkey,
        });
        if self.members.len() == self.config.max_clients {
            self.emit(LspEvent::GatheringFull);
        }
        Ok(client)
    }

    /// Keeps gathering past the end it announced, for a ladder rung that did not fill: until
    /// the chain reaches `start_height`, telling every member the new estimate `gather_until`
    /// (a `join_accepted` again, the same quote, so their wallets wait for it).
    pub fn postpone(
        &mut self,
        start_height: Height,
        gather_until: u64,
    ) -> Result<(), CeremonyError> {
        if !matches!(self.phase, Phase::Gathering) {
            return Err(CeremonyError::OutOfOrder {
                message: "postpone",
                state: self.phase.name(),
            });
        }
        self.config.start_height = Some(start_height);
        self.config.gather_until = gather_until;
        let again: Vec<(ClientId, Quote)> =
            self.members.iter().map(|(c, m)| (*c, m.quote)).collect();
        for (client, quote) in again {
            self.accepted(client, quote);
        }
        Ok(())
    }

    /// Tells `client` it is a member at `quote`, with the current end of gathering.
    fn accepted(&mut self, client: ClientId, quote: Quote) {
        self.send(
            client,
            WireMsg::JoinAccepted(JoinAccepted {
                factory: self.config.factory,
                client,
                lsp_key: self.pubkey,
                quote,
                start_by: self.config.gather_until,
            }),
        );
    }

    /// Ends gathering and proposes to the members now.
    pub fn start<R: rand::RngCore + rand::CryptoRng>(
        &mut self,
        now: Now,
        rng: &mut R,
    ) -> Result<(), CeremonyError> {
        if !matches!(self.phase, Phase::Gathering) {
            return Err(CeremonyError::OutOfOrder {
                message: "start",
                state: self.phase.name(),
            });
        }
        let need = self.config.min_clients.max(1);
        if self.members.len() < need {
            return Err(CeremonyError::NotEnoughClients {
                have: self.members.len(),
                need,
            });
        }
        self.begin_session(now, rng, self.config.first_session);
        Ok(())
    }

    /// Acts on a passed deadline: starts after gathering, or excludes every member that has not
    /// answered the current round and restarts without them.
    pub fn handle_timeout<R: rand::RngCore + rand::CryptoRng>(&mut self, now: Now, rng: &mut R) {
        let Some(deadline) = self.poll_timeout() else {
            return;
        };
        if !deadline.has_passed(&now) {
            return;
        }
        let (round, answered): (Round, Vec<ClientId>) = match &self.phase {
            Phase::Gathering => {
                if self.start(now, rng).is_err() {
                    let deadline = match self.config.start_height {
                        Some(height) => format!("by block {height}"),
                        None => "before the deadline".to_owned(),
                    };
                    self.fail(Reason::new(format!(
                        "only {} of the {} members needed joined {deadline}",
                        self.members.len(),
                        self.config.min_clients.max(1)
                    )));
                }
                return;
            }
            Phase::Nonces(_, r) => (Round::Nonces, r.got.keys().copied().collect()),
            Phase::Partials(_, r) => (Round::PartialSigs, r.got.keys().copied().collect()),
            Phase::Acks(_, r) => (Round::Ack, r.acked.iter().copied().collect()),
            _ => return,
        };
        let late: Vec<(ClientId, ExclusionReason)> = self
            .members
            .keys()
            .filter(|c| !answered.contains(c))
            .map(|c| (*c, ExclusionReason::Timeout { round }))
            .collect();
        self.exclude_and_restart(now, rng, late);
    }

    /// The driver saw the funding transaction confirm.
    pub fn handle_funding_confirmed(&mut self, now: Now, txid: Txid) -> Result<(), CeremonyError> {
        match self.phase {
            Phase::AwaitingConfirmation { txid: expected, .. } if expected == txid => {
                self.phase = Phase::Funded { txid };
                self.emit(LspEvent::FactoryFunded {
                    txid,
                    height: now.height,
                });
                Ok(())
            }
            _ => Err(CeremonyError::OutOfOrder {
                message: "funding confirmation",
                state: self.phase.name(),
            }),
        }
    }

    /// Handles one message from member `from`. A refused message leaves the state unchanged,
    /// queues a wire `Error` reply to `from`, and returns why. Misbehaviour within the current
    /// session is not an error: the sender is excluded (see [`LspEvent::Excluded`]).
    pub fn handle_message<R: rand::RngCore + rand::CryptoRng>(
        &mut self,
        now: Now,
        from: ClientId,
        msg: WireMsg,
        rng: &mut R,
    ) -> Result<(), CeremonyError> {
        let result = self.dispatch(now, from, msg, rng);
        if let Some(reply) = result.as_ref().err().and_then(CeremonyError::to_wire) {
            self.send(from, reply);
        }
        result
    }

    fn dispatch<R: rand::RngCore + rand::CryptoRng>(
        &mut self,
        now: Now,
        from: ClientId,
        msg: WireMsg,
        rng: &mut R,
    ) -> Result<(), CeremonyError> {
        if let WireMsg::Error { code, message, .. } = msg {
            return Err(CeremonyError::PeerError { code, message });
        }
        if !self.members.contains_key(&from) {
            return Err(CeremonyError::NotAMember { client: from });
        }
        match msg {
            WireMsg::Nonces(m) => {
                self.check_session(m.factory, m.session)?;
                self.on_nonces(now, from, m, rng)
            }
            WireMsg::PartialSigs(m) => {
                self.check_session(m.factory, m.session)?;
                self.on_partials(now, from, m, rng)
            }
            WireMsg::SigsStored(m) => {
                self.check_session(m.factory, m.session)?;
                self.on_ack(from, m)
            }
            WireMsg::Refuse(m) => self.on_refuse(now, from, m, rng),
            _ => Err(CeremonyError::OutOfOrder {
                message: "this message",
                state: self.phase.name(),
            }),
        }
    }

    fn check_session(&self, factory: FactoryId, session: SessionId) -> Result<(), CeremonyError> {
        if factory != self.config.factory {
            return Err(CeremonyError::WrongFactory {
                got: factory,
                want: self.config.factory,
            });
        }
        match self.phase.session().or(self.last_session) {
            Some(current) if session < current => Err(CeremonyError::StaleSession {
                got: session,
                current,
            }),
            Some(current) if session == current => Ok(()),
            _ => Err(CeremonyError::UnknownSession { got: session }),
        }
    }

    /// Removes `excluded` (telling each why), drops the session with its secret nonces, and
    /// proposes again to the rest under the next session id, or fails if too few remain.
    fn exclude_and_restart<R: rand::RngCore + rand::CryptoRng>(
        &mut self,
        now: Now,
        rng: &mut R,
        excluded: Vec<(ClientId, ExclusionReason)>,
    ) {
        let Some(session) = self.phase.session() else {
            return;
        };
        for (client, reason) in excluded {
            if self.members.remove(&client).is_none() {
                continue;
            }
            let msg = Excluded {
                factory: self.config.factory,
                session,
                reason: reason.clone(),
            };
            self.send(client, WireMsg::Excluded(msg));
            self.emit(LspEvent::Excluded {
                client,
                session,
                reason,
            });
        }
        self.last_session = Some(session);
        self.phase = Phase::Moving;
        let need = self.config.min_clients.max(1);
        if self.members.len() < need {
            let reason = format!(
                "only {} clients remain, {} needed",
                self.members.len(),
                need
            );
            return self.fail(Reason::new(reason));
        }
        self.begin_session(now, rng, SessionId(session.0.saturating_add(1)));
    }

    /// Builds and checks a proposal for the current members, draws the LSP's nonces and sends
    /// [`Propose`] to every member.
    fn begin_session<R: rand::RngCore + rand::CryptoRng>(
        &mut self,
        now: Now,
        rng: &mut R,
        session: SessionId,
    ) {
        self.last_session = Some(session);
        let request = ProposalRequest {
            factory: self.config.factory,
            session,
            lsp_pubkey: self.pubkey,
            members: &self.members,
            now,
        };
        let checked = self.proposer.propose(&request).and_then(|proposed| {
            let payload = ProposalPayload {
                factory: self.config.factory,
                session,
                body: proposed.body.clone(),
            };
            Core::new(proposed, payload, &self.pubkey, &self.members)
        });
        let mut core = match checked {
            Ok(core) => Box::new(core),
            Err(Refusal(reason)) => {
                return self.fail(Reason::new(format!("no valid proposal: {reason}")))
            }
        };
        let (lsp_nonces, publics) = generate_nonces(
            rng,
            &self.config.secret_key,
            &core.jobs,
            &core.lsp_nodes,
            self.config.factory,
            session,
        );
        core.lsp_pubnonces = publics;
        core.deadline = now
            .unix_time
            .saturating_add(self.config.timeouts.nonces_secs);
        let propose = Propose {
            payload: core.payload.clone(),
            respond_by: core.deadline,
        };
        let clients: Vec<ClientId> = self.members.keys().copied().collect();
        for client in &clients {
            self.send(*client, WireMsg::Propose(propose.clone()));
        }
        self.emit(LspEvent::SessionStarted {
            session,
            members: clients.len(),
        });
        self.phase = Phase::Nonces(
            core,
            NonceRound {
                lsp_nonces,
                got: BTreeMap::new(),
            },
        );
    }

    /// Gives up: tells every member and ends. Nothing was broadcast.
    fn fail(&mut self, reason: Reason) {
        let session = self.phase.session().or(self.last_session);
        let clients: Vec<ClientId> = self.members.keys().copied().collect();
        for client in clients {
            let msg = Aborted {
                factory: self.config.factory,
                session,
                reason: reason.clone(),
            };
            self.send(client, WireMsg::Aborted(msg));
        }
        self.emit(LspEvent::Failed {
            reason: reason.clone(),
        });
        self.phase = Phase::Failed { reason };
    }

    fn send(&mut self, client: ClientId, msg: WireMsg) {
        self.actions.push_back(Action::Send(client, msg));
    }

    fn persist(&mut self, change: LspChange) {
        self.actions.push_back(Action::Persist(change));
    }

    fn emit(&mut self, event: LspEvent) {
        self.actions.push_back(Action::Emit(event));
    }
}
