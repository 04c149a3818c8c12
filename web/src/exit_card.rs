//! Leaving the factory alone: what it costs and waits, a confirmation listing every cost to the
//! sat, then each step as it happens. Works with the provider gone: it needs only the stored
//! path and the wallet's chain source.

use std::rc::Rc;

use leptos::prelude::*;
use leptos::task::spawn_local;
use wallet::exit::{ExitPlan, ExitPreview, ExitRunner};
use wallet::format::sats;
use wallet::session::StoredPath;

use crate::leave_confirm::LeaveCosts;
use crate::state::{AppCtx, AutoExit, ExitProgress, MoveStep};

const STEP_MS: u32 = 2_000;

/// Where the user stands before the exit runs.
#[derive(Clone)]
enum Ask {
    /// Not asked.
    Idle,
    /// Computing the costs.
    Pricing,
    /// The costs, waiting for a yes.
    Priced(Rc<ExitRunner>, ExitPlan),
}

/// How often the wallet's own watch reads the factory's funding output.
const WATCH_MS: u32 = 5_000;

thread_local! {
    /// The factories (by funding outpoint) whose funding output a watch loop reads.
    static WATCHING: std::cell::RefCell<std::collections::BTreeSet<bitcoin::OutPoint>> =
        std::cell::RefCell::default();
}

/// Runs `runner` step by step until the exit is final; `started_by` is set when the wallet
/// started it by itself, and says why.
fn run_exit(ctx: AppCtx, runner: Rc<ExitRunner>, started_by: Option<AutoExit>) {
    ctx.left.set(true);
    ctx.exit.set(ExitProgress {
        running: true,
        started_by,
        ..ExitProgress::default()
    });
    spawn_local(async move {
        loop {
            match runner.step().await {
                Ok(status) => {
                    let done = status.is_final();
                    let pace = ctx.pace.get_untracked();
                    ctx.exit.update(|x| {
                        let words = status.describe(pace);
                        if x.log.last() != Some(&words) {
                            x.log.push(words);
                        }
                        x.status = Some(status);
                        x.error = None;
                        x.running = !done;
                    });
                    if done {
                        return;
                    }
                }
                Err(e) => ctx.exit.update(|x| x.error = Some(e.to_string())),
            }
            gloo_timers::future::TimeoutFuture::new(STEP_MS).await;
        }
    });
}

/// Whether the wallet moved its balance out of `factory` (stored in its profile): the
/// provider holds every key of it and may spend its funding output alone, which is no reason
/// to leave on chain.
fn moved_out(ctx: AppCtx, factory: shared::types::FactoryId) -> bool {
    ctx.profile
        .try_with_untracked(|p| p.as_ref().is_some_and(|p| p.moved().contains(&factory)))
        .unwrap_or(false)
}

/// Whether this tab is handing `factory`'s key to the provider right now (its move is past
/// the payment): the watch waits until that is stored, or has failed.
fn moving_out(ctx: AppCtx, factory: shared::types::FactoryId) -> bool {
    ctx.moving
        .try_with_untracked(|m| {
            m.running && m.from == Some(factory) && m.step >= Some(MoveStep::Moving)
        })
        .unwrap_or(false)
}

