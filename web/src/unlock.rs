//! Opening the stored wallet: its passphrase, or one tap for a device-key wallet. Says so when
//! another tab has it open.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use leptos::prelude::*;
use leptos::task::spawn_local;
use wallet::account::{Account, AccountError};
use wallet::vault::{ProtectionMode, VaultError};

use crate::state::AppCtx;

/// The unlock screen.
#[component]
pub fn Unlock(mode: RwSignal<Option<ProtectionMode>>) -> impl IntoView {
    let ctx = AppCtx::get();
    let passphrase = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let other_tab = RwSignal::new(false);
    let busy = RwSignal::new(false);
    let needs_passphrase = move || mode.get() == Some(ProtectionMode::Passphrase);
    // Tell at once (and keep telling) when another tab holds the wallet.
    let alive = Arc::new(AtomicBool::new(true));
    let flag = alive.clone();
    on_cleanup(move || flag.store(false, Ordering::Relaxed));
    spawn_local(async move {
        while alive.load(Ordering::Relaxed) {
            if busy.try_get_untracked() == Some(true) {
                gloo_timers::future::TimeoutFuture::new(2_000).await;
                continue;
            }
            if let Ok(elsewhere) = Account::open_elsewhere().await {
                if other_tab.try_set(elsewhere).is_some() {
                    return;
                }
            }
            gloo_timers::future::TimeoutFuture::new(2_000).await;
        }
    });
    let unlock = move || {
        busy.set(true);
        spawn_local(async move {
            let pass = passphrase.get_untracked();
            let with_passphrase = mode.get_untracked() == Some(ProtectionMode::Passphrase);
            let given = with_passphrase.then_some(pass.as_str());
            match Account::open(given).await {
                Ok(account) => {
                    other_tab.set(false);
                    ctx.opened(account);
                }
                Err(e) => {
                    busy.set(false);
                    other_tab.set(matches!(e, AccountError::Vault(VaultError::OtherTabOpen)));
                    error.set(Some(e.to_string()));
                }
            }
        });
    };
    view! {
        <section class="card" id="unlock-card">
            <h2>"Open your wallet"</h2>
            <Show when=needs_passphrase>
                <input type="password" id="unlock-passphrase" placeholder="passphrase"
                    on:input=move |ev| passphrase.set(event_target_value(&ev))
                    on:keydown=move |ev| if ev.key() == "Enter" { unlock() } />
            </Show>
            <button class="primary" id="unlock" disabled=move || busy.get()
                on:click=move |_| unlock()>"Open"</button>
            <Show when=move || other_tab.get()>
                <p class="bad" id="other-tab">"This wallet is open in another tab or window. \
                    Only one may use it at a time, so nothing is signed twice. Close the other \
                    one, then press Open again."</p>
            </Show>
            <p class="bad" id="unlock-error">{move || error.get()}</p>
        </section>
    }
}
