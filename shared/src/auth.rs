//! Wallet authentication: a wallet proves that it holds its long-term identity key by signing a
//! fresh challenge from the LSP, before it may join a factory or resume a ceremony.
//!
//! Flow (each message a [`WireMsg`](crate::wire::WireMsg) variant):
//!
//! 1. wallet → [`AuthRequest`] (its identity key, x-only);
//! 2. LSP → [`AuthChallenge`] (32 fresh random bytes, one per request and connection);
//! 3. wallet → [`AuthProof`]: a BIP-340 signature over [`auth_hash`];
//! 4. LSP → [`Authenticated`] (with the ceremony it re-attached the wallet to, if any), or an
//!    `error` with code `auth_failed`.
//!
//! The signed message binds the challenge, the LSP's identity key and the wallet's identity key
//! (tagged hash, tag `superscalar/auth`), so a proof cannot be replayed on another connection,
//! to another LSP, or for another identity. The identity key only authenticates; it never signs
//! a transaction (factory keys are fresh per factory).

use bitcoin::hashes::{sha256t_hash_newtype, Hash, HashEngine};
use bitcoin::secp256k1::{rand, XOnlyPublicKey};
use bitcoin::secp256k1::{schnorr, Keypair, Message, Secp256k1, Signing, Verification};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::types::{ClientId, FactoryId, SessionId};

sha256t_hash_newtype! {
    /// Tag of the authentication signature.
    pub struct AuthTag = hash_str("superscalar/auth");
    /// The message a wallet signs to authenticate: `challenge || lsp_key || wallet_key`.
    #[hash_newtype(forward)]
    pub struct AuthHash(_);
}

/// 32 random bytes the LSP asks a wallet to sign (hex on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Challenge(pub [u8; 32]);

impl Challenge {
    /// A fresh challenge from the caller's CSPRNG.
    pub fn random<R: rand::RngCore + rand::CryptoRng>(rng: &mut R) -> Challenge {
        let mut bytes = [0u8; 32];
        rng.fill_bytes(&mut bytes);
        Challenge(bytes)
    }
}

impl Serialize for Challenge {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(self.0))
    }
}

impl<'de> Deserialize<'de> for Challenge {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let text = String::deserialize(d)?;
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(&text, &mut bytes)
            .map_err(|e| D::Error::custom(format!("challenge must be 32 bytes of hex: {e}")))?;
        Ok(Challenge(bytes))
    }
}

/// Wallet → LSP: "challenge me; I am this identity".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthRequest {
    /// The wallet's long-term identity key.
    pub pubkey: XOnlyPublicKey,
}

/// LSP → wallet: sign this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthChallenge {
    /// Fresh random bytes.
    pub challenge: Challenge,
}

/// Wallet → LSP: the signature over [`auth_hash`] of the last challenge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthProof {
    /// BIP-340 signature by the identity key of the [`AuthRequest`].
    pub signature: schnorr::Signature,
}

/// Where a re-attached wallet stands: the factory membership the LSP still holds for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resumed {
    /// The factory.
    pub factory: FactoryId,
    /// The wallet's id in it.
    pub client: ClientId,
    /// The session the LSP is in (or ended in), if one started.
    pub session: Option<SessionId>,
}

/// LSP → wallet: authenticated. Any ceremony message the wallet may have missed follows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authenticated {
    /// The identity now bound to this connection.
    pub pubkey: XOnlyPublicKey,
    /// The membership the connection was re-attached to, or `None` for a wallet the LSP holds
    /// no ceremony for.
    pub resumed: Option<Resumed>,
}

/// Why a proof was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The signature does not verify for this challenge, LSP and identity.
    #[error("the authentication signature does not verify for this challenge and identity key; sign the latest challenge with the key sent in auth_request")]
    BadSignature,
    /// A proof without a pending challenge.
    #[error("no challenge is pending; send auth_request first")]
    NoChallenge,
}

