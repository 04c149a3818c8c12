//! Channel keys: per-commitment secrets (BOLT-3 shachain), per-commitment points, revocation keys
//! and the per-commitment payment, delayed and HTLC keys.
//!
//! Guarantees:
//! - [`PerCommitmentSeed::secret`] follows the BOLT-3 shachain derivation, so the receiver of the
//!   secrets keeps at most 49 of them ([`SecretStore`]) and checks that every new secret derives
//!   every older one it replaces; a secret that does not is refused.
//! - The revocation key of a commitment is `R·H(R‖P) + P·H(P‖R)` with `R` the punisher's
//!   revocation basepoint and `P` the holder's per-commitment point: neither side can compute its
//!   secret alone until the holder reveals the per-commitment secret.

use bitcoin::hashes::{sha256, Hash, HashEngine};
use bitcoin::secp256k1::{PublicKey, Scalar, SecretKey};
use serde::{Deserialize, Serialize};

use super::ChannelError;

/// Number of the first commitment; BOLT-3 index `2^48 - 1 - number`.
const MAX_INDEX: u64 = (1 << 48) - 1;

/// Shachain index of commitment `number`.
pub fn shachain_index(number: u64) -> u64 {
    MAX_INDEX - number
}

fn sha(data: &[&[u8]]) -> [u8; 32] {
    let mut e = sha256::Hash::engine();
    for d in data {
        e.input(d);
    }
    sha256::Hash::from_engine(e).to_byte_array()
}

fn scalar(bytes: [u8; 32]) -> Scalar {
    // A SHA-256 output is >= the curve order with probability ~2^-128.
    Scalar::from_be_bytes(bytes).expect("a hash output is below the curve order")
}

/// BOLT-3 `derive_secret`: flips and hashes the bits `bits-1..0` of `index` into `base`.
fn derive_bits(base: [u8; 32], bits: u32, index: u64) -> [u8; 32] {
    let mut p = base;
    for b in (0..bits).rev() {
        if index >> b & 1 == 1 {
            p[(b / 8) as usize] ^= 1 << (b % 8);
            p = sha(&[&p]);
        }
    }
    p
}

/// The seed of one side's per-commitment secrets. Secret: never sent.
#[derive(Clone, PartialEq, Eq)]
pub struct PerCommitmentSeed([u8; 32]);

impl core::fmt::Debug for PerCommitmentSeed {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("PerCommitmentSeed(..)")
    }
}

impl PerCommitmentSeed {
    /// The seed from raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The per-commitment secret of commitment `number` (BOLT-3 `generate_from_seed`).
    pub fn secret(&self, number: u64) -> [u8; 32] {
        derive_bits(self.0, 48, shachain_index(number))
    }

    /// The per-commitment secret of `number` as a key.
    pub fn secret_key(&self, number: u64) -> SecretKey {
        SecretKey::from_slice(&self.secret(number)).expect("a hash output is a valid key")
    }

    /// The per-commitment point of `number`.
    pub fn point(&self, number: u64) -> PublicKey {
        PublicKey::from_secret_key(crate::secp::ctx(), &self.secret_key(number))
    }
}

/// The per-commitment point of a revealed secret (refuses bytes that are not a key).
pub fn point_of(secret: &[u8; 32]) -> Result<PublicKey, ChannelError> {
    let sk = SecretKey::from_slice(secret).map_err(|_| ChannelError::BadSecret {
        reason: "not a valid secret key",
    })?;
    Ok(PublicKey::from_secret_key(crate::secp::ctx(), &sk))
}

/// The counterparty's revealed per-commitment secrets in O(log n) space (BOLT-3 storage).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretStore {
    /// Bucket `b` holds the last secret whose index has `b` trailing zeros.
    known: Vec<Option<(u64, [u8; 32])>>,
}

impl Default for SecretStore {
    fn default() -> Self {
        Self::new()
    }
}

