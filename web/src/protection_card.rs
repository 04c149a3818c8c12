//! Settings card: set or change the passphrase, or drop it for this browser's device key.

use leptos::prelude::*;
use leptos::task::spawn_local;
use wallet::vault::{Protection, ProtectionMode};

use crate::state::AppCtx;

/// Shows how the wallet is protected and changes it.
#[component]
pub fn ProtectionCard() -> impl IntoView {
    let ctx = AppCtx::get();
    let mode = RwSignal::new(ctx.account().map(|a| a.protection()));
    let first = RwSignal::new(String::new());
    let again = RwSignal::new(String::new());
    let message = RwSignal::new(None::<String>);
    let error = RwSignal::new(None::<String>);

    let apply = move |use_passphrase: bool| {
        let Some(account) = ctx.account() else { return };
        message.set(None);
        error.set(None);
        let passphrase = first.get_untracked();
        if use_passphrase {
            if passphrase.is_empty() {
                error.set(Some("type the new passphrase twice".into()));
                return;
            }
            if passphrase != again.get_untracked() {
                error.set(Some("the two passphrases differ".into()));
                return;
            }
        }
        spawn_local(async move {
            let protection = if use_passphrase {
                Protection::Passphrase(&passphrase)
            } else {
                Protection::DeviceKey
            };
            // The payment client writes to the vault: it pauses while the vault is re-encrypted.
            crate::payments::stop(ctx).await;
            let changed = account.change_protection(protection).await;
            crate::payments::start(ctx);
            match changed {
                Ok(()) => {
                    let _ = mode.try_set(Some(account.protection()));
                    let _ = first.try_set(String::new());
                    let _ = again.try_set(String::new());
                    let _ = message.try_set(Some(
                        if use_passphrase {
                            "Done: the wallet now opens with the new passphrase."
                        } else {
                            "Done: the wallet now opens without a passphrase in this browser."
                        }
                        .into(),
                    ));
                }
                Err(e) => {
                    let _ = error.try_set(Some(e.to_string()));
                }
            }
        });
    };
    let describe = move || match mode.get() {
        Some(ProtectionMode::Passphrase) => {
            "This wallet opens with your passphrase. Anyone who copies this browser's files \
             still needs it."
        }
        Some(ProtectionMode::DeviceKey) => {
            "This wallet opens without a passphrase: a key kept by this browser protects it. \
             Anyone who can use this browser profile can open it."
        }
        None => "",
    };
    view! {
        <section class="card">
            <h2>"Passphrase"</h2>
            <p class="hint" id="protection-mode">{describe}</p>
            <input type="password" id="new-passphrase" placeholder="new passphrase"
                prop:value=move || first.get()
                on:input=move |ev| first.set(event_target_value(&ev)) />
            <input type="password" id="new-passphrase-again" placeholder="the same again"
                prop:value=move || again.get()
                on:input=move |ev| again.set(event_target_value(&ev)) />
            <button id="change-passphrase" on:click=move |_| apply(true)>"Set this passphrase"</button>
            <Show when=move || mode.get() == Some(ProtectionMode::Passphrase)>
                <button id="remove-passphrase" on:click=move |_| apply(false)>
                    "Open without a passphrase"
                </button>
            </Show>
            <p class="ok" id="protection-message">{move || message.get()}</p>
            <p class="bad" id="protection-error" role="alert">{move || error.get()}</p>
        </section>
    }
}
