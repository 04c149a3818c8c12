//! The new wallet's recovery words, shown once.

use leptos::prelude::*;

use crate::state::{AppCtx, Screen};

/// Shows the 24 words.
#[component]
pub fn SeedShow() -> impl IntoView {
    let ctx = AppCtx::get();
    let words: Vec<String> = ctx
        .draft
        .with_value(|d| d.as_ref().map(|d| d.seed.words().to_string()))
        .unwrap_or_default()
        .split(' ')
        .map(str::to_string)
        .collect();
    view! {
        <section class="card">
            <h2>"Your recovery words"</h2>
            <p>"Write these 24 words on paper, in order, and keep them somewhere safe. They are \
                the only way back into your money if this browser is lost. Anyone who sees them \
                can take it. They are shown only now."</p>
            <ol class="seed" id="seed-words" aria-label="Your 24 recovery words, in order">
                {words.into_iter().enumerate().map(|(i, w)| view! {
                    <li id=format!("seed-word-{}", i + 1)>{w}</li>
                }).collect_view()}
            </ol>
            <button class="primary" id="seed-written" on:click=move |_| ctx.screen.set(Screen::CheckSeed)>
                "I wrote them down"
            </button>
        </section>
    }
}
