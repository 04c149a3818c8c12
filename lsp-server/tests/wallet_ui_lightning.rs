//! The Lightning Network from a browser wallet: a real headless Chromium joins a factory (beside
//! a native member) of an LSP that runs its Lightning node, with a public channel to an
//! independent LDK node standing for the rest of the network. The wallet makes an invoice that
//! the page says any Lightning wallet can pay, and the outside node pays it (the wallet's first
//! payment received: its join fee is taken from it, as the join quote said); then the wallet pays an invoice of the outside node through its send
//! screen, at the fee its quote showed (the quote says the payment leaves the provider, and the
//! result shows what of the fee the network's route took). The page's balance, the LSP's admin view of the
//! wallet's channel, the LSP node's channel and the outside node all reconcile to the sat.
//!
//! Screenshots: `target/screenshots/lightning-*.png`.

mod common;
mod wallet_ui_support;

use std::str::FromStr;
use std::time::Duration;

use bitcoin::Amount;
use common::ln::{self, lsp_channel_balance, sat};
use ldk_node::lightning_invoice::{Bolt11Invoice, Bolt11InvoiceDescription, Description};
use ldk_node::Event;
use lsp_server::PaymentOptions;
use shared::pay::policy::route_fee;
use wallet::format::sats;
use wallet_ui_support::{
    beside_a_native_member, browser_factory, text_becomes, wallet_dist, Driver, SCREEN,
};

const CAPACITY: Amount = Amount::from_sat(200_000);
/// Pushed to the outside node at opening: what it can pay the LSP's clients.
const PUSH: Amount = Amount::from_sat(100_000);
const RECEIVED: Amount = Amount::from_sat(6_000);
const PAID: Amount = Amount::from_sat(2_000);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_wallet_receives_from_and_pays_the_lightning_network() {
    let payments = PaymentOptions::default();
    let (stack, outside) = ln::with_outside(
        ln::free_addr(),
        browser_factory(2),
        payments,
        Some(wallet_dist()),
        (CAPACITY, PUSH),
    )
    .await;
    let driver = Driver::start();
    let (a, _other, mine) = beside_a_native_member(&stack, &driver, "wallet").await;
    a.wait_attr("#pay-status", "data-state", "connected", SCREEN)
        .await;

    // The first payment received pays the join fee (the payment from outside here).
    let join_fee = Amount::from_sat(a.parsed_attr("#join-fee-owed", "data-sats").await);
    let lsp_before = lsp_channel_balance(&stack).await;

    // Receiving: the invoice is one any Lightning wallet can pay, and the outside node does.
    a.click("#go-receive").await;
    a.type_into("#receive-amount", &RECEIVED.to_sat().to_string())
        .await;
    a.type_into("#receive-description", "From afar").await;
    a.click("#make-invoice").await;
    let invoice = a.text("#invoice-text", SCREEN).await;
    a.wait_attr("#invoice-reach", "data-reach", "anyone", SCREEN)
        .await;
    a.screenshot("lightning-01-invoice-for-anyone").await;
    let parsed = Bolt11Invoice::from_str(&invoice).expect("an invoice");
    outside
        .node
        .bolt11_payment()
        .send(&parsed, None)
        .expect("the outside node sends");
    let ended = outside
        .expect_event(60, "the payment's end", |e| {
            matches!(
                e,
                Event::PaymentSuccessful { .. } | Event::PaymentFailed { .. }
            )
        })
        .await;
    assert!(
        matches!(ended, Event::PaymentSuccessful { .. }),
        "paid: {ended:?}"
    );
    a.wait_attr("#invoice-status", "data-state", "paid", SCREEN)
        .await;
    let mut balance = RECEIVED - join_fee;
    a.click("#nav-home").await;
    text_becomes(&a, "#balance", &sats(balance), SCREEN).await;

    // Paying: an invoice of the outside node, at the fee the quote shows.
    let description =
        Bolt11InvoiceDescription::Direct(Description::new("coffee".into()).expect("a description"));
    let outside_invoice = outside
        .node
        .bolt11_payment()
        .receive(PAID.to_sat() * 1000, &description, 3600)
        .expect("the outside node makes an invoice")
        .to_string();
    a.click("#go-send").await;
    a.type_into("#pay-invoice", &outside_invoice).await;
    a.click("#pay-review").await;
    let terms = common::terms(&stack).await.body;
    let fee = route_fee(&terms.fees, PAID);
    assert_eq!(a.text("#send-fee", SCREEN).await, sats(fee));
    // The quote says the payment leaves the provider, and who pays the network's routers.
    let outside_note = a.text("#send-outside", SCREEN).await;
    assert!(outside_note.contains("Lightning Network"), "{outside_note}");
    a.screenshot("lightning-02-quote-outside").await;
    a.click("#pay-confirm").await;
    a.wait_attr(
        "#send-result",
        "data-state",
        "success",
        Duration::from_secs(30),
    )
    .await;
    // The route's share of the fee, apart (a direct channel: nothing).
    text_becomes(&a, "#send-result-network-fee", &sats(Amount::ZERO), SCREEN).await;
    a.screenshot("lightning-03-sent-outside").await;
    balance -= PAID + fee;
    a.click("#nav-home").await;
    text_becomes(&a, "#balance", &sats(balance), SCREEN).await;
    a.amounts_fit("lightning-04-home-after").await;

    // Every side, to the sat.
    let view = common::admin_get(&stack.http_url(), "/admin/payments").await;
    let channel = view["channels"]
        .as_array()
        .expect("channels")
        .iter()
        .find(|c| {
            c["channel"]
                .as_str()
                .is_some_and(|id| id.ends_with(&format!("/{mine}")))
        })
        .cloned()
        .expect("the wallet's channel");
    assert_eq!(sat(&channel["client_sat"]), balance, "{channel}");
    let kinds: Vec<(String, String)> = view["recent"]
        .as_array()
        .expect("rows")
        .iter()
        .take(2)
        .map(|r| {
            (
                r["kind"].as_str().unwrap_or_default().to_string(),
                r["status"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("outside".to_string(), "settled".to_string()),
            ("inbound".to_string(), "settled".to_string())
        ],
        "{view}"
    );
    assert_eq!(
        outside.node.list_balances().total_lightning_balance_sats,
        (PUSH - RECEIVED + PAID).to_sat()
    );
    ln::wait_for(10, "the LSP node's channel after both payments", || async {
        (lsp_channel_balance(&stack).await == lsp_before + RECEIVED - PAID).then_some(())
    })
    .await;

    a.client.close().await.expect("close");
}
