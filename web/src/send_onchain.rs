//! Send's on-chain side: paying a Bitcoin address from the channel (a swap out). The provider
//! pays an output on chain; once it confirms the wallet moves it to the address, and only that
//! pays the provider. Before the user commits the screen shows what is sent on chain, the
//! provider's fee, the network fee of the claim, what arrives and what leaves the balance; while
//! it runs, where it stands (read from the payment's stored swap record); at the end, what
//! arrived and what it cost.

use bitcoin::{Amount, Transaction, Txid};
use leptos::prelude::*;
use wallet::pay::{Direction, PaymentRecord, PaymentStatus, SwapQuote, SwapRecord};

use crate::amount::Sats;
use crate::state::AppCtx;

/// Whether `text` reads as a Bitcoin address rather than a Lightning invoice: something is
/// there, and it does not start as an invoice does (`ln…`, `lightning:`).
pub fn looks_like_address(text: &str) -> bool {
    let text = text.trim().to_ascii_lowercase();
    !text.is_empty() && !text.starts_with("ln") && !text.starts_with("lightning:")
}

/// The amount typed, in sats (digits, with any `,`, `_` or spaces between them).
pub fn typed_sats(text: &str) -> Result<Amount, String> {
    let digits = text.trim().replace([',', ' ', '_'], "");
    if digits.is_empty() {
        return Err("type how many sats to send".into());
    }
    match digits.parse::<u64>() {
        Ok(n) if n > 0 => Ok(Amount::from_sat(n)),
        _ => Err("type the amount in sats, digits only".into()),
    }
}

/// A transaction id shortened for reading ("3f2a9c1e…"); the whole one is in the page's data.
fn short(txid: &Txid) -> String {
    let full = txid.to_string();
    format!("{}…", &full[..8])
}

/// The newest payment under way to `address` by the channel (the one this screen started).
fn pending_swap(ctx: AppCtx, address: &str) -> Option<SwapRecord> {
    ctx.pay.with(|p| {
        p.snapshot.as_ref().and_then(|s| {
            s.payments
                .iter()
                .filter(|r| r.direction == Direction::Sent && r.status == PaymentStatus::Pending)
                .filter_map(|r| r.swap.as_deref())
                .find(|s| s.address == address.trim())
                .cloned()
        })
    })
}

/// An address shortened for reading ("bcrt1p3x…9k2f"); the whole one is on Send and in History.
pub(crate) fn short_address(address: &str) -> String {
    let chars: Vec<char> = address.chars().collect();
    if chars.len() <= 16 {
        return address.to_string();
    }
    let head: String = chars[..8].iter().collect();
    let tail: String = chars[chars.len() - 6..].iter().collect();
    format!("{head}…{tail}")
}

/// Where a payment to an address stands, from its stored swap record (`None` before the wallet
/// stored one): the step (`paying`, `confirming`, `claimed`), the words for it, and the
/// transaction those words name. Send's progress and Home's card say the same.
pub(crate) fn swap_step(swap: Option<&SwapRecord>) -> (&'static str, String, Option<String>) {
    let funded = swap.and_then(|s| s.funded.as_ref());
    let claim = swap.and_then(|s| s.claim.as_ref().map(|c| c.compute_txid()));
    match (funded, claim) {
        (_, Some(txid)) => (
            "claimed",
            format!(
                "Claimed to your address ({}); the provider settles…",
                short(&txid)
            ),
            Some(txid.to_string()),
        ),
        (Some(f), None) => (
            "confirming",
            format!(
                "Paid on chain ({}); waiting for it to confirm…",
                short(&f.outpoint.txid)
            ),
            Some(f.outpoint.txid.to_string()),
        ),
        (None, None) => (
            "paying",
            "The provider is paying on chain…".to_string(),
            None,
        ),
    }
}

/// What `claim` paid to `swap`'s address.
fn paid_by(claim: &Transaction, swap: &SwapRecord) -> Amount {
    claim
        .output
        .iter()
        .filter(|o| o.script_pubkey == swap.destination)
        .map(|o| o.value)
        .sum()
}

