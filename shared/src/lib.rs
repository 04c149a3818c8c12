//! SuperScalar protocol core.
//!
//! Contract: this crate does no I/O. It never opens a socket, reads a clock or touches a disk.
//! Time comes in as arguments, and every random value a protocol step uses (nonces, keys, seeds)
//! comes from the caller's `&mut impl CryptoRng`. The one exception is side-channel blinding,
//! which no result depends on: the context behind [`secp::ctx`] is blinded with OS randomness,
//! once per process. (The MuSig2 binding behind [`musig`] re-blinds its own context after each
//! nonce and signature from the session's data, not the OS.) The LSP server and the browser
//! wallet both run this code, so they cannot disagree about a factory.
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
