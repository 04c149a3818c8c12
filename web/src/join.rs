//! Joining a factory: how much inbound liquidity, the quote, confirm; then the progress.

use bitcoin::Amount;
use futures::StreamExt;
use leptos::prelude::*;
use leptos::task::spawn_local;
use shared::ceremony::{ClientEvent, ClientOutcome};
use wallet::account::{outcome_words, JoinPlan, JoinStep};
use wallet::format::sats;
use wallet::session::{ChainSource, EsploraChain, SessionEvent};

use crate::amount::Sats;
use crate::join_progress::JoinProgressView;
use crate::state::{AppCtx, JoinProgress};

/// Confirmations after which the wallet counts its factory as open.
const CONFIRMATIONS: u32 = 1;

/// The join screen.
#[component]
pub fn Join() -> impl IntoView {
    let ctx = AppCtx::get();
    let started = move || ctx.join.with(|j| j.step.is_some());
    view! {
        <Show when=started fallback=move || view! { <JoinForm /> }>
            <JoinProgressView />
        </Show>
    }
}

/// The liquidity request and its quote.
#[component]
fn JoinForm() -> impl IntoView {
    let ctx = AppCtx::get();
    let terms = move || ctx.chosen.with(|c| c.info().map(|i| i.terms.clone()));
    let default_liquidity = terms()
        .map(|t| {
            Amount::from_sat(100_000)
                .max(t.body.min_liquidity)
                .min(t.body.max_liquidity)
                .to_sat()
        })
        .unwrap_or(100_000);
    let liquidity = RwSignal::new(default_liquidity.to_string());
    let plan = move || -> Result<JoinPlan, String> {
        let terms = terms().ok_or("the provider's terms are not loaded yet")?;
        if !ctx
            .chosen
            .with(|c| c.info().is_some_and(|i| i.check.is_ok()))
        {
            return Err("the provider's terms fail a check; choose another provider".into());
        }
        let sats: u64 = liquidity
            .get()
            .trim()
            .parse()
            .map_err(|_| "type a whole number of sats".to_string())?;
        let account = ctx.account().ok_or("open the wallet first")?;
        JoinPlan::price(&account, terms, Amount::from_sat(sats)).map_err(|e| e.to_string())
    };
    let confirm = move |_| {
        if let Ok(plan) = plan() {
            start(ctx, plan);
        }
    };
    view! {
        <section class="card">
            <h2>"Join a factory"</h2>
            <p>"Your channel can receive up to its size from the start. Inbound liquidity is more \
                room to receive, reserved for you in your leaf of the factory: when you need it, \
                you move it into your channel from Home (priced there before you buy)."</p>
            <label>"Inbound liquidity (sats)"
                <input type="number" id="liquidity" min="0" step="1000"
                    prop:value=move || liquidity.get()
                    on:input=move |ev| liquidity.set(event_target_value(&ev)) />
            </label>
            {move || match plan() {
                Ok(plan) => view! {
                    <dl id="quote">
                        <dt>"Your channel"</dt><dd id="quote-channel"><Sats amount=plan.channel what="your channel" /></dd>
                        <dt>"Liquidity reserved in your leaf"</dt><dd id="quote-liquidity"><Sats amount=plan.liquidity what="liquidity reserved in your leaf" />
                            <span class="hint">" (not receivable until you move it into your channel)"</span></dd>
                        <dt>"Join fee"</dt><dd id="quote-join-fee"><Sats amount=plan.price.join_fee() what="join fee" /></dd>
                        <dt>"Liquidity fee"</dt><dd id="quote-liquidity-fee"><Sats amount=plan.price.liquidity_fee() what="liquidity fee" />
                            <span class="hint">{format!(" ({} sats per million, for reserving it; moving it into your channel later is priced when you buy)", plan.terms.body.fees.liquidity_fee_ppm)}</span></dd>
                        <dt>"Total fee"</dt><dd id="quote-fee"><Sats amount=plan.quote.fee what="total fee" /></dd>
                        <dt>"When you pay it"</dt><dd id="quote-fee-when">{format!("Nothing now. {}", fee_when())}</dd>
                        <dt>"Leaving alone"</dt><dd>{wallet::lsp::exit_summary(&plan.terms.body, ctx.pace.get())}</dd>
                    </dl>
                    <button class="primary" id="join" on:click=confirm>"Join"</button>
                }.into_any(),
                Err(e) => view! { <p class="bad" id="quote-error" role="alert">{e}</p> }.into_any(),
            }}
        </section>
    }
}

/// When the join fee is paid, in words.
pub fn fee_when() -> String {
    format!(
        "It is taken from the first payment you receive that leaves you at least {}.",
        sats(shared::pay::join_fee::MIN_RECEIVED)
    )
}

