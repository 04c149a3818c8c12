//! Errors of the MuSig2 layer. Each says which signer or input was wrong.

use bitcoin::secp256k1::PublicKey;

/// Why a MuSig2 operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MusigError {
    /// A job with no signers.
    #[error("a signing job needs at least one signer")]
    NoSigners,
    /// Signers not in BIP-327 key order; the aggregate key would differ from the tree's.
    #[error("signers are not in BIP-327 key order (first out of order at index {index})")]
    UnsortedSigners {
        /// Index of the first key smaller than its predecessor.
        index: usize,
    },
    /// The same key twice among a job's signers.
    #[error("signer {signer} appears twice among the job's signers")]
    DuplicateSigner {
        /// The repeated key.
        signer: PublicKey,
    },
    /// Key aggregation or tweaking produced an invalid point (negligible probability).
    #[error("key aggregation produced an invalid key")]
    InvalidAggregate,
    /// A key that is not one of the job's signers.
    #[error("{signer} is not a signer of this job")]
    UnknownSigner {
        /// The stranger's key.
        signer: PublicKey,
    },
    /// A secret nonce used for another message than the one it was generated for.
    #[error("the secret nonce was generated for another message or key; generate a fresh one")]
    NonceMismatch,
    /// A partial signature that does not verify; `index` is the signer's position in the job's
    /// BIP-327-sorted signer list.
    #[error("partial signature of signer #{index} ({signer}) is invalid")]
    BadPartialSignature {
        /// Position of the signer in the sorted signer list.
        index: usize,
        /// The signer's key.
        signer: PublicKey,
    },
    /// Not exactly one partial signature per signer was given to [`aggregate`](super::aggregate).
    #[error("expected {expected} partial signatures, got {got}")]
    WrongPartialCount {
        /// Number of signers.
        expected: usize,
        /// Number of partial signatures given.
        got: usize,
    },
    /// The aggregated (or a received final) signature does not verify against the output key.
    #[error("the final signature does not verify against the tweaked output key")]
    BadFinalSignature,
    /// Bytes that are not a valid encoding of the value.
    #[error("invalid {what} encoding")]
    Encoding {
        /// Which value.
        what: &'static str,
    },
}
