//! The client–LSP channel inside a factory leaf: a Poon-Dryja channel on the leaf's
//! MuSig2(client, LSP) key-path-only `channel` output.
//!
//! - [`keys`]: per-commitment secrets (BOLT-3 shachain), points, revocation and payment keys;
//! - [`scripts`]: the tapscripts and taproot trees of commitment outputs;
//! - [`commitment`]: the two asymmetric commitment transactions of each state;
//! - [`anchor`]: CPFP of a commitment through its P2A anchor;
//! - [`claim`]: claims of `to_local`, `to_remote` and HTLC outputs by their owners;
//! - [`penalty`]: the sweep of a revoked commitment;
//! - [`close`]: the cooperative close transaction;
//! - [`messages`] and [`Channel`]: the sans-io update state machine.
//!
//! `docs/protocol.md`, section "Channels", specifies every transaction and decision.

pub mod anchor;
pub mod claim;
pub mod close;
pub mod commitment;
mod error;
pub mod keys;
pub mod messages;
pub mod penalty;
pub mod scripts;
mod state;

pub use commitment::{ChannelParams, Commitment, CommitmentSpec, Htlc, OutputKind, Side};
pub use error::ChannelError;
pub use messages::{
    Action, ChannelChange, ChannelEvent, ChannelMsg, Revocation, Update, UpdateMsg,
};
pub use state::{Channel, ClaimKind, PeerInfo, MAX_HTLCS};

#[cfg(test)]
mod tests;
