//! Moving to a new factory when the wallet's factory enters its dying period: a banner on Home
//! that says so in plain words (until when, and what happens if the user does nothing), a
//! notification once per factory, and one button that does the whole move: join a new factory
//! of the same provider with the same amounts, wait for its channel, move the whole balance
//! into it (`PayHandle::migrate`), and remember the old factory as moved, so no screen shows it
//! and no watch leaves it on chain when the provider closes it.
//!
//! A move interrupted after the join (a reload, a lost connection) is finished from the same
//! banner: the wallet then already holds the newer factory, and only the payment is left.

use bitcoin::Amount;
use leptos::prelude::*;
use leptos::task::spawn_local;
use shared::ceremony::JoinPrice;
use shared::pay::ChannelId;
use shared::types::FactoryId;
use wallet::account::{FactoryOverview, JoinPlan, JoinStep};
use wallet::format::sats;
use wallet::pay::PayError;
use wallet::session::StoredPath;

use crate::join_progress::JoinProgressView;
use crate::state::{load_lsp, AppCtx, MoveProgress, MoveStep};

/// How often a move looks at the join and the new channel.
const LOOK_MS: u32 = 500;
/// Longest a move waits for the new factory's channel to open once the join is done.
const OPEN_WAIT_MS: u32 = 180_000;
/// Longest a move waits for a payment in flight on the old channel to settle.
const IN_FLIGHT_WAIT_MS: u32 = 30_000;

/// A factory of the wallet in its dying period, with its balance still in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ending {
    /// Its stored path.
    pub stored: StoredPath,
    /// What Home knows of it.
    pub overview: FactoryOverview,
    /// A newer funded factory of the wallet, when it already joined one (a move to finish).
    pub target: Option<FactoryId>,
}

/// The dying-period banner and the move's progress. `ending` is the wallet's dying factory
/// (`None` when there is none); the move's progress stays shown after it is done.
#[component]
pub fn MoveCard(#[prop(into)] ending: Signal<Option<Ending>>) -> impl IntoView {
    let ctx = AppCtx::get();
    // The notification, once per factory (stored, so a reload does not repeat it).
    Effect::new(move |_| {
        if let Some(e) = ending.get() {
            announce_once(ctx, e.stored.factory, e.overview.dying_ends_at);
        }
    });
    let step = move || ctx.moving.with(|m| m.step);
    let running = move || ctx.moving.with(|m| m.running);
    let moved = move || step() == Some(MoveStep::Moved);
    let liveness = move || {
        ctx.chosen
            .with(|c| c.info().map(|i| i.terms.body.liveness.clone()))
            .filter(|l| !l.trim().is_empty())
    };
    let banner = move || {
        ending.get().filter(|_| !moved()).map(|e| {
            let o = e.overview.clone();
            let factory = e.stored.factory;
            let old = ChannelId {
                factory,
                client: e.stored.path.client(),
            };
            let finish = e.target.is_some();
            let go = {
                let e = e.clone();
                move |_| start(ctx, e.stored.clone(), e.target)
            };
            view! {
                <section class="card ending" id="dying-banner" aria-labelledby="dying-title"
                    data-factory=factory.to_string() data-ends=o.dying_ends_at.to_consensus_u32().to_string()>
                    <h2 id="dying-title">"Your factory is ending"</h2>
                    <p id="dying-when"><strong>{move || format!(
                        "Factory {factory} is in its last days. Move your money to a new factory by block {} ({}).",
                        o.dying_ends_at,
                        if o.blocks_to_end.to_blocks() == 0 {
                            "now".to_string()
                        } else {
                            format!("in {} blocks, {}", o.blocks_to_end.to_blocks(), ctx.pace.get().approx(o.blocks_to_end))
                        },
                    )}</strong></p>
                    <p>{if finish {
                        "You already joined a new factory. One step is left: moving your balance into it, to the sat and without a fee."
                    } else {
                        "One tap does it all: your wallet joins a new factory of the same provider, with a channel as big as this one, and moves your whole balance into it, to the sat and without a fee for the move."
                    }}</p>
                    {(!finish).then(|| view! {
                        <p class="hint" id="move-fee">{move || move_fee(ctx, old).map(|fee| format!(
                            "The new factory's join fee, {}, is taken from a later payment you receive, as with your first join.",
                            sats(fee)
                        ))}</p>
                    })}
                    <p class="hint" id="dying-if-nothing">{move || format!(
                        "If you do nothing, your money stays safe: you can still leave on chain on your own (\u{201c}Leave the factory on your own\u{201d} below), and from block {} the factory pays everyone out, you included.{}",
                        o.timeout,
                        liveness().map(|l| format!(" The provider's terms: \u{201c}{l}\u{201d}")).unwrap_or_default(),
                    )}</p>
                    <Show when=move || !running()>
                        <button class="primary" id="move-factory" on:click=go.clone()>
                            {if finish { "Finish moving to the new factory" } else { "Move to a new factory" }}</button>
                    </Show>
                </section>
            }
        })
    };
    let status = move || {
        ctx.moving.with(|m| match m.step? {
            MoveStep::Joining => Some("Joining a new factory…".to_string()),
            MoveStep::Opening => Some("Joined. Waiting for your new channel to open…".to_string()),
            MoveStep::Moving => Some("Moving your balance…".to_string()),
            MoveStep::Moved => Some(format!(
                "Moved \u{2713} {} now in factory {}",
                sats(m.amount.unwrap_or(Amount::ZERO)),
                m.to.map(|f| f.to_string()).unwrap_or_default(),
            )),
        })
    };
    let state = move || {
        ctx.moving.with(|m| match (m.step, &m.error) {
            (_, Some(_)) => "failed",
            (Some(MoveStep::Joining), _) => "joining",
            (Some(MoveStep::Opening), _) => "opening",
            (Some(MoveStep::Moving), _) => "moving",
            (Some(MoveStep::Moved), _) => "moved",
            (None, _) => "none",
        })
    };
    view! {
        {banner}
        <Show when=move || step().is_some()>
            <section class="card" id="move" aria-live="polite">
                <h2>"Moving to a new factory"</h2>
                <p id="move-status" data-state=state><strong>{status}</strong></p>
                <Show when=move || step() == Some(MoveStep::Joining) && ctx.join.with(|j| j.step.is_some())>
                    <JoinProgressView />
                </Show>
                <p class="bad" id="move-error" role="alert">{move || ctx.moving.with(|m| m.error.clone().map(|e| format!(
                    "The move stopped: {e}. No sat is lost: your balance is in your old channel or already in the new one. Try again to finish the move."
                )))}</p>
            </section>
        </Show>
    }
}

