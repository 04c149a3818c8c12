//! MuSig2 (BIP-327) for SuperScalar: the one module that talks to the MuSig2 backend.
//!
//! Everything else in the crate signs and aggregates keys through this module. The backend is
//! libsecp256k1's MuSig2 module (through the `secp256k1` crate, 0.33), whose types never leak out
//! of here: keys and signatures cross the boundary as rust-bitcoin (secp256k1 0.29) types, nonces
//! and partial signatures as this module's newtypes. Tests check it against an independent
//! implementation (the `musig2` crate).
//!
//! What it guarantees:
//! - [`JobKeys`] aggregates a [`SigningJob`](crate::types::SigningJob)'s signers in BIP-327 key
//!   order (and refuses unsorted or duplicate keys) and applies the BIP-341 taproot tweak (the
//!   job's merkle root, or the BIP-86 unspendable tweak), so signatures verify against the key the
//!   spent output actually pays to ([`JobKeys::output_key`]).
//! - A [`SecNonce`] is move-only: not `Clone`, not `Serialize`, consumed by [`sign_partial`],
//!   bound to the sighash it was generated for, and wiped when dropped. Nonces are generated from
//!   the caller's CSPRNG *and* the secret key, aggregate key, message and caller context (BIP-327
//!   `NonceGen`), so even a broken RNG does not repeat a nonce across messages.
//! - [`verify_partial`] names the signer (index and key) whose partial signature is bad.
//! - [`aggregate`] returns only BIP-340 signatures that verify against the tweaked output key.
//! - [`SignGuard`] refuses to sign one prevout with two different sighashes.
//!
//! Typical order for one signer and one job:
//! [`JobKeys::for_job`] → [`generate_nonce`] → (exchange [`PubNonce`]s; coordinator runs
//! [`aggregate_nonces`]) → [`SignGuard::check_and_record`] → [`sign_partial`] → (coordinator runs
//! [`verify_partial`] per signer, then [`aggregate`]) → [`verify_final`].

mod error;
mod guard;
mod keys;
mod nonce;
mod sign;

pub use error::MusigError;
pub use guard::{check_and_record_all, GuardError, GuardRecord, MemorySignGuard, SignGuard};
pub use keys::{key_sort, public_key, AggKey, JobKeys, KeyAgg, Signer};
pub use nonce::{
    aggregate_nonces, generate_nonce, generate_nonce_as, AggNonce, PubNonce, SecNonce,
};
pub use sign::{
    aggregate, sign_partial, sign_partial_as, sign_with_every_key, sign_with_every_signer,
    verify_final, verify_partial, PartialSig, SigningSession,
};

#[cfg(test)]
mod tests;
