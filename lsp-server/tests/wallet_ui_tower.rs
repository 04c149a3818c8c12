//! The browser wallet and its watchtower: a user names a watchtower (a real `watchtower`
//! process) in the settings; after test sats revoke the provider's first commitments, the
//! wallet, from the browser (WebAssembly, `fetch` across origins), has sent the tower its exit
//! and a penalty for every revoked commitment, and the settings say what the tower holds.
//! What the tower then does for a wallet that is away is `watchtower_away.rs`.
//!
//! Screenshot: `target/screenshots/tower-01-settings.png`.

mod common;
mod wallet_ui_support;

use std::time::{Duration, Instant};

use bitcoin::Amount;
use common::chain::lsp_commitment;
use common::tower::TowerProcess;
use shared::pay::ChannelId;
use shared::types::{ClientId, FactoryId};
use wallet_ui_support::{beside_a_native_member, browser_factory, wallet_dist, Driver, SCREEN};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_wallet_keeps_its_watchtower_up_to_date() {
    let stack = common::start_with(browser_factory(2), Some(wallet_dist())).await;
    common::fund_lsp(&stack, Amount::from_sat(10_000_000)).await;
    let tower_dir = tempfile::tempdir().expect("temp dir");
    let tower = TowerProcess::start(&stack.devnet, tower_dir.path(), common::ln::free_addr()).await;
    let driver = Driver::start();
    let (a, _other, mine) = beside_a_native_member(&stack, &driver, "tower").await;
    let identity: String = stack
        .db()
        .query_row(
            "SELECT identity FROM factory_clients WHERE factory = 1 AND client = ?1",
            [mine],
            |r| r.get(0),
        )
        .expect("the LSP knows the wallet's identity");
    let identity = identity.parse().expect("an x-only key");
    let channel = ChannelId {
        factory: FactoryId(1),
        client: ClientId(mine),
    };

    // The user names the tower in the settings.
    a.click("#nav-settings").await;
    let status = a.text("#watchtower-status", SCREEN).await;
    assert!(status.starts_with("No watchtower"), "{status}");
    a.type_into("#watchtower-url", &tower.url).await;
    a.click("#save-watchtower").await;
    wallet_ui_support::text_becomes(&a, "#settings-message", "Saved.", SCREEN).await;

    // Test sats revoke the provider's first commitments.
    a.click("#nav-home").await;
    a.click("#faucet").await;
    a.find("#faucet-message", SCREEN).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let revoked = loop {
        let revoked = (0..)
            .take_while(|n| lsp_commitment(&stack, mine, n + 1).is_some())
            .count() as u64;
        let held = tower.status(&identity, channel).await;
        if revoked >= 2 && held["penalties"].as_u64() == Some(revoked) {
            break revoked;
        }
        assert!(
            Instant::now() < deadline,
            "the tower holds a penalty per revoked commitment ({revoked}): {held}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };

    // The settings say what the tower holds.
    a.click("#nav-settings").await;
    let deadline = Instant::now() + SCREEN;
    loop {
        let words = a.text("#watchtower-status", SCREEN).await;
        if words.contains(&format!("holds penalties for {revoked} old states")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the settings say what the tower holds: {words}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    a.client
        .execute(
            "document.getElementById('watchtower-status').scrollIntoView({block: 'center'})",
            vec![],
        )
        .await
        .expect("scroll");
    a.screenshot("tower-01-settings").await;
}
