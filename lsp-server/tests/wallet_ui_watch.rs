//! The wallet's own watch in the browser, with nobody pressing a button: a browser wallet
//! shares a factory with another member. It gets test sats (so the LSP's first commitment,
//! where the LSP held everything, is revoked). Then the other member publishes the shared part
//! of the tree, which spends the factory's funding output. The open wallet notices on its own
//! (from its own chain source), says so, marks the published transactions as on chain in its
//! picture of the factory, and walks its path. As soon as its leaf reaches the
//! mempool, a cheating LSP publishes its revoked commitment on the wallet's channel. The wallet
//! answers with the penalty, which takes every output, and sweeps to its own address, with the
//! page reloaded in the middle (the watch acts again on open).
//!
//! Screenshots: `target/screenshots/watch-*.png`.

mod common;
mod wallet_ui_support;

use std::time::{Duration, Instant};

use bitcoin::Amount;
use common::chain::{broadcast, known, lsp_commitment, paid_to, publish_path, spender};
use wallet_ui_support::{beside_a_native_member, browser_factory, wallet_dist, Driver, SCREEN};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_wallet_exits_by_itself_and_punishes_a_revoked_lsp_commitment() {
    let stack = common::start_with(browser_factory(2), Some(wallet_dist())).await;
    common::fund_lsp(&stack, Amount::from_sat(10_000_000)).await;
    let driver = Driver::start();
    let (a, other, mine) = beside_a_native_member(&stack, &driver, "watcher").await;

    // Test sats: the LSP's commitment 0 (all of the channel its own) is revoked.
    a.click("#faucet").await;
    a.find("#faucet-message", SCREEN).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let revoked = loop {
        // Revoked once the LSP holds commitment 2 (the faucet's HTLC, then its settlement).
        if lsp_commitment(&stack, mine, 2).is_some() {
            break lsp_commitment(&stack, mine, 0).expect("the LSP's commitment 0");
        }
        assert!(Instant::now() < deadline, "the faucet's rounds complete");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let leaf = revoked.input[0].previous_output.txid;
    let sweep = a.sweep_address().await;

    // The other member publishes the shared part of the tree: the funding output is spent.
    publish_path(&stack, &other.path, false).await;
    a.find("#exit-auto", Duration::from_secs(30)).await;
    // Its picture of the factory marks what the other member published as on chain.
    let shared = &other.path.nodes()[..other.path.nodes().len() - 1];
    for node in shared {
        let css = format!("g.tree-node[data-txid='{}']", node.txid());
        a.wait_attr(&css, "class", "tree-node confirmed", SCREEN)
            .await;
    }
    a.screenshot("watch-01-started-by-itself").await;

    // The wallet walks its path; the moment its leaf is in the mempool, the LSP cheats.
    let deadline = Instant::now() + Duration::from_secs(120);
    'walk: loop {
        for _ in 0..16 {
            if known(&stack, leaf).await {
                break 'walk;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert!(Instant::now() < deadline, "the wallet publishes its leaf");
        stack.devnet.mine(1).await.expect("mine");
    }
    broadcast(&stack, &revoked)
        .await
        .expect("the revoked commitment enters the mempool behind the leaf");
    stack.devnet.mine(1).await.expect("mine");

    // The page is reloaded: the watch acts again on open.
    a.client.refresh().await.expect("reload");
    a.click("#unlock").await;

    // The wallet answers with the penalty and sweeps everything the revoked commitment held.
    let revoked_txid = revoked.compute_txid();
    let deadline = Instant::now() + Duration::from_secs(120);
    let lsp_output = revoked
        .output
        .iter()
        .position(|o| o.value > Amount::from_sat(330))
        .expect("the LSP's balance") as u32;
    let penalty = loop {
        if let Some(t) = spender(&stack, revoked_txid, lsp_output).await {
            break t;
        }
        if Instant::now() > deadline {
            a.screenshot("watch-failed").await;
            panic!("the wallet did not penalise: {}", a.body_text().await);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    stack.devnet.mine(1).await.expect("mine");
    a.wait_attr(
        "#exit-status",
        "data-state",
        "swept",
        Duration::from_secs(60),
    )
    .await;
    a.screenshot("watch-02-penalised").await;
    let paid = paid_to(&stack, penalty, &sweep).await;
    let held: Amount = revoked
        .output
        .iter()
        .filter(|o| o.value > Amount::from_sat(330))
        .map(|o| o.value)
        .sum();
    assert!(
        paid + Amount::from_sat(2_000) > held,
        "the penalty pays the wallet's address the whole revoked commitment, less its fee: {paid} of {held}"
    );
    a.client.close().await.expect("close");
}
