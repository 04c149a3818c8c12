//! Home's "Your money": one balance model, named the same on every screen. Spendable now and
//! can receive now (the channel), on chain (what an exit paid to the wallet's own address), and
//! the liquidity for sale in the wallet's leaf; the channel's size only under "Details". Then
//! the provider's connection and the ways to pay, receive and see the history, while the
//! channel is open.

use bitcoin::Amount;
use leptos::prelude::*;
use wallet::session::Coins;

use crate::amount::Sats;
use crate::onchain_send::OnchainSend;
use crate::state::{AppCtx, PayPhase, Screen};

/// The money card. `for_sale` and `channel_size` come from the factory (`None` before one is
/// funded); `onchain` from the wallet's address; `sweep` is that address.
#[component]
pub fn MoneyCard(
    #[prop(into)] for_sale: Signal<Option<Amount>>,
    #[prop(into)] channel_size: Signal<Option<Amount>>,
    #[prop(into)] onchain: Signal<Option<Coins>>,
    sweep: String,
) -> impl IntoView {
    let ctx = AppCtx::get();
    let phase = move || ctx.pay.with(|p| p.phase.clone());
    // Why the provider says the channel takes no more payments (its factory's tree or a
    // commitment is on chain, or the factory is near its timeout), once every channel is so.
    let closed = move || {
        ctx.pay.with(|p| {
            let channels = &p.snapshot.as_ref()?.channels;
            if channels.is_empty() || channels.iter().any(|c| c.closed.is_none()) {
                return None;
            }
            channels.iter().find_map(|c| c.closed.clone())
        })
    };
    let left = move || ctx.left.get();
    let running = move || phase().runs() && !left() && closed().is_none();
    let paused = move || matches!(phase(), PayPhase::Paused(_)) && !left();
    // The join fee still owed: taken from the first payment received that leaves enough.
    let fee_owed = move || {
        ctx.pay.with(|p| {
            let owed: Amount = p
                .snapshot
                .as_ref()?
                .channels
                .iter()
                .map(|c| c.join_fee.unpaid())
                .sum();
            (owed > Amount::ZERO).then_some(owed)
        })
    };
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
        PayPhase::Paused(_) => "paused",
    };
    let status = move || match phase() {
        PayPhase::Off => "not started".to_string(),
        PayPhase::Connecting => "connecting…".to_string(),
        PayPhase::Connected => "connected".to_string(),
        PayPhase::Disconnected(_) => {
            "cannot be reached; trying again. Your money stays safe: you can leave without \
             the provider (below)."
                .to_string()
        }
        PayPhase::Failed(why) => format!("stopped: {why}"),
        PayPhase::Paused(why) => format!("paused: {why}"),
    };
    let amount = move |a: Option<Amount>, what: &'static str| match a {
        Some(a) => view! { <Sats amount=a what=what /> }.into_any(),
        None => view! { <span class="amount">"…"</span> }.into_any(),
    };
    let show_onchain = move || left() || onchain.get().is_some_and(|c| c.total > Amount::ZERO);
    view! {
        <section class="card" id="balances" aria-labelledby="money-title">
            <h2 id="money-title">"Your money"</h2>
            <Show when=left>
                <p id="channel-closed" class="hint">"You left your factory: your channel is closed. \
                    What was yours goes to your on-chain address. To pay and receive over Lightning \
                    again, join a new factory."</p>
            </Show>
            <Show when=move || closed().is_some() && !left()>
                <p id="channel-closed-lsp" class="hint" role="status">"Your channel takes no more \
                    payments: "{move || closed().unwrap_or_default()}". What is yours stays yours: \
                    leave the factory below to move it to your on-chain address."</p>
            </Show>
            <dl class="money">
                <Show when=move || running() || paused()>
                    <dt>"Spendable now"</dt>
                    <dd id="balance" class="big">{move || amount(balance().map(|b| b.0), "spendable now")}</dd>
                    <dt>"Can receive now"</dt>
                    <dd id="inbound">{move || amount(balance().map(|b| b.1), "can receive now")}</dd>
                </Show>
                <Show when=show_onchain>
                    <dt>"On chain"</dt>
                    <dd id="balance-onchain"
                        data-sats=move || onchain.get().map(|c| c.total.to_sat().to_string())
                        data-confirmations=move || onchain.get().map(|c| c.confirmations.to_string())>
                        {move || match onchain.get() {
                            Some(c) => view! {
                                <Sats amount=c.total what="on chain" />
                                <span class="hint">{match (c.total == c.confirmed, c.confirmations) {
                                    (_, 0) if c.total > Amount::ZERO => " · not confirmed yet".to_string(),
                                    (true, 1) => " · 1 confirmation".to_string(),
                                    (true, n) if n > 0 => format!(" · {n} confirmations"),
                                    (false, _) => " · partly unconfirmed".to_string(),
                                    _ => String::new(),
                                }}</span>
                            }.into_any(),
                            None => view! { <span class="amount">"…"</span> }.into_any(),
                        }}
                    </dd>
                </Show>
                <Show when=move || !left() && for_sale.get().is_some()>
                    <dt>"Liquidity for sale in your leaf"</dt>
                    <dd id="balance-inbound" data-sats=move || for_sale.get().map(|a| a.to_sat().to_string())>
                        {move || amount(for_sale.get(), "liquidity for sale in your leaf")}
                    </dd>
                </Show>
            </dl>
            <Show when=move || onchain.get().is_some_and(|c| c.total > Amount::ZERO)>
                <OnchainSend />
            </Show>
            <Show when=move || running() && fee_owed().is_some()>
                <p class="hint" id="join-fee-owed" data-sats=move || fee_owed().map(|a| a.to_sat().to_string())>
                    "Join fee still to pay: "{move || fee_owed().map(|a| view! { <Sats amount=a what="join fee still to pay" /> })}
                    ". "{crate::join::fee_when}</p>
            </Show>
            <Show when=move || phase() == PayPhase::Off && !left()>
                <p class="hint" id="pay-off">"Payments start once your factory's funding has confirmed."</p>
            </Show>
            <Show when=move || phase() != PayPhase::Off>
                <p class="hint">"Provider: "<span id="pay-status" data-state=state
                    class:ok=move || phase() == PayPhase::Connected>{status}</span></p>
                {move || match phase() {
                    PayPhase::Disconnected(why) => Some(view! {
                        <details><summary>"Details"</summary><p class="hint mono" id="pay-status-why">{why}</p></details>
                    }),
                    _ => None,
                }}
            </Show>
            <Show when=move || frozen() && !left()>
                <p class="hint" id="pay-frozen">"Your channel is moving to a bigger one: \
                    payments wait until the provider has signed it."</p>
            </Show>
            <Show when=running>
                <div class="actions">
                    <button class="primary" id="go-receive" on:click=move |_| ctx.screen.set(Screen::Receive)>"Receive"</button>
                    <button class="primary" id="go-send" on:click=move |_| ctx.screen.set(Screen::Send)>"Send"</button>
                </div>
            </Show>
            <Show when=move || phase() != PayPhase::Off>
                <button id="go-history" on:click=move |_| ctx.screen.set(Screen::History)>"History"</button>
            </Show>
            <p class="hint" id="pay-notice">{move || ctx.pay.with(|p| p.notice.clone())}</p>
            <p class="hint">"Your on-chain address (leaving a factory pays you here):"</p>
            <p class="mono" id="sweep-address">{sweep}</p>
            <details id="money-details">
                <summary>"Details"</summary>
                <dl>
                    <dt>"Channel size"</dt>
                    <dd id="balance-channel" data-sats=move || channel_size.get().map(|a| a.to_sat().to_string())>
                        {move || channel_size.get().map(|a| view! { <Sats amount=a what="channel size" /> })}
                    </dd>
                </dl>
                <p class="hint">"The channel's size is what you and the provider hold in it together. \
                    It is not all yours: yours is what you can spend now."</p>
            </details>
            <p class="hint" id="persist-status">{move || ctx.persisted.get().map(|p| match p {
                Ok(true) => "This browser promised to keep the wallet's storage.".to_string(),
                Ok(false) => "This browser may clear the wallet's storage when space runs low: keep your words and a backup.".to_string(),
                Err(e) => format!("Storage persistence unknown: {e}"),
            })}</p>
        </section>
    }
}
