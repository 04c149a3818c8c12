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

use bitcoin::{Amount, Network};
use common::pay::{funded_factory, leaf_of, start_payer, Payer};
use common::puppet::Puppet;
use common::raw;
use common::swarm::{ClientRun, ClientSpec};
use lsp_server::PaymentOptions;
use shared::channel::keys::ChannelSecrets;
use shared::channel::{Action, Channel, ChannelEvent, CommitmentSpec, Side};
use shared::leaf::{
    Advance, LeafEpoch, LeafPartials, LeafSigned, LeafStates, LiquidityAccept, LiquidityOffer,
    LiquidityRequest,
};
use shared::pay::policy::channel_seed;
use shared::pay::{
    leaf_state_channel_params, liquidity_price, ChannelFrame, ChannelOpen, ChannelPolicy,
};
use shared::terms::SignedTerms;
use shared::wire::{ErrorCode, WireMsg};
use wallet::pay::MemoryPayStore;

fn spec() -> ClientSpec {
    ClientSpec {
        channel: Amount::from_sat(100_000),
        liquidity: Amount::from_sat(100_000),
        ..ClientSpec::honest()
    }
}

/// How the hand-driven purchase misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tamper {
    None,
    /// Sends its two partial signatures in each other's place.
    SwapPartials,
    /// Drops the connection once round 0 of the new channel is done.
    DropBeforePartials,
}

/// The wallet's `channel_open` for its channel on leaf state `leaf`.
fn open_msg(p: &Puppet, run: &ClientRun, leaf: LeafEpoch, next_update: u64) -> ChannelOpen {
    let secrets = ChannelSecrets::from_seed(&channel_seed(&run.factory_secret, p.id, leaf));
    ChannelOpen {
        channel: p.id,
        basepoints: secrets.basepoints(),
        first_points: [
            secrets.commitment_seed.point(0),
            secrets.commitment_seed.point(1),
        ],
        feerate: None,
        next_update,
        leaf,
    }
}

/// The next message `want` matches, or error (answering the live channel's frames meanwhile).
async fn next_of(p: &mut Puppet, want: impl Fn(&WireMsg) -> bool) -> WireMsg {
    p.until_other(|m| want(m) || matches!(m, WireMsg::Error { .. }))
        .await
}

fn error_text(msg: WireMsg) -> String {
    raw::expect_error(msg, ErrorCode::Unexpected)
}

