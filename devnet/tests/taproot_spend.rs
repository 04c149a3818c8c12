//! A taproot key-path spend, end to end through esplora-client: fund from the faucet, spend,
//! broadcast, mine, and check status, outspends, address endpoints and proofs.

mod common;

use bitcoin::transaction::Version;
use bitcoin::{absolute, Amount, Sequence, Transaction, TxIn, TxOut};
use common::{esplora, start, wait_for_output, TestKey};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taproot_key_path_spend_confirms_and_is_indexed() {
    let devnet = start().await;
    let client = esplora(&devnet);
    let sender = TestKey::random();
    let receiver = TestKey::random();
    let funded = Amount::from_sat(100_000);
    let fee = Amount::from_sat(500);

    let fund_txid = devnet
        .faucet(&sender.address, funded)
        .await
        .expect("faucet pays");
    let (outpoint, prevout) = wait_for_output(&client, &sender.address, fund_txid).await;
    assert_eq!(prevout.value, funded);

    let mut spend = Transaction {
        version: Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: outpoint,
            sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
            ..TxIn::default()
        }],
        output: vec![TxOut {
            value: funded - fee,
            script_pubkey: receiver.spk(),
        }],
    };
    sender.sign_key_path(&mut spend, 0, &[prevout]);
    assert_eq!(spend.input[0].witness.len(), 1, "key path: one signature");
    let spend_txid = spend.compute_txid();
    client
        .broadcast(&spend)
        .await
        .expect("bitcoind accepts the spend");

    // Unconfirmed: in the mempool views, unconfirmed status, spent in the mempool.
    let status = client.get_tx_status(&spend_txid).await.expect("status");
    assert!(!status.confirmed);
    let mempool_txs = client
        .get_mempool_address_txs(&receiver.address)
        .await
        .expect("mempool txs");
    assert_eq!(
        mempool_txs.iter().map(|t| t.txid).collect::<Vec<_>>(),
        [spend_txid]
    );
    let outspend = client
        .get_output_status(&fund_txid, u64::from(outpoint.vout))
        .await
        .expect("outspend")
        .expect("known output");
    assert!(outspend.spent);
    assert_eq!(outspend.txid, Some(spend_txid));
    assert!(client
        .get_mempool_txids()
        .await
        .expect("txids")
        .contains(&spend_txid));

    let mined = devnet.mine(1).await.expect("mine");
    let height = devnet.height().await.expect("height").to_consensus_u32();
    assert_eq!(client.get_height().await.expect("tip height"), height);
    assert_eq!(client.get_tip_hash().await.expect("tip hash"), mined[0]);
    assert_eq!(
        client.get_block_hash(height).await.expect("block hash"),
        mined[0]
    );

    for txid in [fund_txid, spend_txid] {
        let status = client.get_tx_status(&txid).await.expect("status");
        assert!(status.confirmed, "{txid} confirmed");
        assert_eq!(status.block_height, Some(height));
        assert_eq!(status.block_hash, Some(mined[0]));
        assert!(status.block_time.is_some());
    }

    let outspend = client
        .get_output_status(&fund_txid, u64::from(outpoint.vout))
        .await
        .expect("outspend")
        .expect("known output");
    assert!(outspend.spent);
    assert_eq!(outspend.txid, Some(spend_txid));
    assert_eq!(outspend.vin, Some(0));
    let spend_status = outspend.status.expect("spend status");
    assert!(spend_status.confirmed);
    assert_eq!(spend_status.block_height, Some(height));
    let receiver_outspends = client
        .get_tx_outspends(&spend_txid)
        .await
        .expect("outspends");
    assert_eq!(receiver_outspends.len(), 1);
    assert!(!receiver_outspends[0].spent);

    // Address endpoints reflect both transactions.
    assert!(client
        .get_address_utxos(&sender.address)
        .await
        .expect("utxos")
        .is_empty());
    let stats = client
        .get_address_stats(&sender.address)
        .await
        .expect("stats");
    assert_eq!(stats.address, sender.address.to_string());
    assert_eq!(stats.chain_stats.funded_txo_count, 1);
    assert_eq!(stats.chain_stats.funded_txo_sum, funded.to_sat());
    assert_eq!(stats.chain_stats.spent_txo_count, 1);
    assert_eq!(stats.chain_stats.spent_txo_sum, funded.to_sat());
    assert_eq!(stats.chain_stats.tx_count, 2);
    assert_eq!(stats.mempool_stats.tx_count, 0);
    let history = client
        .get_address_txs(&sender.address, None)
        .await
        .expect("txs");
    let order: Vec<_> = history.iter().map(|t| t.txid).collect();
    assert_eq!(order, [spend_txid, fund_txid], "newest first");
    let after_first = client
        .get_address_txs(&sender.address, Some(spend_txid))
        .await
        .expect("txs page");
    assert_eq!(
        after_first.iter().map(|t| t.txid).collect::<Vec<_>>(),
        [fund_txid]
    );
    let by_script = client
        .scripthash_txs(&sender.spk(), None)
        .await
        .expect("scripthash txs");
    assert_eq!(by_script.iter().map(|t| t.txid).collect::<Vec<_>>(), order);
    let sh_stats = client
        .get_scripthash_stats(&sender.spk())
        .await
        .expect("sh stats");
    assert_eq!(sh_stats.chain_stats, stats.chain_stats);

    let utxos = client
        .get_address_utxos(&receiver.address)
        .await
        .expect("utxos");
    assert_eq!(utxos.len(), 1);
    assert_eq!((utxos[0].txid, utxos[0].vout), (spend_txid, 0));
    assert_eq!(utxos[0].value, funded - fee);
    assert!(utxos[0].status.confirmed);
    assert_eq!(utxos[0].status.block_height, Some(height));

    // The transaction as Esplora describes it.
    let info = client
        .get_tx_info(&spend_txid)
        .await
        .expect("tx")
        .expect("known tx");
    assert_eq!(info.fee(), fee);
    assert_eq!(info.to_tx(), spend);
    assert_eq!(
        info.previous_outputs(),
        vec![Some(TxOut {
            value: funded,
            script_pubkey: sender.spk(),
        })]
    );
    assert_eq!(
        client.get_tx(&spend_txid).await.expect("raw"),
        Some(spend.clone())
    );

    // Proofs and block data agree with the header.
    let header = client.get_header_by_hash(&mined[0]).await.expect("header");
    let txids = client.get_block_txids(&mined[0]).await.expect("txids");
    assert!(txids.contains(&spend_txid));
    let proof = client
        .get_merkle_proof(&spend_txid)
        .await
        .expect("proof")
        .expect("confirmed");
    assert_eq!(proof.block_height, height);
    assert_eq!(txids[proof.pos], spend_txid);
    let merkle_block = client
        .get_merkle_block(&spend_txid)
        .await
        .expect("merkleblock")
        .expect("confirmed");
    assert_eq!(merkle_block.header, header);
    let block = client
        .get_block_by_hash(&mined[0])
        .await
        .expect("raw block")
        .expect("known block");
    assert!(block.check_merkle_root());
    let block_status = client
        .get_block_status(&mined[0])
        .await
        .expect("block status");
    assert!(block_status.in_best_chain);
    assert_eq!(block_status.height, Some(height));
    assert_eq!(block_status.next_best, None);
    let infos = client.get_block_infos(None).await.expect("blocks");
    assert_eq!(infos[0].id, mined[0]);
    assert_eq!(infos[0].height, height);
    assert!(infos[0].tx_count >= 3, "coinbase, funding, spend");

    devnet.shutdown().await.expect("clean shutdown");
}
