//! The devnet's lifecycle and its own endpoints: shutdown and drop leave no bitcoind and no
//! datadir behind; `/devnet/*` mine, pay and automine; the address index stays right over
//! several blocks of faucet payments and follows a reorg.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;

use bitcoin::{Address, Amount, OutPoint, Txid};
use common::{esplora, eventually, http, start, Esplora, TestKey};
use devnet::{Devnet, DevnetConfig};
use serde_json::{json, Value};

fn process_exists(pid: u32) -> bool {
    PathBuf::from(format!("/proc/{pid}")).exists()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_bitcoind_and_removes_the_datadir() {
    let devnet = start().await;
    let pid = devnet.bitcoind_pid().expect("running");
    let datadir = devnet.datadir().expect("has a datadir").to_path_buf();
    let url = devnet.esplora_url().to_owned();
    assert!(devnet.datadir_is_temporary());
    assert!(process_exists(pid) && datadir.exists());

    devnet.shutdown().await.expect("clean shutdown");
    assert!(!process_exists(pid), "bitcoind {pid} still running");
    assert!(!datadir.exists(), "{} left behind", datadir.display());
    let after = http().get(format!("{url}/blocks/tip/height")).send().await;
    assert!(after.is_err(), "esplora still answering after shutdown");
}

// The default (current-thread) runtime: `Drop` must not need a free tokio worker.
#[tokio::test]
async fn dropping_the_devnet_also_cleans_up() {
    let devnet = start().await;
    let pid = devnet.bitcoind_pid().expect("running");
    let datadir = devnet.datadir().expect("has a datadir").to_path_buf();
    drop(devnet);
    assert!(!process_exists(pid), "bitcoind {pid} still running");
    assert!(!datadir.exists(), "{} left behind", datadir.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persistent_datadir_keeps_the_chain_and_the_faucet() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = DevnetConfig {
        datadir: Some(dir.path().join("chain")),
        ..DevnetConfig::default()
    };
    let first = Devnet::start(config.clone()).await.expect("first start");
    assert!(!first.datadir_is_temporary());
    let faucet = first.faucet_address().clone();
    first.mine(1).await.expect("mine");
    let height = first.height().await.expect("height");
    first.shutdown().await.expect("shutdown");
    let log = std::fs::read_to_string(dir.path().join("chain/regtest/debug.log")).expect("log");
    assert!(
        log.trim_end().ends_with("Shutdown done"),
        "bitcoind stopped cleanly, not killed"
    );
    assert!(
        dir.path().join("chain/regtest").exists(),
        "the chain is kept"
    );

    let second = Devnet::start(config).await.expect("second start");
    assert_eq!(
        second.height().await.expect("height"),
        height,
        "no new initial blocks"
    );
    assert_eq!(second.faucet_address(), &faucet, "same faucet key");
    let key = TestKey::random();
    let txid = second
        .faucet(&key.address, Amount::from_sat(20_000))
        .await
        .expect("faucet");
    let client = esplora(&second);
    assert!(client.get_tx_info(&txid).await.expect("tx").is_some());
    second.shutdown().await.expect("shutdown");
}

async fn post(url: &str, body: Value) -> Value {
    let response = http().post(url).json(&body).send().await.expect("request");
    let status = response.status();
    let text = response.text().await.expect("body");
    assert!(status.is_success(), "POST {url} {body}: {status} {text}");
    serde_json::from_str(&text).expect("JSON reply")
}

/// What the test expects Esplora to know about one address.
#[derive(Default)]
struct Expected {
    outputs: Vec<(Txid, Amount, u32)>,
}

async fn check_address(devnet: &Devnet, client: &Esplora, address: &Address, expected: &Expected) {
    let stats = client.get_address_stats(address).await.expect("stats");
    let total: u64 = expected.outputs.iter().map(|(_, a, _)| a.to_sat()).sum();
    assert_eq!(
        stats.chain_stats.funded_txo_count as usize,
        expected.outputs.len()
    );
    assert_eq!(stats.chain_stats.funded_txo_sum, total);
    assert_eq!(stats.chain_stats.spent_txo_count, 0);
    assert_eq!(stats.mempool_stats.tx_count, 0);

    let utxos = client.get_address_utxos(address).await.expect("utxos");
    assert_eq!(utxos.len(), expected.outputs.len());
    let tip = devnet.height().await.expect("height").to_consensus_u32();
    for utxo in &utxos {
        let (_, amount, height) = expected
            .outputs
            .iter()
            .find(|(txid, _, _)| *txid == utxo.txid)
            .expect("an expected output");
        assert_eq!(utxo.value, *amount);
        assert_eq!(utxo.status.block_height, Some(*height));
        // bitcoind agrees it is unspent, with the same value, script and depth.
        let outpoint = OutPoint::new(utxo.txid, utxo.vout);
        let node = devnet
            .rpc()
            .get_tx_out(&outpoint, true)
            .await
            .expect("gettxout")
            .expect("unspent in bitcoind");
        assert_eq!(node.value, *amount);
        assert_eq!(node.script_pubkey, address.script_pubkey());
        assert_eq!(node.confirmations, tip - height + 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devnet_endpoints_keep_the_index_right_over_several_blocks() {
    let devnet = start().await;
    let client = esplora(&devnet);
    let base = devnet.esplora_url().to_owned();
    let keys: Vec<TestKey> = (0..3).map(|_| TestKey::random()).collect();
    let mut expected: HashMap<usize, Expected> = HashMap::new();

    // Three rounds of faucet payments, each mined in its own block (the last one by address).
    let rounds: [&[(usize, u64)]; 3] = [
        &[(0, 10_000), (1, 20_000)],
        &[(0, 30_000), (2, 40_000), (2, 41_000)],
        &[(1, 50_000)],
    ];
    let miner = TestKey::random();
    for (round, payments) in rounds.iter().enumerate() {
        let mut paid = Vec::new();
        for (who, sats) in payments.iter().copied() {
            let reply = post(
                &format!("{base}/devnet/faucet"),
                json!({"address": keys[who].address.to_string(), "sats": sats}),
            )
            .await;
            let txid: Txid = reply["txid"]
                .as_str()
                .expect("txid")
                .parse()
                .expect("a txid");
            paid.push((who, txid, Amount::from_sat(sats)));
        }
        let mempool = client.get_mempool_txids().await.expect("mempool");
        assert!(paid.iter().all(|(_, txid, _)| mempool.contains(txid)));
        let stats = client.get_mempool_stats().await.expect("mempool stats");
        assert_eq!(stats.count, paid.len());
        assert!(stats.total_fee > 0 && stats.vsize > 0);
        let recent = client.get_mempool_recent_txs().await.expect("recent");
        assert_eq!(recent.len(), paid.len());
        let body = if round == 2 {
            json!({"blocks": 2, "address": miner.address.to_string()})
        } else {
            json!({"blocks": 1})
        };
        let mined = post(&format!("{base}/devnet/mine"), body).await;
        let height = mined["height"].as_u64().expect("height") as u32;
        let hashes = mined["hashes"].as_array().expect("hashes");
        let first_height = height + 1 - hashes.len() as u32;
        for (who, txid, amount) in paid {
            expected
                .entry(who)
                .or_default()
                .outputs
                .push((txid, amount, first_height));
        }
        assert_eq!(client.get_height().await.expect("tip"), height);
        // The index's view of the block matches bitcoind's.
        let first_hash: bitcoin::BlockHash =
            hashes[0].as_str().expect("hash").parse().expect("hash");
        let block = devnet
            .rpc()
            .get_block(&first_hash)
            .await
            .expect("getblock")
            .expect("block");
        let txids: Vec<Txid> = block.txdata.iter().map(|t| t.compute_txid()).collect();
        assert_eq!(
            client.get_block_txids(&first_hash).await.expect("txids"),
            txids
        );
    }
    assert!(client
        .get_mempool_txids()
        .await
        .expect("mempool")
        .is_empty());
    for (who, exp) in &expected {
        check_address(&devnet, &client, &keys[*who].address, exp).await;
    }
    let miner_utxos = client
        .get_address_utxos(&miner.address)
        .await
        .expect("utxos");
    assert_eq!(
        miner_utxos.len(),
        2,
        "two coinbase outputs to the given address"
    );

    // Many payments in one block (chained and split faucet coins), then all confirm.
    let mut many = Vec::new();
    for _ in 0..30 {
        let to = TestKey::random().address;
        many.push(
            devnet
                .faucet(&to, Amount::from_sat(12_345))
                .await
                .expect("faucet"),
        );
    }
    devnet.mine(1).await.expect("mine");
    for txid in &many {
        assert!(client.get_tx_status(txid).await.expect("status").confirmed);
    }

    let estimates = client.get_fee_estimates().await.expect("fee estimates");
    assert!(estimates.get(&1).is_some_and(|rate| *rate > 0.0));
    assert!(estimates.contains_key(&1008));

    // Info, errors, and automine.
    let info: Value = http()
        .get(format!("{base}/devnet/info"))
        .send()
        .await
        .expect("info")
        .json()
        .await
        .expect("json");
    assert_eq!(info["network"], "regtest");
    assert_eq!(
        info["tip"]["height"].as_u64(),
        Some(u64::from(client.get_height().await.expect("tip")))
    );
    let missing = http()
        .get(format!("{base}/tx/{}", "11".repeat(32)))
        .send()
        .await
        .expect("request");
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.text().await.expect("text"), "Transaction not found");
    let garbage = http()
        .post(format!("{base}/tx"))
        .body("zz")
        .send()
        .await
        .expect("request");
    assert_eq!(garbage.status(), 400);
    let bad_address = http()
        .get(format!("{base}/address/nope/utxo"))
        .send()
        .await
        .expect("request");
    assert_eq!(bad_address.status(), 400);
    let cors = http()
        .get(format!("{base}/blocks/tip/height"))
        .header("Origin", "http://127.0.0.1:8080")
        .send()
        .await
        .expect("request");
    assert!(cors.headers().contains_key("access-control-allow-origin"));

    let before = client.get_height().await.expect("tip");
    post(&format!("{base}/devnet/automine"), json!({"seconds": 1})).await;
    eventually("an automined block", 10, || async {
        (client.get_height().await.ok()? > before).then_some(())
    })
    .await;
    post(&format!("{base}/devnet/automine"), json!({"seconds": 0})).await;

    devnet.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_follows_a_reorg() {
    let devnet = start().await;
    let client = esplora(&devnet);
    let key = TestKey::random();
    let txid = devnet
        .faucet(&key.address, Amount::from_sat(70_000))
        .await
        .expect("faucet");
    let stale = devnet.mine(1).await.expect("mine")[0];
    let height = client.get_height().await.expect("tip");
    let status = client.get_tx_status(&txid).await.expect("status");
    assert_eq!(status.block_hash, Some(stale));

    // Disconnect the block: the payment goes back to the mempool.
    let _: Value = devnet
        .rpc()
        .call("invalidateblock", &[json!(stale)])
        .await
        .expect("invalidateblock");
    devnet.sync().await.expect("sync");
    assert_eq!(client.get_height().await.expect("tip"), height - 1);
    assert!(!client.get_tx_status(&txid).await.expect("status").confirmed);
    let utxos = client.get_address_utxos(&key.address).await.expect("utxos");
    assert_eq!(utxos.len(), 1);
    assert!(!utxos[0].status.confirmed);

    // A longer replacement chain confirms it again, in a different block.
    // (Paying another address, so the new block cannot equal the invalidated one.)
    let other = TestKey::random().address;
    let fresh = devnet.mine_to(&other, 2).await.expect("mine");
    assert_eq!(client.get_height().await.expect("tip"), height + 1);
    let status = client.get_tx_status(&txid).await.expect("status");
    assert_eq!(status.block_height, Some(height));
    assert_eq!(status.block_hash, Some(fresh[0]));
    assert!(
        !client
            .get_block_status(&stale)
            .await
            .expect("status")
            .in_best_chain
    );
    let stats = client.get_address_stats(&key.address).await.expect("stats");
    assert_eq!(stats.chain_stats.funded_txo_count, 1);
    assert_eq!(stats.chain_stats.tx_count, 1);

    devnet.shutdown().await.expect("clean shutdown");
}
