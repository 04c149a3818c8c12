//! Tree tests: structure, amounts, sequences and timeouts, path-only views, signing under
//! Bitcoin Core's interpreter, epoch advance and refresh; property tests over many shapes.

use bitcoin::absolute::{Height, LockTime};
use bitcoin::hashes::Hash;
use bitcoin::secp256k1::{Keypair, Message, Secp256k1};
use bitcoin::sighash::{Prevouts, SighashCache};
use bitcoin::taproot::{LeafVersion, TaprootBuilder};
use bitcoin::{Amount, Sequence, TapSighashType, Witness};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::scripts::{lstock_script, timeout_script};
use super::*;
use crate::params::{BlockDelta, Epoch, FactoryParams};
use crate::path::ClientPath;
use crate::testing::{sample_proposal, sign_all, sign_all_aggregated, TestKeys};
use crate::types::{ClientId, NodeId};

fn tree(params: FactoryParams, n: usize, seed: u64) -> (FactoryTree, TestKeys) {
    let keys = TestKeys::generate(n, seed);
    let p = sample_proposal(params, &keys, seed);
    (
        FactoryTree::build(&p).expect("sample proposals build"),
        keys,
    )
}

/// Everything a tree must satisfy, whatever its shape.
fn check_invariants(t: &FactoryTree) {
    let p = t.proposal();
    let params = &p.params;
    let timeout = p.params.timeout_at(p.creation_height).unwrap();
    assert_eq!(t.timeout(), timeout);
    // Two heights: the sweep height is a whole worst-case exit plus the margin after T.
    let sweep = t.sweep_height();
    assert_eq!(
        BlockDelta::between(timeout, sweep),
        Some(params.sweep_delta)
    );
    let worst = crate::exit::worst_case_cost(params, p.client_count()).unwrap();
    assert!(
        sweep
            >= params
                .sweep_needed(worst.blocks)
                .unwrap()
                .after(timeout)
                .unwrap()
    );
    assert_eq!(p.sweep_height(), Ok(sweep));
    // State outputs carry the timeout leaf at the sweep height, never at T.
    let timeout_root =
        scripts::single_leaf_root(&timeout_script(sweep, p.lsp_key.x_only_public_key().0));
    assert_ne!(
        timeout_root,
        scripts::single_leaf_root(&timeout_script(timeout, p.lsp_key.x_only_public_key().0))
    );
    let mut leaves = 0;
    let index: std::collections::HashMap<bitcoin::Txid, usize> = t
        .nodes()
        .iter()
        .enumerate()
        .map(|(i, n)| (n.txid(), i))
        .collect();
    for (i, n) in t.nodes().iter().enumerate() {
        assert_eq!(n.id, NodeId(i as u32));
        assert_eq!(n.tx.version, bitcoin::transaction::Version::TWO);
        assert_eq!(n.tx.input.len(), 1);
        // Amounts conserve: input = outputs + fee, and the fee is the rate times the signed size.
        let out: Amount = n.tx.output.iter().map(|o| o.value).sum();
        assert_eq!(n.prevout.value, out + n.fee(), "node {i}");
        let last = n.tx.output.last().unwrap();
        assert_eq!(last.script_pubkey, bitcoin::ScriptBuf::new_p2a());
        assert_eq!(last.value, params.anchor_value);
        let min_fee = params.fee_rate.fee_vb(n.vsize()).unwrap();
        match n.kind {
            NodeKind::Distribution => {
                assert!(n.fee() >= min_fee);
                assert_eq!(n.tx.lock_time, LockTime::Blocks(timeout));
                assert_eq!(n.tx.input[0].sequence, Sequence::ENABLE_LOCKTIME_NO_RBF);
                assert_eq!(n.spent_outpoint(), p.funding_outpoint);
                assert_eq!(n.prevout, *t.funding_output());
                for (c, o) in p.clients.iter().zip(&n.tx.output) {
                    assert_eq!(Some(o.value), c.leaf_value());
                }
            }
            _ => {
                assert_eq!(n.fee(), min_fee, "node {i}: fee is exactly rate × vsize");
                assert_eq!(n.tx.lock_time, LockTime::ZERO);
            }
        }
        match n.kind {
            NodeKind::State { layer, delay, .. } => {
                let want = params.state_delay(t.dw_layers(), layer, t.epoch());
                assert_eq!(delay, want);
                assert_eq!(n.tx.input[0].sequence, want.to_relative_sequence().unwrap());
                assert!(delay <= params.max_state_delay().unwrap());
                // The state's outputs to its children carry the timeout leaf at the sweep
                // height (checked below from the child's side).
            }
            NodeKind::Leaf { .. } => {
                // Leaf state 0: the longest delay of the leaf's own DW layer.
                let want = params.max_state_delay().unwrap();
                assert_eq!(n.tx.input[0].sequence, want.to_relative_sequence().unwrap());
            }
            NodeKind::Split { .. } | NodeKind::Kickoff { .. } => {
                assert_eq!(n.tx.input[0].sequence, Sequence::MAX);
            }
            NodeKind::Distribution | NodeKind::Redistribution { .. } => {}
        }
        if let NodeKind::Leaf { client, .. } = n.kind {
            leaves += 1;
            let c = &p.clients[client.0 as usize];
            assert_eq!(n.tx.output[0].value, c.channel);
            assert_eq!(n.tx.output[1].value, c.lstock);
            assert_eq!(n.signers.len(), 1);
        }
        // Each non-root node spends an output of an earlier node with that output's value.
        if i > 0 && n.kind != NodeKind::Distribution {
            let op = n.spent_outpoint();
            let parent = &t.nodes()[index[&op.txid]];
            assert!(parent.id < n.id, "pre-order: parents come first");
            assert_eq!(parent.tx.output[op.vout as usize], n.prevout);
            let from_state = matches!(parent.kind, NodeKind::State { .. });
            assert_eq!(n.merkle_root, from_state.then_some(timeout_root));
            assert!(n.signers.start >= parent.signers.start && n.signers.end <= parent.signers.end);
        }
    }
    assert_eq!(leaves, p.clients.len());
    assert_eq!(t.root().spent_outpoint(), p.funding_outpoint);
    assert_eq!(t.funding_output().value, p.funding_amount);
}

