//! The LSP's side of selling inbound liquidity, against a wallet driven frame by frame
//! (`common::puppet`, with the leaf advance done by hand from `shared::leaf`), on the devnet
//! with a real LSP process.
//!
//! One test walks the purchase through everything that can go wrong before it goes right:
//! a request above what the leaf holds, a bad partial signature, a connection dropped after
//! round 0 of the new channel, then an honest purchase, payments on the new channel, and an
//! LSP restart after which a wallet that missed `leaf_signed` gets it again. After each
//! failure the LSP's view is unchanged and the old channel still pays.

mod common;

use bitcoin::Amount;
use common::chain::{broadcast, confirmed, known, publish_path, tip};
use common::liquidity::{buy, reconnect, Tamper};
use common::pay::{admin_channel, leaf_of};
use common::puppet::{pay_puppet, setup, Setup};
use lsp_server::PaymentOptions;
use shared::leaf::{LeafEpoch, LeafStates};
use shared::pay::liquidity_price;
use shared::wire::WireMsg;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_or_interrupted_purchases_change_nothing_and_an_honest_one_survives_a_restart() {
    let factory = common::fast_factory(2, 2);
    let payments = PaymentOptions::default();
    let Setup {
        stack,
        runs,
        mut payer,
        puppet: mut p,
        fees,
        _storage,
        ..
    } = setup(payments.clone()).await;
    let run = &runs[1];
    let path = leaf_of(run).path;
    let mut leaf = LeafStates::new(&path);
    let available = leaf.available();
    let before = admin_channel(&stack, p.id).await;
    assert_eq!(before["leaf"], 0);
    assert_eq!(before["available_sat"], available.to_sat());

    // 1. More than the leaf holds.
    let err = buy(
        &mut p,
        run,
        &mut leaf,
        &fees,
        available + Amount::ONE_SAT,
        Tamper::None,
    )
    .await
    .unwrap_err();
    assert!(err.contains("left in this leaf"), "{err}");

    // 2. A bad partial signature: refused, the purchase abandoned, nothing stored.
    let first = Amount::from_sat(60_000);
    let err = buy(&mut p, run, &mut leaf, &fees, first, Tamper::SwapPartials)
        .await
        .unwrap_err();
    assert!(err.contains("abandoned"), "{err}");
    assert_eq!(admin_channel(&stack, p.id).await, before);
    pay_puppet(&stack, &mut payer, &mut p, 1_000).await;
    // The abandoned attempt signed round 0 of leaf state 1's channel for 60,000: the same
    // amount now (same channel output, same keys, other balances) would give the wallet a
    // second commitment 0 the LSP could never revoke. Refused, saying what to do.
    let err = buy(&mut p, run, &mut leaf, &fees, first, Tamper::None)
        .await
        .unwrap_err();
    assert!(err.contains("buy a different amount"), "{err}");

    // 3. The wallet drops after round 0 of the new channel: the LSP forgets the purchase and
    //    the channel goes on at leaf state 0. After a payment from that channel the same
    //    amount is refused again (the abandoned round 0 holds other balances).
    let second = Amount::from_sat(50_000);
    let err = buy(
        &mut p,
        run,
        &mut leaf,
        &fees,
        second,
        Tamper::DropBeforePartials,
    )
    .await
    .unwrap_err();
    assert_eq!(err, "dropped");
    match reconnect(&mut p, &stack, run, LeafEpoch::FIRST, None).await {
        WireMsg::ChannelOpen(open) => assert_eq!(open.leaf, LeafEpoch::FIRST),
        other => panic!("expected the LSP's channel_open, got {other:?}"),
    }
    pay_puppet(&stack, &mut payer, &mut p, 1_000).await;
    let err = buy(&mut p, run, &mut leaf, &fees, second, Tamper::None)
        .await
        .unwrap_err();
    assert!(err.contains("buy a different amount"), "{err}");
    // Another amount is another leaf state 1: the wallet's guard keeps each attempt apart
    // (`wallet::pay` records every attempt), so this hand-driven one starts a fresh record.
    let amount = Amount::from_sat(40_000);
    leaf = LeafStates::new(&path);
    let at_sale = admin_channel(&stack, p.id).await;
    assert_eq!(at_sale["leaf"], 0);

    // 4. The wallet signs, and its partial signatures are lost with the connection. It
    //    reconnects saying so: its old channel is frozen (the LSP might hold the new state),
    //    so a payment towards it waits instead of landing there.
    let err = buy(&mut p, run, &mut leaf, &fees, amount, Tamper::PartialsLost)
        .await
        .unwrap_err();
    assert_eq!(err, "lost");
    match reconnect(&mut p, &stack, run, LeafEpoch::FIRST, Some(amount)).await {
        WireMsg::ChannelOpen(open) => assert_eq!(open.leaf, LeafEpoch::FIRST),
        other => panic!("expected the LSP's channel_open, got {other:?}"),
    }
    let (invoice, preimage) = p.invoice(&stack, Amount::from_sat(3_000)).await;
    let waiting = {
        let handle = payer.handle.clone();
        tokio::spawn(async move { handle.pay(&invoice).await })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while common::admin_get(&stack.http_url(), "/admin/payments").await["waiting"] != 1 {
        assert!(std::time::Instant::now() < deadline, "the payment waits");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(
        admin_channel(&stack, p.id).await,
        at_sale,
        "nothing touched the old channel"
    );

    // 5. It asks again for the same amount (the same state: the guard lets it be signed once
    //    more, with fresh nonces) and the purchase completes.
    let price = liquidity_price(&fees, amount);
    let signed = buy(&mut p, run, &mut leaf, &fees, amount, Tamper::None)
        .await
        .expect("bought");
    assert_eq!(signed.leaf, LeafEpoch(1));
    let after = admin_channel(&stack, p.id).await;
    assert_eq!(after["leaf"], 1);
    assert_eq!(after["bought_sat"], amount.to_sat());
    let sat = |v: &serde_json::Value, k: &str| v[k].as_u64().expect("sats");
    assert_eq!(
        sat(&after, "client_sat"),
        sat(&at_sale, "client_sat") - price.to_sat()
    );
    assert_eq!(
        sat(&after, "lsp_sat"),
        sat(&at_sale, "lsp_sat") + amount.to_sat() + price.to_sat()
    );
    assert_eq!(sat(&after, "available_sat"), (available - amount).to_sat());
    let view = common::admin_get(&stack.http_url(), "/admin/payments").await;
    assert_eq!(view["liquidity"]["sales"], 1);
    assert_eq!(view["liquidity"]["sold_sat"], amount.to_sat());
    assert_eq!(view["liquidity"]["earned_sat"], price.to_sat());
    // The waiting payment arrives on the new channel (frames tagged with leaf state 1), and
    // so do others.
    p.fulfill(preimage).await;
    p.commit().await;
    waiting.await.unwrap().expect("the waiting payment arrives");
    pay_puppet(&stack, &mut payer, &mut p, 20_000).await;
    assert_eq!(p.channel.params().funding, leaf.latest().channel_outpoint());

    // 6. The LSP restarts. The wallet opens its old leaf state as if it had missed the end
    //    of the purchase: it gets the same signatures again, then opens the new channel.
    let stack = common::restart(stack, factory, payments).await;
    match reconnect(&mut p, &stack, run, LeafEpoch::FIRST, None).await {
        WireMsg::LeafSigned(again) => assert_eq!(*again, signed),
        other => panic!("expected leaf_signed again, got {other:?}"),
    }
    match reconnect(&mut p, &stack, run, LeafEpoch(1), None).await {
        WireMsg::ChannelOpen(open) => assert_eq!(open.leaf, LeafEpoch(1)),
        other => panic!("expected the LSP's channel_open, got {other:?}"),
    }
    payer.ready(30).await;
    pay_puppet(&stack, &mut payer, &mut p, 2_000).await;
    let restored = admin_channel(&stack, p.id).await;
    assert_eq!(restored["leaf"], 1);
    assert_eq!(restored["bought_sat"], amount.to_sat());
    assert_eq!(
        sat(&restored, "client_sat"),
        p.channel.spec().client_balance.to_sat()
    );
}

/// A client that bought liquidity publishes its tree and tries to get the superseded leaf
/// state confirmed (its redistribution would then hand it the old, larger L-stock). The LSP's
/// leaf watch broadcasts the newest state the block its shorter delay allows, two blocks
/// before the stale one may enter; the stale state and its redistribution then have no input.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_publishing_a_superseded_leaf_state_loses_to_the_lsps_watch() {
    let Setup {
        stack,
        runs,
        puppet: mut p,
        fees,
        _storage,
        ..
    } = setup(PaymentOptions::default()).await;
    let run = &runs[1];
    let path = leaf_of(run).path;
    let mut leaf = LeafStates::new(&path);
    buy(
        &mut p,
        run,
        &mut leaf,
        &fees,
        Amount::from_sat(60_000),
        Tamper::None,
    )
    .await
    .expect("bought");
    let stale = leaf.states()[0].node.signed_tx().expect("signed");
    let newest = leaf.latest().node.clone();
    let stale_delay = leaf.states()[0].node.relative_delay().to_blocks();
    let newest_delay = newest.relative_delay().to_blocks();
    assert!(newest_delay < stale_delay);

    // The client publishes every transaction above its leaf, each as early as it may.
    let parent_height = publish_path(&stack, &path, false).await;
    // Block by block: the LSP's watch gets the newest state in as soon as BIP-68 allows,
    // while the stale one is still locked.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the LSP never published the newest state"
        );
        if known(&stack, newest.txid()).await {
            break;
        }
        if tip(&stack).await + 1 < parent_height + newest_delay {
            stack.devnet.mine(1).await.expect("mine");
        } else {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
    assert_eq!(
        tip(&stack).await + 1,
        parent_height + newest_delay,
        "the first block it may enter"
    );
    let refused = broadcast(&stack, &stale).await.unwrap_err();
    assert!(refused.contains("non-BIP68-final"), "{refused}");
    stack.devnet.mine(1).await.expect("mine");
    // The stale state's delay passes: its input is gone, and with it the old L-stock.
    for _ in 0..(stale_delay - newest_delay) {
        stack.devnet.mine(1).await.expect("mine");
    }
    let refused = broadcast(&stack, &stale).await.unwrap_err();
    assert!(
        refused.contains("missing") || refused.contains("spent"),
        "the stale state has no input: {refused}"
    );
    let redistribution = leaf
        .redistribution(LeafEpoch::FIRST)
        .and_then(|r| r.signed_tx())
        .expect("signed");
    assert!(broadcast(&stack, &redistribution).await.is_err());
    assert!(confirmed(&stack, newest.txid()).await);
}
