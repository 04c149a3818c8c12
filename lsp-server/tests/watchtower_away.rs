//! The keyless watchtower (`watchtower` binary, a real process) answering for a wallet that is
//! away, with nobody pressing a button anywhere:
//!
//! 1. A native wallet configured with the tower gets test sats: the provider's first
//!    commitments are revoked, and the wallet sends the tower its exit kit and the penalties
//!    of those commitments, signed with its identity key.
//! 2. The wallet goes away (its client stops). The tower is killed and started again on its
//!    data dir: what it was given survives.
//! 3. The other member publishes the shared part of the tree, spending the factory's funding
//!    output. The tower walks the away wallet's path to its leaf by itself.
//! 4. As the leaf reaches the mempool, the provider publishes its revoked commitment on the
//!    away wallet's channel. The tower publishes the penalty the wallet signed, which takes every
//!    output and pays the wallet's own address, before the provider's `to_self_delay` passes.
//!
//! And with the provider gone too: a cheater's superseded leaf state loses to the newest one,
//! which the tower publishes for the away wallet.

mod common;

use std::time::{Duration, Instant};

use bitcoin::key::Secp256k1;
use bitcoin::{Address, Amount, Network};
use common::chain::{
    broadcast, broadcast_on, confirmed, known, known_at, lsp_commitment, publish_path,
    publish_path_on, spender, tip,
};
use common::pay::{leaf_of, start_payer_config, two_funded, two_funded_on};
use common::swarm::ClientSpec;
use common::tower::TowerProcess;
use lsp_server::PaymentOptions;
use shared::exit::ExitKit;
use shared::tower::{Appointment, SignedAppointment};
use wallet::pay::{MemoryPayStore, PayConfig, PayEvent, PayStore, TowerLink};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tower_walks_and_punishes_for_a_wallet_that_is_away() {
    let (stack, runs, _storage) = two_funded(PaymentOptions::default(), ClientSpec::honest()).await;
    let (away, other) = (&runs[0], &runs[1]);
    let tower_dir = tempfile::tempdir().expect("temp dir");
    let addr = common::ln::free_addr();
    let tower = TowerProcess::start(&stack.devnet, tower_dir.path(), addr).await;

    let leaf = leaf_of(away);
    let channel = leaf.channel;
    refuses_what_it_cannot_check(&tower, away.keys, &leaf).await;
    let Watched {
        mut payer,
        xonly,
        home,
    } = watched(&stack, away, &tower).await;
    payer.faucet(Amount::from_sat(5_000), 30).await;

    // The tower holds a penalty for every revoked commitment of the provider.
    let revoked = lsp_commitment(&stack, channel.client.0, 0).expect("the LSP's commitment 0");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut updates = 0;
    loop {
        while let Ok(event) = payer.events.try_recv() {
            if matches!(event, PayEvent::TowerUpdated { .. }) {
                updates += 1;
            }
        }
        let held = tower.status(&xonly, channel).await;
        let revoked_now = (0..)
            .take_while(|n| lsp_commitment(&stack, channel.client.0, n + 1).is_some())
            .count();
        if updates > 0 && held["penalties"].as_u64() >= Some(revoked_now.max(1) as u64) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the tower gets the penalties: {held}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The wallet says so (once it has read the tower's answer, at its next tick).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let words = payer.handle.snapshot().await.expect("snapshot").watchtower;
        if words.as_deref().is_some_and(|w| w.contains("holds")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the wallet says what its tower holds: {words:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The wallet goes away; the tower restarts on its data dir.
    payer.task.abort();
    tower.kill().await;
    let tower = TowerProcess::start(&stack.devnet, tower_dir.path(), addr).await;
    assert!(tower.status(&xonly, channel).await["penalties"].as_u64() >= Some(1));

    // The other member publishes the shared part of the tree: the funding output is spent.
    publish_path(&stack, &leaf_of(other).path, false).await;
    let leaf_txid = revoked.input[0].previous_output.txid;
    let deadline = Instant::now() + Duration::from_secs(120);
    'walk: loop {
        for _ in 0..8 {
            if known(&stack, leaf_txid).await {
                break 'walk;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert!(
            Instant::now() < deadline,
            "the tower publishes the away wallet's leaf"
        );
        stack.devnet.mine(1).await.expect("mine");
    }
    let walked = tower.status(&xonly, channel).await;
    assert!(
        walked["report"]["published"].as_array().is_some_and(|p| p
            .iter()
            .any(|l| l.as_str().is_some_and(|l| l.starts_with("Leaf")))),
        "the tower itself published the leaf: {walked}"
    );

    // The provider cheats with its revoked commitment, behind the leaf.
    broadcast(&stack, &revoked)
        .await
        .expect("the revoked commitment enters the mempool behind the leaf");
    stack.devnet.mine(1).await.expect("mine");
    let cheated_at = tip(&stack).await;
    let revoked_txid = revoked.compute_txid();
    let penalty = 'found: loop {
        // Every output but the anchors is the penalty's.
        for vout in 0..revoked.output.len() as u32 {
            if let Some(p) = spender(&stack, revoked_txid, vout).await {
                break 'found p;
            }
        }
        assert!(
            tip(&stack).await < cheated_at + 5,
            "the tower answers within the provider's to_self_delay"
        );
        tokio::time::sleep(Duration::from_millis(800)).await;
        stack.devnet.mine(1).await.expect("mine");
    };
    stack.devnet.mine(1).await.expect("mine");
    let tx = common::ln::transaction(&stack, penalty).await;
    assert!(
        tx.input
            .iter()
            .all(|i| i.previous_output.txid == revoked_txid),
        "the penalty spends only the revoked commitment"
    );
    let taken: Amount = revoked.output.iter().map(|o| o.value).sum();
    let paid: Amount = tx
        .output
        .iter()
        .filter(|o| o.script_pubkey == home.script_pubkey())
        .map(|o| o.value)
        .sum();
    assert_eq!(
        tx.output.len(),
        1,
        "everything goes to the wallet's address"
    );
    let spent: Amount = tx
        .input
        .iter()
        .map(|i| revoked.output[i.previous_output.vout as usize].value)
        .sum();
    assert!(
        spent + Amount::from_sat(500) >= taken,
        "the penalty takes every output but the anchors: {spent} of {taken}"
    );
    assert!(
        paid + Amount::from_sat(2_000) >= spent,
        "the wallet gets them less a fee: {paid} of {spent}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let report = tower.status(&xonly, channel).await;
        if report["report"]["penalty_confirmed"] == penalty.to_string().as_str() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the tower reports the penalty: {report}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// A running wallet of `run` that keeps `tower` up to date.
struct Watched {
    payer: common::pay::Payer,
    /// Its identity key (the tower's index).
    xonly: bitcoin::secp256k1::XOnlyPublicKey,
    /// Its own on-chain address, where its penalties pay.
    home: Address,
}

/// Starts the wallet of `run` with `tower` as its watchtower, and waits until its channel is
/// open.
async fn watched(
    stack: &common::Stack,
    run: &common::swarm::ClientRun,
    tower: &TowerProcess,
) -> Watched {
    let (xonly, _) = run.keys.x_only_public_key();
    let home = Address::p2tr(&Secp256k1::new(), xonly, None, Network::Regtest);
    let mut config = PayConfig::new(Network::Regtest, run.keys, vec![leaf_of(run)]);
    config.watchtower = Some(TowerLink {
        url: tower.url.clone(),
        destination: home.script_pubkey(),
    });
    let mut payer = start_payer_config(
        &stack.ws_url(),
        stack.devnet.esplora_url(),
        config,
        MemoryPayStore::default(),
    );
    payer.ready(60).await;
    Watched { payer, xonly, home }
}

/// The tower's answers to a body it cannot check, and to a replay: nothing is stored.
async fn refuses_what_it_cannot_check(
    tower: &TowerProcess,
    keys: bitcoin::secp256k1::Keypair,
    leaf: &wallet::pay::PayLeaf,
) {
    let post = |body: serde_json::Value| async move {
        let response = reqwest::Client::new()
            .post(format!("{}/v1/appointments", tower.url))
            .json(&body)
            .send()
            .await
            .expect("the tower answers");
        let status = response.status().as_u16();
        (
            status,
            response
                .json::<serde_json::Value>()
                .await
                .unwrap_or_default(),
        )
    };
    let appointment = Appointment {
        moved: false,
        channel: leaf.channel,
        sequence: 1,
        kit: ExitKit::new(leaf.path.clone()).expect("a signed path"),
        penalties: vec![],
    };
    let signed = SignedAppointment::sign(&keys, &appointment, &mut rand::thread_rng());
    let mut forged = signed.clone();
    forged.body = forged.body.replace("\"sequence\":1", "\"sequence\":9");
    let (status, answer) = post(serde_json::to_value(&forged).unwrap()).await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("signature"),
        "{answer}"
    );
    let (status, _) = post(serde_json::json!({ "identity": "nonsense" })).await;
    assert!((400..500).contains(&status), "malformed JSON: {status}");
    let (xonly, _) = keys.x_only_public_key();
    assert!(
        tower.status(&xonly, leaf.channel).await.is_null(),
        "nothing stored"
    );
    let (status, answer) = post(serde_json::to_value(&signed).unwrap()).await;
    assert_eq!(
        (status, answer["penalties"].as_u64()),
        (200, Some(0)),
        "{answer}"
    );
    let (status, answer) = post(serde_json::to_value(&signed).unwrap()).await;
    assert_eq!(status, 409, "a replay: {answer}");
}

/// A wallet that bought liquidity (its leaf is at state 1) goes away, and so does the provider.
/// Someone publishes the shared part of the tree, and a cheater tries to get the superseded
/// leaf state 0 in (it would hand the old L-stock back to the provider's script path). The
/// tower walks the wallet's path and gets leaf state 1 in first, `S` blocks ahead; state 0 then
/// has no input.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tower_gets_the_newest_leaf_state_in_for_a_wallet_that_is_away() {
    let spec = ClientSpec {
        channel: Amount::from_sat(100_000),
        liquidity: Amount::from_sat(30_000),
        ..ClientSpec::honest()
    };
    let (stack, runs, _storage) = two_funded(PaymentOptions::default(), spec).await;
    let (away, other) = (&runs[0], &runs[1]);
    let tower_dir = tempfile::tempdir().expect("temp dir");
    let tower = TowerProcess::start(&stack.devnet, tower_dir.path(), common::ln::free_addr()).await;
    let leaf = leaf_of(away);
    let Watched {
        mut payer, xonly, ..
    } = watched(&stack, away, &tower).await;
    payer.faucet(Amount::from_sat(30_000), 30).await;
    let (bought, _) = payer.buy_liquidity(Amount::from_sat(10_000), 60).await;
    assert_eq!(bought.leaf.0, 1);
    let deadline = Instant::now() + Duration::from_secs(30);
    while tower.status(&xonly, leaf.channel).await["leaf_states"].as_u64() != Some(2) {
        assert!(
            Instant::now() < deadline,
            "the tower gets the new leaf state"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let state = payer
        .store
        .clone()
        .load()
        .await
        .expect("the wallet's store");
    let states = wallet::pay::leaf_record(&state, &leaf).states;
    let newest = states.states()[1].node.signed_tx().expect("signed");
    let stale = states.states()[0].node.signed_tx().expect("signed");
    assert_eq!(stale.compute_txid(), leaf.path.leaf().txid());

    // The wallet and the provider are gone.
    payer.handle.stop();
    payer.task.await.expect("the wallet stops");
    let common::Stack { devnet, lsp, .. } = stack;
    lsp.stop().await.expect("the provider stops");

    // The shared part of the tree goes on chain; the cheater tries the stale leaf state at
    // every block, the tower publishes the newest when its lock allows.
    publish_path_on(&devnet, &leaf_of(other).path, false).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let _ = broadcast_on(&devnet, &stale).await;
        tokio::time::sleep(Duration::from_millis(700)).await;
        devnet.mine(1).await.expect("mine");
        if known_at(&devnet, newest.compute_txid()).await
            || known_at(&devnet, stale.compute_txid()).await
        {
            break;
        }
        assert!(Instant::now() < deadline, "a leaf state gets in");
    }
    devnet.mine(1).await.expect("mine");
    assert!(
        known_at(&devnet, newest.compute_txid()).await,
        "the newest leaf state got in"
    );
    assert!(
        !known_at(&devnet, stale.compute_txid()).await,
        "the stale one did not"
    );
    let refused = broadcast_on(&devnet, &stale).await.unwrap_err();
    assert!(
        refused.contains("missing") || refused.contains("spent") || refused.contains("conflict"),
        "the stale state has no input: {refused}"
    );
    let report = tower.status(&xonly, leaf.channel).await;
    let published = report["report"]["published"].to_string();
    assert!(
        published.contains(&newest.compute_txid().to_string()),
        "the tower published it: {report}"
    );
}

/// The network takes 5 sat/vB (bitcoind's relay floor) and the factory's tree was signed at 1.
/// A miner takes the kickoff anyway (`generateblock`), so the funding output is spent while
/// the wallet is away. A tower run with a fee wallet (`--fee-wallet`, funded by its operator)
/// gets the rest of the wallet's path in, each step with a child through its anchor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tower_with_a_fee_wallet_walks_below_the_relay_floor() {
    let devnet = devnet::DevnetConfig {
        bitcoind_args: vec!["-minrelaytxfee=0.00005".into()],
        ..devnet::DevnetConfig::default()
    };
    let (stack, runs, _storage) =
        two_funded_on(devnet, PaymentOptions::default(), ClientSpec::honest()).await;
    let (away, other) = (&runs[0], &runs[1]);
    let tower_dir = tempfile::tempdir().expect("temp dir");
    let tower = TowerProcess::start_with(
        &stack.devnet,
        tower_dir.path(),
        common::ln::free_addr(),
        &["--fee-wallet", "--network", "regtest"],
    )
    .await;
    let wallet: serde_json::Value = reqwest::get(format!("{}/v1/wallet", tower.url))
        .await
        .expect("the tower answers")
        .json()
        .await
        .expect("JSON");
    let address: bitcoin::Address<bitcoin::address::NetworkUnchecked> = wallet["address"]
        .as_str()
        .expect("an address to fund")
        .parse()
        .expect("an address");
    stack
        .devnet
        .faucet(&address.assume_checked(), Amount::from_sat(200_000))
        .await
        .expect("faucet");
    stack.devnet.mine(1).await.expect("mine");

    let leaf = leaf_of(away);
    let Watched {
        mut payer, xonly, ..
    } = watched(&stack, away, &tower).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while tower.status(&xonly, leaf.channel).await.is_null() {
        assert!(
            Instant::now() < deadline,
            "the wallet registers with the tower"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    payer.handle.stop();
    let _ = (&mut payer.task).await;

    // A miner takes the kickoff, which pays less than the node relays.
    let kickoff = leaf_of(other).path.nodes()[0].signed_tx().expect("signed");
    assert!(
        broadcast(&stack, &kickoff).await.is_err(),
        "the node refuses the tree's own fee rate"
    );
    let _: serde_json::Value = stack
        .devnet
        .rpc()
        .call(
            "generateblock",
            &[
                serde_json::json!(stack.devnet.faucet_address().to_string()),
                serde_json::json!([bitcoin::consensus::encode::serialize_hex(&kickoff)]),
            ],
        )
        .await
        .expect("a block with the kickoff");

    // The tower walks the rest of the way, paying each step's fee through its anchor.
    let leaf_txid = leaf.path.leaf().txid();
    let deadline = Instant::now() + Duration::from_secs(180);
    while !confirmed(&stack, leaf_txid).await {
        assert!(
            Instant::now() < deadline,
            "the leaf confirms: {}",
            tower.status(&xonly, leaf.channel).await
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        stack.devnet.mine(1).await.expect("mine");
    }
    let report = tower.status(&xonly, leaf.channel).await;
    let published = report["report"]["published"].to_string();
    assert!(
        published.contains(&format!("{leaf_txid} with child")),
        "the leaf went in with a fee-paying child: {report}"
    );
}
