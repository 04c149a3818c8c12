//! The client's side of the creation ceremony.
//!
//! Guarantees: the client signs only jobs its own [`JobSource`] rebuilt and checked; its secret
//! nonces live only in memory, are used once (consumed by signing) and are dropped when a
//! session ends; it never signs two sighashes for one prevout (its [`SignGuard`], whose records
//! are handed out in a `Persist` before the `Send` carrying the partial signatures); it verifies
//! every final signature of its path before storing them and acknowledging.

mod rounds;
mod types;

pub use types::{
    ClientAction, ClientChange, ClientConfig, ClientEvent, ClientOutcome, ClientStatus, SignedPath,
};

use std::collections::VecDeque;

use bitcoin::secp256k1::PublicKey;
use bitcoin::Txid;

use super::error::CeremonyError;
use super::jobs::{JobSet, SecretNonces};
use super::messages::{JoinRequest, Quote, Reason, Refuse};
use super::proposal::{JobSource, ProposalPayload, Refusal};
use super::{Action, Deadline, ToLsp};
use crate::musig::{public_key, SignGuard};
use crate::types::{ClientId, FactoryId, Now, SessionId};
use crate::wire::WireMsg;

#[derive(Debug, Clone, Copy)]
struct Membership {
    factory: FactoryId,
    client: ClientId,
    lsp_key: PublicKey,
    quote: Quote,
}

/// A session in the nonce round; owns the secret nonces.
#[derive(Debug)]
struct NoncesSent {
    session: SessionId,
    payload: ProposalPayload,
    jobs: JobSet,
    nonces: SecretNonces,
    wait_until: u64,
}

/// A session whose partial signatures are out; the nonces are gone.
#[derive(Debug)]
struct PartialsSent {
    session: SessionId,
    payload: ProposalPayload,
    jobs: JobSet,
    wait_until: u64,
}

#[derive(Debug)]
enum Phase {
    Joining {
        wait_until: u64,
    },
    Joined {
        wait_until: u64,
    },
    NoncesSent(Box<NoncesSent>),
    PartialsSent(Box<PartialsSent>),
    Stored {
        session: SessionId,
        wait_until: u64,
    },
    AwaitingConfirmation {
        txid: Txid,
    },
    Ended(ClientOutcome),
    /// Exists only inside a transition that moved the previous phase out; never observable.
    Moving,
}

impl Phase {
    fn name(&self) -> &'static str {
        match self {
            Phase::Joining { .. } => "waiting for the join answer",
            Phase::Joined { .. } => "waiting for a proposal",
            Phase::NoncesSent(_) => "waiting for aggregated nonces",
            Phase::PartialsSent(_) => "waiting for final signatures",
            Phase::Stored { .. } => "waiting for the funding broadcast",
            Phase::AwaitingConfirmation { .. } => "waiting for the funding confirmation",
            Phase::Ended(_) | Phase::Moving => "ended",
        }
    }

    fn wait_until(&self) -> Option<u64> {
        match self {
            Phase::Joining { wait_until } | Phase::Joined { wait_until } => Some(*wait_until),
            Phase::NoncesSent(s) => Some(s.wait_until),
            Phase::PartialsSent(s) => Some(s.wait_until),
            Phase::Stored { wait_until, .. } => Some(*wait_until),
            _ => None,
        }
    }
}

/// The client's creation-ceremony state machine.
///
/// Call order: [`ClientCeremony::new`] (queues the join request) → feed every LSP message to
/// [`handle_message`](Self::handle_message), call [`handle_timeout`](Self::handle_timeout) when
/// [`poll_timeout`](Self::poll_timeout) passes, and
/// [`handle_funding_confirmed`](Self::handle_funding_confirmed) when the wallet's own chain
/// source sees the funding transaction → after each input drain
/// [`poll_action`](Self::poll_action). Not `Clone` or serializable: it may hold secret nonces.
/// A client that crashes mid-ceremony is excluded at the round's deadline and the others go on;
/// nothing it signed can be broadcast without the funding transaction.
pub struct ClientCeremony<J, G> {
    config: ClientConfig,
    pubkey: PublicKey,
    job_source: J,
    guard: G,
    member: Option<Membership>,
    session: Option<SessionId>,
    phase: Phase,
    actions: VecDeque<ClientAction>,
}

