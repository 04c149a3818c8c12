//! The client machine's public vocabulary: configuration, what it persists, what it reports.

use std::collections::BTreeMap;

use bitcoin::secp256k1::{schnorr, SecretKey};
use bitcoin::{Amount, Txid};

use super::super::messages::{ExclusionReason, Quote, Reason};
use super::super::proposal::ProposalPayload;
use super::super::{Action, ToLsp};
use crate::musig::GuardRecord;
use crate::types::{ClientId, FactoryId, NodeId, SessionId, SigningJob};

/// An action of the client machine.
pub type ClientAction = Action<ToLsp, ClientChange, ClientEvent>;

/// What the wallet asks for.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The client's key for this factory only (fresh, derived from its seed).
    pub secret_key: SecretKey,
    /// Desired channel capacity.
    pub channel: Amount,
    /// Desired inbound liquidity.
    pub liquidity: Amount,
    /// Largest fee the user accepts.
    pub max_fee: Amount,
    /// Seconds of patience beyond each deadline the LSP announces (and for the join answer).
    pub grace_secs: u64,
}

/// What the client must store durably.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientChange {
    /// Double-sign records; store before sending the partial signatures that follow.
    SignRecords(Vec<GuardRecord>),
    /// The client's verified exit path; store before acknowledging.
    PathSigned(Box<SignedPath>),
}

/// Everything the client needs later to use its path: the proposal, its jobs, and their final
/// signatures (one per job, each verified against the job's tweaked output key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedPath {
    /// Factory.
    pub factory: FactoryId,
    /// The session whose signatures these are.
    pub session: SessionId,
    /// The client's id.
    pub client: ClientId,
    /// The proposal the jobs were rebuilt from.
    pub payload: ProposalPayload,
    /// The client's jobs.
    pub jobs: Vec<SigningJob>,
    /// Final signatures by node.
    pub signatures: BTreeMap<NodeId, schnorr::Signature>,
}

/// How a client's ceremony ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientOutcome {
    /// The funding transaction confirmed: the factory is open.
    Open {
        /// Funding txid.
        txid: Txid,
    },
    /// The LSP refused the join request.
    Rejected {
        /// Its reason.
        reason: Reason,
    },
    /// This client refused (bad quote, proposal, nonces or signatures, or its guard tripped).
    Refused {
        /// Our reason, also sent to the LSP.
        reason: Reason,
    },
    /// The LSP excluded this client.
    Excluded {
        /// The LSP's reason.
        reason: ExclusionReason,
    },
    /// The LSP abandoned the factory.
    Aborted {
        /// The LSP's reason.
        reason: Reason,
    },
    /// The LSP stopped answering.
    Abandoned {
        /// What the client was waiting for.
        waiting_for: &'static str,
    },
}

/// Application-facing events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// The LSP accepted the join request.
    Joined {
        /// Factory.
        factory: FactoryId,
        /// Our id.
        client: ClientId,
        /// The accepted quote.
        quote: Quote,
        /// Unix time by which the LSP promised its proposal (the end of gathering).
        start_by: u64,
    },
    /// A (re)started session: nonces were sent for `nodes` jobs.
    SessionStarted {
        /// Session.
        session: SessionId,
        /// How many jobs this client signs.
        nodes: usize,
    },
    /// Every signature of our path verified and was stored.
    FactorySigned {
        /// Factory.
        factory: FactoryId,
        /// Session.
        session: SessionId,
    },
    /// The LSP broadcast the funding transaction; watch for it.
    FundingBroadcast {
        /// Factory.
        factory: FactoryId,
        /// Funding txid.
        txid: Txid,
    },
    /// The ceremony ended (successfully with [`ClientOutcome::Open`]).
    Ended(ClientOutcome),
}

/// Where the client is, for the UI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientStatus {
    /// Waiting for the LSP to answer the join request.
    Joining,
    /// Member, waiting for a proposal.
    Joined,
    /// Nonces sent for this session.
    NoncesSent(SessionId),
    /// Partial signatures sent for this session.
    PartialsSent(SessionId),
    /// Path stored and acknowledged; waiting for the funding broadcast.
    Stored(SessionId),
    /// Funding broadcast; waiting for confirmation.
    AwaitingConfirmation(Txid),
    /// Finished.
    Ended(ClientOutcome),
}
