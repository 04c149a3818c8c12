//! The LSP's on-chain wallet against a real bitcoind (regtest) and the devnet's Esplora API:
//! receiving, funding, confirming, persistence across restarts, RBF bumps, missing funds.

use std::path::Path;
use std::sync::Arc;

use bitcoin::secp256k1::{rand, Keypair, Secp256k1};
use bitcoin::{Amount, FeeRate, Network, ScriptBuf, Transaction, TxOut, Txid};
use devnet::{Devnet, DevnetConfig};
use lsp_server::wallet::{Balance, LspWallet, TxStatus, WalletError};

const FUNDED: Amount = Amount::from_sat(5_000_000);
const PAYMENT: Amount = Amount::from_sat(1_000_000);

async fn devnet() -> Devnet {
    Devnet::start(DevnetConfig::default())
        .await
        .expect("start devnet (is bitcoind built? see devnet's docs)")
}

async fn open(dir: &Path, devnet: &Devnet) -> LspWallet {
    LspWallet::open(dir, Network::Regtest, devnet.esplora_url())
        .await
        .expect("open wallet")
}

/// A fresh P2TR output that belongs to nobody in this test.
fn p2tr_output(value: Amount) -> TxOut {
    let secp = Secp256k1::new();
    let key = Keypair::new(&secp, &mut rand::thread_rng());
    TxOut {
        value,
        script_pubkey: ScriptBuf::new_p2tr(&secp, key.x_only_public_key().0, None),
    }
}

/// Fee paid by a transaction that spends only wallet coins of total `spent`.
fn fee_of(tx: &Transaction, spent: Amount) -> Amount {
    let out: Amount = tx.output.iter().map(|o| o.value).sum();
    spent - out
}

fn sat_per_vb(fee: Amount, tx: &Transaction) -> f64 {
    fee.to_sat() as f64 / tx.vsize() as f64
}

/// Receives `FUNDED` on a fresh address and confirms it.
async fn fund_wallet(wallet: &LspWallet, devnet: &Devnet) {
    let address = wallet.next_address().expect("address");
    devnet.faucet(&address, FUNDED).await.expect("faucet");
    wallet.sync().await.expect("sync");
    assert_eq!(
        wallet.balance(),
        Balance {
            confirmed: Amount::ZERO,
            pending: FUNDED
        }
    );
    devnet.mine(1).await.expect("mine");
    wallet.sync().await.expect("sync");
    assert_eq!(
        wallet.balance(),
        Balance {
            confirmed: FUNDED,
            pending: Amount::ZERO
        }
    );
}

