//! Settings: the chain source, the watchtower, the network, the passphrase, backups, and wiping the wallet.

use std::rc::Rc;

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::chain_card::{ChainCard, PROVIDERS_CHAIN};
use crate::download::download;
use crate::protection_card::ProtectionCard;
use crate::state::{AppCtx, JoinProgress, Screen};

/// The settings screen.
#[component]
pub fn Settings() -> impl IntoView {
    let ctx = AppCtx::get();
    let esplora = RwSignal::new(ctx.esplora_url().unwrap_or_default());
    let message = RwSignal::new(None::<String>);
    let error = RwSignal::new(None::<String>);
    let password = RwSignal::new(String::new());
    let confirm_wipe = RwSignal::new(false);
    let tower = RwSignal::new(
        ctx.profile
            .with_untracked(|p| p.as_ref().and_then(|p| p.watchtower.clone()))
            .unwrap_or_default(),
    );
    let tower_words = move || {
        ctx.pay
            .with(|p| p.snapshot.as_ref().and_then(|s| s.watchtower.clone()))
            .unwrap_or_else(|| {
                "No watchtower: nobody answers for this wallet while it is closed.".into()
            })
    };
    let save_tower = move |_| {
        let Some(account) = ctx.account() else { return };
        let url = wallet::chain::normalize(&tower.get_untracked());
        message.set(None);
        error.set(None);
        let web = url.starts_with("https://") || url.starts_with("http://");
        if !url.is_empty() && !web {
            error.set(Some(
                "a watchtower address starts with https:// (or http:// on this computer)".into(),
            ));
            return;
        }
        spawn_local(async move {
            let chosen = (!url.is_empty()).then_some(url);
            match account.update(|p| p.watchtower = chosen).await {
                Ok(p) => {
                    ctx.profile.set(Some(p));
                    drop(account);
                    // The payment client keeps the tower up to date: start it again with it.
                    crate::payments::stop(ctx).await;
                    crate::payments::start(ctx);
                    let _ = message.try_set(Some("Saved.".into()));
                }
                Err(e) => {
                    let _ = error.try_set(Some(e.to_string()));
                }
            }
        });
    };
    let network = move || {
        ctx.profile
            .with(|p| p.as_ref().map(|p| p.network.to_string()))
    };
    let network_default = move || {
        ctx.profile
            .with(|p| {
                p.as_ref()
                    .map(|p| wallet::chain::default_esplora(p.network))
            })
            .unwrap_or_default()
    };
    let providers = move || {
        ctx.chosen
            .with(|c| c.info().map(|i| i.terms.body.esplora_url.clone()))
            .or_else(|| {
                ctx.profile
                    .with(|p| p.as_ref().and_then(|p| p.lsp_esplora.clone()))
            })
            .unwrap_or_default()
    };
    let typed_is_providers = move || ctx.is_providers_chain(&esplora.get());
    let in_use = Signal::derive(move || ctx.profile.with(|p| p.as_ref().map(|p| p.esplora())));

    let save_esplora = move |_| {
        let Some(account) = ctx.account() else { return };
        let url = wallet::chain::normalize(&esplora.get_untracked());
        message.set(None);
        error.set(None);
        spawn_local(async move {
            let default = wallet::chain::default_esplora(account.profile().network);
            let custom = (!url.is_empty() && url != default).then_some(url);
            match account.update(|p| p.esplora_url = custom).await {
                Ok(p) => {
                    ctx.profile.set(Some(p));
                    let _ = message.try_set(Some("Saved.".into()));
                }
                Err(e) => {
                    let _ = error.try_set(Some(e.to_string()));
                }
            }
        });
    };
    let export = move |_| {
        let Some(account) = ctx.account() else { return };
        let pass = password.get_untracked();
        if pass.is_empty() {
            error.set(Some("choose a password for the backup file".into()));
            return;
        }
        spawn_local(async move {
            let outcome = match account.export_backup(&pass).await {
                Ok(bytes) => download("superscalar-wallet-backup.json", &bytes).map(|()| {
                    "Backup saved to your downloads. Keep its password apart from it.".to_string()
                }),
                Err(e) => Err(e.to_string()),
            };
            match outcome {
                Ok(m) => {
                    let _ = message.try_set(Some(m));
                }
                Err(e) => {
                    let _ = error.try_set(Some(e));
                }
            }
        });
    };
    let wipe = move |_| {
        if ctx.join.with_untracked(|j| j.running) {
            error.set(Some("a join is under way; wait until it ends".into()));
            return;
        }
        let Some(account) = ctx.account() else { return };
        ctx.account.set_value(None);
        spawn_local(async move {
            crate::payments::stop(ctx).await;
            // A screen that was reading the wallet a moment ago lets go of it shortly.
            for _ in 0..50 {
                if Rc::strong_count(&account) == 1 {
                    break;
                }
                gloo_timers::future::TimeoutFuture::new(100).await;
            }
            let result = match Rc::try_unwrap(account) {
                Ok(account) => account.wipe().await.map_err(|e| e.to_string()),
                Err(account) => {
                    ctx.account.set_value(Some(account));
                    crate::payments::start(ctx);
                    Err("the wallet is busy; try again in a moment".into())
                }
            };
            match result {
                Ok(()) => {
                    ctx.profile.set(None);
                    ctx.join.set(JoinProgress::default());
                    ctx.screen.set(Screen::Welcome);
                }
                Err(e) => {
                    let _ = error.try_set(Some(e));
                }
            }
        });
    };
    view! {
        <section class="card">
            <h2>"Network"</h2>
            <p>"This wallet uses Bitcoin "<strong id="network">{network}</strong>"."</p>
        </section>
        <section class="card">
            <h2>"Chain source (Esplora)"</h2>
            <p class="hint">"Your wallet reads the chain here itself, so it does not take the \
                provider's word for it. It refuses to sign, confirm or move an exit when this \
                source cannot be read or contradicts what it has already seen."</p>
            <input type="url" id="esplora-url" prop:value=move || esplora.get()
                on:input=move |ev| esplora.set(event_target_value(&ev)) />
            <p class="hint" id="esplora-default">{move || format!("Default for this network: {}", network_default())}</p>
            <p class="hint" id="esplora-provider">{move || format!("Your provider's own (avoid it): {}", providers())}</p>
            <Show when=typed_is_providers>
                <p class="bad" id="esplora-warning">{PROVIDERS_CHAIN}</p>
            </Show>
            <button id="save-esplora" on:click=save_esplora>"Save"</button>
            <button id="default-esplora" on:click=move |_| esplora.set(network_default().to_string())>
                "Use the default"</button>
        </section>
        <ChainCard esplora_url=in_use />
        <section class="card">
            <h2>"Watchtower"</h2>
            <p class="hint">"A watchtower acts for this wallet while no page of it is open: if \
                the factory goes on chain it walks your way out, and if the provider publishes \
                an old state of your channel it takes everything in it for you. It holds no key: \
                only your factory's transactions, which everyone in it signed, and penalties your \
                wallet signed to pay your own address. It can fail to act, but it cannot take your \
                money. Your wallet sends it an update after each payment."</p>
            <input type="url" id="watchtower-url" placeholder="https://tower.example" prop:value=move || tower.get()
                on:input=move |ev| tower.set(event_target_value(&ev)) />
            <p class="hint" id="watchtower-status" role="status">{tower_words}</p>
            <button id="save-watchtower" on:click=save_tower>"Save"</button>
        </section>
        <ProtectionCard />
        <section class="card">
            <h2>"Backup"</h2>
            <p class="hint">"A backup file holds your keys and your signed ways out of factories, \
                encrypted with the password you choose here. Make a new one after each join."</p>
            <input type="password" id="backup-password" placeholder="backup password"
                on:input=move |ev| password.set(event_target_value(&ev)) />
            <button id="export-backup" on:click=export>"Download a backup"</button>
            <p class="hint">"To restore a backup file, wipe this wallet, then choose \"I already have recovery words\"."</p>
        </section>
        <section class="card danger">
            <h2>"Wipe this wallet"</h2>
            <p>"Deletes the wallet from this browser. Without your words or a backup, money in \
                it is lost."</p>
            <Show when=move || confirm_wipe.get()
                fallback=move || view! { <button id="wipe" on:click=move |_| confirm_wipe.set(true)>"Wipe…"</button> }>
                <p class="bad">"Really delete it from this browser?"</p>
                <button class="bad-button" id="wipe-confirm" on:click=wipe>"Yes, wipe it"</button>
                <button id="wipe-cancel" on:click=move |_| confirm_wipe.set(false)>"No"</button>
            </Show>
        </section>
        <p class="ok" id="settings-message">{move || message.get()}</p>
        <p class="bad" id="settings-error" role="alert">{move || error.get()}</p>
    }
}
