//! The LSP's watchtower against a client that cheats, with nobody at the LSP pressing a button:
//! - a client that was paid, paid most of it away, walked its own tree path (it holds every
//!   signature) and published its revoked commitment loses that commitment's every output to
//!   the LSP's penalty, well before its own `to_local` claim could open. Afterwards the channel
//!   is closed at the LSP: payments into it are refused with the reason, and the admin view
//!   shows it closed with the penalty confirmed;
//! - a payer that stops after learning the preimage and publishes its commitment with the HTLC
//!   on it loses the HTLC to the LSP's success claim;
//! - a payer that stops after learning the preimage and publishes nothing: at its deadline the
//!   LSP walks the payer's tree path by itself, publishes its own commitment and claims the
//!   HTLC, all before the payer's timeout could open;
//! - a payee that never tells the LSP its preimage and claims the HTLC on chain instead: the
//!   LSP reads the preimage from that claim, the payer is told it paid, and the LSP collects the
//!   payer's HTLC on chain before its timeout could open.

mod common;

use bitcoin::hashes::Hash;
use bitcoin::Amount;
use common::chain::{broadcast, confirmed, mine_after_a_pass, publish_path, spender, tip};
use common::pay::{admin_channel, claims_confirmed, leaf_of};
use common::puppet::{setup, setup_on, Setup};
use common::raw;
use lsp_server::PaymentOptions;
use shared::channel::ClaimKind;
use shared::pay::{ChannelPolicy, PayOutcome, PayRequest};
use shared::wire::WireMsg;
use wallet::pay::PaymentStatus;

