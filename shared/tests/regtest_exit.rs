//! Unilateral exits on a real regtest node (bitcoind via the devnet, read through Esplora).
//!
//! Each test starts its own devnet, funds a factory of 8 clients with real coins (the exact
//! funding output, paid by the faucet), signs the whole tree with real MuSig2, and then
//! publishes transactions only as the exit planner (or, for the attacks, the LSP) chooses.
//! Every broadcast passes `testmempoolaccept` first (policy rules, not only consensus); every
//! wait is checked one block early (bitcoind must refuse the pending transaction for its lock).
//!
//! Regtest parameters: DW step 2, 4 states per layer, so state delays are 6 → 4 → 2 → 0 blocks;
//! N = 8 has a static root split over two DW groups of two layers each:
//! split → kickoff → state (layer 0) → kickoff → state (layer 1) → leaf.

// The shared regtest helpers serve several test files; this one uses part of them.
#[allow(dead_code)]
mod regtest;

use std::time::Instant;

use bitcoin::{Amount, OutPoint};
use regtest::{
    add, anchor, assert_leaf_on_chain, commits_to_timeout_leaf, exit_step, expected_payout,
    lsp_sweep, run_exit, sub, EsploraView, Factory, Regtest, Step, LOCKTIME_NOT_SATISFIED,
    MISSING_INPUTS, NON_BIP68_FINAL, NON_FINAL,
};
use shared::exit::{worst_case_cost, ExitAction, ExitKit};
use shared::tree::NodeKind;
use shared::types::ClientId;

/// Node positions on a client's path for N = 8.
const SPLIT: usize = 0;
const KICKOFF_0: usize = 1;
const STATE_0: usize = 2;
const KICKOFF_1: usize = 3;
const STATE_1: usize = 4;
const LEAF: usize = 5;

fn delay_of(kind: NodeKind) -> u32 {
    match kind {
        NodeKind::State { delay, .. } => delay.to_blocks(),
        other => panic!("not a state: {other:?}"),
    }
}

fn broadcasts(steps: &[Step]) -> Vec<(NodeKind, bitcoin::Txid, bitcoin::absolute::Height)> {
    steps
        .iter()
        .filter_map(|s| match s {
            Step::Broadcast {
                kind, txid, height, ..
            } => Some((*kind, *txid, *height)),
            _ => None,
        })
        .collect()
}

fn leaf_of(action: &ExitAction) -> (bitcoin::Txid, OutPoint, bitcoin::absolute::Height) {
    match action {
        ExitAction::LeafConfirmed {
            leaf,
            channel,
            height,
        } => (*leaf, *channel, *height),
        other => panic!("expected the leaf, got {other:?}"),
    }
}

