//! Leaving a factory for a newer one (`shared::lifecycle`), end to end: two native wallets in
//! factory A hold balances; they join factory B with the same identities; each moves its whole
//! balance from A to B (a fee-free payment to itself, to the sat) and releases A's key; the LSP,
//! holding every key, closes A with one key-path transaction paying its own wallet, and the
//! wallet's balance grows by exactly what the close pays. Real bitcoind, real WebSockets, the
//! real LSP, real wallet cores.

mod common;

use std::time::Duration;

use bitcoin::Amount;
use common::pay::{
    claims_confirmed, funded_factory, join_with, leaf_of, start_payer_config, start_payer_with,
    with_balances, Payer,
};
use common::swarm::ClientSpec;
use common::tower::TowerProcess;
use futures::StreamExt;
use lsp_server::PaymentOptions;
use wallet::pay::{PayConfig, PayError, TowerLink};

fn spec() -> ClientSpec {
    ClientSpec {
        channel: Amount::from_sat(100_000),
        liquidity: Amount::from_sat(10_000),
        ..ClientSpec::honest()
    }
}

/// The LSP's faucet pays up to 50,000 sats.
fn payments() -> PaymentOptions {
    PaymentOptions {
        faucet_max_sat: 50_000,
        ..PaymentOptions::default()
    }
}

/// Factory A: two wallets holding faucet sats (20,000 and 25,000, less their join fees).
struct FactoryA {
    stack: common::Stack,
    storage: tempfile::TempDir,
    runs: Vec<common::swarm::ClientRun>,
    stores: Vec<wallet::pay::MemoryPayStore>,
    balances: Vec<Amount>,
}

async fn factory_a(lsp_funds: Amount) -> FactoryA {
    factory_a_on(devnet::DevnetConfig::default(), lsp_funds).await
}

/// [`factory_a`] on a devnet started as `devnet` says.
async fn factory_a_on(devnet: devnet::DevnetConfig, lsp_funds: Amount) -> FactoryA {
    let stack = common::start_on(devnet, common::fast_factory(2, 2), payments(), None).await;
    common::fund_lsp(&stack, lsp_funds).await;
    let storage = tempfile::tempdir().expect("temp dir");
    let config = common::swarm_config(&stack, storage.path());
    let runs = funded_factory(&stack, &config, spec(), 2).await;
    let (stores, balances) = with_balances(&stack, &runs).await;
    FactoryA {
        stack,
        storage,
        runs,
        stores,
        balances,
    }
}

/// Every wallet of A joins factory B (the same identities) and moves its whole balance there.
async fn every_member_moves(a: &FactoryA) {
    let movers: Vec<_> = a.runs.iter().collect();
    move_together(&a.stack, a.storage.path(), &movers, &a.stores).await;
}

/// The wallets of `movers` (with their stores) join one new factory together and each moves
/// its whole balance there.
async fn move_together(
    stack: &common::Stack,
    storage: &std::path::Path,
    movers: &[&common::swarm::ClientRun],
    stores: &[wallet::pay::MemoryPayStore],
) {
    let keys: Vec<_> = movers.iter().map(|r| r.keys).collect();
    let b_runs = join_with(stack, storage, "b", spec(), &keys).await;
    for ((old, new), store) in movers.iter().zip(&b_runs).zip(stores) {
        let mut p = start_payer_with(
            stack,
            old.keys,
            vec![leaf_of(old), leaf_of(new)],
            store.clone(),
        );
        p.ready(30).await;
        let (from, to) = (p.leaves[0].channel, p.leaves[1].channel);
        p.handle.migrate(from, to).await.expect("migrated");
        p.handle.stop();
        let _ = p.task.await;
    }
}