impl<J: JobSource, G: SignGuard> ClientCeremony<J, G> {
    /// Starts a ceremony: queues the [`JoinRequest`].
    pub fn new(config: ClientConfig, job_source: J, guard: G, now: Now) -> Self {
        let pubkey = public_key(&config.secret_key);
        let request = JoinRequest {
            pubkey,
            channel: config.channel,
            liquidity: config.liquidity,
        };
        let wait_until = now.unix_time.saturating_add(config.grace_secs);
        let mut this = ClientCeremony {
            config,
            pubkey,
            job_source,
            guard,
            member: None,
            session: None,
            phase: Phase::Joining { wait_until },
            actions: VecDeque::new(),
        };
        this.send(WireMsg::JoinRequest(request));
        this
    }

    /// This client's factory key.
    pub fn pubkey(&self) -> PublicKey {
        self.pubkey
    }

    /// The id the LSP gave us, once joined.
    pub fn client_id(&self) -> Option<ClientId> {
        self.member.map(|m| m.client)
    }

    /// The guard (e.g. to inspect records).
    pub fn guard(&self) -> &G {
        &self.guard
    }

    /// Where the ceremony is.
    pub fn status(&self) -> ClientStatus {
        match &self.phase {
            Phase::Joining { .. } => ClientStatus::Joining,
            Phase::Joined { .. } => ClientStatus::Joined,
            Phase::NoncesSent(s) => ClientStatus::NoncesSent(s.session),
            Phase::PartialsSent(s) => ClientStatus::PartialsSent(s.session),
            Phase::Stored { session, .. } => ClientStatus::Stored(*session),
            Phase::AwaitingConfirmation { txid } => ClientStatus::AwaitingConfirmation(*txid),
            Phase::Ended(outcome) => ClientStatus::Ended(outcome.clone()),
            Phase::Moving => ClientStatus::Ended(ClientOutcome::Abandoned { waiting_for: "" }),
        }
    }

    /// The next action for the driver, in order.
    pub fn poll_action(&mut self) -> Option<ClientAction> {
        self.actions.pop_front()
    }

    /// When to call [`handle_timeout`](Self::handle_timeout): the LSP's announced deadline for
    /// the current round plus `grace_secs`.
    pub fn poll_timeout(&self) -> Option<Deadline> {
        self.phase.wait_until().map(Deadline::UnixTime)
    }

    /// Gives up when the LSP missed its own deadline: refuses the session and ends.
    pub fn handle_timeout(&mut self, now: Now) {
        let Some(until) = self.phase.wait_until() else {
            return;
        };
        if now.unix_time < until {
            return;
        }
        let waiting_for = self.phase.name();
        if let Some(m) = self.member {
            let reason = Reason::new(format!("timed out {waiting_for}"));
            self.send(WireMsg::Refuse(Refuse {
                factory: m.factory,
                session: self.session,
                reason,
            }));
        }
        self.end(ClientOutcome::Abandoned { waiting_for });
    }

    /// The wallet's chain source saw the funding transaction confirm.
    pub fn handle_funding_confirmed(&mut self, _now: Now, txid: Txid) -> Result<(), CeremonyError> {
        match self.phase {
            Phase::AwaitingConfirmation { txid: expected } if expected == txid => {
                self.end(ClientOutcome::Open { txid });
                Ok(())
            }
            _ => Err(CeremonyError::OutOfOrder {
                message: "funding confirmation",
                state: self.phase.name(),
            }),
        }
    }

