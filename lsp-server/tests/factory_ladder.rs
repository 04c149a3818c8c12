//! A ladder of factories, end to end: four overlapping factories of five wallets each, created a
//! few blocks apart on one LSP. As each reaches its dying period, its five wallets join a newer
//! factory together and move their whole balance there (to the sat), and the old factory closes
//! with one key-path transaction. At the end the LSP's on-chain wallet is reconciled with what it
//! put in: every funding amount and fee it paid, every close it got back. Real bitcoind, real
//! WebSockets, the real LSP, twenty real wallet cores.

mod common;

use std::time::Duration;

use bitcoin::Amount;
use common::pay::{funded_factory, join_with, leaf_of, start_payer_with, with_balances};
use common::swarm::{ClientRun, ClientSpec};
use lsp_server::PaymentOptions;
use shared::ceremony::{ClientEvent, ClientOutcome};
use shared::lifecycle::{Life, Stage};
use wallet::session::SessionEvent;

const RUNGS: usize = 4;
const MEMBERS: usize = 5;
/// Blocks between two rungs' creations.
const STAGGER: u32 = 2;

fn spec() -> ClientSpec {
    ClientSpec {
        channel: Amount::from_sat(60_000),
        liquidity: Amount::from_sat(10_000),
        ..ClientSpec::honest()
    }
}

async fn mine_to(stack: &common::Stack, height: u32) {
    let now = common::chain::tip(stack).await;
    if now < height {
        stack.devnet.mine(height - now).await.expect("mine");
    }
}

