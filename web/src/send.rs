//! Send: paste an invoice, see what it costs (amount, fee, total, description, expiry),
//! confirm, and see the result: the amount and fee paid, or why it failed. Or paste a Bitcoin
//! address and an amount: the provider pays it on chain from the channel (`send_onchain`).

use leptos::prelude::*;
use leptos::task::spawn_local;
use wallet::format::sats;
use wallet::pay::{PayQuote, PaymentRecord, SwapQuote};

use crate::amount::Sats;
use crate::history::time_of;
use crate::send_onchain::{looks_like_address, typed_sats, SwapProgress, SwapQuoteList, SwapSent};
use crate::state::AppCtx;

/// Where the payment stands.
#[derive(Debug, Clone)]
enum Stage {
    /// Typing or pasting the invoice.
    Input,
    /// Asking what it costs.
    Quoting,
    /// The cost, waiting for the user's yes.
    Quoted(String, PayQuote),
    /// Paying.
    Paying(PayQuote),
    /// Paid.
    Paid(PaymentRecord),
    /// To an address: its cost, waiting for the user's yes.
    SwapQuoted(String, SwapQuote),
    /// To an address: under way (the snapshot says where it stands).
    Swapping(String, SwapQuote),
    /// To an address: arrived.
    SwapSent(PaymentRecord, SwapQuote),
    /// Not paid, and why.
    Failed(String),
}

thread_local! {
    /// The screen's stage, kept beyond the screen: a payment to an address still under way when
    /// the user comes back is shown again, and goes on to what arrived.
    static STAGE: ArcRwSignal<Stage> = ArcRwSignal::new(Stage::Input);
}

