//! Buying inbound liquidity through the wallet's screens, in two real headless Chromiums against
//! a real LSP and bitcoind on regtest: both wallets join one factory of two; once it is funded
//! wallet A takes test sats from the faucet, types an amount into the "Buy inbound liquidity"
//! card, sees the price (the terms' `liquidity_fee_ppm`), what it could receive afterwards and
//! what stays for sale, confirms, and watches the steps to "done". Afterwards A's balance is
//! lower by the price, what it can receive grew by the amount and the price, the channel lives
//! on leaf state 1, and after a reload the channel comes back on that state from the vault.
//!
//! Needs the LSP's side of the purchase (`lsp-server/src/channels`). Screenshots go to
//! `target/screenshots/liquidity-*.png`.

mod common;
mod wallet_ui_support;

use std::time::{Duration, Instant};

use bitcoin::Amount;
use fantoccini::Locator;
use wallet::format::sats;
use wallet_ui_support::{wallet_dist, Browser, Driver, SCREEN};

/// What A buys: the terms' smallest purchase.
const BUY: u64 = 10_000;
/// The LSP's default liquidity price, parts per million.
const FEE_PPM: u64 = 5_000;

fn price_of(amount: u64) -> u64 {
    (amount * FEE_PPM).div_ceil(1_000_000)
}

/// The amount a `sats(..)` text shows.
fn sats_in(text: &str) -> u64 {
    text.chars()
        .take_while(|c| c.is_ascii_digit() || *c == ',')
        .filter(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("an amount: {text:?}"))
}

/// Mines a block a second until `css[attr] == want` in every browser.
async fn mine_until(stack: &common::Stack, browsers: &[&Browser], css: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut reached = 0;
        for b in browsers {
            if let Ok(el) = b.client.find(Locator::Css(css)).await {
                if el.attr("data-state").await.ok().flatten().as_deref() == Some(want) {
                    reached += 1;
                }
            }
        }
        if reached == browsers.len() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{css} not {want} in every wallet"
        );
        stack.devnet.mine(1).await.expect("mine");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Waits until `css`'s text satisfies `ok`; returns it.
async fn text_until(b: &Browser, css: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + SCREEN;
    loop {
        if let Ok(el) = b.client.find(Locator::Css(css)).await {
            if let Ok(text) = el.text().await {
                if ok(&text) {
                    return text;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "{}: {css} not as wanted; page: {}",
            b.name,
            b.body_text().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wallet_buys_inbound_liquidity_from_its_leaf() {
    let stack = common::start_with(common::fast_factory(2, 2), Some(wallet_dist())).await;
    common::fund_lsp(&stack, Amount::from_sat(3_000_000)).await;
    let url = stack.http_url();
    let driver = Driver::start();
    let a = driver.browser("wallet A").await;
    let b = driver.browser("wallet B").await;
    a.create_wallet(&url, None, None).await;
    b.create_wallet(&url, None, None).await;
    let join_fee = a.join(None).await;
    b.join(None).await;
    for w in [&a, &b] {
        w.wait_attr(
            "#step-stored",
            "data-state",
            "done",
            Duration::from_secs(180),
        )
        .await;
    }
    mine_until(&stack, &[&a, &b], "#step-open", "done").await;
    for w in [&a, &b] {
        w.click("#join-home").await;
    }
    common::wait_state(&stack, 1, "funded", 60).await;
    a.wait_attr("#pay-status", "data-state", "connected", SCREEN)
        .await;

    // Test sats first (they pay A's join fee): the price comes out of the balance.
    text_until(&a, "#faucet", |t| t.starts_with("Get test sats")).await;
    let faucet: u64 = a.faucet_offer().await;
    a.click("#faucet").await;
    text_until(&a, "#balance", |t| {
        t == sats(Amount::from_sat(faucet - join_fee))
    })
    .await;
    let inbound_before = sats_in(&a.text("#inbound", SCREEN).await);
    let stock_before = sats_in(&a.text("#balance-inbound", SCREEN).await);
    a.text("#liquidity-for-sale", SCREEN).await;
    a.wait_attr("#liquidity-for-sale", "data-leaf-state", "0", SCREEN)
        .await;

    // The quote: price, what A could receive afterwards, what stays for sale.
    a.type_into("#liquidity-amount", &BUY.to_string()).await;
    let price = price_of(BUY);
    text_until(&a, "#liquidity-price", |t| {
        t == sats(Amount::from_sat(price))
    })
    .await;
    let after = sats_in(&a.text("#liquidity-inbound-after", SCREEN).await);
    assert_eq!(after, inbound_before + BUY + price);
    a.find("#liquidity-left", SCREEN).await;
    a.screenshot("liquidity-01-quote").await;

    // Confirm: the steps run to "done".
    a.confirm_liquidity().await;
    a.screenshot("liquidity-02-done").await;
    text_until(&a, "#balance", |t| {
        t == sats(Amount::from_sat(faucet - join_fee - price))
    })
    .await;
    text_until(&a, "#inbound", |t| {
        t.ends_with("sats") && sats_in(t) == inbound_before + BUY + price
    })
    .await;
    a.wait_attr("#liquidity-for-sale", "data-leaf-state", "1", SCREEN)
        .await;
    text_until(&a, "#balance-inbound", |t| sats_in(t) == stock_before - BUY).await;
    // The factory picture's leaf box says what is left for sale, not the leaf's first stock.
    let left = format!(
        "channel + {} to buy",
        sats(Amount::from_sat(stock_before - BUY))
    );
    a.client
        .find(Locator::XPath(&format!(
            "//*[local-name()='text' and text()='{left}']"
        )))
        .await
        .unwrap_or_else(|_| panic!("the picture's leaf says {left:?}"));

    // After a reload the channel comes back on the new leaf state, from the vault.
    a.client.refresh().await.expect("reload");
    a.click("#unlock").await;
    a.wait_attr("#pay-status", "data-state", "connected", SCREEN)
        .await;
    text_until(&a, "#balance", |t| {
        t == sats(Amount::from_sat(faucet - join_fee - price))
    })
    .await;
    a.wait_attr("#liquidity-for-sale", "data-leaf-state", "1", SCREEN)
        .await;
    a.screenshot("liquidity-03-after-reload").await;
}