/// What the funding transaction of `run`'s factory paid in fee.
async fn funding_fee(esplora: &esplora_client::AsyncClient, run: &ClientRun) -> Amount {
    let txid = leaf_of(run).path.funding_outpoint().txid;
    let tx = esplora.get_tx(&txid).await.expect("tx").expect("known");
    let mut inputs = Amount::ZERO;
    for input in &tx.input {
        let prev = esplora
            .get_tx(&input.previous_output.txid)
            .await
            .expect("prev")
            .expect("known");
        inputs += prev.output[input.previous_output.vout as usize].value;
    }
    inputs - tx.output.iter().map(|o| o.value).sum::<Amount>()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ladder_of_four_factories_moves_twenty_wallets_and_closes_each_old_rung() {
    let payments = PaymentOptions {
        faucet_max_sat: 50_000,
        ..PaymentOptions::default()
    };
    let stack = common::start_full(common::fast_factory(MEMBERS, MEMBERS), payments, None).await;
    common::fund_lsp(&stack, Amount::from_sat(5_000_000)).await;
    let esplora = esplora_client::Builder::new(stack.devnet.esplora_url())
        .build_async()
        .expect("esplora");
    stack.lsp.wallet.sync().await.expect("sync");
    let start = stack.lsp.wallet.balance();
    let storage = tempfile::tempdir().expect("temp dir");

    // Four rungs, a few blocks apart: all alive at once.
    let mut rungs: Vec<Vec<ClientRun>> = Vec::new();
    for r in 0..RUNGS {
        let config = common::swarm_config(&stack, &storage.path().join(format!("rung-{r}")));
        rungs.push(funded_factory(&stack, &config, spec(), MEMBERS).await);
        stack.devnet.mine(STAGGER).await.expect("mine");
    }
    let lives: Vec<Life> = rungs
        .iter()
        .map(|runs| Life::of(leaf_of(&runs[0]).path.proposal()))
        .collect();
    let created_last = lives[RUNGS - 1].created;
    assert!(
        lives.iter().all(|l| l.dying_at > created_last),
        "the rungs overlap: every one is alive when the last is created"
    );
    let mut balances = Vec::new();
    let mut stores = Vec::new();
    for runs in &rungs {
        let (s, b) = with_balances(&stack, runs).await;
        stores.push(s);
        balances.push(b);
    }

    let mut spent = Amount::ZERO; // funding amounts and fees the LSP paid
    let mut back = Amount::ZERO; // what the closes paid back
    let mut rows = Vec::new();
    for runs in &rungs {
        spent +=
            leaf_of(&runs[0]).path.funding_output().value + funding_fee(&esplora, &runs[0]).await;
    }
    for (r, runs) in rungs.iter().enumerate() {
        // The rung's dying period: its wallets join the next factory together and move.
        mine_to(&stack, lives[r].dying_at.to_consensus_u32()).await;
        let keys: Vec<_> = runs.iter().map(|run| run.keys).collect();
        let next = join_with(&stack, storage.path(), &format!("next-{r}"), spec(), &keys).await;
        spent +=
            leaf_of(&next[0]).path.funding_output().value + funding_fee(&esplora, &next[0]).await;
        for (i, (old, new)) in runs.iter().zip(&next).enumerate() {
            let now = bitcoin::absolute::Height::from_consensus(common::chain::tip(&stack).await)
                .expect("height");
            assert_eq!(
                lives[r].stage(now),
                Stage::Dying,
                "rung {r} moves in its dying period"
            );
            let mut payer = start_payer_with(
                &stack,
                old.keys,
                vec![leaf_of(old), leaf_of(new)],
                stores[r][i].clone(),
            );
            payer.ready(30).await;
            let (from, to) = (payer.leaves[0].channel, payer.leaves[1].channel);
            let moved = payer.handle.migrate(from, to).await.expect("migrated");
            assert_eq!(
                moved, balances[r][i],
                "rung {r} wallet {i}: the whole balance"
            );
            let s = payer.balance_becomes(balances[r][i], 30).await;
            let new_channel = s.channels.iter().find(|c| c.channel == to).expect("new");
            assert_eq!(
                new_channel.balance, balances[r][i],
                "to the sat, in the new factory"
            );
            payer.handle.stop();
            let _ = payer.task.await;
        }
        let funding = leaf_of(&runs[0]).path.funding_outpoint();
        let close =
            common::chain::spent_by(stack.devnet.esplora_url(), funding, Duration::from_secs(60))
                .await;
        assert_eq!(
            (close.input.len(), close.output.len()),
            (1, 1),
            "one transaction"
        );
        let amount = leaf_of(&runs[0]).path.funding_output().value;
        back += close.output[0].value;
        rows.push((
            r,
            amount,
            amount - close.output[0].value,
            close.compute_txid(),
        ));
        stack.devnet.mine(1).await.expect("mine");
    }

    // Every close confirmed: the LSP's wallet holds what it started with, less every funding
    // it paid, plus every close.
    let want = start.confirmed + start.pending + back - spent;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let end = loop {
        stack.lsp.wallet.sync().await.expect("sync");
        let b = stack.lsp.wallet.balance();
        if b.confirmed + b.pending == want {
            break b;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the LSP's wallet reconciles: {} + {} (pending), want {want}",
            b.confirmed,
            b.pending
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    println!("rung | funded with | close fee | close txid");
    for (r, amount, fee, txid) in &rows {
        println!(
            "{r} | {} sat | {} sat | {txid}",
            amount.to_sat(),
            fee.to_sat()
        );
    }
    let moved: Amount = balances.iter().flatten().copied().sum();
    println!(
        "LSP wallet: started {} sat; paid {} sat into {} factories (amounts and funding fees); \
         got {} sat back from {} closes; ends {} sat. The {} wallets' {} sat live in the newer \
         factories.",
        (start.confirmed + start.pending).to_sat(),
        spent.to_sat(),
        2 * RUNGS,
        back.to_sat(),
        RUNGS,
        (end.confirmed + end.pending).to_sat(),
        RUNGS * MEMBERS,
        moved.to_sat()
    );
}

/// With `--ladder-interval`, a factory starts at the ladder's next block, not when its
/// gathering time is over: the terms, the admin API and `/metrics` name that block; three
/// wallets wait through the gathering time for it and start there; a lone wallet's rung
/// (fewer than `--min-clients`) waits at its block for the next rung, where it starts with the
/// wallet that joined meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_ladder_interval_factories_start_at_the_ladders_blocks() {
    const INTERVAL: u32 = 5;
    let options = lsp_server::FactoryOptions {
        gather_secs: 1,
        ladder_interval: Some(INTERVAL),
        ..common::fast_factory(4, 2)
    };
    let stack = common::start_with(options, None).await;
    common::fund_lsp(&stack, Amount::from_sat(1_000_000)).await;
    let base = stack.http_url();
    // Right after a rung, so the next one is a whole interval away.
    let tip = common::chain::tip(&stack).await;
    mine_to(&stack, (tip / INTERVAL + 1) * INTERVAL).await;
    let rung = common::chain::tip(&stack).await + INTERVAL;

    let schedule = loop {
        let terms = common::terms(&stack).await.body.schedule;
        if terms.next_start_height == rung {
            break terms;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(schedule.interval_blocks, INTERVAL);
    let ladder = common::admin_get(&base, "/admin/ladder").await;
    assert_eq!(ladder["schedule"]["next_rung"], rung, "{ladder}");
    let metrics = reqwest::Client::new()
        .get(format!("{base}/metrics"))
        .bearer_auth(common::ADMIN_TOKEN)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains(&format!("superscalar_ladder_next_rung_height {rung}\n")),
        "{metrics}"
    );

    // Three wallets join; well past the gathering time they are still gathering for the rung.
    let storage = tempfile::tempdir().expect("temp dir");
    let config = common::swarm_config(&stack, &storage.path().join("rung"));
    let clients = common::swarm::spawn(&config, &[spec(); 3]);
    let gathering = |members: usize| {
        let base = base.clone();
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            loop {
                let live = common::admin_get(&base, "/admin/ceremonies").await;
                let found = live["ceremonies"].as_array().and_then(|l| {
                    l.iter()
                        .find(|c| c["phase"] == "gathering")
                        .filter(|c| c["members"].as_array().map(Vec::len) == Some(members))
                        .cloned()
                });
                if let Some(c) = found {
                    return c;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{members} gathering: {live}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let ceremony = gathering(3).await;
    assert_eq!(ceremony["start_height"], rung, "{ceremony}");
    let factory = ceremony["factory"].as_u64().expect("id");
    mine_to(&stack, rung - 1).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let status: shared::ceremony::GatheringStatus =
        reqwest::get(format!("{base}/factories/{factory}/gathering"))
            .await
            .expect("gathering status")
            .json()
            .await
            .expect("still gathering, a block before its rung and past its gathering time");
    assert_eq!((status.members, status.start_height), (3, Some(rung)));
    assert!(
        status.outlook(0).contains(&format!("at block {rung}")),
        "{}",
        status.outlook(0)
    );

    // The rung's block: they sign, and the factory's creation height is the rung.
    stack.devnet.mine(1).await.expect("mine");
    let runs = common::pay::funded_factory_of(&stack.devnet, clients, 3).await;
    assert_started_at(&runs, rung);

    // One wallet alone for the next rung: at its block the rung keeps gathering for the one
    // after (`--underfilled-rung wait`, the default) and the wallet waits with it; a second
    // wallet joins, and at that block the two sign.
    let next = (common::chain::tip(&stack).await / INTERVAL + 1) * INTERVAL;
    let alone = common::swarm::spawn(
        &common::swarm_config(&stack, &storage.path().join("alone")),
        &[spec()],
    );
    assert_eq!(gathering(1).await["start_height"], next);
    mine_to(&stack, next).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let postponed = loop {
        let c = gathering(1).await;
        if c["start_height"] == next + INTERVAL {
            break c;
        }
        assert!(tokio::time::Instant::now() < deadline, "postponed: {c}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // What its wallet shows while it waits.
    let status: shared::ceremony::GatheringStatus = reqwest::get(format!(
        "{base}/factories/{}/gathering",
        postponed["factory"]
    ))
    .await
    .expect("gathering status")
    .json()
    .await
    .expect("still gathering");
    let outlook = status.outlook(0);
    assert!(
        outlook.contains(&format!("at block {}", next + INTERVAL))
            && outlook.ends_with("or it waits for the next one, and you keep your place."),
        "{outlook}"
    );
    // The wallet was told: a second `join_accepted`, its wait running to the later rung.
    let mut alone = alone;
    let starts = |log: &[(usize, std::time::Instant, SessionEvent)]| -> Vec<u64> {
        log.iter()
            .filter_map(|(_, _, e)| match e {
                SessionEvent::Ceremony(ClientEvent::Joined { start_by, .. }) => Some(*start_by),
                _ => None,
            })
            .collect()
    };
    assert!(
        alone
            .wait_for(Duration::from_secs(20), |log| starts(log).len() == 2)
            .await,
        "told of the postponement: {:?}",
        alone.log
    );
    let told = starts(&alone.log);
    // Told at the rung's block: the next rung is a whole interval away, estimated at twice 10 s
    // a block on regtest.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    assert!(
        told[1] >= told[0] && told[1] + 5 >= now + u64::from(INTERVAL) * 20,
        "a start a rung later: {told:?}, now {now}"
    );
    let second = common::swarm::spawn(
        &common::swarm_config(&stack, &storage.path().join("second")),
        &[spec()],
    );
    assert_eq!(gathering(2).await["start_height"], next + INTERVAL);
    mine_to(&stack, next + INTERVAL).await;
    let mut runs = common::pay::funded_factory_of(&stack.devnet, alone, 1).await;
    let (more, _) = second.finish(Duration::from_secs(60)).await;
    runs.extend(more);
    assert_started_at(&runs, next + INTERVAL);
}

/// Every run holds an open factory created at `height`.
fn assert_started_at(runs: &[ClientRun], height: u32) {
    for run in runs {
        let report = run.result.as_ref().expect("the session ends");
        assert!(
            matches!(report.outcome, ClientOutcome::Open { .. }),
            "{:?}",
            report.outcome
        );
        let created = leaf_of(run).path.proposal().creation_height;
        assert_eq!(created.to_consensus_u32(), height, "started at the rung");
    }
}