/// Wallet 0 of A joins factory B beside a newcomer and moves its whole balance there; returns
/// B's runs and what moved. With a `tower`, the wallet keeps it up to date, and the move
/// returns once the tower holds it.
async fn first_moves_beside_a_newcomer(
    a: &FactoryA,
    tower: Option<&TowerProcess>,
) -> (Vec<common::swarm::ClientRun>, Amount) {
    let secp = bitcoin::secp256k1::Secp256k1::new();
    let newcomer = bitcoin::secp256k1::Keypair::new(&secp, &mut rand::thread_rng());
    let b_runs = join_with(
        &a.stack,
        a.storage.path(),
        "b",
        spec(),
        &[a.runs[0].keys, newcomer],
    )
    .await;
    let keys = a.runs[0].keys;
    let mut config = PayConfig::new(
        bitcoin::Network::Regtest,
        keys,
        vec![leaf_of(&a.runs[0]), leaf_of(&b_runs[0])],
    );
    config.watchtower = tower.map(|t| {
        let (xonly, _) = keys.x_only_public_key();
        let home = bitcoin::Address::p2tr(
            &bitcoin::secp256k1::Secp256k1::new(),
            xonly,
            None,
            bitcoin::Network::Regtest,
        );
        TowerLink {
            url: t.url.clone(),
            destination: home.script_pubkey(),
        }
    });
    let mut mover = start_payer_config(
        &a.stack.ws_url(),
        a.stack.devnet.esplora_url(),
        config,
        a.stores[0].clone(),
    );
    mover.ready(30).await;
    let (from, to) = (mover.leaves[0].channel, mover.leaves[1].channel);
    let moved = mover.handle.migrate(from, to).await.expect("migrated");
    if let Some(tower) = tower {
        // The move is answered once the tower holds it, so stopping the wallet right away
        // does not leave the tower walking the old path.
        let status = tower.status(&keys.x_only_public_key().0, from).await;
        assert_eq!(status["moved"], true, "the tower holds the move: {status}");
    }
    mover.handle.stop();
    let _ = mover.task.await;
    (b_runs, moved)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wallets_move_to_a_newer_factory_and_the_old_one_closes_in_one_transaction() {
    let FactoryA {
        stack,
        storage,
        runs: old_runs,
        stores,
        balances,
    } = factory_a(Amount::from_sat(2_000_000)).await;

    // The same wallets join factory B (new factory keys, same identities).
    let keys: Vec<_> = old_runs.iter().map(|r| r.keys).collect();
    let new_runs = join_with(&stack, storage.path(), "b", spec(), &keys).await;
    let old_factory = leaf_of(&old_runs[0]).channel.factory;
    let new_factory = leaf_of(&new_runs[0]).channel.factory;
    assert_ne!(old_factory, new_factory);
    let funding_a = leaf_of(&old_runs[0]).path.funding_outpoint();

    let mut payers: Vec<Payer> = old_runs
        .iter()
        .zip(&new_runs)
        .zip(&stores)
        .map(|((old, new), store)| {
            start_payer_with(
                &stack,
                old.keys,
                vec![leaf_of(old), leaf_of(new)],
                store.clone(),
            )
        })
        .collect();
    for p in &mut payers {
        p.ready(30).await;
    }

    // A key is never released while its channel holds something.
    let from = payers[0].leaves[0].channel;
    let refused = payers[0].handle.release_key(from).await;
    assert!(
        matches!(refused, Err(PayError::StillHolds(_))),
        "{refused:?}"
    );

    stack.lsp.wallet.sync().await.expect("sync");
    let lsp_before = stack.lsp.wallet.balance();
    for (p, balance) in payers.iter_mut().zip(&balances) {
        let (from, to) = (p.leaves[0].channel, p.leaves[1].channel);
        let moved = tokio::time::timeout(Duration::from_secs(60), p.handle.migrate(from, to))
            .await
            .expect("the migration ends in time")
            .expect("migrated");
        assert_eq!(moved, *balance, "the whole balance moves");
        let s = p.balance_becomes(*balance, 30).await;
        let of = |id| {
            s.channels
                .iter()
                .find(|c| c.channel == id)
                .expect("channel")
        };
        assert_eq!(of(from).balance, Amount::ZERO, "nothing is left in A");
        assert_eq!(of(to).balance, *balance, "B holds it, to the sat");
        assert!(of(from).closed.is_some(), "A is closed as moved");
        let sent = s
            .payments
            .iter()
            .find(|r| r.amount == *balance)
            .expect("record");
        assert_eq!(sent.fee, Amount::ZERO, "moving is free");
        // Moving from A again finds nothing to move; a whole migration again (a reload that
        // lost the answer) succeeds at once with nothing moved.
        let again = p.handle.move_balance(from, to).await;
        assert!(matches!(again, Err(PayError::NothingToMove)), "{again:?}");
        let again = p.handle.migrate(from, to).await.expect("again");
        assert_eq!(again, Amount::ZERO);
    }

    // The LSP holds every key of A: it closes A alone, by key path, into its own wallet.
    let close = common::chain::spent_by(
        stack.devnet.esplora_url(),
        funding_a,
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(close.input.len(), 1, "{close:?}");
    assert_eq!(close.output.len(), 1, "{close:?}");
    assert_eq!(close.input[0].witness.len(), 1, "a key-path spend");
    let funding_amount = leaf_of(&old_runs[0]).path.funding_output().value;
    let close_fee = funding_amount - close.output[0].value;
    stack.devnet.mine(1).await.expect("mine");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let lsp_after = loop {
        stack.lsp.wallet.sync().await.expect("sync");
        let b = stack.lsp.wallet.balance();
        if b.confirmed + b.pending > lsp_before.confirmed + lsp_before.pending {
            break b;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the close pays the LSP's wallet"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let gained =
        (lsp_after.confirmed + lsp_after.pending) - (lsp_before.confirmed + lsp_before.pending);
    assert_eq!(
        gained, close.output[0].value,
        "the whole factory came back, less the close fee"
    );
    let moved: Amount = balances.iter().copied().sum();
    println!(
        "factory {old_factory}: funded with {funding_amount}; closed by {} (fee {close_fee}); \
         the LSP's wallet got {gained} back; the clients' {moved} now live in factory {new_factory}",
        close.compute_txid()
    );

    // The ladder: A closed (every member moved), B active with both members.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let ladder = loop {
        let ladder = common::admin_get(&stack.http_url(), "/admin/ladder").await;
        let a = &ladder["factories"][0];
        if a["stage"] == "closed" {
            break ladder;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "A shows closed: {ladder}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let (a, b) = (&ladder["factories"][0], &ladder["factories"][1]);
    assert_eq!(a["id"], old_factory.0, "{ladder}");
    assert_eq!(
        (a["members"].as_u64(), a["moved"].as_u64()),
        (Some(2), Some(2)),
        "{ladder}"
    );
    assert_eq!(
        a["close_txid"],
        close.compute_txid().to_string(),
        "{ladder}"
    );
    assert!(a["next"].is_null(), "{ladder}");
    assert_eq!(b["id"], new_factory.0, "{ladder}");
    assert_eq!(b["stage"], "active", "{ladder}");
    assert_eq!(b["moved"], 0, "{ladder}");
    assert_eq!(b["next"]["height"], b["life"]["dying_at"], "{ladder}");

    let metrics = reqwest::Client::new()
        .get(format!("{}/metrics", stack.http_url()))
        .bearer_auth(common::ADMIN_TOKEN)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for line in [
        "superscalar_funded_factories{stage=\"closed\"} 1",
        "superscalar_funded_factories{stage=\"active\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }

    // The LSP's view: A's channels are closed as moved.
    for p in &payers {
        let c = common::pay::admin_channel(&stack, p.leaves[0].channel).await;
        assert_eq!(c["state"], "moved", "{c}");
        assert_eq!(c["client_sat"], 0, "{c}");
    }
}

/// A member that does not move keeps the old factory open and its channel working; a release
/// survives a restart of the LSP; the factory closes once the last member moved too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_stays_is_not_harmed_and_releases_survive_a_restart() {
    let a = factory_a(Amount::from_sat(3_000_000)).await;
    let funding_a = leaf_of(&a.runs[0]).path.funding_outpoint();
    let secp = bitcoin::secp256k1::Secp256k1::new();
    let newcomer = || bitcoin::secp256k1::Keypair::new(&secp, &mut rand::thread_rng());

    // Wallet 0 moves into B (beside a newcomer); wallet 1 stays in A.
    let (_, moved) = first_moves_beside_a_newcomer(&a, None).await;
    assert_eq!(moved, a.balances[0]);
    let from = leaf_of(&a.runs[0]).channel;
    let FactoryA {
        stack,
        storage,
        runs: old_runs,
        stores,
        balances,
    } = a;

    // The LSP restarts: the release is still there, A stays open for the one who stayed.
    let stack = common::restart(stack, common::fast_factory(2, 2), payments()).await;
    let moved_channel = common::pay::admin_channel(&stack, from).await;
    assert_eq!(moved_channel["state"], "moved", "{moved_channel}");
    let mut stayer = start_payer_with(
        &stack,
        old_runs[1].keys,
        vec![leaf_of(&old_runs[1])],
        stores[1].clone(),
    );
    stayer.ready(30).await;
    let more = stayer.faucet(Amount::from_sat(7_000), 30).await;
    assert_eq!(
        more,
        Amount::from_sat(7_000),
        "the one who stayed still receives"
    );
    let esplora = esplora_client::Builder::new(stack.devnet.esplora_url())
        .build_async()
        .expect("esplora");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let status = esplora
        .get_output_status(&funding_a.txid, u64::from(funding_a.vout))
        .await
        .expect("outspend");
    assert!(
        !status.is_some_and(|s| s.spent),
        "the factory is not closed while a member still holds money in it"
    );
    stayer.handle.stop();
    let _ = stayer.task.await;

    // The last member moves too (into C, beside another newcomer): A closes.
    let c_runs = join_with(
        &stack,
        storage.path(),
        "c",
        spec(),
        &[old_runs[1].keys, newcomer()],
    )
    .await;
    let mut last = start_payer_with(
        &stack,
        old_runs[1].keys,
        vec![leaf_of(&old_runs[1]), leaf_of(&c_runs[0])],
        stores[1].clone(),
    );
    last.ready(30).await;
    let (from, to) = (last.leaves[0].channel, last.leaves[1].channel);
    let moved = last.handle.migrate(from, to).await.expect("migrated");
    assert_eq!(moved, balances[1] + more, "everything it held, to the sat");
    let close = common::chain::spent_by(
        stack.devnet.esplora_url(),
        funding_a,
        Duration::from_secs(60),
    )
    .await;
    assert_eq!((close.input.len(), close.output.len()), (1, 1));
}

/// An open wallet hears from the LSP when its factory's dying period starts, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_wallet_is_told_when_its_factory_starts_dying() {
    let stack =
        common::start_full(common::fast_factory(2, 2), PaymentOptions::default(), None).await;
    common::fund_lsp(&stack, Amount::from_sat(2_000_000)).await;
    let storage = tempfile::tempdir().expect("temp dir");
    let config = common::swarm_config(&stack, storage.path());
    let runs = funded_factory(&stack, &config, spec(), 2).await;
    let leaf = leaf_of(&runs[0]);
    let life = shared::lifecycle::Life::of(leaf.path.proposal());
    let mut payer = start_payer_with(&stack, runs[0].keys, vec![leaf.clone()], Default::default());
    payer.ready(30).await;
    let tip = stack
        .devnet
        .height()
        .await
        .expect("height")
        .to_consensus_u32();
    let before = life.dying_at.to_consensus_u32() - 1;
    if tip < before {
        stack.devnet.mine(before - tip).await.expect("mine");
    }
    // Nothing yet, one block before.
    let early = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            if let Some(wallet::pay::PayEvent::FactoryEnding(n)) = payer.events.next().await {
                return n;
            }
        }
    })
    .await;
    assert!(
        early.is_err(),
        "no notice before the dying period: {early:?}"
    );
    stack.devnet.mine(1).await.expect("mine");
    let notice = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match payer.events.next().await {
                Some(wallet::pay::PayEvent::FactoryEnding(n)) => return n,
                Some(_) => {}
                None => panic!("the payment client stopped"),
            }
        }
    })
    .await
    .expect("the notice comes");
    assert_eq!(notice.channel, leaf.channel);
    assert_eq!(notice.stage, shared::lifecycle::Stage::Dying);
    assert_eq!(notice.dying_ends, life.dying_ends);
    assert!(
        notice.message.contains("move your balance"),
        "{}",
        notice.message
    );
}

