//! The real `lsp-server` process is killed with SIGKILL at each step of a migration and started
//! again on the same data dir, with two real wallets moving from factory A into factory B. After
//! each restart nothing is lost or counted twice: each wallet holds, across A and B, exactly what
//! it held before; the moves complete when the wallets try again; and A is closed by exactly one
//! key-path transaction, the one the LSP stored (nothing is signed twice).

mod common;

use std::time::{Duration, Instant};

use bitcoin::Amount;
use common::pay::{funded_factory_of, leaf_of, start_payer_at, Payer};
use common::process::{free_port, fund, message, swarm_config, LspProcess};
use common::swarm::{self, ClientSpec};
use devnet::{Devnet, DevnetConfig};
use serde_json::Value;
use wallet::pay::MemoryPayStore;

/// Where the LSP is killed.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// A move's payment reached its payee (the payer's HTLC not settled yet).
    Delivered,
    /// The first key release was stored.
    Released,
    /// The close was signed and stored, not yet broadcast.
    CloseStored,
    /// The close was broadcast.
    CloseBroadcast,
}

impl Step {
    fn reached(self, v: &Value) -> bool {
        message(v)
            == match self {
                Step::Delivered => "payment delivered",
                Step::Released => "factory key released: the wallet moved out",
                Step::CloseStored => "every member left: closing the factory by key path",
                Step::CloseBroadcast => "factory close broadcast",
            }
    }
}

fn spec() -> ClientSpec {
    ClientSpec {
        channel: Amount::from_sat(60_000),
        liquidity: Amount::from_sat(10_000),
        ..ClientSpec::honest()
    }
}

/// The stored closes: (factory, txid).
fn closes(data_dir: &std::path::Path) -> Vec<(u64, String)> {
    let db = rusqlite::Connection::open(data_dir.join("lsp.sqlite")).expect("open db");
    let mut stmt = db
        .prepare("SELECT factory, txid FROM factory_closes ORDER BY factory")
        .expect("query");
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("rows");
    rows.map(|r| r.expect("row")).collect()
}

/// What a wallet holds in channels `a` and `b` (balances with nothing in flight), if settled.
async fn holdings(p: &Payer) -> Option<(Amount, Amount, bool)> {
    let s = p.handle.snapshot().await.ok()?;
    let a = s
        .channels
        .iter()
        .find(|c| c.channel == p.leaves[0].channel)?;
    let b = s
        .channels
        .iter()
        .find(|c| c.channel == p.leaves[1].channel)?;
    (a.pending == 0 && b.pending == 0).then_some((a.balance, b.balance, a.closed.is_some()))
}

async fn kill_at(devnet: &Devnet, step: Step) {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let storage = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let ws = format!("ws://127.0.0.1:{port}/ws");
    let lsp = LspProcess::start(devnet, data_dir.path(), port, 2).await;
    fund(devnet, port).await;
    let config = swarm_config(devnet, port, &storage.path().join("a"));
    let runs_a = funded_factory_of(devnet, swarm::spawn(&config, &[spec(); 2]), 2).await;
    let mut balances = Vec::new();
    let mut stores = Vec::new();
    for run in &runs_a {
        let store = MemoryPayStore::default();
        let leaves = vec![leaf_of(run)];
        let mut p = start_payer_at(&ws, devnet.esplora_url(), run.keys, leaves, store.clone());
        p.ready(30).await;
        balances.push(p.faucet(Amount::from_sat(20_000), 30).await);
        p.handle.stop();
        let _ = p.task.await;
        stores.push(store);
    }
    let config = swarm_config(devnet, port, &storage.path().join("b"));
    let keyed: Vec<_> = runs_a.iter().map(|r| (spec(), r.keys)).collect();
    let runs_b = funded_factory_of(devnet, swarm::spawn_as(&config, &keyed), 2).await;
    let funding_a = leaf_of(&runs_a[0]).path.funding_outpoint();
    let mut payers: Vec<Payer> = runs_a
        .iter()
        .zip(&runs_b)
        .zip(&stores)
        .map(|((a, b), store)| {
            let leaves = vec![leaf_of(a), leaf_of(b)];
            start_payer_at(&ws, devnet.esplora_url(), a.keys, leaves, store.clone())
        })
        .collect();
    for p in &mut payers {
        p.ready(30).await;
    }

    // Both move at once; the LSP dies at `step`, whatever the moves answered by then.
    for p in &payers {
        let (handle, from, to) = (p.handle.clone(), p.leaves[0].channel, p.leaves[1].channel);
        tokio::spawn(async move { handle.migrate(from, to).await });
    }
    lsp.wait_log(&format!("{step:?}"), 1, |v| step.reached(v))
        .await;
    lsp.kill().await;
    eprintln!(
        "{step:?}: killed; stored closes {:?}",
        closes(data_dir.path())
    );
    let lsp = LspProcess::start(devnet, data_dir.path(), port, 2).await;

    // Every wallet ends with everything in B, trying again until it has; never more or less.
    let deadline = Instant::now() + Duration::from_secs(90);
    for (i, p) in payers.iter().enumerate() {
        loop {
            if let Some((a, b, a_closed)) = holdings(p).await {
                assert_eq!(
                    a + b,
                    balances[i],
                    "{step:?}: wallet {i} holds {a} in A and {b} in B"
                );
                if a == Amount::ZERO && a_closed {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "{step:?}: wallet {i} ends moved");
            let (from, to) = (p.leaves[0].channel, p.leaves[1].channel);
            let tried = tokio::time::timeout(Duration::from_secs(20), p.handle.migrate(from, to));
            if let Ok(Err(e)) = tried.await {
                eprintln!("{step:?}: wallet {i}: {e}; trying again");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }

    // A closes by the one stored transaction.
    let left = deadline.saturating_duration_since(Instant::now());
    let spender = common::chain::spent_by(devnet.esplora_url(), funding_a, left)
        .await
        .compute_txid();
    let stored = closes(data_dir.path());
    let a_factory = leaf_of(&runs_a[0]).channel.factory.0;
    assert_eq!(
        stored,
        vec![(a_factory, spender.to_string())],
        "{step:?}: one close stored, and it is the one on chain"
    );
    devnet.mine(1).await.expect("mine");
    for p in payers {
        p.handle.stop();
        let _ = p.task.await;
    }
    lsp.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_every_migration_step_loses_nothing_and_signs_one_close() {
    let devnet = Devnet::start(DevnetConfig::default())
        .await
        .expect("devnet starts");
    for step in [
        Step::Delivered,
        Step::Released,
        Step::CloseStored,
        Step::CloseBroadcast,
    ] {
        let started = Instant::now();
        kill_at(&devnet, step).await;
        eprintln!("{step:?}: passed in {:?}", started.elapsed());
    }
}
