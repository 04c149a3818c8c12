//! Partial signing (which consumes the secret nonce), partial-signature verification that names
//! the bad signer, and aggregation into a BIP-340 signature checked against the output key.

use core::fmt;

use bitcoin::secp256k1::{schnorr, PublicKey, SecretKey};
use bitcoin::TapSighash;
use secp256k1_musig::musig;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::keys::{msg_bytes, to_backend, to_backend_xonly, JobKeys, Signer};
use super::nonce::{AggNonce, PubNonce, SecNonce};
use super::MusigError;

/// One signer's partial signature for one job (a 32-byte scalar; hex on the wire).
///
/// Partial signatures are not unforgeable on their own; the coordinator checks each with
/// [`verify_partial`] before aggregating, which is what lets it blame a signer.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PartialSig(musig::PartialSignature);

impl PartialSig {
    /// The 32-byte big-endian encoding.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.serialize()
    }

    /// Parses a 32-byte scalar (must be below the curve order).
    pub fn from_bytes(bytes: &[u8]) -> Result<PartialSig, MusigError> {
        let bytes: &[u8; 32] = bytes.try_into().map_err(|_| MusigError::Encoding {
            what: "partial signature",
        })?;
        musig::PartialSignature::from_byte_array(bytes)
            .map(PartialSig)
            .map_err(|_| MusigError::Encoding {
                what: "partial signature",
            })
    }
}

impl fmt::Debug for PartialSig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PartialSig({})", hex::encode(self.to_bytes()))
    }
}

impl Serialize for PartialSig {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(self.to_bytes()))
    }
}

impl<'de> Deserialize<'de> for PartialSig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if text.len() != 64 {
            return Err(serde::de::Error::invalid_length(
                text.len(),
                &"a 32-byte hex string",
            ));
        }
        let bytes = hex::decode(&text).map_err(serde::de::Error::custom)?;
        PartialSig::from_bytes(&bytes).map_err(serde::de::Error::custom)
    }
}

/// One job's signing session: the backend's session state (the effective nonce and the
/// challenge) made once from the aggregated nonce and the message, then used for every signer's
/// partial signature, its check, and the aggregation. A coordinator verifying many signers of one
/// job builds it once instead of once per partial signature.
///
/// Each method takes the [`JobKeys`] the session was made with; other keys are refused with
/// [`MusigError::NonceMismatch`].
#[derive(Clone, Copy)]
pub struct SigningSession {
    inner: musig::Session,
    output_key: bitcoin::secp256k1::XOnlyPublicKey,
    sighash: TapSighash,
}

impl fmt::Debug for SigningSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningSession")
            .field("output_key", &self.output_key)
            .field("sighash", &self.sighash)
            .finish_non_exhaustive()
    }
}

impl SigningSession {
    /// The session of `keys` signing `sighash` with the aggregated nonce `agg`.
    pub fn new(keys: &JobKeys, agg: &AggNonce, sighash: &TapSighash) -> SigningSession {
        SigningSession {
            inner: musig::Session::new(keys.cache(), agg.0, &msg_bytes(sighash)),
            output_key: keys.output_key(),
            sighash: *sighash,
        }
    }

    fn check_keys(&self, keys: &JobKeys) -> Result<(), MusigError> {
        if keys.output_key() == self.output_key {
            Ok(())
        } else {
            Err(MusigError::NonceMismatch)
        }
    }

    /// [`sign_partial_as`] in this session.
    pub fn sign(
        &self,
        keys: &JobKeys,
        signer: &Signer,
        nonce: SecNonce,
    ) -> Result<PartialSig, MusigError> {
        self.check_keys(keys)?;
        let public = signer.public_key();
        if keys.signer_index(&public).is_none() {
            return Err(MusigError::UnknownSigner { signer: public });
        }
        let inner = nonce.take_for(&public, keys, &self.sighash)?;
        Ok(PartialSig(self.inner.partial_sign(
            inner,
            signer.keypair(),
            keys.cache(),
        )))
    }

    /// [`verify_partial`] in this session.
    pub fn verify(
        &self,
        keys: &JobKeys,
        partial: &PartialSig,
        signer: &PublicKey,
        pubnonce: &PubNonce,
    ) -> Result<(), MusigError> {
        self.check_keys(keys)?;
        let index = keys
            .signer_index(signer)
            .ok_or(MusigError::UnknownSigner { signer: *signer })?;
        if self.inner.partial_verify(
            keys.cache(),
            &partial.0,
            pubnonce.inner(),
            to_backend(signer),
        ) {
            Ok(())
        } else {
            Err(MusigError::BadPartialSignature {
                index,
                signer: *signer,
            })
        }
    }

    /// [`aggregate`] in this session.
    pub fn aggregate(
        &self,
        keys: &JobKeys,
        partials: &[PartialSig],
    ) -> Result<schnorr::Signature, MusigError> {
        self.check_keys(keys)?;
        let expected = keys.signers().len();
        if partials.len() != expected {
            return Err(MusigError::WrongPartialCount {
                expected,
                got: partials.len(),
            });
        }
        let partials: Vec<&musig::PartialSignature> = partials.iter().map(|p| &p.0).collect();
        let sig = self.inner.partial_sig_agg(&partials).assume_valid();
        let sig = schnorr::Signature::from_slice(&sig.to_byte_array())
            .map_err(|_| MusigError::BadFinalSignature)?;
        verify_final(keys, &sig, &self.sighash)?;
        Ok(sig)
    }
}

