//! A payee whose provider withholds the settlement, in the browser, with nobody pressing a
//! button. The LSP here misbehaves (`--withhold-settlements`, testing only): once the payee
//! reveals a preimage, it never runs the round that would settle the payment. The payee's
//! wallet holds an HTLC it fulfilled but that nobody committed; at its deadline
//! (`expiry − walk − to_self_delay − margin/2`) it says so, walks its tree path, publishes the
//! channel on chain and claims the HTLC with the preimage, all before block `expiry`, when the
//! LSP's timeout path would open.
//!
//! Screenshots: `target/screenshots/overdue-*.png`.

mod common;
mod wallet_ui_support;

use std::time::{Duration, Instant};

use bitcoin::{Amount, Network};
use common::chain::{lsp_changes, paid_to, spender, tip};
use lsp_server::PaymentOptions;
use shared::channel::ChannelChange;
use shared::pay::ChannelPolicy;
use wallet_ui_support::{beside_a_native_member, browser_factory, wallet_dist, Driver};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payee_whose_settlement_is_withheld_claims_on_chain_before_the_expiry() {
    let payments = PaymentOptions {
        withhold_settlements: true,
        ..PaymentOptions::default()
    };
    let stack = common::start_full(browser_factory(2), payments, Some(wallet_dist())).await;
    common::fund_lsp(&stack, Amount::from_sat(10_000_000)).await;
    let driver = Driver::start();
    let (a, other, mine) = beside_a_native_member(&stack, &driver, "overdue").await;
    let sweep = a.sweep_address().await;

    // Test sats: the LSP offers the HTLC, the wallet fulfills it, and the LSP never settles.
    a.click("#faucet").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let (htlc, channel) = loop {
        let changes = lsp_changes(&stack, mine);
        let committed = changes.iter().find_map(|c| match c {
            ChannelChange::Committed { spec, .. } => spec.htlcs.first().cloned(),
            _ => None,
        });
        let funding = changes.iter().find_map(|c| match c {
            ChannelChange::LocalCommitment { tx, .. } => Some(tx.input[0].previous_output),
            _ => None,
        });
        if let (Some(h), Some(f)) = (committed, funding) {
            break (h, f);
        }
        assert!(Instant::now() < deadline, "the faucet's HTLC commits");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let expiry = htlc.expiry.to_consensus_u32();
    let policy = ChannelPolicy::for_network(Network::Regtest);
    let walk = other.path.worst_exit_blocks().to_blocks();
    let due = expiry - walk - policy.to_self_delay.to_blocks() - policy.htlc_margin.to_blocks() / 2;

    // Nothing happens before the deadline.
    let now = tip(&stack).await;
    stack
        .devnet
        .mine(due.saturating_sub(now + 1))
        .await
        .expect("mine");
    assert_eq!(spender(&stack, channel.txid, channel.vout).await, None);

    // At the deadline (its path's walk may differ from the other member's by a block or two)
    // the wallet starts by itself and says why.
    let banner = loop {
        stack.devnet.mine(1).await.expect("mine");
        let limit = Instant::now() + Duration::from_secs(8);
        let mut found = None;
        while found.is_none() && Instant::now() < limit {
            found = a
                .client
                .find(fantoccini::Locator::Css("#exit-auto"))
                .await
                .ok();
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        if let Some(banner) = found {
            break banner;
        }
        assert!(
            tip(&stack).await < due + 4,
            "the wallet did not go on chain at its deadline: {}",
            a.body_text().await
        );
    };
    assert!(
        banner
            .text()
            .await
            .expect("text")
            .contains("did not settle a payment"),
        "the wallet says why it went on chain"
    );
    a.screenshot("overdue-01-started-by-itself").await;

    // One block every few seconds: the wallet's exit steps every two.
    let claim = loop {
        let at = tip(&stack).await;
        assert!(
            at < expiry,
            "the wallet did not claim the HTLC before its expiry: {}",
            a.body_text().await
        );
        if let Some(commitment) = spender(&stack, channel.txid, channel.vout).await {
            let tx = stack
                .devnet
                .rpc()
                .get_raw_transaction(&commitment)
                .await
                .expect("bitcoind answers")
                .expect("the commitment");
            let out = tx
                .output
                .iter()
                .position(|o| o.value == htlc.amount)
                .expect("the HTLC output") as u32;
            if let Some(claim) = spender(&stack, commitment, out).await {
                if common::chain::confirmed(&stack, claim).await {
                    break claim;
                }
            }
        }
        stack.devnet.mine(1).await.expect("mine");
        tokio::time::sleep(Duration::from_millis(2_500)).await;
    };
    assert!(
        tip(&stack).await < expiry,
        "claimed before the LSP's timeout opens"
    );
    let paid = paid_to(&stack, claim, &sweep).await;
    assert!(
        paid + Amount::from_sat(1_000) > htlc.amount,
        "the claim pays the wallet's address the HTLC, less its fee: {paid} of {}",
        htlc.amount
    );
    a.screenshot("overdue-02-claimed").await;
    a.client.close().await.expect("close");
}
