//! Exit planner tests on a simulated chain that enforces BIP-68 and `nLockTime` like a miner.

use bitcoin::absolute::{Height, LockTime};
use bitcoin::{OutPoint, Transaction, Txid};
use proptest::prelude::*;

use super::*;
use crate::params::{BlockDelta, FactoryParams};
use crate::path::ClientPath;
use crate::testing::{sample_proposal, sign_all_aggregated, TestKeys};
use crate::tree::{FactoryTree, NodeKind};
use crate::types::ClientId;

fn h(x: u32) -> Height {
    Height::from_consensus(x).unwrap()
}

/// A chain that only mines what consensus would: locks are checked against the block height.
struct Sim {
    chain: ChainSnapshot,
}

impl Sim {
    fn new(funding: Txid, at: u32) -> Sim {
        let mut chain = ChainSnapshot::new(h(at));
        chain.confirm_txid(funding, h(at));
        Sim { chain }
    }

    fn tip(&self) -> u32 {
        self.chain.tip_height().to_consensus_u32()
    }

    /// Mines `tx` in the next block, asserting it is final and its relative lock has passed.
    fn mine(&mut self, tx: &Transaction) {
        let height = self.tip() + 1;
        if let LockTime::Blocks(lock) = tx.lock_time {
            if tx.input[0].sequence.enables_absolute_lock_time() {
                assert!(lock.to_consensus_u32() < height, "nLockTime not reached");
            }
        }
        let input = &tx.input[0];
        assert!(
            self.chain.spending_txid(&input.previous_output).is_none(),
            "double spend"
        );
        if let Some(bitcoin::relative::LockTime::Blocks(d)) = input.sequence.to_relative_lock_time()
        {
            let parent = self.chain.confirmation_height(&input.previous_output.txid);
            let parent = parent.expect("parent confirmed").to_consensus_u32();
            assert!(
                height >= parent + u32::from(d.value()),
                "BIP-68 lock not reached"
            );
        }
        self.chain.confirm(tx, h(height));
    }

    fn mine_empty(&mut self, to: u32) {
        self.chain.set_tip(h(to.max(self.tip())));
    }

    /// Runs the planner to completion (at most `limit` steps) and returns the final action.
    fn run(&mut self, kit: &ExitKit, limit: usize) -> ExitAction {
        for _ in 0..limit {
            match kit.next_action(&self.chain) {
                ExitAction::Broadcast { tx, .. } => self.mine(&tx),
                ExitAction::WaitUntil { height, .. } => {
                    assert!(
                        height.to_consensus_u32() > self.tip(),
                        "waits must move forward"
                    );
                    self.mine_empty(height.to_consensus_u32());
                }
                done => return done,
            }
        }
        panic!("exit did not finish in {limit} steps");
    }
}

/// Signed trees for epochs `0..=last` and the kit of `client`.
fn setup(n: usize, last: u32, client: u32) -> (Vec<FactoryTree>, ExitKit) {
    let keys = TestKeys::generate(n, 3);
    let p = sample_proposal(FactoryParams::regtest(), &keys, 3);
    let mut trees = vec![FactoryTree::build(&p).unwrap()];
    for _ in 0..last {
        let next = trees.last().unwrap().advance_epoch().unwrap();
        trees.push(next);
    }
    for t in &mut trees {
        sign_all_aggregated(t, &keys).unwrap();
    }
    let mut kit = ExitKit::new(trees[0].client_path(ClientId(client)).unwrap()).unwrap();
    for t in &trees[1..] {
        kit.add(t.client_path(ClientId(client)).unwrap()).unwrap();
    }
    (trees, kit)
}

