//! The real `lsp-server` process is killed with SIGKILL at each step of factory creation and
//! started again on the same data dir, with real wallets (native sessions over WebSockets) and
//! a real regtest node. After each restart every wallet ends the same way the LSP's database
//! says the factory ended: a funded factory and a verified path for everyone, or an aborted
//! ceremony whose funding transaction never reaches the chain. A kill while gathering loses
//! nothing at all: the wallets join again and the factory completes.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::process::{free_port, fund, message, swarm_config, LspProcess};
use common::swarm::{self, ClientRun, ClientSpec};
use devnet::{Devnet, DevnetConfig};
use serde_json::Value;
use shared::ceremony::ClientOutcome;
use wallet::session::{DirStorage, Storage};

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

/// Kills the LSP at `step`, restarts it, and checks how every wallet ends.
async fn kill_at(devnet: &Devnet, step: Step) {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let storage = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let lsp = LspProcess::start(devnet, data_dir.path(), port, 4).await;
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

    let lsp = LspProcess::start(devnet, data_dir.path(), port, 4).await;
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
