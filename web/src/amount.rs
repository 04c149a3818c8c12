//! An amount as every screen shows it: grouped digits and "sats", never broken across lines,
//! labelled for screen readers (and for tests, which find every amount by its class).

use bitcoin::Amount;
use leptos::prelude::*;
use wallet::format::sats;

/// `amount` in a `<span class="amount">`; `what` names it for assistive tech ("spendable now").
#[component]
pub fn Sats(
    amount: Amount,
    #[prop(optional, into)] what: Option<String>,
    #[prop(optional, into)] id: Option<String>,
) -> impl IntoView {
    let text = sats(amount);
    let label = match what {
        Some(w) => format!("{w}: {text}"),
        None => text.clone(),
    };
    view! { <span class="amount" id=id aria-label=label>{text}</span> }
}
