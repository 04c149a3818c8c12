//! Sending from the wallet's on-chain address, in a real headless Chromium against a real LSP
//! and bitcoind: a new wallet receives coins at its own address (as an exit would pay it), and
//! Home offers to send them. An address of another network and an amount it cannot cover are
//! refused in plain words before anything is built; a good one shows the amount, the network fee
//! and the total first, and only the second tap sends. The test checks on chain that the payee
//! got the amount and that the wallet's balance is what it had less the amount and the fee it
//! was shown.

mod common;
mod wallet_ui_support;

use std::time::{Duration, Instant};

use bitcoin::secp256k1::{Secp256k1, SecretKey};
use bitcoin::{Address, Amount, Network};
use wallet_ui_support::{wallet_dist, Driver, SCREEN};

/// The `name` attribute of `css`, as a number.
async fn number_attr(w: &wallet_ui_support::Browser, css: &str, name: &str) -> u64 {
    w.find(css, SCREEN)
        .await
        .attr(name)
        .await
        .expect("attribute")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{css} has no {name}"))
}

/// Waits until `#onchain-error` says something containing `part`.
async fn error_says(w: &wallet_ui_support::Browser, part: &str) {
    let deadline = Instant::now() + SCREEN;
    loop {
        let text = w.text("#onchain-error", SCREEN).await;
        if text.contains(part) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{part:?} not in the error {text:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wallet_sends_its_onchain_coins_to_an_address() {
    let stack = common::start(Some(wallet_dist())).await;
    let driver = Driver::start();
    let w = driver.browser("sender").await;
    w.create_wallet(&stack.http_url(), None, None).await;
    let own = w.sweep_address().await;
    stack
        .devnet
        .faucet(&own, Amount::from_sat(50_000))
        .await
        .expect("faucet");
    stack.devnet.mine(1).await.expect("mine");
    w.wait_attr(
        "#balance-onchain",
        "data-sats",
        "50000",
        Duration::from_secs(60),
    )
    .await;

    w.click("#onchain-send-open").await;
    // A mainnet address: refused for its network.
    w.type_into(
        "#onchain-to",
        "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0",
    )
    .await;
    w.click("#onchain-review").await;
    error_says(&w, "another network").await;
    // More than it has: refused with what it has and what it would cost.
    let secp = Secp256k1::new();
    let payee_key = SecretKey::new(&mut rand::thread_rng());
    let payee = Address::p2tr(
        &secp,
        payee_key.x_only_public_key(&secp).0,
        None,
        Network::Regtest,
    );
    w.type_into("#onchain-to", &payee.to_string()).await;
    w.type_into("#onchain-amount", "50000").await;
    w.click("#onchain-review").await;
    error_says(&w, "you have 50000 sats on chain").await;
    // 20,000 sats: shown first, sent on the second tap.
    w.type_into("#onchain-amount", "20000").await;
    w.click("#onchain-review").await;
    let fee = number_attr(&w, "#onchain-quote", "data-fee").await;
    assert_eq!(
        number_attr(&w, "#onchain-quote", "data-amount").await,
        20_000
    );
    assert!(fee > 0 && fee < 1_000, "fee {fee}");
    w.screenshot("onchain-send-quote").await;
    w.click("#onchain-confirm").await;
    let txid: bitcoin::Txid = w.parsed_attr("#onchain-sent", "data-txid").await;
    stack.devnet.mine(1).await.expect("mine");

    let tx = stack
        .devnet
        .rpc()
        .get_raw_transaction(&txid)
        .await
        .expect("rpc")
        .expect("on chain");
    let paid: Amount = tx
        .output
        .iter()
        .filter(|o| o.script_pubkey == payee.script_pubkey())
        .map(|o| o.value)
        .sum();
    assert_eq!(paid, Amount::from_sat(20_000));
    let left = 50_000 - 20_000 - fee;
    w.wait_attr(
        "#balance-onchain",
        "data-sats",
        &left.to_string(),
        Duration::from_secs(60),
    )
    .await;
}
