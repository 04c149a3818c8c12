//! Leaving a factory alone, with the LSP gone: what it costs and how long it waits
//! ([`ExitPreview`]), the chain as the planner needs it, read from the user's own Esplora
//! ([`read_chain`]), every cost of the way it takes from the chain as it is now ([`ExitPlan`]),
//! one step of the walk at a time ([`ExitRunner::step`]: broadcast what
//! `shared::exit::ExitKit::next_action` says, or report the wait), and the sweep of what the
//! distribution transaction pays this wallet to its own on-chain address ([`build_sweep`]).
//!
//! The runner keeps no state of its own: every step reads the chain again and asks the
//! planner, so a reload, a lost connection or a second tab cannot make it skip or repeat a
//! transaction in a harmful way (a broadcast of a transaction already in the mempool or a block
//! is harmless). When the walk ends at the leaf, the runner closes the channel whose output the
//! leaf created (with the client's side of it that the payment store rebuilds) and sweeps the
//! wallet's balance to its address once `to_self_delay` allows ([`close`]).

mod bump;
mod chain_view;
mod close;
mod plan;
mod preview;
mod runner;
mod sweep;
mod watch;

pub use chain_view::read_chain;
pub use plan::{ExitPlan, ExitWay};
pub use preview::ExitPreview;
pub use runner::{ExitRunner, ExitStatus};
pub use sweep::{build_sweep, SweepError};
pub use watch::funding_spender;
