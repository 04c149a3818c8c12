//! The LSP stops and starts again with the same data dir, over real WebSockets and a real
//! regtest node: a ceremony caught in its nonce round is aborted cleanly (every wallet is told
//! when it reconnects, nobody stored anything, nothing was broadcast), and a factory whose
//! funding was already broadcast resumes its confirmation tracking.

mod common;

use std::time::{Duration, Instant};

use bitcoin::Amount;
use common::swarm::{self, ClientSpec, Fault};
use common::Stack;
use devnet::{Devnet, DevnetConfig};
use shared::ceremony::{ClientEvent, ClientOutcome};
use wallet::session::{DirStorage, SessionEvent, Storage};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_abort_in_flight_ceremonies_and_resume_broadcast_factories() {
    let devnet = Devnet::start(DevnetConfig::default())
        .await
        .expect("devnet starts");
    let data_dir = tempfile::tempdir().expect("temp dir");
    let config = common::config(
        &devnet,
        data_dir.path(),
        "127.0.0.1:0".parse().expect("address"),
        common::fast_factory(4, 2),
        None,
    );
    let lsp = lsp_server::start(config).await.expect("LSP starts");
    let mut stack = Stack {
        devnet,
        lsp,
        data_dir,
    };
    common::fund_lsp(&stack, Amount::from_sat(1_000_000)).await;
    let storage = tempfile::tempdir().expect("temp dir");

    // 1. Restart while the LSP waits for the last wallet's nonces.
    let config = common::swarm_config(&stack, &storage.path().join("first"));
    let mut specs = vec![ClientSpec::honest(); 4];
    specs[3] = ClientSpec::with_fault(Fault::DelayNonces(Duration::from_secs(3)));
    let mut clients = swarm::spawn(&config, &specs);
    let nonces_sent = |log: &[(usize, Instant, SessionEvent)]| {
        (0..3).all(|i| {
            log.iter().any(|(j, _, e)| {
                *j == i
                    && matches!(
                        e,
                        SessionEvent::Ceremony(ClientEvent::SessionStarted { .. })
                    )
            })
        })
    };
    assert!(clients.wait_for(Duration::from_secs(30), nonces_sent).await);
    stack = common::restart(
        stack,
        common::fast_factory(4, 2),
        lsp_server::PaymentOptions::default(),
    )
    .await;
    let (runs, _) = clients.finish(Duration::from_secs(60)).await;
    for run in &runs {
        let report = run.result.as_ref().expect("the session ends cleanly");
        match &report.outcome {
            ClientOutcome::Aborted { reason } => {
                assert!(reason.as_str().contains("restarted"), "{reason}")
            }
            other => panic!(
                "client {} should be told of the abort: {other:?}",
                run.index
            ),
        }
        assert!(report.reconnects >= 1);
        let mut storage = DirStorage::open(&run.storage_dir).expect("storage");
        assert!(
            storage.load_paths().await.expect("paths").is_empty(),
            "nothing was signed"
        );
    }
    assert!(stack
        .devnet
        .rpc()
        .get_raw_mempool()
        .await
        .expect("mempool")
        .is_empty());
    assert_eq!(common::factory_state(&stack, 1).as_deref(), Some("aborted"));

    // 2. A new factory (funded from the same, freed coins) reaches its broadcast; the LSP
    // stops before it confirms, the block comes while it is down, and after the restart it
    // tracks the confirmation again. The wallets need only the chain by then.
    let config = common::swarm_config(&stack, &storage.path().join("second"));
    let mut clients = swarm::spawn(&config, &[ClientSpec::honest(); 4]);
    assert!(
        clients
            .wait_for(Duration::from_secs(60), |log| swarm::broadcast_heard(
                log,
                0..4
            ))
            .await
    );
    assert_eq!(
        common::factory_state(&stack, 2).as_deref(),
        Some("broadcast")
    );
    let Stack {
        devnet,
        lsp,
        data_dir,
    } = stack;
    let addr = lsp.addr;
    lsp.stop().await.expect("the LSP stops");
    devnet.mine(1).await.expect("mine");
    let config = common::config(
        &devnet,
        data_dir.path(),
        addr,
        common::fast_factory(4, 2),
        None,
    );
    let lsp = lsp_server::start(config)
        .await
        .expect("the LSP starts again");
    let stack = Stack {
        devnet,
        lsp,
        data_dir,
    };
    common::wait_state(&stack, 2, "funded", 15).await;
    let (runs, _) = clients.finish(Duration::from_secs(60)).await;
    for run in &runs {
        common::assert_verified_path(&stack.devnet, run).await;
    }
}
