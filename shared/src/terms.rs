//! The LSP's published terms (`/.well-known/superscalar.json`), signed by the LSP key.
//!
//! The signature is BIP-340 Schnorr over a tagged hash of the body's canonical JSON encoding, so a
//! client can hold the LSP to a quote until [`TermsBody::expires_at`]. Field names follow
//! LSPS1/LSPS2 (bLIP-51/52) where they fit.

use bitcoin::hashes::{sha256t_hash_newtype, Hash};
use bitcoin::secp256k1::{schnorr, Keypair, Message, Secp256k1, Verification, XOnlyPublicKey};
use bitcoin::{Amount, Network};
use serde::{Deserialize, Serialize};

use crate::params::FactoryParams;

sha256t_hash_newtype! {
    /// Tag for the terms signature.
    pub struct TermsTag = hash_str("superscalar/terms");
    /// Tagged hash of a terms body; the message the LSP signs.
    #[hash_newtype(forward)]
    pub struct TermsHash(_);
}

/// Fees the LSP charges, in the units LSPS1/LSPS2 use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeeSchedule {
    /// Flat fee to join a factory.
    #[serde(with = "bitcoin::amount::serde::as_sat")]
    pub join_fee: Amount,
    /// Price of inbound liquidity, parts per million of the amount bought.
    pub liquidity_fee_ppm: u32,
    /// Routing fee: base part.
    #[serde(with = "bitcoin::amount::serde::as_sat")]
    pub routing_fee_base: Amount,
    /// Routing fee: proportional part, parts per million.
    pub routing_fee_ppm: u32,
}

/// When factories start and how long they live, in blocks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactorySchedule {
    /// Blocks between two rungs of the LSP's ladder (a new factory at every multiple of it,
    /// see [`crate::lifecycle::Ladder`]); 0 when factories start as people join.
    pub interval_blocks: u32,
    /// Blocks a factory is active before its dying period.
    pub active_blocks: u32,
    /// Blocks of the dying period, during which clients migrate.
    pub dying_blocks: u32,
    /// Height at which the next factory starts: the ladder's next rung, or the next block when
    /// factories start as people join.
    pub next_start_height: u32,
    /// Free client slots in the next factory.
    pub open_slots: u32,
    /// Largest number of clients in one factory.
    pub max_clients: u32,
}

impl FactorySchedule {
    /// The schedule in one sentence, for a wallet's terms card.
    pub fn describe(&self) -> String {
        let starts = match self.interval_blocks {
            0 => "a new one as soon as enough people join".to_owned(),
            n => format!(
                "a new one every {n} blocks, the next at block {}",
                self.next_start_height
            ),
        };
        format!(
            "up to {} people per factory; {starts}; each lives {} blocks, then {} blocks to move on",
            self.max_clients, self.active_blocks, self.dying_blocks
        )
    }
}

/// The signed part of the terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TermsBody {
    /// Network the LSP runs on.
    pub network: Network,
    /// The LSP's long-term identity key (x-only), which signs these terms.
    pub lsp_pubkey: XOnlyPublicKey,
    /// Human-readable LSP name.
    pub name: String,
    /// Fees.
    pub fees: FeeSchedule,
    /// Smallest channel a client can have.
    #[serde(with = "bitcoin::amount::serde::as_sat")]
    pub min_channel: Amount,
    /// Largest channel a client can have.
    #[serde(with = "bitcoin::amount::serde::as_sat")]
    pub max_channel: Amount,
    /// Smallest inbound liquidity sold.
    #[serde(with = "bitcoin::amount::serde::as_sat")]
    pub min_liquidity: Amount,
    /// Largest inbound liquidity sold.
    #[serde(with = "bitcoin::amount::serde::as_sat")]
    pub max_liquidity: Amount,
    /// Factory schedule.
    pub schedule: FactorySchedule,
    /// What a client must do to stay safe, in words shown to users.
    pub liveness: String,
    /// The exact parameters every factory of this LSP is built with: tree shape, DW layers,
    /// timeouts, pre-signed fee rate. A wallet computes a worst-case exit from them before joining.
    pub tree: FactoryParams,
    /// Esplora endpoint the LSP itself reads the chain from.
    pub esplora_url: String,
    /// Unix time the terms were issued.
    pub issued_at: u64,
    /// Unix time after which the quote no longer binds the LSP.
    pub expires_at: u64,
    /// The LSP's Lightning node, when it runs one: a wallet may ask it to be the payee of its
    /// invoices (`crate::pay::InvoiceRegister`), so that anyone on the Lightning Network can
    /// pay them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lightning_node: Option<bitcoin::secp256k1::PublicKey>,
    /// What the LSP charges to send a wallet's balance to an on-chain address
    /// (`crate::swap`), when it offers that.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swap_out: Option<crate::swap::SwapOutTerms>,
}

impl TermsBody {
    /// The tagged hash that is signed.
    pub fn signing_hash(&self) -> TermsHash {
        let bytes = serde_json::to_vec(self).expect("terms serialize");
        TermsHash::hash(&bytes)
    }

