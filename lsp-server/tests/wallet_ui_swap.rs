//! Paying a Bitcoin address from the channel (a swap out, `shared::swap`) through the wallet's
//! Send screen, in a real headless Chromium against a real LSP and bitcoind on regtest: a
//! browser wallet joins a factory beside a native member and takes test sats; pasted into Send,
//! something that is not an address, an address of another network and too small an amount are
//! refused in words; a fresh regtest address and 20,000 sats show, before anything moves, what
//! is sent on chain, the provider's fee (the LSP's signed terms), the network fee of the claim,
//! what arrives and the total. Confirmed, the page follows the payment: the provider pays on
//! chain (its transaction is in bitcoind's mempool, as the LSP stored it); Home, meanwhile,
//! shows the payment under way and its step, and back on Send the progress goes on; a block
//! confirms it, the wallet claims it to the address and the provider settles; the page then
//! says what arrived and what it cost. One more block, and bitcoind holds exactly the quoted
//! amount at the address; the balance fell by the total, Home shows nothing under way any more,
//! and History lists "On chain to …".
//!
//! Screenshots: `target/screenshots/swap-*.png`.

mod common;
mod wallet_ui_support;

use std::time::{Duration, Instant};

use bitcoin::secp256k1::{Secp256k1, SecretKey};
use bitcoin::{Address, Amount, Network, OutPoint, Txid};
use fantoccini::Locator;
use wallet::format::sats;
use wallet_ui_support::{
    beside_a_native_member, browser_factory, text_becomes, wallet_dist, Browser, Driver, SCREEN,
};

/// What the wallet sends on chain.
const SENT: u64 = 20_000;

/// A fresh address of `network` no one else pays.
fn fresh_address(network: Network) -> Address {
    let secp = Secp256k1::new();
    let key = SecretKey::new(&mut rand::thread_rng());
    Address::p2tr(&secp, key.x_only_public_key(&secp).0, None, network)
}

/// Attribute `name` of `#swap-quote`, as a number of sats.
async fn quoted(w: &Browser, name: &str) -> Amount {
    Amount::from_sat(w.parsed_attr("#swap-quote", name).await)
}

