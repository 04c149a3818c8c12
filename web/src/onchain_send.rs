//! Sending the coins at the wallet's on-chain address to any Bitcoin address: the address and
//! an amount (empty sends everything), then what leaves the wallet (amount, network fee, total)
//! before anything is sent, then the result. Nothing is sent without the second tap.

use std::sync::Arc;

use leptos::prelude::*;
use leptos::task::spawn_local;
use wallet::format::sats;
use wallet::onchain::Spend;

use crate::amount::Sats;
use crate::state::AppCtx;

/// Where the form is.
#[derive(Clone)]
enum Step {
    /// Typing the address and amount.
    Edit,
    /// Built and signed: shown before sending.
    Review(Arc<Spend>),
    /// Sent.
    Sent(bitcoin::Txid, bitcoin::Amount),
}

/// The "Send from your on-chain address" card (shown while the address holds coins).
#[component]
pub fn OnchainSend() -> impl IntoView {
    let ctx = AppCtx::get();
    let open = RwSignal::new(false);
    let to = RwSignal::new(String::new());
    let amount = RwSignal::new(String::new());
    let step = RwSignal::new(Step::Edit);
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let review = move |_| {
        error.set(None);
        let asked = amount.get_untracked();
        let asked = match asked.trim().replace([',', ' ', '_'], "") {
            empty if empty.is_empty() => None,
            digits => match digits.parse::<u64>() {
                Ok(n) => Some(bitcoin::Amount::from_sat(n)),
                Err(_) => {
                    error.set(Some("type the amount in sats, digits only (or leave it empty to send everything)".into()));
                    return;
                }
            },
        };
        let (Some(account), Some(url)) = (ctx.account(), ctx.esplora_url()) else {
            error.set(Some("the wallet is not open".into()));
            return;
        };
        let address = to.get_untracked();
        busy.set(true);
        spawn_local(async move {
            match account.prepare_onchain(&url, &address, asked).await {
                Ok(spend) => step.set(Step::Review(Arc::new(spend))),
                Err(e) => error.set(Some(e.to_string())),
            }
            busy.set(false);
        });
    };
    let confirm = move |spend: Arc<Spend>| {
        let (Some(account), Some(url)) = (ctx.account(), ctx.esplora_url()) else {
            return;
        };
        busy.set(true);
        spawn_local(async move {
            match account.send_onchain(&url, &spend).await {
                Ok(txid) => step.set(Step::Sent(txid, spend.amount)),
                Err(e) => {
                    error.set(Some(e.to_string()));
                    step.set(Step::Edit);
                }
            }
            busy.set(false);
        });
    };
    let again = move |_| {
        step.set(Step::Edit);
        error.set(None);
    };
    view! {
        <div id="onchain-send">
            <Show when=move || !open.get()>
                <button id="onchain-send-open" on:click=move |_| open.set(true)>"Send from your on-chain address"</button>
            </Show>
            <Show when=move || open.get()>
                {move || match step.get() {
                    Step::Edit => view! {
                        <label>"To (a Bitcoin address)"
                            <input id="onchain-to" type="text" autocomplete="off" spellcheck="false"
                                prop:value=move || to.get()
                                on:input=move |ev| to.set(event_target_value(&ev)) />
                        </label>
                        <label>"Amount in sats (empty: everything)"
                            <input id="onchain-amount" type="text" inputmode="numeric"
                                prop:value=move || amount.get()
                                on:input=move |ev| amount.set(event_target_value(&ev)) />
                        </label>
                        <div class="actions">
                            <button class="primary" id="onchain-review" disabled=move || busy.get()
                                on:click=review>"Review"</button>
                            <button id="onchain-cancel" on:click=move |_| open.set(false)>"Cancel"</button>
                        </div>
                    }.into_any(),
                    Step::Review(spend) => {
                        let total = spend.amount + spend.fee;
                        let to_words = spend.to.to_string();
                        let send = spend.clone();
                        view! {
                            <dl id="onchain-quote" data-fee=spend.fee.to_sat().to_string()
                                data-amount=spend.amount.to_sat().to_string()>
                                <dt>"To"</dt><dd class="mono">{to_words}</dd>
                                <dt>"Amount"</dt><dd><Sats amount=spend.amount what="amount" /></dd>
                                <dt>"Network fee"</dt><dd id="onchain-fee"><Sats amount=spend.fee what="network fee" />
                                    <span class="hint">{format!(" ({} sat/vB, to confirm within about six blocks)", spend.rate.to_sat_per_vb_ceil())}</span></dd>
                                <dt>"Leaves your wallet"</dt><dd><strong><Sats amount=total what="total" /></strong></dd>
                            </dl>
                            <p class="hint">"A Bitcoin payment cannot be undone once sent: check the address."</p>
                            <div class="actions">
                                <button class="primary" id="onchain-confirm" disabled=move || busy.get()
                                    on:click=move |_| confirm(send.clone())>{format!("Send {}", sats(total))}</button>
                                <button id="onchain-back" on:click=again>"Back"</button>
                            </div>
                        }.into_any()
                    }
                    Step::Sent(txid, sent) => view! {
                        <p class="ok" id="onchain-sent" data-txid=txid.to_string()>
                            "Sent ✓ "<Sats amount=sent what="sent" />
                            ". It confirms in the next blocks; your on-chain balance shows the rest."</p>
                        <details><summary>"Details"</summary><p class="mono">{txid.to_string()}</p></details>
                    }.into_any(),
                }}
                <p class="error" id="onchain-error" role="alert">{move || error.get()}</p>
            </Show>
        </div>
    }
}