#[test]
fn walks_the_latest_state_to_the_leaf() {
    let (trees, kit) = setup(6, 5, 4);
    let latest = trees.last().unwrap();
    let mut sim = Sim::new(latest.proposal().funding_outpoint.txid, 100);
    let path = kit.latest();
    let cost = path.exit_cost();
    match sim.run(&kit, 40) {
        ExitAction::LeafConfirmed {
            leaf,
            channel,
            height,
        } => {
            assert_eq!(leaf, path.leaf().txid());
            assert_eq!(channel, path.channel_outpoint());
            // Every transaction mined as early as allowed: exactly the cost's block count.
            assert_eq!(height.to_consensus_u32() - 100, cost.blocks.to_blocks());
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(
        cost.blocks
            <= worst_case_cost(&latest.proposal().params, 6)
                .unwrap()
                .blocks
    );
}

#[test]
fn an_older_state_on_chain_is_followed_with_its_own_transactions() {
    let (trees, kit) = setup(4, 6, 1);
    let old = trees[0].client_path(ClientId(1)).unwrap();
    let newest = kit.latest().clone();
    let mut sim = Sim::new(old.funding_outpoint().txid, 100);
    // The LSP publishes the root kickoff and, after its long delay, the epoch-0 root state,
    // while the client is away.
    let kickoff = &old.nodes()[0];
    sim.mine(&kickoff.signed_tx().unwrap());
    let state = &old.nodes()[1];
    assert!(matches!(state.kind, NodeKind::State { layer: 0, .. }));
    sim.mine_empty(sim.tip() + state.relative_delay().to_blocks());
    sim.mine(&state.signed_tx().unwrap());
    assert_ne!(
        state.txid(),
        newest.nodes()[1].txid(),
        "epoch 6 has another root state"
    );
    // Epoch 0's root state is confirmed: the newest usable version is the newest one sharing
    // it (epoch 3: same layer-0 digit), and the walk ends at that version's leaf.
    let via = kit
        .versions()
        .iter()
        .rfind(|v| v.nodes()[1].txid() == state.txid())
        .unwrap();
    assert_eq!(via.epoch().0, 3);
    match sim.run(&kit, 40) {
        ExitAction::LeafConfirmed { leaf, .. } => assert_eq!(leaf, via.leaf().txid()),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn distribution_when_it_is_valid_or_the_tree_is_too_late() {
    let (trees, kit) = setup(3, 0, 2);
    let path = kit.latest().clone();
    let timeout = path.timeout().to_consensus_u32();
    let worst = path.worst_exit_blocks().to_blocks();
    assert_eq!(
        worst,
        path.exit_cost().blocks.to_blocks(),
        "epoch 0: longest delays"
    );
    let mut sim = Sim::new(path.funding_outpoint().txid, 100);
    let is_tree = |a: &ExitAction| matches!(a, ExitAction::Broadcast { kind, .. } if *kind != NodeKind::Distribution);
    let waits = ExitAction::WaitUntil {
        height: path.timeout(),
        node: path.distribution().id,
    };
    // Early on, a tree exit.
    assert!(is_tree(&kit.next_action(&sim.chain)));
    // Up to T - W a worst-case tree exit still has its leaf confirmed by block T, before the
    // distribution transaction could confirm (block T + 1): the tree, no margin taken off.
    sim.mine_empty(timeout - worst);
    assert!(is_tree(&kit.next_action(&sim.chain)));
    // One block later the distribution transaction comes first: wait for it.
    sim.mine_empty(timeout - worst + 1);
    assert_eq!(kit.next_action(&sim.chain), waits);
    sim.mine_empty(timeout - 1);
    assert_eq!(kit.next_action(&sim.chain), waits);
    match sim.run(&kit, 5) {
        ExitAction::Distributed { txid, payout } => {
            assert_eq!(txid, trees[0].distribution().txid());
            assert_eq!(payout, OutPoint::new(txid, 2));
            assert_eq!(payout, path.distribution_outpoint());
            assert_eq!(sim.tip(), timeout + 1, "in the first block its lock allows");
        }
        other => panic!("unexpected {other:?}"),
    }
}

/// The attack the two heights defeat: the client waits for the distribution transaction, and
/// the LSP spends the funding output (root split, then kickoff) in the last blocks before T,
/// killing it. The client walks its tree at once and its leaf confirms before the sweep
/// height, with the margin to spare.
#[test]
fn lsp_killing_the_distribution_at_the_last_block_cannot_rob_an_online_client() {
    let (trees, kit) = setup(8, 0, 0);
    let path = kit.latest().clone();
    let params = &path.proposal().params;
    let (timeout, sweep) = (
        path.timeout().to_consensus_u32(),
        path.sweep_height().to_consensus_u32(),
    );
    assert_eq!(sweep - timeout, params.sweep_delta.to_blocks());
    let mut sim = Sim::new(path.funding_outpoint().txid, 100);
    sim.mine_empty(timeout - 3);
    assert!(matches!(
        kit.next_action(&sim.chain),
        ExitAction::WaitUntil { node, .. } if node == path.distribution().id
    ));
    // The LSP's root split confirms in block T - 1 and its kickoff in block T.
    let split = trees[0].client_path(ClientId(0)).unwrap().nodes()[0].signed_tx();
    sim.mine_empty(timeout - 2);
    sim.mine(&split.unwrap());
    assert_eq!(sim.tip(), timeout - 1);
    // The client, called again at the next block, goes on with the tree at once.
    match kit.next_action(&sim.chain) {
        ExitAction::Broadcast { node, tx, .. } => {
            assert_eq!(node, path.nodes()[1].id);
            sim.mine(&tx);
        }
        other => panic!("expected the kickoff, got {other:?}"),
    }
    let leaf = match sim.run(&kit, 20) {
        ExitAction::LeafConfirmed { height, leaf, .. } => {
            assert_eq!(leaf, path.leaf().txid());
            height.to_consensus_u32()
        }
        other => panic!("unexpected {other:?}"),
    };
    // The walk started from tip T - 2 (the split was its first step).
    let worst = path.worst_exit_blocks().to_blocks();
    assert_eq!(leaf, timeout - 2 + worst);
    assert!(leaf + params.timeout_margin.to_blocks() <= sweep);
    // Under the old single height (the timeout leaf at T) the LSP could have swept the
    // state outputs from block T + 1, long before this leaf.
    assert!(leaf > timeout + 1);
}

#[test]
fn unknown_spends_and_missing_funding_are_reported() {
    let (_, kit) = setup(2, 0, 0);
    let path = kit.latest();
    let chain = ChainSnapshot::new(h(100));
    assert_eq!(kit.next_action(&chain), ExitAction::WaitForFunding);
    let mut sim = Sim::new(path.funding_outpoint().txid, 100);
    let close = Txid::from_raw_hash(bitcoin::hashes::Hash::all_zeros());
    sim.chain.record_spend(path.funding_outpoint(), close);
    assert_eq!(
        kit.next_action(&sim.chain),
        ExitAction::Stuck(ExitProblem::UnknownSpend {
            outpoint: path.funding_outpoint(),
            spender: close
        })
    );
}

#[test]
fn kit_refuses_unsigned_foreign_and_conflicting_paths() {
    let (trees, mut kit) = setup(3, 1, 0);
    let keys = TestKeys::generate(3, 3);
    let unsigned = ClientPath::build(trees[0].proposal(), ClientId(0)).unwrap();
    assert!(matches!(
        ExitKit::new(unsigned),
        Err(ExitError::Unsigned { .. })
    ));
    assert!(matches!(
        kit.add(trees[0].client_path(ClientId(1)).unwrap()),
        Err(ExitError::OtherFactory)
    ));
    // The same path again is fine; a different one for the same epoch is a conflict.
    kit.add(trees[1].client_path(ClientId(0)).unwrap()).unwrap();
    let mut p = sample_proposal(FactoryParams::regtest(), &keys, 3);
    p.creation_height = h(101);
    p.funding_amount = trees[0].proposal().funding_amount;
    let mut other = FactoryTree::build(&p).unwrap();
    sign_all_aggregated(&mut other, &keys).unwrap();
    assert!(matches!(
        kit.add(other.client_path(ClientId(0)).unwrap()),
        Err(ExitError::Conflict(_))
    ));
    let json = serde_json::to_string(&kit).unwrap();
    assert_eq!(serde_json::from_str::<ExitKit>(&json).unwrap(), kit);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// The worst case from parameters bounds every client's actual exit, in every epoch.
    #[test]
    fn prop_worst_case_bounds_every_path(
        n in 1usize..=200,
        dw in 2u8..=4,
        st in 2u8..=6,
        layers in 1u8..=3,
        seed in any::<u64>(),
        pick in any::<u32>(),
    ) {
        let params = FactoryParams {
            dw_arity: dw,
            static_arity: st,
            dw_layers: layers,
            timeout_delta: BlockDelta::from_blocks(200),
            sweep_delta: BlockDelta::from_blocks(100),
            ..FactoryParams::regtest()
        };
        let keys = TestKeys::generate(n, seed);
        let p = sample_proposal(params.clone(), &keys, seed);
        let worst = worst_case_cost(&params, n as u32).unwrap();
        let path = ClientPath::build(&p, ClientId(pick % n as u32)).unwrap();
        let cost = path.exit_cost();
        prop_assert!(cost.txs <= worst.txs);
        prop_assert!(cost.vbytes <= worst.vbytes);
        prop_assert!(cost.blocks <= worst.blocks);
        prop_assert!(cost.prepaid_fee <= worst.prepaid_fee);
        prop_assert!(cost.blocks <= path.worst_exit_blocks());
        prop_assert!(path.worst_exit_blocks() <= worst.blocks);
        let first = ClientPath::build(&p, ClientId(0)).unwrap();
        prop_assert_eq!(first.worst_exit_blocks(), worst.blocks);
        prop_assert_eq!(first.exit_cost(), worst, "epoch 0 is the worst case, client 0 the deepest");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Whenever the funding output is spent (the LSP publishes the root at any height up to
    /// T, killing the distribution transaction), and whatever the LSP publishes of the oldest
    /// state while the client is away, a client that comes online at any height up to T and
    /// follows its planner has its leaf confirmed at most W blocks later, so at least the
    /// margin before the sweep height.
    #[test]
    fn prop_a_walk_started_by_the_timeout_ends_before_the_sweep(
        n in 1usize..=12,
        advances in 0u32..=3,
        client in any::<u32>(),
        attack in any::<u32>(),
        online in any::<u32>(),
    ) {
        let client = client % n as u32;
        let (trees, kit) = setup(n, advances, client);
        let latest = kit.latest();
        let params = &latest.proposal().params;
        let (timeout, sweep) = (
            latest.timeout().to_consensus_u32(),
            latest.sweep_height().to_consensus_u32(),
        );
        let attack = 101 + attack % (timeout - 100); // 101..=T
        let online = attack + online % (timeout - attack + 1); // attack..=T
        let mut sim = Sim::new(latest.funding_outpoint().txid, 100);
        // The LSP walks the oldest state's path, each step as soon as it may, until the
        // client is back.
        let oldest = trees[0].client_path(ClientId(client)).unwrap();
        sim.mine_empty(attack - 1);
        sim.mine(&oldest.nodes()[0].signed_tx().unwrap());
        let mut next = 1;
        while sim.tip() < online && next < oldest.nodes().len() {
            let node = &oldest.nodes()[next];
            let parent = sim.chain.confirmation_height(&node.spent_outpoint().txid).unwrap();
            if sim.tip() + 1 >= parent.to_consensus_u32() + node.relative_delay().to_blocks() {
                sim.mine(&node.signed_tx().unwrap());
                next += 1;
            } else {
                sim.mine_empty(sim.tip() + 1);
            }
        }
        sim.mine_empty(online);
        let start = sim.tip();
        prop_assert!(start <= timeout);
        match sim.run(&kit, 40) {
            ExitAction::LeafConfirmed { height, .. } => {
                let height = height.to_consensus_u32();
                let worst = latest.worst_exit_blocks().to_blocks();
                prop_assert!(height <= start + worst);
                prop_assert!(height <= timeout + worst);
                prop_assert!(height + params.timeout_margin.to_blocks() <= sweep);
            }
            other => prop_assert!(false, "unexpected {:?}", other),
        }
    }
}

#[test]
fn kit_refuses_corrupt_paths() {
    let (trees, _) = setup(2, 0, 0);
    let path = trees[0].client_path(ClientId(0)).unwrap();
    let mut v = serde_json::to_value(&path).unwrap();
    // Another node's signature in place of the root's.
    v["nodes"][0]["signature"] = v["nodes"][1]["signature"].clone();
    let bad: ClientPath = serde_json::from_value(v.clone()).unwrap();
    assert_eq!(
        ExitKit::new(bad),
        Err(ExitError::BadSignature(path.nodes()[0].id))
    );
    v["nodes"] = serde_json::Value::Array(vec![]);
    let empty: ClientPath = serde_json::from_value(v).unwrap();
    assert_eq!(ExitKit::new(empty), Err(ExitError::Malformed));
}

#[test]
fn a_leaf_state_signed_without_its_final_signature_is_recognised_when_the_lsp_publishes_it() {
    let (trees, mut kit) = setup(6, 0, 2);
    let path = kit.latest().clone();
    let mut sim = Sim::new(trees[0].proposal().funding_outpoint.txid, 100);
    // Everything above the leaf confirms.
    for node in &path.nodes()[..path.nodes().len() - 1] {
        let wait = node.relative_delay().to_blocks();
        sim.mine_empty(sim.tip() + wait.saturating_sub(1));
        sim.mine(&node.signed_tx().unwrap());
    }
    // The LSP publishes state 1 of a purchase whose final signature the client never got.
    let first = crate::leaf::LeafState::first(&path);
    let next = first.next(&path, bitcoin::Amount::from_sat(3_000)).unwrap();
    sim.mine_empty(sim.tip() + next.node.relative_delay().to_blocks());
    sim.mine(&next.node.tx);
    // Without the record the walk cannot go on; with it, it ends at that state's channel.
    assert!(matches!(kit.next_action(&sim.chain), ExitAction::Stuck(_)));
    kit.expect_leaf(next.clone()).unwrap();
    match kit.next_action(&sim.chain) {
        ExitAction::LeafConfirmed { leaf, channel, .. } => {
            assert_eq!(leaf, next.node.txid());
            assert_eq!(channel, next.channel_outpoint());
        }
        other => panic!("unexpected {other:?}"),
    }
    let (txids, outpoints) = kit.watched();
    assert!(txids.contains(&next.node.txid()));
    assert!(outpoints.contains(&next.lstock_outpoint()));
}