/// Buys `amount` by hand, as the wallet does (docs/protocol.md, "Leaf states and inbound
/// liquidity"), misbehaving as `tamper` says. `Ok` once the leaf and the puppet's channel moved
/// to the new state; `Err` with the LSP's refusal (or `"dropped"`).
async fn buy(
    p: &mut Puppet,
    run: &ClientRun,
    leaf: &mut LeafStates,
    fees: &shared::terms::FeeSchedule,
    amount: Amount,
    tamper: Tamper,
) -> Result<LeafSigned, String> {
    let path = leaf_of(run).path;
    let request = LiquidityRequest {
        channel: p.id,
        amount,
    };
    raw::send(&mut p.ws, WireMsg::LiquidityRequest(request)).await;
    let offer: LiquidityOffer = match next_of(p, |m| matches!(m, WireMsg::LiquidityOffer(_))).await
    {
        WireMsg::LiquidityOffer(o) => *o,
        other => return Err(error_text(other)),
    };
    let mut advance = Advance::new(&path, leaf.latest(), amount).expect("the wallet's advance");
    assert_eq!(offer.leaf, advance.epoch());
    assert_eq!(offer.amount, amount);
    assert_eq!(
        offer.price,
        liquidity_price(fees, amount),
        "the terms' price"
    );
    let live = p.channel.spec().clone();
    let opening = CommitmentSpec {
        client_balance: live.client_balance - offer.price,
        lsp_balance: live.lsp_balance + amount + offer.price,
        htlcs: Vec::new(),
        feerate: live.feerate,
    };
    let policy = ChannelPolicy::for_network(Network::Regtest);
    let params = leaf_state_channel_params(&path, &advance.state, &policy).expect("params");
    let mut new = Channel::new(
        Side::Client,
        params,
        run.factory_secret,
        &channel_seed(&run.factory_secret, p.id, offer.leaf),
        offer.open.peer_info(),
        opening,
    )
    .expect("the new channel");
    let accept = LiquidityAccept {
        channel: p.id,
        leaf: offer.leaf,
        open: open_msg(p, run, offer.leaf, 0),
    };
    raw::send(&mut p.ws, WireMsg::LiquidityAccept(Box::new(accept))).await;
    // Round 0 of the new channel, its frames tagged with the new leaf.
    'round: loop {
        let frame = match next_of(
            p,
            |m| matches!(m, WireMsg::Channel(f) if f.leaf == offer.leaf),
        )
        .await
        {
            WireMsg::Channel(f) => *f,
            other => return Err(error_text(other)),
        };
        let now = p.now().await;
        new.handle_message(now, frame.msg, &mut rand::thread_rng())
            .expect("the LSP's round 0 is valid");
        let mut done = false;
        while let Some(action) = new.poll_action() {
            match action {
                Action::Send(msg) => {
                    let frame = ChannelFrame {
                        channel: p.id,
                        leaf: offer.leaf,
                        msg,
                    };
                    raw::send(&mut p.ws, WireMsg::Channel(Box::new(frame))).await;
                }
                Action::Emit(ChannelEvent::Committed { number }) => {
                    assert_eq!(number, 0);
                    done = true;
                }
                _ => {}
            }
        }
        if done {
            break 'round;
        }
    }
    if tamper == Tamper::DropBeforePartials {
        let _ = p.ws.close(None).await;
        return Err("dropped".into());
    }
    leaf.record_signing(&advance.state)
        .expect("the guard allows this state");
    let (secs, nonces) = advance.nonces(&run.factory_secret, &mut rand::thread_rng());
    let mut partials = advance
        .sign(&run.factory_secret, secs, &nonces, &offer.nonces)
        .expect("signs");
    if tamper == Tamper::SwapPartials {
        partials.swap(0, 1);
    }
    let msg = LeafPartials {
        channel: p.id,
        leaf: offer.leaf,
        nonces,
        partials,
    };
    raw::send(&mut p.ws, WireMsg::LeafPartials(Box::new(msg))).await;
    let signed = match next_of(p, |m| matches!(m, WireMsg::LeafSigned(_))).await {
        WireMsg::LeafSigned(s) => *s,
        other => return Err(error_text(other)),
    };
    advance
        .attach(signed.signatures)
        .expect("the LSP's signatures verify");
    leaf.advance(advance.state.clone(), advance.redistribution.clone())
        .expect("stored");
    p.channel = new;
    p.leaf = offer.leaf;
    Ok(signed)
}

/// Reconnects the puppet and opens its channel on leaf state `leaf`; returns what the LSP
/// answered (its `channel_open`, or a `leaf_signed` for a purchase the wallet missed).
async fn reconnect(
    p: &mut Puppet,
    stack: &common::Stack,
    run: &ClientRun,
    leaf: LeafEpoch,
) -> WireMsg {
    let (ws, _) = raw::connect_as(&stack.ws_url(), &run.keys).await;
    p.ws = ws;
    p.held.clear();
    p.channel.reset_round();
    let next = p.channel.updates_received();
    let open = open_msg(p, run, leaf, next);
    raw::send(&mut p.ws, WireMsg::ChannelOpen(Box::new(open))).await;
    loop {
        match raw::recv(&mut p.ws).await {
            WireMsg::FundingBroadcast(_) => continue,
            m @ (WireMsg::ChannelOpen(_) | WireMsg::LeafSigned(_) | WireMsg::Error { .. }) => {
                return m
            }
            other => p.other.push(other),
        }
    }
}

/// The puppet's channel entry in the LSP's admin view.
async fn admin_channel(stack: &common::Stack, p: &Puppet) -> serde_json::Value {
    let view = common::admin_get(&stack.http_url(), "/admin/payments").await;
    view["channels"]
        .as_array()
        .expect("channels")
        .iter()
        .find(|c| c["channel"] == p.id.to_string().as_str())
        .expect("the LSP has the channel")
        .clone()
}

