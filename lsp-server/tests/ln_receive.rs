//! Receiving from the Lightning Network: a native wallet's invoice is held by the LSP's
//! Lightning node for the wallet's own payment hash, and an independent LDK node (the rest of
//! the network) pays it over a public channel. The node holds the payment, the LSP offers it in
//! the wallet's leaf channel, and the node claims it with the preimage the wallet reveals
//! there. Balances on all three sides reconcile to the sat. A member of the LSP paying such an
//! invoice is routed inside, without the node. A wallet offline when the payment comes gets it
//! if it comes back within the wait; otherwise the payment fails back to its payer cleanly. The
//! LSP killed between the payment's arrival and the wallet's settlement loses nothing.

mod common;

use std::str::FromStr;
use std::time::Duration;

use bitcoin::Amount;
use common::ln::{self, lsp_channel_balance, sat, Outside};
use common::pay::{funded_factory, join_fee_of, start_payer};
use common::swarm::ClientSpec;
use ldk_node::lightning_invoice::Bolt11Invoice;
use ldk_node::Event;
use lsp_server::PaymentOptions;
use serde_json::Value;
use shared::pay::policy::route_fee;
use shared::pay::{ChannelPolicy, ParsedInvoice};
use wallet::pay::MemoryPayStore;

const FAUCET: Amount = Amount::from_sat(20_000);
const CAPACITY: Amount = Amount::from_sat(200_000);
/// Pushed to the outside node at opening: what it can pay the LSP's clients.
const PUSH: Amount = Amount::from_sat(100_000);
const RECEIVED: Amount = Amount::from_sat(12_000);

fn spec() -> ClientSpec {
    ClientSpec {
        channel: Amount::from_sat(200_000),
        liquidity: Amount::from_sat(10_000),
        ..ClientSpec::honest()
    }
}