/// Pastes `to` and `amount` into Send, reviews, and waits until the page refuses it with words
/// containing `part`, offering nothing to confirm.
async fn refused(w: &Browser, to: &str, amount: u64, part: &str) {
    w.type_into("#pay-invoice", to).await;
    w.type_into("#send-onchain-amount", &amount.to_string())
        .await;
    w.click("#pay-review").await;
    let deadline = Instant::now() + SCREEN;
    loop {
        let shown = match w.client.find(Locator::Css("#send-result")).await {
            Ok(el) if el.attr("data-state").await.ok().flatten().as_deref() == Some("failed") => {
                el.text().await.unwrap_or_default()
            }
            _ => String::new(),
        };
        if shown.contains(part) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{to} / {amount}: {part:?} not in the refusal {shown:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        w.client.find(Locator::Css("#pay-confirm")).await.is_err(),
        "a refused payment offers nothing to confirm"
    );
}

/// Waits until the payment's progress is at `step`; returns the transaction id it names.
async fn progress_at(w: &Browser, step: &str, limit: Duration) -> Txid {
    w.wait_attr("#send-progress", "data-step", step, limit)
        .await;
    w.parsed_attr("#send-progress", "data-txid").await
}

/// Waits until nothing matches `css`.
async fn gone(w: &Browser, css: &str) {
    let deadline = Instant::now() + SCREEN;
    while w.client.find(Locator::Css(css)).await.is_ok() {
        assert!(Instant::now() < deadline, "{css} is still shown");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The LSP's funding transaction of its only swap, once it stored one.
async fn lsp_funding(stack: &common::Stack) -> bitcoin::Transaction {
    let deadline = Instant::now() + SCREEN;
    loop {
        let hex: Option<String> = stack
            .db()
            .query_row("SELECT funding_tx FROM swaps", [], |r| r.get(0))
            .ok()
            .flatten();
        if let Some(hex) = hex {
            return bitcoin::consensus::encode::deserialize_hex(&hex).expect("a transaction");
        }
        assert!(Instant::now() < deadline, "the LSP funds the swap");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Asks the faucet for test sats once it offers at least `least`; returns what it gave.
async fn faucet(w: &Browser, least: Amount) -> Amount {
    let deadline = Instant::now() + SCREEN;
    loop {
        let offer = Amount::from_sat(w.faucet_offer().await);
        if offer >= least {
            w.click("#faucet").await;
            return offer;
        }
        assert!(
            Instant::now() < deadline,
            "the faucet offers at least {least}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until `txid` is in bitcoind's mempool.
async fn in_mempool(stack: &common::Stack, txid: &Txid) {
    let deadline = Instant::now() + SCREEN;
    while stack
        .devnet
        .rpc()
        .get_mempool_entry(txid)
        .await
        .expect("getmempoolentry")
        .is_none()
    {
        assert!(Instant::now() < deadline, "{txid} reaches the mempool");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_wallet_pays_a_bitcoin_address_from_its_channel() {
    let started = Instant::now();
    let stack = common::start_with(browser_factory(2), Some(wallet_dist())).await;
    common::fund_lsp(&stack, Amount::from_sat(10_000_000)).await;
    let driver = Driver::start();
    let (a, _other, _mine) = beside_a_native_member(&stack, &driver, "swapper").await;
    a.wait_attr("#pay-status", "data-state", "connected", SCREEN)
        .await;
    let signed = common::terms(&stack).await;
    let terms = signed
        .body
        .swap_out
        .expect("the LSP sends to on-chain addresses");
    let amount = Amount::from_sat(SENT);
    let fee = terms.fee(amount);

    // Test sats (they pay the join fee); the channel is small, so inbound liquidity is bought
    // from the leaf for the sats to send; then test sats again, as many as the channel takes.
    let join_fee = Amount::from_sat(a.parsed_attr("#join-fee-owed", "data-sats").await);
    let first = faucet(&a, Amount::ONE_SAT).await;
    let mut balance = first - join_fee;
    text_becomes(&a, "#balance", &sats(balance), SCREEN).await;
    let bought = Amount::from_sat(SENT);
    let ppm = u64::from(signed.body.fees.liquidity_fee_ppm);
    let price = Amount::from_sat((bought.to_sat() * ppm).div_ceil(1_000_000));
    a.type_into("#liquidity-amount", &bought.to_sat().to_string())
        .await;
    text_becomes(&a, "#liquidity-price", &sats(price), SCREEN).await;
    a.confirm_liquidity().await;
    balance -= price;
    text_becomes(&a, "#balance", &sats(balance), SCREEN).await;
    balance += faucet(&a, (amount + fee).checked_sub(balance).unwrap_or_default()).await;
    text_becomes(&a, "#balance", &sats(balance), SCREEN).await;
    assert!(
        balance >= amount + fee,
        "{balance} covers {amount} and {fee}"
    );
    eprintln!("ready to send after {:?}", started.elapsed());

    // Refused in words: not an address, another network's, less than the provider sends.
    a.click("#go-send").await;
    let payee = fresh_address(Network::Regtest);
    refused(
        &a,
        "bcrt1qthisisnotanaddress",
        SENT,
        "not a Bitcoin address",
    )
    .await;
    let mainnet = fresh_address(Network::Bitcoin);
    refused(&a, &mainnet.to_string(), SENT, "another network").await;
    let too_little = terms.min - Amount::from_sat(1);
    let least = format!("at least {} sats", terms.min.to_sat());
    refused(&a, &payee.to_string(), too_little.to_sat(), &least).await;

    // A good address: everything it costs, before anything moves.
    a.type_into("#send-onchain-amount", &SENT.to_string()).await;
    a.click("#pay-review").await;
    a.find("#swap-quote", SCREEN).await;
    assert_eq!(quoted(&a, "data-amount").await, amount);
    assert_eq!(quoted(&a, "data-fee").await, fee);
    let claim_fee = quoted(&a, "data-claim-fee").await;
    let arrives = quoted(&a, "data-arrives").await;
    let total = quoted(&a, "data-total").await;
    assert!(
        claim_fee > Amount::ZERO && claim_fee < Amount::from_sat(2_000),
        "{claim_fee}"
    );
    assert_eq!(arrives, amount - claim_fee);
    assert_eq!(total, amount + fee);
    assert_eq!(a.text("#swap-address", SCREEN).await, payee.to_string());
    assert_eq!(a.text("#swap-amount", SCREEN).await, sats(amount));
    assert_eq!(a.text("#swap-fee", SCREEN).await, sats(fee));
    assert!(
        a.text("#swap-claim-fee", SCREEN)
            .await
            .starts_with(&sats(claim_fee)),
        "the claim's network fee is shown"
    );
    assert_eq!(a.text("#swap-arrives", SCREEN).await, sats(arrives));
    assert_eq!(a.text("#swap-total", SCREEN).await, sats(total));
    let page = a.text("#swap-quote", SCREEN).await;
    for words in [
        "Sent on chain",
        "Provider's fee",
        "Network fee of the claim",
        "Arrives at the address",
        "Total from your balance",
    ] {
        assert!(page.contains(words), "{words:?} in {page:?}");
    }
    assert_eq!(
        a.text("#pay-confirm", SCREEN).await,
        format!("Send {}", sats(total))
    );
    a.amounts_fit("swap-01-quote").await;

    // Confirmed: the provider pays on chain, as it stored.
    a.click("#pay-confirm").await;
    let funding = progress_at(&a, "confirming", SCREEN).await;
    let stored = lsp_funding(&stack).await;
    assert_eq!(
        stored.compute_txid(),
        funding,
        "the page names the LSP's funding"
    );
    in_mempool(&stack, &funding).await;
    let progress = a.text("#send-progress", SCREEN).await;
    assert!(
        progress.starts_with(&format!("Paid on chain ({}", &funding.to_string()[..8]))
            && progress.contains("waiting for it to confirm"),
        "{progress}"
    );
    a.screenshot("swap-02-paid-on-chain").await;

    // Away from Send, Home says what is under way and where it stands; back on Send, so does
    // the progress.
    a.click("#nav-home").await;
    let under_way = "#swap-under-way .swap-payment";
    a.wait_attr(under_way, "data-step", "confirming", SCREEN)
        .await;
    assert_eq!(a.parsed_attr::<u64>(under_way, "data-sats").await, SENT);
    assert_eq!(a.parsed_attr::<Txid>(under_way, "data-txid").await, funding);
    let card = a.text("#swap-under-way", SCREEN).await;
    let short = format!("Sending {} to {}…", sats(amount), &payee.to_string()[..8]);
    assert!(
        card.contains(&short) && card.contains("waiting for it to confirm"),
        "{card}"
    );
    a.click("#go-send").await;
    assert_eq!(progress_at(&a, "confirming", SCREEN).await, funding);

    // A block confirms it: the wallet claims it to the address, the provider settles.
    stack.devnet.mine(1).await.expect("mine");
    a.wait_attr(
        "#send-result",
        "data-state",
        "success",
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(
        a.parsed_attr::<u64>("#send-result", "data-arrived").await,
        arrives.to_sat()
    );
    assert_eq!(
        a.parsed_attr::<u64>("#send-result", "data-total").await,
        total.to_sat()
    );
    assert_eq!(a.text("#send-result-arrived", SCREEN).await, sats(arrives));
    assert_eq!(a.text("#send-result-fee", SCREEN).await, sats(fee));
    assert_eq!(
        a.text("#send-result-claim-fee", SCREEN).await,
        sats(claim_fee)
    );
    assert_eq!(a.text("#send-result-total", SCREEN).await, sats(total));
    let claim: Txid = a.parsed_attr("#send-result-txid", "data-txid").await;
    a.amounts_fit("swap-03-sent").await;
    let state: String = stack
        .db()
        .query_row("SELECT state FROM swaps", [], |r| r.get(0))
        .expect("the LSP's swap");
    assert_eq!(state, "claimed");

    // One more block: the address holds exactly what the quote said would arrive.
    stack.devnet.mine(1).await.expect("mine");
    let tx = stack
        .devnet
        .rpc()
        .get_raw_transaction(&claim)
        .await
        .expect("getrawtransaction")
        .expect("the claim is on chain");
    assert_eq!(
        tx.input[0].previous_output.txid, funding,
        "the claim spends the provider's output"
    );
    let vout = tx
        .output
        .iter()
        .position(|o| o.script_pubkey == payee.script_pubkey())
        .expect("the claim pays the address");
    let out = stack
        .devnet
        .rpc()
        .get_tx_out(&OutPoint::new(claim, vout as u32), false)
        .await
        .expect("gettxout")
        .expect("the claim confirmed");
    assert!(out.confirmations >= 1);
    assert_eq!(out.value, arrives);

    // The balance fell by the total; History lists the payment by its address.
    a.click("#nav-home").await;
    text_becomes(&a, "#balance", &sats(balance - total), SCREEN).await;
    gone(&a, "#swap-under-way").await;
    a.click("#go-history").await;
    let row = a
        .find("#history li.payment[data-direction='sent']", SCREEN)
        .await;
    let text = row.text().await.expect("text");
    assert!(text.contains(&format!("On chain to {payee}")), "{text}");
    assert_eq!(
        row.attr("data-status").await.expect("attr").as_deref(),
        Some("complete")
    );
    assert_eq!(
        row.attr("data-sats").await.expect("attr"),
        Some(SENT.to_string())
    );
    assert_eq!(
        row.attr("data-fee").await.expect("attr"),
        Some(fee.to_sat().to_string())
    );
    a.screenshot("swap-04-history").await;
    eprintln!("done after {:?}", started.elapsed());
    a.client.close().await.expect("close the browser");
}