/// A factory whose members did not all move nears its timeout: one member moved out (its
/// channel holds only the LSP's money), the other stayed and is away. From the last height at
/// which a walk still ends before `T`, the LSP, with nobody pressing a button, walks the
/// stayer's path and publishes its commitment: the distribution transaction (which would pay
/// the members the whole leaves) never becomes valid, the member who stayed is paid its balance
/// to the sat at its own key without coming back, and the LSP claims its side of that channel
/// and its leaf's L-stock. The moved member's part of the tree is not walked: once the tree
/// above it is on chain, the LSP takes it back with one key-path spend (partial cooperation).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_factory_nobody_closed_is_taken_on_chain_by_the_lsp_before_its_timeout() {
    let a = factory_a(Amount::from_sat(3_000_000)).await;
    // Wallet 0 moves into B, keeping its watchtower up to date; wallet 1 stays in A and is
    // never seen again.
    let tower_dir = tempfile::tempdir().expect("temp dir");
    let tower =
        TowerProcess::start(&a.stack.devnet, tower_dir.path(), common::ln::free_addr()).await;
    first_moves_beside_a_newcomer(&a, Some(&tower)).await;
    let FactoryA {
        stack,
        runs: old_runs,
        balances,
        ..
    } = a;
    let moved_from = leaf_of(&old_runs[0]).channel;

    let stayer = leaf_of(&old_runs[1]);
    let paths = [leaf_of(&old_runs[0]).path, stayer.path.clone()];
    let retire_at = paths
        .iter()
        .map(|p| p.last_walk_start().to_consensus_u32())
        .min()
        .expect("two paths");
    let timeout = stayer.path.timeout().to_consensus_u32();
    let life = shared::lifecycle::Life::of(stayer.path.proposal());
    assert!(
        retire_at >= life.dying_ends.to_consensus_u32(),
        "never before the dying period ends"
    );
    let funding = stayer.path.funding_outpoint();
    let esplora = esplora_client::Builder::new(stack.devnet.esplora_url())
        .build_async()
        .expect("esplora");

    // Nothing happens before that height.
    let now = common::chain::tip(&stack).await;
    stack
        .devnet
        .mine(retire_at.saturating_sub(now + 1))
        .await
        .expect("mine");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let status = esplora
        .get_output_status(&funding.txid, u64::from(funding.vout))
        .await
        .expect("outspend");
    assert!(
        !status.is_some_and(|s| s.spent),
        "the factory stays off chain until its last safe height"
    );

    // From there, a block every pass of the LSP's watch, until it claimed its side of the
    // stayer's channel (its `to_local`) and that leaf's L-stock, and swept the moved member's
    // part of the tree.
    let claimed = |view: &serde_json::Value| claims_confirmed(view, &["ToLocal", "LStock"]);
    let sweep = loop {
        let tip = common::chain::tip(&stack).await;
        assert!(
            tip < timeout + 40,
            "the LSP did not take the factory on chain: {} / {}",
            common::admin_get(&stack.http_url(), "/admin/ladder").await,
            common::pay::admin_channel(&stack, stayer.channel).await
        );
        common::chain::mine_after_a_pass(&stack.devnet).await;
        let stayed = common::pay::admin_channel(&stack, stayer.channel).await;
        let sweeps = confirmed_sweeps(&stack, moved_from.factory).await;
        if claimed(&stayed) && !sweeps.is_empty() {
            assert_eq!(sweeps.len(), 1, "one subtree: the moved member's leaf");
            break sweeps[0].clone();
        }
    };

    // The moved member's leaf never went on chain: its input (the state's output for it) was
    // spent by the sweep, one input and one output by key path, and its channel was not walked.
    let moved_leaf = leaf_of(&old_runs[0])
        .path
        .nodes()
        .last()
        .expect("leaf")
        .clone();
    let tx = the_sweep_of(&stack, moved_leaf.spent_outpoint(), &sweep).await;
    assert_eq!(sweep["spent_sat"], moved_leaf.prevout.value.to_sat());
    let moved = common::pay::admin_channel(&stack, moved_from).await;
    assert_eq!(moved["state"], "moved", "{moved}");
    assert!(
        moved["claims"].as_array().is_none_or(|c| c.is_empty()),
        "nothing of the moved channel is walked or claimed: {moved}"
    );
    // The mover's watchtower, told of the move by the wallet itself, walked nothing of the old
    // channel's path (its penalties stay armed).
    let identity = old_runs[0].keys.x_only_public_key().0;
    let status = tower.status(&identity, moved_from).await;
    assert_eq!(status["moved"], true, "{status}");

    assert!(
        status["report"]["published"]
            .as_array()
            .is_none_or(|p| p.is_empty()),
        "the tower published nothing for a channel the wallet left: {status}"
    );
    let fee = moved_leaf.prevout.value - tx.output[0].value;
    println!(
        "moved member's subtree: {} held, {} back to the LSP in one key-path sweep ({} fee, {} vB), instead of its leaf, commitment and two claims",
        moved_leaf.prevout.value,
        tx.output[0].value,
        fee,
        tx.vsize()
    );

    // The funding output was spent before `T`: the distribution transaction never became
    // valid.
    let spender = common::chain::spender(&stack, funding.txid, funding.vout)
        .await
        .expect("the funding output is spent");
    let spent_at = esplora
        .get_tx_status(&spender)
        .await
        .expect("status")
        .block_height
        .expect("confirmed");
    assert!(spent_at <= timeout, "spent at {spent_at}, T = {timeout}");

    // The member who stayed is paid its balance, to the sat, by the LSP's commitment.
    let tx = spent_by(&stack, stayer.path.channel_outpoint()).await;
    let commitment = tx.compute_txid();
    assert!(
        tx.output.iter().any(|o| o.value == balances[1]),
        "an output pays the stayer its {} : {tx:?}",
        balances[1]
    );
    let stayed = common::pay::admin_channel(&stack, stayer.channel).await;
    assert_eq!(stayed["state"], "closed", "{stayed}");
    println!(
        "factory {}: retired from block {retire_at} (T = {timeout}); funding spent at {spent_at}; \
         the stayer's {} paid by {commitment}",
        stayer.channel.factory, balances[1]
    );
}