/// One client of eight walks its whole path, funding output to leaf, doing exactly what the
/// planner says; the leaf's channel, L-stock and anchor outputs end up unspent on chain with
/// the amounts and scripts the client expects, after exactly the blocks the planner predicted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_of_eight_exits_to_its_leaf_as_the_planner_directs() {
    let started = Instant::now();
    let rt = Regtest::start().await;
    let factory = Factory::create(&rt, 8, 11, 0).await;
    // Client 0 has the leftmost path, the deepest and the worst case.
    let client = ClientId(0);
    let kit = factory.client_kit(client);
    let path = kit.latest().clone();
    let params = &factory.proposal().params;
    let cost = path.exit_cost();
    assert_eq!(cost, worst_case_cost(params, 8).expect("valid params"));
    assert_eq!(cost.txs, 6);

    let start = rt.tip().await;
    let (done, steps) = run_exit(&rt, &kit, 20).await;
    let (leaf, channel, leaf_height) = leaf_of(&done);
    assert_eq!(leaf, path.leaf().txid());
    assert_eq!(channel, path.channel_outpoint());

    // The planner published the path in order, each transaction as early as consensus allows:
    // a state `delay` blocks after its kickoff, the leaf its own delay after its state,
    // anything else in the next block.
    let sent = broadcasts(&steps);
    let expected: Vec<_> = path.nodes().iter().map(|n| (n.kind, n.txid())).collect();
    assert_eq!(
        sent.iter().map(|(k, t, _)| (*k, *t)).collect::<Vec<_>>(),
        expected
    );
    let mut parent = start;
    for (kind, _, height) in &sent {
        let gap = match kind {
            NodeKind::State { delay, .. } => delay.to_blocks(),
            NodeKind::Leaf { .. } => params.max_state_delay().unwrap().to_blocks(),
            _ => 1,
        };
        assert_eq!(
            *height,
            add(parent, gap),
            "{kind:?} confirmed as early as possible"
        );
        parent = *height;
    }
    let waits = steps
        .iter()
        .filter(|s| matches!(s, Step::Waited { .. }))
        .count();
    assert_eq!(
        waits, 3,
        "one wait per state and the leaf (each has a relative delay)"
    );
    assert_eq!(leaf_height, parent);
    assert_eq!(add(start, cost.blocks.to_blocks()), leaf_height);

    assert_leaf_on_chain(&rt, &kit, leaf).await;
    // Nobody else's funds moved: every sibling output along the path is still unspent.
    for node in path.nodes() {
        let tx = node.signed_tx().expect("signed");
        for vout in 0..tx.output.len() as u32 {
            let op = OutPoint::new(node.txid(), vout);
            let on_path = path.nodes().iter().any(|n| n.spent_outpoint() == op);
            let leaf_output = node.txid() == leaf;
            if !on_path && !leaf_output {
                assert_eq!(rt.unspent(op).await, tx.output[vout as usize]);
            }
        }
    }
    rt.devnet.shutdown().await.expect("devnet stops");
    eprintln!("honest exit: {:.1?}", started.elapsed());
}

