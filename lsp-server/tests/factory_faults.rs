//! Faulty members over real WebSockets: one wallet loses its connection during the nonce round
//! and another sends a corrupt partial signature. The factory completes with the other six,
//! the two are told why, and nothing reaches the mempool before every remaining member stored
//! its path.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bitcoin::Amount;
use common::swarm::{self, ClientSpec, Fault};
use shared::ceremony::{ClientOutcome, ExclusionReason};
use wallet::session::SessionEvent;

const DROPPER: usize = 2;
const CORRUPT: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropout_and_a_bad_signer_are_excluded_and_six_get_the_factory() {
    let stack = common::start_with(common::fast_factory(8, 2), None).await;
    common::fund_lsp(&stack, Amount::from_sat(2_000_000)).await;
    assert!(stack
        .devnet
        .rpc()
        .get_raw_mempool()
        .await
        .expect("mempool")
        .is_empty());

    // Watch the mempool for the whole ceremony.
    let seen: Arc<Mutex<Vec<(Instant, bitcoin::Txid)>>> = Arc::default();
    let watcher = {
        let seen = seen.clone();
        let rpc = stack.devnet.rpc().clone();
        tokio::spawn(async move {
            loop {
                match rpc.get_raw_mempool().await {
                    Ok(txids) => {
                        let mut seen = seen.lock().expect("lock");
                        for txid in txids {
                            if !seen.iter().any(|(_, t)| *t == txid) {
                                seen.push((Instant::now(), txid));
                            }
                        }
                    }
                    Err(e) => eprintln!("mempool: {e}"),
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        })
    };

    let storage = tempfile::tempdir().expect("temp dir");
    let config = common::swarm_config(&stack, storage.path());
    let mut specs = vec![ClientSpec::honest(); 8];
    specs[DROPPER] = ClientSpec::with_fault(Fault::DropOnPropose {
        back_after: Duration::from_secs(5),
    });
    specs[CORRUPT] = ClientSpec::with_fault(Fault::CorruptPartials);
    let mut clients = swarm::spawn(&config, &specs);
    let honest: Vec<usize> = (0..8).filter(|i| ![DROPPER, CORRUPT].contains(i)).collect();
    assert!(
        clients
            .wait_for(Duration::from_secs(60), |log| swarm::broadcast_heard(
                log,
                honest.iter().copied()
            ))
            .await,
        "the six honest clients get to the funding broadcast: {:#?}",
        clients.log
    );
    let last_stored = clients
        .log
        .iter()
        .filter(|(_, _, e)| matches!(e, SessionEvent::PathStored { .. }))
        .map(|(_, at, _)| *at)
        .max()
        .expect("paths were stored");

    // Let the watcher see the broadcast before it is mined.
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.lock().expect("lock").is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stack.devnet.mine(1).await.expect("mine");
    let (runs, _) = clients.finish(Duration::from_secs(60)).await;
    watcher.abort();

    let mut txids = BTreeSet::new();
    for i in &honest {
        txids.insert(common::assert_verified_path(&stack.devnet, &runs[*i]).await);
    }
    assert_eq!(txids.len(), 1);
    let funding = *txids.first().expect("one funding tx");

    // The corrupt signer is named with the node and its key.
    let report = runs[CORRUPT].result.as_ref().expect("session ends cleanly");
    match &report.outcome {
        ClientOutcome::Excluded {
            reason: ExclusionReason::BadPartialSignature { pubkey, .. },
        } => assert_eq!(*pubkey, runs[CORRUPT].factory_key),
        other => panic!("the corrupt signer is excluded for its signature: {other:?}"),
    }
    assert!(report.path.is_none(), "it never got final signatures");
    // The dropout, back after the grace period, is told it was excluded for its absence.
    let report = runs[DROPPER].result.as_ref().expect("session ends cleanly");
    assert!(report.reconnects >= 1);
    match &report.outcome {
        ClientOutcome::Excluded {
            reason: ExclusionReason::Refused { reason },
        } => assert!(reason.as_str().contains("connection lost"), "{reason}"),
        other => panic!("the dropout is excluded for its absence: {other:?}"),
    }
    assert!(report.path.is_none());

    // Nothing reached the mempool but the final funding transaction, and only after every
    // remaining member stored its path.
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(
        seen.len(),
        1,
        "only one transaction was ever broadcast: {seen:?}"
    );
    assert_eq!(seen[0].1, funding);
    assert!(seen[0].0 > last_stored);

    let db = stack.db();
    let mut rows = db
        .prepare("SELECT status, COALESCE(reason, '') FROM factory_clients WHERE factory = 1 ORDER BY client")
        .expect("query");
    let rows: Vec<(String, String)> = rows
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(rows.iter().filter(|(s, _)| s == "member").count(), 6);
    let excluded: Vec<&String> = rows
        .iter()
        .filter(|(s, _)| s == "excluded")
        .map(|(_, r)| r)
        .collect();
    assert_eq!(excluded.len(), 2);
    assert!(excluded
        .iter()
        .any(|r| r.contains("invalid partial signature")));
    assert!(excluded.iter().any(|r| r.contains("connection lost")));
}
