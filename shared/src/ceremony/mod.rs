//! The factory-creation ceremony as two sans-io state machines: [`LspCeremony`] (the
//! coordinator) and [`ClientCeremony`] (one per joining wallet).
//!
//! Rounds, all over the LSP's WebSocket ([`messages`] has every message):
//!
//! 1. **join**: client → [`JoinRequest`] (fresh factory key, desired amounts); LSP →
//!    [`JoinAccepted`] (client id, [`Quote`], `start_by`) or [`JoinRejected`].
//! 2. **propose**: LSP → [`Propose`] (a [`ProposalPayload`] for a new [`SessionId`](crate::types::SessionId)). Each client
//!    rebuilds its own jobs through its [`JobSource`]; if it cannot, it sends [`Refuse`].
//! 3. **nonces**: client → [`Nonces`] for exactly its nodes. The LSP adds its own, sums them per
//!    node, and sends each client [`AggNonces`] for exactly its nodes.
//! 4. **partial signatures**: client → [`PartialSigs`] (after its [`SignGuard`] agreed and the
//!    records were persisted). The LSP verifies each one, naming a bad signer.
//! 5. **final signatures**: LSP → [`FinalSigs`] for exactly the client's nodes; the client checks
//!    every one against the tweaked output key, persists them and answers [`SigsStored`].
//! 6. **funding**: once every member stored its signatures the LSP persists the whole set,
//!    broadcasts the funding transaction and sends [`FundingBroadcast`]; confirmation comes in
//!    through `handle_funding_confirmed` on both sides.
//!
//! Every LSP message that opens a round carries its deadline (`respond_by`, unix seconds). A
//! member that misses it, refuses, or sends wrong nodes or a bad partial signature is excluded
//! ([`Excluded`]), and the LSP restarts with the others under the next `SessionId` with fresh
//! nonces; nothing is on chain until the funding broadcast, so nobody loses anything.
//!
//! Both machines share one shape: inputs `handle_*` (with `now`, and an RNG where nonces may be
//! drawn), outputs [`poll_action`](LspCeremony::poll_action) until `None`, and
//! [`poll_timeout`](LspCeremony::poll_timeout) telling the driver when to call `handle_timeout`.
//! The driver performs actions in order and finishes each [`Action::Persist`] before any later
//! [`Action::Send`] or [`Action::Broadcast`], so nothing is promised that is not stored.
//!
//! [`SignGuard`]: crate::musig::SignGuard

mod client;
mod error;
mod gathering;
pub(crate) mod jobs;
mod lsp;
pub mod messages;
mod proposal;

pub use client::{
    ClientAction, ClientCeremony, ClientChange, ClientConfig, ClientEvent, ClientOutcome,
    ClientStatus, SignedPath,
};
pub use error::{CeremonyError, JoinError};
pub use gathering::GatheringStatus;
pub use lsp::{
    LspAction, LspCeremony, LspChange, LspConfig, LspEvent, LspStatus, RoundTimeouts, SignedFactory,
};
pub use messages::{
    Aborted, AggNonces, Excluded, ExclusionReason, FinalSigs, FundingBroadcast, JoinAccepted,
    JoinPrice, JoinRejected, JoinRequest, NodeMap, Nonces, PartialSigs, Propose, Quote, Reason,
    Refuse, Round, SigsStored, MAX_NODES_PER_MSG, MAX_REASON_LEN,
};
pub use proposal::{
    JobSource, Member, Proposal, ProposalBody, ProposalJobs, ProposalPayload, ProposalRequest,
    Proposed, Proposer, RebuildContext, Refusal,
};

use bitcoin::absolute::Height;
use bitcoin::Transaction;

use crate::types::Now;
use crate::wire::WireMsg;

/// What a state machine asks its driver to do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action<P, C, E> {
    /// Send a message to a peer.
    Send(P, WireMsg),
    /// Store a change durably; finish before performing any later action.
    Persist(C),
    /// Tell the application (UI, logs, metrics).
    Emit(E),
    /// Broadcast a transaction.
    Broadcast(Transaction),
}

/// The only peer of a client: its LSP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToLsp;

/// When a state machine wants [`handle_timeout`](LspCeremony::handle_timeout) called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadline {
    /// At or after this unix time (seconds).
    UnixTime(u64),
    /// At or after this chain height.
    Height(Height),
}

impl Deadline {
    /// Whether `now` is at or past the deadline.
    pub fn has_passed(&self, now: &Now) -> bool {
        match self {
            Deadline::UnixTime(t) => now.unix_time >= *t,
            Deadline::Height(h) => now.height >= *h,
        }
    }
}

#[cfg(test)]
mod tests;
