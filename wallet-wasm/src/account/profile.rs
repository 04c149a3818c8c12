//! The wallet's settings and history, stored as one JSON record in the vault.

use bitcoin::{Amount, Network, Txid};
use serde::{Deserialize, Serialize};
use shared::types::FactoryId;

use crate::keys::{FactoryIndex, KeysError};

/// Everything the wallet remembers besides its seed and its session records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// The network this wallet lives on (taken from the LSP that served it at creation).
    pub network: Network,
    /// The web origin of the chosen LSP (`http(s)://host[:port]`).
    pub lsp_origin: String,
    /// The user's own Esplora endpoint; `None` uses the one the LSP's terms name.
    pub esplora_url: Option<String>,
    /// The Esplora endpoint the chosen LSP's terms named when it was chosen (so the wallet
    /// can read the chain when the LSP is gone).
    pub lsp_esplora: Option<String>,
    /// The next unused factory key index.
    pub next_factory: u32,
    /// Every join attempt, oldest first.
    pub joins: Vec<JoinRecord>,
}

/// One attempt to join a factory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRecord {
    /// The factory key index it uses (never reused).
    pub factory_index: u32,
    /// The LSP asked.
    pub lsp_origin: String,
    /// Channel asked for.
    #[serde(with = "bitcoin::amount::serde::as_sat")]
    pub channel: Amount,
    /// Inbound liquidity asked for.
    #[serde(with = "bitcoin::amount::serde::as_sat")]
    pub liquidity: Amount,
    /// The fee quoted and accepted.
    #[serde(with = "bitcoin::amount::serde::as_sat")]
    pub fee: Amount,
    /// The factory, once the LSP accepted the join.
    pub factory: Option<FactoryId>,
    /// The funding transaction, once broadcast.
    pub funding: Option<Txid>,
    /// How the session ended, in words (`None` while it runs).
    pub ended: Option<String>,
}

impl Profile {
    /// A new wallet's profile.
    pub fn new(network: Network, lsp_origin: &str, lsp_esplora: Option<String>) -> Profile {
        Profile {
            network,
            lsp_origin: lsp_origin.trim_end_matches('/').to_string(),
            esplora_url: None,
            lsp_esplora,
            next_factory: 0,
            joins: Vec::new(),
        }
    }

    /// A wallet restored from its words: the words do not say which factory key indexes the
    /// lost copy used, so this one starts at a random index far above them (from 2^24, below
    /// 2^30), which no earlier copy reaches.
    pub fn restored<R: rand::RngCore>(
        network: Network,
        lsp_origin: &str,
        lsp_esplora: Option<String>,
        rng: &mut R,
    ) -> Profile {
        let mut profile = Profile::new(network, lsp_origin, lsp_esplora);
        profile.next_factory = (1 << 24) + rng.next_u32() % ((1 << 30) - (1 << 24));
        profile
    }

    /// Takes the next factory key index; the caller stores the profile before using it.
    pub fn take_factory_index(&mut self) -> Result<FactoryIndex, KeysError> {
        let index = FactoryIndex::new(self.next_factory)?;
        self.next_factory = index.next()?.get();
        Ok(index)
    }

    /// The Esplora endpoint to read: the user's, else the LSP's.
    pub fn esplora<'a>(&'a self, lsp_default: &'a str) -> &'a str {
        self.esplora_url
            .as_deref()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or(lsp_default)
    }

    /// The latest join attempt.
    pub fn last_join(&self) -> Option<&JoinRecord> {
        self.joins.last()
    }

    /// The join attempt using factory key `index`.
    pub fn join_mut(&mut self, index: u32) -> Option<&mut JoinRecord> {
        self.joins.iter_mut().find(|j| j.factory_index == index)
    }

    /// Encodes for the vault.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a profile always serializes")
    }

    /// Decodes from the vault.
    pub fn decode(bytes: &[u8]) -> Option<Profile> {
        serde_json::from_slice(bytes).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factory_indexes_are_never_handed_out_twice() {
        let mut p = Profile::new(Network::Regtest, "http://127.0.0.1:8800/", None);
        assert_eq!(p.lsp_origin, "http://127.0.0.1:8800");
        assert_eq!(p.take_factory_index().expect("index").get(), 0);
        assert_eq!(p.take_factory_index().expect("index").get(), 1);
        let back = Profile::decode(&p.encode()).expect("round trip");
        assert_eq!(back, p);
        assert_eq!(back.next_factory, 2);
    }

    #[test]
    fn a_restored_wallet_starts_far_above_the_lost_copy() {
        for _ in 0..100 {
            let p = Profile::restored(Network::Regtest, "http://lsp", None, &mut rand::rngs::OsRng);
            assert!(p.next_factory >= 1 << 24 && p.next_factory < 1 << 30);
        }
    }

    #[test]
    fn esplora_override_wins_unless_blank() {
        let mut p = Profile::new(Network::Regtest, "http://lsp", None);
        assert_eq!(p.esplora("http://lsp-esplora"), "http://lsp-esplora");
        p.esplora_url = Some("  ".into());
        assert_eq!(p.esplora("http://lsp-esplora"), "http://lsp-esplora");
        p.esplora_url = Some("http://mine".into());
        assert_eq!(p.esplora("http://lsp-esplora"), "http://mine");
    }
}
