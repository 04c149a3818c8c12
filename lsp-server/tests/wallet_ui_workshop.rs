//! A workshop: eight people open the wallet in eight real headless Chromiums, against one LSP
//! run with the demo's defaults (the factory options `cargo xtask demo` leaves at the LSP's
//! defaults: factories of eight, starting with two members after 60 s of gathering, its round
//! timeouts; and the demo's terms: 10,000-sat channels, the 1,000-sat join fee, "Get test
//! sats"), join together (eight at once fill a factory, so it starts without waiting), get test sats, and each pays the person on their left
//! 1,000 sats. Every payment goes through, no quote warns that the payee cannot take it,
//! and every balance on every page reconciles with the LSP's admin view: each person holds
//! what the faucet gave, less the join fee taken from it, less the routing fee of the one
//! payment they made (they paid and received the same amount).
//!
//! Screenshots: `target/screenshots/workshop-*.png`.

mod common;
mod wallet_ui_support;

use std::time::Duration;

use bitcoin::Amount;
use lsp_server::FactoryOptions;
use wallet::format::sats;
use wallet_ui_support::{mine_until, text_becomes, wallet_dist, Browser, Driver, SCREEN};

/// People in the room.
const PEOPLE: usize = 8;
/// What each pays their neighbour.
const AMOUNT: u64 = 1_000;

/// The LSP's routing fee under the demo's terms: 1 sat plus 1,000 ppm, rounded up.
fn fee_of(amount: u64) -> u64 {
    1 + (amount * 1_000).div_ceil(1_000_000)
}

/// `payee` makes an invoice for `AMOUNT`; `payer` pays it; both pages say so.
async fn pay(payer: &Browser, payee: &Browser) {
    payee.click("#go-receive").await;
    payee
        .type_into("#receive-amount", &AMOUNT.to_string())
        .await;
    payee
        .type_into("#receive-description", &format!("from {}", payer.name))
        .await;
    payee.click("#make-invoice").await;
    let invoice = payee.text("#invoice-text", SCREEN).await;
    payer.click("#go-send").await;
    payer.type_into("#pay-invoice", &invoice).await;
    payer.click("#pay-review").await;
    assert_eq!(
        payer.text("#send-total", SCREEN).await,
        sats(Amount::from_sat(AMOUNT + fee_of(AMOUNT)))
    );
    assert!(
        payer
            .client
            .find(fantoccini::Locator::Css("#send-warning"))
            .await
            .is_err(),
        "{}: the quote warns: {}",
        payer.name,
        payer.body_text().await
    );
    payer.click("#pay-confirm").await;
    payer
        .wait_attr("#send-result", "data-state", "success", SCREEN)
        .await;
    payee
        .wait_attr("#invoice-status", "data-state", "paid", SCREEN)
        .await;
    payer.click("#nav-home").await;
    payee.click("#nav-home").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_browsers_join_together_and_each_pays_a_neighbour() {
    // Exactly what `cargo xtask demo` runs: no factory option set.
    let stack = common::start_with(FactoryOptions::default(), Some(wallet_dist())).await;
    common::fund_lsp(&stack, Amount::from_sat(10_000_000)).await;
    let url = stack.http_url();
    let driver = Driver::start();
    let mut room = Vec::new();
    for i in 0..PEOPLE {
        let b = driver.browser(&format!("person {i}")).await;
        b.create_wallet(&url, None, None).await;
        room.push(b);
    }
    let people: Vec<&Browser> = room.iter().collect();

    // Everyone joins at once.
    let fees = futures::future::join_all(people.iter().map(|b| b.join(None))).await;
    let join_fee = fees[0];
    assert!(fees.iter().all(|f| *f == join_fee), "{fees:?}");
    for b in &people {
        b.wait_attr(
            "#step-stored",
            "data-state",
            "done",
            Duration::from_secs(300),
        )
        .await;
    }
    mine_until(
        &stack,
        &people,
        ("#step-open", "data-state", "done"),
        Duration::from_secs(180),
    )
    .await;
    for b in &people {
        b.click("#join-home").await;
    }
    common::wait_state(&stack, 1, "funded", 60).await;
    room[0].screenshot("workshop-01-joined").await;

    // Everyone gets test sats; the join fee is taken from them.
    let mut faucet = Vec::new();
    for b in &people {
        b.wait_attr("#pay-status", "data-state", "connected", SCREEN)
            .await;
        let asked: u64 = b.faucet_offer().await;
        b.click("#faucet").await;
        text_becomes(
            b,
            "#balance",
            &sats(Amount::from_sat(asked - join_fee)),
            Duration::from_secs(30),
        )
        .await;
        faucet.push(asked);
    }

    // Each pays the neighbour on their left.
    for i in 0..PEOPLE {
        pay(people[(i + 1) % PEOPLE], people[i]).await;
    }
    room[0].screenshot("workshop-02-paid").await;

    // Every page against the LSP: each holds faucet − join fee − one routing fee.
    let fee = fee_of(AMOUNT);
    let mut shown = Vec::new();
    for (b, got) in people.iter().zip(&faucet) {
        let balance = got - join_fee - fee;
        text_becomes(
            b,
            "#balance",
            &sats(Amount::from_sat(balance)),
            Duration::from_secs(20),
        )
        .await;
        shown.push(balance);
    }
    let view = common::admin_get(&url, "/admin/payments").await;
    let mut at_lsp: Vec<u64> = view["channels"]
        .as_array()
        .expect("channels")
        .iter()
        .map(|c| c["client_sat"].as_u64().expect("client_sat"))
        .collect();
    at_lsp.sort_unstable();
    shown.sort_unstable();
    assert_eq!(at_lsp, shown, "{view}");
    assert_eq!(view["settled"], 2 * PEOPLE as u64, "{view}");
    assert_eq!(view["failed"], 0, "{view}");
    assert_eq!(view["earned"]["routing_sat"], PEOPLE as u64 * fee, "{view}");
    assert_eq!(
        view["earned"]["join_sat"],
        PEOPLE as u64 * join_fee,
        "{view}"
    );
    for b in room {
        b.client.close().await.expect("close");
    }
}
