//! Migration benchmark: N native wallets in a dying factory of a real LSP process move into a
//! new factory together, over real WebSockets on a real regtest node.
//!
//! `cargo bench -p lsp-server --bench migrate -- <N>` prints one line of `key=value` figures:
//!
//! - `join_s`: the new factory's creation ceremony, from the first join to the last wallet
//!   holding its verified, stored path (no block waits);
//! - `move_s`: every wallet moving its whole balance at once (`PayHandle::migrate`: a payment to
//!   itself into the new channel, then the old factory key), from the first move started to the
//!   last key released;
//! - `close_s`: from the last key released to the old factory's key-path close seen by Esplora;
//! - `lsp_peak_mb`: the LSP process's peak resident memory over the whole run.
//!
//! Every wallet's new channel is checked to hold exactly what its old one held.

mod support;
#[path = "../tests/common/swarm.rs"]
mod swarm;

use std::time::{Duration, Instant};

use bitcoin::Amount;
use devnet::{Devnet, DevnetConfig};
use futures::future::join_all;
use support::{funded, leaf, start_client, wait, Lsp};
use swarm::ClientSpec;
use wallet::pay::MemoryPayStore;

const FAUCET: u64 = 20_000;

fn main() {
    support::block_on(run(support::arg_n(8)));
}

fn spec() -> ClientSpec {
    ClientSpec {
        channel: Amount::from_sat(60_000),
        liquidity: Amount::from_sat(10_000),
        ..ClientSpec::honest()
    }
}

async fn run(n: usize) {
    let devnet = Devnet::start(DevnetConfig::default())
        .await
        .expect("devnet starts (is bitcoind built? see devnet's docs)");
    let data = tempfile::tempdir().expect("temp dir");
    let funds = Amount::from_sat(2 * n as u64 * 100_000 + 1_000_000);
    let lsp = Lsp::start(
        &devnet,
        data.path(),
        funds,
        n,
        &["--faucet-max-sat", "20000"],
    )
    .await;
    let storage = tempfile::tempdir().expect("temp dir");

    // The old factory, and each wallet's balance in it.
    let config = lsp.swarm_config(&devnet, &storage.path().join("old"));
    let old = funded(&devnet, swarm::spawn(&config, &vec![spec(); n]), n).await;
    let stores: Vec<MemoryPayStore> = (0..n).map(|_| MemoryPayStore::default()).collect();
    let mut balances = Vec::with_capacity(n);
    for (run, store) in old.iter().zip(&stores) {
        let (h, task) = start_client(&devnet, &lsp, run.keys, vec![leaf(run)], store.clone());
        wait(&h, |s| {
            s.channels.iter().all(|c| c.ready) && !s.channels.is_empty()
        })
        .await;
        h.faucet(Amount::from_sat(FAUCET)).await.expect("faucet");
        let s = wait(&h, |s| {
            s.balance > Amount::ZERO && s.channels[0].pending == 0
        })
        .await;
        balances.push(s.balance);
        h.stop();
        let _ = task.await;
    }
    eprintln!("old factory funded; balances in");

    // The new factory: the same wallets, new factory keys.
    let config = lsp.swarm_config(&devnet, &storage.path().join("new"));
    let keyed: Vec<_> = old.iter().map(|r| (spec(), r.keys)).collect();
    let started = Instant::now();
    let mut clients = swarm::spawn_as(&config, &keyed);
    let stored = clients
        .wait_for(Duration::from_secs(1200), |log| {
            (0..n).all(|i| swarm::stored(log, i))
        })
        .await;
    assert!(stored, "every wallet stores its new path");
    let join_s = started.elapsed().as_secs_f64();
    let new = funded(&devnet, clients, n).await;
    eprintln!("new factory funded");

    // Everyone moves at once.
    let mut handles = Vec::with_capacity(n);
    for ((o, nw), store) in old.iter().zip(&new).zip(&stores) {
        let leaves = vec![leaf(o), leaf(nw)];
        let (h, _) = start_client(&devnet, &lsp, o.keys, leaves, store.clone());
        wait(&h, |s| {
            s.channels.len() == 2 && s.channels.iter().all(|c| c.ready)
        })
        .await;
        handles.push(h);
    }
    let started = Instant::now();
    let moves = old.iter().zip(&new).zip(&handles).map(|((o, nw), h)| {
        let (h, from, to) = (h.clone(), leaf(o).channel, leaf(nw).channel);
        tokio::spawn(async move { h.migrate(from, to).await.expect("moved") })
    });
    let moved: Vec<Amount> = join_all(moves)
        .await
        .into_iter()
        .map(|r| r.expect("move task"))
        .collect();
    let move_s = started.elapsed().as_secs_f64();
    assert_eq!(moved, balances, "every balance moves whole");

    // The old factory closes by key path.
    let started = Instant::now();
    let funding = leaf(&old[0]).path.funding_outpoint();
    let esplora = esplora_client::Builder::new(devnet.esplora_url())
        .build_async()
        .expect("esplora");
    loop {
        let spent = esplora
            .get_output_status(&funding.txid, u64::from(funding.vout))
            .await
            .ok()
            .flatten()
            .is_some_and(|s| s.spent);
        if spent {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the old factory closes"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let close_s = started.elapsed().as_secs_f64();
    for (h, want) in handles.iter().zip(&balances) {
        let s = h.snapshot().await.expect("snapshot");
        let total: Amount = s.channels.iter().map(|c| c.balance).sum();
        assert_eq!(total, *want, "to the sat");
    }
    println!(
        "n={n} join_s={join_s:.2} move_s={move_s:.2} close_s={close_s:.2} lsp_peak_mb={:.1}",
        lsp.peak_mb()
    );
}
