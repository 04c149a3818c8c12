//! Errors of the ceremony state machines: messages refused without changing state.
//!
//! A refused message never ends a ceremony by itself (a late or duplicated frame is normal on
//! a flaky link); the state machine queues a wire `Error` reply to the sender and returns one of
//! these to the driver for its logs. Misbehaviour *inside* the current session is not an error
//! here: the LSP excludes the sender, and a client refuses the session, both through actions.

use bitcoin::Amount;

use super::messages::{JoinRejected, Reason};
use crate::types::{ClientId, FactoryId, SessionId};
use crate::wire::{ErrorCode, WireMsg};

/// A message the state machine refused; state is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CeremonyError {
    /// The message belongs to an earlier session (one that restarted).
    #[error(
        "message for session {got}, but session {current} is running; it is stale and was ignored"
    )]
    StaleSession {
        /// The message's session.
        got: SessionId,
        /// The running session.
        current: SessionId,
    },
    /// A session that was never started.
    #[error("message for session {got}, which was never started; ignored")]
    UnknownSession {
        /// The message's session.
        got: SessionId,
    },
    /// Another factory's message.
    #[error("message for factory {got}, but this ceremony is for factory {want}")]
    WrongFactory {
        /// The message's factory.
        got: FactoryId,
        /// This ceremony's factory.
        want: FactoryId,
    },
    /// A valid message at the wrong time (e.g. partial signatures during the nonce round, or a
    /// second copy of one already received).
    #[error("{message} is not expected while {state}")]
    OutOfOrder {
        /// The message kind.
        message: &'static str,
        /// What the state machine is doing.
        state: &'static str,
    },
    /// A message from a client that is not (or no longer) a member.
    #[error("client {client} is not a member of this factory (never joined or excluded)")]
    NotAMember {
        /// The sender.
        client: ClientId,
    },
    /// The peer sent a wire `Error`; it is reported, never answered (no error ping-pong).
    #[error("the peer reported an error ({code:?}): {message}")]
    PeerError {
        /// The peer's code.
        code: ErrorCode,
        /// The peer's explanation.
        message: String,
    },
    /// `start` with fewer members than the configured minimum.
    #[error("{have} clients joined, at least {need} are needed to start")]
    NotEnoughClients {
        /// Members now.
        have: usize,
        /// Minimum.
        need: usize,
    },
}

impl CeremonyError {
    /// The machine-readable code for the wire reply.
    pub fn code(&self) -> ErrorCode {
        match self {
            CeremonyError::StaleSession { .. } | CeremonyError::UnknownSession { .. } => {
                ErrorCode::StaleSession
            }
            CeremonyError::NotAMember { .. } => ErrorCode::NotAMember,
            _ => ErrorCode::Unexpected,
        }
    }

    /// The non-fatal wire `Error` reply for the peer, or `None` when the refused message was
    /// itself an error report.
    pub fn to_wire(&self) -> Option<WireMsg> {
        match self {
            CeremonyError::PeerError { .. } => None,
            _ => Some(WireMsg::refusal(self.code(), None, self.to_string())),
        }
    }
}

/// Why the LSP refused a join request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// The factory stopped gathering.
    #[error("this factory no longer accepts clients; try the next one")]
    Closed,
    /// No free slot.
    #[error("this factory is full ({max} clients); try the next one")]
    Full {
        /// Its capacity.
        max: usize,
    },
    /// The key is already used in this factory (keys must be fresh per factory).
    #[error("this key is already used in the factory; derive a fresh one")]
    DuplicateKey,
    /// An amount outside the LSP's published limits.
    #[error("{what} of {got} is outside the LSP's limits ({min} to {max})")]
    OutOfRange {
        /// Which amount.
        what: &'static str,
        /// Asked.
        got: Amount,
        /// Smallest allowed.
        min: Amount,
        /// Largest allowed.
        max: Amount,
    },
    /// The fee does not fit in an amount.
    #[error("the fee for these amounts overflows")]
    FeeOverflow,
}

impl JoinError {
    /// The wire reply for the refused client.
    pub fn reply(&self) -> WireMsg {
        WireMsg::JoinRejected(JoinRejected {
            reason: Reason::new(self.to_string()),
        })
    }
}
