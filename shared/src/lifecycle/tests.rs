use std::collections::BTreeMap;

use bitcoin::{FeeRate, ScriptBuf};

use super::*;
use crate::params::FactoryParams;
use crate::pay::ChannelId;
use crate::testing::tree::{sample_proposal, TestKeys};
use crate::tree::FactoryProposal;
use crate::types::{ClientId, FactoryId};
use crate::wire::{Envelope, WireMsg};

fn factory(n: usize) -> (TestKeys, FactoryProposal) {
    let keys = TestKeys::generate(n, 7);
    let proposal = sample_proposal(FactoryParams::regtest(), &keys, 7);
    (keys, proposal)
}

fn released(keys: &TestKeys, n: usize) -> BTreeMap<ClientId, bitcoin::secp256k1::SecretKey> {
    (0..n)
        .map(|i| (ClientId(i as u32), keys.clients[i]))
        .collect()
}

#[test]
fn with_every_key_the_lsp_alone_closes_the_factory_by_key_path() {
    let (keys, proposal) = factory(5);
    let to = ScriptBuf::from_bytes([0x51, 0x20].into_iter().chain([3u8; 32]).collect());
    let rate = FeeRate::from_sat_per_vb(2).unwrap();
    let unsigned = build_close(&proposal, &to, rate).unwrap();
    let mut rng = rand::thread_rng();
    let tx = sign_close(
        &mut rng,
        &proposal,
        unsigned,
        &keys.lsp,
        &released(&keys, 5),
    )
    .unwrap();
    assert_eq!(tx.input.len(), 1);
    assert_eq!(tx.output.len(), 1);
    assert_eq!(tx.input[0].previous_output, proposal.funding_outpoint);
    let fee = proposal.funding_amount - tx.output[0].value;
    assert_eq!(fee, rate.fee_vb(tx.vsize() as u64).unwrap());
    let funding =
        FactoryProposal::funding_output(&proposal.params, &proposal.lsp_key, &proposal.clients)
            .unwrap();
    crate::testing::tree::consensus_verify_tx(&tx, &funding).expect("Bitcoin Core accepts it");
}

#[test]
fn a_missing_or_wrong_key_stops_the_close() {
    let (keys, proposal) = factory(3);
    let to = ScriptBuf::from_bytes([0x51, 0x20].into_iter().chain([9u8; 32]).collect());
    let unsigned = build_close(&proposal, &to, FeeRate::BROADCAST_MIN).unwrap();
    let mut rng = rand::thread_rng();
    let mut some = released(&keys, 3);
    some.remove(&ClientId(1));
    let err = sign_close(&mut rng, &proposal, unsigned.clone(), &keys.lsp, &some).unwrap_err();
    assert!(matches!(err, CloseError::MissingKey { client: 1 }), "{err}");
    some.insert(ClientId(1), keys.clients[2]);
    let err = sign_close(&mut rng, &proposal, unsigned.clone(), &keys.lsp, &some).unwrap_err();
    assert!(matches!(err, CloseError::WrongKey { client: 1 }), "{err}");
    let all = released(&keys, 3);
    let err = sign_close(&mut rng, &proposal, unsigned, &keys.clients[0], &all).unwrap_err();
    assert!(matches!(err, CloseError::WrongLspKey), "{err}");
}

#[test]
fn a_release_names_the_members_own_key_and_travels_as_hex() {
    let (keys, proposal) = factory(3);
    let channel = ChannelId {
        factory: FactoryId(4),
        client: ClientId(2),
    };
    let good = KeyRelease {
        channel,
        secret: keys.clients[2],
    };
    good.check(&proposal).unwrap();
    let wrong = KeyRelease {
        channel,
        secret: keys.clients[1],
    };
    assert!(matches!(
        wrong.check(&proposal),
        Err(ReleaseError::WrongKey { client: 2, .. })
    ));
    let absent = KeyRelease {
        channel: ChannelId {
            client: ClientId(9),
            ..channel
        },
        secret: keys.clients[2],
    };
    assert!(matches!(
        absent.check(&proposal),
        Err(ReleaseError::NoSuchClient { client: 9 })
    ));
    let frame = Envelope::new(WireMsg::KeyRelease(good.clone())).encode();
    assert!(frame.contains(&hex::encode(keys.clients[2].secret_bytes())));
    assert!(!format!("{good:?}").contains(&hex::encode(keys.clients[2].secret_bytes())));
    let back = Envelope::decode(&frame).unwrap();
    assert_eq!(back.msg, WireMsg::KeyRelease(good));
}

#[test]
fn a_life_runs_active_dying_expired_timed_out() {
    let (_, proposal) = factory(3);
    let life = Life::of(&proposal);
    let p = &proposal.params;
    let at = |h: u32| bitcoin::absolute::Height::from_consensus(h).unwrap();
    let start = proposal.creation_height.to_consensus_u32();
    assert_eq!(life.dying_at, at(start + p.active.to_blocks()));
    assert_eq!(
        life.dying_ends,
        at(start + p.active.to_blocks() + p.dying.to_blocks())
    );
    assert_eq!(life.timeout, at(start + p.timeout_delta.to_blocks()));
    assert!(life.dying_ends < life.timeout && life.timeout < life.sweep_at);
    assert_eq!(life.stage(at(start)), Stage::Active);
    assert_eq!(
        life.next(at(start)),
        ("its dying period starts", life.dying_at)
    );
    assert_eq!(life.stage(life.dying_at), Stage::Dying);
    assert_eq!(life.next(life.dying_at).1, life.dying_ends);
    assert_eq!(life.stage(life.dying_ends), Stage::Expired);
    assert_eq!(life.stage(life.timeout), Stage::TimedOut);
    assert_eq!(life.next(life.timeout).1, life.sweep_at);
}

