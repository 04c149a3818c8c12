//! A factory funded with real coins and signed with real MuSig2, and each client's kit.

use bitcoin::secp256k1::{PublicKey, Secp256k1};
use bitcoin::{Address, Network, OutPoint, ScriptBuf, Transaction};
use shared::exit::ExitKit;
use shared::params::FactoryParams;
use shared::testing::{sample_proposal, sign_all, TestKeys};
use shared::tree::{FactoryProposal, FactoryTree, NodeKind};
use shared::types::ClientId;
use shared::verify::{
    check_advance, check_funding_tx, check_path, check_proposal, ClientPolicy, Expectation,
};

use super::expect::musig_internal;
use super::Regtest;

/// A factory funded on chain: the LSP's signed tree for every epoch (oldest first).
pub struct Factory {
    /// The funding transaction (paid by the devnet faucet).
    pub funding_tx: Transaction,
    /// The signed tree of each epoch, `trees[e]` for epoch `e`.
    pub trees: Vec<FactoryTree>,
    /// Every participant's factory key (the LSP's signs its timeout-leaf sweeps).
    pub keys: TestKeys,
}

impl Factory {
    /// Builds the proposal for `clients` clients, pays its funding output exactly with the
    /// faucet, confirms it, builds the tree on that outpoint (created at the funding height),
    /// signs every node with real MuSig2, then advances and re-signs `advances` epochs.
    pub async fn create(rt: &Regtest, clients: usize, seed: u64, advances: u32) -> Factory {
        let keys = TestKeys::generate(clients, seed);
        let template = sample_proposal(FactoryParams::regtest(), &keys, seed);
        let funding =
            FactoryProposal::funding_output(&template.params, &template.lsp_key, &template.clients)
                .expect("valid clients");
        assert_eq!(funding.value, template.funding_amount);
        let address =
            Address::from_script(&funding.script_pubkey, Network::Regtest).expect("P2TR address");
        assert_eq!(
            funding.script_pubkey,
            independent_funding_script(&template),
            "funding output = BIP-86 tweak of MuSig2(LSP + all clients)"
        );

        let txid = rt
            .devnet
            .faucet(&address, funding.value)
            .await
            .expect("faucet pays the funding output");
        let created = rt.mine(1).await;
        let funding_tx = rt
            .rpc()
            .get_raw_transaction(&txid)
            .await
            .expect("getrawtransaction")
            .expect("the funding tx");
        let vouts: Vec<usize> = (0..funding_tx.output.len())
            .filter(|&i| funding_tx.output[i] == funding)
            .collect();
        assert_eq!(vouts.len(), 1, "one output pays exactly the funding output");
        let outpoint = OutPoint::new(txid, vouts[0] as u32);
        assert_eq!(rt.unspent(outpoint).await, funding);

        let proposal = FactoryProposal {
            funding_outpoint: outpoint,
            creation_height: created,
            ..template
        };
        let mut tree = FactoryTree::build(&proposal).expect("the tree builds");
        assert_eq!(tree.funding_output(), &funding);
        let mut rng = rand::thread_rng();
        sign_all(&mut tree, &keys, &mut rng).expect("MuSig2 signs every node");
        assert!(tree.is_fully_signed());
        let mut trees = vec![tree];
        for _ in 0..advances {
            let mut next = trees
                .last()
                .expect("one tree")
                .advance_epoch()
                .expect("an epoch is left");
            assert!(
                !next.unsigned_jobs().is_empty(),
                "an advance changes states"
            );
            sign_all(&mut next, &keys, &mut rng).expect("MuSig2 signs the new states");
            trees.push(next);
        }
        Factory {
            funding_tx,
            trees,
            keys,
        }
    }

    /// The proposal (epoch 0).
    pub fn proposal(&self) -> &FactoryProposal {
        self.trees[0].proposal()
    }

    /// `client`'s kit as its wallet would hold it: every epoch's path, each checked (proposal
    /// at creation, path, funding tx, advance from the previous epoch) before it is stored.
    pub fn client_kit(&self, client: ClientId) -> ExitKit {
        let policy = ClientPolicy::for_network(Network::Regtest);
        let proposal = self.proposal();
        let entry = &proposal.clients[client.0 as usize];
        let expect = Expectation {
            my_key: entry.key,
            lsp_key: proposal.lsp_key,
            channel: entry.channel,
            lstock: entry.lstock,
        };
        check_proposal(proposal, &expect, &policy, proposal.creation_height)
            .expect("the client accepts the proposal");
        let mut kit: Option<ExitKit> = None;
        for tree in &self.trees {
            let path = tree.client_path(client).expect("a client of the tree");
            check_path(&path, &policy).expect("the stored path checks");
            check_funding_tx(&path, &self.funding_tx).expect("funding tx matches");
            match kit.as_mut() {
                None => kit = Some(ExitKit::new(path).expect("signed path")),
                Some(kit) => {
                    check_advance(kit.latest(), &path).expect("a valid advance");
                    kit.add(path).expect("signed path");
                }
            }
        }
        kit.expect("at least one epoch")
    }

    /// The signed transaction of node `index` (0 = root) of `client`'s path in `epoch`, as
    /// the LSP holds it, with its kind.
    pub fn path_tx(&self, epoch: usize, client: ClientId, index: usize) -> (NodeKind, Transaction) {
        let path = self.trees[epoch].client_path(client).expect("a client");
        let node = &path.nodes()[index];
        (node.kind, node.signed_tx().expect("signed"))
    }
}

/// The funding output's script, recomputed from the keys: P2TR, BIP-86 tweak of
/// MuSig2(LSP + all clients).
fn independent_funding_script(p: &FactoryProposal) -> ScriptBuf {
    let mut keys: Vec<PublicKey> = p.clients.iter().map(|c| c.key).collect();
    keys.push(p.lsp_key);
    ScriptBuf::new_p2tr(&Secp256k1::verification_only(), musig_internal(&keys), None)
}
