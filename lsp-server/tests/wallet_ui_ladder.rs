//! The operator's live ladder page (`/admin/ladder/view`) in real Chromium against the real
//! LSP: a wrong token is refused with a clear line; with the token from the address, a factory
//! being created, then funded, shows as active with its members, and turns to "dying" when the
//! chain reaches its dying period, without a reload. The LSP runs the workshop's short
//! lifetime (`--factory-active-blocks`, `--factory-dying-blocks`) and a ladder
//! (`--ladder-interval`), which the page names with its next rung.
//!
//! Screenshot: `target/screenshots/ladder-view.png`.

mod common;
mod wallet_ui_support;

use std::time::Duration;

use bitcoin::Amount;
use common::swarm::ClientSpec;
use wallet_ui_support::{text_becomes, Driver, SCREEN};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ladder_page_shows_factories_live() {
    let options = lsp_server::FactoryOptions {
        active_blocks: Some(12),
        dying_blocks: Some(10),
        ladder_interval: Some(2),
        ..common::fast_factory(2, 2)
    };
    let stack = common::start_with(options, None).await;
    common::fund_lsp(&stack, Amount::from_sat(1_000_000)).await;
    let driver = Driver::start();
    let b = driver.browser("ladder").await;
    b.resize(1100, 700).await;
    let page = format!("{}/admin/ladder/view", stack.http_url());

    // A wrong token: the page says so and asks for it.
    b.client
        .goto(&format!("{page}#token=wrong"))
        .await
        .expect("open the page");
    text_becomes(
        &b,
        "#error",
        "Cannot read the ladder: wrong admin token",
        SCREEN,
    )
    .await;
    b.find("#login:not([hidden])", SCREEN).await;

    // The right one, from the address as the demo prints it; it leaves the address bar.
    b.client
        .goto(&format!("{page}#token={}", common::ADMIN_TOKEN))
        .await
        .expect("open the page");
    b.client.refresh().await.expect("reload");
    summary_has(&b, "0 funded factories").await;
    let tip = common::chain::tip(&stack).await;
    summary_has(
        &b,
        &format!(
            "a new factory every 2 blocks, the next at block {}",
            (tip / 2 + 1) * 2
        ),
    )
    .await;
    let url = b.client.current_url().await.expect("url");
    assert!(!url.as_str().contains("token"), "{url}");
    let form = b.find("#login", SCREEN).await;
    assert!(
        !form.is_displayed().await.expect("displayed"),
        "no token form once the token works"
    );

    let storage = tempfile::tempdir().expect("temp dir");
    let config = common::swarm_config(&stack, storage.path());
    let runs = common::pay::funded_factory(&stack, &config, ClientSpec::honest(), 2).await;
    let leaf = common::pay::leaf_of(&runs[0]);
    common::wait_state(&stack, 1, "funded", 10).await;

    let row = "tr.factory[data-id='1']";
    text_becomes(&b, &format!("{row} .stage"), "active", SCREEN).await;
    text_becomes(&b, &format!("{row} .members"), "2 (0 moved)", SCREEN).await;
    b.screenshot("ladder-view").await;

    // Into the dying period: the row follows the chain by itself.
    let life = shared::lifecycle::Life::of(leaf.path.proposal());
    let tip = common::chain::tip(&stack).await;
    stack
        .devnet
        .mine(life.dying_at.to_consensus_u32().saturating_sub(tip))
        .await
        .expect("mine");
    text_becomes(&b, &format!("{row} .stage"), "dying", SCREEN).await;
    summary_has(&b, "1 funded factory (1 dying)").await;
}

/// Waits until the page's summary line says `want`.
async fn summary_has(b: &wallet_ui_support::Browser, want: &str) {
    let deadline = tokio::time::Instant::now() + SCREEN;
    loop {
        let summary = b.text("#summary", SCREEN).await;
        if summary.starts_with("Block ") && summary.contains(want) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the summary says {want:?}: {summary}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
