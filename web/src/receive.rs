//! Receive: an amount and a description make an invoice, shown as a QR code and as text to
//! copy; it turns into "Paid" the moment the payment arrives.

use bitcoin::Amount;
use leptos::prelude::*;
use leptos::task::spawn_local;
use wallet::format::sats;
use wallet::pay::InvoiceRecord;

use crate::amount::Sats;
use crate::liquidity_card::LiquidityCard;
use crate::qr::Qr;
use crate::state::AppCtx;

/// The receive screen.
#[component]
pub fn Receive() -> impl IntoView {
    let ctx = AppCtx::get();
    let amount = RwSignal::new(String::new());
    let description = RwSignal::new(String::new());
    let invoice = RwSignal::new(None::<InvoiceRecord>);
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let inbound = move || ctx.pay.with(|p| p.snapshot.as_ref().map(|s| s.inbound));
    let too_much = move || {
        let asked = amount.get().trim().parse::<u64>().ok()?;
        let can = inbound()?;
        (asked > can.to_sat()).then(|| {
            format!(
                "You can receive at most {} now: a larger payment would fail. Buy inbound liquidity below, or ask for less.",
                sats(can)
            )
        })
    };
    let make = move |_| {
        error.set(None);
        let sats_asked: u64 = match amount.get_untracked().trim().parse() {
            Ok(n) if n > 0 => n,
            _ => {
                error.set(Some("type the amount as a whole number of sats".into()));
                return;
            }
        };
        let Some(handle) = ctx.pay_handle() else {
            error.set(Some(
                "payments are not running yet: your factory's funding must confirm first".into(),
            ));
            return;
        };
        let text = description.get_untracked();
        busy.set(true);
        spawn_local(async move {
            match handle.invoice(Amount::from_sat(sats_asked), &text).await {
                Ok(record) => {
                    let _ = invoice.try_set(Some(record));
                }
                Err(e) => {
                    let _ = error.try_set(Some(e.to_string()));
                }
            }
            let _ = busy.try_set(false);
        });
    };
    view! {
        {move || match invoice.get() {
            None => view! {
                <section class="card">
                    <h2>"Receive"</h2>
                    <label>"Amount (sats)"
                        <input type="number" id="receive-amount" min="1" step="1"
                            prop:value=move || amount.get()
                            on:input=move |ev| amount.set(event_target_value(&ev)) />
                    </label>
                    <label>"Description (the payer sees it)"
                        <input type="text" id="receive-description" maxlength="200"
                            prop:value=move || description.get()
                            on:input=move |ev| description.set(event_target_value(&ev)) />
                    </label>
                    <p class="hint" id="receive-inbound">{move || inbound().map(|i| view! {
                        "Can receive now: "<Sats amount=i what="can receive now" />
                    })}</p>
                    <p class="bad" id="receive-too-much" role="alert">{too_much}</p>
                    <button class="primary" id="make-invoice" disabled=move || busy.get() || too_much().is_some() on:click=make>"Make invoice"</button>
                    <p class="bad" id="receive-error" role="alert">{move || error.get()}</p>
                </section>
                <Show when=move || too_much().is_some()>
                    <LiquidityCard />
                </Show>
            }.into_any(),
            Some(record) => view! { <InvoiceCard record on_new=move || invoice.set(None) /> }.into_any(),
        }}
    }
}

/// An invoice: QR code, text, copy button, and whether it is paid.
#[component]
fn InvoiceCard(record: InvoiceRecord, on_new: impl Fn() + 'static) -> impl IntoView {
    let ctx = AppCtx::get();
    let hash = record.hash;
    let paid = move || {
        ctx.pay.with(|p| {
            p.received
                .iter()
                .find(|r| r.hash == hash)
                .map(|r| (r.amount, r.join_fee))
                .or_else(|| {
                    p.snapshot.as_ref().and_then(|s| {
                        s.payments
                            .iter()
                            .find(|r| {
                                r.hash == hash
                                    && r.direction == wallet::pay::Direction::Received
                                    && r.status == wallet::pay::PaymentStatus::Complete
                            })
                            .map(|r| (r.amount, r.join_fee))
                    })
                })
        })
    };
    let copied = RwSignal::new(false);
    let text = record.invoice.clone();
    let copy = move |_| {
        crate::clipboard::copy(&text);
        copied.set(true);
    };
    let expires = crate::history::time_of(record.expires_at);
    // Ticks until the invoice expires (or the card is gone), so an unpaid one says so.
    let expires_at = record.expires_at;
    let now = RwSignal::new(wallet::platform::unix_now());
    spawn_local(async move {
        while now.try_get_untracked().is_some_and(|t| t < expires_at) {
            gloo_timers::future::TimeoutFuture::new(1_000).await;
            if now.try_set(wallet::platform::unix_now()).is_some() {
                return;
            }
        }
    });
    let qr_text = record.invoice.clone();
    let text_shown = record.invoice.clone();
    // Held by the provider's Lightning node (anyone can pay it), or the wallet's own (the
    // provider's members only).
    let anyone = ctx.chosen.with_untracked(|c| {
        c.info().is_some_and(|i| {
            let body = &i.terms.body;
            shared::pay::ParsedInvoice::parse(&record.invoice, body.network, 0)
                .is_ok_and(|p| Some(p.payee) == body.lightning_node)
        })
    });
    view! {
        <section class="card" id="invoice-card">
            <h2>"Invoice for "<Sats amount=record.amount what="invoice amount" /></h2>
            {move || match paid() {
                Some((amount, join_fee)) => view! {
                    <p class="big ok" id="invoice-status" data-state="paid">"Paid ✓ "<Sats amount=amount what="paid" /></p>
                    {(join_fee > bitcoin::Amount::ZERO).then(|| view! {
                        <p class="hint" id="invoice-join-fee" data-sats=join_fee.to_sat().to_string()>
                            {format!("Your join fee of {} was taken from it (see History).", sats(join_fee))}</p>
                    })}
                }.into_any(),
                None if now.get() >= expires_at => view! {
                    <p class="bad" id="invoice-status" data-state="expired">"This invoice expired unpaid: make a new one."</p>
                }.into_any(),
                None => view! {
                    <p class="hint" id="invoice-status" data-state="waiting">"Waiting for the payment…"</p>
                    <Qr text=qr_text.clone() id="invoice-qr" />
                }.into_any(),
            }}
            <p>{record.description.clone()}</p>
            <Show when=move || paid().is_none() && now.get() < expires_at>
                <p class="mono" id="invoice-text">{text_shown.clone()}</p>
                <button id="copy-invoice" on:click=copy.clone()>{move || if copied.get() { "Copied" } else { "Copy invoice" }}</button>
                <p class="hint">{format!("Payable until {expires}.")}</p>
                <p class="hint" id="invoice-reach" data-reach=if anyone { "anyone" } else { "members" }>
                    {if anyone {
                        "Any Lightning wallet can pay it."
                    } else {
                        "Only members of this provider can pay it: the provider runs no Lightning node."
                    }}</p>
            </Show>
            <button id="new-invoice" on:click=move |_| on_new()>"New invoice"</button>
        </section>
    }
}
