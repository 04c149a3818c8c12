//! Choosing the LSP: the one that served this page is preselected; another can be added by its
//! address. Each shows its signed terms and the wallet's checks.

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::state::{load_lsp, AppCtx, LspView, Screen};
use crate::terms_card::TermsCard;

/// The LSP screen.
#[component]
pub fn LspScreen() -> impl IntoView {
    let ctx = AppCtx::get();
    let url = RwSignal::new(String::new());
    let candidate = RwSignal::new(None::<LspView>);
    let error = RwSignal::new(None::<String>);
    let network = move || ctx.profile.with(|p| p.as_ref().map(|p| p.network));

    let look_up = move |_| {
        let origin = url.get_untracked().trim().trim_end_matches('/').to_string();
        if !(origin.starts_with("http://") || origin.starts_with("https://")) {
            error.set(Some(
                "type the provider's web address, starting with https://".into(),
            ));
            return;
        }
        error.set(None);
        candidate.set(Some(LspView::Connecting));
        spawn_local(async move {
            let view = load_lsp(&origin, network()).await;
            let _ = candidate.try_set(Some(view));
        });
    };
    let choose = move |_| {
        let Some(info) = candidate.with_untracked(|c| c.as_ref().and_then(|c| c.info().cloned()))
        else {
            return;
        };
        if !info.check.is_ok() {
            error.set(Some(format!(
                "this provider's terms fail a check: {}",
                info.check.describe()
            )));
            return;
        }
        let Some(account) = ctx.account() else { return };
        spawn_local(async move {
            let origin = info.origin.clone();
            let esplora = info.terms.body.esplora_url.clone();
            match account
                .update(|p| {
                    p.lsp_origin = origin;
                    p.lsp_esplora = Some(esplora);
                })
                .await
            {
                Ok(profile) => {
                    ctx.profile.set(Some(profile));
                    ctx.chosen.set(LspView::Ready(Box::new(info)));
                    let _ = candidate.try_set(None);
                }
                Err(e) => {
                    let _ = error.try_set(Some(e.to_string()));
                }
            }
        });
    };
    view! {
        <section class="card" id="lsp-chosen">
            <h2>"Your Lightning service provider"</h2>
            {move || match ctx.chosen.get() {
                LspView::Ready(info) => view! { <TermsCard info=*info /> }.into_any(),
                LspView::Connecting => view! { <p class="hint" id="lsp-status">"Connecting…"</p> }.into_any(),
                LspView::Failed(e) => view! { <p class="bad" id="lsp-status" role="alert">{e}</p> }.into_any(),
            }}
            <button class="primary" id="go-join" on:click=move |_| ctx.screen.set(Screen::Join)>
                "Join a factory with this provider"
            </button>
        </section>
        <section class="card">
            <h2>"Use another provider"</h2>
            <input type="url" id="lsp-url" placeholder="https://lsp.example.org"
                on:input=move |ev| url.set(event_target_value(&ev)) />
            <button id="lsp-add" on:click=look_up>"Look it up"</button>
            {move || candidate.get().map(|c| match c {
                LspView::Ready(info) => view! {
                    <div id="lsp-candidate">
                        <TermsCard info=*info />
                        <button class="primary" id="choose-lsp" on:click=choose>"Use this provider"</button>
                    </div>
                }.into_any(),
                LspView::Connecting => view! { <p class="hint">"Asking it…"</p> }.into_any(),
                LspView::Failed(e) => view! { <p class="bad" id="lsp-candidate-error" role="alert">{e}</p> }.into_any(),
            })}
            <p class="bad" role="alert">{move || error.get()}</p>
        </section>
    }
}
