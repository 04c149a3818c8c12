//! The key release: wallet → LSP, the factory key of a factory the wallet has moved out of.

use bitcoin::secp256k1::{PublicKey, SecretKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::musig::public_key;
use crate::pay::ChannelId;
use crate::tree::FactoryProposal;

/// Wallet → LSP: the wallet moved everything out of `channel` and hands over the factory key
/// it used in that channel's factory, so the LSP can close the factory alone.
///
/// The wallet sends it only once the channel holds no balance and no HTLC of its own: from then
/// on the key guards nothing of the client's.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRelease {
    /// The channel the wallet moved out of.
    pub channel: ChannelId,
    /// The wallet's factory key in that channel's factory (hex on the wire).
    #[serde(serialize_with = "secret_hex", deserialize_with = "secret_from_hex")]
    pub secret: SecretKey,
}

impl core::fmt::Debug for KeyRelease {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("KeyRelease")
            .field("channel", &self.channel)
            .field("key", &public_key(&self.secret))
            .finish_non_exhaustive()
    }
}

/// LSP → wallet: the key of [`KeyRelease`] is stored; the channel is closed as moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyReleased {
    /// The channel.
    pub channel: ChannelId,
}

/// Why the LSP refuses a [`KeyRelease`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReleaseError {
    /// The factory has no such client.
    #[error("the factory has no client {client}")]
    NoSuchClient {
        /// The client id named.
        client: u32,
    },
    /// The key is not the member's factory key.
    #[error("this is not the factory key of client {client} (it is the key of {got})")]
    WrongKey {
        /// The client id named.
        client: u32,
        /// The public key of the secret sent.
        got: PublicKey,
    },
}

impl KeyRelease {
    /// Checks the secret is the factory key of the channel's client in `proposal`.
    pub fn check(&self, proposal: &FactoryProposal) -> Result<(), ReleaseError> {
        let client = self.channel.client.0;
        let entry = proposal
            .clients
            .get(client as usize)
            .ok_or(ReleaseError::NoSuchClient { client })?;
        let got = public_key(&self.secret);
        if got != entry.key {
            return Err(ReleaseError::WrongKey { client, got });
        }
        Ok(())
    }
}

fn secret_hex<S: Serializer>(secret: &SecretKey, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(secret.secret_bytes()))
}

fn secret_from_hex<'de, D: Deserializer<'de>>(d: D) -> Result<SecretKey, D::Error> {
    let text = String::deserialize(d)?;
    if text.len() != 64 {
        return Err(serde::de::Error::invalid_length(
            text.len(),
            &"a 32-byte hex string",
        ));
    }
    let bytes = hex::decode(&text).map_err(serde::de::Error::custom)?;
    SecretKey::from_slice(&bytes).map_err(serde::de::Error::custom)
}