/// Every released member is under exactly one frontier node, no member who stayed is under any,
/// and the node above each frontier node has a member who stayed.
fn check_frontier(
    tree: &crate::tree::FactoryTree,
    released: &std::collections::BTreeSet<ClientId>,
) {
    let frontier = released_frontier(tree, released);
    let n = tree.proposal().client_count();
    for c in 0..n {
        let covering = frontier
            .iter()
            .filter(|id| tree.node(**id).unwrap().signers.contains(ClientId(c)))
            .count();
        let expected = usize::from(released.contains(&ClientId(c)));
        assert_eq!(
            covering, expected,
            "client {c} of {n}, released {released:?}"
        );
    }
    for id in &frontier {
        let node = tree.node(*id).unwrap();
        let above = tree
            .nodes()
            .iter()
            .find(|p| p.txid() == node.spent_outpoint().txid);
        match above {
            Some(p) => assert!(
                (p.signers.start.0..p.signers.end.0).any(|c| !released.contains(&ClientId(c))),
                "{id:?} is not the highest"
            ),
            None => assert_eq!(released.len() as u32, n, "the root only when all left"),
        }
    }
}

#[test]
fn the_frontier_covers_exactly_the_members_who_left() {
    for n in [1usize, 2, 3, 5, 8, 13] {
        let (_, proposal) = factory(n);
        let tree = crate::tree::FactoryTree::build(&proposal).unwrap();
        for mask in 0u32..(1 << n.min(8)) {
            let released = (0..n as u32)
                .filter(|c| *c >= 8 || mask & (1 << c) != 0)
                .map(ClientId)
                .collect();
            check_frontier(&tree, &released);
        }
    }
    // All left: the root, whose input is the funding output (the close's).
    let (_, proposal) = factory(4);
    let tree = crate::tree::FactoryTree::build(&proposal).unwrap();
    let all = (0..4).map(ClientId).collect();
    assert_eq!(released_frontier(&tree, &all), vec![tree.root().id]);
    // Below a kickoff, its state; below a state, a leaf each.
    let state = children(&tree, tree.root().id);
    assert_eq!(state.len(), 1);
    assert!(matches!(
        tree.node(state[0]).unwrap().kind,
        crate::tree::NodeKind::State { .. }
    ));
    assert_eq!(children(&tree, tree.distribution().id), vec![]);
}

#[test]
fn the_lsp_sweeps_a_subtree_every_member_left_with_one_key_path_spend() {
    let (keys, proposal) = factory(5);
    let tree = crate::tree::FactoryTree::build(&proposal).unwrap();
    let to = ScriptBuf::from_bytes([0x51, 0x20].into_iter().chain([5u8; 32]).collect());
    let rate = FeeRate::from_sat_per_vb(3).unwrap();
    let mut rng = rand::thread_rng();
    // Client 0 stays; the others left.
    let all = released(&keys, 5);
    let mut left = all.clone();
    left.remove(&ClientId(0));
    let frontier = released_frontier(&tree, &left.keys().copied().collect());
    assert!(!frontier.is_empty());
    for id in frontier {
        let node = tree.node(id).unwrap();
        let unsigned = build_sweep(node, &to, rate).unwrap();
        assert_eq!(unsigned.input[0].previous_output, node.spent_outpoint());
        let tx = sign_sweep(
            &mut rng,
            &proposal,
            node,
            unsigned.clone(),
            &keys.lsp,
            &left,
        )
        .unwrap();
        let fee = node.prevout.value - tx.output[0].value;
        assert_eq!(fee, rate.fee_vb(tx.vsize() as u64).unwrap());
        crate::testing::tree::consensus_verify_tx(&tx, &node.prevout)
            .unwrap_or_else(|e| panic!("Bitcoin Core refuses the sweep of {:?}: {e}", node.kind));
        // The member who stayed is below none of them; a wrong key is refused.
        let mut wrong = left.clone();
        let first = node.signers.start;
        wrong.insert(first, keys.clients[0]);
        let err = sign_sweep(&mut rng, &proposal, node, unsigned, &keys.lsp, &wrong).unwrap_err();
        assert!(matches!(err, CloseError::WrongKey { .. }), "{err}");
    }
    // A subtree with the stayer in it cannot be swept.
    let leaf0 = tree.leaf(ClientId(0)).unwrap();
    let unsigned = build_sweep(leaf0, &to, rate).unwrap();
    let err = sign_sweep(&mut rng, &proposal, leaf0, unsigned, &keys.lsp, &left).unwrap_err();
    assert!(matches!(err, CloseError::MissingKey { client: 0 }), "{err}");
    // The distribution transaction's input is the close's, never a sweep's.
    let err = build_sweep(tree.distribution(), &to, rate).unwrap_err();
    assert!(matches!(err, CloseError::NotSweepable), "{err}");
}
