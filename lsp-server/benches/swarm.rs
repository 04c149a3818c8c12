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

mod support;
#[path = "../tests/common/swarm.rs"]
mod swarm;

use std::time::{Duration, Instant};

use bitcoin::Amount;
use devnet::{Devnet, DevnetConfig};
use shared::ceremony::ClientOutcome;
use support::{status_mb, Lsp};
use swarm::ClientSpec;
use wallet::session::SessionEvent;

fn main() {
    support::block_on(run(support::arg_n(8)));
}

async fn run(n: usize) {
    let devnet = Devnet::start(DevnetConfig::default())
        .await
        .expect("devnet starts (is bitcoind built? see devnet's docs)");
    let data = tempfile::tempdir().expect("temp dir");

    let funds = Amount::from_sat(n as u64 * 50_000 + 1_000_000);
    let lsp = Lsp::start(&devnet, data.path(), funds, n, &[]).await;

    let storage = tempfile::tempdir().expect("temp dir");
    let config = lsp.swarm_config(&devnet, storage.path());
    let rss_before = status_mb("self", "VmRSS:");
    let mut clients = swarm::spawn(&config, &vec![ClientSpec::honest(); n]);
    let all_stored = |log: &[(usize, Instant, SessionEvent)]| (0..n).all(|i| swarm::stored(log, i));
    let done = clients
        .wait_for(Duration::from_secs(1800), all_stored)
        .await;
    let rss_during = status_mb("self", "VmRSS:");
    let lsp_peak_mb = lsp.peak_mb();
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
