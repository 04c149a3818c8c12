//! Key aggregation for one [`SigningJob`]: BIP-327 key order, then the BIP-341 taproot tweak.
//!
//! [`JobKeys`] is also what the tree builder uses to compute the key an output pays to, so the key
//! a transaction commits to and the key its spender signs for always come from the same code.
//! Keys that take part in many aggregations (a factory's members) are parsed once into
//! [`AggKey`]s.

use bitcoin::hashes::Hash;
use bitcoin::secp256k1::{PublicKey, SecretKey, XOnlyPublicKey};
use bitcoin::{TapNodeHash, TapSighash, TapTweakHash};
use secp256k1_musig::musig::KeyAggCache;

use super::MusigError;
use crate::types::SigningJob;

/// The backend's key type (libsecp256k1 through the `secp256k1` crate, 0.33).
pub(super) type BackendKey = secp256k1_musig::PublicKey;

/// Sorts keys in BIP-327 `KeySort` order (lexicographic on the 33-byte compressed encoding).
pub fn key_sort(keys: &mut [PublicKey]) {
    keys.sort_by_key(|k| k.serialize());
}

/// A public key parsed once for aggregation: its 33-byte encoding (the BIP-327 sort key) and the
/// backend's form of it.
///
/// Converting goes through the 65-byte uncompressed encoding, which the backend parses without a
/// square root, so an `AggKey` costs far less than one aggregation step.
#[derive(Debug, Clone, Copy)]
pub struct AggKey {
    public: PublicKey,
    bytes: [u8; 33],
    inner: BackendKey,
}

impl AggKey {
    /// Parses `key` for the backend.
    pub fn new(key: &PublicKey) -> AggKey {
        AggKey {
            public: *key,
            bytes: key.serialize(),
            inner: to_backend(key),
        }
    }

    /// The 33-byte compressed encoding (BIP-327 sorts on it).
    pub fn bytes(&self) -> [u8; 33] {
        self.bytes
    }
}

fn cache_of(keys: &[&AggKey]) -> Result<KeyAggCache, MusigError> {
    if keys.is_empty() {
        return Err(MusigError::NoSigners);
    }
    let inner: Vec<&BackendKey> = keys.iter().map(|k| &k.inner).collect();
    Ok(KeyAggCache::new(&inner))
}

pub(super) fn to_backend(key: &PublicKey) -> BackendKey {
    BackendKey::from_byte_array_uncompressed(key.serialize_uncompressed())
        .expect("a valid secp256k1 key parses in either library")
}

fn from_backend(key: &BackendKey) -> PublicKey {
    PublicKey::from_slice(&key.serialize_uncompressed())
        .expect("a valid secp256k1 key parses in either library")
}

fn from_backend_xonly(key: &secp256k1_musig::XOnlyPublicKey) -> XOnlyPublicKey {
    XOnlyPublicKey::from_slice(&key.to_byte_array())
        .expect("a valid x-only key parses in either library")
}

pub(super) fn to_backend_xonly(key: &XOnlyPublicKey) -> secp256k1_musig::XOnlyPublicKey {
    secp256k1_musig::XOnlyPublicKey::from_byte_array(key.serialize())
        .expect("a valid x-only key parses in either library")
}

/// The aggregated, tweaked key of one spent output, ready for signing and verification.
///
/// Invariants: `signers` is non-empty, strictly increasing in BIP-327 order; the backend cache
/// carries the taproot tweak, so [`JobKeys::output_key`] is the key in the spent output's
/// `scriptPubKey` and the key every final signature verifies against.
#[derive(Debug, Clone)]
pub struct JobKeys {
    cache: KeyAggCache,
    signers: Vec<PublicKey>,
    internal_key: XOnlyPublicKey,
    output_key: XOnlyPublicKey,
}

/// The public key of `secret` (no secp256k1 context needed).
pub fn public_key(secret: &SecretKey) -> PublicKey {
    Signer::new(secret).public_key()
}

