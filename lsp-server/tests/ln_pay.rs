//! Paying out: a native wallet pays invoices made by an independent LDK node (the rest of the
//! Lightning Network) through the LSP's Lightning node, over a public channel between the two.
//! Balances on all three sides reconcile to the sat, fees included; an invoice for another
//! network, an expired one and one above the LSP's outbound liquidity are refused with their
//! reason, before any money moves; a payment in flight across a restart of the LSP settles
//! once.

mod common;

use std::time::Duration;

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{Keypair, Secp256k1};
use bitcoin::Amount;
use common::ln::{self, lsp_channel_balance, outside_invoice, sat};
use common::pay::{funded_factory, join_fee_of, start_payer};
use common::swarm::ClientSpec;
use ldk_node::lightning_invoice::{Bolt11InvoiceDescription, Description};
use ldk_node::lightning_types::payment::{PaymentHash, PaymentPreimage};
use ldk_node::Event;
use lsp_server::PaymentOptions;
use serde_json::Value;
use shared::pay::policy::route_fee;
use shared::pay::InvoiceRequest;
use wallet::pay::{MemoryPayStore, PayError, PaymentStatus};

const FAUCET: Amount = Amount::from_sat(50_000);
const CAPACITY: Amount = Amount::from_sat(100_000);
/// Pushed to the outside node at opening, so the LSP's side is small enough to run out.
const PUSH: Amount = Amount::from_sat(70_000);
const PAID: Amount = Amount::from_sat(10_000);
const TOO_MUCH: Amount = Amount::from_sat(35_000);

