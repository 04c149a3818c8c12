//! MuSig2 nonces: the move-only [`SecNonce`] that never leaves the signer, and the [`PubNonce`] /
//! [`AggNonce`] values that travel on the wire (hex strings of their 66-byte BIP-327 encodings).

use core::fmt;

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{PublicKey, SecretKey, XOnlyPublicKey};
use bitcoin::TapSighash;
use secp256k1_musig::musig;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::keys::{msg_bytes, to_backend, JobKeys, Signer};
use super::MusigError;

const PUB_NONCE_LEN: usize = 66;

/// A signer's secret nonce for one job: move-only and single-use.
///
/// Not `Clone`, `Copy`, `Serialize` or `Deserialize`, so it cannot be duplicated, persisted or
/// sent; [`sign_partial`](super::sign_partial) takes it by value, so it cannot sign twice. It is
/// bound to the signer key, output key and sighash it was generated for, and signing anything
/// else fails with [`MusigError::NonceMismatch`]. Its bytes are overwritten when it is dropped
/// (best effort: the backend's own temporaries during signing are outside our control).
///
/// ```compile_fail
/// fn needs_clone<T: Clone>() {}
/// needs_clone::<shared::musig::SecNonce>();
/// ```
///
/// ```compile_fail
/// fn needs_serialize<T: serde::Serialize>() {}
/// needs_serialize::<shared::musig::SecNonce>();
/// ```
pub struct SecNonce {
    /// `None` only once taken for signing.
    inner: Option<musig::SecretNonce>,
    signer: PublicKey,
    output_key: XOnlyPublicKey,
    sighash: TapSighash,
}

impl SecNonce {
    /// The key this nonce signs with.
    pub fn signer(&self) -> PublicKey {
        self.signer
    }

    /// The sighash this nonce may sign.
    pub fn sighash(&self) -> TapSighash {
        self.sighash
    }

    /// Consumes the nonce into the backend's type, after checking its binding.
    pub(super) fn take_for(
        mut self,
        signer: &PublicKey,
        keys: &JobKeys,
        sighash: &TapSighash,
    ) -> Result<musig::SecretNonce, MusigError> {
        if self.signer != *signer
            || self.output_key != keys.output_key()
            || self.sighash != *sighash
        {
            return Err(MusigError::NonceMismatch);
        }
        // The backend zeroes the nonce it signs with; a mismatched one is wiped on drop.
        self.inner.take().ok_or(MusigError::NonceMismatch)
    }
}

impl Drop for SecNonce {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.as_mut() {
            inner.non_secure_erase();
            // Keep the wipe from being optimised away as a dead store.
            core::hint::black_box(inner);
        }
    }
}

impl fmt::Debug for SecNonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecNonce")
            .field("signer", &self.signer)
            .finish_non_exhaustive()
    }
}

/// A signer's public nonce for one job (two points, 66 bytes). Safe to share.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PubNonce(musig::PublicNonce);

/// The sum of all signers' public nonces for one job (two possibly-infinite points, 66 bytes).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AggNonce(pub(super) musig::AggregatedNonce);

impl PubNonce {
    /// The 66-byte BIP-327 encoding.
    pub fn to_bytes(&self) -> [u8; PUB_NONCE_LEN] {
        self.0.serialize()
    }

    /// Parses the 66-byte BIP-327 encoding (two valid points).
    pub fn from_bytes(bytes: &[u8]) -> Result<PubNonce, MusigError> {
        let bytes: &[u8; PUB_NONCE_LEN] = bytes.try_into().map_err(|_| MusigError::Encoding {
            what: "public nonce",
        })?;
        musig::PublicNonce::from_byte_array(bytes)
            .map(PubNonce)
            .map_err(|_| MusigError::Encoding {
                what: "public nonce",
            })
    }

    pub(super) fn inner(&self) -> &musig::PublicNonce {
        &self.0
    }
}

impl AggNonce {
    /// The 66-byte BIP-327 encoding.
    pub fn to_bytes(&self) -> [u8; PUB_NONCE_LEN] {
        self.0.serialize()
    }

    /// Parses the 66-byte BIP-327 encoding (points may be infinity, encoded as zeros).
    pub fn from_bytes(bytes: &[u8]) -> Result<AggNonce, MusigError> {
        let bytes: &[u8; PUB_NONCE_LEN] = bytes.try_into().map_err(|_| MusigError::Encoding {
            what: "aggregated nonce",
        })?;
        musig::AggregatedNonce::from_byte_array(bytes)
            .map(AggNonce)
            .map_err(|_| MusigError::Encoding {
                what: "aggregated nonce",
            })
    }
}

