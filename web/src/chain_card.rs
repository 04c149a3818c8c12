//! Shows the chain tip as the browser reads it from the wallet's chain source, refreshed every
//! few seconds, which source that is, and a plain warning when it is the provider's own.

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::state::AppCtx;

const REFRESH_MS: u32 = 3_000;

/// The current block height, read in the browser from `esplora_url`.
#[component]
pub fn ChainCard(esplora_url: Signal<Option<String>>) -> impl IntoView {
    let ctx = AppCtx::get();
    let (tip, set_tip) = signal::<Option<Result<u32, String>>>(None);
    Effect::new(move |_| {
        let Some(url) = esplora_url.get() else { return };
        spawn_local(async move {
            // Stops when the component is gone or reads another endpoint.
            while esplora_url.try_get_untracked().flatten().as_deref() == Some(url.as_str()) {
                let height = wallet::chain::tip_height(&url, &ctx.tip_watch())
                    .await
                    .map_err(|e| e.to_string());
                if set_tip.try_set(Some(height)).is_some() {
                    return;
                }
                gloo_timers::future::TimeoutFuture::new(REFRESH_MS).await;
            }
        });
    });
    let providers = move || {
        esplora_url
            .get()
            .is_some_and(|u| ctx.is_providers_chain(&u))
    };
    view! {
        <section class="card" id="chain-card">
            <h2>"Bitcoin network"</h2>
            {move || match tip.get() {
                None => view! { <p class="hint">"Waiting for the chain source…"</p> }.into_any(),
                Some(Ok(h)) => view! {
                    <p>"Latest block "<span class="big" id="tip-height">{h}</span></p>
                }.into_any(),
                Some(Err(e)) => view! { <p class="bad" id="tip-error" role="alert">{e}</p> }.into_any(),
            }}
            <p class="hint">"Read by this wallet from "
                <span id="chain-source">{move || esplora_url.get().unwrap_or_default()}</span></p>
            <Show when=providers>
                <p class="bad" id="chain-warning">{PROVIDERS_CHAIN}</p>
            </Show>
        </section>
    }
}

/// The warning shown when the wallet reads the chain from its provider's own source.
pub const PROVIDERS_CHAIN: &str = "This is your provider's own chain source. Your wallet then \
    takes the provider's word for the chain, and a provider that hides blocks could get your \
    signature on an unsafe factory or stall your exit. Choose another one in Settings.";
