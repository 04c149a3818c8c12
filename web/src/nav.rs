//! The bottom bar: home, LSP, settings (only once a wallet is open; the payment screens count
//! as home).

use leptos::prelude::*;

use crate::state::{AppCtx, Screen};

/// Navigation between the main screens.
#[component]
pub fn Nav() -> impl IntoView {
    let ctx = AppCtx::get();
    let open = move || {
        matches!(
            ctx.screen.get(),
            Screen::Home
                | Screen::Lsp
                | Screen::Join
                | Screen::Settings
                | Screen::Receive
                | Screen::Send
                | Screen::History
        )
    };
    let item = move |id: &'static str, label: &'static str, screen: Screen| {
        let active = move || {
            let now = ctx.screen.get();
            now == screen
                || (screen == Screen::Home
                    && matches!(now, Screen::Receive | Screen::Send | Screen::History))
        };
        view! {
            <button id=id class:active=active
                on:click=move |_| ctx.screen.set(screen)>{label}</button>
        }
    };
    view! {
        <Show when=open>
            <nav class="tabs">
                {item("nav-home", "Home", Screen::Home)}
                {item("nav-lsp", "Provider", Screen::Lsp)}
                {item("nav-settings", "Settings", Screen::Settings)}
            </nav>
        </Show>
    }
}
