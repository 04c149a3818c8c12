//! Unit tests of the wallet that need no network (Esplora is never contacted).

use bitcoin::block::{Header, Version as BlockVersion};
use bitcoin::blockdata::constants::genesis_block;
use bitcoin::hashes::Hash;
use bitcoin::transaction::Version;
use bitcoin::{
    absolute, Amount, Block, CompactTarget, FeeRate, Network, OutPoint, ScriptBuf, Sequence,
    Transaction, TxIn, TxMerkleNode, TxOut, Witness,
};

use super::seed::SEED_FILE;
use super::store::DB_FILE;
use super::{LspWallet, WalletError};

/// Never contacted: these tests stay offline.
const NO_ESPLORA: &str = "http://127.0.0.1:9";

async fn open(dir: &std::path::Path) -> LspWallet {
    LspWallet::open(dir, Network::Regtest, NO_ESPLORA)
        .await
        .expect("open wallet")
}

/// A transaction from nowhere paying `value` to `script`.
fn payment(script: ScriptBuf, value: Amount) -> Transaction {
    Transaction {
        version: Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::new(Hash::from_byte_array([7; 32]), 0),
            script_sig: ScriptBuf::new(),
            sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
            witness: Witness::new(),
        }],
        output: vec![TxOut {
            value,
            script_pubkey: script,
        }],
    }
}

#[tokio::test]
async fn seed_is_private_and_reused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = open(dir.path()).await.next_address().expect("address");
    let seed_path = dir.path().join(SEED_FILE);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&seed_path)
            .expect("seed")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let text = std::fs::read_to_string(&seed_path).expect("seed");
    assert_eq!(text.trim().len(), 64);
    // Same seed, same database: the next address follows the first.
    let wallet = open(dir.path()).await;
    let second = wallet.next_address().expect("address");
    assert_ne!(first, second);
    assert!(first.to_string().starts_with("bcrt1p"), "taproot address");
    assert!(!format!("{wallet:?}").contains(text.trim()));
}

#[tokio::test]
async fn refuses_bad_or_missing_seed() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join(SEED_FILE), "not hex").expect("write");
    let err = LspWallet::open(dir.path(), Network::Regtest, NO_ESPLORA)
        .await
        .expect_err("bad seed");
    assert!(matches!(err, WalletError::BadSeed { .. }), "{err}");

    let dir = tempfile::tempdir().expect("temp dir");
    drop(open(dir.path()).await);
    std::fs::remove_file(dir.path().join(SEED_FILE)).expect("remove seed");
    let err = LspWallet::open(dir.path(), Network::Regtest, NO_ESPLORA)
        .await
        .expect_err("database without seed");
    assert!(matches!(err, WalletError::SeedMissing { .. }), "{err}");
    assert!(err.to_string().contains("restore the seed"), "{err}");
}

#[tokio::test]
async fn refuses_other_network() {
    let dir = tempfile::tempdir().expect("temp dir");
    drop(open(dir.path()).await);
    let err = LspWallet::open(dir.path(), Network::Signet, NO_ESPLORA)
        .await
        .expect_err("regtest data dir opened as signet");
    assert!(matches!(err, WalletError::Mismatch { .. }), "{err}");
}

#[tokio::test]
async fn refuses_other_seed_without_showing_keys() {
    let dir = tempfile::tempdir().expect("temp dir");
    drop(open(dir.path()).await);
    std::fs::write(dir.path().join(SEED_FILE), hex::encode([3u8; 32])).expect("write");
    let err = LspWallet::open(dir.path(), Network::Regtest, NO_ESPLORA)
        .await
        .expect_err("another seed");
    assert!(matches!(err, WalletError::Mismatch { .. }), "{err}");
    let text = err.to_string();
    assert!(!text.contains("tprv") && !text.contains("xprv"), "{text}");
}

#[tokio::test]
async fn state_survives_reopen_and_compacts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let wallet = open(dir.path()).await;
    let address = wallet.next_address().expect("address");
    let confirmed = payment(address.script_pubkey(), Amount::from_sat(50_000));
    let mut pending = payment(address.script_pubkey(), Amount::from_sat(20_000));
    pending.input[0].previous_output.vout = 1;
    {
        let mut state = wallet.lock().expect("lock");
        let genesis = genesis_block(Network::Regtest).block_hash();
        let block = Block {
            header: Header {
                version: BlockVersion::TWO,
                prev_blockhash: genesis,
                merkle_root: TxMerkleNode::all_zeros(),
                time: 1_700_000_000,
                bits: CompactTarget::from_consensus(0x207f_ffff),
                nonce: 0,
            },
            txdata: vec![confirmed],
        };
        state.wallet.apply_block(&block, 1).expect("block connects");
        state
            .wallet
            .apply_unconfirmed_txs([(pending, 1_700_000_100)]);
        state.persist().expect("persist");
    }
    let before = wallet.balance();
    assert_eq!(before.confirmed, Amount::from_sat(50_000));
    assert_eq!(before.pending, Amount::from_sat(20_000));
    drop(wallet);

    let wallet = open(dir.path()).await;
    assert_eq!(wallet.balance(), before);
    assert_eq!(wallet.lock().expect("lock").store.rows().expect("rows"), 1);
    assert!(dir.path().join(DB_FILE).exists());
}

#[tokio::test]
async fn empty_wallet_says_where_to_send_funds() {
    let dir = tempfile::tempdir().expect("temp dir");
    let wallet = open(dir.path()).await;
    let out = TxOut {
        value: Amount::from_sat(1_000_000),
        script_pubkey: wallet.next_address().expect("address").script_pubkey(),
    };
    let err = wallet
        .fund(&[out], FeeRate::from_sat_per_vb_u32(2))
        .expect_err("nothing to spend");
    let WalletError::InsufficientFunds {
        available, address, ..
    } = &err
    else {
        panic!("unexpected error: {err}");
    };
    assert_eq!(*available, Amount::ZERO);
    let text = err.to_string();
    assert!(text.starts_with("wallet has 0 sats, needs "), "{text}");
    assert!(
        text.ends_with(&format!("send funds to {address}")),
        "{text}"
    );

    let err = wallet
        .fund(&[], FeeRate::from_sat_per_vb_u32(2))
        .expect_err("no outputs");
    assert!(matches!(err, WalletError::NoOutputs), "{err}");
}