/// The puppet pays wallet 0 2,000 sats: its HTLC commits, the payee is paid and the LSP
/// fulfills upstream; the puppet receives the preimage and then answers nothing more.
async fn pay_and_stop(
    stack: &common::Stack,
    payer: &mut common::pay::Payer,
    p: &mut common::puppet::Puppet,
    join_fee: Amount,
) -> common::puppet::Offered {
    let invoice = payer
        .handle
        .invoice(Amount::from_sat(2_000), "the payer will stop")
        .await
        .expect("invoice")
        .invoice;
    let offered = p.offer(stack, &invoice).await;
    p.commit().await;
    while !p.channel.known_preimages().contains_key(&offered.hash) {
        p.step().await;
    }
    payer
        .balance_becomes(Amount::from_sat(50_000 - 5_006 + 2_000) - join_fee, 30)
        .await;
    offered
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_publishing_its_revoked_commitment_loses_it_to_the_lsps_penalty() {
    let Setup {
        stack,
        runs,
        mut payer,
        puppet: mut p,
        join_fee,
        ..
    } = setup(PaymentOptions::default()).await;

    let Cheat {
        revoked,
        held,
        invoice,
        confirmed_at,
    } = pay_away_and_cheat(&stack, &runs, &mut payer, &mut p, join_fee).await;
    let revoked_txid = revoked.compute_txid();

    // The LSP's watch answers by itself. The cheater's own claim opens `to_self_delay` blocks
    // after its commitment confirmed; the penalty must be in before that.
    let delay = ChannelPolicy::for_network(bitcoin::Network::Regtest)
        .to_self_delay
        .to_blocks();
    // The cheater's `to_local`: its whole balance (the LSP pays the commitment's fee).
    let to_local = revoked
        .output
        .iter()
        .position(|o| o.value == held)
        .expect("the cheater's to_local") as u32;
    let penalty = 'found: {
        while tip(&stack).await < confirmed_at + delay - 1 {
            for _ in 0..20 {
                if let Some(txid) = spender(&stack, revoked_txid, to_local).await {
                    break 'found txid;
                }
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
            stack.devnet.mine(1).await.expect("mine");
        }
        panic!("the LSP did not answer the revoked commitment before the cheater's lock opened");
    };
    stack.devnet.mine(1).await.expect("mine");
    assert!(
        tip(&stack).await < confirmed_at + delay,
        "confirmed before the cheater's claim could"
    );
    assert!(confirmed(&stack, penalty).await, "the penalty confirmed");
    // The penalty took every output of the revoked commitment but its anchor.
    for vout in 0..revoked.output.len() as u32 {
        let value = revoked.output[vout as usize].value;
        if value <= Amount::from_sat(330) {
            continue; // the anchor
        }
        assert_eq!(
            spender(&stack, revoked_txid, vout).await,
            Some(penalty),
            "output {vout} taken by the penalty"
        );
    }

    // The LSP shows the channel closed, with its penalty confirmed.
    let channel = leaf_of(&runs[1]).channel;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let view = loop {
        let view = admin_channel(&stack, channel).await;
        if view["claims"][0]["confirmed"] == true {
            break view;
        }
        assert!(std::time::Instant::now() < deadline, "admin view: {view}");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    };
    assert_eq!(view["state"], "closed", "{view}");
    assert_eq!(view["claims"][0]["kind"], "Penalty", "{view}");
    assert_eq!(view["claims"][0]["txid"], penalty.to_string(), "{view}");

    // Nothing routes into or out of the closed channel any more. The LSP tells the cheater
    // so when it asks to pay; the other member's wallet, whose factory is on chain too, was
    // told its channel is closing and refuses to pay, saying why.
    let request = PayRequest {
        channel,
        htlc: p.channel.next_htlc_id(),
        invoice: invoice.clone(),
    };
    raw::send(&mut p.ws, WireMsg::PayRequest(request)).await;
    // (It was told "closing" when the factory's tree went out, then "closed".)
    p.until_other(
        |m| matches!(m, WireMsg::ChannelClosed(c) if c.channel == channel && c.state == "closing"),
    )
    .await;
    p.until_other(
        |m| matches!(m, WireMsg::ChannelClosed(c) if c.channel == channel && c.state == "closed"),
    )
    .await;
    let (invoice, _) = p.invoice(&stack, Amount::from_sat(1_000)).await;
    let refused = payer
        .handle
        .pay(&invoice)
        .await
        .expect_err("a closed channel takes no payment");
    assert!(
        refused.to_string().contains("no more payments"),
        "{refused}"
    );
    let snapshot = payer.handle.snapshot().await.expect("snapshot");
    assert!(snapshot.channels.iter().all(|c| c.closed.is_some()));
    assert_eq!(
        snapshot.balance,
        Amount::ZERO,
        "nothing spendable over a closing channel"
    );
}

/// What [`pay_away_and_cheat`] did.
struct Cheat {
    /// The puppet's revoked commitment, confirmed.
    revoked: bitcoin::Transaction,
    /// What the puppet held in it.
    held: Amount,
    /// The invoice it paid with what it held.
    invoice: String,
    /// The height the revoked commitment confirmed at.
    confirmed_at: u32,
}

/// The puppet keeps a copy of its commitment holding 5,000 sats (less its join fee), pays all
/// but a few hundred away (so that commitment is revoked), walks its tree path and gets the
/// revoked commitment confirmed.
async fn pay_away_and_cheat(
    stack: &common::Stack,
    runs: &[common::swarm::ClientRun],
    payer: &mut common::pay::Payer,
    p: &mut common::puppet::Puppet,
    join_fee: Amount,
) -> Cheat {
    // The puppet holds 5,000 sats (less its join fee) in its latest commitment, and keeps a
    // copy of it.
    let revoked = p
        .channel
        .latest_signed()
        .cloned()
        .expect("a signed commitment");
    let held = p.channel.spec().client_balance;
    assert_eq!(held, Amount::from_sat(5_000) - join_fee);

    // It pays all but a few hundred away: that commitment is revoked.
    let spent = held - Amount::from_sat(500);
    let invoice = payer
        .handle
        .invoice(spent, "spent before cheating")
        .await
        .expect("invoice")
        .invoice;
    let outcome = p.pay(stack, &invoice).await;
    assert!(matches!(outcome, PayOutcome::Paid { .. }), "{outcome:?}");
    p.commit().await;
    assert!(p.channel.spec().client_balance < Amount::from_sat(1_000));
    // The payer paid its join fee from the faucet's 50,000, paid the puppet 5,000 plus a 6-sat
    // fee, and received `spent` back.
    payer
        .balance_becomes(Amount::from_sat(50_000 - 5_006) - join_fee + spent, 30)
        .await;

    // The cheat: its tree path, then the revoked commitment.
    let path = leaf_of(&runs[1]).path;
    publish_path(stack, &path, true).await;
    broadcast(stack, &revoked)
        .await
        .expect("the revoked commitment is valid on chain");
    stack.devnet.mine(1).await.expect("mine");
    let confirmed_at = tip(stack).await;
    let revoked_txid = revoked.compute_txid();
    assert!(confirmed(stack, revoked_txid).await);

    Cheat {
        revoked,
        held,
        invoice,
        confirmed_at,
    }
}

/// A busy mempool while the LSP's penalty waits: the fee estimate climbs from 1 to 20 sat/vB
/// (the devnet's knob) before any block takes the penalty. The LSP signs it again at the new
/// rate, the node replaces the old one (BIP-125), and the version that confirms pays it; the
/// admin view follows the version that confirmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_penalty_is_signed_again_when_the_fee_climbs() {
    let Setup {
        stack,
        runs,
        mut payer,
        puppet: mut p,
        join_fee,
        ..
    } = setup(PaymentOptions::default()).await;
    let Cheat { revoked, held, .. } =
        pay_away_and_cheat(&stack, &runs, &mut payer, &mut p, join_fee).await;
    let revoked_txid = revoked.compute_txid();
    let to_local = revoked
        .output
        .iter()
        .position(|o| o.value == held)
        .expect("the cheater's to_local") as u32;
    let paid_rate = |tx: &bitcoin::Transaction| {
        let spent: Amount = tx
            .input
            .iter()
            .map(|i| revoked.output[i.previous_output.vout as usize].value)
            .sum();
        let out: Amount = tx.output.iter().map(|o| o.value).sum();
        (spent - out) / tx.weight()
    };
    let in_mempool = |not: Option<bitcoin::Txid>| {
        let stack = &stack;
        async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            loop {
                if let Some(txid) = spender(stack, revoked_txid, to_local).await {
                    if Some(txid) != not {
                        return txid;
                    }
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "a penalty in the mempool"
                );
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
        }
    };
    let first = in_mempool(None).await;
    let first_rate = paid_rate(&common::ln::transaction(&stack, first).await);
    let busy = bitcoin::FeeRate::from_sat_per_vb_u32(20);
    assert!(
        first_rate < busy,
        "signed for a quiet mempool: {first_rate}"
    );

    stack.devnet.set_fee_estimate(20.0);
    let second = in_mempool(Some(first)).await;
    stack.devnet.mine(1).await.expect("mine");
    assert!(confirmed(&stack, second).await, "the replacement confirmed");
    let second_rate = paid_rate(&common::ln::transaction(&stack, second).await);
    assert!(second_rate >= busy, "pays today's rate: {second_rate}");

    let channel = leaf_of(&runs[1]).channel;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let view = admin_channel(&stack, channel).await;
        if view["claims"][0]["confirmed"] == true {
            assert_eq!(view["claims"][0]["txid"], second.to_string(), "{view}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "admin view: {view}");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    stack.devnet.set_fee_estimate(0.0);
}

/// A payer that learns the preimage and then stops: it never answers the round that would
/// settle its HTLC, walks its tree path and publishes its commitment with the HTLC still on it,
/// hoping to time it out once its expiry passes. The LSP's watch claims the HTLC with the
/// preimage its payee revealed, long before the payer's timeout path opens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payer_that_stops_after_learning_the_preimage_loses_the_htlc_to_the_lsp() {
    let Setup {
        stack,
        runs,
        mut payer,
        puppet: mut p,
        join_fee,
        ..
    } = setup(PaymentOptions::default()).await;
    let offered = pay_and_stop(&stack, &mut payer, &mut p, join_fee).await;
    let expiry = offered.expiry;
    let commitment = p
        .channel
        .latest_signed()
        .cloned()
        .expect("its commitment, with the HTLC on it");
    let htlc_out = commitment
        .output
        .iter()
        .position(|o| o.value == offered.amount)
        .expect("the HTLC output") as u32;

    // The cheat: the tree, then its commitment with the HTLC.
    publish_path(&stack, &leaf_of(&runs[1]).path, true).await;
    broadcast(&stack, &commitment)
        .await
        .expect("its commitment");
    stack.devnet.mine(1).await.expect("mine");
    let txid = commitment.compute_txid();
    assert!(confirmed(&stack, txid).await);

    // The LSP's success claim needs one block on the payer's commitment; the payer's timeout
    // needs the expiry and its own `to_self_delay` after the commitment.
    let claim = 'found: {
        while tip(&stack).await < expiry {
            for _ in 0..20 {
                if let Some(t) = spender(&stack, txid, htlc_out).await {
                    break 'found t;
                }
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
            stack.devnet.mine(1).await.expect("mine");
        }
        panic!("the LSP did not claim the HTLC before its expiry");
    };
    stack.devnet.mine(1).await.expect("mine");
    assert!(confirmed(&stack, claim).await);
    assert!(
        tip(&stack).await < expiry,
        "claimed before the payer's timeout could open"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let view = admin_channel(&stack, p.id).await;
        let claims = view["claims"].as_array().cloned().unwrap_or_default();
        let success = claims.iter().find(|c| {
            c["kind"]
                .as_str()
                .is_some_and(|k| k.starts_with("HtlcSuccess"))
        });
        if let Some(c) = success {
            assert_eq!(c["txid"], claim.to_string(), "{view}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{view}");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// A payee that keeps its preimage from the LSP and claims the HTLC on chain: it walks its
/// tree path, publishes its commitment with the LSP's HTLC on it and spends that output with
/// the preimage. The LSP's watch reads the preimage from the claim, settles the payment (the
/// payer hears "paid" with the right preimage) and, since the factory is on chain, collects
/// the payer's HTLC there with it: the LSP loses nothing to a payee that settles on chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payee_that_claims_on_chain_tells_the_lsp_the_preimage() {
    let Setup {
        stack,
        runs,
        payer,
        puppet: mut p,
        ..
    } = setup(PaymentOptions::default()).await;
    let policy = ChannelPolicy::for_network(bitcoin::Network::Regtest);
    let amount = Amount::from_sat(3_000);
    let (invoice, preimage) = p.invoice(&stack, amount).await;
    let hash = bitcoin::hashes::sha256::Hash::hash(&preimage);
    // The payer's HTLC expires no earlier than this.
    let payer_expiry = policy.payer_expiry(tip(&stack).await);
    let pay = {
        let handle = payer.handle.clone();
        tokio::spawn(async move { handle.pay(&invoice).await })
    };

    // The LSP's HTLC commits on the puppet's channel; the puppet never fulfills it.
    p.until_lsp_htlc(hash).await;
    let commitment = p
        .channel
        .latest_signed()
        .cloned()
        .expect("its commitment, with the LSP's HTLC on it");
    let htlc_out = commitment
        .output
        .iter()
        .position(|o| o.value == amount)
        .expect("the HTLC output") as u32;

    // On chain: its tree path, its commitment, then the HTLC with the preimage (as soon as the
    // success leaf's lock allows).
    publish_path(&stack, &leaf_of(&runs[1]).path, true).await;
    broadcast(&stack, &commitment)
        .await
        .expect("its commitment");
    stack.devnet.mine(1).await.expect("mine");
    let txid = commitment.compute_txid();
    let secp = bitcoin::secp256k1::Secp256k1::new();
    let (mine, _) =
        bitcoin::secp256k1::Keypair::new(&secp, &mut rand::thread_rng()).x_only_public_key();
    let claims = p
        .channel
        .claims_for(
            &commitment,
            &bitcoin::ScriptBuf::new_p2tr(&secp, mine, None),
            bitcoin::FeeRate::from_sat_per_vb_u32(2),
            &[(hash, preimage)].into(),
        )
        .expect("claims from its own commitment");
    let success = claims
        .into_iter()
        .find(|(k, _)| matches!(k, ClaimKind::HtlcSuccess { .. }))
        .expect("a success claim")
        .1;
    let mut tries = 0;
    while let Err(e) = broadcast(&stack, &success).await {
        tries += 1;
        assert!(tries < 40, "the success claim is never valid: {e}");
        stack.devnet.mine(1).await.expect("mine");
    }
    stack.devnet.mine(1).await.expect("mine");
    assert_eq!(
        spender(&stack, txid, htlc_out).await,
        Some(success.compute_txid())
    );

    // The payer heard its channel close while the LSP held its HTLC: not "failed", but "ends
    // on chain".
    let answer = tokio::time::timeout(std::time::Duration::from_secs(30), pay)
        .await
        .expect("the payer hears its channel closed")
        .unwrap();
    assert!(
        matches!(answer, Err(wallet::pay::PayError::EndsOnChain(_))),
        "{answer:?}"
    );
    // The LSP read the preimage off the chain: the payer's history says paid, with the proof.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let record = loop {
        let snapshot = payer.handle.snapshot().await.expect("snapshot");
        let record = snapshot
            .payments
            .into_iter()
            .find(|r| r.hash == hash)
            .expect("the payer's record");
        if record.status != PaymentStatus::Pending {
            break record;
        }
        assert!(std::time::Instant::now() < deadline, "{record:?}");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    };
    assert_eq!(record.status, PaymentStatus::Complete, "{record:?}");
    assert_eq!(record.preimage, Some(preimage), "the proof of payment");

    // The factory is on chain, so the payer's channel takes no more rounds: the LSP settles
    // the payer's HTLC there. Its deadline for it is a walk, a `to_self_delay` and half a margin
    // before the HTLC's expiry; mine quickly up to well before it, then one block per pass.
    let payer_leaf = leaf_of(&runs[0]);
    let deadline = payer_expiry
        - payer_leaf.path.worst_exit_blocks().to_blocks()
        - policy.to_self_delay.to_blocks()
        - policy.htlc_margin.to_blocks();
    let now = tip(&stack).await;
    stack
        .devnet
        .mine(deadline.saturating_sub(now + 1))
        .await
        .expect("mine");
    loop {
        assert!(
            tip(&stack).await < payer_expiry,
            "the LSP did not collect the payer's HTLC before it could time out: {}",
            admin_channel(&stack, payer_leaf.channel).await
        );
        mine_after_a_pass(&stack.devnet).await;
        let view = admin_channel(&stack, payer_leaf.channel).await;
        if claims_confirmed(&view, &["HtlcSuccess"]) {
            break;
        }
    }
    assert!(
        tip(&stack).await < payer_expiry,
        "collected before the payer's timeout opens"
    );
}

/// A payee that takes the LSP's HTLC and vanishes, never fulfilling it and publishing nothing.
/// Near the HTLC's expiry the LSP walks the payee's tree path and publishes its commitment;
/// once the expiry passes it takes the HTLC back by its timeout path, and when that claim
/// confirms the payment fails back to its payer, whose history says why: it never stays
/// pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payee_that_vanishes_with_the_htlc_is_timed_out_and_the_payer_told() {
    let Setup {
        stack,
        runs,
        payer,
        puppet: mut p,
        ..
    } = setup(PaymentOptions::default()).await;
    let amount = Amount::from_sat(3_000);
    let (invoice, preimage) = p.invoice(&stack, amount).await;
    let hash = bitcoin::hashes::sha256::Hash::hash(&preimage);
    let pay = {
        let handle = payer.handle.clone();
        tokio::spawn(async move { handle.pay(&invoice).await })
    };
    let expiry = p.until_lsp_htlc(hash).await.expiry.to_consensus_u32();
    // From here the payee answers nothing.

    // The LSP goes on chain `W` blocks before the expiry; mine quickly to a little before.
    let path = leaf_of(&runs[1]).path;
    let walk = path.worst_exit_blocks().to_blocks();
    let now = tip(&stack).await;
    stack
        .devnet
        .mine((expiry - walk).saturating_sub(now + 2))
        .await
        .expect("mine");
    let answer = tokio::time::timeout(std::time::Duration::from_secs(60), pay);
    let record = loop {
        assert!(
            tip(&stack).await < expiry + 40,
            "the LSP did not take its HTLC back: {}",
            admin_channel(&stack, p.id).await
        );
        mine_after_a_pass(&stack.devnet).await;
        let snapshot = payer.handle.snapshot().await.expect("snapshot");
        let record = snapshot
            .payments
            .into_iter()
            .find(|r| r.hash == hash)
            .expect("the payer's record");
        if record.status != PaymentStatus::Pending {
            break record;
        }
    };
    assert!(
        matches!(&record.status, PaymentStatus::Failed(why) if why.contains("did not claim")),
        "{record:?}"
    );
    let view = admin_channel(&stack, p.id).await;
    assert!(claims_confirmed(&view, &["HtlcTimeout"]), "{view}");
    // The payer's own call ended long before: its channel closed with the HTLC held.
    let answer = answer.await.expect("answered").unwrap();
    assert!(
        matches!(answer, Err(wallet::pay::PayError::EndsOnChain(_))),
        "{answer:?}"
    );
}

/// A payer that learns the preimage and then goes silent, publishing nothing. The LSP's
/// deadline for the HTLC it fulfilled is `expiry − walk − to_self_delay − margin/2`; from there
/// the LSP, with nobody pressing a button, walks the payer's tree path (kickoffs, states, leaf,
/// each as soon as its relative lock allows), publishes its own latest commitment and claims
/// the HTLC with the preimage after its `to_self_delay`: before block `expiry`, when the
/// payer's timeout path would open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_payer_is_taken_on_chain_by_the_lsp_before_its_htlc_expires() {
    let set = setup(PaymentOptions::default()).await;
    take_a_silent_payer_on_chain(set).await;
}

