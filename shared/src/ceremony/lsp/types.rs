//! The LSP machine's public vocabulary: configuration, what it persists, what it reports.

use bitcoin::absolute::Height;
use std::collections::BTreeMap;

use bitcoin::secp256k1::{schnorr, PublicKey, SecretKey};
use bitcoin::Txid;

use super::super::messages::{ExclusionReason, Reason, Round};
use super::super::proposal::{Member, ProposalPayload};
use super::super::Action;
use crate::musig::GuardRecord;
use crate::terms::TermsBody;
use crate::types::{ClientId, FactoryId, NodeId, SessionId, SigningJob};

/// An action of the LSP machine; messages are addressed by [`ClientId`].
pub type LspAction = Action<ClientId, LspChange, LspEvent>;

/// Seconds each round may take, counted from the message that opens it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundTimeouts {
    /// From [`Propose`](crate::ceremony::Propose) to the last [`Nonces`](crate::ceremony::Nonces).
    pub nonces_secs: u64,
    /// From [`AggNonces`](crate::ceremony::AggNonces) to the last [`PartialSigs`](crate::ceremony::PartialSigs).
    pub partials_secs: u64,
    /// From [`FinalSigs`](crate::ceremony::FinalSigs) to the last [`SigsStored`](crate::ceremony::SigsStored).
    pub ack_secs: u64,
}

impl Default for RoundTimeouts {
    fn default() -> Self {
        RoundTimeouts {
            nonces_secs: 30,
            partials_secs: 30,
            ack_secs: 30,
        }
    }
}

/// How the LSP runs one factory's creation.
#[derive(Debug, Clone)]
pub struct LspConfig {
    /// The factory.
    pub factory: FactoryId,
    /// The LSP's key for this factory.
    pub secret_key: SecretKey,
    /// The terms quotes are computed from.
    pub terms: TermsBody,
    /// Fewest members to start or to continue after exclusions (at least 1).
    pub min_clients: usize,
    /// Most members.
    pub max_clients: usize,
    /// Unix time gathering ends (the first proposal goes out then, or on [`LspCeremony::start`](crate::ceremony::LspCeremony::start)).
    /// With [`start_height`](Self::start_height) set, only the estimate joiners are told
    /// (`JoinAccepted::start_by`, how long they wait).
    pub gather_until: u64,
    /// A scheduled rung of the LSP's ladder: gathering ends when the chain reaches this height
    /// (or at once when full), not at `gather_until`.
    pub start_height: Option<Height>,
    /// Id of the first session; each restart takes the next one.
    pub first_session: SessionId,
    /// Round deadlines.
    pub timeouts: RoundTimeouts,
}

/// What the LSP must store durably.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LspChange {
    /// The LSP's own double-sign records for the session being signed.
    SignRecords(Vec<GuardRecord>),
    /// The complete, verified signature set; stored before the funding broadcast.
    FactorySigned(Box<SignedFactory>),
}

/// A fully signed factory, as the LSP stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedFactory {
    /// Factory.
    pub factory: FactoryId,
    /// The session that completed.
    pub session: SessionId,
    /// The proposal every member rebuilt.
    pub payload: ProposalPayload,
    /// The members it was built for.
    pub members: BTreeMap<ClientId, Member>,
    /// Every job.
    pub jobs: Vec<SigningJob>,
    /// Every final signature, by node.
    pub signatures: BTreeMap<NodeId, schnorr::Signature>,
    /// The funding transaction's id.
    pub funding_txid: Txid,
}

/// Application-facing events (logs, metrics, admin UI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LspEvent {
    /// A client joined.
    MemberJoined {
        /// Its id.
        client: ClientId,
        /// Its factory key.
        pubkey: PublicKey,
    },
    /// A member left before any session started.
    MemberLeft {
        /// Its id.
        client: ClientId,
    },
    /// Every slot is taken; the driver may [`start`](crate::ceremony::LspCeremony::start) now.
    GatheringFull,
    /// A session started (first or after a restart).
    SessionStarted {
        /// Session.
        session: SessionId,
        /// Members taking part.
        members: usize,
    },
    /// A member was excluded.
    Excluded {
        /// The member.
        client: ClientId,
        /// In which session.
        session: SessionId,
        /// Why.
        reason: ExclusionReason,
    },
    /// The funding transaction was handed to the driver for broadcast.
    FundingBroadcast {
        /// Session.
        session: SessionId,
        /// Funding txid.
        txid: Txid,
    },
    /// The funding transaction confirmed.
    FactoryFunded {
        /// Funding txid.
        txid: Txid,
        /// Height at which it was seen confirmed.
        height: bitcoin::absolute::Height,
    },
    /// The ceremony gave up (members were told with [`Aborted`](crate::ceremony::Aborted)).
    Failed {
        /// Why.
        reason: Reason,
    },
}

/// Where the LSP is, for the admin UI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LspStatus {
    /// Accepting members.
    Gathering {
        /// Members so far.
        members: usize,
    },
    /// In a round of a session.
    Signing {
        /// Session.
        session: SessionId,
        /// Round.
        round: Round,
        /// Members the round still waits for.
        waiting_on: usize,
    },
    /// Funding broadcast, waiting for confirmation.
    AwaitingConfirmation {
        /// Funding txid.
        txid: Txid,
    },
    /// Done.
    Funded {
        /// Funding txid.
        txid: Txid,
    },
    /// Gave up.
    Failed {
        /// Why.
        reason: Reason,
    },
}
