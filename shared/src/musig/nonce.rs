//! MuSig2 nonces: the move-only [`SecNonce`] that never leaves the signer, and the [`PubNonce`] /
//! [`AggNonce`] values that travel on the wire (hex strings of their 66-byte BIP-327 encodings).

use core::fmt;

use bitcoin::secp256k1::{PublicKey, SecretKey, XOnlyPublicKey};
use bitcoin::TapSighash;
use musig2::secp::Scalar;
use musig2::BinaryEncoding;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::keys::{msg_bytes, public_key, JobKeys};
use super::MusigError;

const SEC_NONCE_LEN: usize = 97;
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
    bytes: [u8; SEC_NONCE_LEN],
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
        self,
        signer: &PublicKey,
        keys: &JobKeys,
        sighash: &TapSighash,
    ) -> Result<musig2::SecNonce, MusigError> {
        if self.signer != *signer
            || self.output_key != keys.output_key()
            || self.sighash != *sighash
        {
            return Err(MusigError::NonceMismatch);
        }
        musig2::SecNonce::from_bytes(&self.bytes).map_err(|_| MusigError::Encoding {
            what: "secret nonce",
        })
        // `self` drops here and wipes its bytes.
    }
}

impl Drop for SecNonce {
    fn drop(&mut self) {
        self.bytes = [0u8; SEC_NONCE_LEN];
        // Keep the wipe from being optimised away as a dead store.
        core::hint::black_box(&self.bytes);
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
pub struct PubNonce(musig2::PubNonce);

/// The sum of all signers' public nonces for one job (two possibly-infinite points, 66 bytes).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AggNonce(pub(super) musig2::AggNonce);

impl PubNonce {
    /// The 66-byte BIP-327 encoding.
    pub fn to_bytes(&self) -> [u8; PUB_NONCE_LEN] {
        self.0.to_bytes()
    }

    /// Parses the 66-byte BIP-327 encoding (two valid points).
    pub fn from_bytes(bytes: &[u8]) -> Result<PubNonce, MusigError> {
        musig2::PubNonce::from_bytes(bytes)
            .map(PubNonce)
            .map_err(|_| MusigError::Encoding {
                what: "public nonce",
            })
    }

    pub(super) fn inner(&self) -> &musig2::PubNonce {
        &self.0
    }
}

impl AggNonce {
    /// The 66-byte BIP-327 encoding.
    pub fn to_bytes(&self) -> [u8; PUB_NONCE_LEN] {
        self.0.to_bytes()
    }

    /// Parses the 66-byte BIP-327 encoding (points may be infinity, encoded as zeros).
    pub fn from_bytes(bytes: &[u8]) -> Result<AggNonce, MusigError> {
        musig2::AggNonce::from_bytes(bytes)
            .map(AggNonce)
            .map_err(|_| MusigError::Encoding {
                what: "aggregated nonce",
            })
    }
}

/// Generates a fresh nonce pair for signing `sighash` under `keys` with `secret`.
///
/// Follows BIP-327 `NonceGen`: 32 bytes from `rng`, mixed with the secret key, the tweaked
/// aggregate key, the message and `context` (callers pass e.g. session id, node id and prevout).
/// So a nonce is never reused across messages even if the RNG repeats itself.
pub fn generate_nonce<R: rand::RngCore + rand::CryptoRng>(
    rng: &mut R,
    secret: &SecretKey,
    keys: &JobKeys,
    sighash: &TapSighash,
    context: &[u8],
) -> (SecNonce, PubNonce) {
    let mut seed = [0u8; 32];
    rng.fill_bytes(&mut seed);
    let mut sk_bytes = secret.secret_bytes();
    let seckey = Scalar::from_slice(&sk_bytes).expect("a SecretKey is a valid non-zero scalar");
    let aggregated: musig2::secp::Point = keys.ctx().aggregated_pubkey();
    let inner = musig2::SecNonce::generate(seed, seckey, aggregated, msg_bytes(sighash), context);
    seed = [0u8; 32];
    sk_bytes = [0u8; 32];
    core::hint::black_box((&seed, &sk_bytes));
    let public = PubNonce(inner.public_nonce());
    let sec = SecNonce {
        bytes: inner.to_bytes(),
        signer: public_key(secret),
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
    AggNonce(musig2::AggNonce::sum(
        nonces.into_iter().map(PubNonce::inner),
    ))
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
