//! The join's progress: every ceremony step, done, current or to come, and the confirmations.

use leptos::prelude::*;
use wallet::account::JoinStep;

use crate::state::{AppCtx, JoinProgress, Screen};

/// The progress view.
#[component]
pub fn JoinProgressView() -> impl IntoView {
    let ctx = AppCtx::get();
    let step = move || ctx.join.with(|j| j.step);
    let failed = move || ctx.join.with(|j| j.error.is_some());
    view! {
        <section class="card" id="join-progress">
            <h2>"Joining a factory"</h2>
            <ol class="steps">
                {JoinStep::ALL.into_iter().map(|s| {
                    let state = move || match step() {
                        Some(cur) if cur == JoinStep::Open && s == JoinStep::Open => "done",
                        Some(cur) if s < cur => "done",
                        Some(cur) if s == cur && failed() => "failed",
                        Some(cur) if s == cur => "current",
                        _ => "todo",
                    };
                    let extra = move || (s == JoinStep::Open).then(|| {
                        ctx.join.with(|j| j.confirmations.map(|(n, m)| format!(" ({n}/{m} confirmations)")))
                    }).flatten();
                    view! {
                        <li id=s.id() class=state data-state=state>
                            {s.label()}<span id=(s == JoinStep::Open).then_some("confirmations")>{extra}</span>
                        </li>
                    }
                }).collect_view()}
            </ol>
            <p class="hint" id="join-status">{move || ctx.join.with(|j| j.last.clone())}</p>
            <p class="bad" id="join-error">{move || ctx.join.with(|j| j.error.clone())}</p>
            <Show when=move || !ctx.join.with(|j| j.running)>
                <button class="primary" id="join-home" on:click=move |_| {
                    if failed() {
                        ctx.join.set(JoinProgress::default());
                    }
                    ctx.screen.set(Screen::Home);
                }>{move || if failed() { "Back" } else { "See my factory" }}</button>
            </Show>
        </section>
    }
}