impl SecretStore {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            known: vec![None; 49],
        }
    }

    /// Stores the secret of commitment `number` after checking it derives every stored secret
    /// it replaces. Secrets must come in order 0, 1, 2, ...; anything else is refused.
    pub fn insert(&mut self, number: u64, secret: [u8; 32]) -> Result<(), ChannelError> {
        if self.known.len() != 49 {
            // Only a stored store edited by hand can get here.
            return Err(ChannelError::BadSecret {
                reason: "the secret store is corrupt (49 buckets expected)",
            });
        }
        let expected = self.next_number();
        if number != expected {
            return Err(ChannelError::BadSecret {
                reason: "secret revealed out of order",
            });
        }
        let index = shachain_index(number);
        let bucket = index.trailing_zeros().min(48);
        for b in 0..bucket {
            if let Some((old_index, old_secret)) = self.known[b as usize] {
                if derive_bits(secret, bucket, old_index) != old_secret {
                    return Err(ChannelError::BadSecret {
                        reason: "secret does not derive the older secrets",
                    });
                }
            }
        }
        self.known[bucket as usize] = Some((index, secret));
        Ok(())
    }

    /// Number of the next secret expected (= number of secrets received).
    pub fn next_number(&self) -> u64 {
        self.known
            .iter()
            .flatten()
            .map(|(i, _)| MAX_INDEX - i + 1)
            .max()
            .unwrap_or(0)
    }

    /// The secret of commitment `number`, if it was revealed.
    pub fn get(&self, number: u64) -> Option<[u8; 32]> {
        if number >= self.next_number() {
            return None;
        }
        let index = shachain_index(number);
        for (b, slot) in self.known.iter().enumerate() {
            if let Some((known_index, secret)) = slot {
                let mask = !((1u64 << b) - 1);
                if index & mask == *known_index {
                    return Some(derive_bits(*secret, b as u32, index));
                }
            }
        }
        None
    }
}

/// One side's public basepoints, sent once when the channel opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Basepoints {
    /// The other side's commitments use it for their revocation keys.
    pub revocation: PublicKey,
    /// The key `to_remote` pays this side (static: recoverable from the seed alone).
    pub payment: PublicKey,
    /// Base of this side's delayed `to_local` key.
    pub delayed_payment: PublicKey,
    /// Base of this side's HTLC keys.
    pub htlc: PublicKey,
}

/// One side's channel secrets, all derived from one 32-byte channel seed.
#[derive(Clone)]
pub struct ChannelSecrets {
    /// Secret of [`Basepoints::revocation`].
    pub revocation: SecretKey,
    /// Secret of [`Basepoints::payment`].
    pub payment: SecretKey,
    /// Secret of [`Basepoints::delayed_payment`].
    pub delayed_payment: SecretKey,
    /// Secret of [`Basepoints::htlc`].
    pub htlc: SecretKey,
    /// Seed of this side's per-commitment secrets.
    pub commitment_seed: PerCommitmentSeed,
    /// The public basepoints, computed once (every commitment built derives keys from them).
    public: Basepoints,
}

impl core::fmt::Debug for ChannelSecrets {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("ChannelSecrets(..)")
    }
}

impl ChannelSecrets {
    /// Derives every channel secret from `seed`: `SHA256("superscalar/channel/" ‖ name ‖ seed)`.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let key = |name: &[u8]| {
            SecretKey::from_slice(&sha(&[b"superscalar/channel/", name, seed]))
                .expect("a hash output is a valid key")
        };
        let (revocation, payment, delayed_payment, htlc) = (
            key(b"revocation"),
            key(b"payment"),
            key(b"delayed"),
            key(b"htlc"),
        );
        let secp = crate::secp::ctx();
        Self {
            public: Basepoints {
                revocation: revocation.public_key(secp),
                payment: payment.public_key(secp),
                delayed_payment: delayed_payment.public_key(secp),
                htlc: htlc.public_key(secp),
            },
            revocation,
            payment,
            delayed_payment,
            htlc,
            commitment_seed: PerCommitmentSeed(sha(&[
                b"superscalar/channel/",
                b"commitment",
                seed,
            ])),
        }
    }

    /// The per-commitment points of commitments 0 and 1 (sent when a channel opens).
    pub fn first_points(&self) -> [PublicKey; 2] {
        [self.commitment_seed.point(0), self.commitment_seed.point(1)]
    }

    /// The public basepoints.
    pub fn basepoints(&self) -> Basepoints {
        self.public
    }
}

