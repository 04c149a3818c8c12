//! Payments end to end: four native wallets in two factories of one LSP, real WebSockets, a
//! real regtest node. The faucet gives each wallet sats over its channel, then 200 payments go
//! back and forth across the factories, and every balance reconciles exactly with the fees the
//! LSP reports. Then each way a payment can fail is tried, and nothing is lost by any of them.

mod common;

use std::time::{Duration, Instant};

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{Keypair, Secp256k1};
use bitcoin::{Amount, Network};
use common::pay::{funded_factory, start_payer, Payer};
use common::swarm::ClientSpec;
use lsp_server::PaymentOptions;
use rand::{Rng, SeedableRng};
use shared::pay::policy::route_fee;
use shared::pay::{ChannelId, ChannelPolicy, InvoiceRequest};
use shared::types::{ClientId, FactoryId};
use wallet::pay::{MemoryPayStore, PayError, PaymentStatus};

const FAUCET: u64 = 50_000;

fn spec() -> ClientSpec {
    ClientSpec {
        channel: Amount::from_sat(200_000),
        liquidity: Amount::from_sat(10_000),
        ..ClientSpec::honest()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_payments_across_two_factories_reconcile_exactly() {
    let payments = PaymentOptions {
        offline_wait_secs: 3,
        faucet_max_sat: FAUCET,
        ..PaymentOptions::default()
    };
    let stack = common::start_full(common::fast_factory(2, 2), payments, None).await;
    common::fund_lsp(&stack, Amount::from_sat(3_000_000)).await;
    let storage = tempfile::tempdir().expect("temp dir");
    let config = common::swarm_config(&stack, storage.path());
    let mut runs = funded_factory(&stack, &config, spec(), 2).await;
    runs.extend(funded_factory(&stack, &config, spec(), 2).await);
    let factories: std::collections::BTreeSet<FactoryId> = runs
        .iter()
        .map(|r| common::pay::leaf_of(r).channel.factory)
        .collect();
    assert_eq!(factories.len(), 2, "two factories");

    let mut payers: Vec<Payer> = runs
        .iter()
        .map(|r| start_payer(&stack, r, MemoryPayStore::default()))
        .collect();
    for p in &mut payers {
        let s = p.ready(30).await;
        assert_eq!(
            s.balance,
            Amount::ZERO,
            "a new channel holds nothing of the client's"
        );
    }

    // The faucet: each wallet's first sats, over its channel; they pay its join fee.
    for p in &mut payers {
        p.handle
            .faucet(Amount::from_sat(FAUCET))
            .await
            .expect("faucet invoice");
    }
    let join_fees: Vec<u64> = runs
        .iter()
        .map(|r| common::pay::join_fee_of(r).to_sat())
        .collect();
    for (p, join_fee) in payers.iter_mut().zip(&join_fees) {
        p.balance_becomes(Amount::from_sat(FAUCET - join_fee), 30)
            .await;
    }
    let too_much = payers[0].handle.faucet(Amount::from_sat(FAUCET + 1)).await;
    assert!(too_much.is_ok(), "the invoice is made; the LSP refuses it");

    // 200 payments between random pairs, amounts 100..3000 sat.
    let fees = lsp_fees();
    let mut expected: Vec<u64> = join_fees.iter().map(|f| FAUCET - f).collect();
    let mut fee_total = 0;
    let mut rng = rand::rngs::StdRng::seed_from_u64(200);
    let mut latencies = Vec::new();
    for n in 0..200 {
        let from = rng.gen_range(0..4);
        let to = (from + rng.gen_range(1..4)) % 4;
        let amount = rng.gen_range(100..3000u64).min(expected[from] / 2);
        let invoice = payers[to]
            .handle
            .invoice(Amount::from_sat(amount), &format!("payment {n}"))
            .await
            .expect("invoice");
        let quote = payers[from]
            .handle
            .quote(&invoice.invoice)
            .await
            .expect("quote");
        let fee = route_fee(&fees, Amount::from_sat(amount)).to_sat();
        assert_eq!(quote.fee.to_sat(), fee);
        assert!(quote.affordable);
        let started = Instant::now();
        let paid = payers[from]
            .handle
            .pay(&invoice.invoice)
            .await
            .expect("payment goes through");
        latencies.push(started.elapsed());
        assert_eq!(paid.status, PaymentStatus::Complete);
        assert_eq!(
            sha256::Hash::hash(&paid.preimage.expect("proof")),
            invoice.hash
        );
        expected[from] -= amount + fee;
        expected[to] += amount;
        fee_total += fee;
    }
    for (p, want) in payers.iter_mut().zip(&expected) {
        p.balance_becomes(Amount::from_sat(*want), 30).await;
    }
    let total: u64 = expected.iter().sum();
    let join_total: u64 = join_fees.iter().sum();
    assert_eq!(
        total + fee_total + join_total,
        4 * FAUCET,
        "every sat is a balance, a routing fee or a join fee"
    );
    latencies.sort();
    eprintln!(
        "200 payments: p50 {:?}, p99 {:?}",
        latencies[100], latencies[197]
    );

    // The LSP agrees: fees earned, faucet given, and each channel's client balance.
    let view = common::admin_get(&stack.http_url(), "/admin/payments").await;
    assert_eq!(view["settled"], 204, "{view}");
    assert_eq!(view["fees_earned_sat"], fee_total);
    assert_eq!(view["earned"]["routing_sat"], fee_total, "{view}");
    assert_eq!(view["earned"]["join_sat"], join_total, "{view}");
    assert_eq!(view["earned"]["joins_paid"], 4, "{view}");
    assert_eq!(view["faucet_sat"], 4 * FAUCET);
    for (p, want) in payers.iter().zip(&expected) {
        let id = p.leaves[0].channel.to_string();
        let ch = view["channels"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["channel"] == id.as_str())
            .expect("the LSP has the channel")
            .clone();
        assert_eq!(ch["client_sat"], *want, "{ch}");
    }

    // --- Failures: each says why, and leaves every balance as it was. ---
    // Unknown payee: an invoice signed by a key that is no client of this LSP.
    let stranger = Keypair::new(&Secp256k1::new(), &mut rand::thread_rng());
    let foreign = foreign_invoice(&stack, &stranger, 1_000).await;
    let err = payers[0]
        .handle
        .pay(&foreign)
        .await
        .expect_err("unknown payee");
    assert!(err.to_string().contains("not a client"), "{err}");

    // More than the balance.
    let big = payers[1]
        .handle
        .invoice(Amount::from_sat(expected[0] + 1), "too much")
        .await
        .unwrap();
    let err = payers[0]
        .handle
        .pay(&big.invoice)
        .await
        .expect_err("too much");
    assert!(matches!(err, PayError::InsufficientBalance { .. }), "{err}");

    // The same invoice twice.
    let once = payers[1]
        .handle
        .invoice(Amount::from_sat(500), "once")
        .await
        .unwrap();
    payers[0]
        .handle
        .pay(&once.invoice)
        .await
        .expect("first time");
    expected[0] -= 500 + route_fee(&fees, Amount::from_sat(500)).to_sat();
    expected[1] += 500;
    let err = payers[0]
        .handle
        .pay(&once.invoice)
        .await
        .expect_err("twice");
    assert!(matches!(err, PayError::AlreadyPaid), "{err}");

    // The payee is offline: the LSP waits (3 s here), then fails the payment back.
    let offline_invoice = payers[3]
        .handle
        .invoice(Amount::from_sat(700), "offline")
        .await
        .unwrap();
    let p3 = payers.pop().expect("payer 3");
    p3.handle.stop();
    p3.task.await.expect("payer 3 stops");
    let started = Instant::now();
    let err = payers[0]
        .handle
        .pay(&offline_invoice.invoice)
        .await
        .expect_err("payee offline");
    assert!(err.to_string().contains("not online"), "{err}");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "the LSP waited for the payee"
    );

    // The payee comes back within the wait: the payment completes.
    let back_invoice = offline_invoice.clone();
    let store3 = p3.store.clone();
    let run3 = runs.pop().expect("run 3");
    let pay = {
        let handle = payers[0].handle.clone();
        tokio::spawn(async move { handle.pay(&back_invoice.invoice).await })
    };
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let mut p3 = start_payer(&stack, &run3, store3);
    let paid = pay.await.unwrap().expect("paid once the payee is back");
    assert_eq!(paid.amount, Amount::from_sat(700));
    expected[0] -= 700 + route_fee(&fees, Amount::from_sat(700)).to_sat();
    expected[3] += 700;
    p3.balance_becomes(Amount::from_sat(expected[3]), 30).await;
    payers.push(p3);

    for (p, want) in payers.iter_mut().zip(&expected) {
        p.balance_becomes(Amount::from_sat(*want), 30).await;
    }
    let view = common::admin_get(&stack.http_url(), "/admin/payments").await;
    assert!(view["failed"].as_u64().unwrap() >= 2, "{view}");
}

fn lsp_fees() -> shared::terms::FeeSchedule {
    shared::terms::FeeSchedule {
        join_fee: Amount::from_sat(1_000),
        liquidity_fee_ppm: 5_000,
        routing_fee_base: Amount::from_sat(1),
        routing_fee_ppm: 1_000,
    }
}

/// An invoice whose payee is not a client, routed (it claims) through this LSP.
async fn foreign_invoice(stack: &common::Stack, payee: &Keypair, sat: u64) -> String {
    let terms: serde_json::Value =
        reqwest::get(format!("{}/.well-known/superscalar.json", stack.http_url()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let lsp = terms["body"]["lsp_pubkey"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    InvoiceRequest {
        amount: Amount::from_sat(sat),
        description: "stranger".into(),
        expiry_secs: 600,
        hash: sha256::Hash::hash(&[1; 32]),
        secret: [2; 32],
        channel: ChannelId {
            factory: FactoryId(99),
            client: ClientId(0),
        },
        lsp,
        fees: lsp_fees(),
        now_unix: wallet::platform::unix_now(),
    }
    .sign(
        Network::Regtest,
        payee,
        &ChannelPolicy::for_network(Network::Regtest),
    )
    .unwrap()
}
