//! An LSP's signed terms, in plain words, with the wallet's own checks of them.

use leptos::prelude::*;
use wallet::format::sats;

use crate::state::LspInfo;

/// The terms of one LSP.
#[component]
pub fn TermsCard(info: LspInfo) -> impl IntoView {
    let b = info.terms.body.clone();
    let ctx = crate::state::AppCtx::get();
    let exit_details = wallet::lsp::exit_details(&b);
    let body = b.clone();
    let exit_cost = move || wallet::lsp::exit_summary(&body, ctx.pace.get());
    let ok = info.check.is_ok();
    let s = b.schedule.clone();
    view! {
        <dl class="terms">
            <dt>"Name"</dt><dd id="lsp-name">{b.name.clone()}</dd>
            <dt>"Address"</dt><dd id="lsp-origin">{info.origin.clone()}</dd>
            <dt>"Network"</dt><dd id="lsp-network">{b.network.to_string()}</dd>
            <dt>"Join fee"</dt><dd><span id="lsp-join-fee">{sats(b.fees.join_fee)}</span>
                <span class="hint">" plus the liquidity part below, taken from the first payment you receive"</span></dd>
            <dt>"Inbound liquidity"</dt>
            <dd>{format!("{} to {}, {} sats per million", sats(b.min_liquidity), sats(b.max_liquidity), b.fees.liquidity_fee_ppm)}</dd>
            <dt>"Payments"</dt>
            <dd>{format!("{} + {} per million routed", sats(b.fees.routing_fee_base), b.fees.routing_fee_ppm)}</dd>
            <dt>"Schedule"</dt>
            <dd id="lsp-schedule">{s.describe()}</dd>
            <dt>"Stay safe"</dt><dd id="lsp-liveness">{b.liveness.clone()}</dd>
            <dt>"Leaving alone"</dt><dd id="exit-cost">{exit_cost}
                <details><summary>"Details"</summary><span class="hint">{exit_details}</span></details></dd>
            <dt>"Terms"</dt>
            <dd class:ok=ok class:bad=!ok id="terms-status">{info.check.describe()}</dd>
        </dl>
    }
}
