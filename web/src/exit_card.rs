//! Leaving the factory alone: what it costs and waits, then each step as it happens. Works with
//! the provider gone: it needs only the stored path and the wallet's chain source.

use leptos::prelude::*;
use leptos::task::spawn_local;
use wallet::account::approx_wall_time;
use wallet::exit::ExitPreview;
use wallet::format::sats;
use wallet::session::StoredPath;

use crate::state::{AppCtx, ExitProgress};

const STEP_MS: u32 = 2_000;

/// The exit card of the factory `stored`.
#[component]
pub fn ExitCard(stored: StoredPath) -> impl IntoView {
    let ctx = AppCtx::get();
    let preview = ExitPreview::of(&stored.path);
    let started = move || {
        ctx.exit
            .with(|e| e.running || e.status.is_some() || e.error.is_some())
    };
    let start = move |_| {
        let Some(account) = ctx.account() else { return };
        let Some(url) = ctx.esplora_url() else {
            ctx.exit
                .update(|e| e.error = Some("no chain source is set; see Settings".into()));
            return;
        };
        let stored = stored.clone();
        ctx.exit.set(ExitProgress {
            running: true,
            ..ExitProgress::default()
        });
        spawn_local(async move {
            let runner = match account.exit_runner(&stored, &url).await {
                Ok(r) => r,
                Err(e) => {
                    ctx.exit.update(|x| {
                        x.running = false;
                        x.error = Some(e.to_string());
                    });
                    return;
                }
            };
            loop {
                match runner.step().await {
                    Ok(status) => {
                        let done = status.is_final();
                        ctx.exit.update(|x| {
                            let words = status.describe();
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
    };
    view! {
        <section class="card" id="exit">
            <h2>"Leave the factory on your own"</h2>
            <p id="exit-preview" data-timeout=preview.timeout.to_consensus_u32().to_string()>{format!(
                "Down the tree: {} transactions ({} vB), their {} of fees already paid, and up to {} blocks of waiting ({}). \
                 From block {} the factory's distribution pays you {} instead, without the tree.",
                preview.txs, preview.vbytes, sats(preview.prepaid_fee),
                preview.worst_blocks.to_blocks(), approx_wall_time(preview.worst_blocks),
                preview.timeout, sats(preview.leaf_value),
            )}</p>
            <p class="hint">"Your wallet picks the way, broadcasts each transaction itself and moves \
                the money to your on-chain address. It needs only the chain, not the provider."</p>
            <Show when=move || !started()>
                <button class="bad-button" id="exit-start" on:click=start.clone()>"Leave now"</button>
            </Show>
            <Show when=started>
                <p>"Now: "<strong id="exit-status"
                    data-state=move || ctx.exit.with(|x| x.status.as_ref().map_or("starting", |s| s.id()))>
                    {move || ctx.exit.with(|x| x.status.as_ref().map_or("starting…".to_string(), |s| s.describe()))}
                </strong></p>
                <ol class="exit-log" id="exit-log">
                    {move || ctx.exit.with(|x| x.log.iter().map(|l| view! { <li>{l.clone()}</li> }).collect_view())}
                </ol>
            </Show>
            <p class="bad" id="exit-error">{move || ctx.exit.with(|x| x.error.clone())}</p>
        </section>
    }
}
