//! Restoring a wallet: from recovery words, or from a backup file.

use leptos::prelude::*;
use leptos::task::spawn_local;
use wallet::account::{Account, SeedCheck};
use wallet::keys::Seed;
use wallet::vault::Protection;

use crate::download::read_file_input;
use crate::state::{AppCtx, Draft, Screen};
use crate::welcome::rand_core;

/// The restore screen.
#[component]
pub fn Restore() -> impl IntoView {
    let ctx = AppCtx::get();
    let words = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let from_words = move |_| match Seed::from_words(&words.get_untracked()) {
        Ok(seed) => {
            let check = SeedCheck::new(&mut rand_core(), seed.word_count());
            ctx.draft.set_value(Some(Draft {
                seed,
                restored: true,
                check,
            }));
            ctx.screen.set(Screen::Protect);
        }
        Err(e) => error.set(Some(e.to_string())),
    };
    let password = RwSignal::new(String::new());
    let from_file = move |_| {
        spawn_local(async move {
            let outcome = match read_file_input("import-file").await {
                Ok(bytes) => {
                    let password = password.get_untracked();
                    // The restored wallet opens with the backup password as its passphrase.
                    Account::restore_backup(&bytes, &password, Protection::Passphrase(&password))
                        .await
                        .map_err(|e| e.to_string())
                }
                Err(e) => Err(e),
            };
            match outcome {
                Ok(account) => ctx.opened(account),
                Err(e) => error.set(Some(e)),
            }
        });
    };
    view! {
        <section class="card">
            <h2>"Restore from recovery words"</h2>
            <textarea id="restore-words" rows="4" placeholder="word1 word2 …"
                prop:value=move || words.get()
                on:input=move |ev| words.set(event_target_value(&ev))></textarea>
            <button class="primary" id="restore-submit" on:click=from_words>"Restore"</button>
            <p class="hint">"Words restore your keys. Factories you were in come back only from a backup file."</p>
        </section>
        <section class="card">
            <h2>"Restore from a backup file"</h2>
            <input type="file" id="import-file" accept=".json,application/json" />
            <label>"Backup password"
                <input type="password" id="import-password"
                    on:input=move |ev| password.set(event_target_value(&ev)) />
            </label>
            <button id="import-submit" on:click=from_file>"Restore the backup"</button>
        </section>
        <p class="bad" id="restore-error" role="alert">{move || error.get()}</p>
        <button id="back-welcome" on:click=move |_| ctx.screen.set(Screen::Welcome)>"Back"</button>
    }
}