#[test]
fn small_trees_have_the_documented_shape() {
    let params = FactoryParams::regtest(); // dw_arity 2, static_arity 4, 2 layers, K = 4
                                           // N = 1: kickoff, state, leaf, distribution.
    let (t, _) = tree(params.clone(), 1, 1);
    let kinds: Vec<_> = t
        .nodes()
        .iter()
        .map(|n| std::mem::discriminant(&n.kind))
        .collect();
    assert_eq!(kinds.len(), 4);
    assert!(matches!(
        t.nodes()[0].kind,
        NodeKind::Kickoff { layer: 0, depth: 0 }
    ));
    assert!(matches!(
        t.nodes()[1].kind,
        NodeKind::State { layer: 0, .. }
    ));
    assert!(matches!(
        t.nodes()[2].kind,
        NodeKind::Leaf {
            client: ClientId(0),
            ..
        }
    ));
    assert_eq!(t.dw_layers(), 1);
    // N = 4: one DW group of two layers; N = 5: a static root over two groups.
    let (t, _) = tree(params.clone(), 4, 2);
    assert_eq!(t.dw_layers(), 2);
    assert_eq!(t.epoch_count(), 16);
    assert_eq!(t.nodes().len(), 2 + 2 * 2 + 4 + 1);
    let (t, _) = tree(params, 5, 3);
    assert!(matches!(t.root().kind, NodeKind::Split { depth: 0 }));
    check_invariants(&t);
}

#[test]
fn paths_equal_the_full_tree_and_roundtrip_serde() {
    for n in [1, 2, 3, 7, 16, 33] {
        let (t, _) = tree(FactoryParams::regtest(), n, n as u64);
        check_invariants(&t);
        for c in 0..n as u32 {
            let path = ClientPath::build(t.proposal(), ClientId(c)).unwrap();
            assert_eq!(
                Some(&path),
                t.client_path(ClientId(c)).as_ref(),
                "client {c}"
            );
            assert_eq!(path.leaf().kind, t.leaf(ClientId(c)).unwrap().kind);
            let json = serde_json::to_string(&path).unwrap();
            assert_eq!(serde_json::from_str::<ClientPath>(&json).unwrap(), path);
        }
        assert!(ClientPath::build(t.proposal(), ClientId(n as u32)).is_err());
    }
}

