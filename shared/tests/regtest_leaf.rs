//! Leaf states on a real regtest node: a client buys inbound liquidity (the leaf moves to state
//! 1, the superseded state's L-stock gets its redistribution), then someone publishes the tree.
//!
//! - online client: the newest leaf state has the shorter delay and confirms first; the stale
//!   state can never confirm after it;
//! - offline client: the LSP waits out the stale state's longer delay and confirms it; back
//!   online, the client's planner publishes the redistribution, which pays the client the whole
//!   stale L-stock (less its pre-signed fee and anchor) before the L-stock's CSV lets the LSP
//!   sweep it, and the client closes the old channel with its final commitment, whose balance
//!   it still holds.
//!
//! Every transaction passes `testmempoolaccept` first; every lock is checked one block early.

// The shared regtest helpers serve several test files; this one uses part of them.
#[allow(dead_code, unused_imports)]
mod regtest;

use std::collections::BTreeMap;

use bitcoin::secp256k1::SecretKey;
use bitcoin::{Amount, OutPoint, ScriptBuf};
use rand::rngs::StdRng;
use rand::SeedableRng;
use regtest::{
    add, expected_payout, feerate, peer_info, sub, Factory, Regtest, MISSING_INPUTS,
    NON_BIP68_FINAL,
};
use shared::channel::{Action, Channel, ChannelParams, ClaimKind, CommitmentSpec, Side};
use shared::exit::{ExitAction, ExitKit};
use shared::leaf::{LeafState, LeafStates};
use shared::params::BlockDelta;
use shared::testing::tree::sign_job;
use shared::tree::{NodeKind, TreeNode};
use shared::types::{ClientId, Now};

const TO_SELF_DELAY: u32 = 6;

/// A factory of four, with client 0's leaf advanced to state 1 (both sides signed state 1
/// and the redistribution of state 0), and the client's kit holding both.
struct Sold {
    rt: Regtest,
    factory: Factory,
    kit: ExitKit,
    leaf: LeafStates,
}

const CLIENT: ClientId = ClientId(0);

fn signed(factory: &Factory, mut node: TreeNode) -> TreeNode {
    let job = factory.proposal().job(&node);
    let sig = sign_job(&job, &factory.keys, &mut rand::thread_rng()).expect("MuSig2 signs");
    node.set_signature(sig).expect("the aggregate verifies");
    node
}

impl Sold {
    async fn new(seed: u64) -> Sold {
        let rt = Regtest::start().await;
        let factory = Factory::create(&rt, 4, seed, 0).await;
        let mut kit = factory.client_kit(CLIENT);
        let path = kit.latest().clone();
        let mut leaf = LeafStates::new(&path);
        let first = leaf.latest().clone();
        let sold = first.available(&path.proposal().params) / 2;
        let next = first.next(&path, sold).expect("liquidity is left");
        leaf.record_signing(&next).expect("state 1 comes next");
        let next = LeafState {
            node: signed(&factory, next.node.clone()),
            ..next
        };
        let redistribution = signed(&factory, first.redistribution(&path));
        leaf.advance(next, redistribution).expect("both signed");
        kit.set_leaf(leaf.clone()).expect("the kit's leaf");
        Sold {
            rt,
            factory,
            kit,
            leaf,
        }
    }

    /// Publishes every node of the client's path above the leaf (what the LSP would), and
    /// returns the height the leaf's parent output confirmed at.
    async fn publish_above_leaf(&self) -> bitcoin::absolute::Height {
        let path = self.kit.latest();
        let mut height = self.rt.tip().await;
        for node in &path.nodes()[..path.nodes().len() - 1] {
            let tx = node.signed_tx().expect("signed");
            let wait = node.relative_delay().to_blocks();
            if wait > 1 {
                self.rt.mine_to(add(height, wait - 1)).await;
            }
            height = self.rt.confirm(&tx, Some(node.vsize())).await;
        }
        height
    }

    /// What the planner says now.
    async fn next_action(&self) -> ExitAction {
        let view = regtest::EsploraView::fetch(&self.rt.esplora, &self.kit).await;
        self.kit.next_action(&view)
    }
}

