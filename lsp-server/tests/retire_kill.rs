//! The real `lsp-server` process takes a factory nobody closed on chain by itself near its
//! timeout, and is killed with SIGKILL in the middle of that walk: started again on the same
//! data dir, it finds the walk due again, finishes it from what is already on chain, and
//! claims its side of both channels and both leaves' L-stock. Each member, away the whole
//! time, is paid its balance to the sat at its own key, and the distribution transaction never
//! becomes valid.

mod common;

use bitcoin::Amount;
use common::pay::{admin_channel_at, claims_confirmed, leaf_of, start_payer_at};
use common::process::{message, LspProcess, ProcessPair};
use common::swarm::ClientSpec;
use devnet::Devnet;
use wallet::pay::MemoryPayStore;

fn spec() -> ClientSpec {
    ClientSpec {
        channel: Amount::from_sat(60_000),
        liquidity: Amount::from_sat(10_000),
        ..ClientSpec::honest()
    }
}

async fn tip(devnet: &Devnet) -> u32 {
    devnet
        .rpc()
        .get_block_count()
        .await
        .expect("tip")
        .to_consensus_u32()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_retirement_walk_still_pays_everyone_and_the_lsp() {
    let ProcessPair {
        devnet,
        lsp,
        data_dir,
        port,
        ws,
        http,
        runs,
        _storage,
    } = ProcessPair::start(spec()).await;
    let mut balances = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        let store = MemoryPayStore::default();
        let mut p = start_payer_at(
            &ws,
            devnet.esplora_url(),
            run.keys,
            vec![leaf_of(run)],
            store,
        );
        p.ready(30).await;
        balances.push(
            p.faucet(Amount::from_sat(20_000 + 5_000 * i as u64), 30)
                .await,
        );
        p.handle.stop();
        let _ = p.task.await;
    }
    // Both members now stay away for good.
    let leaves: Vec<_> = runs.iter().map(leaf_of).collect();
    let retire_at = leaves
        .iter()
        .map(|l| l.path.last_walk_start().to_consensus_u32())
        .min()
        .expect("two");
    let timeout = leaves[0].path.timeout().to_consensus_u32();
    let now = tip(&devnet).await;
    devnet
        .mine(retire_at.saturating_sub(now + 1))
        .await
        .expect("mine");

    // The walk starts; the LSP dies right after putting the first transaction out.
    let walking = |v: &serde_json::Value| message(v).starts_with("going on chain: published");
    common::chain::mine_after_a_pass(&devnet).await;
    lsp.wait_log("the first step of the walk", 1, walking).await;
    lsp.kill().await;
    common::chain::mine_after_a_pass(&devnet).await;
    let lsp = LspProcess::start(&devnet, data_dir.path(), port, 2).await;

    let claimed = |view: &serde_json::Value| claims_confirmed(view, &["ToLocal", "LStock"]);
    loop {
        let a = admin_channel_at(&http, leaves[0].channel).await;
        let b = admin_channel_at(&http, leaves[1].channel).await;
        if claimed(&a) && claimed(&b) {
            break;
        }
        assert!(
            tip(&devnet).await < timeout + 40,
            "the restarted LSP finishes the walk and claims: {a} / {b}"
        );
        common::chain::mine_after_a_pass(&devnet).await;
    }

    // The funding output went before `T`; each member's balance is at its own key.
    let esplora = esplora_client::Builder::new(devnet.esplora_url())
        .build_async()
        .expect("esplora");
    let funding = leaves[0].path.funding_outpoint();
    let spent = esplora
        .get_output_status(&funding.txid, u64::from(funding.vout))
        .await
        .expect("outspend")
        .expect("status");
    let spent_at = spent
        .status
        .and_then(|s| s.block_height)
        .expect("confirmed");
    assert!(spent_at <= timeout, "spent at {spent_at}, T = {timeout}");
    for (leaf, balance) in leaves.iter().zip(&balances) {
        let channel = leaf.path.channel_outpoint();
        let commitment = esplora
            .get_output_status(&channel.txid, u64::from(channel.vout))
            .await
            .expect("outspend")
            .and_then(|s| s.txid)
            .expect("the channel output is spent");
        let tx = esplora
            .get_tx(&commitment)
            .await
            .expect("tx")
            .expect("on chain");
        assert!(
            tx.output.iter().any(|o| o.value == *balance),
            "{}: an output pays the member its {balance}",
            leaf.channel
        );
    }
    println!(
        "retired from block {retire_at} (T = {timeout}), killed after the first step, \
         funding spent at {spent_at}; members paid {balances:?}"
    );
    lsp.kill().await;
}
