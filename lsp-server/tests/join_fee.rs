//! The join fee, collected (docs/protocol.md, "The join fee"): two native wallets join one
//! factory, each owing the fee of the quote it accepted. A payment too small to pay it arrives
//! whole; the next one (the faucet's) is short by exactly the fee; a payment the payee refuses
//! gives the fee back, and the next payment takes it. Then the LSP restarts: after it, nothing
//! is taken twice, and the LSP's view (each channel's fee, the fees earned, every payment row)
//! reconciles with both wallets to the sat.

mod common;

use bitcoin::hashes::{sha256, Hash};
use bitcoin::{Amount, Network};
use common::pay::{join_fee_of, leaf_of, start_payer, two_funded};
use common::swarm::ClientSpec;
use lsp_server::PaymentOptions;
use shared::pay::join_fee::MIN_RECEIVED;
use shared::pay::policy::route_fee;
use shared::pay::{ChannelPolicy, InvoiceRequest};
use wallet::pay::{Direction, MemoryPayStore, PaymentRecord};

fn options() -> PaymentOptions {
    PaymentOptions {
        offline_wait_secs: 5,
        faucet_max_sat: 50_000,
        ..PaymentOptions::default()
    }
}

/// The routing fee for `sat` under the test LSP's terms (1 sat + 1,000 ppm).
fn routing_fee(sat: u64) -> u64 {
    let fees = shared::terms::FeeSchedule {
        join_fee: Amount::ZERO,
        liquidity_fee_ppm: 0,
        routing_fee_base: Amount::from_sat(1),
        routing_fee_ppm: 1_000,
    };
    route_fee(&fees, Amount::from_sat(sat)).to_sat()
}

