//! The open wallet against a superseded leaf state, with nobody pressing a button: a browser
//! wallet buys inbound liquidity (its leaf moves to state 1), then the provider is gone. Someone
//! publishes the shared part of the tree, and a cheater tries, at every block, to get the
//! wallet's superseded leaf state 0 in (its L-stock would be the provider's again). The open
//! wallet notices the spent funding output from its own chain source, walks its path and gets
//! its newest leaf state in first; state 0 is left without an input. Its picture of the factory
//! shows that leaf state on chain.
//!
//! Screenshot: `target/screenshots/watch-leaf-01-newest-in.png`.

mod common;
mod wallet_ui_support;

use std::time::{Duration, Instant};

use bitcoin::{Amount, OutPoint, Txid};
use common::chain::{broadcast_on, member_path, publish_path_on};
use wallet_ui_support::{beside_a_native_member, browser_factory, wallet_dist, Driver, SCREEN};

/// The confirmed spender of `op`, if any, as `esplora` serves it.
async fn confirmed_spender(esplora: &str, op: OutPoint) -> Option<Txid> {
    let status: serde_json::Value =
        reqwest::get(format!("{esplora}/tx/{}/outspend/{}", op.txid, op.vout))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
    (status["spent"] == true && status["status"]["confirmed"] == true)
        .then(|| status["txid"].as_str()?.parse().ok())
        .flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_wallet_gets_its_newest_leaf_state_in_against_a_stale_one() {
    let stack = common::start_with(browser_factory(2), Some(wallet_dist())).await;
    common::fund_lsp(&stack, Amount::from_sat(10_000_000)).await;
    let driver = Driver::start();
    let (a, other, mine) = beside_a_native_member(&stack, &driver, "leaf").await;

    // Test sats, then inbound liquidity: the leaf moves to state 1.
    a.click("#faucet").await;
    a.settled_balance().await;
    a.wait_attr("#liquidity-for-sale", "data-leaf-state", "0", SCREEN)
        .await;
    a.type_into("#liquidity-amount", "10000").await;
    a.find("#liquidity-left", SCREEN).await;
    a.confirm_liquidity().await;
    a.wait_attr("#liquidity-for-sale", "data-leaf-state", "1", SCREEN)
        .await;
    let stale = member_path(&stack, 1, mine)
        .leaf()
        .signed_tx()
        .expect("leaf state 0 is signed");
    let parent = stale.input[0].previous_output;

    // The provider is gone; the shared part of the tree goes on chain.
    let common::Stack { devnet, lsp, .. } = stack;
    lsp.stop().await.expect("the provider stops");
    publish_path_on(&devnet, &other.path, false).await;
    a.find("#exit-auto", Duration::from_secs(30)).await;

    // At every block the cheater tries the stale state; the wallet walks by itself.
    let deadline = Instant::now() + Duration::from_secs(180);
    let winner = loop {
        let _ = broadcast_on(&devnet, &stale).await;
        if let Some(winner) = confirmed_spender(devnet.esplora_url(), parent).await {
            break winner;
        }
        assert!(
            Instant::now() < deadline,
            "a leaf state confirms: {}",
            a.body_text().await
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        devnet.mine(1).await.expect("mine");
    };
    assert_ne!(
        winner,
        stale.compute_txid(),
        "the newest leaf state got in, not the stale one"
    );
    let refused = broadcast_on(&devnet, &stale).await.unwrap_err();
    assert!(
        refused.contains("missing") || refused.contains("spent") || refused.contains("conflict"),
        "the stale state has no input: {refused}"
    );
    // Its picture of the factory shows the leaf state that went in, on chain.
    a.wait_attr(
        &format!("g.tree-node[data-txid='{winner}']"),
        "class",
        "tree-node confirmed",
        SCREEN,
    )
    .await;
    a.screenshot("watch-leaf-01-newest-in").await;
    a.client.close().await.expect("close");
}
