//! The wallet's one payment client: started when the wallet opens (it waits until a factory of
//! the wallet is funded), stopped before the vault is re-encrypted or wiped. Its events become
//! the `pay` signal the payment screens read.

use std::cell::Cell;
use std::rc::Rc;

use futures::StreamExt;
use leptos::prelude::*;
use leptos::task::spawn_local;
use wallet::account::Account;
use wallet::pay::{PayClient, PayConfig, PayEvent, PayHandle, PayLeaf};
use wallet::session::{BrowserConnector, EsploraChain};

use crate::state::{AppCtx, PayPhase, PayRun, PayView};

/// Pause between looks for a funded factory.
const LOOK_MS: u32 = 3_000;
/// Pause before a client that stopped on an error starts again.
const RETRY_MS: u32 = 5_000;
/// Longest [`stop`] waits for the client to let go of the vault.
const STOP_WAIT_MS: u32 = 10_000;

/// Starts the payment client once the open wallet has a funded leaf (looking every few
/// seconds). Does nothing if one runs already.
pub fn start(ctx: AppCtx) {
    if ctx.pay_run.with_value(|r| r.is_some()) {
        return;
    }
    let generation = ctx.pay_generation.get_value() + 1;
    ctx.pay_generation.set_value(generation);
    spawn_local(async move {
        loop {
            if ctx.pay_generation.get_value() != generation {
                return;
            }
            // Held only while looking, so settings can wipe the wallet meanwhile.
            let Some(account) = ctx.account() else { return };
            if let Some(esplora) = ctx.esplora_url() {
                match EsploraChain::with_watch(&esplora, ctx.tip_watch()) {
                    Ok(chain) => match account.pay_leaves(&chain).await {
                        Ok(leaves) if !leaves.is_empty() => {
                            if ctx.pay_generation.get_value() == generation {
                                launch(ctx, &account, leaves, chain);
                            }
                            return;
                        }
                        Ok(_) => {}
                        Err(e) => notice(ctx, e.to_string()),
                    },
                    Err(e) => notice(ctx, e.to_string()),
                }
            }
            drop(account);
            gloo_timers::future::TimeoutFuture::new(LOOK_MS).await;
        }
    });
}

/// Stops the payment client (and a pending start), and waits until it has let go of the vault.
pub async fn stop(ctx: AppCtx) {
    ctx.pay_generation.update_value(|g| *g += 1);
    if let Some(run) = ctx.pay_run.get_value() {
        run.handle.stop();
        let mut waited = 0;
        while !run.done.get() && waited < STOP_WAIT_MS {
            gloo_timers::future::TimeoutFuture::new(50).await;
            waited += 50;
        }
    }
    ctx.pay_run.set_value(None);
    ctx.pay.set(PayView::default());
}

/// Stops the client for a while, saying `why` and keeping the balances last seen (a join runs:
/// the provider takes one connection per wallet, and the join's must not be pushed out).
/// [`start`] or [`restart`] ends the pause.
pub async fn pause(ctx: AppCtx, why: &str) {
    let snapshot = ctx.pay.with_untracked(|p| p.snapshot.clone());
    stop(ctx).await;
    ctx.pay.set(PayView {
        phase: PayPhase::Paused(why.into()),
        snapshot,
        ..PayView::default()
    });
}

/// Stops the client and starts it again (a new factory's leaf joins the others).
pub fn restart(ctx: AppCtx) {
    spawn_local(async move {
        stop(ctx).await;
        start(ctx);
    });
}

fn notice(ctx: AppCtx, text: String) {
    ctx.pay.update(|p| p.notice = Some(text));
}