/// The same when every node refuses what the tree and the commitments were signed at: the
/// node's relay floor is 5 sat/vB (`-minrelaytxfee`), the factory's transactions pay 1 sat/vB
/// and the LSP's commitment 1 sat/vB. Each goes in with a child through its P2A anchor, paid
/// from the LSP's wallet, and the HTLC is still claimed before the payer's timeout opens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lsp_walk_pays_todays_fee_through_the_anchors() {
    let devnet = devnet::DevnetConfig {
        bitcoind_args: vec!["-minrelaytxfee=0.00005".into()],
        ..devnet::DevnetConfig::default()
    };
    let set = setup_on(devnet, PaymentOptions::default()).await;
    let floor = bitcoin::FeeRate::from_sat_per_vb_u32(5);
    let tree_rate = shared::params::FactoryParams::regtest().fee_rate;
    assert!(tree_rate < floor, "the tree pays less than the node relays");
    let walked = take_a_silent_payer_on_chain(set).await;
    // Every transaction of the walk (the tree's and the commitment) paid below the floor, so
    // each went in with a child spending its anchor.
    assert!(
        walked.published.len() >= 4,
        "at least kickoff, state, leaf and commitment: {:?}",
        walked.published
    );
    for (parent, child) in &walked.published {
        assert!(child.is_some(), "{parent} went in without a child");
    }
}

