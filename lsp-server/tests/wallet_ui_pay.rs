//! Payments end to end through the wallet's screens, in two real headless Chromiums (two
//! profiles, so two wallets), against a real LSP serving the built wallet and a real bitcoind on
//! regtest: both people create a wallet and join one factory of two (each join screen quotes
//! the fee, split into the join fee and the liquidity part, to be taken from the first payment
//! received); once its funding confirms, each wallet's payment client opens its channel over
//! the WebSocket and Home says the fee is still owed. Wallet A asks the demo faucet for test
//! sats (as many as its channel can receive, at most 20,000): they pay A's join fee. Wallet B
//! makes an invoice (QR code and text); the invoice text is pasted into A's send screen, A
//! reviews the quote and confirms, and within a second B's page says it was paid and A's that
//! it went through: that payment pays B's join fee. Both balances are exact (A = faucet − join
//! fee − amount − routing fee, B = amount − join fee), each history shows the payment that paid
//! the fee at its full amount with the fee as its own row beside it, and every amount on both
//! pages reconciles with the LSP's admin view. B is told of the payment by a toast, and its paid
//! invoice no longer offers copying. Paying the same invoice twice is refused at the quote;
//! after a reload B's channel and history come back from its vault, B gets test sats (whole:
//! its fee is paid) and pays A back over it. At the end each wallet shows its join fee exactly
//! once, as quoted. Last, B buys inbound liquidity in the same walk: the price leaves its
//! balance, its history lists the purchase and still adds up to the balance, and the LSP's view
//! shows the sale and B's channel at that balance.
//!
//! Screenshots go to `target/screenshots/pay-*.png`.

mod common;
mod wallet_ui_support;

use std::time::{Duration, Instant};

use bitcoin::Amount;
use fantoccini::Locator;
use wallet::format::sats;
use wallet_ui_support::{mine_until, sats_in, text_becomes, wallet_dist, Browser, Driver, SCREEN};

/// The most "Get test sats" asks for (less when the channel cannot receive that much).
const FAUCET_MAX: u64 = 20_000;
/// What B asks for (the fee's proportional part rounds up: 4.321 → 5).
const AMOUNT: u64 = 4_321;
/// The inbound liquidity B buys at the end, and the test terms' price per million.
const BUY: u64 = 10_000;
const LIQUIDITY_PPM: u64 = 5_000;

/// The LSP's routing fee under the test terms: 1 sat plus 1,000 ppm, rounded up.
fn fee_of(amount: u64) -> u64 {
    1 + (amount * 1_000).div_ceil(1_000_000)
}

/// What a wallet's history adds up to: received amounts in, sent amounts and their fees out,
/// join fee rows and liquidity prices out; and the join fees it lists.
async fn history_sum(b: &Browser) -> (u64, Vec<u64>) {
    b.click("#nav-home").await;
    b.click("#go-history").await;
    b.find("#history", SCREEN).await;
    let rows = b
        .client
        .find_all(Locator::Css("#history > li"))
        .await
        .expect("rows");
    let (mut sum, mut join_fees) = (0i64, Vec::new());
    for row in rows {
        let attr = |name: &'static str| {
            let row = row.clone();
            async move { row.attr(name).await.expect("attribute").unwrap_or_default() }
        };
        if attr("data-status").await == "failed" {
            continue;
        }
        let sats: i64 = attr("data-sats").await.parse().expect("data-sats");
        match attr("data-direction").await.as_str() {
            "received" => sum += sats,
            "sent" => sum -= sats + attr("data-fee").await.parse::<i64>().expect("data-fee"),
            "join-fee" => {
                sum -= sats;
                join_fees.push(sats as u64);
            }
            // Inbound liquidity bought: its price left the balance.
            "liquidity" => sum -= attr("data-fee").await.parse::<i64>().expect("data-fee"),
            other => panic!("{}: a history row of kind {other:?}", b.name),
        }
    }
    (u64::try_from(sum).expect("a balance"), join_fees)
}