    /// Signs the body with the LSP key; `keypair`'s x-only key must be [`TermsBody::lsp_pubkey`].
    pub fn sign<C: bitcoin::secp256k1::Signing>(
        self,
        secp: &Secp256k1<C>,
        keypair: &Keypair,
    ) -> SignedTerms {
        let msg = Message::from_digest(self.signing_hash().to_byte_array());
        let signature = secp.sign_schnorr_no_aux_rand(&msg, keypair);
        SignedTerms {
            body: self,
            signature,
        }
    }
}

/// Terms with the LSP's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedTerms {
    /// What the LSP commits to.
    pub body: TermsBody,
    /// BIP-340 signature by `body.lsp_pubkey` over [`TermsBody::signing_hash`].
    pub signature: schnorr::Signature,
}

/// Why terms were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TermsError {
    /// The signature does not match the body and key.
    #[error("the LSP's terms are not signed by its key; do not trust this LSP")]
    BadSignature,
    /// The quote is past its expiry.
    #[error("the LSP's terms expired at unix time {expires_at}; reload them")]
    Expired {
        /// When they expired.
        expires_at: u64,
    },
    /// Terms for another network than the wallet's.
    #[error("the LSP runs on {got}, but this wallet is set to {want}")]
    WrongNetwork {
        /// The LSP's network.
        got: Network,
        /// The wallet's network.
        want: Network,
    },
}

impl SignedTerms {
    /// Checks signature, expiry at `now_unix`, and network.
    pub fn verify<C: Verification>(
        &self,
        secp: &Secp256k1<C>,
        now_unix: u64,
        network: Network,
    ) -> Result<&TermsBody, TermsError> {
        let msg = Message::from_digest(self.body.signing_hash().to_byte_array());
        secp.verify_schnorr(&self.signature, &msg, &self.body.lsp_pubkey)
            .map_err(|_| TermsError::BadSignature)?;
        if now_unix >= self.body.expires_at {
            return Err(TermsError::Expired {
                expires_at: self.body.expires_at,
            });
        }
        if self.body.network != network {
            return Err(TermsError::WrongNetwork {
                got: self.body.network,
                want: network,
            });
        }
        Ok(&self.body)
    }
}

#[cfg(any(test, feature = "test-utils"))]
impl TermsBody {
    /// Plausible regtest terms for tests, issued at `issued_at` and valid until `expires_at`.
    pub fn example(lsp_pubkey: XOnlyPublicKey, issued_at: u64, expires_at: u64) -> Self {
        TermsBody {
            network: Network::Regtest,
            lsp_pubkey,
            name: "example".into(),
            fees: FeeSchedule {
                join_fee: Amount::from_sat(1000),
                liquidity_fee_ppm: 5000,
                routing_fee_base: Amount::from_sat(1),
                routing_fee_ppm: 1000,
            },
            min_channel: Amount::from_sat(10_000),
            max_channel: Amount::from_sat(10_000_000),
            min_liquidity: Amount::from_sat(10_000),
            max_liquidity: Amount::from_sat(10_000_000),
            schedule: FactorySchedule {
                interval_blocks: 144,
                active_blocks: 4320,
                dying_blocks: 432,
                next_start_height: 100,
                open_slots: 8,
                max_clients: 8,
            },
            liveness: "come online once during the dying period".into(),
            tree: FactoryParams::regtest(),
            esplora_url: "http://127.0.0.1:3002".into(),
            issued_at,
            expires_at,
            lightning_node: None,
            swap_out: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_says_whether_factories_follow_a_ladder() {
        let kp = Keypair::from_seckey_slice(crate::secp::ctx(), &[7u8; 32]).unwrap();
        let mut schedule = TermsBody::example(kp.x_only_public_key().0, 0, 1).schedule;
        schedule.next_start_height = 150;
        assert!(schedule
            .describe()
            .contains("a new one every 144 blocks, the next at block 150;"));
        schedule.interval_blocks = 0;
        assert!(schedule
            .describe()
            .contains("a new one as soon as enough people join;"));
    }

    #[test]
    fn sign_and_verify() {
        let secp = crate::secp::ctx();
        let kp = Keypair::from_seckey_slice(secp, &[7u8; 32]).unwrap();
        let signed = TermsBody::example(kp.x_only_public_key().0, 1_000, 2_000).sign(secp, &kp);
        assert!(signed.verify(secp, 1_500, Network::Regtest).is_ok());
        assert_eq!(
            signed.verify(secp, 2_000, Network::Regtest),
            Err(TermsError::Expired { expires_at: 2_000 })
        );
        assert!(matches!(
            signed.verify(secp, 1_500, Network::Bitcoin),
            Err(TermsError::WrongNetwork { .. })
        ));
        let mut tampered = signed.clone();
        tampered.body.fees.join_fee = Amount::from_sat(1);
        assert_eq!(
            tampered.verify(secp, 1_500, Network::Regtest),
            Err(TermsError::BadSignature)
        );
    }
}
