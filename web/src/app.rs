//! The top-level component: loads the LSP's terms, then shows the LSP and the chain.

use leptos::prelude::*;
use leptos::task::spawn_local;
use shared::terms::SignedTerms;

use crate::chain_card::ChainCard;
use crate::lsp_card::LspCard;

/// Where the LSP session stands.
#[derive(Clone)]
pub enum LspState {
    /// Connecting to the LSP.
    Connecting,
    /// The LSP's checked terms.
    Ready(Box<SignedTerms>),
    /// What went wrong, in words for the user.
    Failed(String),
}

/// The wallet app.
#[component]
pub fn App() -> impl IntoView {
    let (lsp, set_lsp) = signal(LspState::Connecting);
    spawn_local(async move {
        let origin = web_sys::window()
            .and_then(|w| w.location().origin().ok())
            .unwrap_or_default();
        let state = match wallet::lsp::fetch_terms(&origin, bitcoin::Network::Regtest).await {
            Ok(terms) => LspState::Ready(Box::new(terms)),
            Err(e) => LspState::Failed(e.to_string()),
        };
        set_lsp.set(state);
    });
    let esplora_url = move || match lsp.get() {
        LspState::Ready(t) => Some(t.body.esplora_url.clone()),
        _ => None,
    };
    view! {
        <main>
            <header><h1><span>"⚡"</span>" SuperScalar wallet"</h1></header>
            <LspCard lsp=lsp />
            <ChainCard esplora_url=Signal::derive(esplora_url) />
        </main>
    }
}
