//! The real `lsp-server` process answers a cheating wallet on chain by itself: wallet B is paid
//! test sats, keeps a copy of that commitment, pays nearly all of it to wallet A (so the copy is
//! revoked), then walks its own tree path and publishes the revoked commitment. The LSP process,
//! with nobody at it, takes every output of that commitment with its penalty before B's own
//! `to_self_delay` could open, and its admin API shows the channel closed with the penalty
//! confirmed.

mod common;

use std::time::{Duration, Instant};

use bitcoin::{Amount, Network};
use common::chain::{broadcast_on, known_at, publish_path_on, spender_on};
use common::pay::{admin_channel_at, leaf_of, start_payer_at};
use common::process::ProcessPair;
use common::swarm::ClientSpec;
use devnet::Devnet;
use shared::pay::ChannelPolicy;
use wallet::pay::{leaf_channels, MemoryPayStore, PayStore};

async fn tip(devnet: &Devnet) -> u32 {
    devnet.height().await.expect("tip").to_consensus_u32()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lsp_process_penalises_a_revoked_commitment_by_itself() {
    let ProcessPair {
        devnet,
        lsp: _lsp,
        ws,
        http,
        runs,
        ..
    } = ProcessPair::start(ClientSpec::honest()).await;
    let start = |i: usize| {
        start_payer_at(
            &ws,
            devnet.esplora_url(),
            runs[i].keys,
            vec![leaf_of(&runs[i])],
            MemoryPayStore::default(),
        )
    };
    let (mut a, mut b) = (start(0), start(1));
    a.ready(30).await;
    b.ready(30).await;

    // B is paid test sats and keeps a copy of that commitment.
    let held = b.faucet(Amount::from_sat(10_000), 30).await;
    let leaf = leaf_of(&runs[1]);
    let policy = ChannelPolicy::for_network(Network::Regtest);
    let stored = b.store.clone().load().await.expect("B's store");
    let revoked = leaf_channels(&stored, &leaf, &policy)
        .into_iter()
        .find_map(|c| c.latest_signed().cloned())
        .expect("B's signed commitment");
    // B pays nearly all of it to A: the copy is revoked.
    let invoice = a
        .handle
        .invoice(held - Amount::from_sat(1_000), "before cheating")
        .await
        .expect("invoice");
    b.handle.pay(&invoice.invoice).await.expect("paid");
    b.handle.stop();
    let _ = b.task.await;

    // B walks its path and publishes the revoked commitment.
    publish_path_on(&devnet, &leaf.path, true).await;
    broadcast_on(&devnet, &revoked)
        .await
        .expect("the revoked commitment is valid on chain");
    devnet.mine(1).await.expect("mine");
    let confirmed_at = tip(&devnet).await;
    let delay = policy.to_self_delay.to_blocks();
    let deadline = Instant::now() + Duration::from_secs(120);
    let penalty = 'found: loop {
        for vout in 0..revoked.output.len() as u32 {
            if revoked.output[vout as usize].value <= Amount::from_sat(330) {
                continue; // an anchor
            }
            if let Some(txid) = spender_on(&devnet, revoked.compute_txid(), vout).await {
                break 'found txid;
            }
        }
        assert!(
            tip(&devnet).await < confirmed_at + delay - 1 && Instant::now() < deadline,
            "the LSP answers before the cheater's lock opens"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        devnet.mine(1).await.expect("mine");
    };
    devnet.mine(1).await.expect("mine");
    assert!(
        tip(&devnet).await < confirmed_at + delay,
        "in before B's to_local opens"
    );
    assert!(known_at(&devnet, penalty).await);
    for (vout, out) in revoked.output.iter().enumerate() {
        if out.value > Amount::from_sat(330) {
            assert_eq!(
                spender_on(&devnet, revoked.compute_txid(), vout as u32).await,
                Some(penalty),
                "output {vout} taken by the penalty"
            );
        }
    }

    // The LSP's admin API: the channel closed, the penalty confirmed.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let view = admin_channel_at(&http, leaf.channel).await;
        if view["claims"][0]["confirmed"] == true {
            assert_eq!(view["claims"][0]["kind"], "Penalty", "{view}");
            assert_eq!(view["claims"][0]["txid"], penalty.to_string(), "{view}");
            assert_eq!(view["state"], "closed", "{view}");
            break;
        }
        assert!(Instant::now() < deadline, "admin view: {view}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    a.handle.stop();
}
