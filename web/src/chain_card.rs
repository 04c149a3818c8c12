//! Shows the chain tip as the browser reads it from Esplora, refreshed every few seconds.

use leptos::prelude::*;
use leptos::task::spawn_local;

const REFRESH_MS: u32 = 3_000;

/// The current block height, read in the browser from `esplora_url`.
#[component]
pub fn ChainCard(esplora_url: Signal<Option<String>>) -> impl IntoView {
    let (tip, set_tip) = signal::<Option<Result<u32, String>>>(None);
    Effect::new(move |_| {
        let Some(url) = esplora_url.get() else { return };
        spawn_local(async move {
            // Stops when the component is gone or reads another endpoint.
            while esplora_url.try_get_untracked().flatten().as_deref() == Some(url.as_str()) {
                let height = wallet::chain::tip_height(&url)
                    .await
                    .map_err(|e| e.to_string());
                if set_tip.try_set(Some(height)).is_some() {
                    return;
                }
                gloo_timers::future::TimeoutFuture::new(REFRESH_MS).await;
            }
        });
    });
    view! {
        <section class="card">
            <h2>"Bitcoin network"</h2>
            {move || match tip.get() {
                None => view! { <p class="hint">"Waiting for the chain source…"</p> }.into_any(),
                Some(Ok(h)) => view! {
                    <p>"Latest block "<span class="big" id="tip-height">{h}</span></p>
                }.into_any(),
                Some(Err(e)) => view! { <p class="bad">{e}</p> }.into_any(),
            }}
            <p class="hint">{move || esplora_url.get().map(|u| format!("read from {u}"))}</p>
        </section>
    }
}
