//! A move to a new factory that only has its payment left: a browser wallet with test sats in a
//! dying factory joins a new factory through the ordinary Join screen (as a move cut short after
//! its join would leave it; a native member joins beside it, with the same identity as in the
//! old factory). Home then shows the new factory, the balance of both channels, and the banner
//! of the old one offering to finish the move. One click moves the whole balance, to the sat,
//! without joining again; the old factory is gone from Home, after a reload too, and the
//! provider has its channel closed as moved.
//!
//! Screenshots: `target/screenshots/migrate-finish-*.png`.

mod common;
mod wallet_ui_support;

use std::time::Duration;

use bitcoin::Amount;
use common::pay::{admin_channel, leaf_of};
use common::swarm::{self, ClientSpec};
use shared::pay::ChannelId;
use shared::types::ClientId;
use wallet::format::sats;
use wallet_ui_support::{
    absent, beside_a_native_run, browser_factory, home_shows_factory, mine_until, text_becomes,
    wallet_dist, Driver, SCREEN,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wallet_that_already_joined_a_new_factory_finishes_its_move_in_one_click() {
    let stack = common::start_with(browser_factory(2), Some(wallet_dist())).await;
    common::fund_lsp(&stack, Amount::from_sat(10_000_000)).await;
    let driver = Driver::start();
    let (a, native, mine) = beside_a_native_run(&stack, &driver, "finisher").await;
    let native_old = leaf_of(&native);
    let old_factory = native_old.channel.factory;

    a.click("#faucet").await;
    a.find("#faucet-message", SCREEN).await;
    let balance = a.settled_balance().await;
    mine_until(
        &stack,
        &[&a],
        ("#factory-status", "data-phase", "dying"),
        Duration::from_secs(180),
    )
    .await;
    text_becomes(&a, "#move-factory", "Move to a new factory", SCREEN).await;

    // Days later (a new page), the ordinary join, beside the native member (same identity,
    // new factory key).
    a.reload().await;
    let storage_b = tempfile::tempdir().expect("temp dir");
    let config_b = common::swarm_config(&stack, storage_b.path());
    let clients = swarm::spawn_as(&config_b, &[(ClientSpec::honest(), native.keys)]);
    a.join(None).await;
    a.wait_attr(
        "#step-stored",
        "data-state",
        "done",
        Duration::from_secs(180),
    )
    .await;
    let said = a.text("#join-status", SCREEN).await;
    assert!(
        !said.contains("another connection"),
        "the join keeps its connection while payments pause: {said}"
    );
    let runs = common::pay::funded_factory_of(&stack.devnet, clients, 1).await;
    let native_new = leaf_of(&runs[0]);
    let new_factory = native_new.channel.factory;
    assert_ne!(new_factory, old_factory, "a new factory");
    a.wait_attr("#step-open", "data-state", "done", Duration::from_secs(60))
        .await;
    a.click("#join-home").await;

    // Home: the new factory is shown; the old one's banner offers to finish; the balance is
    // the sum of both channels (the old one's, all of it).
    a.wait_attr(
        "#dying-banner",
        "data-factory",
        &old_factory.to_string(),
        SCREEN,
    )
    .await;
    text_becomes(
        &a,
        "#move-factory",
        "Finish moving to the new factory",
        SCREEN,
    )
    .await;
    // Its join fee is already on record: the banner quotes none.
    absent(&a, "#move-fee").await;
    a.wait_attr("#pay-status", "data-state", "connected", SCREEN)
        .await;
    text_becomes(&a, "#balance", &sats(Amount::from_sat(balance)), SCREEN).await;
    a.client
        .execute("window.scrollTo(0, 0);", vec![])
        .await
        .expect("scroll to the top");
    a.screenshot("migrate-finish-01-banner").await;

    // One click: no second join, the balance moves.
    a.click("#move-factory").await;
    a.wait_attr(
        "#move-status",
        "data-state",
        "moved",
        Duration::from_secs(120),
    )
    .await;
    absent(&a, "#move #join-progress").await;
    let moved = a.text("#move-status", SCREEN).await;
    assert!(
        moved.contains(&sats(Amount::from_sat(balance)))
            && moved.contains(&format!("factory {new_factory}")),
        "{moved}"
    );
    home_shows_factory(&a, &native_new, &native_old, balance).await;
    a.screenshot("migrate-finish-02-moved").await;
    let old_at_lsp = admin_channel(
        &stack,
        ChannelId {
            factory: old_factory,
            client: ClientId(mine),
        },
    )
    .await;
    assert_eq!(old_at_lsp["state"], "moved", "{old_at_lsp}");
    assert_eq!(old_at_lsp["client_sat"], 0, "{old_at_lsp}");

    a.reload().await;
    home_shows_factory(&a, &native_new, &native_old, balance).await;
    absent(&a, "#move").await;
    a.client.close().await.expect("close");
}