#[tokio::test]
async fn fund_broadcast_confirm_and_reopen() {
    let devnet = devnet().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let wallet = open(dir.path(), &devnet).await;
    fund_wallet(&wallet, &devnet).await;

    let rate = wallet.fee_rate_estimate(6).await.expect("fee estimate");
    assert!(rate >= FeeRate::BROADCAST_MIN, "{rate:?}");
    assert!(rate <= FeeRate::from_sat_per_vb_u32(10), "{rate:?}");

    let out = p2tr_output(PAYMENT);
    let tx = wallet
        .fund(std::slice::from_ref(&out), FeeRate::from_sat_per_vb_u32(2))
        .expect("fund");
    assert!(tx.is_explicitly_rbf(), "funding transactions signal RBF");
    assert!(tx.output.contains(&out));
    assert_eq!(tx.output.len(), 2, "payment and change");
    let fee = fee_of(&tx, FUNDED);
    let rate = sat_per_vb(fee, &tx);
    assert!((2.0..2.5).contains(&rate), "fee rate {rate} sat/vB");
    let change = FUNDED - PAYMENT - fee;

    let txid = wallet.broadcast(&tx).await.expect("broadcast");
    assert_eq!(txid, tx.compute_txid());
    assert_eq!(
        wallet.tx_status(txid).await.expect("status"),
        TxStatus::Unconfirmed
    );
    assert_eq!(
        wallet.balance(),
        Balance {
            confirmed: Amount::ZERO,
            pending: change
        }
    );

    let tip = devnet.height().await.expect("height").to_consensus_u32();
    devnet.mine(1).await.expect("mine");
    wallet.sync().await.expect("sync");
    let status = wallet.tx_status(txid).await.expect("status");
    assert_eq!(status.confirmations(), 1);
    assert!(
        matches!(status, TxStatus::Confirmed { height, .. } if height.to_consensus_u32() == tip + 1)
    );
    let settled = Balance {
        confirmed: change,
        pending: Amount::ZERO,
    };
    assert_eq!(wallet.balance(), settled);
    drop(wallet);

    // Restart: the state comes back from disk before any sync, and a sync keeps it.
    let wallet = open(dir.path(), &devnet).await;
    assert_eq!(wallet.balance(), settled);
    devnet.mine(2).await.expect("mine");
    wallet.sync().await.expect("sync");
    assert_eq!(wallet.balance(), settled);
    assert_eq!(
        wallet
            .tx_status(txid)
            .await
            .expect("status")
            .confirmations(),
        3
    );
    let nobody = Txid::from_raw_hash(bitcoin::hashes::Hash::from_byte_array([9; 32]));
    assert_eq!(
        wallet.tx_status(nobody).await.expect("status"),
        TxStatus::Unknown
    );
    devnet.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn bump_fee_replaces_unconfirmed_funding() {
    let devnet = devnet().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let wallet = Arc::new(open(dir.path(), &devnet).await);
    fund_wallet(&wallet, &devnet).await;

    let out = p2tr_output(PAYMENT);
    let original = wallet
        .fund(std::slice::from_ref(&out), FeeRate::from_sat_per_vb_u32(2))
        .expect("fund");
    let original_txid = wallet.broadcast(&original).await.expect("broadcast");
    // The sync future is Send: an axum handler or a background task can drive it.
    let syncing = Arc::clone(&wallet);
    tokio::spawn(async move { syncing.sync().await })
        .await
        .expect("join")
        .expect("sync");

    let err = wallet
        .bump_fee(original_txid, FeeRate::from_sat_per_vb_u32(2))
        .expect_err("same rate cannot replace");
    assert!(
        matches!(
            err,
            WalletError::FeeRateTooLow { .. } | WalletError::FeeTooLow { .. }
        ),
        "{err}"
    );

    let replacement = wallet
        .bump_fee(original_txid, FeeRate::from_sat_per_vb_u32(5))
        .expect("bump");
    let replacement_txid = replacement.compute_txid();
    assert_ne!(replacement_txid, original_txid);
    assert!(replacement.output.contains(&out), "pays the same output");
    assert!(replacement.is_explicitly_rbf());
    assert_eq!(
        replacement.input[0].previous_output,
        original.input[0].previous_output
    );
    let old_fee = fee_of(&original, FUNDED);
    let new_fee = fee_of(&replacement, FUNDED);
    assert!(new_fee > old_fee, "{new_fee} > {old_fee}");
    assert!(sat_per_vb(new_fee, &replacement) >= 5.0);
    // The wallet already counts the replacement's change, not the original's.
    assert_eq!(wallet.balance().total(), FUNDED - PAYMENT - new_fee);

    wallet
        .broadcast(&replacement)
        .await
        .expect("broadcast replacement");
    assert_eq!(
        wallet.tx_status(original_txid).await.expect("status"),
        TxStatus::Unknown,
        "the mempool dropped the original"
    );
    devnet.mine(1).await.expect("mine");
    wallet.sync().await.expect("sync");
    assert_eq!(
        wallet
            .tx_status(replacement_txid)
            .await
            .expect("status")
            .confirmations(),
        1
    );
    assert_eq!(
        wallet.balance(),
        Balance {
            confirmed: FUNDED - PAYMENT - new_fee,
            pending: Amount::ZERO
        }
    );
    let err = wallet
        .bump_fee(replacement_txid, FeeRate::from_sat_per_vb_u32(10))
        .expect_err("confirmed");
    assert!(
        matches!(err, WalletError::AlreadyConfirmed(t) if t == replacement_txid),
        "{err}"
    );
    devnet.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn insufficient_funds_says_how_much_and_where() {
    let devnet = devnet().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let wallet = open(dir.path(), &devnet).await;
    let small = Amount::from_sat(100_000);
    devnet
        .faucet(&wallet.next_address().expect("address"), small)
        .await
        .expect("faucet");
    devnet.mine(1).await.expect("mine");
    wallet.sync().await.expect("sync");
    assert_eq!(wallet.balance().confirmed, small);

    let out = p2tr_output(PAYMENT);
    let err = wallet
        .fund(std::slice::from_ref(&out), FeeRate::from_sat_per_vb_u32(2))
        .expect_err("not enough");
    let WalletError::InsufficientFunds {
        available,
        needed,
        address,
    } = &err
    else {
        panic!("unexpected error: {err}");
    };
    assert!(*available <= small, "{available}");
    assert!(*needed > PAYMENT, "{needed}");
    let text = err.to_string();
    assert_eq!(
        text,
        format!(
            "wallet has {} sats, needs {}; send funds to {address}",
            available.to_sat(),
            needed.to_sat()
        )
    );
    assert_eq!(wallet.balance().confirmed, small, "nothing was spent");

    // Doing what the message says works.
    devnet.faucet(address, PAYMENT * 2).await.expect("faucet");
    devnet.mine(1).await.expect("mine");
    wallet.sync().await.expect("sync");
    let tx = wallet
        .fund(&[out], FeeRate::from_sat_per_vb_u32(2))
        .expect("fund after topping up");
    wallet.broadcast(&tx).await.expect("broadcast");
    devnet.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn unbroadcast_funding_is_dropped_by_sync() {
    let devnet = devnet().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let wallet = open(dir.path(), &devnet).await;
    fund_wallet(&wallet, &devnet).await;

    let tx = wallet
        .fund(&[p2tr_output(PAYMENT)], FeeRate::from_sat_per_vb_u32(2))
        .expect("fund");
    assert!(
        wallet.balance().total() < FUNDED - PAYMENT,
        "coins reserved"
    );
    // Never broadcast: the next sync sees it missing and frees its coins.
    wallet.sync().await.expect("sync");
    assert_eq!(
        wallet.balance(),
        Balance {
            confirmed: FUNDED,
            pending: Amount::ZERO
        }
    );
    assert_eq!(
        wallet.tx_status(tx.compute_txid()).await.expect("status"),
        TxStatus::Unknown
    );
    devnet.shutdown().await.expect("shutdown");
}