/// The send screen.
#[component]
pub fn Send() -> impl IntoView {
    let ctx = AppCtx::get();
    let invoice = RwSignal::new(String::new());
    let amount = RwSignal::new(String::new());
    let stage = RwSignal::from(STAGE.with(Clone::clone));
    // A payment to an address under way is shown again; anything else starts afresh.
    if !matches!(stage.get_untracked(), Stage::Swapping(..)) {
        stage.set(Stage::Input);
    }
    let onchain = move || looks_like_address(&invoice.get());
    let review = move |_| {
        let text = invoice.get_untracked().trim().to_string();
        if text.is_empty() {
            stage.set(Stage::Failed(
                "paste an invoice or a Bitcoin address first".into(),
            ));
            return;
        }
        let sent = if looks_like_address(&text) {
            match typed_sats(&amount.get_untracked()) {
                Ok(a) => Some(a),
                Err(why) => {
                    stage.set(Stage::Failed(why));
                    return;
                }
            }
        } else {
            None
        };
        let Some(handle) = ctx.pay_handle() else {
            stage.set(Stage::Failed(
                "payments are not running yet: your factory's funding must confirm first".into(),
            ));
            return;
        };
        stage.set(Stage::Quoting);
        spawn_local(async move {
            let next = match sent {
                Some(sent) => match handle.swap_quote(&text, sent).await {
                    Ok(quote) => Stage::SwapQuoted(text, quote),
                    Err(e) => Stage::Failed(e.to_string()),
                },
                None => match handle.quote(&text).await {
                    Ok(quote) => Stage::Quoted(text, quote),
                    Err(e) => Stage::Failed(e.to_string()),
                },
            };
            let _ = stage.try_set(next);
        });
    };
    let confirm = move |_| {
        let Some(handle) = ctx.pay_handle() else {
            return;
        };
        match stage.get_untracked() {
            Stage::Quoted(text, quote) => {
                stage.set(Stage::Paying(quote));
                spawn_local(async move {
                    let next = match handle.pay(&text).await {
                        Ok(record) => match &record.status {
                            wallet::pay::PaymentStatus::Failed(why) => Stage::Failed(why.clone()),
                            _ => Stage::Paid(record),
                        },
                        Err(e) => Stage::Failed(e.to_string()),
                    };
                    let _ = stage.try_set(next);
                });
            }
            Stage::SwapQuoted(address, quote) => {
                stage.set(Stage::Swapping(address.clone(), quote.clone()));
                spawn_local(async move {
                    let next = match handle.swap_out(&address, &quote).await {
                        Ok(record) => match &record.status {
                            wallet::pay::PaymentStatus::Failed(why) => Stage::Failed(why.clone()),
                            _ => Stage::SwapSent(record, quote),
                        },
                        Err(e) => Stage::Failed(e.to_string()),
                    };
                    // The kept stage: this screen may have closed and opened again meanwhile.
                    STAGE.with(|s| s.set(next));
                });
            }
            _ => {}
        }
    };
    let again = move |_| {
        invoice.set(String::new());
        amount.set(String::new());
        stage.set(Stage::Input);
    };
    // Whether some channel holds `total` (unknown before the first snapshot: let the wallet say).
    let covers = move |total: bitcoin::Amount| {
        ctx.pay.with_untracked(|p| {
            p.snapshot
                .as_ref()
                .is_none_or(|s| s.channels.iter().any(|c| c.balance >= total))
        })
    };
    view! {
        <section class="card">
            <h2>"Send"</h2>
            {move || match stage.get() {
                Stage::Input | Stage::Quoting | Stage::Failed(_) => view! {
                    <label>"Invoice or Bitcoin address"
                        <textarea id="pay-invoice" rows="4" placeholder="lnbc… or bc1…"
                            prop:value=move || invoice.get()
                            on:input=move |ev| invoice.set(event_target_value(&ev))></textarea>
                    </label>
                    <Show when=onchain>
                        <p class="hint" id="send-onchain-hint">"That is a Bitcoin address: your \
                            provider pays it on chain from your balance, for a fee. You see every \
                            cost before anything moves."</p>
                        <label>"Amount in sats"
                            <input id="send-onchain-amount" type="text" inputmode="numeric"
                                autocomplete="off"
                                prop:value=move || amount.get()
                                on:input=move |ev| amount.set(event_target_value(&ev)) />
                        </label>
                    </Show>
                    <button class="primary" id="pay-review"
                        disabled=move || matches!(stage.get(), Stage::Quoting)
                        on:click=review>"Review"</button>
                }.into_any(),
                Stage::Quoted(_, quote) => view! {
                    <QuoteList quote=quote.clone() />
                    {(!quote.affordable).then(|| view! {
                        <p class="bad" id="send-unaffordable" role="alert">"Your balance does not cover amount and fee."</p>
                    })}
                    {quote.warning.clone().map(|w| view! {
                        <p class="bad" id="send-warning" role="alert">{format!("Before you pay: {w}.")}</p>
                    })}
                    <button class="primary" id="pay-confirm" disabled=!quote.affordable
                        on:click=confirm>{format!("Pay {}", sats(quote.amount + quote.fee))}</button>
                    <button id="pay-cancel" on:click=again>"Cancel"</button>
                }.into_any(),
                Stage::Paying(quote) => view! {
                    <QuoteList quote />
                    <p class="hint" id="send-progress">"Paying…"</p>
                }.into_any(),
                Stage::SwapQuoted(address, quote) => { let affordable = covers(quote.total); view! {
                    <SwapQuoteList address quote=quote.clone() />
                    {(!affordable).then(|| view! {
                        <p class="bad" id="send-unaffordable" role="alert">"Your balance does not cover the total."</p>
                    })}
                    <button class="primary" id="pay-confirm" disabled=!affordable
                        on:click=confirm>{format!("Send {}", sats(quote.total))}</button>
                    <button id="pay-cancel" on:click=again>"Cancel"</button>
                }.into_any() }
                Stage::Swapping(address, quote) => view! {
                    <SwapQuoteList address=address.clone() quote />
                    <SwapProgress address />
                }.into_any(),
                Stage::SwapSent(record, quote) => view! {
                    <SwapSent record quote />
                    <button id="pay-another" on:click=again>"Send another payment"</button>
                }.into_any(),
                Stage::Paid(record) => { let hash = record.hash; view! {
                    <p class="big ok" id="send-result" data-state="success">"Sent ✓ "<Sats amount=record.amount what="sent" /></p>
                    <dl>
                        <dt>"Fee"</dt><dd id="send-result-fee"><Sats amount=record.fee what="fee" /></dd>
                        {move || network_fee(ctx, hash).map(|n| view! {
                            <dt>"Of it, to the Lightning Network"</dt>
                            <dd id="send-result-network-fee"><Sats amount=n what="network fee" /></dd>
                        })}
                        <dt>"Total"</dt><dd><Sats amount=record.amount + record.fee what="total" /></dd>
                        <dt>"For"</dt><dd>{record.description.clone()}</dd>
                    </dl>
                    <button id="pay-another" on:click=again>"Pay another invoice"</button>
                }.into_any() }
            }}
            {move || match stage.get() {
                Stage::Failed(why) => Some(view! {
                    <p class="bad" id="send-result" data-state="failed" role="alert">{capitalized(&why)}</p>
                }),
                _ => None,
            }}
        </section>
    }
}

/// What of a sent payment's fee the Lightning Network's route took, once the provider said so.
fn network_fee(ctx: AppCtx, hash: bitcoin::hashes::sha256::Hash) -> Option<bitcoin::Amount> {
    ctx.pay.with(|p| {
        p.snapshot.as_ref().and_then(|s| {
            s.payments
                .iter()
                .find(|r| r.hash == hash && r.direction == wallet::pay::Direction::Sent)
                .and_then(|r| r.network_fee)
        })
    })
}

/// What an invoice costs.
#[component]
fn QuoteList(quote: PayQuote) -> impl IntoView {
    view! {
        <dl id="send-quote">
            <dt>"Amount"</dt><dd id="send-amount"><Sats amount=quote.amount what="amount" /></dd>
            <dt>"Fee"</dt><dd id="send-fee"><Sats amount=quote.fee what="fee" /></dd>
            <dt>"Total"</dt><dd id="send-total"><strong><Sats amount=quote.amount + quote.fee what="total" /></strong></dd>
            <dt>"For"</dt><dd id="send-description">{quote.description.clone()}</dd>
            <dt>"Expires"</dt><dd id="send-expiry">{time_of(quote.expires_at)}</dd>
        </dl>
        {quote.outside.then(|| view! {
            <p class="hint" id="send-outside">"This goes out to the Lightning Network. Its routers' \
                fee is paid by your provider out of the fee above: you pay no more than shown."</p>
        })}
    }
}

/// `text` with its first letter upper-cased (errors read as sentences).
fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