/// The fee of the join a move out of channel `old` makes, under the provider's terms as
/// loaded (tracked).
fn move_fee(ctx: AppCtx, old: ChannelId) -> Option<Amount> {
    let terms = ctx
        .chosen
        .with(|c| c.info().map(|i| i.terms.body.clone()))?;
    let (capacity, for_sale) = ctx.pay.with(|p| {
        p.snapshot.as_ref().and_then(|s| {
            s.channels
                .iter()
                .find(|c| c.channel == old)
                .map(|c| (c.capacity, c.for_sale))
        })
    })?;
    let (_, liquidity) = JoinPlan::amounts_like(&terms, capacity, for_sale);
    JoinPrice::under(&terms.fees, liquidity)
        .ok()
        .map(|p| p.total())
}

/// Asks for a browser notification the first time `factory`'s dying period is seen.
fn announce_once(ctx: AppCtx, factory: FactoryId, ends_at: bitcoin::absolute::Height) {
    let Some(account) = ctx.account() else { return };
    if account.profile().dying_announced.contains(&factory) {
        return;
    }
    spawn_local(async move {
        let mut news = false;
        if let Ok(profile) = account.update(|p| news = p.announce_dying(factory)).await {
            ctx.profile.set(Some(profile));
        }
        if news {
            crate::notify::announce(
                "Your factory is ending",
                &format!(
                    "Open your wallet and move to a new factory before block {ends_at}. \
                     Your money is safe either way."
                ),
            );
        }
    });
}

/// Starts moving out of `from` (into `target` when the wallet already joined a newer
/// factory; else into a new one it joins first). Does nothing while a move runs.
pub fn start(ctx: AppCtx, from: StoredPath, target: Option<FactoryId>) {
    if ctx.moving.with_untracked(|m| m.running) {
        return;
    }
    ctx.moving.set(MoveProgress {
        step: Some(if target.is_some() {
            MoveStep::Opening
        } else {
            MoveStep::Joining
        }),
        running: true,
        from: Some(from.factory),
        to: target,
        ..MoveProgress::default()
    });
    spawn_local(async move {
        let result = run(ctx, &from, target).await;
        ctx.moving.update(|m| {
            m.running = false;
            match result {
                Ok(amount) => {
                    m.step = Some(MoveStep::Moved);
                    m.amount = Some(amount);
                }
                Err(e) => m.error = Some(e),
            }
        });
    });
}

