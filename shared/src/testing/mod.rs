//! Test helpers (feature `test-utils`), never compiled into production builds.
//!
//! - [`ceremony`]: an in-process network of one LSP and N clients running the signing ceremony
//!   on simulated time.
//! - [`tree`]: deterministic keys and factory proposals, and in-process signing of a whole
//!   factory tree with every key ([`sign_all`]).
//! - [`client_work`]: one client's check and signing of a proposal, timed, for the native and
//!   the browser benches.

pub mod ceremony;
pub mod client_work;
pub mod tree;

pub use tree::{sample_proposal, sign_all, sign_all_aggregated, TestKeys};