/// Runs a client for `leaves`, feeding its events to the `pay` signal.
fn launch(ctx: AppCtx, account: &Account, leaves: Vec<PayLeaf>, chain: EsploraChain) {
    let profile = account.profile();
    let identity = match account.keys().identity() {
        Ok(i) => *i.keypair(),
        Err(e) => return notice(ctx, e.to_string()),
    };
    let mut config = PayConfig::new(profile.network, identity, leaves);
    if let (Some(url), Ok(home)) = (profile.watchtower.clone(), account.sweep_address()) {
        config.watchtower = Some(wallet::pay::TowerLink {
            url,
            destination: home.script_pubkey(),
        });
    }
    let connector = BrowserConnector::new(wallet::lsp::ws_url(&profile.lsp_origin));
    let (client, handle) = PayClient::new(config, connector, account.pay_store(), chain);
    let (tx, mut events) = futures::channel::mpsc::unbounded();
    let done = Rc::new(Cell::new(false));
    ctx.pay_run.set_value(Some(PayRun {
        handle: handle.clone(),
        done: done.clone(),
    }));
    ctx.pay.set(PayView {
        phase: PayPhase::Connecting,
        ..PayView::default()
    });
    let generation = ctx.pay_generation.get_value();
    spawn_local(async move {
        let result = client.with_events(tx).run().await;
        done.set(true);
        if let Err(e) = result {
            ctx.pay
                .update(|p| p.phase = PayPhase::Failed(e.to_string()));
            // A storage or connection failure stopped it: start again in a while, unless the
            // wallet stopped it meanwhile (a wipe, a new passphrase, a new factory).
            gloo_timers::future::TimeoutFuture::new(RETRY_MS).await;
            if ctx.pay_generation.try_get_value() == Some(generation) {
                ctx.pay_run.set_value(None);
                start(ctx);
            }
        }
    });
    spawn_local(async move {
        refresh(ctx, &handle).await;
        while let Some(event) = events.next().await {
            apply(ctx, event);
            // Several events come at once in a payment: one snapshot after the burst.
            while let Ok(event) = events.try_recv() {
                apply(ctx, event);
            }
            refresh(ctx, &handle).await;
        }
    });
}

/// A lost connection is shown only if the client has not reconnected within this time.
pub const QUIET_RECONNECT_MS: u32 = 5_000;

/// Takes one event into the `pay` signal.
fn apply(ctx: AppCtx, event: PayEvent) {
    if let PayEvent::Received(record) = &event {
        crate::toast::show(
            ctx,
            format!(
                "Received {}{}{}",
                wallet::format::sats(record.amount),
                if record.description.is_empty() {
                    String::new()
                } else {
                    format!(" for \u{201c}{}\u{201d}", record.description)
                },
                if record.join_fee > bitcoin::Amount::ZERO {
                    format!(
                        "; your join fee of {} was taken from it",
                        wallet::format::sats(record.join_fee)
                    )
                } else {
                    String::new()
                }
            ),
        );
    }
    ctx.pay.update(|p| match event {
        PayEvent::Connected => {
            p.link_epoch += 1;
            p.phase = PayPhase::Connected;
        }
        PayEvent::Disconnected { reason } => {
            // Shown only if no reconnect came meanwhile. Only a connection moves the epoch: the
            // failed attempts of a long outage (one every reconnect delay, shorter than the
            // quiet time) must not keep hiding it.
            let epoch = p.link_epoch;
            spawn_local(async move {
                gloo_timers::future::TimeoutFuture::new(QUIET_RECONNECT_MS).await;
                let _ = ctx.pay.try_update(|p| {
                    if p.link_epoch == epoch {
                        p.phase = PayPhase::Disconnected(reason);
                    }
                });
            });
        }
        PayEvent::Received(record) => p.received.push(record),
        PayEvent::LspError(message) => p.notice = Some(message),
        PayEvent::ChannelClosed { reason, .. } => p.notice = Some(reason),
        PayEvent::GoingOnChain { channel, reason } => {
            p.notice = Some(reason);
            p.overdue.insert(channel.factory);
        }
        PayEvent::LiquidityFailed { reason, .. } => p.notice = Some(reason),
        PayEvent::FactoryEnding(notice) => p.notice = Some(notice.message),
        PayEvent::ChannelReady(_) | PayEvent::Sent(_) | PayEvent::Failed(_) => {}
        PayEvent::Liquidity { .. } | PayEvent::LiquidityBought(_) | PayEvent::Updated => {}
        // The snapshot says what the watchtower holds (settings).
        PayEvent::TowerUpdated { .. } | PayEvent::TowerFailed(_) => {}
    });
}

/// Reads balances and history into the `pay` signal.
async fn refresh(ctx: AppCtx, handle: &PayHandle) {
    if let Ok(snapshot) = handle.snapshot().await {
        ctx.pay.update(|p| p.snapshot = Some(snapshot));
    }
}