/// The LSP publishes the kickoffs and tries the factory's older Decker-Wattenhofer states
/// against a client that is online: each older state is non-BIP68-final until its longer
/// delay, the client's planner gets the newest state in first, and from then on the older
/// state is refused as spending a spent output. The client ends at the newest state's leaf.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newest_state_confirms_before_any_older_state_the_lsp_publishes() {
    let started = Instant::now();
    let rt = Regtest::start().await;
    // Epochs 0..=5. Delays (layer 0, layer 1): epoch 0 (6, 6), epoch 4 (4, 6), epoch 5 (4, 4).
    let f = Factory::create(&rt, 8, 22, 5).await;
    let victim = ClientId(2);
    let kit = f.client_kit(victim);
    assert_eq!(kit.versions().len(), 6);
    let delays = |e: usize| {
        (
            delay_of(f.path_tx(e, victim, STATE_0).0),
            delay_of(f.path_tx(e, victim, STATE_1).0),
        )
    };
    assert_eq!((delays(0), delays(4), delays(5)), ((6, 6), (4, 6), (4, 4)));

    // The LSP starts the exit: root split and layer-0 kickoff (one version in every epoch).
    let (_, split) = f.path_tx(0, victim, SPLIT);
    let (_, kickoff0) = f.path_tx(0, victim, KICKOFF_0);
    assert_eq!(split, f.path_tx(5, victim, SPLIT).1);
    assert_eq!(kickoff0, f.path_tx(5, victim, KICKOFF_0).1);
    rt.confirm(&split, None).await;
    let k0 = rt.confirm(&kickoff0, None).await;

    // Layer 0: the epoch-0 state (delay 6) against the newest (epoch 5, delay 4).
    let (_, old0) = f.path_tx(0, victim, STATE_0);
    let (_, new0) = f.path_tx(5, victim, STATE_0);
    assert_ne!(old0.compute_txid(), new0.compute_txid());
    assert_eq!(old0.input[0].previous_output, new0.input[0].previous_output);
    rt.assert_cannot_broadcast(&old0, &[NON_BIP68_FINAL]).await;
    // The client's planner waits for the newest state's delay (refused one block early) …
    match exit_step(&rt, &kit).await {
        Step::Waited { until, .. } => assert_eq!(until, add(k0, 3)),
        other => panic!("expected a wait, got {other:?}"),
    }
    // … while the old state is still locked at that height,
    rt.assert_cannot_broadcast(&old0, &[NON_BIP68_FINAL]).await;
    // … broadcasts the newest state as soon as it may, and it confirms.
    match exit_step(&rt, &kit).await {
        Step::Broadcast { txid, height, .. } => {
            assert_eq!(txid, new0.compute_txid());
            assert_eq!(height, add(k0, 4));
        }
        other => panic!("expected the newest state, got {other:?}"),
    }
    // When the old state's delay has passed, it is too late: its input is spent.
    rt.mine_to(add(k0, 5)).await;
    rt.assert_cannot_broadcast(&old0, &[MISSING_INPUTS]).await;
    // So is everything that hangs below it.
    let (_, old_kickoff1) = f.path_tx(0, victim, KICKOFF_1);
    rt.assert_cannot_broadcast(&old_kickoff1, &[MISSING_INPUTS])
        .await;

    // Layer 1: the LSP publishes the kickoff (one version for epochs 4 and 5) and tries the
    // epoch-4 state (delay 6) against the newest (delay 4).
    let (_, kickoff1) = f.path_tx(5, victim, KICKOFF_1);
    assert_eq!(kickoff1, f.path_tx(4, victim, KICKOFF_1).1);
    let k1 = rt.confirm(&kickoff1, None).await;
    let (_, old1) = f.path_tx(4, victim, STATE_1);
    let (_, new1) = f.path_tx(5, victim, STATE_1);
    assert_eq!(old1.input[0].previous_output, new1.input[0].previous_output);
    rt.assert_cannot_broadcast(&old1, &[NON_BIP68_FINAL]).await;
    match exit_step(&rt, &kit).await {
        Step::Waited { until, .. } => assert_eq!(until, add(k1, 3)),
        other => panic!("expected a wait, got {other:?}"),
    }
    rt.assert_cannot_broadcast(&old1, &[NON_BIP68_FINAL]).await;
    match exit_step(&rt, &kit).await {
        Step::Broadcast { txid, height, .. } => {
            assert_eq!(txid, new1.compute_txid());
            assert_eq!(height, add(k1, 4));
        }
        other => panic!("expected the newest state, got {other:?}"),
    }
    rt.mine_to(add(k1, 5)).await;
    rt.assert_cannot_broadcast(&old1, &[MISSING_INPUTS]).await;

    // The client finishes at the newest state's leaf.
    let (done, steps) = run_exit(&rt, &kit, 5).await;
    let sent = broadcasts(&steps);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, f.path_tx(5, victim, LEAF).0);
    assert!(matches!(sent[0].0, NodeKind::Leaf { client, .. } if client == victim));
    let (leaf, _, _) = leaf_of(&done);
    assert_eq!(leaf, f.trees[5].leaf(victim).expect("a leaf").txid());
    assert_leaf_on_chain(&rt, &kit, leaf).await;
    rt.devnet.shutdown().await.expect("devnet stops");
    eprintln!("old state loses the race: {:.1?}", started.elapsed());
}

