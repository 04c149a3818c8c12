//! Factory creation end to end over real WebSockets against a real regtest node: eight native
//! wallets join, the LSP funds the factory from its own wallet, the funding confirms, and every
//! wallet holds a verified path to the confirmed funding outpoint.

mod common;

use std::time::{Duration, Instant};

use bitcoin::Amount;
use common::swarm::{self, ClientSpec};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_clients_get_a_funded_factory_with_verified_paths() {
    let stack = common::start_with(common::fast_factory(8, 2), None).await;
    common::fund_lsp(&stack, Amount::from_sat(2_000_000)).await;
    let storage = tempfile::tempdir().expect("temp dir");
    let config = common::swarm_config(&stack, storage.path());

    let started = Instant::now();
    let mut clients = swarm::spawn(&config, &[ClientSpec::honest(); 8]);
    if !clients
        .wait_for(Duration::from_secs(60), |log| {
            swarm::broadcast_heard(log, 0..8)
        })
        .await
    {
        for e in &clients.log {
            eprintln!("{e:?}");
        }
        let (runs, _) = clients.finish(Duration::from_secs(5)).await;
        for run in runs {
            eprintln!("client {}: {:?}", run.index, run.result);
        }
        panic!("every client stores its path and hears of the funding broadcast");
    }
    let signed_in = started.elapsed();
    assert!((0..8).all(|i| swarm::stored(&clients.log, i)));
    assert_eq!(
        common::factory_state(&stack, 1).as_deref(),
        Some("broadcast")
    );

    stack.devnet.mine(1).await.expect("mine");
    let (runs, _) = clients.finish(Duration::from_secs(60)).await;
    let mut txids = Vec::new();
    for run in &runs {
        txids.push(common::assert_verified_path(&stack.devnet, run).await);
    }
    txids.dedup();
    assert_eq!(txids.len(), 1, "one factory for everyone");

    // The LSP saw the confirmation too, and kept the whole signature set.
    common::wait_state(&stack, 1, "funded", 10).await;
    let db = stack.db();
    let (members, excluded): (i64, i64) = db
        .query_row(
            "SELECT SUM(status = 'member'), SUM(status = 'excluded') FROM factory_clients WHERE factory = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("clients stored");
    assert_eq!((members, excluded), (8, 0));
    let signed: String = db
        .query_row(
            "SELECT signed FROM signed_factories WHERE factory = 1",
            [],
            |r| r.get(0),
        )
        .expect("the signed factory is stored");
    assert!(signed.contains(&txids[0].to_string()));
    let guard: i64 = db
        .query_row("SELECT COUNT(*) FROM sign_guard", [], |r| r.get(0))
        .expect("guard records");
    assert!(guard > 0);
    eprintln!("8 clients: signed and stored in {signed_in:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_factory_opens_the_next_one() {
    let stack = common::start_with(common::fast_factory(4, 2), None).await;
    common::fund_lsp(&stack, Amount::from_sat(1_000_000)).await;
    let storage = tempfile::tempdir().expect("temp dir");
    let config = common::swarm_config(&stack, storage.path());

    let mut clients = swarm::spawn(&config, &[ClientSpec::honest(); 8]);
    assert!(
        clients
            .wait_for(Duration::from_secs(60), |log| swarm::broadcast_heard(
                log,
                0..8
            ))
            .await,
        "both factories reach their funding broadcast"
    );
    stack.devnet.mine(1).await.expect("mine");
    let (runs, _) = clients.finish(Duration::from_secs(60)).await;
    let mut txids = Vec::new();
    for run in &runs {
        txids.push(common::assert_verified_path(&stack.devnet, run).await);
    }
    txids.sort();
    txids.dedup();
    assert_eq!(txids.len(), 2, "two factories of four");
    for id in [1, 2] {
        common::wait_state(&stack, id, "funded", 10).await;
    }
}

/// An operator shortens the factories' lifetime (a workshop): the signed terms publish it, the
/// wallets accept it, and the factory's proposal carries it, with the time from the end of the
/// dying period to the timeout unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operators_lifetime_is_in_the_terms_and_in_the_factory() {
    let options = lsp_server::FactoryOptions {
        active_blocks: Some(12),
        dying_blocks: Some(10),
        ..common::fast_factory(2, 2)
    };
    let stack = common::start_with(options, None).await;
    common::fund_lsp(&stack, Amount::from_sat(1_000_000)).await;
    let terms = common::terms(&stack).await.body;
    assert_eq!(
        (terms.schedule.active_blocks, terms.schedule.dying_blocks),
        (12, 10)
    );
    let preset = shared::params::FactoryParams::for_network(bitcoin::Network::Regtest);
    let tail = |p: &shared::params::FactoryParams| {
        p.timeout_delta.to_blocks() - p.active.to_blocks() - p.dying.to_blocks()
    };
    assert_eq!(tail(&terms.tree), tail(&preset));

    let storage = tempfile::tempdir().expect("temp dir");
    let config = common::swarm_config(&stack, storage.path());
    // Both wallets accept the factory and hold verified paths.
    let runs = common::pay::funded_factory(&stack, &config, ClientSpec::honest(), 2).await;
    for run in &runs {
        let leaf = common::pay::leaf_of(run);
        let params = &leaf.path.proposal().params;
        assert_eq!(*params, terms.tree, "the factory has the terms' parameters");
        let life = shared::lifecycle::Life::of(leaf.path.proposal());
        assert_eq!(
            life.dying_ends.to_consensus_u32() - life.created.to_consensus_u32(),
            22
        );
    }
}
