//! History: every payment, newest first, with direction, amount, fee, description, status and
//! time. A received payment the join fee was taken from shows the invoice's full amount, with
//! the fee as its own row beside it ("Join fee −1,500 sats"), once.

use bitcoin::Amount;
use leptos::prelude::*;
use wallet::format::sats;
use wallet::pay::{Direction, PaymentRecord, PaymentStatus};

use crate::state::AppCtx;

/// The history screen.
#[component]
pub fn History() -> impl IntoView {
    let ctx = AppCtx::get();
    let payments = move || {
        ctx.pay.with(|p| {
            p.snapshot
                .as_ref()
                .map(|s| s.payments.clone())
                .unwrap_or_default()
        })
    };
    view! {
        <section class="card">
            <h2>"History"</h2>
            {move || {
                let list = payments();
                if list.is_empty() {
                    view! { <p class="hint" id="history-empty">"No payments yet."</p> }.into_any()
                } else {
                    view! {
                        <ul class="history" id="history">
                            {list.into_iter().map(|p| {
                                let fee = (p.join_fee > Amount::ZERO && p.status == PaymentStatus::Complete)
                                    .then(|| view! { <JoinFeeRow payment=p.clone() /> });
                                view! { {fee} <Row payment=p /> }
                            }).collect_view()}
                        </ul>
                    }.into_any()
                }
            }}
        </section>
    }
}

/// One payment.
#[component]
fn Row(payment: PaymentRecord) -> impl IntoView {
    let (direction, arrow) = match payment.direction {
        Direction::Sent => ("sent", "↑ Sent"),
        Direction::Received => ("received", "↓ Received"),
        Direction::Liquidity => ("liquidity", "⇅ Bought inbound liquidity"),
    };
    let (status, status_words) = match &payment.status {
        PaymentStatus::Pending => ("pending", "under way".to_string()),
        PaymentStatus::Complete => ("complete", "done".to_string()),
        PaymentStatus::Failed(why) => ("failed", format!("failed: {why}")),
    };
    let fee = (payment.fee.to_sat() > 0).then(|| match payment.direction {
        Direction::Liquidity => format!("price {}", sats(payment.fee)),
        _ => match payment.network_fee {
            Some(network) => format!(
                "fee {} ({} of it to the Lightning Network)",
                sats(payment.fee),
                sats(network)
            ),
            None => format!("fee {}", sats(payment.fee)),
        },
    });
    view! {
        <li class="payment" class:failed=status == "failed" data-direction=direction data-status=status
            data-sats=payment.amount.to_sat().to_string() data-fee=payment.fee.to_sat().to_string()>
            <div class="row">
                <span class="direction">{arrow}</span>
                <span class="amount">{sats(payment.amount)}</span>
            </div>
            <div class="row hint">
                <span>{payment.description.clone()}</span>
                <span>{fee}</span>
            </div>
            <div class="row hint">
                <span class="status">{status_words}</span>
                <span>{time_of(payment.done_at.unwrap_or(payment.created_at))}</span>
            </div>
        </li>
    }
}

/// The join fee taken from a received payment (listed just above it: it went at the same time).
#[component]
fn JoinFeeRow(payment: PaymentRecord) -> impl IntoView {
    let fee = payment.join_fee;
    view! {
        <li class="join-fee" data-direction="join-fee" data-sats=fee.to_sat().to_string()>
            <div class="row">
                <span class="direction">"Join fee"</span>
                <span class="amount">{format!("\u{2212}{}", sats(fee))}</span>
            </div>
            <div class="row hint">
                <span>{format!("Your factory's join fee, taken from the {} below", sats(payment.amount))}</span>
            </div>
            <div class="row hint">
                <span class="status">"paid"</span>
                <span>{time_of(payment.done_at.unwrap_or(payment.created_at))}</span>
            </div>
        </li>
    }
}

/// A Unix time as the browser's local date and time.
pub fn time_of(unix: u64) -> String {
    let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(unix as f64 * 1000.0));
    String::from(date.to_locale_string("default", &wasm_bindgen::JsValue::UNDEFINED))
}