/// What the LSP's walk put on chain.
struct Walked {
    /// The pre-signed transactions it published (tree and commitment), in order, each with
    /// the child that spent its anchor, if any.
    published: Vec<(bitcoin::Txid, Option<bitcoin::Txid>)>,
}

async fn take_a_silent_payer_on_chain(set: Setup) -> Walked {
    let Setup {
        stack,
        runs,
        mut payer,
        puppet: mut p,
        join_fee,
        ..
    } = set;
    let offered = pay_and_stop(&stack, &mut payer, &mut p, join_fee).await;
    let expiry = offered.expiry;
    let path = leaf_of(&runs[1]).path;
    let policy = ChannelPolicy::for_network(bitcoin::Network::Regtest);
    let deadline = expiry
        - path.worst_exit_blocks().to_blocks()
        - policy.to_self_delay.to_blocks()
        - policy.htlc_margin.to_blocks() / 2;

    // Nothing happens before the deadline: the LSP waits for the round the payer owes.
    let now = tip(&stack).await;
    stack
        .devnet
        .mine(deadline.saturating_sub(now + 1))
        .await
        .expect("mine");
    let channel = path.channel_outpoint();
    assert_eq!(spender(&stack, channel.txid, channel.vout).await, None);

    // From the deadline, one block every pass of the LSP's watch.
    let (commitment, claim) = loop {
        assert!(
            tip(&stack).await < expiry,
            "the LSP did not claim the HTLC before its expiry: {}",
            admin_channel(&stack, p.id).await
        );
        mine_after_a_pass(&stack.devnet).await;
        let view = admin_channel(&stack, p.id).await;
        let claims = view["claims"].as_array().cloned().unwrap_or_default();
        let success = claims.iter().find(|c| {
            c["kind"]
                .as_str()
                .is_some_and(|k| k.starts_with("HtlcSuccess"))
                && c["confirmed"] == true
        });
        if let Some(c) = success {
            let commitment = spender(&stack, channel.txid, channel.vout)
                .await
                .expect("the channel output is spent");
            break (commitment, c["txid"].as_str().expect("txid").to_string());
        }
    };
    assert!(
        tip(&stack).await < expiry,
        "claimed before the payer's timeout opens"
    );
    assert_ne!(
        Some(commitment),
        p.channel.latest_signed().map(|t| t.compute_txid()),
        "the LSP published its own commitment, not the payer's"
    );
    assert!(confirmed(&stack, claim.parse().expect("txid")).await);
    let view = admin_channel(&stack, p.id).await;
    assert_eq!(view["state"], "closed", "{view}");
    walked(&stack, &path, commitment).await
}

