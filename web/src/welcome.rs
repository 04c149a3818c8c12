//! First visit: create a wallet or restore one.

use leptos::prelude::*;
use wallet::account::{SeedCheck, CHECKED_WORDS};
use wallet::keys::Seed;

use leptos::task::spawn_local;

use crate::chain_card::ChainCard;
use crate::state::{load_lsp, AppCtx, Draft, LspView, Screen};
use crate::terms_card::TermsCard;

/// The welcome screen.
#[component]
pub fn Welcome() -> impl IntoView {
    let ctx = AppCtx::get();
    let create = move |_| {
        let seed = Seed::generate(&mut rand_core());
        let check = SeedCheck::new(&mut rand_core(), seed.word_count());
        ctx.draft.set_value(Some(Draft {
            seed,
            restored: false,
            check,
        }));
        ctx.screen.set(Screen::ShowSeed);
    };
    let address = RwSignal::new(String::new());
    let look_up = move |_| {
        let origin = wallet::chain::normalize(&address.get_untracked());
        if !(origin.starts_with("http://") || origin.starts_with("https://")) {
            ctx.serving.set(LspView::Failed(
                "type the provider's web address, starting with https://".into(),
            ));
            return;
        }
        ctx.serving.set(LspView::Connecting);
        spawn_local(async move {
            let view = load_lsp(&origin, None).await;
            ctx.serving.set(view.clone());
            ctx.chosen.set(view);
        });
    };
    let lsp_name = move || match ctx.serving.get() {
        LspView::Ready(info) => format!("Offered by {}.", info.terms.body.name),
        LspView::Connecting => "Reaching the provider…".into(),
        LspView::Failed(e) => format!("The provider cannot be reached: {e}"),
    };
    view! {
        <section class="card" id="welcome">
            <h2>"Welcome"</h2>
            <p>"This wallet lives in this browser. It gets you a Lightning channel in a shared \
                Bitcoin coin (a factory) without buying any bitcoin first. You can always take \
                your money out on your own."</p>
            <p class="hint" id="serving-lsp">{lsp_name}</p>
            <button class="primary" id="create-wallet" on:click=create>"Create a new wallet"</button>
            <button id="restore-wallet" on:click=move |_| ctx.screen.set(Screen::Restore)>
                "I already have recovery words"
            </button>
            <p class="hint">{format!("You will write down 24 words, then type {CHECKED_WORDS} of them back.")}</p>
        </section>
        <section class="card">
            <h2>"Your Lightning service provider"</h2>
            {move || match ctx.serving.get() {
                LspView::Ready(info) => view! { <TermsCard info=*info /> }.into_any(),
                LspView::Connecting => view! { <p class="hint" id="lsp-status">"Connecting…"</p> }.into_any(),
                LspView::Failed(e) => view! { <p class="bad" id="lsp-status" role="alert">{e}</p> }.into_any(),
            }}
            <p class="hint">"Another provider: type its web address."</p>
            <input type="url" id="start-lsp-url" placeholder="https://lsp.example.org"
                on:input=move |ev| address.set(event_target_value(&ev)) />
            <button id="start-lsp-add" on:click=look_up>"Use this provider"</button>
        </section>
        <ChainCard esplora_url=Signal::derive(move || {
            ctx.serving.track();
            ctx.profile.with(|p| ctx.chain_source_of(p.as_ref()))
        }) />
    }
}

/// The browser's cryptographic randomness.
pub fn rand_core() -> rand::rngs::OsRng {
    rand::rngs::OsRng
}
