//! Home's payments card: what the wallet can spend and receive over Lightning, whether the
//! provider is connected, and the way to the payment screens.

use leptos::prelude::*;
use wallet::format::sats;

use crate::state::{AppCtx, PayPhase, Screen};

/// The payments card.
#[component]
pub fn PayCard() -> impl IntoView {
    let ctx = AppCtx::get();
    let phase = move || ctx.pay.with(|p| p.phase.clone());
    let running = move || phase() != PayPhase::Off;
    let balance = move || {
        ctx.pay
            .with(|p| p.snapshot.as_ref().map(|s| (s.balance, s.inbound)))
    };
    // A liquidity purchase whose signatures are out freezes the channel until it completes.
    let frozen = move || {
        ctx.pay.with(|p| {
            p.snapshot.as_ref().is_some_and(|s| {
                s.channels
                    .iter()
                    .any(|c| c.advance == Some(wallet::pay::LiquidityStep::Signing))
            })
        })
    };
    let state = move || match phase() {
        PayPhase::Off => "off",
        PayPhase::Connecting => "connecting",
        PayPhase::Connected => "connected",
        PayPhase::Disconnected(_) => "disconnected",
        PayPhase::Failed(_) => "failed",
    };
    let status = move || match phase() {
        PayPhase::Off => "not started".to_string(),
        PayPhase::Connecting => "connecting…".to_string(),
        PayPhase::Connected => "connected".to_string(),
        PayPhase::Disconnected(why) => format!("reconnecting ({why})"),
        PayPhase::Failed(why) => format!("stopped: {why}"),
    };
    view! {
        <section class="card" id="pay-card">
            <h2>"Lightning"</h2>
            <Show when=running fallback=|| view! {
                <p class="hint" id="pay-off">"Payments start once your factory's funding has confirmed."</p>
            }>
                <p class="big" id="balance">{move || balance().map(|(b, _)| sats(b)).unwrap_or_else(|| "…".into())}</p>
                <p class="hint">"You can spend this now."</p>
                <dl>
                    <dt>"Can receive"</dt>
                    <dd id="inbound">{move || balance().map(|(_, i)| sats(i)).unwrap_or_else(|| "…".into())}</dd>
                    <dt>"Provider"</dt>
                    <dd id="pay-status" data-state=state class:ok=move || phase() == PayPhase::Connected>{status}</dd>
                </dl>
                <Show when=frozen>
                    <p class="hint" id="pay-frozen">"Your channel is moving to a bigger one: \
                        payments wait until the provider has signed it."</p>
                </Show>
                <div class="actions">
                    <button class="primary" id="go-receive" on:click=move |_| ctx.screen.set(Screen::Receive)>"Receive"</button>
                    <button class="primary" id="go-send" on:click=move |_| ctx.screen.set(Screen::Send)>"Send"</button>
                </div>
                <button id="go-history" on:click=move |_| ctx.screen.set(Screen::History)>"History"</button>
            </Show>
            <p class="hint" id="pay-notice">{move || ctx.pay.with(|p| p.notice.clone())}</p>
        </section>
    }
}
