//! Errors of the channel layer. Each says what was wrong; the state machine is left unchanged
//! by any refused input.

use bitcoin::Amount;

use crate::musig::{GuardError, MusigError};

/// Why a channel operation or message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChannelError {
    /// Channel parameters or a spec that cannot describe this channel.
    #[error("invalid channel parameters: {reason}")]
    Params {
        /// What is wrong.
        reason: &'static str,
    },
    /// The LSP's balance cannot pay the commitment fee and anchor.
    #[error("the LSP's balance cannot pay the commitment fee of {fee} and the anchor")]
    CannotAffordFee {
        /// The fee that could not be paid.
        fee: Amount,
    },
    /// A revealed per-commitment secret that is not the expected one.
    #[error("refusing revocation secret: {reason}; the peer may be cheating, close the channel")]
    BadSecret {
        /// What did not match.
        reason: &'static str,
    },
    /// An update that cannot apply (unknown HTLC, wrong preimage, insufficient balance, ...).
    #[error("refusing update: {reason}")]
    BadUpdate {
        /// What is wrong.
        reason: &'static str,
    },
    /// A message that does not fit the channel's state (replayed, out of order, wrong number).
    #[error("unexpected message: {reason}; ignore it (a replay) or reconnect")]
    Unexpected {
        /// What was expected.
        reason: &'static str,
    },
    /// A MuSig2 failure (bad partial signature, ...).
    #[error("signature: {0}")]
    Musig(#[from] MusigError),
    /// The commitment guard refused to sign a second, different commitment with one number.
    #[error("refusing to sign: {0}")]
    Guard(#[from] GuardError),
    /// A claim or penalty that cannot be built.
    #[error("cannot claim: {reason}")]
    NotClaimable {
        /// Why.
        reason: &'static str,
    },
}
