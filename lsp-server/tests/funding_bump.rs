//! A funding transaction that miners ignore: the LSP notices it stays unconfirmed for
//! `--funding-bump-blocks` blocks, pays for it with a child spending its change (CPFP: the
//! funding txid cannot change, every tree transaction spends it), and the pair confirms.
//!
//! The stall is made with `prioritisetransaction` on the regtest node: in the node's eyes the
//! funding pays nothing, so it puts it in no block until a child pays for it.

mod common;

use std::time::{Duration, Instant};

use bitcoin::{Amount, Txid};
use common::swarm::{self, ClientSpec};
use devnet::Devnet;
use serde_json::json;

async fn child_of(devnet: &Devnet, parent: Txid) -> Option<Txid> {
    let entry = devnet.rpc().get_mempool_entry(&parent).await.ok()??;
    entry.spentby.first().copied()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_funding_transaction_gets_a_child_and_confirms() {
    let options = lsp_server::FactoryOptions {
        funding_bump_blocks: 2,
        ..common::fast_factory(2, 2)
    };
    let stack = common::start_with(options, None).await;
    common::fund_lsp(&stack, Amount::from_sat(1_000_000)).await;
    let storage = tempfile::tempdir().expect("temp dir");
    let config = common::swarm_config(&stack, storage.path());
    let mut clients = swarm::spawn(&config, &[ClientSpec::honest(); 2]);
    assert!(
        clients
            .wait_for(Duration::from_secs(60), |log| swarm::broadcast_heard(
                log,
                0..2
            ))
            .await,
        "the funding is broadcast"
    );
    let funding: Txid = stack
        .db()
        .query_row("SELECT funding_txid FROM factories WHERE id = 1", [], |r| {
            r.get::<_, String>(0)
        })
        .expect("funding txid stored")
        .parse()
        .expect("a txid");

    // The node now sees the funding paying no fee at all.
    let rpc = stack.devnet.rpc();
    let entry = rpc
        .get_mempool_entry(&funding)
        .await
        .expect("rpc")
        .expect("the funding is in the mempool");
    let delta = -(entry.fees.base.to_sat() as i64);
    let _: bool = rpc
        .call(
            "prioritisetransaction",
            &[json!(funding), json!(0), json!(delta)],
        )
        .await
        .expect("prioritisetransaction");

    // One block: the funding stays out, no bump yet.
    stack.devnet.mine(1).await.expect("mine");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(rpc
        .get_mempool_entry(&funding)
        .await
        .expect("rpc")
        .is_some());
    assert_eq!(
        child_of(&stack.devnet, funding).await,
        None,
        "no bump before the stretch"
    );

    // A second block: the LSP bumps with a child.
    stack.devnet.mine(1).await.expect("mine");
    let deadline = Instant::now() + Duration::from_secs(15);
    let child = loop {
        if let Some(child) = child_of(&stack.devnet, funding).await {
            break child;
        }
        assert!(
            Instant::now() < deadline,
            "the LSP bumps the stalled funding"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let child_entry = rpc
        .get_mempool_entry(&child)
        .await
        .expect("rpc")
        .expect("the child is in the mempool");
    assert!(child_entry.fees.base > Amount::ZERO);

    // The pair confirms together; the factory is funded and every wallet holds its path.
    stack.devnet.mine(1).await.expect("mine");
    let (runs, _) = clients.finish(Duration::from_secs(60)).await;
    for run in &runs {
        common::assert_verified_path(&stack.devnet, run).await;
    }
    common::wait_state(&stack, 1, "funded", 10).await;
}
