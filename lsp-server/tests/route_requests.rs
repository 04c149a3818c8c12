//! Route requests cannot be used to crowd out other wallets: a wallet that floods
//! `pay_request`s for HTLCs it never adds is refused past its per-channel allowance, while
//! another wallet's payment goes through at once, with the flood's connection still open.

mod common;

use std::time::Duration;

use bitcoin::Amount;
use common::puppet::{pay_puppet, setup, Setup};
use common::raw;
use lsp_server::PaymentOptions;
use shared::pay::PayRequest;
use shared::wire::{ErrorCode, WireMsg};

/// Route requests in the flood: more than the LSP ever kept in all before (10,000).
const FLOOD: u64 = 10_050;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wallet_flooding_route_requests_cannot_stop_another_wallets_payment() {
    let Setup {
        stack,
        mut payer,
        puppet: mut p,
        ..
    } = setup(PaymentOptions::default()).await;
    let (invoice, _) = p.invoice(&stack, Amount::from_sat(100)).await;

    // The puppet floods route requests for its own channel, none followed by an HTLC.
    for i in 0..FLOOD {
        let request = PayRequest {
            channel: p.id,
            htlc: 1_000_000 + i,
            invoice: invoice.clone(),
        };
        raw::send(&mut p.ws, WireMsg::PayRequest(request)).await;
    }
    // The LSP keeps at most its allowance and tells the flooder why it keeps no more.
    let mut refused = 0;
    let mut first = None;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while refused < FLOOD - 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "{refused} refused: {first:?}"
        );
        if let WireMsg::Error { code, message, .. } = raw::recv(&mut p.ws).await {
            assert_eq!(code, ErrorCode::RateLimited, "{message}");
            first.get_or_insert(message);
            refused += 1;
        }
    }
    let first = first.expect("refusals");
    assert!(first.contains("already waiting"), "{first}");

    // Another wallet pays the puppet at once.
    tokio::time::timeout(
        Duration::from_secs(30),
        pay_puppet(&stack, &mut payer, &mut p, 1_000),
    )
    .await
    .expect("the payment goes through despite the flood");
}
