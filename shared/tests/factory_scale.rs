//! Large factories through the public API: N = 1100 clients (past 1024) under the mainnet
//! preset. Correctness only; timings belong to benches (`timing_probe` in the tree tests).

use bitcoin::absolute::Height;
use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
use bitcoin::{Amount, Network, OutPoint, Txid};
use shared::exit::worst_case_cost;
use shared::params::{BlockDelta, FactoryParams};
use shared::path::ClientPath;
use shared::tree::{ClientEntry, FactoryProposal, FactoryTree, NodeKind};
use shared::types::ClientId;
use shared::verify::{check_proposal, ClientPolicy, Expectation};

fn key(i: u64) -> PublicKey {
    let sk = SecretKey::from_slice(&sha256::Hash::hash(&i.to_be_bytes()).to_byte_array()).unwrap();
    PublicKey::from_secret_key(&Secp256k1::signing_only(), &sk)
}

#[test]
fn eleven_hundred_clients() {
    let n = 1100;
    let params = FactoryParams::mainnet();
    let clients: Vec<ClientEntry> = (0..n)
        .map(|i| ClientEntry {
            key: key(i),
            channel: Amount::from_sat(100_000 + i),
            lstock: Amount::from_sat(200_000),
        })
        .collect();
    let p = FactoryProposal {
        funding_amount: FactoryProposal::required_funding(&params, &clients).unwrap(),
        params,
        lsp_key: key(u64::MAX),
        clients,
        funding_outpoint: OutPoint::new(Txid::from_byte_array([3; 32]), 0),
        creation_height: Height::from_consensus(900_000).unwrap(),
        epoch: Default::default(),
    };
    let tree = FactoryTree::build(&p).unwrap();
    let leaves = tree
        .nodes()
        .iter()
        .filter(|n| matches!(n.kind, NodeKind::Leaf { .. }))
        .count();
    assert_eq!(leaves, n as usize);
    assert_eq!(tree.signing_jobs().len(), tree.nodes().len());
    assert_eq!(tree.distribution().tx.output.len(), n as usize + 1);

    let worst = worst_case_cost(&p.params, n as u32).unwrap();
    for c in [0, 517, n as u32 - 1] {
        let path = ClientPath::build(&p, ClientId(c)).unwrap();
        assert_eq!(Some(&path), tree.client_path(ClientId(c)).as_ref());
        assert!(path.exit_cost().blocks <= worst.blocks);
        assert_eq!(path.signing_jobs().len(), path.nodes().len() + 1);
        assert!(path.nodes().len() <= 10, "O(depth) nodes, not O(N)");
    }

    let me = 42;
    let expect = Expectation {
        my_key: key(me),
        lsp_key: p.lsp_key,
        channel: p.clients[me as usize].channel,
        lstock: p.clients[me as usize].lstock,
    };
    let path = check_proposal(
        &p,
        &expect,
        &ClientPolicy::for_network(Network::Bitcoin),
        p.creation_height,
    )
    .unwrap();
    assert_eq!(path.client(), ClientId(me as u32));
    // The timeout leaf's sweep height leaves a whole worst-case exit (a week) plus the
    // margin after the distribution's lock.
    let sweep_gap = BlockDelta::between(path.timeout(), path.sweep_height()).unwrap();
    assert_eq!(sweep_gap, p.params.sweep_delta);
    assert!(sweep_gap >= p.params.sweep_needed(worst.blocks).unwrap());
    assert_eq!(tree.sweep_height(), path.sweep_height());
}