/// The tagged hash a wallet signs: `challenge || lsp_key || wallet_key`.
pub fn auth_hash(challenge: &Challenge, lsp: &XOnlyPublicKey, wallet: &XOnlyPublicKey) -> AuthHash {
    let mut engine = AuthHash::engine();
    engine.input(&challenge.0);
    engine.input(&lsp.serialize());
    engine.input(&wallet.serialize());
    AuthHash::from_engine(engine)
}

/// Signs a challenge with the wallet's identity key (auxiliary randomness from `rng`).
pub fn sign_challenge<C: Signing, R: rand::RngCore + rand::CryptoRng>(
    secp: &Secp256k1<C>,
    identity: &Keypair,
    challenge: &Challenge,
    lsp: &XOnlyPublicKey,
    rng: &mut R,
) -> AuthProof {
    let wallet = identity.x_only_public_key().0;
    let msg = Message::from_digest(auth_hash(challenge, lsp, &wallet).to_byte_array());
    let mut aux = [0u8; 32];
    rng.fill_bytes(&mut aux);
    AuthProof {
        signature: secp.sign_schnorr_with_aux_rand(&msg, identity, &aux),
    }
}

/// Checks a wallet's proof for `challenge`.
pub fn verify_proof<C: Verification>(
    secp: &Secp256k1<C>,
    challenge: &Challenge,
    lsp: &XOnlyPublicKey,
    wallet: &XOnlyPublicKey,
    proof: &AuthProof,
) -> Result<(), AuthError> {
    let msg = Message::from_digest(auth_hash(challenge, lsp, wallet).to_byte_array());
    secp.verify_schnorr(&proof.signature, &msg, wallet)
        .map_err(|_| AuthError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Envelope, WireMsg};

    #[test]
    fn proof_binds_challenge_lsp_and_identity() {
        let secp = crate::secp::ctx();
        let mut rng = rand::thread_rng();
        let wallet = Keypair::new(secp, &mut rng);
        let lsp = Keypair::new(secp, &mut rng).x_only_public_key().0;
        let other = Keypair::new(secp, &mut rng).x_only_public_key().0;
        let challenge = Challenge::random(&mut rng);
        let proof = sign_challenge(secp, &wallet, &challenge, &lsp, &mut rng);
        let me = wallet.x_only_public_key().0;
        assert_eq!(verify_proof(secp, &challenge, &lsp, &me, &proof), Ok(()));
        let fresh = Challenge::random(&mut rng);
        for (c, l, w) in [
            (&fresh, &lsp, &me),
            (&challenge, &other, &me),
            (&challenge, &lsp, &other),
        ] {
            assert_eq!(
                verify_proof(secp, c, l, w, &proof),
                Err(AuthError::BadSignature)
            );
        }
    }

    #[test]
    fn messages_round_trip() {
        let secp = crate::secp::ctx();
        let mut rng = rand::thread_rng();
        let wallet = Keypair::new(secp, &mut rng);
        let challenge = Challenge::random(&mut rng);
        let lsp = wallet.x_only_public_key().0;
        let msgs = [
            WireMsg::AuthRequest(AuthRequest { pubkey: lsp }),
            WireMsg::AuthChallenge(AuthChallenge { challenge }),
            WireMsg::AuthProof(sign_challenge(secp, &wallet, &challenge, &lsp, &mut rng)),
            WireMsg::Authenticated(Authenticated {
                pubkey: lsp,
                resumed: Some(Resumed {
                    factory: FactoryId(3),
                    client: ClientId(1),
                    session: Some(SessionId(2)),
                }),
            }),
        ];
        for msg in msgs {
            let env = Envelope::new(msg);
            assert_eq!(Envelope::decode(&env.encode()), Ok(env));
        }
        let bad = r#"{"v":1,"msg":{"type":"auth_challenge","challenge":"abcd"}}"#;
        assert!(Envelope::decode(bad).is_err());
    }
}
