//! The wallet's settings and history, stored as one JSON record in the vault.

use std::collections::BTreeSet;

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
    /// The user's own Esplora endpoint; `None` reads the network's default
    /// ([`crate::chain::default_esplora`]), never the LSP's.
    pub esplora_url: Option<String>,
    /// The Esplora endpoint the chosen LSP's terms named when it was chosen (so the wallet
    /// can read the chain when the LSP is gone).
    pub lsp_esplora: Option<String>,
    /// The highest chain tip this wallet had seen when it last stored its profile.
    #[serde(default)]
    pub highest_tip: Option<u32>,
    /// The next unused factory key index.
    pub next_factory: u32,
    /// Every join attempt, oldest first.
    pub joins: Vec<JoinRecord>,
    /// The factories whose dying period the wallet already announced with a browser
    /// notification (once per factory).
    #[serde(default)]
    pub dying_announced: Vec<FactoryId>,
    /// The keyless watchtower the wallet keeps up to date (`shared::tower`), if the user chose
    /// one: it answers for the wallet while no page of it is open.
    #[serde(default)]
    pub watchtower: Option<String>,
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
    /// The fee quoted and accepted (the plan's until the LSP's quote came; the channel owes it
    /// and pays it from its first payment received).
    #[serde(with = "bitcoin::amount::serde::as_sat")]
    pub fee: Amount,
    /// The factory, once the LSP accepted the join.
    pub factory: Option<FactoryId>,
    /// The funding transaction, once broadcast.
    pub funding: Option<Txid>,
    /// How the session ended, in words (`None` while it runs).
    pub ended: Option<String>,
    /// The factory this one's whole balance moved to, once its key was released to the
    /// provider (`shared::lifecycle`): the factory holds nothing of this wallet's any more, and
    /// its funding output is the provider's to spend.
    #[serde(default)]
    pub moved_to: Option<FactoryId>,
}