/// Follows what spent the payer's funding output down to `commitment`: at each transaction,
/// the spender of its P2A anchor is its child, and the spender that is the next node of the
/// path (or the commitment) is the next transaction of the walk (the leaf's L-stock is spent by
/// the LSP's L-stock claim, which is not part of the walk).
async fn walked(
    stack: &common::Stack,
    path: &shared::path::ClientPath,
    commitment: bitcoin::Txid,
) -> Walked {
    let rpc = stack.devnet.rpc();
    let funding = path.funding_outpoint();
    let mut next = spender(stack, funding.txid, funding.vout).await;
    let on_path: std::collections::BTreeSet<bitcoin::Txid> = path
        .nodes()
        .iter()
        .map(|n| n.txid())
        .chain([commitment])
        .collect();
    let mut published = Vec::new();
    while let Some(txid) = next.take() {
        let tx = rpc
            .get_raw_transaction(&txid)
            .await
            .expect("rpc")
            .expect("on chain");
        let mut child = None;
        for (vout, out) in tx.output.iter().enumerate() {
            let Some(by) = spender(stack, txid, vout as u32).await else {
                continue;
            };
            if out.script_pubkey == bitcoin::ScriptBuf::new_p2a() {
                child = Some(by);
            } else if txid != commitment && on_path.contains(&by) {
                next = Some(by);
            }
        }
        published.push((txid, child));
    }
    assert_eq!(
        published.last().map(|p| p.0),
        Some(commitment),
        "the walk reached the commitment"
    );
    Walked { published }
}