/// `basepoint + SHA256(point ‖ basepoint)·G`.
pub fn derive_pubkey(basepoint: &PublicKey, point: &PublicKey) -> PublicKey {
    let t = scalar(sha(&[&point.serialize(), &basepoint.serialize()]));
    basepoint
        .add_exp_tweak(crate::secp::ctx(), &t)
        .expect("tweak by a hash is not the negation (probability 2^-256)")
}

/// `base_secret + SHA256(point ‖ basepoint)`.
pub fn derive_secret(base_secret: &SecretKey, point: &PublicKey) -> SecretKey {
    let basepoint = base_secret.public_key(crate::secp::ctx());
    let t = scalar(sha(&[&point.serialize(), &basepoint.serialize()]));
    base_secret
        .add_tweak(&t)
        .expect("tweak by a hash is not the negation")
}

/// Revocation public key: `R·SHA256(R ‖ P) + P·SHA256(P ‖ R)`.
pub fn revocation_pubkey(revocation_basepoint: &PublicKey, point: &PublicKey) -> PublicKey {
    let secp = crate::secp::ctx();
    let (r, p) = (revocation_basepoint.serialize(), point.serialize());
    let a = revocation_basepoint
        .mul_tweak(secp, &scalar(sha(&[&r, &p])))
        .expect("non-zero tweak");
    let b = point
        .mul_tweak(secp, &scalar(sha(&[&p, &r])))
        .expect("non-zero tweak");
    a.combine(&b)
        .expect("the sum is not infinity (probability 2^-256)")
}

/// Revocation secret key, computable only with both the punisher's revocation basepoint secret
/// and the holder's revealed per-commitment secret.
pub fn revocation_secret(
    revocation_base_secret: &SecretKey,
    commitment_secret: &SecretKey,
) -> SecretKey {
    let secp = crate::secp::ctx();
    let r = revocation_base_secret.public_key(secp).serialize();
    let p = commitment_secret.public_key(secp).serialize();
    let a = revocation_base_secret
        .mul_tweak(&scalar(sha(&[&r, &p])))
        .expect("non-zero tweak");
    let b = commitment_secret
        .mul_tweak(&scalar(sha(&[&p, &r])))
        .expect("non-zero tweak");
    a.add_tweak(&Scalar::from(b)).expect("the sum is not zero")
}

/// The keys of one commitment transaction, seen from its holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitmentKeys {
    /// Internal key of `to_local` and of every HTLC output (the punisher's key path).
    pub revocation: PublicKey,
    /// The holder's delayed `to_local` key.
    pub holder_delayed: PublicKey,
    /// The holder's HTLC key.
    pub holder_htlc: PublicKey,
    /// The counterparty's HTLC key.
    pub counterparty_htlc: PublicKey,
    /// The counterparty's static payment key (`to_remote`).
    pub counterparty_payment: PublicKey,
}

impl CommitmentKeys {
    /// The keys of the holder's commitment with per-commitment point `point`.
    pub fn derive(holder: &Basepoints, counterparty: &Basepoints, point: &PublicKey) -> Self {
        Self {
            revocation: revocation_pubkey(&counterparty.revocation, point),
            holder_delayed: derive_pubkey(&holder.delayed_payment, point),
            holder_htlc: derive_pubkey(&holder.htlc, point),
            counterparty_htlc: derive_pubkey(&counterparty.htlc, point),
            counterparty_payment: counterparty.payment,
        }
    }
}
