//! Outside-payments benchmark: N native wallets in one factory of a real LSP process running its
//! Lightning node, and the real `ln-peer` binary (an outside LDK node with a public channel from
//! the LSP's node) standing for the rest of the Lightning Network, all on a regtest devnet.
//!
//! `cargo bench -p lsp-server --bench outside -- <N>` prints one line of `key=value` figures:
//!
//! - `out`, `out_per_s`, `out_p50_ms`: payments from the wallets to invoices of the outside node
//!   (every wallet pays `max(40 / N, 4)` in a row, all wallets at once): how many, per second of
//!   wall time, and one payment's latency as its payer sees it (its `pay` call: the leaf HTLC,
//!   the LSP's node paying the outside node, the preimage back);
//! - `in`, `in_per_s`, `in_p50_ms`: the outside node paying as many invoices of the wallets
//!   (held by the LSP's node; one sender per wallet, all at once): the outside node's view, from
//!   sending to its payment's success (the node holding it, the leaf HTLC, the wallet's
//!   preimage, the claim upstream);
//! - `lsp_peak_mb`: the LSP process's peak resident memory (its Lightning node included).
//!
//! Balances are checked at the end: every wallet holds what it received less what it paid.

mod support;
#[path = "../tests/common/swarm.rs"]
mod swarm;

use std::time::{Duration, Instant};

use bitcoin::Amount;
use devnet::{Devnet, DevnetConfig};
use futures::future::join_all;
use serde_json::{json, Value};
use support::{funded, leaf, start_client, wait, Lsp};
use swarm::ClientSpec;
use wallet::pay::{MemoryPayStore, PayHandle};

const FAUCET: u64 = 20_000;
const TOKEN: &str = "bench-admin-token";
const AMOUNT: u64 = 300;

fn main() {
    support::block_on(run(support::arg_n(2)));
}

fn free_addr() -> String {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .to_string()
}

async fn call(url: &str, body: Option<Value>) -> Value {
    let http = reqwest::Client::new();
    let request = match body {
        Some(b) => http.post(url).json(&b),
        None => http.get(url),
    };
    request
        .send()
        .await
        .expect("the outside node answers")
        .json()
        .await
        .expect("JSON")
}

fn p50(mut latencies: Vec<Duration>) -> f64 {
    latencies.sort();
    latencies[latencies.len() / 2].as_secs_f64() * 1000.0
}