/// Two clients are offline while the LSP confirms the epoch-0 layer-0 state (it waited out
/// the full old delay), and, in one client's subtree, the epoch-0 layer-1 state too. Back
/// online, each planner continues from what confirmed, with the client's own stored older
/// states: client 0 with the newest state that shares the old layer-0 state (epoch 3,
/// layer-1 delay 0), client 2 with epoch 0's leaf. Both leaves pay the clients in full.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_goes_on_from_an_old_state_that_confirmed_while_the_client_was_offline() {
    let started = Instant::now();
    let rt = Regtest::start().await;
    let f = Factory::create(&rt, 8, 33, 5).await;
    let (a, b) = (ClientId(0), ClientId(2));
    let kit_a = f.client_kit(a);
    let kit_b = f.client_kit(b);

    let (_, split) = f.path_tx(0, a, SPLIT);
    let (_, kickoff0) = f.path_tx(0, a, KICKOFF_0);
    rt.confirm(&split, None).await;
    let k0 = rt.confirm(&kickoff0, None).await;
    let (_, old0) = f.path_tx(0, a, STATE_0);
    let (_, new0) = f.path_tx(5, a, STATE_0);
    assert_eq!(
        old0,
        f.path_tx(0, b, STATE_0).1,
        "one layer-0 state for both"
    );
    // Nobody is watching: the newest state would be valid now, but no one publishes it.
    rt.mine_to(add(k0, 4)).await;
    assert!(rt.test_accept(&new0).await.is_allowed());
    rt.assert_cannot_broadcast(&old0, &[NON_BIP68_FINAL]).await;
    rt.mine_to(add(k0, 5)).await;
    rt.confirm(&old0, None).await;
    rt.assert_cannot_broadcast(&new0, &[MISSING_INPUTS]).await;

    // In client 2's subtree the LSP goes on with epoch 0: kickoff, then the state once its
    // full delay (6) has passed.
    let (_, kickoff1_b) = f.path_tx(0, b, KICKOFF_1);
    let kb = rt.confirm(&kickoff1_b, None).await;
    let (_, old1_b) = f.path_tx(0, b, STATE_1);
    rt.mine_to(add(kb, 4)).await;
    rt.assert_cannot_broadcast(&old1_b, &[NON_BIP68_FINAL])
        .await;
    rt.mine_to(add(kb, 5)).await;
    rt.confirm(&old1_b, None).await;

    // Client 0 comes back: the old layer-0 state is shared by epochs 0..=3, so its planner
    // goes on with epoch 3's transactions (layer-1 delay 0): kickoff and state with no wait,
    // then the leaf after its own delay.
    let (done_a, steps_a) = run_exit(&rt, &kit_a, 10).await;
    let sent = broadcasts(&steps_a);
    let expected: Vec<_> = f.trees[3].client_path(a).expect("a path").nodes()[KICKOFF_1..]
        .iter()
        .map(|n| (n.kind, n.txid()))
        .collect();
    assert_eq!(
        sent.iter().map(|(k, t, _)| (*k, *t)).collect::<Vec<_>>(),
        expected
    );
    assert_eq!(delay_of(expected[1].0), 0);
    assert_eq!(steps_a.len(), 4, "one wait, the leaf's: {steps_a:?}");
    assert!(matches!(steps_a[2], Step::Waited { .. }));
    let (leaf_a, _, _) = leaf_of(&done_a);
    assert_eq!(leaf_a, f.trees[3].leaf(a).expect("a leaf").txid());
    assert_leaf_on_chain(&rt, &kit_a, leaf_a).await;
    // Client 0's older layer-1 states (epochs 0..=2, longer delays) are dead now.
    for e in 0..3 {
        let (_, older) = f.path_tx(e, a, STATE_1);
        rt.assert_cannot_broadcast(&older, &[MISSING_INPUTS]).await;
    }

    // Client 2 comes back: only epoch 0 matches what confirmed; its leaf is next.
    let (done_b, steps_b) = run_exit(&rt, &kit_b, 10).await;
    let sent = broadcasts(&steps_b);
    assert_eq!(sent.len(), 1);
    let (leaf_b, _, _) = leaf_of(&done_b);
    assert_eq!(sent[0].1, leaf_b);
    assert_eq!(leaf_b, f.trees[0].leaf(b).expect("a leaf").txid());
    assert_leaf_on_chain(&rt, &kit_b, leaf_b).await;
    rt.devnet.shutdown().await.expect("devnet stops");
    eprintln!(
        "old state confirmed, exit goes on: {:.1?}",
        started.elapsed()
    );
}