/// The whole move; the amount moved, or why it stopped (in words).
async fn run(ctx: AppCtx, from: &StoredPath, target: Option<FactoryId>) -> Result<Amount, String> {
    let old = ChannelId {
        factory: from.factory,
        client: from.path.client(),
    };
    let to = match target {
        Some(to) => to,
        None => join_new(ctx, old).await?,
    };
    ctx.moving.update(|m| {
        m.to = Some(to);
        m.step = Some(MoveStep::Opening);
    });
    let new = channel_in(ctx, to, old).await?;
    ctx.moving.update(|m| m.step = Some(MoveStep::Moving));
    let moved = migrate(ctx, old, new).await?;
    let account = ctx.account().ok_or("the wallet was closed")?;
    let profile = account
        .update(|p| {
            p.mark_moved(from.factory, to);
        })
        .await
        .map_err(|e| e.to_string())?;
    ctx.profile.set(Some(profile));
    // The old channel is closed: the client goes on with the new factory's leaf alone.
    crate::payments::restart(ctx);
    Ok(moved)
}

/// `PayHandle::migrate` from `old` to `new`; a payment still in flight on `old` (a move cut
/// short by a reload, or a payment received just now) is waited for, a while.
async fn migrate(ctx: AppCtx, old: ChannelId, new: ChannelId) -> Result<Amount, String> {
    let mut waited = 0;
    loop {
        let handle = ctx
            .pay_handle()
            .ok_or("the wallet's payment client is not running")?;
        match handle.migrate(old, new).await {
            Ok(moved) => return Ok(moved),
            Err(PayError::StillHolds(_)) if waited < IN_FLIGHT_WAIT_MS => {
                gloo_timers::future::TimeoutFuture::new(LOOK_MS).await;
                waited += LOOK_MS;
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Joins a new factory of the wallet's provider with the amounts of channel `old` (its
/// capacity now, and the liquidity its leaf still had for sale); the new factory.
async fn join_new(ctx: AppCtx, old: ChannelId) -> Result<FactoryId, String> {
    let account = ctx.account().ok_or("open the wallet first")?;
    let profile = account.profile();
    let info = match load_lsp(&profile.lsp_origin, Some(profile.network)).await {
        crate::state::LspView::Ready(info) => info,
        crate::state::LspView::Failed(e) => {
            return Err(format!("the provider's terms cannot be read: {e}"))
        }
        _ => return Err("the provider's terms cannot be read".into()),
    };
    if !info.check.is_ok() {
        return Err(format!(
            "the provider's terms fail a check ({}); choose another provider",
            info.check.describe()
        ));
    }
    let joined = profile.join_of(old.factory);
    let (capacity, for_sale) = ctx
        .pay
        .with_untracked(|p| {
            p.snapshot.as_ref().and_then(|s| {
                s.channels
                    .iter()
                    .find(|c| c.channel == old)
                    .map(|c| (c.capacity, c.for_sale))
            })
        })
        .or(joined.map(|j| (j.channel, j.liquidity)))
        .ok_or("this factory's channel is not known yet; wait for the provider to connect")?;
    let plan = JoinPlan::like(&account, info.terms.clone(), capacity, for_sale)
        .map_err(|e| e.to_string())?;
    drop(account);
    // Payments pause while the join runs, and start again with the new factory's leaf.
    crate::join::start(ctx, plan);
    let ended = loop {
        gloo_timers::future::TimeoutFuture::new(LOOK_MS).await;
        let (running, step, error) = ctx
            .join
            .with_untracked(|j| (j.running, j.step, j.error.clone()));
        if running {
            continue;
        }
        break match (error, step) {
            (Some(e), _) => Err(e),
            (None, Some(JoinStep::Open)) => Ok(()),
            (None, _) => Err("the join stopped".to_string()),
        };
    };
    ended?;
    let account = ctx.account().ok_or("the wallet was closed")?;
    account
        .profile()
        .last_join()
        .and_then(|j| j.factory)
        .filter(|f| *f != old.factory)
        .ok_or_else(|| "the new factory is not on record".to_string())
}

/// Waits until the payment client holds the channel of factory `to` open, beside `old`; that
/// channel.
async fn channel_in(ctx: AppCtx, to: FactoryId, old: ChannelId) -> Result<ChannelId, String> {
    let mut waited = 0;
    loop {
        if let Some(handle) = ctx.pay_handle() {
            if let Ok(s) = handle.snapshot().await {
                let new = s
                    .channels
                    .iter()
                    .find(|c| c.channel.factory == to && c.ready)
                    .map(|c| c.channel);
                let has_old = s.channels.iter().any(|c| c.channel == old);
                if let (Some(new), true) = (new, has_old) {
                    return Ok(new);
                }
            }
        }
        if waited >= OPEN_WAIT_MS {
            return Err(
                "the new factory's channel did not open in time; the provider may be busy".into(),
            );
        }
        gloo_timers::future::TimeoutFuture::new(LOOK_MS).await;
        waited += LOOK_MS;
    }
}