fn spec() -> ClientSpec {
    ClientSpec {
        channel: Amount::from_sat(200_000),
        liquidity: Amount::from_sat(10_000),
        ..ClientSpec::honest()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wallet_pays_an_outside_invoice_and_every_balance_reconciles() {
    let payments = PaymentOptions {
        faucet_max_sat: FAUCET.to_sat(),
        ..PaymentOptions::default()
    };
    // The channel to the outside node first: its blocks are mined before the wallet starts
    // (a wallet reads the tip every 5 s, and its HTLC expiries count from it).
    let (stack, outside) = ln::with_outside(
        ln::free_addr(),
        common::fast_factory(2, 2),
        payments,
        None,
        (CAPACITY, PUSH),
    )
    .await;
    let channel = ln::get(&stack, "/admin/ln/channels").await[0].clone();
    let storage = tempfile::tempdir().expect("temp dir");
    let config = common::swarm_config(&stack, storage.path());
    let runs = funded_factory(&stack, &config, spec(), 2).await;
    let mut payer = start_payer(&stack, &runs[0], MemoryPayStore::default());
    payer.ready(30).await;
    let join_fee = join_fee_of(&runs[0]);
    payer.handle.faucet(FAUCET).await.expect("faucet invoice");
    let mut balance = FAUCET - join_fee;
    payer.balance_becomes(balance, 30).await;

    let outbound = channel["outbound_capacity_msat"].as_u64().expect("msat") / 1000;
    assert!(
        PAID.to_sat() < outbound && outbound < TOO_MUCH.to_sat(),
        "the LSP can send {outbound} sat"
    );
    let lsp_before = lsp_channel_balance(&stack).await;
    assert_eq!(
        outside.node.list_balances().total_lightning_balance_sats,
        PUSH.to_sat()
    );

    // The quote is the LSP's routing fee; the route may take at most that.
    let terms = common::terms(&stack).await.body;
    let fees = terms.fees;
    let invoice = outside_invoice(&outside, PAID, 3600);
    let quote = payer.handle.quote(&invoice).await.expect("quote");
    let fee = route_fee(&fees, PAID);
    assert_eq!((quote.amount, quote.fee), (PAID, fee));
    let paid = payer
        .handle
        .pay(&invoice)
        .await
        .expect("the payment goes out");
    assert_eq!(paid.status, PaymentStatus::Complete);
    let preimage = paid.preimage.expect("proof of payment");
    let received = outside
        .expect_event(30, "the payment received", |e| {
            matches!(e, Event::PaymentReceived { .. })
        })
        .await;
    let Event::PaymentReceived {
        payment_hash,
        amount_msat,
        ..
    } = received
    else {
        unreachable!("matched above")
    };
    assert_eq!(
        payment_hash.0,
        sha256::Hash::hash(&preimage).to_byte_array()
    );
    assert_eq!(amount_msat, PAID.to_sat() * 1000);

    // Three sides, to the sat: the payer paid amount and fee; the outside node holds its push
    // and the amount; the LSP's node sent exactly the amount (a direct channel takes no fee)
    // and the LSP's leaf channel gained amount and fee.
    balance -= PAID + fee;
    payer.balance_becomes(balance, 30).await;
    assert_eq!(
        outside.node.list_balances().total_lightning_balance_sats,
        (PUSH + PAID).to_sat()
    );
    ln::wait_for(10, "the LSP node's balance after the payment", || async {
        (lsp_channel_balance(&stack).await == lsp_before - PAID).then_some(())
    })
    .await;
    let leaf = common::pay::admin_channel(&stack, payer.leaves[0].channel).await;
    assert_eq!(sat(&leaf["client_sat"]), balance, "{leaf}");
    let view = common::admin_get(&stack.http_url(), "/admin/payments").await;
    let row = &view["recent"][0];
    assert_eq!(row["kind"], "outside", "{row}");
    assert_eq!(row["status"], "settled", "{row}");
    assert_eq!(sat(&row["amount_sat"]), PAID);
    assert_eq!(sat(&row["fee_sat"]), fee);
    assert_eq!(row["network_fee_msat"], 0, "{row}");
    assert_eq!(view["earned"]["network_msat"], 0);

    // Refused before any money moves, each with its reason.
    let other_network = mainnet_invoice(terms.lsp_pubkey, fees);
    let err = payer
        .handle
        .pay(&other_network)
        .await
        .expect_err("wrong network");
    assert!(err.to_string().contains("is for bc"), "{err}");
    let expiring = outside_invoice(&outside, PAID, 1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let err = payer.handle.pay(&expiring).await.expect_err("expired");
    assert!(err.to_string().contains("expired"), "{err}");
    let big = outside_invoice(&outside, TOO_MUCH, 3600);
    let err = payer
        .handle
        .pay(&big)
        .await
        .expect_err("above the LSP's outbound");
    let PayError::Failed(reason) = &err else {
        panic!("the LSP fails it back: {err}")
    };
    assert!(reason.contains("at most"), "{reason}");
    payer.balance_becomes(balance, 30).await;
    assert_eq!(lsp_channel_balance(&stack).await, lsp_before - PAID);
    assert_eq!(
        outside.node.list_balances().total_lightning_balance_sats,
        (PUSH + PAID).to_sat()
    );
    let view = common::admin_get(&stack.http_url(), "/admin/payments").await;
    let row = &view["recent"][0];
    assert_eq!(
        (&row["kind"], &row["status"]),
        (&"outside".into(), &"failed".into()),
        "{row}"
    );
}

/// A valid invoice for mainnet, signed by a key of no one.
fn mainnet_invoice(
    lsp: bitcoin::secp256k1::XOnlyPublicKey,
    fees: shared::terms::FeeSchedule,
) -> String {
    let secp = Secp256k1::new();
    let keys = Keypair::new(&secp, &mut bitcoin::secp256k1::rand::thread_rng());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let network = bitcoin::Network::Bitcoin;
    InvoiceRequest {
        amount: PAID,
        description: "elsewhere".into(),
        expiry_secs: 3600,
        hash: sha256::Hash::hash(b"elsewhere"),
        secret: [7; 32],
        channel: shared::pay::ChannelId {
            factory: shared::types::FactoryId(1),
            client: shared::types::ClientId(0),
        },
        lsp,
        fees,
        now_unix: now,
    }
    .sign(
        network,
        &keys,
        &shared::pay::ChannelPolicy::for_network(network),
    )
    .expect("an invoice")
}

/// The LSP restarts while the outside node holds the payment's HTLC: after the restart the LSP
/// finds the payment pending in its node and waits; the outside node claims it, and the payer's
/// HTLC settles once, every balance as if nothing had happened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outside_payment_in_flight_across_a_restart_settles_once() {
    let payments = PaymentOptions {
        faucet_max_sat: FAUCET.to_sat(),
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
    let mut payer = start_payer(&stack, &runs[0], MemoryPayStore::default());
    payer.ready(30).await;
    payer.handle.faucet(FAUCET).await.expect("faucet invoice");
    let mut balance = FAUCET - join_fee_of(&runs[0]);
    payer.balance_becomes(balance, 30).await;
    let lsp_before = lsp_channel_balance(&stack).await;

    // A hold invoice: the outside node keeps the HTLC until the test releases it.
    let preimage = [42u8; 32];
    let hash = PaymentHash(sha256::Hash::hash(&preimage).to_byte_array());
    let description =
        Bolt11InvoiceDescription::Direct(Description::new("held".into()).expect("a description"));
    let invoice = outside
        .node
        .bolt11_payment()
        .receive_for_hash(PAID.to_sat() * 1000, &description, 3600, hash)
        .expect("a hold invoice")
        .to_string();
    let handle = payer.handle.clone();
    let paying = tokio::spawn(async move { handle.pay(&invoice).await });
    let claimable = outside
        .expect_event(30, "the HTLC held by the outside node", |e| {
            matches!(e, Event::PaymentClaimable { .. })
        })
        .await;
    let Event::PaymentClaimable {
        claimable_amount_msat,
        ..
    } = claimable
    else {
        unreachable!("matched above")
    };
    assert_eq!(claimable_amount_msat, PAID.to_sat() * 1000);
    let view = common::admin_get(&stack.http_url(), "/admin/payments").await;
    assert_eq!(
        (&view["recent"][0]["kind"], &view["recent"][0]["status"]),
        (&"outside".into(), &"pending".into()),
        "recorded as in flight: {view}"
    );

    // Restart with the payment in flight; the outside node then releases the preimage.
    let stack = ln::restart_with(stack, ln_listen, factory, payments).await;
    ln::wait_for(
        60,
        "the LSP's channel to the outside usable again",
        || async {
            let channels = ln::get(&stack, "/admin/ln/channels").await;
            (channels[0]["is_usable"] == true).then_some(())
        },
    )
    .await;
    outside
        .node
        .bolt11_payment()
        .claim_for_hash(hash, claimable_amount_msat, PaymentPreimage(preimage))
        .expect("the outside node claims");
    let paid = tokio::time::timeout(Duration::from_secs(60), paying)
        .await
        .expect("the payment ends")
        .expect("the paying task ran")
        .expect("the payment went through");
    assert_eq!(paid.status, PaymentStatus::Complete);
    assert_eq!(paid.preimage, Some(preimage));

    let fee = route_fee(&common::terms(&stack).await.body.fees, PAID);
    balance -= PAID + fee;
    payer.balance_becomes(balance, 30).await;
    assert_eq!(
        outside.node.list_balances().total_lightning_balance_sats,
        (PUSH + PAID).to_sat()
    );
    ln::wait_for(10, "the LSP node's balance after the payment", || async {
        (lsp_channel_balance(&stack).await == lsp_before - PAID).then_some(())
    })
    .await;
    let view = common::admin_get(&stack.http_url(), "/admin/payments").await;
    let rows: Vec<&Value> = view["recent"]
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["kind"] == "outside")
        .collect();
    assert_eq!(rows.len(), 1, "one payment, settled once: {view}");
    assert_eq!(rows[0]["status"], "settled");
    assert_eq!(sat(&rows[0]["fee_sat"]), fee);
}
