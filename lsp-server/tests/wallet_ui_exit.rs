//! Leaving a factory from the wallet's screen with the LSP gone for good: two real headless
//! Chromiums create wallets and join one factory through the UI against a real LSP and a real
//! bitcoind; then the LSP is stopped and one wallet asks to leave. On a phone-sized screen it
//! is shown every cost to the sat and what lands at its address, and confirms. Its wallet reads the
//! chain from the devnet's Esplora, waits as the exit planner says (the test mines the blocks),
//! broadcasts the distribution transaction at the factory's timeout, and sweeps what it pays to
//! the wallet's own on-chain address. The test checks on bitcoind that the sweep confirmed and
//! pays that address the wallet's channel plus inbound liquidity, less the sweep's fee: exactly
//! what the confirmation said. Home then shows those coins on chain with their confirmations, a
//! closed channel, and no payments, test sats or liquidity. The other member, on its own, is told
//! the factory paid everyone out, sees the payout on chain in its picture, and moves its share
//! to its own address too.
//!
//! Screenshots: `target/screenshots/exit-*.png`.

mod common;
mod wallet_ui_support;

use std::time::{Duration, Instant};

use bitcoin::{Amount, Network};
use fantoccini::Locator;
use wallet_ui_support::{browser_factory, wallet_dist, Driver, SCREEN};

/// The `data-sats` of `css`.
async fn sats_attr(w: &wallet_ui_support::Browser, css: &str) -> u64 {
    w.parsed_attr(css, "data-sats").await
}