/// Every amount on both pages against the LSP's `/admin/payments`: each wallet's history adds
/// up to its balance on Home and to its channel's client balance at the LSP, each shows its
/// join fee once, and the LSP earned exactly those join fees and `routing` in routing fees.
async fn reconcile(
    stack: &common::Stack,
    wallets: [(&Browser, u64); 2],
    join_fee: u64,
    routing: u64,
) -> serde_json::Value {
    let view = common::admin_get(&stack.http_url(), "/admin/payments").await;
    let mut at_lsp: Vec<u64> = view["channels"]
        .as_array()
        .expect("channels")
        .iter()
        .map(|c| {
            assert_eq!(c["join_fee_sat"], join_fee, "{c}");
            assert_eq!(c["join_fee_owed_sat"], 0, "{c}");
            c["client_sat"].as_u64().expect("client_sat")
        })
        .collect();
    let mut shown = Vec::new();
    for (w, balance) in wallets {
        let (sum, fees) = history_sum(w).await;
        assert_eq!(
            sum, balance,
            "{}: the history adds up to the balance",
            w.name
        );
        assert_eq!(fees, vec![join_fee], "{}: the join fee once", w.name);
        w.click("#nav-home").await;
        text_becomes(w, "#balance", &sats(Amount::from_sat(balance)), SCREEN).await;
        shown.push(balance);
    }
    at_lsp.sort_unstable();
    shown.sort_unstable();
    assert_eq!(at_lsp, shown, "{view}");
    assert_eq!(view["earned"]["join_sat"], 2 * join_fee, "{view}");
    assert_eq!(view["earned"]["joins_paid"], 2, "{view}");
    assert_eq!(view["earned"]["routing_sat"], routing, "{view}");
    assert_eq!(view["fees_earned_sat"], routing, "{view}");
    view
}

/// Waits (at most 10 s) until `w`'s Home shows a balance of `sats`.
async fn balance_is(w: &Browser, sats_: u64) {
    text_becomes(
        w,
        "#balance",
        &sats(Amount::from_sat(sats_)),
        Duration::from_secs(10),
    )
    .await;
}

