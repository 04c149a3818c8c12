//! Forged channel and payment frames over a raw WebSocket, and a wallet that stops answering
//! a commitment round. Three wallets share one factory: two honest native wallets and a third
//! driven by hand (`common::puppet`: the client's channel machine, each frame under the test's
//! control). Every forged frame gets a clear refusal and changes no balance; a silent wallet is
//! disconnected and a payment towards it fails back whole; the honest wallets pay on throughout.

mod common;

use std::time::{Duration, Instant};

use bitcoin::absolute::Height;
use bitcoin::hashes::{sha256, Hash};
use bitcoin::{Amount, Network};
use common::pay::{funded_factory, leaf_of, start_payer, Payer};
use common::puppet::{client_open, Puppet};
use common::raw;
use common::swarm::{ClientRun, ClientSpec};
use futures::StreamExt;
use lsp_server::PaymentOptions;
use shared::channel::keys::ChannelSecrets;
use shared::channel::{ChannelMsg, Revocation, Update, UpdateMsg};
use shared::leaf::LeafEpoch;
use shared::pay::{
    ChannelFrame, ChannelOpen, ChannelPolicy, PayFailure, PayOutcome, PayRequest, PayResult,
};
use shared::wire::{Envelope, ErrorCode, WireMsg, MAX_FRAME_BYTES};
use tokio_tungstenite::tungstenite::Message;
use wallet::pay::MemoryPayStore;

fn spec() -> ClientSpec {
    ClientSpec {
        channel: Amount::from_sat(200_000),
        liquidity: Amount::from_sat(10_000),
        ..ClientSpec::honest()
    }
}

/// A funded factory of three: wallets 0 and 1 honest and running (each with `faucet` sats less
/// its join fee, [`funded`]), wallet 2 a puppet with its channel open (round 0 done).
async fn three_wallets(
    payments: PaymentOptions,
    faucet: u64,
) -> (
    common::Stack,
    Vec<ClientRun>,
    Vec<Payer>,
    Puppet,
    tempfile::TempDir,
) {
    let stack = common::start_full(common::fast_factory(3, 3), payments, None).await;
    common::fund_lsp(&stack, Amount::from_sat(2_000_000)).await;
    let storage = tempfile::tempdir().expect("temp dir");
    let config = common::swarm_config(&stack, storage.path());
    let runs = funded_factory(&stack, &config, spec(), 3).await;
    let mut payers: Vec<Payer> = runs[..2]
        .iter()
        .map(|r| start_payer(&stack, r, MemoryPayStore::default()))
        .collect();
    for (p, run) in payers.iter_mut().zip(&runs) {
        p.ready(30).await;
        let arrived = p.faucet(Amount::from_sat(faucet), 30).await;
        assert_eq!(arrived.to_sat(), funded(run, faucet));
    }
    let puppet = Puppet::open(&stack, &runs[2]).await;
    (stack, runs, payers, puppet, storage)
}

/// What a wallet holds after its first `faucet` sats: they paid its join fee.
fn funded(run: &ClientRun, faucet: u64) -> u64 {
    faucet - common::pay::join_fee_of(run).to_sat()
}

/// Every channel's entry in `/admin/payments`.
async fn channels(stack: &common::Stack) -> Vec<serde_json::Value> {
    let view = common::admin_get(&stack.http_url(), "/admin/payments").await;
    view["channels"].as_array().expect("channels").clone()
}

/// Every channel's entry once the LSP holds no HTLC on any of them.
async fn settled_channels(stack: &common::Stack) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let all = channels(stack).await;
        if all.iter().all(|c| c["htlcs"] == 0) {
            return all;
        }
        assert!(Instant::now() < deadline, "HTLCs stay pending: {all:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn channel_of(all: &[serde_json::Value], id: shared::pay::ChannelId) -> serde_json::Value {
    all.iter()
        .find(|c| c["channel"] == id.to_string().as_str())
        .expect("the LSP has the channel")
        .clone()
}

