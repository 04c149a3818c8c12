//! End to end in a real headless Chromium: the wallet page served by the LSP connects over
//! WebSocket, shows the LSP's signed terms, and shows the tip height it read from Esplora.

mod common;
mod wallet_ui_support;

use std::time::Duration;

use wallet_ui_support::{wallet_dist, wallet_url, Driver};

#[tokio::test]
async fn wallet_page_shows_terms_and_tip_height() {
    let stack = common::start(Some(wallet_dist())).await;
    stack.devnet.mine(5).await.expect("mine");
    let height = stack
        .devnet
        .height()
        .await
        .expect("height")
        .to_consensus_u32();

    let driver = Driver::start();
    let page = driver.browser("visitor").await;
    let esplora = stack.devnet.esplora_url().to_string();
    page.client
        .goto(&wallet_url(&stack.http_url(), &stack.http_url(), &esplora))
        .await
        .expect("open the wallet");
    let soon = Duration::from_secs(5);
    assert_eq!(
        page.text("#lsp-name", Duration::from_secs(30)).await,
        "test LSP"
    );
    assert_eq!(page.text("#lsp-network", soon).await, "regtest");
    assert!(page.text("#terms-status", soon).await.contains("signed"));
    // The wallet works out a worst-case exit itself from the signed parameters, before joining.
    let exit = page.text("#exit-cost", soon).await;
    assert!(
        exit.contains("blocks of waiting") && exit.contains("fees paid"),
        "{exit}"
    );
    let shown: u32 = page
        .text("#tip-height", Duration::from_secs(30))
        .await
        .parse()
        .expect("the tip height is a number");
    assert!(
        shown >= height,
        "page shows height {shown}, chain is at {height}"
    );
    // It says where it read that, and that this source is the provider's own.
    assert_eq!(page.text("#chain-source", soon).await, esplora);
    let warning = page.text("#chain-warning", soon).await;
    assert!(warning.contains("provider's own chain source"), "{warning}");

    page.client.close().await.expect("close the browser");
}