/// The distribution transaction of a fresh factory: refused as non-final before the timeout
/// (checked right after funding and one block before the timeout), accepted at it, confirmed,
/// and paying every client `channel + lstock` at its own key, with the anchor last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distribution_tx_pays_every_client_once_the_timeout_passes() {
    let started = Instant::now();
    let rt = Regtest::start().await;
    let f = Factory::create(&rt, 8, 44, 0).await;
    let p = f.proposal().clone();
    let timeout = f.trees[0].timeout();
    assert_eq!(
        timeout,
        add(p.creation_height, p.params.timeout_delta.to_blocks())
    );
    let kits: Vec<ExitKit> = (0..8).map(|i| f.client_kit(ClientId(i))).collect();
    let dist = f.trees[0].distribution().signed_tx().expect("signed");
    let dist_txid = dist.compute_txid();
    for kit in &kits {
        assert_eq!(kit.latest().distribution().txid(), dist_txid);
    }
    assert_eq!(
        dist.lock_time.to_consensus_u32(),
        timeout.to_consensus_u32()
    );

    // Right after funding: refused (non-final); the planner would start a tree exit.
    rt.assert_cannot_broadcast(&dist, &[NON_FINAL]).await;
    let next = |kit: &ExitKit| {
        let kit = kit.clone();
        let rt = &rt;
        async move { kit.next_action(&EsploraView::fetch(&rt.esplora, &kit).await) }
    };
    let root = |a: &ExitAction| {
        matches!(
            a,
            ExitAction::Broadcast {
                kind: NodeKind::Split { .. },
                ..
            }
        )
    };
    assert!(root(&next(&kits[0]).await));
    // Up to T - W (W: the path's worst-case walk, 21 blocks) a tree exit still has its leaf
    // confirmed by block T, before the distribution transaction could confirm; from T - W + 1
    // the distribution comes first, so the planner waits for it instead.
    let worst = kits[0].latest().worst_exit_blocks().to_blocks();
    assert_eq!(worst, 21);
    let switch = sub(timeout, worst - 1);
    rt.mine_to(sub(switch, 1)).await;
    assert!(root(&next(&kits[0]).await));
    rt.mine_to(switch).await;
    let dist_id = f.trees[0].distribution().id;
    assert_eq!(
        next(&kits[0]).await,
        ExitAction::WaitUntil {
            height: timeout,
            node: dist_id
        }
    );

    // The driver mines to one block before the timeout (refused, non-final), then to it,
    // and broadcasts as the planner says.
    let (done, steps) = run_exit(&rt, &kits[0], 5).await;
    let sent = broadcasts(&steps);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, NodeKind::Distribution);
    assert_eq!(sent[0].1, dist_txid);
    assert_eq!(
        sent[0].2,
        add(timeout, 1),
        "in the first block its lock time allows"
    );
    assert!(matches!(steps[0], Step::Waited { until, .. } if until == timeout));

    // Every client's planner is done, and its payout is on chain at its own key.
    assert_eq!(
        done,
        ExitAction::Distributed {
            txid: dist_txid,
            payout: OutPoint::new(dist_txid, 0)
        }
    );
    let mut paid = Amount::ZERO;
    for (i, kit) in kits.iter().enumerate() {
        let client = ClientId(i as u32);
        let payout = OutPoint::new(dist_txid, client.0);
        assert_eq!(
            next(kit).await,
            ExitAction::Distributed {
                txid: dist_txid,
                payout
            }
        );
        let out = rt.unspent(payout).await;
        assert_eq!(out, expected_payout(&p, client));
        let entry = &p.clients[i];
        assert_eq!(out.value, entry.channel + entry.lstock);
        paid += out.value;
    }
    let anchor_out = rt.unspent(OutPoint::new(dist_txid, 8)).await;
    assert_eq!(anchor_out, anchor(p.params.anchor_value));
    assert_eq!(
        dist.output.len(),
        9,
        "8 payouts and the anchor, nothing for the LSP"
    );
    // Everything else, the whole tree's fee and anchor budget, is fee.
    let fee = p.funding_amount - paid - anchor_out.value;
    let vsize = f.trees[0].distribution().vsize();
    assert!(fee.to_sat() >= vsize * p.params.fee_rate.to_sat_per_vb_ceil());
    rt.devnet.shutdown().await.expect("devnet stops");
    eprintln!("distribution: {:.1?}", started.elapsed());
}

