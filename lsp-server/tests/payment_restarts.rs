//! Payments across restarts: the LSP is stopped and started again on the same data dir (its
//! channels come back from SQLite), a wallet is restarted from its store, and a payment waiting
//! for an offline payee when the LSP stops is failed back cleanly after the restart. Balances
//! are checked exactly at every step.

mod common;

use std::time::Duration;

use bitcoin::Amount;
use common::pay::{start_payer, two_funded};
use common::swarm::ClientSpec;
use lsp_server::PaymentOptions;
use shared::pay::policy::route_fee;
use wallet::pay::{MemoryPayStore, PaymentStatus};

fn options() -> PaymentOptions {
    PaymentOptions {
        offline_wait_secs: 20,
        faucet_max_sat: 50_000,
        ..PaymentOptions::default()
    }
}

fn fee(sat: u64) -> u64 {
    let fees = shared::terms::FeeSchedule {
        join_fee: Amount::ZERO,
        liquidity_fee_ppm: 0,
        routing_fee_base: Amount::from_sat(1),
        routing_fee_ppm: 1_000,
    };
    route_fee(&fees, Amount::from_sat(sat)).to_sat()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_and_payments_survive_lsp_and_wallet_restarts() {
    let spec = ClientSpec {
        channel: Amount::from_sat(100_000),
        liquidity: Amount::from_sat(10_000),
        ..ClientSpec::honest()
    };
    let (stack, runs, _storage) = two_funded(options(), spec).await;
    let mut a = start_payer(&stack, &runs[0], MemoryPayStore::default());
    let mut b = start_payer(&stack, &runs[1], MemoryPayStore::default());
    a.ready(30).await;
    b.ready(30).await;
    // A's first sats pay its join fee.
    let funded = a.faucet(Amount::from_sat(30_000), 30).await;
    assert_eq!(
        funded,
        Amount::from_sat(30_000) - common::pay::join_fee_of(&runs[0])
    );
    let (mut bal_a, mut bal_b) = (funded.to_sat(), 0u64);

    let inv = b
        .handle
        .invoice(Amount::from_sat(5_000), "before")
        .await
        .unwrap();
    a.handle
        .pay(&inv.invoice)
        .await
        .expect("paid before the restart");
    bal_a -= 5_000 + fee(5_000);
    // B's first payment received pays its join fee.
    bal_b += 5_000 - common::pay::join_fee_of(&runs[1]).to_sat();

    // The LSP restarts: channels come back from its database, the wallets reconnect.
    let stack = common::restart(stack, common::fast_factory(2, 2), options()).await;
    a.ready(30).await;
    b.ready(30).await;
    let inv = b
        .handle
        .invoice(Amount::from_sat(3_000), "after")
        .await
        .unwrap();
    a.handle
        .pay(&inv.invoice)
        .await
        .expect("paid after the LSP restarted");
    bal_a -= 3_000 + fee(3_000);
    bal_b += 3_000;
    a.balance_becomes(Amount::from_sat(bal_a), 30).await;
    b.balance_becomes(Amount::from_sat(bal_b), 30).await;

    // Wallet B restarts from what it stored, and pays back.
    b.handle.stop();
    b.task.await.expect("B stops");
    let mut b = start_payer(&stack, &runs[1], b.store.clone());
    let s = b.ready(30).await;
    assert_eq!(
        s.balance,
        Amount::from_sat(bal_b),
        "B's balance survives its restart"
    );
    assert_eq!(s.payments.len(), 2, "and its history");
    let inv = a
        .handle
        .invoice(Amount::from_sat(1_000), "back")
        .await
        .unwrap();
    b.handle
        .pay(&inv.invoice)
        .await
        .expect("B pays after its restart");
    bal_b -= 1_000 + fee(1_000);
    bal_a += 1_000;
    a.balance_becomes(Amount::from_sat(bal_a), 30).await;
    b.balance_becomes(Amount::from_sat(bal_b), 30).await;

    // B goes offline; A's payment waits at the LSP; the LSP restarts meanwhile: the waiting
    // payment is failed back (not lost, not stuck), and A's balance is whole again.
    let offline = b
        .handle
        .invoice(Amount::from_sat(2_000), "offline")
        .await
        .unwrap();
    b.handle.stop();
    b.task.await.expect("B stops");
    // Once the LSP has seen B go (an HTLC offered to a payee it still thinks is online is in
    // flight, not waiting: it stays until the payee settles or fails it).
    let b_channel = common::pay::leaf_of(&runs[1]).channel.to_string();
    let mut gone = false;
    for _ in 0..100 {
        let view = common::admin_get(&stack.http_url(), "/admin/payments").await;
        gone = view["channels"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["channel"] == b_channel.as_str() && c["connected"] == false);
        if gone {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "the LSP sees B disconnected");
    let pay = {
        let handle = a.handle.clone();
        tokio::spawn(async move { handle.pay(&offline.invoice).await })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stack = common::restart(stack, common::fast_factory(2, 2), options()).await;
    let outcome = tokio::time::timeout(Duration::from_secs(30), pay)
        .await
        .expect("the payment ends")
        .unwrap();
    let err = outcome.expect_err("the payee never came back");
    assert!(
        err.to_string().contains("not online"),
        "{err}: {}",
        common::admin_get(&stack.http_url(), "/admin/payments").await["recent"]
    );
    let s = a.balance_becomes(Amount::from_sat(bal_a), 30).await;
    assert!(matches!(
        s.payments
            .iter()
            .find(|p| p.description == "offline")
            .map(|p| &p.status),
        Some(PaymentStatus::Failed(_))
    ));

    // The LSP's view agrees with both wallets.
    let view = common::admin_get(&stack.http_url(), "/admin/payments").await;
    let client_sat = |i: usize| {
        let id = common::pay::leaf_of(&runs[i]).channel.to_string();
        view["channels"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["channel"] == id.as_str())
            .map(|c| c["client_sat"].as_u64().unwrap())
    };
    assert_eq!(client_sat(0), Some(bal_a));
    assert_eq!(client_sat(1), Some(bal_b));
}
