//! How a [`ClientPath`] is serialized: compact, because every wallet keeps one per factory
//! state and a factory of N clients makes the naive form O(N) twice over.
//!
//! - The proposal's clients are one base64 string, 49 bytes each (compressed key, channel
//!   and L-stock values in satoshis, big-endian), instead of a JSON object each.
//! - The distribution transaction (N + 1 outputs) is not stored: it is a function of the
//!   proposal, the timeout and the funding output, rebuilt on load without any key
//!   aggregation (N BIP-86 tweaks). Only its id, the funding output and its signature are kept.
//!   A rebuild that differed from what was signed would not verify, and every loaded path's
//!   signatures are verified before use ([`crate::exit::ExitKit`]), so a mismatch is an error,
//!   never a wrong transaction held silently.
//!
//! At N = 1024 this is about a third of the naive form. Paths stored in the naive form (whole
//! client list and distribution transaction) still load.
//!
//! Every member of a factory rebuilds the same outputs, and a watchtower loads the paths of
//! many members of one factory, each appointment again: the last few factories' outputs are
//! kept ([`RECENT`]), keyed by a digest of the packed clients and the anchor value they are a
//! function of.

use std::sync::{Arc, Mutex};

use base64::{engine::general_purpose::STANDARD, Engine};
use bitcoin::absolute::Height;
use bitcoin::hashes::{sha256, Hash, HashEngine};
use bitcoin::secp256k1::{schnorr, PublicKey};
use bitcoin::{Amount, OutPoint, TxOut};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::ClientPath;
use crate::params::{Epoch, FactoryParams};
use crate::tree::{
    distribution_node, distribution_outputs, ClientEntry, FactoryProposal, TreeNode,
};
use crate::types::{ClientId, NodeId};

/// Bytes of one packed client: key, channel, L-stock.
const PACKED: usize = 33 + 8 + 8;

/// How many factories' distribution outputs [`RECENT`] keeps.
const RECENT_FACTORIES: usize = 8;

/// The distribution outputs of the last [`RECENT_FACTORIES`] proposals loaded, newest last.
static RECENT: Mutex<Vec<(sha256::Hash, Arc<Vec<TxOut>>)>> = Mutex::new(Vec::new());

/// The distribution outputs of `proposal`, whose clients pack to `packed`: from [`RECENT`], or
/// built (and kept).
fn outputs_of(proposal: &FactoryProposal, packed: &str) -> Vec<TxOut> {
    let mut engine = sha256::Hash::engine();
    engine.input(packed.as_bytes());
    engine.input(&proposal.params.anchor_value.to_sat().to_be_bytes());
    let key = sha256::Hash::from_engine(engine);
    let recent = |r: &[(sha256::Hash, Arc<Vec<TxOut>>)]| {
        r.iter().find(|(k, _)| *k == key).map(|(_, o)| o.clone())
    };
    let known = recent(&RECENT.lock().unwrap_or_else(|e| e.into_inner()));
    let outputs = known.unwrap_or_else(|| {
        let built = Arc::new(distribution_outputs(proposal));
        let mut r = RECENT.lock().unwrap_or_else(|e| e.into_inner());
        if r.len() == RECENT_FACTORIES {
            r.remove(0);
        }
        r.push((key, built.clone()));
        built
    });
    outputs.as_ref().clone()
}

#[derive(Serialize, Deserialize)]
struct Stored {
    proposal: StoredProposal,
    client: ClientId,
    timeout: Height,
    sweep_height: Height,
    nodes: Vec<TreeNode>,
    distribution: StoredDistribution,
}

/// [`FactoryProposal`], its clients packed.
#[derive(Serialize, Deserialize)]
struct StoredProposal {
    params: FactoryParams,
    lsp_key: PublicKey,
    clients: Clients,
    funding_outpoint: OutPoint,
    #[serde(with = "bitcoin::amount::serde::as_sat")]
    funding_amount: Amount,
    creation_height: Height,
    epoch: Epoch,
}

/// The clients: packed (written), or the proposal's own list (read, from older paths).
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Clients {
    Packed(String),
    List(Vec<ClientEntry>),
}

/// The distribution transaction: what it cannot be rebuilt without (written), or whole (read,
/// from older paths).
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum StoredDistribution {
    Rebuilt {
        id: NodeId,
        funding: TxOut,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signature: Option<schnorr::Signature>,
    },
    Whole(Box<TreeNode>),
}

fn pack(clients: &[ClientEntry]) -> String {
    let mut bytes = Vec::with_capacity(clients.len() * PACKED);
    for c in clients {
        bytes.extend_from_slice(&c.key.serialize());
        bytes.extend_from_slice(&c.channel.to_sat().to_be_bytes());
        bytes.extend_from_slice(&c.lstock.to_sat().to_be_bytes());
    }
    STANDARD.encode(bytes)
}

fn unpack(text: &str) -> Result<Vec<ClientEntry>, String> {
    let bytes = STANDARD
        .decode(text)
        .map_err(|e| format!("packed clients are not base64: {e}"))?;
    if bytes.len() % PACKED != 0 {
        return Err(format!(
            "packed clients are {} bytes, not a multiple of {PACKED}",
            bytes.len()
        ));
    }
    bytes
        .chunks_exact(PACKED)
        .map(|c| {
            let sat = |b: &[u8]| Amount::from_sat(u64::from_be_bytes(b.try_into().expect("8")));
            Ok(ClientEntry {
                key: PublicKey::from_slice(&c[..33])
                    .map_err(|e| format!("a packed client key is invalid: {e}"))?,
                channel: sat(&c[33..41]),
                lstock: sat(&c[41..49]),
            })
        })
        .collect()
}