/// Both members moved out and released their keys, and the LSP signed its key-path close; but
/// before the close confirms, a member that released its key publishes the old tree's first
/// transaction and a miner takes it instead. The close can never confirm now: the LSP forgets
/// it and, with nobody pressing a button, spends the kickoff's output by key path (it holds
/// every key), so the griefer strands none of the LSP's capital and the rest of the tree never
/// reaches the chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_that_loses_to_the_old_tree_is_replaced_by_a_sweep_of_the_tree() {
    let a = factory_a(Amount::from_sat(3_000_000)).await;
    // Both move, so the LSP signs its close and broadcasts it at its next pass.
    every_member_moves(&a).await;
    let FactoryA {
        stack,
        runs: old_runs,
        ..
    } = a;
    let path = leaf_of(&old_runs[0]).path;
    let funding = path.funding_outpoint();
    let kickoff = path.nodes()[0]
        .signed_tx()
        .expect("the member's path is signed");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let close = loop {
        let ladder = common::admin_get(&stack.http_url(), "/admin/ladder").await;
        if let Some(txid) = ladder["factories"][0]["close_txid"].as_str() {
            break txid.to_string();
        }
        assert!(tokio::time::Instant::now() < deadline, "{ladder}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };

    // A miner takes the old tree's kickoff instead (it pays less, so only a miner would).
    let rpc = stack.devnet.rpc();
    let reward = bitcoin::Address::p2tr(
        &bitcoin::secp256k1::Secp256k1::new(),
        old_runs[0].keys.x_only_public_key().0,
        None,
        bitcoin::Network::Regtest,
    );
    let _: serde_json::Value = rpc
        .call(
            "generateblock",
            &[
                serde_json::json!(reward.to_string()),
                serde_json::json!([bitcoin::consensus::encode::serialize_hex(&kickoff)]),
            ],
        )
        .await
        .expect("a block with the kickoff");
    assert_eq!(
        common::chain::spender(&stack, funding.txid, funding.vout).await,
        Some(kickoff.compute_txid())
    );

    // The LSP signs and stores the sweep of the kickoff's output: one transaction for the
    // whole factory. It is killed before a block takes it; the restarted LSP finds the sweep
    // where it left it and sees it through.
    let factory = leaf_of(&old_runs[0]).channel.factory;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let stored: bitcoin::Transaction = loop {
        let ladder = common::admin_get(&stack.http_url(), "/admin/ladder").await;
        if !ladder["factories"][0]["sweeps"][0]["txid"].is_null() {
            // As signed and stored (a txid leaves out the signature: the wtxid does not).
            let hex: String = stack
                .db()
                .query_row("SELECT tx FROM factory_sweeps", [], |r| r.get(0))
                .expect("one stored sweep");
            break bitcoin::consensus::encode::deserialize_hex(&hex).expect("a transaction");
        }
        assert!(tokio::time::Instant::now() < deadline, "{ladder}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let stack = common::restart(stack, common::fast_factory(2, 2), payments()).await;
    let started = common::chain::tip(&stack).await;
    let sweep = loop {
        let tip = common::chain::tip(&stack).await;
        assert!(
            tip < started + 20,
            "the LSP did not sweep the tree: {}",
            common::admin_get(&stack.http_url(), "/admin/ladder").await
        );
        common::chain::mine_after_a_pass(&stack.devnet).await;
        if let Some(sweep) = confirmed_sweeps(&stack, factory).await.first() {
            break sweep.clone();
        }
    };
    let kicked = bitcoin::OutPoint::new(kickoff.compute_txid(), 0);
    let tx = the_sweep_of(&stack, kicked, &sweep).await;
    assert_eq!(
        tx.compute_wtxid(),
        stored.compute_wtxid(),
        "the sweep stored before the restart, signature and all"
    );
    let held = kickoff.output[0].value;
    assert_eq!(sweep["spent_sat"], held.to_sat());
    println!(
        "the tree's kickoff on chain: {held} in its output, {} back to the LSP in one sweep \
         ({} fee); nothing else of the tree went on chain",
        tx.output[0].value,
        held - tx.output[0].value
    );
    for run in &old_runs {
        let view = common::pay::admin_channel(&stack, leaf_of(run).channel).await;
        assert!(
            view["claims"].as_array().is_none_or(|c| c.is_empty()),
            "no channel is walked: {view}"
        );
    }
    // The lost close is forgotten: the ladder no longer shows the factory closing by it.
    let ladder = common::admin_get(&stack.http_url(), "/admin/ladder").await;
    assert!(
        ladder["factories"][0]["close_txid"].is_null(),
        "the close {close} is dropped: {ladder}"
    );
    assert!(!common::chain::confirmed(&stack, close.parse().expect("txid")).await);
}

/// The transaction on chain that spent `out`.
async fn spent_by(stack: &common::Stack, out: bitcoin::OutPoint) -> bitcoin::Transaction {
    let txid = common::chain::spender(stack, out.txid, out.vout)
        .await
        .unwrap_or_else(|| panic!("{out} is spent"));
    stack
        .devnet
        .rpc()
        .get_raw_transaction(&txid)
        .await
        .expect("rpc")
        .expect("on chain")
}

/// The sweep the ladder lists (`sweep`) is what spent `input`: one input, one output, by key
/// path.
async fn the_sweep_of(
    stack: &common::Stack,
    input: bitcoin::OutPoint,
    sweep: &serde_json::Value,
) -> bitcoin::Transaction {
    let tx = spent_by(stack, input).await;
    assert_eq!(
        Some(tx.compute_txid().to_string().as_str()),
        sweep["txid"].as_str()
    );
    assert_eq!((tx.input.len(), tx.output.len()), (1, 1), "{tx:?}");
    assert_eq!(tx.input[0].witness.len(), 1, "a key-path spend");
    tx
}

/// The confirmed sweeps of `factory` in the ladder view.
async fn confirmed_sweeps(
    stack: &common::Stack,
    factory: shared::types::FactoryId,
) -> Vec<serde_json::Value> {
    let ladder = common::admin_get(&stack.http_url(), "/admin/ladder").await;
    ladder["factories"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["id"] == factory.0)
        .flat_map(|f| f["sweeps"].as_array().cloned().unwrap_or_default())
        .filter(|s| !s["confirmed_height"].is_null())
        .collect()
}

/// The node takes nothing under 5 sat/vB (`-minrelaytxfee`), more than the channels' opening
/// rate: the key-path close is signed at today's rate (and would be signed again if the rate
/// climbed while it waits), so it confirms, and the ladder shows the version that did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_close_pays_what_the_node_takes_today() {
    let devnet = devnet::DevnetConfig {
        bitcoind_args: vec!["-minrelaytxfee=0.00005".into()],
        ..devnet::DevnetConfig::default()
    };
    let a = factory_a_on(devnet, Amount::from_sat(3_000_000)).await;
    every_member_moves(&a).await;
    let FactoryA {
        stack,
        runs: old_runs,
        ..
    } = a;
    let path = leaf_of(&old_runs[0]).path;
    let close = common::chain::spent_by(
        stack.devnet.esplora_url(),
        path.funding_outpoint(),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!((close.input.len(), close.output.len()), (1, 1));
    let fee = path.funding_output().value - close.output[0].value;
    let floor = bitcoin::FeeRate::from_sat_per_vb_u32(5);
    assert!(
        fee / close.weight() >= floor,
        "the close pays {fee} for {} vB",
        close.vsize()
    );
    stack.devnet.mine(1).await.expect("mine");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let ladder = common::admin_get(&stack.http_url(), "/admin/ladder").await;
        let a = &ladder["factories"][0];
        if a["stage"] == "closed" {
            assert_eq!(
                a["close_txid"],
                close.compute_txid().to_string(),
                "{ladder}"
            );
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "A closes: {ladder}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A factory of four: both members of one half of its tree move out (together, into one new
/// factory), the other two stay and are away. At the last safe height the LSP walks the
/// stayers' paths only; the half every member left comes back with one key-path spend of the
/// output it hangs from, so none of its kickoff, state, leaves, commitments or claims reach the
/// chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_of_the_tree_every_member_left_comes_back_in_one_transaction() {
    let options = lsp_server::FactoryOptions {
        gather_secs: 5,
        ..common::fast_factory(4, 2)
    };
    let stack = common::start_on(devnet::DevnetConfig::default(), options, payments(), None).await;
    common::fund_lsp(&stack, Amount::from_sat(3_000_000)).await;
    let storage = tempfile::tempdir().expect("temp dir");
    let config = common::swarm_config(&stack, storage.path());
    let mut runs = funded_factory(&stack, &config, spec(), 4).await;
    runs.sort_by_key(|r| leaf_of(r).channel.client);
    let (stores, balances) = with_balances(&stack, &runs).await;

    // Clients 2 and 3 (one half of the tree) move into B together.
    let movers = [&runs[2], &runs[3]];
    move_together(&stack, storage.path(), &movers, &stores[2..]).await;

    // The half they left is one subtree: the sweep takes the output it hangs from.
    let proposal = leaf_of(&runs[0]).path.proposal().clone();
    let tree = shared::tree::FactoryTree::build(&proposal).expect("the tree");
    let left = [2, 3].map(shared::types::ClientId).into_iter().collect();
    let frontier = shared::lifecycle::released_frontier(&tree, &left);
    assert_eq!(frontier.len(), 1, "one subtree: {frontier:?}");
    let half = tree.node(frontier[0]).expect("a node").clone();
    assert_eq!((half.signers.start.0, half.signers.end.0), (2, 4));

    // From the last safe height, a block every pass until the stayers' channels are claimed
    // and the half is swept.
    let retire_at = runs[..2]
        .iter()
        .map(|r| leaf_of(r).path.last_walk_start().to_consensus_u32())
        .min()
        .expect("two stayers");
    let timeout = leaf_of(&runs[0]).path.timeout().to_consensus_u32();
    let now = common::chain::tip(&stack).await;
    stack
        .devnet
        .mine(retire_at.saturating_sub(now + 1))
        .await
        .expect("mine");
    let claimed = |view: &serde_json::Value| claims_confirmed(view, &["ToLocal", "LStock"]);
    let factory = leaf_of(&runs[0]).channel.factory;
    let sweep = loop {
        let tip = common::chain::tip(&stack).await;
        assert!(
            tip < timeout + 40,
            "the LSP did not take the factory on chain: {}",
            common::admin_get(&stack.http_url(), "/admin/ladder").await
        );
        common::chain::mine_after_a_pass(&stack.devnet).await;
        let mut done = true;
        for run in &runs[..2] {
            done &= claimed(&common::pay::admin_channel(&stack, leaf_of(run).channel).await);
        }
        let sweeps = confirmed_sweeps(&stack, factory).await;
        if done && !sweeps.is_empty() {
            assert_eq!(sweeps.len(), 1, "{sweeps:?}");
            break sweeps[0].clone();
        }
    };

    let tx = the_sweep_of(&stack, half.spent_outpoint(), &sweep).await;
    assert_eq!(sweep["spent_sat"], half.prevout.value.to_sat());
    assert!(
        !common::chain::confirmed(&stack, half.txid()).await,
        "the half's own tree transaction never went on chain"
    );
    for (run, balance) in runs[..2].iter().zip(&balances) {
        let paid = spent_by(&stack, leaf_of(run).path.channel_outpoint()).await;
        assert!(
            paid.output.iter().any(|o| o.value == *balance),
            "the stayer is paid its {balance}: {paid:?}"
        );
    }
    for run in movers {
        let view = common::pay::admin_channel(&stack, leaf_of(run).channel).await;
        assert!(
            view["claims"].as_array().is_none_or(|c| c.is_empty()),
            "no moved channel is walked: {view}"
        );
    }
    println!(
        "half of a factory of four, both members moved: {} held, {} back to the LSP in one \
         sweep ({} fee, {} vB), instead of its kickoff, state, 2 leaves, 2 commitments and 4 claims",
        half.prevout.value,
        tx.output[0].value,
        half.prevout.value - tx.output[0].value,
        tx.vsize()
    );
}
