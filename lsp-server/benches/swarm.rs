//! Swarm benchmark: N native wallets (`wallet::session`, each with its own keys, storage
//! directory with fsync, and WebSocket) create one factory with a real LSP process over real
//! WebSockets, on a real regtest node.
//!
//! `cargo bench -p lsp-server --bench swarm -- <N>` prints one line of `key=value` figures:
//!
//! - `ceremony_s`: from the first wallet's join (its connection authenticated, the join request
//!   goes out next) to the last wallet holding its verified, stored path. No block is waited
//!   for inside that span: the funding is broadcast only after it.
//! - `lsp_peak_mb`: the LSP process's peak resident memory (`VmHWM` of
//!   `/proc/<pid>/status`); the LSP runs as its own process (`target/…/lsp-server`).
//! - `client_rss_mb`: growth of this process's resident memory while the N wallets ran,
//!   divided by N (they share one process and runtime, so this is an estimate of what one
//!   wallet needs); `path_kb`: the size of one wallet's stored path file.
//! - `open`: wallets whose factory confirmed afterwards (one block is mined, outside the
//!   timing).
//!
//! Run one N per invocation so the process figures mean something.

#[path = "../tests/common/swarm.rs"]
mod swarm;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bitcoin::{Amount, Network};
use devnet::{Devnet, DevnetConfig};
use lsp_server::wallet::LspWallet;
use shared::ceremony::ClientOutcome;
use swarm::{ClientSpec, SwarmConfig};
use wallet::session::SessionEvent;

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .and_then(|a| a.parse().ok())
        .unwrap_or(8);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run(n));
}

/// The LSP process; killed on drop.
struct Lsp(Child);

impl Drop for Lsp {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `field` (kB) of `/proc/<pid>/status`, in MB.
fn status_mb(pid: &str, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

async fn run(n: usize) {
    let devnet = Devnet::start(DevnetConfig::default())
        .await
        .expect("devnet starts (is bitcoind built? see devnet's docs)");
    let data = tempfile::tempdir().expect("temp dir");

    // Fund the LSP's wallet in its data dir before it starts.
    {
        let wallet = LspWallet::open(data.path(), Network::Regtest, devnet.esplora_url())
            .await
            .expect("LSP wallet");
        let address = wallet.next_address().expect("address");
        let amount = Amount::from_sat(n as u64 * 50_000 + 1_000_000);
        devnet.faucet(&address, amount).await.expect("faucet");
        devnet.mine(1).await.expect("mine");
        wallet.sync().await.expect("sync");
    }

    let port = free_port();
    let log = std::fs::File::create(data.path().join("lsp.log")).expect("log file");
    let child = Command::new(env!("CARGO_BIN_EXE_lsp-server"))
        .args([
            "--network",
            "regtest",
            "--esplora-url",
            devnet.esplora_url(),
        ])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(data.path())
        .args(["--factory-size", &n.to_string(), "--min-clients", "1"])
        .args(["--gather-secs", "900", "--round-timeout-secs", "600"])
        .args([
            "--reconnect-grace-secs",
            "120",
            "--funding-confirmations",
            "1",
        ])
        .args(["--chain-poll-ms", "200"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start the lsp-server binary");
    let lsp = Lsp(child);
    let pid = lsp.0.id().to_string();
    let health = format!("http://127.0.0.1:{port}/healthz");
    let started = Instant::now();
    while reqwest::get(&health).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the LSP starts"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let storage = tempfile::tempdir().expect("temp dir");
    let config = SwarmConfig {
        ws_url: format!("ws://127.0.0.1:{port}/ws"),
        esplora_url: devnet.esplora_url().to_string(),
        network: Network::Regtest,
        confirmations: 1,
        storage_root: storage.path().to_path_buf(),
        reconnect_attempts: 20,
        reconnect_delay: Duration::from_millis(500),
        grace_secs: 600,
    };
    let rss_before = status_mb("self", "VmRSS:");
    let mut clients = swarm::spawn(&config, &vec![ClientSpec::honest(); n]);
    let all_stored = |log: &[(usize, Instant, SessionEvent)]| (0..n).all(|i| swarm::stored(log, i));
    let done = clients
        .wait_for(Duration::from_secs(1800), all_stored)
        .await;
    let rss_during = status_mb("self", "VmRSS:");
    let lsp_peak_mb = status_mb(&pid, "VmHWM:");
    assert!(done, "every wallet stores its path");
    let first_join = clients
        .log
        .iter()
        .filter(|(_, _, e)| matches!(e, SessionEvent::Connected { .. }))
        .map(|(_, at, _)| *at)
        .min()
        .expect("wallets connected");
    let last_stored = clients
        .log
        .iter()
        .filter(|(_, _, e)| matches!(e, SessionEvent::PathStored { .. }))
        .map(|(_, at, _)| *at)
        .max()
        .expect("paths stored");
    let ceremony_s = last_stored.duration_since(first_join).as_secs_f64();
    // Where the time went: last join answer, first and last nonces sent (relative to the first join).
    let at = |pick: &dyn Fn(&SessionEvent) -> bool, last: bool| {
        let times = clients
            .log
            .iter()
            .filter(|(_, _, e)| pick(e))
            .map(|(_, t, _)| *t);
        let t = if last { times.max() } else { times.min() };
        t.map_or(0.0, |t| t.duration_since(first_join).as_secs_f64())
    };
    let joined = |e: &SessionEvent| {
        matches!(
            e,
            SessionEvent::Ceremony(shared::ceremony::ClientEvent::Joined { .. })
        )
    };
    let nonces = |e: &SessionEvent| {
        matches!(
            e,
            SessionEvent::Ceremony(shared::ceremony::ClientEvent::SessionStarted { .. })
        )
    };
    let phases = format!(
        "joined_s={:.3} first_nonces_s={:.3} last_nonces_s={:.3}",
        at(&joined, true),
        at(&nonces, false),
        at(&nonces, true)
    );
    let sessions = clients
        .log
        .iter()
        .filter(|(i, _, e)| {
            *i == 0
                && matches!(
                    e,
                    SessionEvent::Ceremony(shared::ceremony::ClientEvent::SessionStarted { .. })
                )
        })
        .count();

    // Outside the timing: confirm the funding and let every wallet see it.
    let heard = clients
        .wait_for(Duration::from_secs(300), |log| {
            swarm::broadcast_heard(log, 0..n)
        })
        .await;
    assert!(heard, "every wallet hears of the funding broadcast");
    devnet.mine(1).await.expect("mine");
    let (runs, _) = clients.finish(Duration::from_secs(600)).await;
    let open = runs
        .iter()
        .filter(|r| {
            matches!(
                r.result.as_ref().map(|r| &r.outcome),
                Ok(ClientOutcome::Open { .. })
            )
        })
        .count();
    let path_bytes: u64 = runs
        .iter()
        .filter_map(|r| std::fs::read_dir(&r.storage_dir).ok())
        .flat_map(|d| d.flatten())
        .filter(|e| e.file_name().to_string_lossy().starts_with("path-"))
        .filter_map(|e| e.metadata().ok().map(|m| m.len()))
        .sum();
    let client_rss_mb = (rss_during - rss_before).max(0.0) / n as f64;
    println!(
        "n={n} ceremony_s={ceremony_s:.3} sessions={sessions} lsp_peak_mb={lsp_peak_mb:.1} \
         client_rss_mb={client_rss_mb:.2} path_kb={:.1} open={open}/{n} {phases}",
        path_bytes as f64 / 1024.0 / n as f64,
    );
}