/// The LSP publishes the tree; the client, online, gets the newest leaf state (delay 4)
/// confirmed before the stale state 0 (delay 6) may even enter the mempool, and its channel
/// output then holds the bought liquidity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_newest_leaf_state_confirms_before_the_superseded_one() {
    let s = Sold::new(41).await;
    let parent_at = s.publish_above_leaf().await;
    let stale = s.leaf.states()[0].node.signed_tx().expect("signed");
    let newest = &s.leaf.latest().node;
    assert_eq!(stale.input[0].sequence.0, 6);
    assert_eq!(newest.tx.input[0].sequence.0, 4);
    // The planner waits for the newest state's lock, then broadcasts it.
    match s.next_action().await {
        ExitAction::WaitUntil { height, .. } => assert_eq!(height, add(parent_at, 3)),
        other => panic!("expected a wait for state 1, got {other:?}"),
    }
    s.rt.mine_to(add(parent_at, 2)).await;
    s.rt.assert_cannot_broadcast(&newest.signed_tx().unwrap(), &[NON_BIP68_FINAL])
        .await;
    s.rt.mine_to(add(parent_at, 3)).await;
    s.rt.assert_cannot_broadcast(&stale, &[NON_BIP68_FINAL])
        .await;
    let tx = match s.next_action().await {
        ExitAction::Broadcast { tx, kind, .. } => {
            assert!(matches!(kind, NodeKind::Leaf { client, .. } if client == CLIENT));
            tx
        }
        other => panic!("expected state 1, got {other:?}"),
    };
    assert_eq!(tx.compute_txid(), newest.txid());
    assert_eq!(s.rt.confirm(&tx, None).await, add(parent_at, 4));
    s.rt.mine_to(add(parent_at, 6)).await;
    s.rt.assert_cannot_broadcast(&stale, &[MISSING_INPUTS])
        .await;
    match s.next_action().await {
        ExitAction::LeafConfirmed { channel, .. } => {
            assert_eq!(channel, s.leaf.latest().channel_outpoint());
            let entry = &s.factory.proposal().clients[CLIENT.0 as usize];
            assert_eq!(
                s.rt.unspent(channel).await.value,
                entry.channel + s.leaf.latest().sold
            );
        }
        other => panic!("expected the leaf, got {other:?}"),
    }
    s.rt.devnet.shutdown().await.expect("devnet stops");
}

