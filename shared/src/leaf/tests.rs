use bitcoin::{Amount, Sequence};
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::*;
use crate::params::FactoryParams;
use crate::testing::tree::sign_job;
use crate::testing::{sample_proposal, TestKeys};
use crate::tree::NodeKind;
use crate::types::ClientId;

fn setup() -> (ClientPath, TestKeys) {
    let keys = TestKeys::generate(4, 7);
    let proposal = sample_proposal(FactoryParams::regtest(), &keys, 7);
    (ClientPath::build(&proposal, ClientId(2)).unwrap(), keys)
}

fn signed(mut node: TreeNode, path: &ClientPath, keys: &TestKeys) -> TreeNode {
    let job = path.proposal().job(&node);
    let sig = sign_job(&job, keys, &mut StdRng::seed_from_u64(1)).unwrap();
    node.set_signature(sig).unwrap();
    node
}

#[test]
fn delays_count_down_and_state_zero_is_the_tree_leaf() {
    let p = FactoryParams::regtest(); // K = 4, S = 2
    let d = |e| delay(&p, LeafEpoch(e)).map(|d| d.to_blocks());
    assert_eq!(
        [d(0), d(1), d(2), d(3), d(4)],
        [Some(6), Some(4), Some(2), Some(0), None]
    );
    let (path, _) = setup();
    assert_eq!(path.leaf().tx.input[0].sequence, Sequence::from_height(6));
    assert_eq!(
        LeafState::build(&path, LeafEpoch(0), Amount::ZERO)
            .unwrap()
            .node,
        *path.leaf()
    );
}

#[test]
fn a_sale_moves_lstock_into_the_channel_and_nothing_else() {
    let (path, _) = setup();
    let first = LeafState::first(&path);
    let sold = Amount::from_sat(4_000);
    let next = first.next(&path, sold).unwrap();
    assert_eq!(next.epoch, LeafEpoch(1));
    assert_eq!(next.node.spent_outpoint(), first.node.spent_outpoint());
    assert_eq!(next.node.tx.input[0].sequence, Sequence::from_height(4));
    assert_eq!(
        next.channel_output().value,
        first.channel_output().value + sold
    );
    assert_eq!(next.lstock_value(), first.lstock_value() - sold);
    assert_eq!(next.node.fee(), first.node.fee());
    for i in 0..3 {
        assert_eq!(
            next.node.tx.output[i].script_pubkey,
            first.node.tx.output[i].script_pubkey
        );
    }
    let params = &path.proposal().params;
    let all = next.available(params);
    assert_eq!(next.lstock_value() - all, min_lstock(params));
    assert!(matches!(
        next.next(&path, all + Amount::ONE_SAT),
        Err(LeafError::TooMuch { .. })
    ));
    assert_eq!(next.next(&path, Amount::ZERO), Err(LeafError::Nothing));
    let last = next.next(&path, Amount::ONE_SAT).unwrap();
    let last = last.next(&path, Amount::ONE_SAT).unwrap();
    assert_eq!(last.epoch, LeafEpoch(3));
    assert_eq!(last.node.tx.input[0].sequence, Sequence::from_height(0));
    assert_eq!(
        last.next(&path, Amount::ONE_SAT),
        Err(LeafError::Exhausted { count: 4 })
    );
}

#[test]
fn the_redistribution_pays_the_stale_lstock_to_the_client() {
    let (path, keys) = setup();
    let first = LeafState::first(&path);
    let r = first.redistribution(&path);
    assert_eq!(r.spent_outpoint(), first.lstock_outpoint());
    assert!(matches!(r.kind, NodeKind::Redistribution { client, epoch }
        if client == path.client() && epoch == LeafEpoch::FIRST));
    let client_spk = path.distribution().tx.output[path.client().0 as usize]
        .script_pubkey
        .clone();
    assert_eq!(
        r.tx.output[0].script_pubkey, client_spk,
        "the client's own key"
    );
    assert_eq!(r.fee(), crate::tree::fee_of(&path.proposal().params, 1));
    assert_eq!(
        r.fee().to_sat(),
        r.vsize() * path.proposal().params.fee_rate.to_sat_per_vb_ceil()
    );
    // Both keys sign it by key path with the L-stock's script tree as tweak.
    signed(r, &path, &keys);
}

#[test]
fn leaf_states_sign_each_epoch_once_and_in_order() {
    let (path, keys) = setup();
    let mut leaf = LeafStates::new(&path);
    let first = leaf.latest().clone();
    let a = first.next(&path, Amount::from_sat(3_000)).unwrap();
    let b = first.next(&path, Amount::from_sat(5_000)).unwrap();
    let two = a.next(&path, Amount::ONE_SAT).unwrap();
    assert!(matches!(
        leaf.record_signing(&two),
        Err(LeafStatesError::OutOfOrder { .. })
    ));
    leaf.record_signing(&a).unwrap();
    leaf.record_signing(&a).unwrap();
    assert_eq!(
        leaf.record_signing(&b),
        Err(LeafStatesError::Conflict(LeafEpoch(1)))
    );
    // Unsigned transactions are refused and change nothing.
    let r = first.redistribution(&path);
    assert_eq!(
        leaf.advance(a.clone(), r.clone()),
        Err(LeafStatesError::Unsigned("new leaf state"))
    );
    let a_signed = LeafState {
        node: signed(a.node.clone(), &path, &keys),
        ..a.clone()
    };
    assert_eq!(
        leaf.advance(a_signed.clone(), r.clone()),
        Err(LeafStatesError::Unsigned("redistribution"))
    );
    assert_eq!(leaf.latest().epoch, LeafEpoch(0));
    let b_signed = LeafState {
        node: signed(b.node.clone(), &path, &keys),
        ..b
    };
    assert!(leaf
        .advance(b_signed, signed(r.clone(), &path, &keys))
        .is_err());
    leaf.advance(a_signed, signed(r, &path, &keys)).unwrap();
    assert_eq!(leaf.latest().epoch, LeafEpoch(1));
    assert_eq!(leaf.available(), a.available(&path.proposal().params));
    assert_eq!(
        leaf.redistribution(LeafEpoch(0)).unwrap().spent_outpoint(),
        first.lstock_outpoint()
    );
    // A state that does not sell more is refused.
    let same = LeafState::build(&path, LeafEpoch(2), a.sold).unwrap();
    assert_eq!(leaf.record_signing(&same), Err(LeafStatesError::NotMore));
}

