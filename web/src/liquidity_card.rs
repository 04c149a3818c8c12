//! Home's "Buy inbound liquidity" card: an amount, what it costs and what the channel can
//! receive afterwards, a confirm button, and the purchase's progress ("asking the provider" →
//! "opening the bigger channel" → "signing" → "done"), or why it failed.

use bitcoin::Amount;
use leptos::prelude::*;
use leptos::task::spawn_local;
use wallet::format::sats;
use wallet::pay::{LiquidityBought, LiquidityQuote, LiquidityStep};

use crate::amount::Sats;
use crate::state::AppCtx;

/// Where the user's purchase stands (the client's own step is in the snapshot).
#[derive(Debug, Clone, PartialEq)]
enum Stage {
    /// Typing an amount.
    Input,
    /// Its cost, as last quoted.
    Quoted(LiquidityQuote),
    /// The purchase runs; the snapshot says at which step.
    Buying,
    /// Bought.
    Done(LiquidityBought),
    /// Not bought, and why.
    Failed(String),
}

/// A step's words and its `data-step` value.
fn step_words(step: LiquidityStep) -> (&'static str, &'static str) {
    match step {
        LiquidityStep::Asking => ("asking", "Asking the provider…"),
        LiquidityStep::Opening => ("opening", "Opening the bigger channel…"),
        LiquidityStep::Signing => (
            "signing",
            "Signing the new leaf state… (payments wait until it is done)",
        ),
    }
}

/// The card (once payments run and a channel is open).
#[component]
pub fn LiquidityCard() -> impl IntoView {
    let ctx = AppCtx::get();
    let amount = RwSignal::new(String::new());
    let stage = RwSignal::new(Stage::Input);
    let channel = move || {
        ctx.pay.with(|p| {
            p.snapshot
                .as_ref()
                .and_then(|s| s.channels.iter().max_by_key(|c| c.for_sale).cloned())
        })
    };
    let running = move || ctx.pay.with(|p| p.phase.runs()) && channel().is_some();
    let step = move || channel().and_then(|c| c.advance);
    let quote = move |text: String| {
        let Some(handle) = ctx.pay_handle() else {
            return;
        };
        let Ok(sat) = text.trim().parse::<u64>() else {
            stage.set(if text.trim().is_empty() {
                Stage::Input
            } else {
                Stage::Failed("enter a whole number of sats".into())
            });
            return;
        };
        spawn_local(async move {
            let next = match handle.liquidity_quote(Amount::from_sat(sat)).await {
                Ok(q) => Stage::Quoted(q),
                Err(e) => Stage::Failed(e.to_string()),
            };
            // A purchase started meanwhile keeps its stage.
            if !matches!(stage.get_untracked(), Stage::Buying) {
                let _ = stage.try_set(next);
            }
        });
    };
    let buy = move |_| {
        let Stage::Quoted(q) = stage.get_untracked() else {
            return;
        };
        if q.refusal.is_some() {
            return;
        }
        let Some(handle) = ctx.pay_handle() else {
            return;
        };
        stage.set(Stage::Buying);
        spawn_local(async move {
            let next = match handle.buy_liquidity(q.amount).await {
                Ok(bought) => Stage::Done(bought),
                Err(e) => Stage::Failed(e.to_string()),
            };
            let _ = stage.try_set(next);
        });
    };
    let progress = move || -> (&'static str, String) {
        if let Some(s) = step() {
            let (id, words) = step_words(s);
            return (id, words.to_string());
        }
        match stage.get() {
            Stage::Buying => ("asking", "Asking the provider…".to_string()),
            Stage::Done(b) => (
                "done",
                format!(
                    "Done: {} more inbound liquidity, for {}.",
                    sats(b.amount),
                    sats(b.price)
                ),
            ),
            Stage::Failed(_) => ("failed", String::new()),
            _ => ("idle", String::new()),
        }
    };
    let quoted = move || match stage.get() {
        Stage::Quoted(q) => Some(q),
        _ => None,
    };
    let error = move || match stage.get() {
        Stage::Failed(why) => Some(why),
        Stage::Quoted(q) => q.refusal,
        _ => None,
    };
    let can_buy = move || quoted().is_some_and(|q| q.refusal.is_none()) && step().is_none();
    view! {
        <Show when=running>
            <section class="card" id="liquidity-card" aria-label="Buy inbound liquidity">
                <h2>"Buy inbound liquidity"</h2>
                <p class="hint">"Inbound liquidity is what your channel can still receive. Your \
                    factory leaf keeps a stock of it for you; buying moves some into your channel, \
                    for a fee paid from your balance."</p>
                <p class="hint" id="liquidity-for-sale" data-leaf-state=move || channel().map(|c| c.leaf.0.to_string())>{move || channel().map(|c| format!(
                    "Liquidity for sale in your leaf: {}.", sats(c.for_sale)
                ))}</p>
                <label>"Amount (sats)"
                    <input type="number" id="liquidity-amount" min="1" step="1"
                        prop:value=move || amount.get()
                        on:input=move |ev| {
                            let text = event_target_value(&ev);
                            amount.set(text.clone());
                            quote(text);
                        } />
                </label>
                {move || quoted().map(|q| view! {
                    <dl>
                        <dt>"Price"</dt><dd id="liquidity-price"><Sats amount=q.price what="price" /></dd>
                        <dt>"Can receive afterwards"</dt>
                        <dd id="liquidity-inbound-after"><Sats amount=q.inbound_after what="can receive afterwards" /></dd>
                        <dt>"Left for sale afterwards"</dt>
                        <dd id="liquidity-left"><Sats amount=q.available.checked_sub(q.amount).unwrap_or(Amount::ZERO) what="left for sale afterwards" /></dd>
                    </dl>
                })}
                <button class="primary" id="liquidity-buy" disabled=move || !can_buy()
                    on:click=buy>"Buy"</button>
                <p class="ok" id="liquidity-progress" data-step=move || progress().0>{move || progress().1}</p>
                <p class="bad" id="liquidity-error" role="alert">{error}</p>
            </section>
        </Show>
    }
}
