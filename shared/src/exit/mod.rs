//! Unilateral exits: what they cost, and what to do next.
//!
//! - [`worst_case_cost`]: transactions, vbytes, prepaid fee and blocks of the worst exit of a
//!   factory of N clients, from the parameters alone, so a wallet can show it before joining.
//! - [`ExitKit`]: every signed state of a client's path; [`ExitKit::next_action`] turns it and
//!   a [`ChainView`] into the next [`ExitAction`] (broadcast, wait, done, or stuck with a reason).
//!
//! The planner reads the chain only through [`ChainView`] and keeps no state between calls.

mod chain;
mod cost;
mod planner;
#[cfg(test)]
mod tests;

pub use chain::{ChainSnapshot, ChainView};
pub(crate) use cost::worst_case_unchecked;
pub use cost::{worst_case_cost, ExitCost};
pub use planner::{ExitAction, ExitError, ExitKit, ExitProblem};
