//! The top-level component: finds a stored wallet (unlock) or starts onboarding, loads the
//! serving LSP's terms, and shows the current screen.

use leptos::prelude::*;
use leptos::task::spawn_local;
use wallet::account::Account;
use wallet::vault::ProtectionMode;

use crate::state::{load_lsp, starting_lsp, AppCtx, Screen};

/// How often the block pace is read again.
const PACE_MS: u32 = 20_000;

/// Reads how long blocks take on the wallet's network (or, before a wallet exists, the serving
/// provider's), from the chain source the wallet reads. Whether it could.
async fn read_pace(ctx: AppCtx) -> bool {
    let network = ctx
        .profile
        .with_untracked(|p| p.as_ref().map(|p| p.network))
        .or(ctx
            .serving
            .with_untracked(|s| s.info().map(|i| i.terms.body.network)));
    let url = ctx.esplora_url();
    let (Some(url), Some(network)) = (url, network) else {
        return false;
    };
    match wallet::pace::block_pace(&url, network).await {
        Ok(pace) => {
            if ctx.pace.get_untracked() != pace {
                ctx.pace.set(pace);
            }
            true
        }
        Err(_) => false,
    }
}

/// The wallet app.
#[component]
pub fn App() -> impl IntoView {
    let ctx = AppCtx::new();
    provide_context(ctx);
    let stored = RwSignal::new(None::<ProtectionMode>);
    spawn_local(async move {
        let lsp = load_lsp(&starting_lsp(), None).await;
        ctx.serving.set(lsp.clone());
        ctx.chosen.set(lsp);
    });
    spawn_local(async move {
        loop {
            let wait = if read_pace(ctx).await { PACE_MS } else { 2_000 };
            gloo_timers::future::TimeoutFuture::new(wait).await;
        }
    });
    spawn_local(async move {
        match Account::stored_mode().await {
            Ok(Some(mode)) => {
                stored.set(Some(mode));
                ctx.screen.set(Screen::Unlock);
            }
            Ok(None) => ctx.screen.set(Screen::Welcome),
            Err(e) => {
                leptos::logging::error!("{e}");
                ctx.screen.set(Screen::Welcome)
            }
        }
    });
    view! {
        <main>
            <header><h1><span>"⚡"</span>" SuperScalar wallet"</h1></header>
            {move || match ctx.screen.get() {
                Screen::Loading => view! { <p class="hint" id="loading">"Opening…"</p> }.into_any(),
                Screen::Welcome => view! { <crate::welcome::Welcome /> }.into_any(),
                Screen::ShowSeed => view! { <crate::seed_show::SeedShow /> }.into_any(),
                Screen::CheckSeed => view! { <crate::seed_check::SeedCheckForm /> }.into_any(),
                Screen::Restore => view! { <crate::restore::Restore /> }.into_any(),
                Screen::Protect => view! { <crate::protect::Protect /> }.into_any(),
                Screen::Unlock => view! { <crate::unlock::Unlock mode=stored /> }.into_any(),
                Screen::Home => view! { <crate::home::Home /> }.into_any(),
                Screen::Lsp => view! { <crate::lsp_screen::LspScreen /> }.into_any(),
                Screen::Join => view! { <crate::join::Join /> }.into_any(),
                Screen::Settings => view! { <crate::settings::Settings /> }.into_any(),
                Screen::Receive => view! { <crate::receive::Receive /> }.into_any(),
                Screen::Send => view! { <crate::send::Send /> }.into_any(),
                Screen::History => view! { <crate::history::History /> }.into_any(),
            }}
            <crate::toast::Toast />
            <crate::nav::Nav />
        </main>
    }
}
