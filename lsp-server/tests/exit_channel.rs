//! Leaving alone with a channel balance: a wallet is paid over its leaf's channel and buys
//! inbound liquidity (its channel moves to leaf state 1), then the LSP disappears. The
//! wallet's exit runner (exactly what the exit screen runs) walks the tree to the newest leaf
//! state, publishes its latest commitment on that state's channel, waits out
//! `to_self_delay` and sweeps its balance to its own address, each step as the chain allows,
//! using only what the wallet stored, its keys and Esplora.

mod common;

use bitcoin::secp256k1::{Secp256k1, SecretKey};
use bitcoin::{Address, Amount, Network};
use common::pay::{leaf_of, start_payer, two_funded};
use common::swarm::ClientSpec;
use lsp_server::PaymentOptions;
use shared::exit::ExitKit;
use shared::pay::ChannelPolicy;
use wallet::exit::{ExitRunner, ExitStatus};
use wallet::pay::{leaf_channels, MemoryPayStore, PayStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wallet_leaves_alone_with_its_channel_balance() {
    let spec = ClientSpec {
        channel: Amount::from_sat(100_000),
        liquidity: Amount::from_sat(30_000),
        ..ClientSpec::honest()
    };
    let (stack, runs, _storage) = two_funded(PaymentOptions::default(), spec).await;
    let mut a = start_payer(&stack, &runs[0], MemoryPayStore::default());
    let mut b = start_payer(&stack, &runs[1], MemoryPayStore::default());
    a.ready(30).await;
    b.ready(30).await;
    a.faucet(Amount::from_sat(30_000), 30).await;
    let invoice = b
        .handle
        .invoice(Amount::from_sat(12_000), "before leaving")
        .await
        .expect("invoice");
    a.handle.pay(&invoice.invoice).await.expect("paid");
    // B's first payment received paid its join fee.
    let received = 12_000 - common::pay::join_fee_of(&runs[1]).to_sat();
    b.balance_becomes(Amount::from_sat(received), 30).await;
    let (bought, _) = b.buy_liquidity(Amount::from_sat(10_000), 60).await;
    let balance = received - bought.price.to_sat();
    b.balance_becomes(Amount::from_sat(balance), 30).await;

    // B stops, and the LSP is gone for good.
    b.handle.stop();
    b.task.await.expect("B stops");
    a.handle.stop();
    let common::Stack { devnet, lsp, .. } = stack;
    lsp.stop().await.expect("the LSP stops");

    // B leaves with what it stored.
    let leaf = leaf_of(&runs[1]);
    let state = b.store.clone().load().await.expect("B's store");
    let channels = leaf_channels(&state, &leaf, &ChannelPolicy::for_network(Network::Regtest));
    assert_eq!(
        channels.len(),
        2,
        "leaf state 0's channel, frozen, and the live one"
    );
    let secp = Secp256k1::new();
    let dest = SecretKey::new(&mut rand::thread_rng())
        .x_only_public_key(&secp)
        .0;
    let to = Address::p2tr(&secp, dest, None, Network::Regtest);
    let kit = ExitKit::new(leaf.path.clone()).expect("a signed path");
    let runner = ExitRunner::new(kit, leaf.factory_secret, to.clone(), devnet.esplora_url())
        .expect("runner")
        .with_payments(&state, &leaf)
        .expect("the leaf's states");
    let mut seen = Vec::new();
    let swept = loop {
        assert!(seen.len() < 60, "the exit did not finish: {seen:?}");
        let status = runner.step().await.expect("Esplora answers");
        seen.push(status.id());
        match status {
            ExitStatus::Broadcast { .. } | ExitStatus::Sweeping { .. } => {
                devnet.mine(1).await.expect("mine");
            }
            ExitStatus::Waiting { blocks, .. } => {
                devnet.mine(blocks.max(1)).await.expect("mine");
            }
            ExitStatus::Swept { amount, txid } => break (amount, txid),
            other => panic!("the exit cannot go on: {other:?} after {seen:?}"),
        }
    };
    // The commitment went out, waited, and the balance came home less the sweep's fee.
    assert!(seen.contains(&"waiting"));
    let (amount, txid) = swept;
    assert!(amount <= Amount::from_sat(balance));
    assert!(amount >= Amount::from_sat(balance - 1_000), "{amount}");
    let tx: serde_json::Value = reqwest::get(format!("{}/tx/{txid}", devnet.esplora_url()))
        .await
        .expect("tx")
        .json()
        .await
        .expect("JSON");
    assert_eq!(tx["status"]["confirmed"], true);
    assert_eq!(tx["vout"][0]["scriptpubkey_address"], to.to_string());
    assert_eq!(tx["vout"][0]["value"], amount.to_sat());
    // The leaf went out in its newest state, and the sweep came from that state's channel.
    let newest = &state.leaves[&leaf.channel].states.latest();
    let leaf_tx: serde_json::Value = reqwest::get(format!(
        "{}/tx/{}",
        devnet.esplora_url(),
        newest.node.txid()
    ))
    .await
    .expect("tx")
    .json()
    .await
    .expect("JSON");
    assert_eq!(
        leaf_tx["status"]["confirmed"], true,
        "leaf state 1 is on chain"
    );
    let outspend: serde_json::Value = reqwest::get(format!(
        "{}/tx/{}/outspend/0",
        devnet.esplora_url(),
        newest.node.txid()
    ))
    .await
    .expect("outspend")
    .json()
    .await
    .expect("JSON");
    assert_eq!(outspend["spent"], true, "its channel output was closed");
}
