//! The factory tree: deterministic construction of every pre-signed transaction of a factory
//! from a [`FactoryProposal`].
//!
//! Shape (see `docs/protocol.md`, "Factory tree", for every transaction byte by byte):
//!
//! ```text
//! funding ─ split (static levels near the root, one tx each, never updated)
//!             └─ kickoff ─ state (DW layer 0) ─ kickoff ─ state (DW layer 1) ─ … ─ leaf
//! funding ─ distribution (nLockTime = timeout T)
//! ```
//!
//! Two heights: the distribution transaction's lock `T` (the factory timeout), and the later
//! sweep height `T_sweep = T + sweep_delta` in the LSP's timeout leaf on every state output, so
//! a client can still walk the tree to its leaf when the LSP spends the funding output (which
//! kills the distribution transaction) at any height up to `T`.
//!
//! - [`FactoryTree`] is the LSP's full view: every node, [`FactoryTree::signing_jobs`],
//!   [`FactoryTree::jobs_for`] one signer, epoch advance and refresh.
//! - [`crate::path::ClientPath`] is one client's view, built without the rest of the tree.
//! - Both build each node through the same private builder, so they cannot disagree.
//!
//! Guarantees: every transaction is version 2 with one input; every node's outputs plus its fee
//! equal its input; fees are the parameters' fee rate times the signed size, rounded up; every
//! state's `nSequence` is the odometer's delay for its layer and epoch; every state output's
//! timeout leaf locks to `T_sweep`, and the distribution transaction to `T`.

mod build;
mod error;
mod factory;
mod fees;
pub(crate) mod layout;
mod node;
mod proposal;
pub mod scripts;
#[cfg(test)]
mod tests;

pub use error::TreeError;
pub use factory::FactoryTree;
pub use node::{ClientRange, NodeKind, SignatureError, TreeNode};
pub use proposal::{ClientEntry, FactoryProposal, P2TR_DUST};

pub(crate) use build::{distribution as distribution_node, distribution_outputs, Builder};
pub(crate) use fees::{fee as fee_of, signed_vsize};