/// The client is offline while the LSP gets the superseded state 0 confirmed. Back online,
/// the planner publishes the redistribution at once: it pays the client the stale L-stock
/// (less its fee and anchor), and the LSP's L-stock script path, which would have taken it
/// `lstock_csv` blocks later, finds it spent. The client then closes the old channel with its
/// final commitment: its balance there is intact. It ends with its balance at the advance plus
/// the L-stock the LSP had kept for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lsp_publishes_a_superseded_leaf_state_and_the_redistribution_pays_the_client() {
    let s = Sold::new(42).await;
    let first = s.leaf.states()[0].clone();
    // The channel on state 0's output, as it stood when the client bought liquidity: the
    // client holds 60% of it. Both sides hold this final commitment, unrevoked.
    let path = s.kit.latest();
    let proposal = s.factory.proposal();
    let entry = &proposal.clients[CLIENT.0 as usize];
    let params = ChannelParams {
        funding: first.channel_outpoint(),
        funding_output: first.channel_output().clone(),
        lsp_funding_key: proposal.lsp_key,
        client_funding_key: entry.key,
        to_self_delay: BlockDelta::from_blocks(TO_SELF_DELAY),
        dust_limit: Amount::from_sat(330),
        anchor: Amount::from_sat(240),
        htlc_margin: BlockDelta::from_blocks(6),
        walk: BlockDelta::ZERO,
    };
    let capacity = entry.channel.to_sat();
    let spec = CommitmentSpec {
        lsp_balance: Amount::from_sat(capacity - capacity * 3 / 5),
        client_balance: Amount::from_sat(capacity * 3 / 5),
        htlcs: vec![],
        feerate: feerate(),
    };
    let (lsp_seed, client_seed) = ([51u8; 32], [52u8; 32]);
    let mut lsp = Channel::new(
        Side::Lsp,
        params.clone(),
        s.factory.keys.lsp,
        &lsp_seed,
        peer_info(&client_seed),
        spec.clone(),
    )
    .expect("LSP side");
    let mut client = Channel::new(
        Side::Client,
        params,
        s.factory.keys.clients[0],
        &client_seed,
        peer_info(&lsp_seed),
        spec.clone(),
    )
    .expect("client side");
    let mut rng = StdRng::seed_from_u64(42);
    let now = Now {
        height: s.rt.tip().await,
        unix_time: 0,
    };
    lsp.start_round(&mut rng).expect("round 0");
    loop {
        let mut moved = false;
        while let Some(a) = lsp.poll_action() {
            if let Action::Send(m) = a {
                client.handle_message(now, m, &mut rng).expect("client");
                moved = true;
            }
        }
        while let Some(a) = client.poll_action() {
            if let Action::Send(m) = a {
                lsp.handle_message(now, m, &mut rng).expect("LSP");
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    let final_commitment = client.latest_signed().expect("round 0 signed").clone();

    // The LSP publishes the tree and, the client being away, waits out state 0's delay.
    let parent_at = s.publish_above_leaf().await;
    let stale = first.node.signed_tx().expect("signed");
    s.rt.mine_to(add(parent_at, 4)).await;
    s.rt.assert_cannot_broadcast(&stale, &[NON_BIP68_FINAL])
        .await;
    s.rt.mine_to(add(parent_at, 5)).await;
    let stale_at = s.rt.confirm(&stale, None).await;
    assert_eq!(stale_at, add(parent_at, 6));

    // Back online: the planner's first step is the redistribution of the stale L-stock.
    let redistribution = match s.next_action().await {
        ExitAction::Broadcast { tx, kind, .. } => {
            assert!(matches!(kind, NodeKind::Redistribution { client, epoch }
                if client == CLIENT && epoch == first.epoch));
            tx
        }
        other => panic!("expected the redistribution, got {other:?}"),
    };
    // The LSP's own L-stock sweep is still locked by the CSV.
    let csv = proposal.params.lstock_csv.to_blocks();
    assert!(s.rt.tip().await < add(stale_at, csv - 1));
    s.rt.confirm(&redistribution, None).await;
    let payout =
        s.rt.unspent(OutPoint::new(redistribution.compute_txid(), 0))
            .await;
    let client_key_script: ScriptBuf = expected_payout(proposal, CLIENT).script_pubkey;
    assert_eq!(
        payout.script_pubkey, client_key_script,
        "the client's own key"
    );
    let r_node = s.leaf.redistribution(first.epoch).expect("stored");
    assert_eq!(
        payout.value,
        entry.lstock - r_node.fee() - proposal.params.anchor_value,
        "the whole stale L-stock, less the pre-signed fee and anchor"
    );
    // The leaf is done: the channel to close is the old one.
    let channel = match s.next_action().await {
        ExitAction::LeafConfirmed { channel, leaf, .. } => {
            assert_eq!(leaf, first.node.txid());
            channel
        }
        other => panic!("expected the leaf, got {other:?}"),
    };
    assert_eq!(channel, first.channel_outpoint());
    assert_eq!(path.channel_outpoint(), channel);

    // The old channel's final commitment still pays the client its balance there.
    let confirmed = s.rt.confirm(&final_commitment, None).await;
    let secp = bitcoin::secp256k1::Secp256k1::new();
    let dest_key = SecretKey::new(&mut rng).x_only_public_key(&secp).0;
    let dest = ScriptBuf::new_p2tr(&secp, dest_key, None);
    let claims = client
        .claims_for(&final_commitment, &dest, feerate(), &BTreeMap::new())
        .expect("its own commitment");
    let (kind, sweep) = &claims[0];
    assert_eq!(*kind, ClaimKind::ToLocal);
    let matured = add(confirmed, TO_SELF_DELAY - 1);
    s.rt.mine_to(sub(matured, 1)).await;
    s.rt.assert_cannot_broadcast(sweep, &[NON_BIP68_FINAL])
        .await;
    s.rt.mine_to(matured).await;
    s.rt.confirm(sweep, None).await;
    let swept = s.rt.unspent(OutPoint::new(sweep.compute_txid(), 0)).await;
    assert_eq!(
        swept.value + Amount::from_sat(sweep.vsize() as u64 * 2),
        spec.client_balance
    );
    // In all: the client's balance at the advance, plus the stale L-stock.
    s.rt.devnet.shutdown().await.expect("devnet stops");
}