#[test]
fn jobs_go_only_to_their_signers() {
    let (t, keys) = tree(FactoryParams::regtest(), 11, 4);
    assert_eq!(t.jobs_for(&keys.lsp_pubkey()).len(), t.nodes().len());
    for c in 0..11 {
        let key = keys.client_pubkey(c);
        let jobs = t.jobs_for(&key);
        let path = t.client_path(ClientId(c as u32)).unwrap();
        assert_eq!(jobs, path.signing_jobs());
        assert!(jobs
            .iter()
            .all(|j| j.signers.contains(&key) && j.signers.contains(&keys.lsp_pubkey())));
        let total = t
            .signing_jobs()
            .iter()
            .filter(|j| j.signers.contains(&key))
            .count();
        assert_eq!(
            total,
            jobs.len(),
            "exactly the jobs whose signers include the key"
        );
    }
    let stranger = TestKeys::generate(1, 99).client_pubkey(0);
    assert!(t.jobs_for(&stranger).is_empty());
    // Signers are BIP-327 key-sorted, and the tweak matches the spent output.
    for job in t.signing_jobs() {
        let mut sorted = job.signers.clone();
        crate::musig::key_sort(&mut sorted);
        assert_eq!(sorted, job.signers);
        let node = t.node(job.node).unwrap();
        let keys = crate::musig::JobKeys::new(&job.signers, job.merkle_root).unwrap();
        assert_eq!(
            Some(keys.output_key()),
            node.output_key(),
            "same key as the signing code"
        );
    }
}

#[cfg(not(target_arch = "wasm32"))]
#[test]
fn real_musig2_signatures_pass_bitcoin_core() {
    use crate::testing::tree::{consensus_verify, consensus_verify_tx};
    let mut rng = StdRng::seed_from_u64(7);
    for n in [1, 3, 6] {
        let (mut t, keys) = tree(FactoryParams::regtest(), n, 10 + n as u64);
        sign_all(&mut t, &keys, &mut rng).unwrap();
        assert!(t.is_fully_signed());
        for node in t.nodes() {
            consensus_verify(node).unwrap_or_else(|e| panic!("node {}: {e}", node.id));
        }
        // A tampered transaction (one sat moved to the fee) fails.
        let node = &t.nodes()[0];
        let mut tx = node.signed_tx().unwrap();
        tx.output[0].value -= Amount::ONE_SAT;
        assert!(consensus_verify_tx(&tx, &node.prevout).is_err());
        // A bad signature is refused on attach.
        let sig = t.nodes()[1].signature.unwrap();
        assert!(t.set_signature(NodeId(0), sig).is_err());
    }
}

