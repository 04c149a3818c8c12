//! Leaving alone with a channel balance: a wallet is paid over its leaf's channel and buys
//! inbound liquidity (its channel moves to leaf state 1), then the LSP disappears. The
//! wallet's exit runner (exactly what the exit screen runs) walks the tree to the newest leaf
//! state, publishes its latest commitment on that state's channel, waits out
//! `to_self_delay` and sweeps its balance to its own address, each step as the chain allows,
//! using only what the wallet stored, its keys and Esplora.
//!
//! And leaving when the network takes more than the tree was signed for.

mod common;

use bitcoin::secp256k1::{Secp256k1, SecretKey};
use bitcoin::{Address, Amount, Network};
use common::pay::{leaf_of, start_payer, two_funded, two_funded_on};
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

/// Leaving when the network takes more than the tree was signed for: bitcoind's relay floor is
/// 5 sat/vB, the tree's transactions pay 1. A wallet that never held bitcoin cannot add the fee
/// and says so in plain words, and tries again; once a coin arrives at its on-chain address,
/// each step goes in with a child through its anchor, paid from that coin, until the leaf is
/// on chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exit_below_the_relay_floor_pays_its_fee_from_the_wallets_coin() {
    let floor = devnet::DevnetConfig {
        bitcoind_args: vec!["-minrelaytxfee=0.00005".into()],
        ..devnet::DevnetConfig::default()
    };
    let (stack, runs, _storage) =
        two_funded_on(floor, PaymentOptions::default(), ClientSpec::honest()).await;
    let common::Stack { devnet, lsp, .. } = stack;
    lsp.stop().await.expect("the LSP stops");
    let leaf = leaf_of(&runs[1]);
    let secp = Secp256k1::new();
    let coin_key = SecretKey::new(&mut rand::thread_rng());
    let to = Address::p2tr(
        &secp,
        coin_key.x_only_public_key(&secp).0,
        None,
        Network::Regtest,
    );
    let kit = ExitKit::new(leaf.path.clone()).expect("a signed path");
    let runner = ExitRunner::new(kit, leaf.factory_secret, to.clone(), devnet.esplora_url())
        .expect("runner")
        .with_coin_key(coin_key);

    // No coin yet: the first step says what it cannot do and why, and is not the end.
    let status = runner.step().await.expect("Esplora answers");
    let ExitStatus::FeeTooLow { paid, needed, .. } = &status else {
        panic!("the kickoff cannot go in alone: {status:?}");
    };
    assert!(paid < needed, "{paid} < {needed}");
    let words = status.describe(wallet::pace::BlockPace::default());
    for part in ["1 sat/vB", "5 sat/vB", "no confirmed coin", "tries again"] {
        assert!(words.contains(part), "{part:?} in {words:?}");
    }
    assert!(!status.is_final());

    // A coin arrives at the wallet's address: from now on each step pays its own way.
    devnet
        .faucet(&to, Amount::from_sat(50_000))
        .await
        .expect("faucet");
    devnet.mine(1).await.expect("mine");
    let mut seen = Vec::new();
    loop {
        assert!(seen.len() < 60, "the exit did not finish: {seen:?}");
        let status = runner.step().await.expect("Esplora answers");
        seen.push(status.id());
        match status {
            ExitStatus::Broadcast { .. } => devnet.mine(1).await.map(|_| ()).expect("mine"),
            ExitStatus::Waiting { blocks, .. } => {
                devnet.mine(blocks.max(1)).await.map(|_| ()).expect("mine")
            }
            ExitStatus::LeafOnChain { .. } => break,
            other => panic!("the exit cannot go on: {other:?} after {seen:?}"),
        }
    }
    // Every transaction of the path is on chain, each with a child through its anchor that
    // paid the wallet's change back to its own address.
    let esplora = esplora_client::Builder::new(devnet.esplora_url())
        .build_async()
        .expect("client");
    for node in leaf.path.nodes() {
        let txid = node.txid();
        let anchor = node
            .tx
            .output
            .iter()
            .position(|o| o.script_pubkey == bitcoin::ScriptBuf::new_p2a())
            .expect("every step has an anchor");
        let spent = esplora
            .get_output_status(&txid, anchor as u64)
            .await
            .expect("outspend")
            .expect("known");
        let child = spent
            .txid
            .unwrap_or_else(|| panic!("{txid} went in without a child"));
        let child = esplora.get_tx(&child).await.expect("tx").expect("child");
        assert_eq!(child.output[0].script_pubkey, to.script_pubkey());
        let status = esplora.get_tx_status(&txid).await.expect("status");
        assert!(status.confirmed, "{txid} is on chain");
    }
}
