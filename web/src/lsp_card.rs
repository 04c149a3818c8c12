//! Shows the LSP this wallet talks to and its signed terms.

use leptos::prelude::*;

use crate::app::LspState;

/// The LSP's name, network and terms, or the connection state.
#[component]
pub fn LspCard(lsp: ReadSignal<LspState>) -> impl IntoView {
    view! {
        <section class="card">
            <h2>"Your Lightning service provider"</h2>
            {move || match lsp.get() {
                LspState::Connecting => view! { <p class="hint" id="lsp-status">"Connecting…"</p> }.into_any(),
                LspState::Failed(why) => view! { <p class="bad" id="lsp-status">{why}</p> }.into_any(),
                LspState::Ready(t) => {
                    let b = t.body.clone();
                    let exit_cost = wallet::lsp::exit_summary(&b);
                    view! {
                        <dl>
                            <dt>"Name"</dt><dd id="lsp-name">{b.name}</dd>
                            <dt>"Network"</dt><dd id="lsp-network">{b.network.to_string()}</dd>
                            <dt>"Join fee"</dt><dd>{format!("{} sats", b.fees.join_fee.to_sat())}</dd>
                            <dt>"Inbound liquidity"</dt><dd>{format!("{}–{} sats, fee {} ppm", b.min_liquidity.to_sat(), b.max_liquidity.to_sat(), b.fees.liquidity_fee_ppm)}</dd>
                            <dt>"Stay safe"</dt><dd>{b.liveness}</dd>
                            <dt>"Leaving alone"</dt><dd id="exit-cost">{exit_cost}</dd>
                            <dt>"Terms"</dt><dd class="ok" id="terms-status">"signed by the LSP ✓"</dd>
                        </dl>
                    }.into_any()
                }
            }}
        </section>
    }
}