impl Profile {
    /// A new wallet's profile.
    pub fn new(network: Network, lsp_origin: &str, lsp_esplora: Option<String>) -> Profile {
        Profile {
            network,
            lsp_origin: lsp_origin.trim_end_matches('/').to_string(),
            esplora_url: None,
            lsp_esplora,
            highest_tip: None,
            next_factory: 0,
            joins: Vec::new(),
            dying_announced: Vec::new(),
            watchtower: None,
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

    /// The Esplora endpoint to read: the user's, else the network's default (not the LSP's).
    pub fn esplora(&self) -> String {
        match self.esplora_url.as_deref().filter(|u| !u.trim().is_empty()) {
            Some(url) => crate::chain::normalize(url),
            None => crate::chain::default_esplora(self.network).to_string(),
        }
    }

    /// Whether the wallet reads the chain from its LSP's own source (`lsp_esplora` if given,
    /// else the one the LSP named when chosen): then the LSP could hide the chain from it.
    pub fn reads_lsp_chain(&self, lsp_esplora: Option<&str>) -> bool {
        lsp_esplora
            .or(self.lsp_esplora.as_deref())
            .is_some_and(|lsp| crate::chain::same_source(&self.esplora(), lsp))
    }

    /// The latest join attempt.
    pub fn last_join(&self) -> Option<&JoinRecord> {
        self.joins.last()
    }

    /// The join attempt using factory key `index`.
    pub fn join_mut(&mut self, index: u32) -> Option<&mut JoinRecord> {
        self.joins.iter_mut().find(|j| j.factory_index == index)
    }

    /// The factories this wallet moved out of: nothing of its own is left in them, so no
    /// screen shows them as its factory and no watch leaves them on chain.
    pub fn moved(&self) -> BTreeSet<FactoryId> {
        self.joins
            .iter()
            .filter(|j| j.moved_to.is_some())
            .filter_map(|j| j.factory)
            .collect()
    }

    /// Records that `from`'s balance moved to `to` and its key was released. Whether a join
    /// into `from` is on record.
    pub fn mark_moved(&mut self, from: FactoryId, to: FactoryId) -> bool {
        let mut found = false;
        for join in self.joins.iter_mut().filter(|j| j.factory == Some(from)) {
            join.moved_to = Some(to);
            join.ended = Some(format!("moved to factory {to}"));
            found = true;
        }
        found
    }

    /// The join that made this wallet a member of `factory`.
    pub fn join_of(&self, factory: FactoryId) -> Option<&JoinRecord> {
        self.joins.iter().rev().find(|j| j.factory == Some(factory))
    }

    /// Records that the dying period of `factory` was announced; whether it was news.
    pub fn announce_dying(&mut self, factory: FactoryId) -> bool {
        if self.dying_announced.contains(&factory) {
            return false;
        }
        self.dying_announced.push(factory);
        true
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
    fn the_chain_source_is_the_users_else_the_networks_never_the_lsps() {
        let mut p = Profile::new(
            Network::Signet,
            "http://lsp",
            Some("http://lsp-esplora".into()),
        );
        assert_eq!(p.esplora(), crate::chain::default_esplora(Network::Signet));
        assert!(!p.reads_lsp_chain(None));
        p.esplora_url = Some("  ".into());
        assert_eq!(p.esplora(), crate::chain::default_esplora(Network::Signet));
        p.esplora_url = Some("http://mine/".into());
        assert_eq!(p.esplora(), "http://mine");
        p.esplora_url = Some("http://lsp-esplora/".into());
        assert!(p.reads_lsp_chain(None));
        assert!(!p.reads_lsp_chain(Some("http://other")));
    }

    #[test]
    fn a_profile_stored_before_the_highest_tip_existed_still_opens() {
        let p = Profile::new(Network::Regtest, "http://lsp", None);
        let mut json: serde_json::Value = serde_json::from_slice(&p.encode()).expect("json");
        json.as_object_mut().expect("object").remove("highest_tip");
        let back = Profile::decode(json.to_string().as_bytes()).expect("old profile");
        assert_eq!(back.highest_tip, None);
    }

    fn joined(p: &mut Profile, factory: u64) {
        let index = p.take_factory_index().expect("index").get();
        p.joins.push(JoinRecord {
            factory_index: index,
            lsp_origin: p.lsp_origin.clone(),
            channel: Amount::from_sat(100_000),
            liquidity: Amount::from_sat(50_000),
            fee: Amount::from_sat(1_000),
            factory: Some(FactoryId(factory)),
            funding: None,
            ended: Some("open".into()),
            moved_to: None,
        });
    }

    #[test]
    fn a_moved_factory_is_remembered_across_a_reload() {
        let mut p = Profile::new(Network::Regtest, "http://lsp", None);
        joined(&mut p, 7);
        joined(&mut p, 9);
        assert!(p.moved().is_empty());
        assert!(!p.mark_moved(FactoryId(8), FactoryId(9)), "no join into 8");
        assert!(p.mark_moved(FactoryId(7), FactoryId(9)));
        let back = Profile::decode(&p.encode()).expect("round trip");
        assert_eq!(back.moved(), BTreeSet::from([FactoryId(7)]));
        let old = back.join_of(FactoryId(7)).expect("join");
        assert_eq!(old.moved_to, Some(FactoryId(9)));
        assert_eq!(old.ended.as_deref(), Some("moved to factory 9"));
        assert_eq!(back.join_of(FactoryId(9)).and_then(|j| j.moved_to), None);
    }

    #[test]
    fn a_dying_period_is_announced_once_per_factory() {
        let mut p = Profile::new(Network::Regtest, "http://lsp", None);
        assert!(p.announce_dying(FactoryId(3)));
        assert!(!p.announce_dying(FactoryId(3)));
        assert!(p.announce_dying(FactoryId(4)));
        let back = Profile::decode(&p.encode()).expect("round trip");
        assert!(!back.clone().announce_dying(FactoryId(4)));
    }

    #[test]
    fn a_profile_stored_before_moving_existed_still_opens() {
        let mut p = Profile::new(Network::Regtest, "http://lsp", None);
        joined(&mut p, 1);
        let mut json: serde_json::Value = serde_json::from_slice(&p.encode()).expect("json");
        json.as_object_mut()
            .expect("object")
            .remove("dying_announced");
        json["joins"][0]
            .as_object_mut()
            .expect("join")
            .remove("moved_to");
        let back = Profile::decode(json.to_string().as_bytes()).expect("old profile");
        assert!(back.moved().is_empty());
        assert!(back.dying_announced.is_empty());
    }
}
