//! SuperScalar protocol core.
//!
//! Contract: this crate does no I/O. It never opens a socket, reads a clock, touches a disk or asks
//! the OS for randomness. Time comes in as arguments, randomness as `&mut impl CryptoRng`. The LSP
//! server and the browser wallet both run this code, so they cannot disagree about a factory.
#![warn(missing_docs, unreachable_pub)]

pub mod auth;
pub mod ceremony;
pub mod channel;
pub mod exit;
pub mod fees;
pub mod leaf;
pub mod lifecycle;
pub mod musig;
pub mod params;
pub mod path;
pub mod pay;
pub mod secp;
pub mod swap;
pub mod terms;
#[cfg(any(test, feature = "test-utils"))]
pub mod testing;
pub mod timing;
pub mod tower;
pub mod tree;
pub mod types;
pub mod verify;
pub mod wire;
