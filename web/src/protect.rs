//! Choosing how the wallet is locked in this browser, then creating it.

use leptos::prelude::*;
use leptos::task::spawn_local;
use wallet::account::{Account, Profile};
use wallet::vault::{request_persistence, Protection};

use crate::state::{AppCtx, Screen};

/// Passphrase or device key, with what each protects.
#[component]
pub fn Protect() -> impl IntoView {
    let ctx = AppCtx::get();
    let passphrase = RwSignal::new(String::new());
    let repeat = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let restored = ctx
        .draft
        .with_value(|d| d.as_ref().is_some_and(|d| d.restored));

    let create = move |with_passphrase: bool| {
        if with_passphrase && passphrase.get_untracked() != repeat.get_untracked() {
            error.set(Some("the two passphrases differ; type them again".into()));
            return;
        }
        let Some(seed) = ctx.draft.with_value(|d| d.as_ref().map(|d| d.seed.clone())) else {
            ctx.screen.set(Screen::Welcome);
            return;
        };
        let Some(lsp) = ctx.serving.with_untracked(|s| s.info().cloned()) else {
            error.set(Some(
                "no provider is reachable; type a provider's address on the first screen".into(),
            ));
            return;
        };
        busy.set(true);
        spawn_local(async move {
            let pass = passphrase.get_untracked();
            let protection = if with_passphrase {
                Protection::Passphrase(&pass)
            } else {
                Protection::DeviceKey
            };
            let (network, esplora) = (
                lsp.terms.body.network,
                Some(lsp.terms.body.esplora_url.clone()),
            );
            let mut profile = if restored {
                Profile::restored(network, &lsp.origin, esplora, &mut rand::rngs::OsRng)
            } else {
                Profile::new(network, &lsp.origin, esplora)
            };
            // A chain source named by the page's address (`?esplora=`); else the network's.
            profile.esplora_url = crate::state::page_param("esplora");
            match Account::create(&seed, protection, profile).await {
                Ok(account) => {
                    ctx.draft.set_value(None);
                    let persisted = request_persistence().await.map_err(|e| e.to_string());
                    ctx.persisted.set(Some(persisted));
                    ctx.opened(account);
                }
                Err(e) => {
                    busy.set(false);
                    error.set(Some(e.to_string()));
                }
            }
        });
    };
    view! {
        <section class="card">
            <h2>"Lock your wallet"</h2>
            {restored.then(|| view! { <p class="ok">"Recovery words accepted."</p> })}
            <h3>"With a passphrase"</h3>
            <p>"Someone who copies this browser's files still cannot open your wallet without \
                the passphrase. You type it each time you open the wallet. It does not help \
                against a malicious browser extension while the wallet is open."</p>
            <input type="password" id="passphrase" placeholder="passphrase" autocomplete="new-password"
                on:input=move |ev| passphrase.set(event_target_value(&ev)) />
            <input type="password" id="passphrase-repeat" placeholder="same passphrase again" autocomplete="new-password"
                on:input=move |ev| repeat.set(event_target_value(&ev)) />
            <button class="primary" id="use-passphrase" disabled=move || busy.get()
                on:click=move |_| create(true)>"Use this passphrase"</button>
            <h3>"Without a passphrase"</h3>
            <p>"The browser keeps a key for you on this device. Anyone who can use this browser \
                profile can open the wallet. Choose this only on a device you alone use."</p>
            <button id="no-passphrase" disabled=move || busy.get()
                on:click=move |_| create(false)>"No passphrase"</button>
            <p class="bad" id="protect-error">{move || error.get()}</p>
        </section>
    }
}
