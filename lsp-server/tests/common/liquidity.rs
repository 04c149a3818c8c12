//! Buying inbound liquidity by hand, as the wallet does (docs/protocol.md, "Leaf states and
//! inbound liquidity"), with a puppet wallet (`common::puppet`) whose every step the test
//! controls.

use bitcoin::{Amount, Network};
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
use shared::wire::{ErrorCode, WireMsg};

use super::pay::leaf_of;
use super::puppet::Puppet;
use super::raw;
use super::swarm::ClientRun;

/// How the hand-driven purchase misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tamper {
    None,
    /// Sends its two partial signatures in each other's place.
    SwapPartials,
    /// Drops the connection once round 0 of the new channel is done.
    DropBeforePartials,
    /// Signs, then loses its partial signatures with the connection (the LSP never sees them).
    PartialsLost,
}

/// The wallet's `channel_open` for its channel on leaf state `leaf`.
pub fn open_msg(p: &Puppet, run: &ClientRun, leaf: LeafEpoch, next_update: u64) -> ChannelOpen {
    let secrets = ChannelSecrets::from_seed(&channel_seed(&run.factory_secret, p.id, leaf));
    ChannelOpen {
        next_update,
        ..ChannelOpen::new(p.id, leaf, &secrets)
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
pub async fn buy(
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
    if tamper == Tamper::PartialsLost {
        let _ = p.ws.close(None).await;
        return Err("lost".into());
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

/// Reconnects the puppet and opens its channel on leaf state `leaf` (saying it signed a
/// `purchase` it has not seen complete, if any); returns what the LSP answered (its
/// `channel_open`, or a `leaf_signed` for a purchase the wallet missed).
pub async fn reconnect(
    p: &mut Puppet,
    stack: &super::Stack,
    run: &ClientRun,
    leaf: LeafEpoch,
    purchase: Option<Amount>,
) -> WireMsg {
    let (ws, _) = raw::connect_as(&stack.ws_url(), &run.keys).await;
    p.ws = ws;
    p.held.clear();
    p.channel.reset_round();
    let next = p.channel.updates_received();
    let open = ChannelOpen {
        purchase,
        ..open_msg(p, run, leaf, next)
    };
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
