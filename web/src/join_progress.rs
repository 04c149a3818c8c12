//! The join's progress: every ceremony step, done, current or to come, and the confirmations;
//! while the factory gathers, its members so far, the minimum, and a countdown to the deadline.

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
            <Show when=move || ctx.join.with(|j| j.running && j.step == Some(JoinStep::WaitingForOthers))>
                <GatheringView />
            </Show>
            <p class="hint" id="join-status">{move || ctx.join.with(|j| j.last.clone())}</p>
            <p class="bad" id="join-error" role="alert">{move || ctx.join.with(|j| j.error.clone())}</p>
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

/// The factory filling up: members so far, the minimum, the time left, and what happens then.
#[component]
fn GatheringView() -> impl IntoView {
    let ctx = AppCtx::get();
    // Ticks every second while shown, for the countdown.
    let now = RwSignal::new(wallet::platform::unix_now());
    leptos::task::spawn_local(async move {
        loop {
            gloo_timers::future::TimeoutFuture::new(1_000).await;
            if now.try_set(wallet::platform::unix_now()).is_some() {
                return;
            }
        }
    });
    let status = move || ctx.join.with(|j| j.gathering.clone());
    let deadline = move || ctx.join.with(|j| j.joined.map(|(_, t)| t));
    view! {
        <div id="gathering" class="gathering" data-members=move || status().map(|g| g.members.to_string())>
            {move || match status() {
                Some(g) => view! {
                    <p id="gathering-members"><strong>{format!("{} member{} so far", g.members, if g.members == 1 { "" } else { "s" })}</strong>
                        {format!(": the factory needs at least {} and starts at once with {}.", g.min_members, g.max_members)}</p>
                    <p class="hint" id="gathering-outlook">{g.outlook(now.get())}</p>
                }.into_any(),
                None => view! {
                    <p class="hint" id="gathering-outlook">{move || deadline().map(|t| {
                        let left = t.saturating_sub(now.get());
                        format!("The provider starts the factory by {}:{:02} from now, if enough people have joined; otherwise it is called off and you can join again.", left / 60, left % 60)
                    })}</p>
                }.into_any(),
            }}
        </div>
    }
}