/// The exit card of the factory `stored`.
#[component]
pub fn ExitCard(stored: StoredPath) -> impl IntoView {
    let ctx = AppCtx::get();
    let preview = ExitPreview::of(&stored.path);
    let ask = RwSignal::new_local(Ask::Idle);
    let started = move || {
        ctx.exit
            .with(|e| e.running || e.status.is_some() || e.error.is_some())
    };
    let watched = stored.clone();
    let price = move |_| {
        let Some(account) = ctx.account() else { return };
        let Some(url) = ctx.esplora_url() else {
            ctx.exit
                .update(|e| e.error = Some("no chain source is set; see Settings".into()));
            return;
        };
        let stored = stored.clone();
        ask.set(Ask::Pricing);
        spawn_local(async move {
            let next = match account.exit_runner(&stored, &url).await {
                Ok(runner) => match runner.plan().await {
                    Ok(plan) => Ask::Priced(Rc::new(runner), plan),
                    Err(e) => {
                        ctx.exit.update(|x| x.error = Some(e.to_string()));
                        Ask::Idle
                    }
                },
                Err(e) => {
                    ctx.exit.update(|x| x.error = Some(e.to_string()));
                    Ask::Idle
                }
            };
            let _ = ask.try_set(next);
        });
    };
    let go = move |_| {
        let Ask::Priced(runner, _) = ask.get_untracked() else {
            return;
        };
        ask.set(Ask::Idle);
        run_exit(ctx, runner, None);
    };
    // The wallet's own watch: once anyone spends the factory's funding output (read from the
    // user's chain source), or a payment deadline of its channel passes unsettled, the wallet
    // walks its path, closes the channel and sweeps without waiting for the user.
    let funding = watched.path.funding_outpoint();
    let factory = watched.factory;
    let distribution = watched.path.distribution().txid();
    // One watch per factory for the page's life, however often the card is drawn.
    let fresh = WATCHING.with(|w| w.borrow_mut().insert(funding));
    fresh.then(|| {
        spawn_local(async move {
            loop {
                gloo_timers::future::TimeoutFuture::new(WATCH_MS).await;
                let busy = ctx
                    .exit
                    .try_with_untracked(|e| e.running || e.status.is_some())
                    .unwrap_or(true);
                if busy {
                    return;
                }
                // Moved out: nothing of this wallet's is left there.
                if moved_out(ctx, factory) {
                    return;
                }
                if moving_out(ctx, factory) {
                    continue;
                }
                let (Some(account), Some(url)) = (ctx.account(), ctx.esplora_url()) else {
                    continue;
                };
                let overdue = ctx
                    .pay
                    .try_with_untracked(|p| p.overdue.contains(&factory))
                    .unwrap_or(false);
                let why = if overdue {
                    AutoExit::Overdue
                } else {
                    match wallet::exit::funding_spender(&url, &watched.path).await {
                        Ok(Some(by)) => AutoExit::FundingSpent(by),
                        _ => continue,
                    }
                };
                if moved_out(ctx, factory) {
                    return;
                }
                if moving_out(ctx, factory) {
                    continue;
                }
                match account.exit_runner(&watched, &url).await {
                    Ok(runner) => return run_exit(ctx, Rc::new(runner), Some(why)),
                    Err(e) => {
                        let _ = ctx.exit.try_update(|x| x.error = Some(e.to_string()));
                    }
                }
            }
        })
    });
    let asking = move || !matches!(ask.get(), Ask::Idle);
    view! {
        <section class="card" id="exit" aria-labelledby="exit-title">
            <h2 id="exit-title">"Leave the factory on your own"</h2>
            <p id="exit-preview" data-timeout=preview.timeout.to_consensus_u32().to_string()
                data-sats=preview.leaf_value.to_sat().to_string()>{move || format!(
                "You can always leave without the provider. It takes up to {} blocks ({}). \
                 From block {} the factory pays everyone out instead, you included: {}.",
                preview.worst_blocks.to_blocks(), ctx.pace.get().approx(preview.worst_blocks),
                preview.timeout, sats(preview.leaf_value),
            )}</p>
            <details>
                <summary>"Details"</summary>
                <p class="hint">{format!(
                    "Down the tree: {} transactions ({} vB) with {} of fees already paid from the factory.",
                    preview.txs, preview.vbytes, sats(preview.prepaid_fee),
                )}</p>
            </details>
            <p class="hint">"Your wallet picks the way, broadcasts each transaction itself and moves \
                the money to your on-chain address. It needs only the chain, not the provider."</p>
            <Show when=move || !started() && !asking()>
                <button class="bad-button" id="exit-start" on:click=price.clone()>"Leave the factory…"</button>
            </Show>
            {move || match ask.get() {
                Ask::Idle => None,
                Ask::Pricing => Some(view! { <p class="hint" id="leave-pricing">"Working out the costs…"</p> }.into_any()),
                Ask::Priced(_, plan) => Some(view! {
                    <div id="leave-confirm" role="group" aria-labelledby="leave-title">
                        <h3 id="leave-title">"Before you leave: this cannot be undone"</h3>
                        <LeaveCosts plan=plan.clone() />
                        <p class="hint">"Your channel closes: no more Lightning payments from this factory."</p>
                        <button class="bad-button" id="exit-confirm" on:click=go>
                            {format!("Leave and receive {}", sats(plan.lands))}</button>
                        <button id="exit-cancel" on:click=move |_| ask.set(Ask::Idle)>"Stay in the factory"</button>
                    </div>
                }.into_any()),
            }}
            <Show when=move || ctx.exit.with(|x| x.started_by.is_some())>
                <p id="exit-auto" role="status">{move || {
                    match ctx.exit.with(|x| x.started_by) {
                        Some(AutoExit::FundingSpent(by)) if by == distribution => {
                            "The factory paid everyone out on chain. Your wallet is moving your \
                             share to your own address on its own; keep this page open until it \
                             says done."
                                .to_string()
                        }
                        Some(AutoExit::FundingSpent(_)) => {
                            "Another member (or the provider) started taking your factory on \
                             chain. Your money is safe, but the factory can no longer pay out by \
                             itself, so your wallet is moving your money to your own address on \
                             its own. Keep this page open until it says done."
                                .to_string()
                        }
                        _ => "The provider did not settle a payment you received in time. To \
                              collect it, your wallet is taking your channel on chain and moving \
                              your money to your own address on its own. Keep this page open \
                              until it says done."
                            .to_string(),
                    }
                }}</p>
                {move || match ctx.exit.with(|x| x.started_by) {
                    Some(AutoExit::FundingSpent(by)) => Some(view! {
                        <details class="exit-tx">
                            <summary>"Details"</summary>
                            <p class="hint mono">{format!("the factory's funding was spent by transaction {by}")}</p>
                        </details>
                    }),
                    _ => None,
                }}
            </Show>
            <Show when=started>
                <p>"Now: "<strong id="exit-status"
                    data-state=move || ctx.exit.with(|x| x.status.as_ref().map_or("starting", |s| s.id()))
                    data-txid=move || ctx.exit.with(|x| x.status.as_ref().and_then(|s| s.txid()).map(|t| t.to_string()))>
                    {move || ctx.exit.with(|x| x.status.as_ref().map_or("starting…".to_string(), |s| s.describe(ctx.pace.get())))}
                </strong></p>
                {move || ctx.exit.with(|x| x.status.as_ref().and_then(|s| s.txid())).map(|t| view! {
                    <details class="exit-tx">
                        <summary>"Details"</summary>
                        <p class="hint mono">{format!("transaction {t}")}</p>
                    </details>
                })}
                <ol class="exit-log" id="exit-log">
                    {move || ctx.exit.with(|x| x.log.iter().map(|l| view! { <li>{l.clone()}</li> }).collect_view())}
                </ol>
            </Show>
            <p class="bad" id="exit-error" role="alert">{move || ctx.exit.with(|x| x.error.clone())}</p>
        </section>
    }
}