async fn run(n: usize) {
    let devnet = Devnet::start(DevnetConfig::default())
        .await
        .expect("devnet starts (is bitcoind built? see devnet's docs)");
    let data = tempfile::tempdir().expect("temp dir");
    let funds = Amount::from_sat(n as u64 * 150_000 + 1_000_000);
    let ln_listen = free_addr();
    let lsp = Lsp::start(
        &devnet,
        data.path(),
        funds,
        n,
        &[
            "--faucet-max-sat",
            "20000",
            "--ln-listen",
            &ln_listen,
            "--admin-token",
            TOKEN,
        ],
    )
    .await;
    let token = data.path().join("bench.token");
    std::fs::write(&token, TOKEN).expect("token file");
    let peer_http = free_addr();
    let peer_url = format!("http://{peer_http}");
    let _peer = tokio::process::Command::new(env!("CARGO_BIN_EXE_ln-peer"))
        .arg("--esplora-url")
        .arg(devnet.esplora_url())
        .arg("--lsp-url")
        .arg(format!("http://127.0.0.1:{}", lsp.port))
        .arg("--lsp-admin-token")
        .arg(&token)
        .arg("--listen")
        .arg(free_addr())
        .arg("--http")
        .arg(&peer_http)
        .arg("--data-dir")
        .arg(data.path().join("peer"))
        .args(["--capacity-sat", "2000000", "--push-sat", "1000000"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the ln-peer binary starts");
    let started = Instant::now();
    loop {
        if let Ok(r) = reqwest::get(format!("{peer_url}/info")).await {
            if r.json::<Value>()
                .await
                .is_ok_and(|v| v["channel_ready"] == true)
            {
                break;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "the outside node's channel becomes ready"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!("outside channel ready");

    let storage = tempfile::tempdir().expect("temp dir");
    let config = lsp.swarm_config(&devnet, storage.path());
    let spec = ClientSpec {
        channel: Amount::from_sat(100_000),
        liquidity: Amount::from_sat(10_000),
        ..ClientSpec::honest()
    };
    let runs = funded(&devnet, swarm::spawn(&config, &vec![spec; n]), n).await;
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
    let mut start_balances = Vec::with_capacity(n);
    for h in &handles {
        let s = wait(h, |s| {
            let join_fee: Amount = s.channels.iter().map(|c| c.join_fee.quoted()).sum();
            s.balance == Amount::from_sat(FAUCET) - join_fee
        })
        .await;
        start_balances.push(s.balance);
    }
    eprintln!("wallets funded; paying out");

    // Out: every wallet pays the outside node at once.
    let per_wallet = (40 / n).max(4);
    let started = Instant::now();
    let tasks = handles.iter().cloned().enumerate().map(|(i, h)| {
        let peer_url = peer_url.clone();
        tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per_wallet);
            for k in 0..per_wallet {
                let made = call(
                    &format!("{peer_url}/invoice"),
                    Some(json!({ "amount_sat": AMOUNT, "description": format!("out {i}-{k}") })),
                )
                .await;
                let invoice = made["invoice"].as_str().expect("an invoice").to_string();
                let t = Instant::now();
                h.pay(&invoice).await.expect("the payment goes out");
                lat.push(t.elapsed());
            }
            lat
        })
    });
    let out: Vec<Duration> = join_all(tasks)
        .await
        .into_iter()
        .flat_map(|r| r.expect("payer task"))
        .collect();
    let out_wall = started.elapsed().as_secs_f64();
    eprintln!("paying in");

    // In: the outside node pays every wallet at once (one sender per wallet).
    let started = Instant::now();
    let tasks = handles.iter().cloned().enumerate().map(|(i, h)| {
        let peer_url = peer_url.clone();
        tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per_wallet);
            for k in 0..per_wallet {
                let record = h
                    .invoice(Amount::from_sat(AMOUNT), &format!("in {i}-{k}"))
                    .await
                    .expect("an invoice");
                let t = Instant::now();
                let paid = call(
                    &format!("{peer_url}/pay"),
                    Some(json!({ "invoice": record.invoice })),
                )
                .await;
                assert_eq!(paid["paid"], true, "{paid}");
                lat.push(t.elapsed());
            }
            lat
        })
    });
    let inc: Vec<Duration> = join_all(tasks)
        .await
        .into_iter()
        .flat_map(|r| r.expect("sender task"))
        .collect();
    let in_wall = started.elapsed().as_secs_f64();

    // Each wallet: what it started with, less what it paid out (amounts and fees), plus what
    // came in.
    for (h, start) in handles.iter().zip(start_balances) {
        let s = wait(h, |s| s.channels.iter().all(|c| c.pending == 0)).await;
        let fees: Amount = s
            .payments
            .iter()
            .filter(|p| p.direction == wallet::pay::Direction::Sent)
            .map(|p| p.fee)
            .sum();
        assert_eq!(
            s.balance + fees,
            start,
            "balances reconcile (as much in as out)"
        );
    }
    println!(
        "n={n} out={} out_per_s={:.1} out_p50_ms={:.0} in={} in_per_s={:.1} in_p50_ms={:.0} lsp_peak_mb={:.1}",
        out.len(),
        out.len() as f64 / out_wall,
        p50(out.clone()),
        inc.len(),
        inc.len() as f64 / in_wall,
        p50(inc.clone()),
        lsp.peak_mb(),
    );
}