/// One signing key made ready for MuSig2 once: its public key and the backend's key pair.
///
/// Deriving them is an elliptic-curve multiplication (and the backend re-blinds its context after
/// each secret-key operation), so a party signing many jobs with one key builds a `Signer` once
/// and signs through it ([`generate_nonce_as`](super::generate_nonce_as),
/// [`sign_partial_as`](super::sign_partial_as)). Its `Debug` shows only the public key.
#[derive(Clone)]
pub struct Signer {
    keypair: secp256k1_musig::Keypair,
    public: PublicKey,
}

impl Signer {
    /// Derives the public key and key pair of `secret`.
    pub fn new(secret: &SecretKey) -> Signer {
        let keypair = secp256k1_musig::Keypair::from_secret_bytes(secret.secret_bytes())
            .expect("a SecretKey is a valid scalar");
        let public = from_backend(&keypair.public_key());
        Signer { keypair, public }
    }

    /// The signing key's public key.
    pub fn public_key(&self) -> PublicKey {
        self.public
    }

    pub(super) fn keypair(&self) -> &secp256k1_musig::Keypair {
        &self.keypair
    }
}

impl core::fmt::Debug for Signer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Signer")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// The untweaked MuSig2 aggregation of one signer set, reusable for every output those signers
/// share: a tree's root transaction and its distribution transaction spend the same output, and
/// the state transactions of one layer spend outputs of one set. [`KeyAgg::tweaked`] makes the
/// [`JobKeys`] of one output from it without aggregating again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyAgg {
    cache: KeyAggCache,
    signers: Vec<PublicKey>,
    internal_key: XOnlyPublicKey,
}

impl KeyAgg {
    /// Aggregates `signers`, which must already be BIP-327 sorted, without duplicates.
    pub fn new(signers: &[PublicKey]) -> Result<KeyAgg, MusigError> {
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
        let parsed: Vec<AggKey> = signers.iter().map(AggKey::new).collect();
        KeyAgg::from_sorted(&parsed.iter().collect::<Vec<_>>())
    }

    /// Aggregates keys already parsed, which must be in BIP-327 order without duplicates (the
    /// caller's invariant; [`KeyAgg::new`] checks it).
    pub fn from_sorted(keys: &[&AggKey]) -> Result<KeyAgg, MusigError> {
        let cache = cache_of(keys)?;
        Ok(KeyAgg {
            internal_key: from_backend_xonly(&cache.agg_pk()),
            cache,
            signers: keys.iter().map(|k| k.public).collect(),
        })
    }

    /// The signers, in BIP-327 order.
    pub fn signers(&self) -> &[PublicKey] {
        &self.signers
    }

    /// The untweaked aggregate (the taproot internal key).
    pub fn internal_key(&self) -> XOnlyPublicKey {
        self.internal_key
    }

    /// The keys of an output of these signers tweaked with `merkle_root`, or with the BIP-86
    /// unspendable tweak when `None`.
    pub fn tweaked(&self, merkle_root: Option<TapNodeHash>) -> Result<JobKeys, MusigError> {
        let mut cache = self.cache;
        let internal_key = self.internal_key;
        let tweak = TapTweakHash::from_key_and_tweak(internal_key, merkle_root).to_byte_array();
        let tweak = secp256k1_musig::Scalar::from_be_bytes(tweak)
            .map_err(|_| MusigError::InvalidAggregate)?;
        let tweaked = cache
            .pubkey_xonly_tweak_add(&tweak)
            .map_err(|_| MusigError::InvalidAggregate)?;
        let output_key = from_backend_xonly(&tweaked.x_only_public_key().0);
        Ok(JobKeys {
            cache,
            signers: self.signers.clone(),
            internal_key,
            output_key,
        })
    }
}

impl JobKeys {
    /// Aggregates `signers` (which must already be BIP-327 sorted, without duplicates) and tweaks
    /// with `merkle_root`, or with the BIP-86 unspendable tweak when `None`.
    pub fn new(
        signers: &[PublicKey],
        merkle_root: Option<TapNodeHash>,
    ) -> Result<JobKeys, MusigError> {
        KeyAgg::new(signers)?.tweaked(merkle_root)
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

    pub(super) fn cache(&self) -> &KeyAggCache {
        &self.cache
    }
}

/// The 32 message bytes BIP-340 signs for a sighash.
pub(super) fn msg_bytes(sighash: &TapSighash) -> [u8; 32] {
    sighash.to_byte_array()
}
