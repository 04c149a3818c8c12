//! Key aggregation for one [`SigningJob`]: BIP-327 key order, then the BIP-341 taproot tweak.
//!
//! [`JobKeys`] is also what the tree builder uses to compute the key an output pays to, so the key
//! a transaction commits to and the key its spender signs for always come from the same code.

use bitcoin::hashes::Hash;
use bitcoin::secp256k1::{PublicKey, SecretKey, XOnlyPublicKey};
use bitcoin::{TapNodeHash, TapSighash};
use musig2::secp::{Point, Scalar};
use musig2::KeyAggContext;

use super::MusigError;
use crate::types::SigningJob;

/// Sorts keys in BIP-327 `KeySort` order (lexicographic on the 33-byte compressed encoding).
pub fn key_sort(keys: &mut [PublicKey]) {
    keys.sort_by_key(|k| k.serialize());
}

/// The aggregated, tweaked key of one spent output, ready for signing and verification.
///
/// Invariants: `signers` is non-empty, strictly increasing in BIP-327 order; the backend context
/// carries the taproot tweak, so [`JobKeys::output_key`] is the key in the spent output's
/// `scriptPubKey` and the key every final signature verifies against.
#[derive(Debug, Clone)]
pub struct JobKeys {
    ctx: KeyAggContext,
    signers: Vec<PublicKey>,
    internal_key: XOnlyPublicKey,
    output_key: XOnlyPublicKey,
}

/// The public key of `secret`, computed by the MuSig2 backend (no secp256k1 context needed).
pub fn public_key(secret: &SecretKey) -> PublicKey {
    let scalar = Scalar::from_slice(&secret.secret_bytes()).expect("a SecretKey is a valid scalar");
    PublicKey::from_slice(&scalar.base_point_mul().serialize())
        .expect("a non-zero scalar times G is a valid key")
}

pub(super) fn to_point(pk: &PublicKey) -> Point {
    Point::from_slice(&pk.serialize()).expect("a valid secp256k1 key is a valid point")
}

pub(super) fn to_xonly(point: Point) -> XOnlyPublicKey {
    XOnlyPublicKey::from_slice(&point.serialize_xonly())
        .expect("a valid point has a valid x-only encoding")
}

impl JobKeys {
    /// Aggregates `signers` (which must already be BIP-327 sorted, without duplicates) and tweaks
    /// with `merkle_root`, or with the BIP-86 unspendable tweak when `None`.
    pub fn new(
        signers: &[PublicKey],
        merkle_root: Option<TapNodeHash>,
    ) -> Result<JobKeys, MusigError> {
        if signers.is_empty() {
            return Err(MusigError::NoSigners);
        }
        for (i, pair) in signers.windows(2).enumerate() {
            let (a, b) = (pair[0].serialize(), pair[1].serialize());
            if a == b {
                return Err(MusigError::DuplicateSigner { signer: pair[0] });
            }
            if a > b {
                return Err(MusigError::UnsortedSigners { index: i + 1 });
            }
        }
        let untweaked = KeyAggContext::new(signers.iter().map(to_point))
            .map_err(|_| MusigError::InvalidAggregate)?;
        let internal: Point = untweaked.aggregated_pubkey();
        let ctx = match merkle_root {
            Some(root) => untweaked.with_taproot_tweak(&root.to_byte_array()),
            None => untweaked.with_unspendable_taproot_tweak(),
        }
        .map_err(|_| MusigError::InvalidAggregate)?;
        let output: Point = ctx.aggregated_pubkey();
        Ok(JobKeys {
            ctx,
            signers: signers.to_vec(),
            internal_key: to_xonly(internal),
            output_key: to_xonly(output),
        })
    }

    /// [`JobKeys::new`] for a job's signers and merkle root.
    pub fn for_job(job: &SigningJob) -> Result<JobKeys, MusigError> {
        JobKeys::new(&job.signers, job.merkle_root)
    }

    /// The signers, in BIP-327 order.
    pub fn signers(&self) -> &[PublicKey] {
        &self.signers
    }

    /// Position of `signer` in [`JobKeys::signers`].
    pub fn signer_index(&self, signer: &PublicKey) -> Option<usize> {
        let key = signer.serialize();
        self.signers
            .binary_search_by(|k| k.serialize().cmp(&key))
            .ok()
    }

    /// The untweaked MuSig2 aggregate (the taproot internal key).
    pub fn internal_key(&self) -> XOnlyPublicKey {
        self.internal_key
    }

    /// The tweaked key the spent output pays to; final signatures verify against it.
    pub fn output_key(&self) -> XOnlyPublicKey {
        self.output_key
    }

    pub(super) fn ctx(&self) -> &KeyAggContext {
        &self.ctx
    }
}

/// The 32 message bytes BIP-340 signs for a sighash.
pub(super) fn msg_bytes(sighash: &TapSighash) -> [u8; 32] {
    sighash.to_byte_array()
}