    /// Handles one message from the LSP. A refused message leaves the state unchanged, queues
    /// a wire `Error` reply and returns why.
    pub fn handle_message<R: rand::RngCore + rand::CryptoRng>(
        &mut self,
        now: Now,
        msg: WireMsg,
        rng: &mut R,
    ) -> Result<(), CeremonyError> {
        let result = match msg {
            WireMsg::JoinAccepted(m) => self.on_join_accepted(now, m),
            WireMsg::JoinRejected(m) => self.expect_joining("join_rejected").map(|()| {
                self.end(ClientOutcome::Rejected { reason: m.reason });
            }),
            WireMsg::Propose(m) => self.on_propose(now, m, rng),
            WireMsg::AggNonces(m) => self.on_agg_nonces(now, m),
            WireMsg::FinalSigs(m) => self.on_final_sigs(now, m),
            WireMsg::FundingBroadcast(m) => self.on_funding_broadcast(m),
            WireMsg::Excluded(m) => self.on_excluded(m),
            WireMsg::Aborted(m) => self.on_aborted(m.factory, m.session, m.reason),
            WireMsg::Error { code, message, .. } => Err(CeremonyError::PeerError { code, message }),
            _ => Err(CeremonyError::OutOfOrder {
                message: "this message",
                state: self.phase.name(),
            }),
        };
        if let Some(reply) = result.as_ref().err().and_then(CeremonyError::to_wire) {
            self.send(reply);
        }
        result
    }

    /// A member in a phase where the LSP may (re)start a session.
    fn joined_member(&self, message: &'static str) -> Result<Membership, CeremonyError> {
        let can_start = matches!(
            self.phase,
            Phase::Joined { .. }
                | Phase::NoncesSent(_)
                | Phase::PartialsSent(_)
                | Phase::Stored { .. }
        );
        match self.member {
            Some(m) if can_start => Ok(m),
            _ => Err(CeremonyError::OutOfOrder {
                message,
                state: self.phase.name(),
            }),
        }
    }

    fn expect_joining(&self, message: &'static str) -> Result<(), CeremonyError> {
        match self.phase {
            Phase::Joining { .. } => Ok(()),
            _ => Err(CeremonyError::OutOfOrder {
                message,
                state: self.phase.name(),
            }),
        }
    }

    /// The message is for our factory and our current session.
    fn check_current(
        &self,
        factory: FactoryId,
        session: SessionId,
    ) -> Result<Membership, CeremonyError> {
        let Some(member) = self.member else {
            return Err(CeremonyError::UnknownSession { got: session });
        };
        if factory != member.factory {
            return Err(CeremonyError::WrongFactory {
                got: factory,
                want: member.factory,
            });
        }
        match self.session {
            Some(current) if session < current => Err(CeremonyError::StaleSession {
                got: session,
                current,
            }),
            Some(current) if session == current => Ok(member),
            _ => Err(CeremonyError::UnknownSession { got: session }),
        }
    }

    /// Puts back a phase that did not match and builds the out-of-order error.
    fn restore(&mut self, other: Phase, message: &'static str) -> CeremonyError {
        let state = other.name();
        self.phase = other;
        CeremonyError::OutOfOrder { message, state }
    }

    /// Refuses to go on: tells the LSP why and ends. Drops any secret nonces.
    fn refuse(&mut self, refusal: Refusal) {
        if let Some(m) = self.member {
            self.send(WireMsg::Refuse(Refuse {
                factory: m.factory,
                session: self.session,
                reason: refusal.0.clone(),
            }));
        }
        self.end(ClientOutcome::Refused { reason: refusal.0 });
    }

    fn end(&mut self, outcome: ClientOutcome) {
        self.phase = Phase::Ended(outcome.clone());
        self.emit(ClientEvent::Ended(outcome));
    }

    fn send(&mut self, msg: WireMsg) {
        self.actions.push_back(Action::Send(ToLsp, msg));
    }

    fn persist(&mut self, change: ClientChange) {
        self.actions.push_back(Action::Persist(change));
    }

    fn emit(&mut self, event: ClientEvent) {
        self.actions.push_back(Action::Emit(event));
    }
}