/// The attack the two heights defeat. The client is online and, close to the timeout, waits
/// for the distribution transaction. At T - 1 the LSP confirms the root split and the layer-0
/// kickoff, spending the funding output: the distribution transaction is dead, and under a
/// single height the LSP could sweep the state outputs from block T + 1. Now the client's
/// planner walks the tree at once and its leaf confirms with all its outputs unspent; the
/// LSP's timeout-leaf sweep fails the script at T and is non-final until T_sweep, long after
/// the client is out. From T_sweep on, the sweep takes what nobody exited (here client 1's
/// output: a client that never comes back after the LSP published the tree loses it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lsp_killing_the_distribution_at_t_minus_1_cannot_take_an_online_clients_funds() {
    let started = Instant::now();
    let rt = Regtest::start().await;
    let f = Factory::create(&rt, 8, 55, 0).await;
    let p = f.proposal().clone();
    let victim = ClientId(0);
    let kit = f.client_kit(victim);
    let path = kit.latest().clone();
    // T and T_sweep, from the parameters.
    let timeout = add(p.creation_height, p.params.timeout_delta.to_blocks());
    let sweep = add(timeout, p.params.sweep_delta.to_blocks());
    assert_eq!((path.timeout(), path.sweep_height()), (timeout, sweep));
    assert_eq!(
        sweep,
        add(timeout, 25 + 6),
        "worst exit of 4096 clients + margin"
    );
    let worst = path.worst_exit_blocks().to_blocks();
    assert_eq!(worst, 21);
    let next = |kit: &ExitKit| {
        let kit = kit.clone();
        let rt = &rt;
        async move { kit.next_action(&EsploraView::fetch(&rt.esplora, &kit).await) }
    };
    let dist = f.trees[0].distribution().signed_tx().expect("signed");

    // Two blocks before the timeout the client waits for the distribution transaction.
    rt.mine_to(sub(timeout, 2)).await;
    assert_eq!(
        next(&kit).await,
        ExitAction::WaitUntil {
            height: timeout,
            node: path.distribution().id
        }
    );
    rt.assert_cannot_broadcast(&dist, &[NON_FINAL]).await;

    // The LSP publishes the split and the kickoff; both confirm in block T - 1.
    let (_, split) = f.path_tx(0, victim, SPLIT);
    let (_, kickoff0) = f.path_tx(0, victim, KICKOFF_0);
    rt.broadcast(&split, None).await;
    let k0 = rt.confirm(&kickoff0, None).await;
    assert_eq!(k0, sub(timeout, 1));
    let split_status = rt.esplora.get_tx_status(&split.compute_txid()).await;
    assert_eq!(
        split_status.expect("tx status").block_height,
        Some(k0.to_consensus_u32())
    );

    // The client, online, follows its planner: the layer-0 state after its delay (the
    // driver checks it is refused one block early) …
    match exit_step(&rt, &kit).await {
        Step::Waited { node, until } => {
            assert_eq!(node, path.nodes()[STATE_0].id);
            assert_eq!(until, add(k0, 5));
        }
        other => panic!("expected the state's delay, got {other:?}"),
    }
    // (past T the distribution transaction is final, but its input is gone)
    rt.assert_cannot_broadcast(&dist, &[MISSING_INPUTS]).await;
    let s0 = match exit_step(&rt, &kit).await {
        Step::Broadcast { node, height, .. } => {
            assert_eq!(node, path.nodes()[STATE_0].id);
            height
        }
        other => panic!("expected the layer-0 state, got {other:?}"),
    };
    assert_eq!(s0, add(timeout, 5));

    // The state's outputs exist now. Their timeout leaf is at T_sweep, not at T …
    let state0 = path.nodes()[STATE_0].txid();
    let (mine, sibling) = (OutPoint::new(state0, 0), OutPoint::new(state0, 1));
    for op in [mine, sibling] {
        assert!(commits_to_timeout_leaf(&p, &f.trees[0], op, sweep));
        assert!(!commits_to_timeout_leaf(&p, &f.trees[0], op, timeout));
    }
    let lsp = f.keys.lsp;
    // … so a sweep at T (final now) fails the script's OP_CHECKLOCKTIMEVERIFY,
    let at_t = lsp_sweep(&p, &f.trees[0], &lsp, mine, sweep, timeout);
    let reason = rt
        .assert_script_refused(&at_t, LOCKTIME_NOT_SATISFIED)
        .await;
    eprintln!("sweep at T refused: {reason}");
    // and the sweep at T_sweep is not final yet.
    let at_sweep = lsp_sweep(&p, &f.trees[0], &lsp, mine, sweep, sweep);
    rt.assert_cannot_broadcast(&at_sweep, &[NON_FINAL]).await;

    // The client reaches its leaf, a worst-case walk after it started (at T - 2), with the
    // margin to spare before T_sweep.
    let (done, steps) = run_exit(&rt, &kit, 10).await;
    let (leaf, _, leaf_height) = leaf_of(&done);
    assert_eq!(leaf, path.leaf().txid());
    let sent = broadcasts(&steps);
    assert_eq!(
        sent.iter().map(|(k, t, _)| (*k, *t)).collect::<Vec<_>>(),
        path.nodes()[KICKOFF_1..]
            .iter()
            .map(|n| (n.kind, n.txid()))
            .collect::<Vec<_>>()
    );
    assert_eq!(leaf_height, add(sub(timeout, 1), 19));
    assert!(leaf_height <= add(sub(timeout, 2), worst));
    assert!(add(leaf_height, p.params.timeout_margin.to_blocks()) <= sweep);
    assert_leaf_on_chain(&rt, &kit, leaf).await;

    // Every state output that carried the victim's funds is spent by its own path; the LSP's
    // sweeps of its state outputs stay non-final up to T_sweep …
    let state1 = path.nodes()[STATE_1].txid();
    let (mine1, sibling1) = (OutPoint::new(state1, 0), OutPoint::new(state1, 1));
    rt.mine_to(sub(sweep, 1)).await;
    for op in [mine, mine1, sibling, sibling1] {
        let tx = lsp_sweep(&p, &f.trees[0], &lsp, op, sweep, sweep);
        rt.assert_cannot_broadcast(&tx, &[NON_FINAL]).await;
    }
    // … and from T_sweep on they find nothing of the victim's: its outputs are spent.
    rt.mine_to(sweep).await;
    for op in [mine, mine1] {
        let tx = lsp_sweep(&p, &f.trees[0], &lsp, op, sweep, sweep);
        rt.assert_cannot_broadcast(&tx, &[MISSING_INPUTS]).await;
    }
    // The honest limit: client 1 never came back, and its leaf's input (the sibling output of
    // the victim's layer-1 state) goes to the LSP's sweep once T_sweep has passed.
    let taken = lsp_sweep(&p, &f.trees[0], &lsp, sibling1, sweep, sweep);
    let swept_at = rt.confirm(&taken, None).await;
    assert_eq!(swept_at, add(sweep, 1));
    // The victim's leaf outputs are still unspent and its own.
    assert_leaf_on_chain(&rt, &kit, leaf).await;
    rt.devnet.shutdown().await.expect("devnet stops");
    eprintln!(
        "distribution killed at T - 1, client still out: {:.1?}",
        started.elapsed()
    );
}
