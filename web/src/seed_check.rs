//! Typing three of the recovery words back, to be sure they were written down.

use leptos::prelude::*;
use wallet::account::CHECKED_WORDS;

use crate::state::{AppCtx, Screen};

/// Asks for the words at the draft's check positions.
#[component]
pub fn SeedCheckForm() -> impl IntoView {
    let ctx = AppCtx::get();
    let positions = ctx
        .draft
        .with_value(|d| d.as_ref().map(|d| d.check.positions()))
        .unwrap_or([1, 2, 3]);
    let answers: [RwSignal<String>; CHECKED_WORDS] =
        std::array::from_fn(|_| RwSignal::new(String::new()));
    let error = RwSignal::new(None::<String>);
    let submit = move |_| {
        let given: Vec<String> = answers.iter().map(|a| a.get_untracked()).collect();
        let result = ctx.draft.with_value(|d| match d {
            Some(d) => d.check.verify(&d.seed, &given).map_err(|e| e.to_string()),
            None => Err("start again".into()),
        });
        match result {
            Ok(()) => ctx.screen.set(Screen::Protect),
            Err(e) => error.set(Some(e)),
        }
    };
    view! {
        <section class="card">
            <h2>"Check your words"</h2>
            <p>"Type these words from your paper."</p>
            {positions.into_iter().zip(answers).enumerate().map(|(i, (pos, answer))| view! {
                <label>{format!("Word {pos}")}
                    <input type="text" autocomplete="off" autocapitalize="none"
                        id=format!("seed-check-{}", i + 1) data-position=pos.to_string()
                        prop:value=move || answer.get()
                        on:input=move |ev| answer.set(event_target_value(&ev)) />
                </label>
            }).collect_view()}
            <p class="bad" id="seed-check-error" role="alert">{move || error.get()}</p>
            <button class="primary" id="seed-check-submit" on:click=submit>"Check"</button>
            <button id="seed-show-again" on:click=move |_| ctx.screen.set(Screen::ShowSeed)>"Show the words again"</button>
        </section>
    }
}