/// What a payment to an address costs, shown before the user commits.
#[component]
pub fn SwapQuoteList(address: String, quote: SwapQuote) -> impl IntoView {
    view! {
        <dl id="swap-quote"
            data-amount=quote.amount.to_sat().to_string()
            data-fee=quote.fee.to_sat().to_string()
            data-claim-fee=quote.claim_fee.to_sat().to_string()
            data-arrives=quote.arrives.to_sat().to_string()
            data-total=quote.total.to_sat().to_string()>
            <dt>"To"</dt><dd class="mono" id="swap-address">{address}</dd>
            <dt>"Sent on chain"</dt><dd id="swap-amount"><Sats amount=quote.amount what="sent on chain" /></dd>
            <dt>"Provider's fee"</dt><dd id="swap-fee"><Sats amount=quote.fee what="provider's fee" /></dd>
            <dt>"Network fee of the claim"</dt>
            <dd id="swap-claim-fee"><Sats amount=quote.claim_fee what="network fee of the claim" />
                <span class="hint">" (taken from what is sent on chain)"</span></dd>
            <dt>"Arrives at the address"</dt>
            <dd id="swap-arrives"><strong><Sats amount=quote.arrives what="arrives at the address" /></strong></dd>
            <dt>"Total from your balance"</dt>
            <dd id="swap-total"><strong><Sats amount=quote.total what="total from your balance" /></strong></dd>
        </dl>
        <p class="hint" id="swap-how">"Your provider first sends the coins on chain. Once a block \
            confirms them, your wallet moves them to the address, and only that pays the provider. \
            If it does not go through, the sats come back to your balance. A Bitcoin payment \
            cannot be undone once it arrives: check the address."</p>
    }
}

/// Where a payment to `address` stands while it runs: the provider paying, its output waiting
/// for a block, the wallet's claim out and the provider settling.
#[component]
pub fn SwapProgress(address: String) -> impl IntoView {
    let ctx = AppCtx::get();
    let step = Memo::new(move |_| swap_step(pending_swap(ctx, &address).as_ref()));
    view! {
        <p class="ok" id="send-progress" data-step=move || step.get().0 data-txid=move || step.get().2>
            {move || step.get().1}</p>
        <p class="hint" id="swap-wait">"This takes a block or two (on Bitcoin, about ten minutes \
            each). You may leave this screen: the payment goes on, and Home and History show it."</p>
    }
}

/// A payment to an address that went through: what arrived, and what it cost in all.
#[component]
pub fn SwapSent(record: PaymentRecord, quote: SwapQuote) -> impl IntoView {
    let ctx = AppCtx::get();
    // The claim as the payment stored it (or as the latest snapshot has it).
    let swap = record.swap.as_deref().cloned().or_else(|| {
        ctx.pay.with_untracked(|p| {
            p.snapshot.as_ref().and_then(|s| {
                s.payments
                    .iter()
                    .find(|r| r.hash == record.hash && r.direction == Direction::Sent)
                    .and_then(|r| r.swap.as_deref().cloned())
            })
        })
    });
    let claim = swap
        .as_ref()
        .and_then(|s| s.claim.as_ref().map(|c| (c.compute_txid(), paid_by(c, s))));
    let arrived = claim.map_or(quote.arrives, |(_, a)| a);
    let claim_fee = record.amount.checked_sub(arrived).unwrap_or(Amount::ZERO);
    let total = record.amount + record.fee;
    let address = swap.map(|s| s.address).unwrap_or_default();
    view! {
        <p class="big ok" id="send-result" data-state="success"
            data-arrived=arrived.to_sat().to_string() data-total=total.to_sat().to_string()>
            "Sent on chain ✓ "<Sats amount=arrived what="arrived" /></p>
        <dl>
            <dt>"To"</dt><dd class="mono">{address}</dd>
            <dt>"Arrived at the address"</dt>
            <dd id="send-result-arrived"><Sats amount=arrived what="arrived at the address" /></dd>
            <dt>"Provider's fee"</dt><dd id="send-result-fee"><Sats amount=record.fee what="provider's fee" /></dd>
            <dt>"Network fee of the claim"</dt>
            <dd id="send-result-claim-fee"><Sats amount=claim_fee what="network fee of the claim" /></dd>
            <dt>"Total from your balance"</dt>
            <dd id="send-result-total"><strong><Sats amount=total what="total from your balance" /></strong></dd>
            {claim.map(|(txid, _)| view! {
                <dt>"Transaction"</dt>
                <dd class="mono" id="send-result-txid" data-txid=txid.to_string()>{txid.to_string()}</dd>
            })}
        </dl>
    }
}