fn sats(text: &str) -> u64 {
    text.trim_end_matches(" sats")
        .replace(',', "")
        .parse()
        .expect("an amount in sats")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wallet_leaves_its_factory_alone_and_sweeps_to_its_address() {
    let stack = common::start_with(browser_factory(2), Some(wallet_dist())).await;
    common::fund_lsp(&stack, Amount::from_sat(10_000_000)).await;
    let url = stack.http_url();
    let driver = Driver::start();
    let a = driver.browser("leaver").await;
    let b = driver.browser("stayer").await;
    a.create_wallet(&url, None, None).await;
    b.create_wallet(&url, None, None).await;
    a.join(None).await;
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
    stack.devnet.mine(1).await.expect("mine");
    for w in [&a, &b] {
        w.wait_attr("#step-open", "data-state", "done", Duration::from_secs(60))
            .await;
        w.click("#join-home").await;
    }
    a.wait_attr("#factory-status", "data-phase", "live", SCREEN)
        .await;
    // The whole leaf: its channel and its L-stock (Home shows the channel and what of the stock
    // is for sale; the exit card the leaf's value).
    let leaf_value = sats_attr(&a, "#exit-preview").await;
    assert!(
        leaf_value
            > sats(&a.content("#balance-channel", SCREEN).await)
                + sats(&a.text("#balance-inbound", SCREEN).await)
                - 1_000,
        "Home's figures are the leaf's, less what must stay in its stock"
    );
    a.resize(390, 844).await;
    let address: bitcoin::Address = a
        .text("#sweep-address", SCREEN)
        .await
        .parse::<bitcoin::Address<_>>()
        .expect("an address")
        .require_network(Network::Regtest)
        .expect("a regtest address");

    // The LSP goes away for good.
    let common::Stack {
        devnet,
        lsp,
        data_dir: _data_dir,
    } = stack;
    lsp.stop().await.expect("the LSP stops");
    // The page says so (the wallet keeps trying to reconnect meanwhile).
    a.wait_attr("#pay-status", "data-state", "disconnected", SCREEN)
        .await;

    // Up to one block before the factory's timeout: the planner waits for the distribution.
    let timeout: u32 = a.parsed_attr("#exit-preview", "data-timeout").await;
    let height = devnet.height().await.expect("height").to_consensus_u32();
    devnet
        .mine(timeout - 1 - height)
        .await
        .expect("mine to the timeout");
    a.screenshot("exit-01-home-lsp-gone").await;

    // Leaving asks first, with every cost to the sat: here the factory's payout (its fee paid
    // by the factory) and the move to the wallet's address, and what lands there.
    a.click("#exit-start").await;
    a.find("#leave-confirm", SCREEN).await;
    a.wait_attr("#leave-way", "data-way", "distribution", SCREEN)
        .await;
    let owned = sats_attr(&a, "#leave-owned").await;
    let sweep_fee = sats_attr(&a, "#cost-sweep").await;
    let lands = sats_attr(&a, "#leave-lands").await;
    assert_eq!(sats_attr(&a, "#cost-factory").await, 0);
    assert_eq!(owned, leaf_value, "the payout is the whole leaf");
    assert!(sweep_fee > 0, "moving the payout costs a fee");
    assert_eq!(lands + sweep_fee, owned);
    let button = a.text("#exit-confirm", SCREEN).await;
    assert!(
        button.contains(&wallet::format::sats(Amount::from_sat(lands))),
        "{button}"
    );
    a.amounts_fit("exit-02-confirm-costs").await;
    a.click("#exit-confirm").await;
    a.wait_attr("#exit-status", "data-state", "waiting", SCREEN)
        .await;
    a.screenshot("exit-03-waiting").await;

    // Blocks come; the wallet broadcasts the distribution, then its sweep.
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut shot_sweeping = false;
    loop {
        let state = a
            .client
            .find(Locator::Css("#exit-status"))
            .await
            .expect("status")
            .attr("data-state")
            .await
            .expect("attribute")
            .unwrap_or_default();
        if state == "swept" {
            break;
        }
        assert!(
            state != "stuck" && state != "leaf",
            "the exit ended otherwise: {}",
            a.body_text().await
        );
        if state == "sweeping" && !shot_sweeping {
            a.screenshot("exit-04-sweeping").await;
            shot_sweeping = true;
        }
        assert!(
            Instant::now() < deadline,
            "the exit did not finish: {}",
            a.body_text().await
        );
        devnet.mine(1).await.expect("mine");
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    a.screenshot("exit-05-swept").await;

    // On bitcoind: the sweep confirmed and pays the wallet's address its leaf, less the fee.
    let status = a.text("#exit-status", SCREEN).await;
    let txid: bitcoin::Txid = a
        .find("#exit-status", SCREEN)
        .await
        .attr("data-txid")
        .await
        .expect("attribute")
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no txid behind {status:?}"));
    assert!(
        !status.contains(&txid.to_string()[..16]),
        "plain words; the transaction id is behind Details: {status}"
    );
    let sweep = devnet
        .rpc()
        .get_raw_transaction(&txid)
        .await
        .expect("bitcoind answers")
        .expect("the sweep is known");
    assert_eq!(sweep.output.len(), 1);
    assert_eq!(sweep.output[0].script_pubkey, address.script_pubkey());
    let got = sweep.output[0].value.to_sat();
    assert!(
        got < leaf_value && got > leaf_value - 1_000,
        "swept {got} sats of a {leaf_value}-sat leaf"
    );
    let out = devnet
        .rpc()
        .get_tx_out(&bitcoin::OutPoint::new(txid, 0), false)
        .await
        .expect("gettxout")
        .expect("the swept output is unspent");
    assert!(out.confirmations >= 1, "the sweep is confirmed");
    assert_eq!(out.value.to_sat(), got);
    assert_eq!(
        got, lands,
        "what landed is what the confirmation said, to the sat"
    );

    // Home: the channel is closed, the coins are on chain with their confirmations, and
    // nothing that needs the channel is offered.
    a.wait_attr("#factory-status", "data-phase", "left", SCREEN)
        .await;
    a.find("#channel-closed", SCREEN).await;
    a.wait_attr("#balance-onchain", "data-sats", &got.to_string(), SCREEN)
        .await;
    let confirmations: u32 = a
        .parsed_attr("#balance-onchain", "data-confirmations")
        .await;
    assert!(confirmations >= 1);
    for css in [
        "#go-send",
        "#go-receive",
        "#faucet-card",
        "#liquidity-card",
        "#balance",
        "#balance-inbound",
        "#dying-in",
    ] {
        assert!(
            a.client.find(Locator::Css(css)).await.is_err(),
            "{css} is still offered after leaving: {}",
            a.body_text().await
        );
    }
    a.amounts_fit("exit-06-home-after-leaving").await;

    // The stayer, with nobody pressing a button: its own watch saw the payout on chain. It is
    // told what that means for it, its picture marks the payout as on chain (the tree can no
    // longer go out), and it moves its own share to its address.
    let payout = sweep.input[0].previous_output.txid;
    let told = b.text("#exit-auto", SCREEN).await;
    assert!(told.contains("paid everyone out"), "{told}");
    b.wait_attr(
        &format!("g.tree-node[data-txid='{payout}']"),
        "class",
        "tree-node confirmed",
        SCREEN,
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while b
        .client
        .find(Locator::Css("#exit-status[data-state='swept']"))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "the stayer did not move its share: {}",
            b.body_text().await
        );
        devnet.mine(1).await.expect("mine");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    b.wait_attr("#factory-status", "data-phase", "left", SCREEN)
        .await;
    assert!(sats_attr(&b, "#balance-onchain").await > 0);
    b.screenshot("exit-07-stayer-paid-out").await;

    a.client.close().await.expect("close");
    b.client.close().await.expect("close");
}