/// The received payment of `hash` in a wallet's history.
fn received(history: &[PaymentRecord], hash: sha256::Hash) -> PaymentRecord {
    history
        .iter()
        .find(|p| p.hash == hash && p.direction == Direction::Received)
        .cloned()
        .expect("the payment is in the history")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_join_fee_is_taken_once_from_the_first_payment_that_leaves_enough_across_a_restart() {
    let spec = ClientSpec {
        channel: Amount::from_sat(100_000),
        liquidity: Amount::from_sat(10_000),
        ..ClientSpec::honest()
    };
    let (stack, runs, _storage) = two_funded(options(), spec).await;
    // The quote: the terms' 1,000 sat plus 5,000 ppm of 10,000 sat of liquidity.
    let fee = join_fee_of(&runs[0]);
    assert_eq!(fee, Amount::from_sat(1_050));
    assert_eq!(join_fee_of(&runs[1]), fee);
    let mut a = start_payer(&stack, &runs[0], MemoryPayStore::default());
    let mut b = start_payer(&stack, &runs[1], MemoryPayStore::default());
    for p in [&mut a, &mut b] {
        let s = p.ready(30).await;
        assert_eq!(
            s.channels[0].join_fee.unpaid(),
            fee,
            "owed before any payment"
        );
    }
    let (id_a, id_b) = (leaf_of(&runs[0]).channel, leaf_of(&runs[1]).channel);
    let ch = common::pay::admin_channel(&stack, id_a).await;
    assert_eq!(ch["join_fee_sat"], fee.to_sat(), "{ch}");
    assert_eq!(ch["join_fee_owed_sat"], fee.to_sat(), "{ch}");

    // Too small to pay the fee and leave 1,000 sat: it arrives whole, the fee stays owed.
    let small = fee + MIN_RECEIVED - Amount::from_sat(1);
    let inv = a.handle.faucet(small).await.expect("faucet");
    a.balance_becomes(small, 30).await;
    let mut bal_a = small.to_sat();
    let s = a.handle.snapshot().await.unwrap();
    assert_eq!(received(&s.payments, inv.hash).join_fee, Amount::ZERO);
    assert_eq!(s.channels[0].join_fee.unpaid(), fee);

    // The faucet's next sats pay it: the wallet shows the invoice's amount and the fee taken.
    let inv = a
        .handle
        .faucet(Amount::from_sat(30_000))
        .await
        .expect("faucet");
    bal_a += 30_000 - fee.to_sat();
    let s = a.balance_becomes(Amount::from_sat(bal_a), 30).await;
    let paid = received(&s.payments, inv.hash);
    assert_eq!(paid.amount, Amount::from_sat(30_000));
    assert_eq!(paid.join_fee, fee);
    assert_eq!(s.channels[0].join_fee.paid_by(), Some(inv.hash));
    let ch = common::pay::admin_channel(&stack, id_a).await;
    assert_eq!(ch["join_fee_owed_sat"], 0, "{ch}");
    assert_eq!(
        ch["join_fee_paid_by"],
        inv.hash.to_string().as_str(),
        "{ch}"
    );

    // A payment B's wallet refuses (an invoice of B's it never made): the LSP offered it short
    // by B's fee, B failed it, and the fee is owed again.
    let terms = common::terms(&stack).await.body;
    let forged = InvoiceRequest {
        amount: Amount::from_sat(4_000),
        description: "never made".into(),
        expiry_secs: 600,
        hash: sha256::Hash::hash(&[42; 32]),
        secret: [7; 32],
        channel: id_b,
        lsp: terms.lsp_pubkey,
        fees: terms.fees.clone(),
        now_unix: wallet::platform::unix_now(),
    }
    .sign(
        Network::Regtest,
        &runs[1].keys,
        &ChannelPolicy::for_network(Network::Regtest),
    )
    .expect("invoice");
    let err = a.handle.pay(&forged).await.expect_err("B refuses it");
    assert!(err.to_string().contains("refused"), "{err}");
    let ch = common::pay::admin_channel(&stack, id_b).await;
    assert_eq!(ch["join_fee_owed_sat"], fee.to_sat(), "given back: {ch}");
    assert_eq!(ch["join_fee_paid_by"], serde_json::Value::Null, "{ch}");
    let failed = common::admin_get(&stack.http_url(), "/admin/payments").await["recent"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["hash"] == forged_hash().as_str())
        .cloned()
        .expect("the refused payment's row");
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(
        failed["join_fee_sat"],
        fee.to_sat(),
        "it was offered short: {failed}"
    );

    // A pays B: B's first payment received pays B's fee.
    let inv = b
        .handle
        .invoice(Amount::from_sat(5_000), "first")
        .await
        .unwrap();
    a.handle.pay(&inv.invoice).await.expect("paid");
    bal_a -= 5_000 + routing_fee(5_000);
    let mut bal_b = 5_000 - fee.to_sat();
    a.balance_becomes(Amount::from_sat(bal_a), 30).await;
    let s = b.balance_becomes(Amount::from_sat(bal_b), 30).await;
    assert_eq!(received(&s.payments, inv.hash).join_fee, fee);

    // The LSP restarts: its channels come back owing nothing, and no payment pays again.
    let stack = common::restart(stack, common::fast_factory(2, 2), options()).await;
    a.ready(30).await;
    b.ready(30).await;
    for id in [id_a, id_b] {
        let ch = common::pay::admin_channel(&stack, id).await;
        assert_eq!(ch["join_fee_owed_sat"], 0, "after the restart: {ch}");
    }
    let inv = b
        .handle
        .invoice(Amount::from_sat(3_000), "after the restart")
        .await
        .unwrap();
    a.handle.pay(&inv.invoice).await.expect("paid");
    bal_a -= 3_000 + routing_fee(3_000);
    bal_b += 3_000;
    let inv = a
        .handle
        .faucet(Amount::from_sat(10_000))
        .await
        .expect("faucet");
    bal_a += 10_000;
    let s = a.balance_becomes(Amount::from_sat(bal_a), 30).await;
    assert_eq!(received(&s.payments, inv.hash).join_fee, Amount::ZERO);
    let s = b.balance_becomes(Amount::from_sat(bal_b), 30).await;
    let fees_taken: Vec<Amount> = s
        .payments
        .iter()
        .filter(|p| p.join_fee > Amount::ZERO)
        .map(|p| p.join_fee)
        .collect();
    assert_eq!(fees_taken, vec![fee], "B paid its fee once");

    // The LSP's view reconciles with both wallets: fees earned apart, rows, balances.
    let view = common::admin_get(&stack.http_url(), "/admin/payments").await;
    assert_eq!(view["earned"]["join_sat"], 2 * fee.to_sat(), "{view}");
    assert_eq!(view["earned"]["joins_paid"], 2, "{view}");
    assert_eq!(
        view["earned"]["routing_sat"],
        routing_fee(5_000) + routing_fee(3_000),
        "{view}"
    );
    let rows = view["recent"].as_array().unwrap();
    let settled_join_fees: u64 = rows
        .iter()
        .filter(|p| p["status"] == "settled")
        .map(|p| p["join_fee_sat"].as_u64().unwrap())
        .sum();
    assert_eq!(settled_join_fees, 2 * fee.to_sat(), "{view}");
    for (id, want) in [(id_a, bal_a), (id_b, bal_b)] {
        let ch = common::pay::admin_channel(&stack, id).await;
        assert_eq!(ch["client_sat"], want, "{ch}");
    }
    // Every sat the LSP moved into the channels is a balance, a routing fee or a join fee.
    let credited: u64 = rows
        .iter()
        .filter(|p| p["status"] == "settled" && p["kind"] == "faucet")
        .map(|p| p["amount_sat"].as_u64().unwrap())
        .sum();
    assert_eq!(
        credited,
        bal_a + bal_b + routing_fee(5_000) + routing_fee(3_000) + 2 * fee.to_sat()
    );
}

fn forged_hash() -> String {
    sha256::Hash::hash(&[42; 32]).to_string()
}