#[cfg(not(target_arch = "wasm32"))]
#[test]
fn lsp_script_paths_spend_after_their_locks() {
    use crate::testing::tree::consensus_verify_tx;
    let (t, keys) = tree(FactoryParams::regtest(), 3, 21);
    let secp = Secp256k1::new();
    let lsp = Keypair::from_secret_key(&secp, &keys.lsp);
    let lsp_x = lsp.x_only_public_key().0;
    let internal =
        |range: ClientRange| scripts::internal_key(&t.proposal().signers(range)).unwrap();
    // Timeout path of a state output (spent by the leaf of client 0), at the sweep height,
    // and the L-stock path.
    let leaf = t.leaf(ClientId(0)).unwrap();
    assert!(t.sweep_height() > t.timeout());
    let cases = [
        (
            timeout_script(t.sweep_height(), lsp_x),
            internal(leaf.signers),
            leaf.spent_outpoint(),
            leaf.prevout.clone(),
            LockTime::Blocks(t.sweep_height()),
            Sequence::ENABLE_LOCKTIME_NO_RBF,
        ),
        (
            lstock_script(t.proposal().params.lstock_csv, lsp_x),
            internal(leaf.signers),
            OutPoint::new(leaf.txid(), 1),
            leaf.tx.output[1].clone(),
            LockTime::ZERO,
            t.proposal()
                .params
                .lstock_csv
                .to_relative_sequence()
                .unwrap(),
        ),
    ];
    for (script, internal, outpoint, prevout, lock_time, sequence) in cases {
        let info = TaprootBuilder::new()
            .add_leaf(0, script.clone())
            .unwrap()
            .finalize(&secp, internal)
            .unwrap();
        let control = info
            .control_block(&(script.clone(), LeafVersion::TapScript))
            .unwrap();
        let spend = |lock_time: LockTime, sequence: Sequence| {
            let mut tx = bitcoin::Transaction {
                version: bitcoin::transaction::Version::TWO,
                lock_time,
                input: vec![bitcoin::TxIn {
                    previous_output: outpoint,
                    script_sig: bitcoin::ScriptBuf::new(),
                    sequence,
                    witness: Witness::new(),
                }],
                output: vec![bitcoin::TxOut {
                    value: prevout.value - Amount::from_sat(500),
                    script_pubkey: bitcoin::ScriptBuf::new_p2a(),
                }],
            };
            let leaf_hash = bitcoin::TapLeafHash::from_script(&script, LeafVersion::TapScript);
            let sighash = SighashCache::new(&tx)
                .taproot_script_spend_signature_hash(
                    0,
                    &Prevouts::All(&[&prevout]),
                    leaf_hash,
                    TapSighashType::Default,
                )
                .unwrap();
            let sig =
                secp.sign_schnorr_no_aux_rand(&Message::from_digest(sighash.to_byte_array()), &lsp);
            tx.input[0].witness = Witness::from_slice(&[
                sig.serialize().to_vec(),
                script.to_bytes(),
                control.serialize(),
            ]);
            tx
        };
        consensus_verify_tx(&spend(lock_time, sequence), &prevout).unwrap();
        // One block too early fails.
        let early = if lock_time == LockTime::ZERO {
            (lock_time, Sequence::from_height(sequence.0 as u16 - 1))
        } else {
            let h = lock_time.to_consensus_u32() - 1;
            (
                LockTime::Blocks(Height::from_consensus(h).unwrap()),
                sequence,
            )
        };
        assert!(consensus_verify_tx(&spend(early.0, early.1), &prevout).is_err());
        if lock_time != LockTime::ZERO {
            // At the distribution's lock T (and at any height up to the sweep height) the
            // LSP's timeout path fails the script.
            let at_timeout = LockTime::Blocks(t.timeout());
            assert!(consensus_verify_tx(&spend(at_timeout, sequence), &prevout).is_err());
        }
    }
}

use bitcoin::OutPoint;

#[test]
fn advance_epoch_resigns_only_what_changed() {
    let (mut t, keys) = tree(FactoryParams::regtest(), 8, 5);
    sign_all_aggregated(&mut t, &keys).unwrap();
    let next = t.advance_epoch().unwrap();
    assert_eq!(next.epoch(), Epoch(1));
    check_invariants(&next);
    let unsigned: Vec<_> = next.unsigned_jobs().into_iter().map(|j| j.node).collect();
    for (old, new) in t.nodes().iter().zip(next.nodes()) {
        if old.tx == new.tx {
            assert!(new.signature.is_some());
        } else {
            assert!(unsigned.contains(&new.id));
        }
        // Only layer-1 states (and what hangs below them) change in epoch 0 → 1.
        if let (
            NodeKind::State {
                delay: a, layer: 1, ..
            },
            NodeKind::State { delay: b, .. },
        ) = (old.kind, new.kind)
        {
            assert!(b < a);
        }
    }
    assert_eq!(next.distribution().tx, t.distribution().tx);
    assert!(next.distribution().signature.is_some());
    // Walk to the last epoch, then refuse.
    let mut last = next;
    while last.epoch().0 + 1 < last.epoch_count() {
        last = last.advance_epoch().unwrap();
    }
    // Every interior state at delay 0; the leaf keeps its own layer's first delay.
    assert!(last
        .nodes()
        .iter()
        .filter(|n| !matches!(n.kind, NodeKind::Leaf { .. }))
        .all(|n| n.relative_delay() == BlockDelta::ZERO));
    assert!(matches!(
        last.advance_epoch(),
        Err(TreeError::EpochsExhausted { count: 16 })
    ));
}

