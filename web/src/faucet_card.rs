//! Test networks only: asks the provider's demo faucet for sats, paid over the channel.

use bitcoin::{Amount, Network};
use leptos::prelude::*;
use leptos::task::spawn_local;
use wallet::format::sats;

use crate::state::AppCtx;

/// The most one tap asks for.
pub const FAUCET_SATS: u64 = 20_000;

/// What one tap asks for: [`FAUCET_SATS`], or less when the channel cannot receive that much
/// (rounded down to whole thousands, so it still fits when fees change a little).
pub fn faucet_amount(inbound: Amount) -> Amount {
    Amount::from_sat(FAUCET_SATS.min(inbound.to_sat() / 1_000 * 1_000))
}

/// The "Get test sats" card (regtest and signet, once the payment client runs).
#[component]
pub fn FaucetCard() -> impl IntoView {
    let ctx = AppCtx::get();
    let test_network = move || {
        ctx.profile.with(|p| {
            p.as_ref()
                .is_some_and(|p| matches!(p.network, Network::Regtest | Network::Signet))
        })
    };
    let running = move || ctx.pay.with(|p| p.phase.runs());
    let asked = RwSignal::new(None::<bitcoin::hashes::sha256::Hash>);
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let arrived = move || {
        let hash = asked.get()?;
        ctx.pay.with(|p| {
            p.received
                .iter()
                .find(|r| r.hash == hash)
                .map(|r| (r.amount, r.join_fee))
        })
    };
    let amount = move || {
        ctx.pay.with(|p| {
            p.snapshot
                .as_ref()
                .map_or(Amount::ZERO, |s| faucet_amount(s.inbound))
        })
    };
    let ask = move |_| {
        let Some(handle) = ctx.pay_handle() else {
            return;
        };
        let amount = amount();
        if amount == Amount::ZERO {
            error.set(Some(
                "your channel cannot receive any more right now".into(),
            ));
            return;
        }
        error.set(None);
        busy.set(true);
        spawn_local(async move {
            match handle.faucet(amount).await {
                Ok(invoice) => {
                    let _ = asked.try_set(Some(invoice.hash));
                }
                Err(e) => {
                    let _ = error.try_set(Some(e.to_string()));
                }
            }
            let _ = busy.try_set(false);
        });
    };
    let message = move || match (asked.get(), arrived()) {
        (_, Some((amount, Amount::ZERO))) => Some(format!(
            "{} arrived.",
            sats(amount).replace("sat", "test sat")
        )),
        (_, Some((amount, join_fee))) => Some(format!(
            "{} arrived; {} of them paid your join fee.",
            sats(amount).replace("sat", "test sat"),
            sats(join_fee)
        )),
        (Some(_), None) => Some("Asked; the sats arrive in a moment.".to_string()),
        _ => None,
    };
    view! {
        <Show when=move || test_network() && running()>
            <section class="card" id="faucet-card">
                <h2>"Test sats"</h2>
                <p class="hint">"This wallet runs on a test network, where coins are worth nothing. \
                    The provider gives test sats to try payments with; they arrive over your channel, \
                    up to what it can still receive."</p>
                <button id="faucet" disabled=move || busy.get() || amount() == Amount::ZERO
                    data-sats=move || amount().to_sat().to_string()
                    on:click=ask>{move || match amount() {
                        Amount::ZERO => "Your channel cannot receive more".to_string(),
                        a => format!("Get test sats ({})", sats(a)),
                    }}</button>
                <p class="ok" id="faucet-message">{message}</p>
                <p class="bad" id="faucet-error" role="alert">{move || error.get()}</p>
            </section>
        </Show>
    }
}
