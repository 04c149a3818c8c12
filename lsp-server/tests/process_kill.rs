//! The real `lsp-server` process is killed with SIGKILL at each step of factory creation and
//! started again on the same data dir, with real wallets (native sessions over WebSockets) and
//! a real regtest node. After each restart every wallet ends the same way the LSP's database
//! says the factory ended: a funded factory and a verified path for everyone, or an aborted
//! ceremony whose funding transaction never reaches the chain. A kill while gathering loses
//! nothing at all: the wallets join again and the factory completes.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bitcoin::Amount;
use common::swarm::{self, ClientRun, ClientSpec, SwarmConfig};
use devnet::{Devnet, DevnetConfig};
use serde_json::Value;
use shared::ceremony::ClientOutcome;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use wallet::session::{DirStorage, Storage};

/// One run of the LSP binary, its JSON log lines collected as they come.
struct LspProcess {
    child: Child,
    logs: Arc<Mutex<Vec<Value>>>,
}

impl LspProcess {
    async fn start(devnet: &Devnet, data_dir: &Path, port: u16) -> LspProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_lsp-server"))
            .args(["--network", "regtest", "--log-format", "json"])
            .arg("--esplora-url")
            .arg(devnet.esplora_url())
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--admin-token", common::ADMIN_TOKEN])
            .args(["--factory-size", "4", "--min-clients", "4"])
            .args(["--gather-secs", "120", "--round-timeout-secs", "10"])
            .args([
                "--reconnect-grace-secs",
                "5",
                "--funding-confirmations",
                "1",
            ])
            .args(["--chain-poll-ms", "100"])
            .env("RUST_LOG", "info,lsp_server=debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("the lsp-server binary starts");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let sink = logs.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    sink.lock().unwrap_or_else(PoisonError::into_inner).push(v);
                }
            }
        });
        let health = format!("http://127.0.0.1:{port}/healthz");
        let deadline = Instant::now() + Duration::from_secs(30);
        while reqwest::get(&health).await.is_err() {
            assert!(Instant::now() < deadline, "the LSP answers on port {port}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        LspProcess { child, logs }
    }

    /// Waits until `count` log lines satisfy `matches`.
    async fn wait_log(&self, what: &str, count: usize, matches: impl Fn(&Value) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let seen = self
                .logs
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .filter(|v| matches(v))
                .count();
            if seen >= count {
                return;
            }
            assert!(Instant::now() < deadline, "the LSP logs {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// SIGKILL: no shutdown code runs.
    async fn kill(mut self) {
        self.child.start_kill().expect("SIGKILL");
        let status = self.child.wait().await.expect("the LSP exits");
        assert!(!status.success(), "killed, not exited: {status}");
    }
}

fn message(v: &Value) -> &str {
    v["fields"]["message"].as_str().unwrap_or_default()
}

/// Where the LSP is killed.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// Two of four members joined.
    Gathering,
    /// A signing round opened (`Nonces`, `PartialSigs` or `Ack`).
    Round(&'static str),
    /// The complete signature set was stored, just before the funding broadcast.
    Signed,
    /// The funding transaction was broadcast.
    Broadcast,
}

impl Step {
    fn reached(self, v: &Value) -> bool {
        match self {
            Step::Gathering => message(v) == "wallet joined",
            Step::Round(round) => {
                message(v) == "signing round opened" && v["fields"]["round"] == round
            }
            Step::Signed => {
                message(v) == "stored" && v["fields"]["what"] == "complete signature set"
            }
            Step::Broadcast => message(v) == "every member stored its path; funding broadcast",
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn db_state(data_dir: &Path) -> Vec<(u64, String)> {
    let db = rusqlite::Connection::open(data_dir.join("lsp.sqlite")).expect("open db");
    let mut stmt = db
        .prepare("SELECT id, state FROM factories ORDER BY id")
        .expect("query");
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("rows");
    rows.map(|r| r.expect("row")).collect()
}

async fn fund(devnet: &Devnet, port: u16) {
    let wallet = common::admin_get(&format!("http://127.0.0.1:{port}"), "/admin/wallet").await;
    let address: bitcoin::Address<bitcoin::address::NetworkUnchecked> = wallet["receive_address"]
        .as_str()
        .expect("an address")
        .parse()
        .expect("valid");
    devnet
        .faucet(&address.assume_checked(), Amount::from_sat(1_000_000))
        .await
        .expect("faucet");
    devnet.mine(1).await.expect("mine");
}

fn swarm_config(devnet: &Devnet, port: u16, storage: &Path) -> SwarmConfig {
    SwarmConfig {
        ws_url: format!("ws://127.0.0.1:{port}/ws"),
        esplora_url: devnet.esplora_url().to_string(),
        network: bitcoin::Network::Regtest,
        confirmations: 1,
        storage_root: storage.to_path_buf(),
        reconnect_attempts: 60,
        reconnect_delay: Duration::from_millis(250),
        grace_secs: 10,
    }
}

/// Kills the LSP at `step`, restarts it, and checks how every wallet ends.
async fn kill_at(devnet: &Devnet, step: Step) {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let storage = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let lsp = LspProcess::start(devnet, data_dir.path(), port).await;
    fund(devnet, port).await;

    // While gathering, only two wallets come before the kill; two more after the restart.
    let first = match step {
        Step::Gathering => 2,
        _ => 4,
    };
    let config = swarm_config(devnet, port, &storage.path().join("a"));
    let mut runs_a = swarm::spawn(&config, &vec![ClientSpec::honest(); first]);
    let count = if matches!(step, Step::Gathering) {
        2
    } else {
        1
    };
    lsp.wait_log(&format!("{step:?}"), count, |v| step.reached(v))
        .await;
    if matches!(step, Step::Gathering) {
        // The LSP logs a join before its answer reaches the wallet: wait for both answers, so
        // the kill finds both wallets joined (what this step is about).
        let joined = runs_a
            .wait_for(Duration::from_secs(30), |log| {
                (0..first).all(|index| {
                    log.iter().any(|(i, _, e)| {
                        *i == index
                            && matches!(
                                e,
                                wallet::session::SessionEvent::Ceremony(
                                    shared::ceremony::ClientEvent::Joined { .. }
                                )
                            )
                    })
                })
            })
            .await;
        assert!(joined, "both wallets hear they joined");
    }
    lsp.kill().await;
    let killed_state = db_state(data_dir.path());
    eprintln!("{step:?}: killed; stored factories {killed_state:?}");

    let lsp = LspProcess::start(devnet, data_dir.path(), port).await;
    let late = (first < 4).then(|| {
        let config = swarm_config(devnet, port, &storage.path().join("b"));
        swarm::spawn(&config, &vec![ClientSpec::honest(); 4 - first])
    });
    // Mine whenever a funding transaction is out, until every wallet's session has ended.
    let deadline = Instant::now() + Duration::from_secs(60);
    let ended = |swarm: Option<&swarm::Swarm>| {
        swarm.is_none_or(|s| s.tasks.iter().all(|t| t.is_finished()))
    };
    while !(ended(Some(&runs_a)) && ended(late.as_ref())) {
        let states = db_state(data_dir.path());
        if states
            .iter()
            .any(|(_, s)| matches!(s.as_str(), "signed" | "broadcast"))
        {
            devnet.mine(1).await.expect("mine");
        }
        assert!(
            Instant::now() < deadline,
            "{step:?}: every wallet's session ends: {states:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (mut runs, _) = runs_a.finish(Duration::from_secs(60)).await;
    if let Some(late) = late {
        let (more, _) = late.finish(Duration::from_secs(60)).await;
        runs.extend(more);
    }
    assert_eq!(runs.len(), 4);
    let deadline = Instant::now() + Duration::from_secs(20);
    let states = loop {
        let now = db_state(data_dir.path());
        let settled = now
            .iter()
            .all(|(_, s)| matches!(s.as_str(), "funded" | "aborted" | "failed"));
        if settled || Instant::now() > deadline {
            break now;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("{step:?}: after restart {states:?}");
    let funded: Vec<u64> = states
        .iter()
        .filter(|(_, s)| s == "funded")
        .map(|(id, _)| *id)
        .collect();
    assert!(funded.len() <= 1, "at most one factory: {states:?}");
    match funded.first() {
        Some(_) => {
            let mut txids = Vec::new();
            for run in &runs {
                txids.push(common::assert_verified_path(devnet, run).await);
            }
            txids.dedup();
            assert_eq!(
                txids.len(),
                1,
                "{step:?}: everyone is in the one funded factory"
            );
        }
        None => {
            for run in &runs {
                assert_aborted_and_unfunded(devnet, run).await;
            }
        }
    }
    // Where the kill left nothing signed, nothing is lost: the factory completes.
    if matches!(step, Step::Gathering | Step::Signed | Step::Broadcast) {
        assert_eq!(
            funded.len(),
            1,
            "{step:?}: the factory is funded after the restart"
        );
    }
    if matches!(step, Step::Gathering) {
        let rejoined = runs[..first]
            .iter()
            .all(|r| r.result.as_ref().is_ok_and(|r| r.rejoins >= 1));
        assert!(
            rejoined,
            "the first two wallets joined again after the restart"
        );
    }
    lsp.kill().await;
}

/// The wallet's ceremony was aborted, and no funding transaction of a path it stored exists
/// on chain.
async fn assert_aborted_and_unfunded(devnet: &Devnet, run: &ClientRun) {
    let report = run.result.as_ref().expect("the session ends without error");
    assert!(
        matches!(report.outcome, ClientOutcome::Aborted { .. }),
        "client {} ends aborted: {:?}",
        run.index,
        report.outcome
    );
    let mut storage = DirStorage::open(&run.storage_dir).expect("storage");
    for stored in storage.load_paths().await.expect("paths") {
        let funding = stored.path.funding_outpoint();
        let out = devnet
            .rpc()
            .get_tx_out(&funding, true)
            .await
            .expect("gettxout");
        assert!(
            out.is_none(),
            "the aborted factory's funding {funding} is not on chain or in the mempool"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_every_ceremony_step_resumes_or_aborts_cleanly() {
    let devnet = Devnet::start(DevnetConfig::default())
        .await
        .expect("devnet starts");
    for step in [
        Step::Gathering,
        Step::Round("Nonces"),
        Step::Round("PartialSigs"),
        Step::Round("Ack"),
        Step::Signed,
        Step::Broadcast,
    ] {
        let started = Instant::now();
        kill_at(&devnet, step).await;
        eprintln!("{step:?}: passed in {:?}", started.elapsed());
    }
}
