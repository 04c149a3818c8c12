//! The process's one libsecp256k1 context (the `bitcoin` crate's binding).
//!
//! Making a context is not free: the binding blinds each new one with fresh randomness (a
//! generator multiplication and a read of the OS's random source), about as much work as the
//! key derivation it was made for. A channel round made dozens (every derived key, every taproot
//! output), which was a third of a payment's CPU time. Every caller takes this one instead; it
//! is made, and blinded, once.
//!
//! MuSig2 runs on the newer binding behind [`crate::musig`], which keeps its own context.

use std::sync::OnceLock;

use bitcoin::secp256k1::{All, Secp256k1};

/// The shared context: signing and verification.
pub fn ctx() -> &'static Secp256k1<All> {
    static CTX: OnceLock<Secp256k1<All>> = OnceLock::new();
    CTX.get_or_init(Secp256k1::new)
}