#[test]
fn both_sides_sign_an_advance_and_a_bad_partial_is_refused() {
    let (path, keys) = setup();
    let lsp_secret = keys.lsp;
    let client_secret = keys.clients[2];
    let client_key = crate::musig::public_key(&client_secret);
    let mut rng = StdRng::seed_from_u64(9);
    let amount = Amount::from_sat(2_500);
    let mut lsp_leaf = LeafStates::new(&path);
    let mut client_leaf = LeafStates::new(&path);
    let mut lsp = Advance::new(&path, lsp_leaf.latest(), amount).unwrap();
    let mut client = Advance::new(&path, client_leaf.latest(), amount).unwrap();
    assert_eq!(lsp.state, client.state, "both build the same new state");
    assert_eq!(lsp.redistribution, client.redistribution);
    // The offer carries the LSP's nonces.
    let (lsp_secs, lsp_pubs) = lsp.nonces(&lsp_secret, &mut rng);
    // The client records, then signs.
    client_leaf.record_signing(&client.state).unwrap();
    let (client_secs, client_pubs) = client.nonces(&client_secret, &mut rng);
    let partials = client
        .sign(&client_secret, client_secs, &client_pubs, &lsp_pubs)
        .unwrap();
    // A tampered partial signature is refused, naming the client; nothing is attached.
    let mut bad = partials;
    bad.swap(0, 1);
    let (secs2, pubs2) = lsp.nonces(&lsp_secret, &mut rng);
    assert!(matches!(
        lsp.clone()
            .complete(&lsp_secret, secs2, &pubs2, &client_key, &client_pubs, &bad),
        Err(AdvanceError::Musig(_))
    ));
    lsp_leaf.record_signing(&lsp.state).unwrap();
    let sigs = lsp
        .complete(
            &lsp_secret,
            lsp_secs,
            &lsp_pubs,
            &client_key,
            &client_pubs,
            &partials,
        )
        .unwrap();
    lsp_leaf
        .advance(lsp.state.clone(), lsp.redistribution.clone())
        .unwrap();
    // The client checks both signatures before storing.
    let mut swapped = sigs;
    swapped.swap(0, 1);
    assert_eq!(
        client.clone().attach(swapped),
        Err(AdvanceError::BadSignature("new leaf state"))
    );
    client.attach(sigs).unwrap();
    client_leaf
        .advance(client.state.clone(), client.redistribution.clone())
        .unwrap();
    assert_eq!(client_leaf.latest(), lsp_leaf.latest());
    assert_eq!(client_leaf.latest().sold, amount);
    // Both signed transactions are complete and spend what they should.
    assert!(client.state.node.signed_tx().is_some());
    assert_eq!(
        client.redistribution.spent_outpoint(),
        LeafState::first(&path).lstock_outpoint()
    );
}

#[test]
fn the_lsp_sweeps_the_lstock_of_the_state_on_chain_after_its_csv() {
    let (path, keys) = setup();
    let first = LeafState::first(&path);
    let to = bitcoin::ScriptBuf::new_p2a();
    let rate = bitcoin::FeeRate::from_sat_per_vb_u32(2);
    let tx = first
        .lstock_sweep(&path, &keys.lsp, to.clone(), rate)
        .unwrap()
        .expect("the L-stock pays more than its fee");
    assert_eq!(tx.input[0].previous_output, first.lstock_outpoint());
    let csv = path.proposal().params.lstock_csv;
    assert_eq!(tx.input[0].sequence, csv.to_relative_sequence().unwrap());
    let prevout = first.node.tx.output[1].clone();
    assert_eq!(
        prevout.value - tx.output[0].value,
        rate.fee_vb(tx.vsize() as u64).unwrap(),
        "exactly the rate on the signed size"
    );
    crate::testing::tree::consensus_verify_tx(&tx, &prevout).unwrap();
    // Only the LSP's key; and a rate that eats the output builds nothing.
    assert!(matches!(
        first.lstock_sweep(&path, &keys.clients[0], to.clone(), rate),
        Err(SweepError::NotTheLspKey)
    ));
    let eats_it =
        bitcoin::FeeRate::from_sat_per_vb(prevout.value.to_sat() / tx.vsize() as u64 + 1).unwrap();
    assert!(first
        .lstock_sweep(&path, &keys.lsp, to, eats_it)
        .unwrap()
        .is_none());
}