/// The outside node pays `invoice`; returns the LDK event that ends it.
async fn outside_pays(outside: &Outside, invoice: &str, secs: u64) -> Event {
    let invoice = Bolt11Invoice::from_str(invoice).expect("an invoice");
    outside
        .node
        .bolt11_payment()
        .send(&invoice, None)
        .expect("the outside node sends");
    outside
        .expect_event(secs, "the payment's end", |e| {
            matches!(
                e,
                Event::PaymentSuccessful { .. } | Event::PaymentFailed { .. }
            )
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wallet_receives_from_the_lightning_network_and_every_balance_reconciles() {
    let payments = PaymentOptions {
        faucet_max_sat: FAUCET.to_sat(),
        ..PaymentOptions::default()
    };
    let (stack, outside) = ln::with_outside(
        ln::free_addr(),
        common::fast_factory(2, 2),
        payments,
        None,
        (CAPACITY, PUSH),
    )
    .await;
    let storage = tempfile::tempdir().expect("temp dir");
    let config = common::swarm_config(&stack, storage.path());
    let runs = funded_factory(&stack, &config, spec(), 2).await;
    let mut payee = start_payer(&stack, &runs[0], MemoryPayStore::default());
    let mut member = start_payer(&stack, &runs[1], MemoryPayStore::default());
    payee.ready(30).await;
    member.ready(30).await;
    // Test sats first: they pay the join fee, so what comes from outside arrives whole.
    let mut balance = payee.faucet(FAUCET, 30).await;
    assert_eq!(balance, FAUCET - join_fee_of(&runs[0]));
    member.faucet(FAUCET, 30).await;

    // The wallet's invoice is the LSP node's, for the wallet's hash, with the final delta a
    // leaf channel needs.
    let terms = common::terms(&stack).await.body;
    let node = terms.lightning_node.expect("the terms name the LSP's node");
    let record = payee
        .handle
        .invoice(RECEIVED, "from afar")
        .await
        .expect("an invoice");
    let parsed =
        ParsedInvoice::parse(&record.invoice, bitcoin::Network::Regtest, 0).expect("parses");
    assert_eq!(parsed.payee, node);
    assert_eq!(parsed.hash, record.hash);
    assert_eq!(parsed.amount, RECEIVED);
    let policy = ChannelPolicy::for_network(bitcoin::Network::Regtest);
    assert_eq!(
        parsed.min_final_cltv,
        u64::from(policy.inbound_invoice_delta())
    );
    let lsp_before = lsp_channel_balance(&stack).await;

    // The rest of the network pays it.
    let ended = outside_pays(&outside, &record.invoice, 60).await;
    let Event::PaymentSuccessful {
        payment_preimage: Some(preimage),
        fee_paid_msat,
        ..
    } = ended
    else {
        panic!("the outside payment failed: {ended:?}")
    };
    assert_eq!(preimage.0, record.preimage, "the wallet's own preimage");
    assert_eq!(fee_paid_msat, Some(0), "a direct channel takes no fee");

    // Three sides, to the sat.
    balance += RECEIVED;
    payee.balance_becomes(balance, 30).await;
    assert_eq!(
        outside.node.list_balances().total_lightning_balance_sats,
        (PUSH - RECEIVED).to_sat()
    );
    ln::wait_for(10, "the LSP node's balance after the payment", || async {
        (lsp_channel_balance(&stack).await == lsp_before + RECEIVED).then_some(())
    })
    .await;
    let leaf = common::pay::admin_channel(&stack, payee.leaves[0].channel).await;
    assert_eq!(sat(&leaf["client_sat"]), balance, "{leaf}");
    let view = common::admin_get(&stack.http_url(), "/admin/payments").await;
    let row = &view["recent"][0];
    assert_eq!(row["kind"], "inbound", "{row}");
    assert_eq!(row["status"], "settled", "{row}");
    assert_eq!(sat(&row["amount_sat"]), RECEIVED);
    assert_eq!(sat(&row["fee_sat"]), Amount::ZERO);
    let snapshot = payee.handle.snapshot().await.expect("snapshot");
    assert!(
        snapshot
            .payments
            .iter()
            .any(|p| p.hash == record.hash && p.amount == RECEIVED),
        "the history lists it: {snapshot:?}"
    );

    // A member of the LSP pays such an invoice inside, not through the node.
    let inside = payee
        .handle
        .invoice(Amount::from_sat(3_000), "from a neighbour")
        .await
        .expect("an invoice");
    member
        .handle
        .pay(&inside.invoice)
        .await
        .expect("paid inside");
    balance += Amount::from_sat(3_000);
    payee.balance_becomes(balance, 30).await;
    let view = common::admin_get(&stack.http_url(), "/admin/payments").await;
    let row = &view["recent"][0];
    assert_eq!(
        (&row["kind"], &row["status"]),
        (&"forward".into(), &"settled".into()),
        "{row}"
    );
    assert_eq!(
        sat(&row["fee_sat"]),
        route_fee(&terms.fees, Amount::from_sat(3_000))
    );
    assert_eq!(
        lsp_channel_balance(&stack).await,
        lsp_before + RECEIVED,
        "the node took no part"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_to_an_offline_wallet_waits_then_arrives_or_fails_back() {
    let payments = PaymentOptions {
        faucet_max_sat: FAUCET.to_sat(),
        offline_wait_secs: 8,
        ..PaymentOptions::default()
    };
    let (stack, outside) = ln::with_outside(
        ln::free_addr(),
        common::fast_factory(2, 2),
        payments,
        None,
        (CAPACITY, PUSH),
    )
    .await;
    let storage = tempfile::tempdir().expect("temp dir");
    let config = common::swarm_config(&stack, storage.path());
    let runs = funded_factory(&stack, &config, spec(), 2).await;
    let mut payee = start_payer(&stack, &runs[0], MemoryPayStore::default());
    payee.ready(30).await;
    let mut balance = payee.faucet(FAUCET, 30).await;
    let channel = payee.leaves[0].channel.to_string();
    let offline = |stack: &common::Stack| {
        let url = stack.http_url();
        let channel = channel.clone();
        async move {
            let view = common::admin_get(&url, "/admin/payments").await;
            view["channels"]
                .as_array()
                .expect("channels")
                .iter()
                .any(|c| c["channel"] == channel.as_str() && c["connected"] == false)
        }
    };

    // Offline for good: the payment waits, then fails back to the outside payer.
    let first = payee
        .handle
        .invoice(RECEIVED, "while away")
        .await
        .expect("an invoice");
    let second = payee
        .handle
        .invoice(RECEIVED, "back in time")
        .await
        .expect("an invoice");
    payee.handle.stop();
    payee.task.await.expect("the wallet stops");
    ln::wait_for(10, "the LSP sees the wallet gone", || async {
        offline(&stack).await.then_some(())
    })
    .await;
    let started = std::time::Instant::now();
    let ended = outside_pays(&outside, &first.invoice, 60).await;
    assert!(
        matches!(ended, Event::PaymentFailed { .. }),
        "failed back: {ended:?}"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(7),
        "it waited for the wallet first"
    );
    assert_eq!(
        outside.node.list_balances().total_lightning_balance_sats,
        PUSH.to_sat(),
        "the payer has everything back"
    );
    let view = common::admin_get(&stack.http_url(), "/admin/payments").await;
    assert_eq!(
        (&view["recent"][0]["kind"], &view["recent"][0]["status"]),
        (&"inbound".into(), &"failed".into()),
        "{view}"
    );

    // Back within the wait: the payment arrives.
    let store = payee.store.clone();
    let invoice = Bolt11Invoice::from_str(&second.invoice).expect("an invoice");
    outside
        .node
        .bolt11_payment()
        .send(&invoice, None)
        .expect("the outside node sends");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut payee = start_payer(&stack, &runs[0], store);
    balance += RECEIVED;
    payee.balance_becomes(balance, 30).await;
    let ended = outside
        .expect_event(30, "the payment's end", |e| {
            matches!(e, Event::PaymentSuccessful { .. })
        })
        .await;
    let Event::PaymentSuccessful {
        payment_preimage: Some(preimage),
        ..
    } = ended
    else {
        unreachable!("matched above")
    };
    assert_eq!(preimage.0, second.preimage);
    assert_eq!(
        outside.node.list_balances().total_lightning_balance_sats,
        (PUSH - RECEIVED).to_sat()
    );
}

/// The LSP is killed after its node took the payment and the wallet was offered it, but before
/// the wallet settled: after the restart the payment is delivered and claimed once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_payment_across_an_lsp_restart_arrives_once() {
    let payments = PaymentOptions {
        faucet_max_sat: FAUCET.to_sat(),
        offline_wait_secs: 30,
        ..PaymentOptions::default()
    };
    let ln_listen = ln::free_addr();
    let factory = common::fast_factory(2, 2);
    let (stack, outside) = ln::with_outside(
        ln_listen,
        factory.clone(),
        payments.clone(),
        None,
        (CAPACITY, PUSH),
    )
    .await;
    let storage = tempfile::tempdir().expect("temp dir");
    let config = common::swarm_config(&stack, storage.path());
    let runs = funded_factory(&stack, &config, spec(), 2).await;
    let mut payee = start_payer(&stack, &runs[0], MemoryPayStore::default());
    payee.ready(30).await;
    let mut balance = payee.faucet(FAUCET, 30).await;
    let record = payee
        .handle
        .invoice(RECEIVED, "across a restart")
        .await
        .expect("an invoice");
    // The wallet goes away, so the payment waits at the LSP, held by its node.
    let store = payee.store.clone();
    payee.handle.stop();
    payee.task.await.expect("the wallet stops");
    let invoice = Bolt11Invoice::from_str(&record.invoice).expect("an invoice");
    outside
        .node
        .bolt11_payment()
        .send(&invoice, None)
        .expect("the outside node sends");
    ln::wait_for(30, "the payment held at the LSP", || async {
        let view = common::admin_get(&stack.http_url(), "/admin/payments").await;
        let row = view["recent"][0].clone();
        (row["kind"] == "inbound" && row["status"] == "pending").then_some(())
    })
    .await;

    // The LSP restarts with the payment held; the wallet comes back.
    let stack = ln::restart_with(stack, ln_listen, factory, payments).await;
    let mut payee = start_payer(&stack, &runs[0], store);
    balance += RECEIVED;
    payee.balance_becomes(balance, 60).await;
    let ended = outside
        .expect_event(60, "the payment's end", |e| {
            matches!(e, Event::PaymentSuccessful { .. })
        })
        .await;
    assert!(matches!(ended, Event::PaymentSuccessful { .. }));
    assert_eq!(
        outside.node.list_balances().total_lightning_balance_sats,
        (PUSH - RECEIVED).to_sat()
    );
    let view = common::admin_get(&stack.http_url(), "/admin/payments").await;
    let rows: Vec<&Value> = view["recent"]
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["kind"] == "inbound")
        .collect();
    assert_eq!(rows.len(), 1, "one payment, settled once: {view}");
    assert_eq!(rows[0]["status"], "settled");
}
