//! A short message over whatever screen is open (a payment came in), gone after a few seconds.
//! Screen readers hear it once (`role="status"`).

use leptos::prelude::*;

use crate::state::AppCtx;

/// How long a message stays.
const SHOW_MS: u32 = 6_000;

/// Shows `text` as the toast.
pub fn show(ctx: AppCtx, text: String) {
    let n = ctx
        .toast
        .with_untracked(|t| t.as_ref().map_or(0, |(n, _)| n + 1));
    ctx.toast.set(Some((n, text)));
    leptos::task::spawn_local(async move {
        gloo_timers::future::TimeoutFuture::new(SHOW_MS).await;
        // Only this message: a newer one keeps its own time.
        if ctx
            .toast
            .with_untracked(|t| t.as_ref().is_some_and(|(m, _)| *m == n))
        {
            ctx.toast.set(None);
        }
    });
}

/// The toast area.
#[component]
pub fn Toast() -> impl IntoView {
    let ctx = AppCtx::get();
    view! {
        <div class="toast-area" role="status" aria-live="polite">
            {move || ctx.toast.get().map(|(_, text)| view! {
                <p class="toast" id="toast" on:click=move |_| ctx.toast.set(None)>{text}</p>
            })}
        </div>
    }
}