#[test]
fn refresh_moves_the_timeout_and_the_root_layer() {
    let (t, _) = tree(FactoryParams::regtest(), 9, 6);
    let later = Height::from_consensus(150).unwrap();
    let r = t.advance_epoch().unwrap().refresh(later).unwrap();
    assert_eq!(r.epoch(), Epoch(4), "next value of the layer-0 digit");
    assert!(r.timeout() > t.timeout());
    assert!(r.sweep_height() > t.sweep_height());
    check_invariants(&r);
    for (old, new) in t.nodes().iter().zip(r.nodes()) {
        match old.kind {
            // Static splits and root kickoffs do not depend on either height: unchanged.
            NodeKind::Split { .. } | NodeKind::Kickoff { layer: 0, .. } => {
                assert_eq!(old.tx, new.tx)
            }
            NodeKind::State {
                layer: 0, delay, ..
            } => {
                assert!(new.relative_delay() < delay);
                assert_eq!(old.spent_outpoint(), new.spent_outpoint());
            }
            _ => {}
        }
    }
    assert!(matches!(r.refresh(later), Err(TreeError::RefreshNotLater)));
    let mut e = r;
    for h in [200, 250] {
        e = e.refresh(Height::from_consensus(h).unwrap()).unwrap();
    }
    assert!(matches!(
        e.refresh(Height::from_consensus(300).unwrap()),
        Err(TreeError::RefreshExhausted)
    ));
}

#[test]
fn refuses_bad_proposals() {
    let keys = TestKeys::generate(4, 8);
    let good = sample_proposal(FactoryParams::regtest(), &keys, 8);
    let err = |f: &dyn Fn(&mut FactoryProposal)| {
        let mut p = good.clone();
        f(&mut p);
        FactoryTree::build(&p).unwrap_err()
    };
    assert!(matches!(
        err(&|p| p.funding_amount += Amount::ONE_SAT),
        TreeError::FundingAmountMismatch { .. }
    ));
    assert!(matches!(err(&|p| p.clients.clear()), TreeError::NoClients));
    assert!(matches!(
        err(&|p| p.clients[1].key = p.clients[0].key),
        TreeError::DuplicateKey { .. }
    ));
    assert!(matches!(
        err(&|p| p.lsp_key = p.clients[2].key),
        TreeError::DuplicateKey { .. }
    ));
    assert!(matches!(
        err(&|p| p.clients[3].lstock = Amount::from_sat(100)),
        TreeError::BelowDust {
            client: ClientId(3),
            ..
        }
    ));
    assert!(matches!(
        err(&|p| p.epoch = Epoch(16)),
        TreeError::EpochOutOfRange { .. }
    ));
    assert!(matches!(
        err(&|p| p.params.max_clients = 3),
        TreeError::TooManyClients { .. }
    ));
    assert!(matches!(
        err(&|p| p.clients[0].channel = Amount::MAX_MONEY),
        TreeError::AmountOverflow
    ));
    assert!(matches!(
        err(&|p| p.params.dw_arity = 1),
        TreeError::Params(_)
    ));
    assert!(matches!(
        err(&|p| p.params.sweep_delta = BlockDelta::from_blocks(25)),
        TreeError::Params(crate::params::ParamsError::SweepDoesNotFit { .. })
    ));
    // A timeout that is a valid height but a sweep height that is not.
    let last = Height::MAX.to_consensus_u32();
    let start = last - good.params.timeout_delta.to_blocks() - 1;
    assert!(matches!(
        err(&|p| p.creation_height = Height::from_consensus(start).unwrap()),
        TreeError::HeightOverflow
    ));
    let out = FactoryProposal::funding_output(&good.params, &good.lsp_key, &good.clients).unwrap();
    assert_eq!(&out, FactoryTree::build(&good).unwrap().funding_output());
}

