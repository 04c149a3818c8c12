//! A zero-fee v3 (TRUC) parent with a P2A anchor, bumped by a v3 child through
//! `POST /txs/package`: the parent alone is refused for its fee, the package is accepted, and
//! both confirm. Real Bitcoin Core policy (28+).

mod common;

use bitcoin::transaction::Version;
use bitcoin::Witness;
use bitcoin::{absolute, Amount, FeeRate, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut};
use common::{esplora, start, wait_for_output, TestKey};
use esplora_client::Error as EsploraError;

/// P2A's standard value in these tests (its dust limit).
const ANCHOR: Amount = Amount::from_sat(240);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_fee_truc_parent_goes_in_with_its_p2a_child() {
    let devnet = start().await;
    let client = esplora(&devnet);
    let key = TestKey::random();
    let coin = Amount::from_sat(50_000);

    let parent_funding = devnet.faucet(&key.address, coin).await.expect("faucet");
    let child_funding = devnet.faucet(&key.address, coin).await.expect("faucet");
    devnet.mine(1).await.expect("mine");
    let (parent_in, parent_prevout) = wait_for_output(&client, &key.address, parent_funding).await;
    let (child_in, child_prevout) = wait_for_output(&client, &key.address, child_funding).await;

    // Parent: v3, pays exactly zero fee, with a 240-sat P2A anchor.
    let p2a = ScriptBuf::new_p2a();
    assert_eq!(p2a.as_bytes(), [0x51, 0x02, 0x4e, 0x73], "OP_1 <0x4e73>");
    let mut parent = Transaction {
        version: Version(3),
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: parent_in,
            sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
            ..TxIn::default()
        }],
        output: vec![
            TxOut {
                value: coin - ANCHOR,
                script_pubkey: key.spk(),
            },
            TxOut {
                value: ANCHOR,
                script_pubkey: p2a.clone(),
            },
        ],
    };
    key.sign_key_path(&mut parent, 0, &[parent_prevout]);
    let parent_txid = parent.compute_txid();

    // Alone, it is refused for its fee: by POST /tx and by testmempoolaccept.
    match client.broadcast(&parent).await {
        Err(EsploraError::HttpResponse { status, message }) => {
            assert_eq!(status, 400);
            assert!(
                message.contains("min relay fee not met"),
                "reason: {message}"
            );
        }
        other => panic!("a zero-fee parent must be refused, got {other:?}"),
    }
    let verdict = devnet
        .rpc()
        .test_mempool_accept(std::slice::from_ref(&parent))
        .await
        .expect("testmempoolaccept");
    assert_eq!(verdict.len(), 1);
    assert!(!verdict[0].is_allowed());
    let reason = verdict[0].reject_reason.as_deref().unwrap_or_default();
    assert!(reason.contains("min relay fee not met"), "reason: {reason}");

    // Child: v3, spends the anchor (empty witness) and a confirmed coin, pays for both.
    let anchor_in = OutPoint::new(parent_txid, 1);
    let anchor_prevout = TxOut {
        value: ANCHOR,
        script_pubkey: p2a,
    };
    let unsigned_child = |fee: Amount| Transaction {
        version: Version(3),
        lock_time: absolute::LockTime::ZERO,
        input: vec![
            TxIn {
                previous_output: anchor_in,
                sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                ..TxIn::default()
            },
            TxIn {
                previous_output: child_in,
                sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                witness: Witness::from_slice(&[[0u8; 64]]),
                ..TxIn::default()
            },
        ],
        output: vec![TxOut {
            value: ANCHOR + coin - fee,
            script_pubkey: key.spk(),
        }],
    };
    let rate = FeeRate::from_sat_per_vb_u32(5);
    let package_vsize = parent.vsize() + unsigned_child(Amount::ZERO).vsize();
    let fee = rate.fee_vb(package_vsize as u64).expect("small fee");
    let mut child = unsigned_child(fee);
    key.sign_key_path(&mut child, 1, &[anchor_prevout, child_prevout]);
    assert!(
        child.input[0].witness.is_empty(),
        "P2A is spent with an empty witness"
    );
    let child_txid = child.compute_txid();

    let result = client
        .submit_package(&[parent.clone(), child.clone()], None, None)
        .await
        .expect("package accepted");
    assert_eq!(result.package_msg, "success");
    assert_eq!(result.tx_results.len(), 2);
    for (wtxid, tx) in [
        (parent.compute_wtxid(), &parent),
        (child.compute_wtxid(), &child),
    ] {
        let r = result.tx_results.get(&wtxid).expect("a result per wtxid");
        assert_eq!(r.txid, tx.compute_txid());
        assert!(r.error.is_none(), "{:?}", r.error);
    }
    let rpc = devnet.rpc();
    let entry = rpc
        .get_mempool_entry(&child_txid)
        .await
        .expect("getmempoolentry")
        .expect("child in the mempool");
    assert_eq!(entry.fees.base, fee);
    assert_eq!(entry.depends, [parent_txid]);
    assert!(rpc
        .get_raw_mempool()
        .await
        .expect("getrawmempool")
        .contains(&parent_txid));
    let anchor_out = rpc.get_tx_out(&anchor_in, false).await.expect("gettxout");
    assert_eq!(anchor_out, None, "the anchor is not a confirmed UTXO");
    assert_eq!(
        rpc.get_raw_transaction(&child_txid)
            .await
            .expect("getrawtransaction"),
        Some(child.clone())
    );
    let in_mempool = client.get_mempool_txids().await.expect("mempool");
    assert!(in_mempool.contains(&parent_txid) && in_mempool.contains(&child_txid));
    let parent_info = client
        .get_tx_info(&parent_txid)
        .await
        .expect("tx")
        .expect("known");
    assert_eq!(parent_info.fee(), Amount::ZERO);
    assert_eq!(parent_info.version, 3);

    let mined = devnet.mine(1).await.expect("mine");
    let height = devnet.height().await.expect("height").to_consensus_u32();
    for txid in [parent_txid, child_txid] {
        let status = client.get_tx_status(&txid).await.expect("status");
        assert!(status.confirmed, "{txid} confirmed");
        assert_eq!(status.block_height, Some(height));
        assert_eq!(status.block_hash, Some(mined[0]));
    }
    let anchor_spend = client
        .get_output_status(&parent_txid, 1)
        .await
        .expect("outspend")
        .expect("known output");
    assert_eq!(anchor_spend.txid, Some(child_txid));
    assert_eq!(anchor_spend.vin, Some(0));

    devnet.shutdown().await.expect("clean shutdown");
}