/// The next error the puppet receives (answering channel frames meanwhile).
async fn refusal(p: &mut Puppet) -> String {
    let msg = p.until_other(|m| matches!(m, WireMsg::Error { .. })).await;
    raw::expect_error(msg, ErrorCode::Unexpected)
}

/// The next `pay_result` the puppet receives (answering channel frames meanwhile).
async fn pay_result(p: &mut Puppet) -> PayResult {
    match p.until_other(|m| matches!(m, WireMsg::PayResult(_))).await {
        WireMsg::PayResult(r) => r,
        _ => unreachable!("matched"),
    }
}

/// Reads until the LSP closes the connection; returns the last message it sent.
async fn last_frame(ws: &mut raw::Ws) -> Option<WireMsg> {
    let mut last = None;
    while let Ok(Some(Ok(frame))) = tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
        if let Message::Text(t) = frame {
            last = Some(Envelope::decode(t.as_str()).expect("LSP frames decode").msg);
        }
    }
    last
}

/// Pays `amount` from `from` to `to`, checking both balances move by exactly it (plus the fee).
async fn pay_between(
    from: &mut Payer,
    to: &mut Payer,
    amount: u64,
    balances: &mut [u64; 2],
    i: usize,
) {
    let invoice = to
        .handle
        .invoice(Amount::from_sat(amount), "honest")
        .await
        .expect("invoice");
    let paid = from.handle.pay(&invoice.invoice).await.expect("paid");
    balances[i] -= amount + paid.fee.to_sat();
    balances[1 - i] += amount;
    from.balance_becomes(Amount::from_sat(balances[i]), 30)
        .await;
    to.balance_becomes(Amount::from_sat(balances[1 - i]), 30)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_channel_and_payment_frames_are_refused_and_change_nothing() {
    let payments = PaymentOptions {
        offline_wait_secs: 5,
        ..PaymentOptions::default()
    };
    let (stack, runs, mut payers, mut puppet, _storage) = three_wallets(payments, 30_000).await;
    let a = leaf_of(&runs[0]).channel;
    let c = puppet.id;

    // The puppet is paid 5,000 by wallet 0, so it can offer HTLCs of its own.
    let (invoice, preimage) = puppet.invoice(&stack, Amount::from_sat(5_000)).await;
    let pay = {
        let handle = payers[0].handle.clone();
        tokio::spawn(async move { handle.pay(&invoice).await })
    };
    puppet.fulfill(preimage).await;
    puppet.commit().await;
    let paid = pay.await.unwrap().expect("the puppet is paid");
    let funded = [funded(&runs[0], 30_000), funded(&runs[1], 30_000)];
    let mut balances = [funded[0] - 5_000 - paid.fee.to_sat(), funded[1]];
    payers[0]
        .balance_becomes(Amount::from_sat(balances[0]), 30)
        .await;
    // The puppet's first payment paid its join fee.
    let held = Amount::from_sat(5_000) - common::pay::join_fee_of(&runs[2]);
    assert_eq!(puppet.channel.spec().client_balance, held);

    // The wallet sees its balance once it signed the round; the LSP's view of that channel
    // settles a round trip later. Compare against the settled view.
    let before = settled_channels(&stack).await;
    let settled = common::admin_get(&stack.http_url(), "/admin/payments").await["settled"].clone();

    // 1. Another client's channel: a channel frame, an open and a route request naming it.
    let frame = ChannelFrame {
        channel: a,
        leaf: LeafEpoch::FIRST,
        msg: ChannelMsg::ClientRevoked {
            number: 1,
            revocation: None,
        },
    };
    raw::send(&mut puppet.ws, WireMsg::Channel(Box::new(frame))).await;
    let message = refusal(&mut puppet).await;
    assert!(message.contains("not open on this connection"), "{message}");
    let mut open = client_open(c, &runs[2], 0);
    open.channel = a;
    raw::send(&mut puppet.ws, WireMsg::ChannelOpen(Box::new(open))).await;
    let message = refusal(&mut puppet).await;
    assert!(message.contains("belongs to another wallet"), "{message}");
    let (foreign, _) = puppet.invoice(&stack, Amount::from_sat(1_000)).await;
    let req = PayRequest {
        channel: a,
        htlc: 0,
        invoice: foreign,
    };
    raw::send(&mut puppet.ws, WireMsg::PayRequest(req)).await;
    let message = refusal(&mut puppet).await;
    assert!(message.contains("is not yours"), "{message}");

    // 2. Its own channel, out of order: an update out of sequence, a revocation with no round.
    let update = UpdateMsg {
        seq: 999,
        update: Update::Fail { id: 0 },
    };
    puppet.send_msg(ChannelMsg::Update(update)).await;
    let message = refusal(&mut puppet).await;
    assert!(message.contains("out of sequence"), "{message}");
    let revoked = ChannelMsg::ClientRevoked {
        number: 9,
        revocation: None,
    };
    puppet.send_msg(revoked).await;
    let message = refusal(&mut puppet).await;
    assert!(message.contains("not waiting for"), "{message}");

    // 4. Its own channel opened again with other keys.
    let other = ChannelSecrets::from_seed(&[9; 32]);
    let forged = ChannelOpen::new(c, LeafEpoch::FIRST, &other);
    raw::send(&mut puppet.ws, WireMsg::ChannelOpen(Box::new(forged))).await;
    let message = refusal(&mut puppet).await;
    assert!(
        message.contains("already open with other basepoints"),
        "{message}"
    );

    // 3a + 2. An HTLC routed to an unparseable invoice, committed in a round where the puppet
    // first sends a bad partial signature, then a wrong revocation secret, then none.
    let now = puppet.now().await;
    let policy = ChannelPolicy::for_network(Network::Regtest);
    let expiry =
        Height::from_consensus(policy.payer_expiry(now.height.to_consensus_u32())).expect("height");
    let hash = sha256::Hash::hash(b"no invoice");
    let htlc = puppet
        .channel
        .add_htlc(now, Amount::from_sat(1_000), hash, expiry)
        .expect("add");
    puppet.drain();
    let req = PayRequest {
        channel: c,
        htlc,
        invoice: "lnbcrt1notaninvoice".into(),
    };
    raw::send(&mut puppet.ws, WireMsg::PayRequest(req)).await;
    puppet.send_held().await;
    loop {
        if let (Some(ChannelMsg::Start { .. }), _) = puppet.step().await {
            break;
        }
    }
    let Some(ChannelMsg::ClientSigned {
        number,
        nonce_client_commit,
        nonce_lsp_commit,
        partial_lsp_commit,
    }) = puppet.held.pop()
    else {
        panic!("the machine signs the LSP's commitment: {:?}", puppet.held)
    };
    let swapped = ChannelMsg::ClientSigned {
        number,
        nonce_client_commit: nonce_lsp_commit.clone(),
        nonce_lsp_commit: nonce_client_commit.clone(),
        partial_lsp_commit,
    };
    puppet.send_msg(swapped).await;
    let message = refusal(&mut puppet).await;
    assert!(message.contains(&format!("channel {c}")), "{message}");
    let honest = ChannelMsg::ClientSigned {
        number,
        nonce_client_commit,
        nonce_lsp_commit,
        partial_lsp_commit,
    };
    puppet.send_msg(honest).await;
    loop {
        if let (Some(ChannelMsg::LspSigned { .. }), _) = puppet.step().await {
            break;
        }
    }
    let Some(ChannelMsg::ClientRevoked {
        number,
        revocation: Some(revocation),
    }) = puppet.held.pop()
    else {
        panic!("the machine revokes: {:?}", puppet.held)
    };
    let wrong = Revocation {
        secret: [7; 32],
        ..revocation.clone()
    };
    for bad in [Some(wrong), None] {
        let msg = ChannelMsg::ClientRevoked {
            number,
            revocation: bad,
        };
        puppet.send_msg(msg).await;
        let message = refusal(&mut puppet).await;
        assert!(
            message.contains("revocation") || message.contains("secret"),
            "{message}"
        );
    }
    let msg = ChannelMsg::ClientRevoked {
        number,
        revocation: Some(revocation),
    };
    puppet.send_msg(msg).await;
    // The round completes with the right revocation; the LSP then checks the HTLC against its
    // route request and fails it back.
    let result = pay_result(&mut puppet).await;
    assert_eq!(result.htlc, htlc);
    let PayOutcome::Failed(PayFailure::Mismatch { reason }) = &result.outcome else {
        panic!("an unparseable invoice is a mismatch: {result:?}")
    };
    assert!(!reason.is_empty());
    puppet.commit().await;
    assert!(
        puppet.channel.spec().htlcs.is_empty(),
        "the HTLC is failed back"
    );
    assert_eq!(puppet.channel.spec().client_balance, held);

    // 3c. An HTLC of 1,000 sat routed to an invoice of wallet 1's for 2,000.
    let invoice = payers[1]
        .handle
        .invoice(Amount::from_sat(2_000), "short")
        .await
        .expect("invoice");
    let now = puppet.now().await;
    let htlc = puppet
        .channel
        .add_htlc(now, Amount::from_sat(1_000), invoice.hash, expiry)
        .expect("add");
    puppet.drain();
    let req = PayRequest {
        channel: c,
        htlc,
        invoice: invoice.invoice.clone(),
    };
    raw::send(&mut puppet.ws, WireMsg::PayRequest(req)).await;
    puppet.send_held().await;
    let result = pay_result(&mut puppet).await;
    let PayOutcome::Failed(PayFailure::Mismatch { reason }) = &result.outcome else {
        panic!("a short HTLC is a mismatch: {result:?}")
    };
    assert!(reason.contains("carries 1000 sat"), "{reason}");
    puppet.commit().await;
    assert!(
        puppet.channel.spec().htlcs.is_empty(),
        "the HTLC is failed back"
    );
    assert_eq!(puppet.channel.spec().client_balance, held);

    // Nothing moved: the honest channels are as they were, the puppet's holds what it held,
    // no payment settled.
    let after = channels(&stack).await;
    for run in &runs[..2] {
        let id = leaf_of(run).channel;
        assert_eq!(channel_of(&after, id), channel_of(&before, id));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let theirs = channel_of(&channels(&stack).await, c);
        if theirs["client_sat"] == held.to_sat() && theirs["htlcs"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the LSP agrees: {theirs}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let view = common::admin_get(&stack.http_url(), "/admin/payments").await;
    assert_eq!(view["settled"], settled, "{view}");
    for p in &mut payers {
        let s = p.handle.snapshot().await.expect("snapshot");
        assert!(s.connected && s.channels.iter().all(|c| c.ready), "{s:?}");
    }

    // A second connection with the puppet's key: the LSP closes the first, and its channel no
    // longer counts as connected (nothing is sent into the closed connection), although the
    // identity is online. The new connection has not opened the channel: its frames are refused.
    let (mut tab, _) = raw::connect_as(&stack.ws_url(), &runs[2].keys).await;
    let told = last_frame(&mut puppet.ws).await;
    let Some(WireMsg::Error { fatal: true, .. }) = told else {
        panic!("the first connection is closed with a reason: {told:?}")
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while channel_of(&channels(&stack).await, c)["connected"] != false {
        assert!(
            Instant::now() < deadline,
            "the closed connection's channel shows disconnected"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let frame = ChannelFrame {
        channel: c,
        leaf: LeafEpoch::FIRST,
        msg: ChannelMsg::ClientRevoked {
            number: 9,
            revocation: None,
        },
    };
    raw::send(&mut tab, WireMsg::Channel(Box::new(frame))).await;
    let message = raw::expect_error(raw::next_error(&mut tab).await, ErrorCode::Unexpected);
    assert!(message.contains("not open on this connection"), "{message}");

    // 5. On that established session, a malformed frame is refused; an oversized one closes it.
    raw::send_text(&mut tab, "{not json".into()).await;
    raw::expect_error(raw::next_error(&mut tab).await, ErrorCode::Malformed);
    let huge = "x".repeat(MAX_FRAME_BYTES + 1024);
    let _ = futures::SinkExt::send(&mut tab, Message::Text(huge.into())).await;
    let told = last_frame(&mut tab).await;
    assert!(
        matches!(
            told,
            Some(WireMsg::Error {
                code: ErrorCode::TooLarge,
                fatal: true,
                ..
            })
        ),
        "{told:?}"
    );

    // The honest wallets still pay each other, both ways.
    let (p0, p1) = payers.split_at_mut(1);
    pay_between(&mut p0[0], &mut p1[0], 1_500, &mut balances, 0).await;
    pay_between(&mut p1[0], &mut p0[0], 700, &mut balances, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wallet_silent_in_a_round_is_dropped_and_payments_to_it_fail_back_whole() {
    let payments = PaymentOptions {
        offline_wait_secs: 4,
        channel_round_timeout_secs: 2,
        ..PaymentOptions::default()
    };
    let (stack, runs, mut payers, mut puppet, _storage) = three_wallets(payments, 20_000).await;
    let c = puppet.id;

    // Wallet 0 pays the puppet; the puppet fulfills, then never answers the LSP's round that
    // commits the fulfill (the LSP settles wallet 0 at once, from the preimage).
    let (invoice, preimage) = puppet.invoice(&stack, Amount::from_sat(3_000)).await;
    let pay = {
        let handle = payers[0].handle.clone();
        tokio::spawn(async move { handle.pay(&invoice).await })
    };
    puppet.fulfill(preimage).await;
    let paid = pay.await.unwrap().expect("the puppet is paid");
    let funded = [funded(&runs[0], 20_000), funded(&runs[1], 20_000)];
    let mut balances = [funded[0] - 3_000 - paid.fee.to_sat(), funded[1]];
    payers[0]
        .balance_becomes(Amount::from_sat(balances[0]), 30)
        .await;

    // A second payment towards the silent puppet fails back, saying the payee is offline.
    let (invoice, _) = puppet.invoice(&stack, Amount::from_sat(2_000)).await;
    let started = Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(30), payers[0].handle.pay(&invoice))
        .await
        .expect("the payment ends in time")
        .expect_err("the payee is silent");
    assert!(err.to_string().contains("not online"), "{err}");
    eprintln!("failed back after {:?}", started.elapsed());
    payers[0]
        .balance_becomes(Amount::from_sat(balances[0]), 30)
        .await;

    // The LSP told the puppet why and closed its connection; its channel shows disconnected.
    let told = last_frame(&mut puppet.ws).await;
    let Some(WireMsg::Error {
        fatal: true,
        message,
        ..
    }) = told
    else {
        panic!("a fatal error before the close: {told:?}")
    };
    assert!(
        message.contains("no answer to the commitment round"),
        "{message}"
    );
    let theirs = channel_of(&channels(&stack).await, c);
    assert_eq!(theirs["connected"], false, "{theirs}");
    // Only the fulfilled HTLC, settled upstream already, waits for the puppet to commit it.
    assert_eq!(theirs["htlcs"], 1, "{theirs}");

    // The honest wallets pay on.
    let (p0, p1) = payers.split_at_mut(1);
    pay_between(&mut p0[0], &mut p1[0], 1_000, &mut balances, 0).await;
    pay_between(&mut p1[0], &mut p0[0], 400, &mut balances, 1).await;
}
