//! The real `lsp-server` process killed with SIGKILL in the middle of a swap out (a wallet
//! sending from its channel to an on-chain address), then started again on the same data dir.
//!
//! The LSP has paid the swap's output and dies. While it is down the output confirms and the
//! wallet, which needs no provider for that, claims it to the address. The restarted LSP reads
//! the preimage from the claim and settles the wallet's HTLC once: the address holds what was
//! quoted, the wallet's balance fell by exactly the amount and the fee, and the LSP's rows say
//! the payment settled once.

mod common;

use std::time::Duration;

use bitcoin::secp256k1::{Secp256k1, SecretKey};
use bitcoin::{Address, Amount, Network};
use common::chain::{confirm_first_output, in_mempool, within};
use common::pay::{leaf_of, start_payer_at};
use common::process::{message, LspProcess, ProcessPair};
use common::swarm::ClientSpec;
use wallet::pay::{MemoryPayStore, PaymentStatus};

const SENT: u64 = 20_000;

fn spec() -> ClientSpec {
    ClientSpec {
        channel: Amount::from_sat(200_000),
        liquidity: Amount::from_sat(10_000),
        ..ClientSpec::honest()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_after_funding_the_swap_the_restarted_lsp_settles_from_the_claim() {
    let ProcessPair {
        devnet,
        lsp,
        data_dir,
        port,
        ws,
        runs,
        _storage,
        ..
    } = ProcessPair::start(spec()).await;
    let store = MemoryPayStore::default();
    let mut payer = start_payer_at(
        &ws,
        devnet.esplora_url(),
        runs[0].keys,
        vec![leaf_of(&runs[0])],
        store.clone(),
    );
    payer.ready(30).await;
    let arrived = payer.faucet(Amount::from_sat(40_000), 30).await;
    let secp = Secp256k1::new();
    let key = SecretKey::from_slice(&[0x71; 32]).expect("a valid secret");
    let to = Address::p2tr(
        &secp,
        key.x_only_public_key(&secp).0,
        None,
        Network::Regtest,
    );
    let quote = payer
        .handle
        .swap_quote(&to.to_string(), Amount::from_sat(SENT))
        .await
        .expect("quote");
    let handle = payer.handle.clone();
    let sending = {
        let to = to.to_string();
        tokio::spawn(async move {
            let quote = handle.swap_quote(&to, Amount::from_sat(SENT)).await?;
            handle.swap_out(&to, &quote).await
        })
    };

    // The LSP pays the output; once its funding is in the node's mempool, it dies.
    let funded = |v: &serde_json::Value| message(v) == "swap out: output funded";
    lsp.wait_log("the swap's funding", 1, funded).await;
    let outpoint = within(30, "the wallet hears where", || async {
        store
            .snapshot()
            .payments
            .into_iter()
            .find_map(|p| p.swap.and_then(|s| s.funded))
            .map(|f| f.outpoint)
    })
    .await;
    in_mempool(&devnet, outpoint.txid, "the funding is broadcast").await;
    lsp.kill().await;

    // Down: the output confirms, and the wallet claims it without the provider.
    devnet.mine(1).await.expect("mine");
    let claim = within(
        30,
        "the wallet claims while the provider is down",
        || async {
            store
                .snapshot()
                .payments
                .into_iter()
                .find_map(|p| p.swap.and_then(|s| s.claim))
        },
    )
    .await;
    assert_eq!(claim.input[0].previous_output, outpoint);

    // Back up: it settles from the claim it finds on chain.
    let lsp = LspProcess::start(&devnet, data_dir.path(), port, 2).await;
    let done = tokio::time::timeout(Duration::from_secs(60), sending)
        .await
        .expect("the swap completes after the restart")
        .expect("task")
        .expect("settled");
    assert_eq!(done.status, PaymentStatus::Complete);
    payer.balance_becomes(arrived - quote.total, 30).await;
    let paid = confirm_first_output(&devnet, &claim).await;
    assert_eq!(paid.script_pubkey, to.script_pubkey());
    assert_eq!(paid.value, quote.arrives);
    let db = rusqlite::Connection::open(data_dir.path().join("lsp.sqlite")).expect("db");
    let rows: Vec<(String, String)> = db
        .prepare(
            "SELECT p.status, s.state FROM payments p JOIN swaps s ON s.payment = p.id
             WHERE p.hash = ?1",
        )
        .expect("query")
        .query_map([done.hash.to_string()], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(rows, vec![("settled".to_string(), "claimed".to_string())]);
    let settled =
        |v: &serde_json::Value| message(v) == "swap out claimed: the wallet's HTLC is settled";
    lsp.wait_log("the settlement", 1, settled).await;
    lsp.kill().await;
}
