//! The bottom bar: home, LSP, settings (only once a wallet is open).

use leptos::prelude::*;

use crate::state::{AppCtx, Screen};

/// Navigation between the main screens.
#[component]
pub fn Nav() -> impl IntoView {
    let ctx = AppCtx::get();
    let open = move || {
        matches!(
            ctx.screen.get(),
            Screen::Home | Screen::Lsp | Screen::Join | Screen::Settings
        )
    };
    let item = move |id: &'static str, label: &'static str, screen: Screen| {
        view! {
            <button id=id class:active=move || ctx.screen.get() == screen
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