/// Polls fast until `css[attr] == want`; returns when it was seen.
async fn seen(b: &Browser, css: &str, attr: &str, want: &str, limit: Duration) -> Instant {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(el) = b.client.find(Locator::Css(css)).await {
            if el.attr(attr).await.ok().flatten().as_deref() == Some(want) {
                return Instant::now();
            }
        }
        if Instant::now() > deadline {
            panic!(
                "{}: {css}[{attr}] is not {want:?} within {limit:?}; page: {}",
                b.name,
                b.body_text().await
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_browsers_pay_each_other_over_their_factory() {
    let stack = common::start_with(common::fast_factory(2, 2), Some(wallet_dist())).await;
    common::fund_lsp(&stack, Amount::from_sat(3_000_000)).await;
    let url = stack.http_url();
    let driver = Driver::start();
    let a = driver.browser("wallet A").await;
    let b = driver.browser("wallet B").await;
    // A walks on a phone's screen: every amount must stay on one line.
    a.resize(390, 844).await;
    a.create_wallet(&url, None, None).await;
    b.create_wallet(&url, None, None).await;
    // Before a factory is funded there is nothing to pay with, and the card says so.
    a.find("#pay-off", SCREEN).await;
    // The terms' 1,000 sat plus 5,000 ppm of the default 100,000 sat of liquidity.
    let join_fee = a.join(None).await;
    assert_eq!(join_fee, 1_500);
    assert_eq!(b.join(None).await, join_fee);
    for w in [&a, &b] {
        w.wait_attr(
            "#step-stored",
            "data-state",
            "done",
            Duration::from_secs(180),
        )
        .await;
    }
    mine_until(
        &stack,
        &[&a, &b],
        ("#step-open", "data-state", "done"),
        Duration::from_secs(120),
    )
    .await;
    for w in [&a, &b] {
        w.click("#join-home").await;
    }
    common::wait_state(&stack, 1, "funded", 60).await;

    // Each wallet's payment client connects and its channel opens: nothing to spend yet, the
    // whole channel to receive.
    for w in [&a, &b] {
        w.wait_attr("#pay-status", "data-state", "connected", SCREEN)
            .await;
        text_becomes(w, "#balance", &sats(Amount::ZERO), SCREEN).await;
        let deadline = Instant::now() + SCREEN;
        loop {
            let inbound = w.text("#inbound", SCREEN).await;
            if inbound.ends_with("sats") && inbound != sats(Amount::ZERO) {
                break;
            }
            assert!(Instant::now() < deadline, "{}: inbound {inbound}", w.name);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // Nothing paid yet: Home says the fee is owed, and when it goes.
        w.wait_attr("#join-fee-owed", "data-sats", &join_fee.to_string(), SCREEN)
            .await;
        let owed = w.text("#join-fee-owed", SCREEN).await;
        assert!(owed.contains("first payment you receive"), "{owed}");
    }
    a.amounts_fit("pay-01-home-channel-open").await;

    // A asks the faucet for test sats; they arrive over A's channel.
    let explained = a.text("#faucet-card", SCREEN).await;
    assert!(explained.contains("test network"), "{explained}");
    let faucet: u64 = a.faucet_offer().await;
    assert!(
        faucet > join_fee + AMOUNT + fee_of(AMOUNT) && faucet <= FAUCET_MAX,
        "{faucet}"
    );
    // They are A's first payment received: A's join fee is taken from them.
    a.click("#faucet").await;
    text_becomes(
        &a,
        "#balance",
        &sats(Amount::from_sat(faucet - join_fee)),
        Duration::from_secs(20),
    )
    .await;
    let arrived = a.text("#faucet-message", SCREEN).await;
    assert_eq!(
        arrived,
        format!(
            "{} arrived; {} of them paid your join fee.",
            sats(Amount::from_sat(faucet)).replace("sats", "test sats"),
            sats(Amount::from_sat(join_fee))
        )
    );
    assert!(
        a.client.find(Locator::Css("#join-fee-owed")).await.is_err(),
        "A owes nothing more"
    );
    a.amounts_fit("pay-02-faucet-arrived").await;

    // B makes an invoice: a QR code and the text to copy.
    b.click("#go-receive").await;
    b.type_into("#receive-amount", &AMOUNT.to_string()).await;
    b.type_into("#receive-description", "Coffee for two").await;
    b.screenshot("pay-03-receive-form").await;
    b.on_a_phone("pay-03b-receive-form-phone").await;
    b.click("#make-invoice").await;
    let invoice = b.text("#invoice-text", SCREEN).await;
    assert!(invoice.starts_with("lnbcrt"), "{invoice}");
    b.find("#invoice-qr svg", SCREEN).await;
    assert_eq!(
        b.find("#invoice-status", SCREEN)
            .await
            .attr("data-state")
            .await
            .expect("attribute")
            .as_deref(),
        Some("waiting")
    );
    b.click("#copy-invoice").await;
    b.screenshot("pay-04-invoice").await;
    b.on_a_phone("pay-04b-invoice-phone").await;

    // A pastes it and sees what it costs before confirming.
    let fee = fee_of(AMOUNT);
    a.click("#go-send").await;
    a.type_into("#pay-invoice", &invoice).await;
    a.click("#pay-review").await;
    assert_eq!(
        a.text("#send-amount", SCREEN).await,
        sats(Amount::from_sat(AMOUNT))
    );
    assert_eq!(
        a.text("#send-fee", SCREEN).await,
        sats(Amount::from_sat(fee))
    );
    assert_eq!(
        a.text("#send-total", SCREEN).await,
        sats(Amount::from_sat(AMOUNT + fee))
    );
    assert_eq!(a.text("#send-description", SCREEN).await, "Coffee for two");
    assert!(!a.text("#send-expiry", SCREEN).await.is_empty());
    a.amounts_fit("pay-05-send-quote").await;

    // A confirms: within a second both pages show it.
    a.click("#pay-confirm").await;
    let confirmed = Instant::now();
    let limit = Duration::from_secs(10);
    let (sent_at, paid_at) = tokio::join!(
        seen(&a, "#send-result", "data-state", "success", limit),
        seen(&b, "#invoice-status", "data-state", "paid", limit),
    );
    let sent_after = sent_at - confirmed;
    let paid_after = paid_at - confirmed;
    eprintln!("A showed it sent after {sent_after:?}, B showed it paid after {paid_after:?}");
    a.amounts_fit("pay-06-sent").await;
    b.screenshot("pay-07-paid").await;
    assert!(
        sent_after <= Duration::from_secs(1),
        "A shows the payment sent {sent_after:?} after confirming"
    );
    assert!(
        paid_after <= Duration::from_secs(1),
        "B shows the invoice paid {paid_after:?} after A confirmed"
    );
    assert_eq!(
        b.text("#invoice-status", SCREEN).await,
        format!("Paid ✓ {}", sats(Amount::from_sat(AMOUNT)))
    );
    // It is B's first payment received: it paid B's join fee, and the page says so.
    b.wait_attr(
        "#invoice-join-fee",
        "data-sats",
        &join_fee.to_string(),
        SCREEN,
    )
    .await;
    // The paid invoice is no longer offered for copying, and B is told, on any screen.
    assert!(
        b.client.find(Locator::Css("#copy-invoice")).await.is_err(),
        "a paid invoice offers no copy"
    );
    let toast = b.text("#toast", SCREEN).await;
    assert!(
        toast.contains(&format!("Received {}", sats(Amount::from_sat(AMOUNT))))
            && toast.contains(&format!(
                "join fee of {} was taken",
                sats(Amount::from_sat(join_fee))
            )),
        "{toast}"
    );
    let result = a.text("#send-result", SCREEN).await;
    assert!(result.contains(&sats(Amount::from_sat(AMOUNT))), "{result}");
    assert_eq!(
        a.text("#send-result-fee", SCREEN).await,
        sats(Amount::from_sat(fee))
    );

    // Balances on both home screens are exact.
    let a_balance = faucet - join_fee - AMOUNT - fee;
    let b_balance = AMOUNT - join_fee;
    a.click("#nav-home").await;
    b.click("#nav-home").await;
    balance_is(&a, a_balance).await;
    balance_is(&b, b_balance).await;
    a.amounts_fit("pay-08-home-after").await;
    b.screenshot("pay-09-home-after").await;

    // A's history: the faucet's sats in at their full amount with the join fee beside them,
    // the coffee out.
    a.click("#go-history").await;
    a.find("#history", SCREEN).await;
    let rows = a
        .client
        .find_all(Locator::Css("#history > li"))
        .await
        .expect("rows");
    assert_eq!(rows.len(), 3, "{}", a.body_text().await);
    let fee_row = rows[1].text().await.expect("text");
    assert!(
        fee_row.contains("Join fee")
            && fee_row.contains(&format!("\u{2212}{}", sats(Amount::from_sat(join_fee)))),
        "{fee_row}"
    );
    assert_eq!(
        rows[1].attr("class").await.expect("attr").as_deref(),
        Some("join-fee")
    );
    let rows = [rows[0].clone(), rows[2].clone()];
    let newest = rows[0].text().await.expect("text");
    assert!(
        newest.contains("Sent") && newest.contains("Coffee for two"),
        "{newest}"
    );
    assert!(
        newest.contains(&format!("fee {}", sats(Amount::from_sat(fee)))),
        "{newest}"
    );
    assert_eq!(
        rows[0].attr("data-status").await.expect("attr").as_deref(),
        Some("complete")
    );
    let oldest = rows[1].text().await.expect("text");
    assert!(
        oldest.contains("Received") && oldest.contains(&sats(Amount::from_sat(faucet))),
        "{oldest}"
    );
    a.amounts_fit("pay-10-history").await;
    // B's history: the coffee in at its full amount, B's join fee beside it.
    b.click("#go-history").await;
    b.find("#history li.join-fee", SCREEN).await;
    b.screenshot("pay-10b-history-join-fee").await;

    // The LSP agrees: the faucet gave what A shows (A's join fee taken from it), one payment of
    // AMOUNT delivered for `fee` (B's join fee taken from it), and the channels hold what the
    // pages say.
    let view = reconcile(&stack, [(&a, a_balance), (&b, b_balance)], join_fee, fee).await;
    assert_eq!(view["faucet_sat"], faucet, "{view}");
    assert_eq!(view["settled"], 2, "{view}");
    assert_eq!(view["failed"], 0, "{view}");
    let recent = view["recent"].as_array().expect("recent payments");
    assert!(
        recent.iter().any(|p| p["kind"] == "faucet"
            && p["amount_sat"] == faucet
            && p["join_fee_sat"] == join_fee
            && p["status"] == "settled"),
        "{view}"
    );
    assert!(
        recent.iter().any(|p| p["kind"] == "forward"
            && p["amount_sat"] == AMOUNT
            && p["fee_sat"] == fee
            && p["join_fee_sat"] == join_fee
            && p["status"] == "settled"),
        "{view}"
    );

    // Paying the same invoice again is refused at the quote, in words, with nothing to confirm.
    a.click("#nav-home").await;
    a.click("#go-send").await;
    a.type_into("#pay-invoice", &invoice).await;
    a.click("#pay-review").await;
    a.wait_attr("#send-result", "data-state", "failed", SCREEN)
        .await;
    let refused = a.text("#send-result", SCREEN).await;
    assert!(refused.contains("already paid"), "{refused}");
    assert!(
        a.client.find(Locator::Css("#pay-confirm")).await.is_err(),
        "a paid invoice offers no Pay button"
    );
    a.screenshot("pay-11-already-paid").await;

    // B reloads: the channel and the history come back from the encrypted vault, and B pays A
    // back over the restored channel.
    b.client.refresh().await.expect("reload");
    b.click("#unlock").await;
    b.wait_attr("#pay-status", "data-state", "connected", SCREEN)
        .await;
    text_becomes(&b, "#balance", &sats(Amount::from_sat(b_balance)), SCREEN).await;
    b.click("#go-history").await;
    let row = b.text("#history li.payment", SCREEN).await;
    assert!(
        row.contains("Received")
            && row.contains("Coffee for two")
            && row.contains(&sats(Amount::from_sat(AMOUNT))),
        "{row}"
    );
    // B gets test sats too: its fee is paid, so they arrive whole.
    b.click("#nav-home").await;
    let b_faucet = sats_in(&b.text("#faucet", SCREEN).await);
    b.click("#faucet").await;
    let b_balance = b_balance + b_faucet;
    text_becomes(
        &b,
        "#balance",
        &sats(Amount::from_sat(b_balance)),
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(
        b.text("#faucet-message", SCREEN).await,
        format!(
            "{} arrived.",
            sats(Amount::from_sat(b_faucet)).replace("sats", "test sats")
        )
    );
    const BACK: u64 = 1_000;
    a.click("#nav-home").await;
    a.click("#go-receive").await;
    // More than the channel can take: the page says so before any invoice exists.
    a.type_into("#receive-amount", "10000000").await;
    let too_much = a.text("#receive-too-much", SCREEN).await;
    assert!(!too_much.is_empty(), "no warning for 10,000,000 sats");
    assert_eq!(
        a.find("#make-invoice", SCREEN)
            .await
            .attr("disabled")
            .await
            .expect("attribute")
            .as_deref(),
        Some("true"),
        "Make invoice is off above what can be received"
    );
    // An invoice for all A can receive now: once BACK has arrived first, it is too much.
    let can = sats_in(&a.text("#receive-inbound .amount", SCREEN).await);
    a.type_into("#receive-amount", &can.to_string()).await;
    a.type_into("#receive-description", "All of it").await;
    a.click("#make-invoice").await;
    let full_invoice = a.text("#invoice-text", SCREEN).await;
    a.click("#new-invoice").await;
    a.type_into("#receive-amount", &BACK.to_string()).await;
    a.type_into("#receive-description", "Change").await;
    a.click("#make-invoice").await;
    let back_invoice = a.text("#invoice-text", SCREEN).await;
    // A looks at its history meanwhile: the payment is announced there too.
    a.click("#nav-home").await;
    a.click("#go-history").await;
    b.click("#nav-home").await;
    b.click("#go-send").await;
    b.type_into("#pay-invoice", &back_invoice).await;
    b.click("#pay-review").await;
    assert_eq!(
        b.text("#send-fee", SCREEN).await,
        sats(Amount::from_sat(fee_of(BACK)))
    );
    b.click("#pay-confirm").await;
    let limit = Duration::from_secs(10);
    seen(&b, "#send-result", "data-state", "success", limit).await;
    let toast = a.text("#toast", SCREEN).await;
    assert!(
        toast.contains(&format!("Received {}", sats(Amount::from_sat(BACK)))),
        "A is told on its history screen: {toast}"
    );
    b.screenshot("pay-12-paid-back-after-reload").await;
    a.click("#nav-home").await;
    b.click("#nav-home").await;
    let a_balance = a_balance + BACK;
    let b_balance = b_balance - BACK - fee_of(BACK);
    balance_is(&a, a_balance).await;
    balance_is(&b, b_balance).await;
    // A's first invoice is now more than A can receive: B's quote says so before B pays.
    b.click("#go-send").await;
    b.type_into("#pay-invoice", &full_invoice).await;
    b.click("#pay-review").await;
    let warning = b.text("#send-warning", SCREEN).await;
    let most = warning
        .split_once("can receive at most ")
        .map(|(_, rest)| sats_in(rest))
        .unwrap_or_else(|| panic!("no limit in the warning: {warning}"));
    assert!(most < can, "A could take {can}, now {most}: {warning}");
    b.screenshot("pay-12b-quote-warns-too-much").await;
    b.click("#pay-cancel").await;
    b.click("#nav-home").await;
    // Everything still reconciles, each wallet's join fee taken once, as quoted.
    let view = reconcile(
        &stack,
        [(&a, a_balance), (&b, b_balance)],
        join_fee,
        fee + fee_of(BACK),
    )
    .await;
    assert_eq!(view["settled"], 4, "{view}");
    assert_eq!(view["faucet_sat"], faucet + b_faucet, "{view}");
    b.click("#go-history").await;
    b.find("#history li.join-fee", SCREEN).await;
    b.amounts_fit("pay-13-history-after-all").await;

    // B buys inbound liquidity in the same walk: the price leaves its balance, its history
    // lists the purchase and still adds up, and the LSP's view agrees.
    b.click("#nav-home").await;
    b.type_into("#liquidity-amount", &BUY.to_string()).await;
    let price = (BUY * LIQUIDITY_PPM).div_ceil(1_000_000);
    text_becomes(
        &b,
        "#liquidity-price",
        &sats(Amount::from_sat(price)),
        SCREEN,
    )
    .await;
    b.confirm_liquidity().await;
    let b_balance = b_balance - price;
    balance_is(&b, b_balance).await;
    let (sum, fees) = history_sum(&b).await;
    assert_eq!(
        sum, b_balance,
        "B's history adds up to its balance, purchase included"
    );
    assert_eq!(fees, vec![join_fee], "the join fee still once");
    b.find("#history li[data-direction='liquidity']", SCREEN)
        .await;
    b.screenshot("pay-14-history-with-liquidity").await;
    let view = common::admin_get(&stack.http_url(), "/admin/payments").await;
    assert_eq!(view["liquidity"]["sold_sat"], BUY, "{view}");
    assert_eq!(view["liquidity"]["earned_sat"], price, "{view}");
    let live = view["channels"]
        .as_array()
        .expect("channels")
        .iter()
        .filter(|c| c["bought_sat"] == BUY)
        .map(|c| c["client_sat"].as_u64().expect("client_sat"))
        .collect::<Vec<_>>();
    assert_eq!(live, vec![b_balance], "B's channel at the LSP: {view}");

    for w in [a, b] {
        w.client.close().await.expect("close the browser");
    }
}
