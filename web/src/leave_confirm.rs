//! The step before leaving a factory alone: every cost to the sat and who pays it, what lands
//! at the wallet's own address, and a button that says what it does. Leaving cannot be undone.

use leptos::prelude::*;
use wallet::exit::{ExitPlan, ExitWay};
use wallet::format::sats;

use crate::amount::Sats;

/// The costs of `plan`.
#[component]
pub fn LeaveCosts(plan: ExitPlan) -> impl IntoView {
    let way = match plan.way {
        ExitWay::Distribution => {
            "The factory's payout: one transaction pays you your whole leaf \
             (your channel and the liquidity for sale in it)."
        }
        ExitWay::Tree => {
            "Your way out through the factory: its transactions down to your leaf, \
             then your channel closed with its latest state. The liquidity for sale in your \
             leaf stays with the provider."
        }
    };
    let factory_label = match plan.way {
        ExitWay::Distribution => "The factory's payout transaction".to_string(),
        ExitWay::Tree => format!("The factory's {} transactions", plan.factory_txs),
    };
    let way_id = match plan.way {
        ExitWay::Distribution => "distribution",
        ExitWay::Tree => "tree",
    };
    view! {
        <p id="leave-way" data-way=way_id>{way}</p>
        <dl id="leave-costs">
            <dt>{factory_label}</dt>
            <dd id="cost-factory" data-sats="0">
                <Sats amount=bitcoin::Amount::ZERO what="from you" />
                <span class="hint">{format!(" from you: their {} fee was paid by the factory", sats(plan.factory_fee))}</span>
            </dd>
            {plan.close_fee.map(|fee| view! {
                <dt>"Closing your channel"</dt>
                <dd id="cost-close" data-sats="0">
                    <Sats amount=bitcoin::Amount::ZERO what="from you" />
                    <span class="hint">{format!(" from you: its {} fee and anchor come from the provider's side", sats(fee))}</span>
                </dd>
            })}
            <dt>"Moving it to your address"</dt>
            <dd id="cost-sweep" data-sats=plan.sweep_fee.to_sat().to_string()>
                <Sats amount=plan.sweep_fee what="moving it to your address" />
            </dd>
            <dt>"Yours before that"</dt>
            <dd id="leave-owned" data-sats=plan.owned.to_sat().to_string()>
                <Sats amount=plan.owned what="yours before fees" />
            </dd>
            <dt><strong>"Lands at your address"</strong></dt>
            <dd id="leave-lands" data-sats=plan.lands.to_sat().to_string()>
                <strong><Sats amount=plan.lands what="lands at your address" /></strong>
            </dd>
        </dl>
        {plan.note.clone().map(|n| view! { <p class="bad" role="alert" id="leave-note">{n}</p> })}
        <details>
            <summary>"Details"</summary>
            <p class="hint">{format!(
                "{} signed transaction{} of the factory ({} vB, {} of fees inside them). \
                 You pay {} in all; the rest of every fee was paid when the factory was built.",
                plan.factory_txs, if plan.factory_txs == 1 { "" } else { "s" },
                plan.factory_vbytes, sats(plan.factory_fee), sats(plan.wallet_pays()),
            )}</p>
        </details>
    }
}