impl Serialize for ClientPath {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let p = &self.proposal;
        Stored {
            proposal: StoredProposal {
                params: p.params.clone(),
                lsp_key: p.lsp_key,
                clients: Clients::Packed(pack(&p.clients)),
                funding_outpoint: p.funding_outpoint,
                funding_amount: p.funding_amount,
                creation_height: p.creation_height,
                epoch: p.epoch,
            },
            client: self.client,
            timeout: self.timeout,
            sweep_height: self.sweep_height,
            nodes: self.nodes.clone(),
            distribution: StoredDistribution::Rebuilt {
                id: self.distribution.id,
                funding: self.distribution.prevout.clone(),
                signature: self.distribution.signature,
            },
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for ClientPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let stored = Stored::deserialize(d)?;
        let p = stored.proposal;
        // The packed form keys the outputs kept (`outputs_of`); a list is packed only if its
        // distribution transaction is to be rebuilt.
        let (clients, packed) = match p.clients {
            Clients::Packed(text) => (unpack(&text).map_err(serde::de::Error::custom)?, Some(text)),
            Clients::List(list) => (list, None),
        };
        let proposal = FactoryProposal {
            params: p.params,
            lsp_key: p.lsp_key,
            clients,
            funding_outpoint: p.funding_outpoint,
            funding_amount: p.funding_amount,
            creation_height: p.creation_height,
            epoch: p.epoch,
        };
        let distribution = match stored.distribution {
            StoredDistribution::Whole(node) => *node,
            StoredDistribution::Rebuilt {
                id,
                funding,
                signature,
            } => TreeNode {
                signature,
                ..distribution_node(
                    &proposal,
                    id,
                    stored.timeout,
                    funding,
                    outputs_of(
                        &proposal,
                        &packed.unwrap_or_else(|| pack(&proposal.clients)),
                    ),
                )
            },
        };
        Ok(ClientPath {
            proposal,
            client: stored.client,
            timeout: stored.timeout,
            sweep_height: stored.sweep_height,
            nodes: stored.nodes,
            distribution,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{sample_proposal, sign_all, TestKeys};
    use crate::tree::FactoryTree;
    use rand::SeedableRng;

    /// Client `client`'s signed path in a factory of `n`.
    fn signed_path(n: usize, client: u32, seed: u64) -> ClientPath {
        let keys = TestKeys::generate(n, seed);
        let p = sample_proposal(FactoryParams::regtest(), &keys, seed);
        let mut t = FactoryTree::build(&p).expect("sample proposals build");
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        sign_all(&mut t, &keys, &mut rng).expect("signs");
        t.client_path(ClientId(client)).expect("a member")
    }

    #[test]
    fn a_path_round_trips_and_the_distribution_is_rebuilt_whole() {
        let path = signed_path(9, 4, 3);
        let json = serde_json::to_value(&path).expect("serializes");
        assert!(json["proposal"]["clients"].is_string(), "packed");
        assert!(json["distribution"].get("tx").is_none(), "not stored");
        let back: ClientPath = serde_json::from_value(json).expect("deserializes");
        assert_eq!(back, path);
        assert_eq!(back.distribution().txid(), path.distribution().txid());
        let signature = back.distribution().signature.expect("kept");
        assert!(back.distribution().verify_signature(&signature));
    }

    #[test]
    fn paths_of_several_factories_load_each_with_its_own_outputs() {
        let paths = [
            signed_path(6, 1, 11),
            signed_path(6, 4, 11),
            signed_path(7, 1, 12),
        ];
        let texts: Vec<String> = paths
            .iter()
            .map(|p| serde_json::to_string(p).unwrap())
            .collect();
        // Interleaved, and more factories than are kept, so each is built, found and evicted.
        for _ in 0..2 {
            for (path, text) in paths.iter().zip(&texts) {
                let back: ClientPath = serde_json::from_str(text).unwrap();
                assert_eq!(&back, path);
            }
            for seed in 20..20 + RECENT_FACTORIES as u64 {
                let other = signed_path(3, 0, seed);
                let text = serde_json::to_string(&other).unwrap();
                assert_eq!(serde_json::from_str::<ClientPath>(&text).unwrap(), other);
            }
        }
    }

    #[test]
    fn a_path_stored_whole_by_an_older_wallet_still_loads() {
        let path = signed_path(5, 2, 4);
        let older = serde_json::json!({
            "proposal": serde_json::to_value(path.proposal()).unwrap(),
            "client": path.client(),
            "timeout": path.timeout(),
            "sweep_height": path.sweep_height(),
            "nodes": path.nodes(),
            "distribution": path.distribution(),
        });
        let back: ClientPath = serde_json::from_value(older).expect("deserializes");
        assert_eq!(back, path);
    }

    #[test]
    fn bad_packed_clients_are_a_clear_error() {
        let path = signed_path(3, 0, 5);
        let mut json = serde_json::to_value(&path).unwrap();
        json["proposal"]["clients"] = "AAAA".into();
        let e = serde_json::from_value::<ClientPath>(json.clone()).unwrap_err();
        assert!(e.to_string().contains("not a multiple of 49"), "{e}");
        json["proposal"]["clients"] = STANDARD.encode([7u8; PACKED]).into();
        let e = serde_json::from_value::<ClientPath>(json).unwrap_err();
        assert!(e.to_string().contains("key is invalid"), "{e}");
    }
}