/// Signs `sighash` for `keys` with `secret`, consuming `nonce`.
///
/// The nonce must have been generated by [`generate_nonce`](super::generate_nonce) for this
/// signer, these keys and this sighash, else [`MusigError::NonceMismatch`]; either way it is gone
/// afterwards. Callers check their [`SignGuard`](super::SignGuard) first. Whoever aggregates
/// checks each partial signature with [`verify_partial`].
pub fn sign_partial(
    keys: &JobKeys,
    secret: &SecretKey,
    nonce: SecNonce,
    agg: &AggNonce,
    sighash: &TapSighash,
) -> Result<PartialSig, MusigError> {
    sign_partial_as(keys, &Signer::new(secret), nonce, agg, sighash)
}

/// [`sign_partial`] for a [`Signer`] built once.
pub fn sign_partial_as(
    keys: &JobKeys,
    signer: &Signer,
    nonce: SecNonce,
    agg: &AggNonce,
    sighash: &TapSighash,
) -> Result<PartialSig, MusigError> {
    SigningSession::new(keys, agg, sighash).sign(keys, signer, nonce)
}

/// Checks `signer`'s partial signature against its public nonce and the aggregated nonce.
///
/// On failure returns [`MusigError::BadPartialSignature`] with the signer's index in the
/// BIP-327-sorted signer list and its key, so the coordinator can exclude exactly that signer.
pub fn verify_partial(
    keys: &JobKeys,
    partial: &PartialSig,
    agg: &AggNonce,
    signer: &PublicKey,
    pubnonce: &PubNonce,
    sighash: &TapSighash,
) -> Result<(), MusigError> {
    SigningSession::new(keys, agg, sighash).verify(keys, partial, signer, pubnonce)
}

/// Sums one partial signature per signer into the final BIP-340 signature and checks it against
/// [`JobKeys::output_key`]. Only returns signatures that verify.
pub fn aggregate(
    keys: &JobKeys,
    agg: &AggNonce,
    partials: &[PartialSig],
    sighash: &TapSighash,
) -> Result<schnorr::Signature, MusigError> {
    SigningSession::new(keys, agg, sighash).aggregate(keys, partials)
}

/// Checks a final BIP-340 signature over `sighash` against [`JobKeys::output_key`].
pub fn verify_final(
    keys: &JobKeys,
    sig: &schnorr::Signature,
    sighash: &TapSighash,
) -> Result<(), MusigError> {
    let sig = secp256k1_musig::schnorr::Signature::from_byte_array(sig.serialize());
    secp256k1_musig::schnorr::verify(
        &sig,
        &msg_bytes(sighash),
        &to_backend_xonly(&keys.output_key()),
    )
    .map_err(|_| MusigError::BadFinalSignature)
}

/// Signs `sighash` alone when one party holds the secret key of *every* signer of `keys` (the
/// LSP closing a factory whose members all released their keys): one nonce per key from `rng`,
/// aggregated, each partial signature made, then aggregated and checked.
///
/// Fails with [`MusigError::UnknownSigner`] for a secret that is not one of the signers, and
/// [`MusigError::WrongPartialCount`] when a signer's secret is missing.
pub fn sign_with_every_key<R: rand::RngCore + rand::CryptoRng>(
    rng: &mut R,
    keys: &JobKeys,
    secrets: &[SecretKey],
    sighash: &TapSighash,
) -> Result<schnorr::Signature, MusigError> {
    let signers: Vec<Signer> = secrets.iter().map(Signer::new).collect();
    sign_with_every_signer(rng, keys, &signers.iter().collect::<Vec<_>>(), sighash)
}

/// [`sign_with_every_key`] for [`Signer`]s built once.
pub fn sign_with_every_signer<R: rand::RngCore + rand::CryptoRng>(
    rng: &mut R,
    keys: &JobKeys,
    signers: &[&Signer],
    sighash: &TapSighash,
) -> Result<schnorr::Signature, MusigError> {
    let mut ordered: Vec<Option<&Signer>> = vec![None; keys.signers().len()];
    for signer in signers {
        let public = signer.public_key();
        let index = keys
            .signer_index(&public)
            .ok_or(MusigError::UnknownSigner { signer: public })?;
        ordered[index] = Some(signer);
    }
    let signers: Vec<&Signer> = ordered.into_iter().flatten().collect();
    if signers.len() != keys.signers().len() {
        return Err(MusigError::WrongPartialCount {
            expected: keys.signers().len(),
            got: signers.len(),
        });
    }
    let nonces: Vec<(SecNonce, PubNonce)> = signers
        .iter()
        .map(|s| super::generate_nonce_as(rng, s, keys, sighash, b"superscalar/every-key"))
        .collect();
    let agg = super::aggregate_nonces(nonces.iter().map(|(_, p)| p));
    let session = SigningSession::new(keys, &agg, sighash);
    let partials = signers
        .iter()
        .zip(nonces)
        .map(|(signer, (sec, _))| session.sign(keys, signer, sec))
        .collect::<Result<Vec<_>, _>>()?;
    session.aggregate(keys, &partials)
}
