//! Payments benchmark: N native wallets in one factory of a real LSP process, over real
//! WebSockets on a real regtest node, pay each other as fast as they can.
//!
//! `cargo bench -p lsp-server --bench payments -- <N>` prints one line of `key=value` figures:
//!
//! - `payments`: how many (every wallet pays `max(200 / N, 4)` random others in a row, all
//!   wallets at once);
//! - `per_s`: payments completed per second of wall time (first payment sent to last
//!   preimage received by its payer);
//! - `p50_ms`, `p99_ms`: one payment's latency as its payer sees it (the `pay` call: HTLC
//!   offered, committed, forwarded, committed, fulfilled, preimage back);
//! - `lsp_peak_mb`: the LSP process's peak resident memory;
//! - `lsp_cpu_ms`, `wallets_cpu_ms`: CPU time per payment of the LSP process and of this
//!   process (every wallet), while paying;
//! - `lsp_core_per_s`: payments per second one core of LSP CPU carries (`1000 / lsp_cpu_ms`):
//!   the LSP's own capacity, with wallets on their users' devices rather than beside it;
//! - `stored_changes`, `stored_changes_mb`: the channel changes the LSP has stored by the end
//!   (rows and JSON size), which a restart replays;
//! - `restart_ms`: the LSP killed and started again on its data dir, until it answers (it
//!   restores every factory and channel first).
//!
//! Each wallet's invoices are made by the payee's own client just before each payment, so the
//! figure includes invoice signing and parsing. Balances are checked at the end: every sat is
//! a balance or a fee.

mod support;
#[path = "../tests/common/swarm.rs"]
mod swarm;

use std::time::{Duration, Instant};

use bitcoin::Amount;
use devnet::{Devnet, DevnetConfig};
use futures::future::join_all;
use rand::{Rng, SeedableRng};
use support::{funded, leaf, start_client, wait, Lsp};
use swarm::ClientSpec;
use wallet::pay::{MemoryPayStore, PayHandle};

const FAUCET: u64 = 20_000;

fn main() {
    support::block_on(run(support::arg_n(2)));
}

async fn run(n: usize) {
    let devnet = Devnet::start(DevnetConfig::default())
        .await
        .expect("devnet starts (is bitcoind built? see devnet's docs)");
    let data = tempfile::tempdir().expect("temp dir");
    let funds = Amount::from_sat(n as u64 * 150_000 + 1_000_000);
    let mut lsp = Lsp::start(
        &devnet,
        data.path(),
        funds,
        n,
        &["--faucet-max-sat", "20000"],
    )
    .await;

    // One factory of N.
    let storage = tempfile::tempdir().expect("temp dir");
    let config = lsp.swarm_config(&devnet, storage.path());
    let spec = ClientSpec {
        channel: Amount::from_sat(100_000),
        liquidity: Amount::from_sat(10_000),
        ..ClientSpec::honest()
    };
    let runs = funded(&devnet, swarm::spawn(&config, &vec![spec; n]), n).await;

    // A payment client per wallet, each with its first sats from the faucet.
    let mut handles: Vec<PayHandle> = Vec::with_capacity(n);
    for run in &runs {
        let (handle, _) = start_client(
            &devnet,
            &lsp,
            run.keys,
            vec![leaf(run)],
            MemoryPayStore::default(),
        );
        handles.push(handle);
    }
    for h in &handles {
        wait(h, |s| {
            s.channels.iter().all(|c| c.ready) && !s.channels.is_empty()
        })
        .await;
        h.faucet(Amount::from_sat(FAUCET)).await.expect("faucet");
    }
    eprintln!("channels open; faucet asked");
    // The faucet's sats pay each wallet's join fee.
    for h in &handles {
        wait(h, |s| {
            let join_fee: Amount = s.channels.iter().map(|c| c.join_fee.quoted()).sum();
            s.balance == Amount::from_sat(FAUCET) - join_fee
        })
        .await;
    }

    eprintln!("faucet done; paying");
    // Everyone pays at once.
    let per_wallet = (200 / n).max(4);
    let cpu_before = (lsp.cpu_s(), support::cpu_s("self"));
    let started = Instant::now();
    let tasks = (0..n).map(|from| {
        let handles = handles.clone();
        tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(from as u64);
            let mut lat = Vec::with_capacity(per_wallet);
            for k in 0..per_wallet {
                let to = (from + rng.gen_range(1..n.max(2))) % n;
                let amount = Amount::from_sat(rng.gen_range(100..500));
                let invoice = handles[to]
                    .invoice(amount, &format!("bench {from}-{k}"))
                    .await
                    .expect("invoice");
                let t = Instant::now();
                handles[from]
                    .pay(&invoice.invoice)
                    .await
                    .expect("payment goes through");
                lat.push(t.elapsed());
            }
            lat
        })
    });
    let mut latencies: Vec<Duration> = join_all(tasks)
        .await
        .into_iter()
        .flat_map(|r| r.expect("payer task"))
        .collect();
    let wall = started.elapsed().as_secs_f64();
    let lsp_cpu = lsp.cpu_s() - cpu_before.0;
    let wallets_cpu = support::cpu_s("self") - cpu_before.1;
    latencies.sort();
    let count = latencies.len();
    let pct =
        |p: f64| latencies[((count as f64 * p) as usize).min(count - 1)].as_secs_f64() * 1000.0;

    // Every sat is somewhere: balances plus routing and join fees equal what the faucet gave.
    let mut total = Amount::ZERO;
    let mut fees = Amount::ZERO;
    for h in &handles {
        let s = wait(h, |s| s.channels.iter().all(|c| c.pending == 0)).await;
        total += s.balance;
        fees += s
            .payments
            .iter()
            .map(|p| match p.direction {
                // A liquidity price leaves the balance as a fee does.
                wallet::pay::Direction::Sent | wallet::pay::Direction::Liquidity => p.fee,
                wallet::pay::Direction::Received => p.join_fee,
            })
            .sum::<Amount>();
    }
    assert_eq!(
        total + fees,
        Amount::from_sat(FAUCET * n as u64),
        "balances reconcile"
    );
    // Start-up after this history: the LSP restores every channel from its stored changes
    // before it listens again.
    let peak_mb = lsp.peak_mb();
    let (changes, change_mb) = stored_changes(data.path());
    let restart = lsp.restart().await;
    println!(
        "n={n} payments={count} wall_s={wall:.2} per_s={:.1} p50_ms={:.0} p99_ms={:.0} \
         lsp_peak_mb={:.1} lsp_cpu_ms={:.2} wallets_cpu_ms={:.2} lsp_core_per_s={:.0} \
         stored_changes={changes} stored_changes_mb={change_mb:.1} restart_ms={:.0}",
        count as f64 / wall,
        pct(0.5),
        pct(0.99),
        peak_mb,
        lsp_cpu * 1000.0 / count as f64,
        wallets_cpu * 1000.0 / count as f64,
        count as f64 / lsp_cpu.max(f64::EPSILON),
        restart.as_secs_f64() * 1000.0,
    );
}

/// How many channel changes the LSP has stored, and their size in MB (what a restart replays).
fn stored_changes(data_dir: &std::path::Path) -> (u64, f64) {
    let db = rusqlite::Connection::open_with_flags(
        data_dir.join("lsp.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("the LSP's database");
    let (count, bytes): (i64, i64) = db
        .query_row(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(change)), 0) FROM channel_changes",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("counting stored changes");
    (count as u64, bytes as f64 / 1e6)
}