/// Generates a fresh nonce pair for signing `sighash` under `keys` with `secret`.
///
/// Follows BIP-327 `NonceGen` (libsecp256k1's): 32 bytes from `rng`, mixed with the secret key,
/// the tweaked aggregate key, the message and a hash of `context` (callers pass e.g. session id,
/// node id and prevout). So a nonce is never reused across messages even if the RNG repeats
/// itself.
pub fn generate_nonce<R: rand::RngCore + rand::CryptoRng>(
    rng: &mut R,
    secret: &SecretKey,
    keys: &JobKeys,
    sighash: &TapSighash,
    context: &[u8],
) -> (SecNonce, PubNonce) {
    generate_nonce_as(rng, &Signer::new(secret), keys, sighash, context)
}

/// [`generate_nonce`] for a [`Signer`] built once.
pub fn generate_nonce_as<R: rand::RngCore + rand::CryptoRng>(
    rng: &mut R,
    signer: &Signer,
    keys: &JobKeys,
    sighash: &TapSighash,
    context: &[u8],
) -> (SecNonce, PubNonce) {
    let mut seed = [0u8; 32];
    // The backend refuses an all-zero seed; a CSPRNG gives one with probability 2^-256.
    while seed == [0u8; 32] {
        rng.fill_bytes(&mut seed);
    }
    let public_key = signer.public_key();
    let extra = sha256::Hash::hash(context).to_byte_array();
    let (inner, public) = musig::new_nonce_pair(
        musig::SessionSecretRand::assume_uniformly_random(seed),
        Some(keys.cache()),
        Some(signer.keypair().secret_key()),
        to_backend(&public_key),
        Some(&msg_bytes(sighash)),
        Some(extra),
    );
    seed = [0u8; 32];
    core::hint::black_box(&seed);
    let public = PubNonce(public);
    let sec = SecNonce {
        inner: Some(inner),
        signer: public_key,
        output_key: keys.output_key(),
        sighash: *sighash,
    };
    (sec, public)
}

/// Sums public nonces into the aggregated nonce every signer of the job signs with.
///
/// Run by the coordinator; an infinite sum is allowed (BIP-327) and the misbehaving signer shows
/// up when partial signatures are verified.
pub fn aggregate_nonces<'a>(nonces: impl IntoIterator<Item = &'a PubNonce>) -> AggNonce {
    let nonces: Vec<&musig::PublicNonce> = nonces.into_iter().map(PubNonce::inner).collect();
    if nonces.is_empty() {
        // The empty sum: both points at infinity, which BIP-327 encodes as zeros.
        return AggNonce::from_bytes(&[0u8; PUB_NONCE_LEN]).expect("infinity is a valid encoding");
    }
    AggNonce(musig::AggregatedNonce::new(&nonces))
}

fn serialize_hex<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(bytes))
}

fn deserialize_hex<'de, D: Deserializer<'de>>(d: D, len: usize) -> Result<Vec<u8>, D::Error> {
    let text = String::deserialize(d)?;
    if text.len() != 2 * len {
        return Err(serde::de::Error::invalid_length(
            text.len(),
            &"a 66-byte hex string",
        ));
    }
    hex::decode(&text).map_err(serde::de::Error::custom)
}

impl Serialize for PubNonce {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_hex(&self.to_bytes(), s)
    }
}

impl<'de> Deserialize<'de> for PubNonce {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes = deserialize_hex(d, PUB_NONCE_LEN)?;
        PubNonce::from_bytes(&bytes).map_err(serde::de::Error::custom)
    }
}

impl Serialize for AggNonce {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_hex(&self.to_bytes(), s)
    }
}

impl<'de> Deserialize<'de> for AggNonce {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes = deserialize_hex(d, PUB_NONCE_LEN)?;
        AggNonce::from_bytes(&bytes).map_err(serde::de::Error::custom)
    }
}

impl fmt::Debug for PubNonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PubNonce({})", hex::encode(self.to_bytes()))
    }
}

impl fmt::Debug for AggNonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AggNonce({})", hex::encode(self.to_bytes()))
    }
}
