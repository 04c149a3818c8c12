//! A payer's quote says, before its user confirms, when the payee could not receive the payment
//! now: the wallet asks the LSP (`route_query`) and the LSP answers from what it knows of the
//! payee (`route_answer`): its channels, what each can still receive, whether it is online.
//! Nothing is reserved, and an invoice the payee can take gets no warning.

mod common;

use bitcoin::Amount;
use common::puppet::spec;
use lsp_server::PaymentOptions;
use wallet::pay::MemoryPayStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quote_warns_when_the_payee_cannot_receive_it_now() {
    let stack =
        common::start_full(common::fast_factory(2, 2), PaymentOptions::default(), None).await;
    common::fund_lsp(&stack, Amount::from_sat(2_000_000)).await;
    let storage = tempfile::tempdir().expect("temp dir");
    let config = common::swarm_config(&stack, storage.path());
    let runs = common::pay::funded_factory(&stack, &config, spec(), 2).await;
    let mut a = common::pay::start_payer(&stack, &runs[0], MemoryPayStore::default());
    let mut b = common::pay::start_payer(&stack, &runs[1], MemoryPayStore::default());
    a.ready(30).await;
    let inbound = b.ready(30).await.inbound;
    a.faucet(Amount::from_sat(50_000), 30).await;

    // More than B's channel can take: the quote says so, with what B can receive.
    let big = b
        .handle
        .invoice(inbound * 2, "more than B can take")
        .await
        .expect("invoice")
        .invoice;
    let quote = a.handle.quote(&big).await.expect("quote");
    let warning = quote.warning.expect("a warning");
    assert!(
        warning.contains(&format!("at most {} sats", inbound.to_sat())),
        "{warning}"
    );

    // What B can take: no warning, and the payment goes through.
    let fine = b
        .handle
        .invoice(Amount::from_sat(1_000), "fits")
        .await
        .expect("invoice")
        .invoice;
    let quote = a.handle.quote(&fine).await.expect("quote");
    assert_eq!(quote.warning, None);

    // B closes its wallet: the quote says the payment would wait for it.
    b.handle.stop();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let quote = a.handle.quote(&fine).await.expect("quote");
        if quote
            .warning
            .as_deref()
            .is_some_and(|w| w.contains("offline"))
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the LSP sees B gone: {quote:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}