/// Starts the session and feeds its events to the progress state.
pub fn start(ctx: AppCtx, plan: JoinPlan) {
    let Some(account) = ctx.account() else { return };
    let Some(esplora) = ctx.esplora_url() else {
        ctx.join.set(JoinProgress {
            step: Some(JoinStep::Connecting),
            error: Some("no chain source is known; set one in Settings".into()),
            ..JoinProgress::default()
        });
        return;
    };
    ctx.join.set(JoinProgress {
        step: Some(JoinStep::Connecting),
        running: true,
        last: "connecting".into(),
        ..JoinProgress::default()
    });
    let (tx, mut rx) = futures::channel::mpsc::unbounded::<SessionEvent>();
    let chain_url = esplora.clone();
    spawn_local(async move {
        while let Some(event) = rx.next().await {
            if let SessionEvent::Ceremony(ClientEvent::FundingBroadcast { txid, .. }) = &event {
                watch_confirmations(ctx, chain_url.clone(), *txid);
            }
            if let SessionEvent::Ceremony(ClientEvent::Joined { factory, .. }) = &event {
                watch_gathering(ctx, *factory);
            }
            if let SessionEvent::Disconnected { .. } = &event {
                quiet_disconnect(ctx, describe(&event));
                continue;
            }
            ctx.join.update(|j| {
                j.link_epoch += 1;
                j.step = j.step.map(|s| s.after(&event));
                j.last = describe(&event);
                if let SessionEvent::Ceremony(ClientEvent::Joined {
                    factory, start_by, ..
                }) = &event
                {
                    j.joined = Some((*factory, *start_by));
                }
                if let SessionEvent::Ceremony(ClientEvent::FundingBroadcast { txid, .. }) = &event {
                    j.funding = Some(*txid);
                    j.confirmations = Some((0, CONFIRMATIONS));
                }
            });
        }
    });
    spawn_local(async move {
        // The provider keeps one connection per wallet: a payment client that runs (the wallet
        // is in another factory) pauses while the join's connection is needed, or each would
        // push the other out. It runs again when the join ends.
        let paused = ctx.pay_run.with_value(|r| r.is_some());
        if paused {
            crate::payments::pause(ctx, "your wallet is joining a factory").await;
        }
        let result = account.join(&plan, &esplora, tx).await;
        ctx.profile.set(Some(account.profile()));
        let mut opened = false;
        ctx.join.update(|j| {
            j.running = false;
            match result {
                Ok(report) => match report.outcome {
                    ClientOutcome::Open { .. } => {
                        opened = true;
                        j.step = Some(JoinStep::Open);
                        j.confirmations = Some((CONFIRMATIONS, CONFIRMATIONS));
                    }
                    other => j.error = Some(outcome_words(&other)),
                },
                Err(e) => j.error = Some(e.to_string()),
            }
        });
        if opened {
            // The new factory's leaf joins the payment client's.
            crate::payments::restart(ctx);
        } else if paused {
            crate::payments::start(ctx);
        }
    });
}

/// A lost connection: said only if no reconnect (or other news) followed within a few seconds.
/// Only news moves the epoch: the failed attempts of a long outage must not keep hiding it.
fn quiet_disconnect(ctx: AppCtx, words: String) {
    let epoch = ctx.join.with_untracked(|j| j.link_epoch);
    spawn_local(async move {
        gloo_timers::future::TimeoutFuture::new(crate::payments::QUIET_RECONNECT_MS).await;
        let _ = ctx.join.try_update(|j| {
            if j.link_epoch == epoch && j.running {
                j.last = words;
            }
        });
    });
}

/// Asks the provider how `factory` is filling up, every few seconds while it gathers.
fn watch_gathering(ctx: AppCtx, factory: shared::types::FactoryId) {
    let Some(origin) = ctx
        .profile
        .with_untracked(|p| p.as_ref().map(|p| p.lsp_origin.clone()))
    else {
        return;
    };
    spawn_local(async move {
        while ctx
            .join
            .with_untracked(|j| j.running && j.step == Some(JoinStep::WaitingForOthers))
        {
            match wallet::lsp::fetch_gathering(&origin, factory).await {
                Ok(Some(status)) => ctx.join.update(|j| j.gathering = Some(status)),
                Ok(None) => {
                    ctx.join.update(|j| j.gathering = None);
                    return;
                }
                Err(_) => {}
            }
            gloo_timers::future::TimeoutFuture::new(2_000).await;
        }
    });
}

/// Polls the funding transaction's confirmations while the join runs.
fn watch_confirmations(ctx: AppCtx, url: String, txid: bitcoin::Txid) {
    spawn_local(async move {
        let Ok(chain) = EsploraChain::with_watch(&url, ctx.tip_watch()) else {
            return;
        };
        while ctx.join.with_untracked(|j| j.running) {
            if let Ok(n) = chain.confirmations(&txid).await {
                ctx.join
                    .update(|j| j.confirmations = Some((n.min(CONFIRMATIONS), CONFIRMATIONS)));
            }
            gloo_timers::future::TimeoutFuture::new(1_000).await;
        }
    });
}

fn describe(event: &SessionEvent) -> String {
    match event {
        SessionEvent::Connected { .. } => "connected to the provider".into(),
        SessionEvent::Disconnected { reason } => {
            format!("connection lost ({reason}); reconnecting")
        }
        SessionEvent::PathStored { factory, .. } => {
            format!("your signed way out of factory {factory} is stored in this browser")
        }
        SessionEvent::LspError { message } => format!("the provider said: {message}"),
        SessionEvent::Chain { trouble: Some(why) } => why.clone(),
        SessionEvent::Chain { trouble: None } => "the chain reads well again".into(),
        SessionEvent::Rejoining => {
            "the provider restarted before anything was signed; joining again".into()
        }
        SessionEvent::Ceremony(ClientEvent::Joined { factory, quote, .. }) => format!(
            "the provider accepted you into factory {factory} (fee {}, taken from your first payment received); waiting for others to join",
            sats(quote.fee)
        ),
        SessionEvent::Ceremony(ClientEvent::SessionStarted { .. }) => {
            "the factory is built; your wallet checks it and signs its part".into()
        }
        SessionEvent::Ceremony(ClientEvent::FactorySigned { .. }) => {
            "every signature checked".into()
        }
        SessionEvent::Ceremony(ClientEvent::FundingBroadcast { .. }) => {
            "the provider sent the factory's coin to the network; waiting for a block".into()
        }
        SessionEvent::Ceremony(ClientEvent::Ended(outcome)) => outcome_words(outcome),
    }
}