/// Wallet 0 pays the puppet `amount`; checks the puppet's balance moved by exactly that.
async fn pay_puppet(stack: &common::Stack, payer: &mut Payer, p: &mut Puppet, amount: u64) {
    let before = p.channel.spec().client_balance;
    let (invoice, preimage) = p.invoice(stack, Amount::from_sat(amount)).await;
    let pay = {
        let handle = payer.handle.clone();
        tokio::spawn(async move { handle.pay(&invoice).await })
    };
    p.fulfill(preimage).await;
    p.commit().await;
    pay.await.unwrap().expect("the puppet is paid");
    assert_eq!(
        p.channel.spec().client_balance,
        before + Amount::from_sat(amount)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_or_interrupted_purchases_change_nothing_and_an_honest_one_survives_a_restart() {
    let factory = common::fast_factory(2, 2);
    let payments = PaymentOptions::default();
    let stack = common::start_full(factory.clone(), payments.clone(), None).await;
    common::fund_lsp(&stack, Amount::from_sat(2_000_000)).await;
    let storage = tempfile::tempdir().expect("temp dir");
    let config = common::swarm_config(&stack, storage.path());
    let runs = funded_factory(&stack, &config, spec(), 2).await;
    let mut payer = start_payer(&stack, &runs[0], MemoryPayStore::default());
    payer.ready(30).await;
    payer
        .handle
        .faucet(Amount::from_sat(50_000))
        .await
        .expect("faucet");
    payer.balance_becomes(Amount::from_sat(50_000), 30).await;
    let run = &runs[1];
    let mut p = Puppet::open(&stack, run).await;
    pay_puppet(&stack, &mut payer, &mut p, 5_000).await;
    let terms: SignedTerms =
        reqwest::get(format!("{}/.well-known/superscalar.json", stack.http_url()))
            .await
            .expect("terms")
            .json()
            .await
            .expect("terms JSON");
    let fees = terms.body.fees.clone();
    let path = leaf_of(run).path;
    let mut leaf = LeafStates::new(&path);
    let available = leaf.available();
    let before = admin_channel(&stack, &p).await;
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
    let amount = Amount::from_sat(60_000);
    let err = buy(&mut p, run, &mut leaf, &fees, amount, Tamper::SwapPartials)
        .await
        .unwrap_err();
    assert!(err.contains("abandoned"), "{err}");
    assert_eq!(admin_channel(&stack, &p).await, before);
    pay_puppet(&stack, &mut payer, &mut p, 1_000).await;

    // 3. The wallet drops after round 0 of the new channel: the LSP forgets the purchase and
    //    the channel goes on at leaf state 0.
    let err = buy(
        &mut p,
        run,
        &mut leaf,
        &fees,
        amount,
        Tamper::DropBeforePartials,
    )
    .await
    .unwrap_err();
    assert_eq!(err, "dropped");
    match reconnect(&mut p, &stack, run, LeafEpoch::FIRST).await {
        WireMsg::ChannelOpen(open) => assert_eq!(open.leaf, LeafEpoch::FIRST),
        other => panic!("expected the LSP's channel_open, got {other:?}"),
    }
    pay_puppet(&stack, &mut payer, &mut p, 1_000).await;
    let at_sale = admin_channel(&stack, &p).await;
    assert_eq!(at_sale["leaf"], 0);

    // 4. The honest purchase (the same state again: the guard lets it be signed once more,
    //    with fresh nonces).
    let price = liquidity_price(&fees, amount);
    let signed = buy(&mut p, run, &mut leaf, &fees, amount, Tamper::None)
        .await
        .expect("bought");
    assert_eq!(signed.leaf, LeafEpoch(1));
    let after = admin_channel(&stack, &p).await;
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
    // The new channel carries payments (frames tagged with leaf state 1).
    pay_puppet(&stack, &mut payer, &mut p, 20_000).await;
    assert_eq!(p.channel.params().funding, leaf.latest().channel_outpoint());

    // 5. The LSP restarts. The wallet opens its old leaf state as if it had missed the end
    //    of the purchase: it gets the same signatures again, then opens the new channel.
    let stack = common::restart(stack, factory, payments).await;
    match reconnect(&mut p, &stack, run, LeafEpoch::FIRST).await {
        WireMsg::LeafSigned(again) => assert_eq!(*again, signed),
        other => panic!("expected leaf_signed again, got {other:?}"),
    }
    match reconnect(&mut p, &stack, run, LeafEpoch(1)).await {
        WireMsg::ChannelOpen(open) => assert_eq!(open.leaf, LeafEpoch(1)),
        other => panic!("expected the LSP's channel_open, got {other:?}"),
    }
    payer.ready(30).await;
    pay_puppet(&stack, &mut payer, &mut p, 2_000).await;
    let restored = admin_channel(&stack, &p).await;
    assert_eq!(restored["leaf"], 1);
    assert_eq!(restored["bought_sat"], amount.to_sat());
    assert_eq!(
        sat(&restored, "client_sat"),
        p.channel.spec().client_balance.to_sat()
    );
}