fn shape() -> impl Strategy<Value = FactoryParams> {
    (2u8..=4, 2u8..=8, 1u8..=3, 1u8..=4).prop_map(|(dw, st, layers, k)| FactoryParams {
        dw_arity: dw,
        static_arity: st,
        dw_layers: layers,
        states_per_layer: k,
        timeout_delta: BlockDelta::from_blocks(200),
        sweep_delta: BlockDelta::from_blocks(100),
        ..FactoryParams::regtest()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Amounts, sequences and timeouts obey the parameters; every client's path (built
    /// alone) equals its part of the full tree; a few random epochs keep all of that.
    #[test]
    fn prop_tree_invariants_and_paths(
        params in shape(),
        n in 1usize..=256,
        seed in any::<u64>(),
        epoch_pick in any::<u32>(),
        pick in any::<u32>(),
    ) {
        let keys = TestKeys::generate(n, seed);
        let mut p = sample_proposal(params, &keys, seed);
        p.epoch = Epoch(epoch_pick % p.epoch_count());
        let t = FactoryTree::build(&p).unwrap();
        check_invariants(&t);
        for c in [0, n as u32 - 1, pick % n as u32] {
            let path = ClientPath::build(&p, ClientId(c)).unwrap();
            prop_assert_eq!(Some(path), t.client_path(ClientId(c)));
        }
    }

    /// Small trees: every client's path, all of them.
    #[test]
    fn prop_all_paths_small(params in shape(), n in 1usize..=16, seed in any::<u64>()) {
        let keys = TestKeys::generate(n, seed);
        let t = FactoryTree::build(&sample_proposal(params, &keys, seed)).unwrap();
        for c in 0..n as u32 {
            let path = ClientPath::build(t.proposal(), ClientId(c)).unwrap();
            prop_assert_eq!(Some(path), t.client_path(ClientId(c)));
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Every transaction, signed with all keys, passes Bitcoin Core's interpreter.
    #[test]
    fn prop_signed_trees_pass_bitcoin_core(params in shape(), n in 1usize..=256, seed in any::<u64>()) {
        use crate::testing::tree::consensus_verify;
        let (mut t, keys) = {
            let keys = TestKeys::generate(n, seed);
            let p = sample_proposal(params, &keys, seed);
            (FactoryTree::build(&p).unwrap(), keys)
        };
        sign_all_aggregated(&mut t, &keys).unwrap();
        for node in t.nodes() {
            prop_assert!(consensus_verify(node).is_ok(), "node {}", node.id);
        }
    }

    /// The same with real MuSig2 rounds, on smaller trees.
    #[test]
    fn prop_real_musig2_small(params in shape(), n in 1usize..=12, seed in any::<u64>()) {
        use crate::testing::tree::consensus_verify;
        let keys = TestKeys::generate(n, seed);
        let mut t = FactoryTree::build(&sample_proposal(params, &keys, seed)).unwrap();
        sign_all(&mut t, &keys, &mut StdRng::seed_from_u64(seed)).unwrap();
        for node in t.nodes() {
            prop_assert!(consensus_verify(node).is_ok(), "node {}", node.id);
        }
    }
}

#[test]
#[ignore = "timing probe; run with --release --ignored --nocapture"]
fn timing_probe() {
    for params in [
        FactoryParams::mainnet(),
        FactoryParams::signet(),
        FactoryParams::regtest(),
    ] {
        for n in [1u32, 8, 64, 1024, 4096] {
            let w = crate::exit::worst_case_cost(&params, n).unwrap();
            println!("{:?} n={n}: {w:?}", params.network);
        }
    }
    for n in [256usize, 1024] {
        let keys = TestKeys::generate(n, 1);
        let p = sample_proposal(FactoryParams::mainnet(), &keys, 1);
        let t0 = std::time::Instant::now();
        let t = FactoryTree::build(&p).unwrap();
        let build = t0.elapsed();
        let t0 = std::time::Instant::now();
        let path = ClientPath::build(&p, ClientId(0)).unwrap();
        let path_time = t0.elapsed();
        let t0 = std::time::Instant::now();
        let jobs = t.signing_jobs();
        let jobs_time = t0.elapsed();
        println!(
            "n={n}: {} nodes, build {build:?}, path {path_time:?} ({} nodes), jobs {jobs_time:?} ({})",
            t.nodes().len(),
            path.nodes().len(),
            jobs.len()
        );
    }
}
