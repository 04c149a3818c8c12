//! Moving to a new factory from the browser, the way a first-time user meets it: a browser
//! wallet shares a factory with a native member and gets test sats. Blocks pass until the
//! factory is in its dying period: Home shows the banner (until which block, and that the money
//! stays safe if the user does nothing), again after a reload. One click on "Move to a new
//! factory" joins a new factory of the same provider (the native member joins it too, with the
//! same identity), shows the join's steps (payments pause meanwhile, the balance stays shown),
//! opens the new channel and moves the whole balance into it, to the sat. Home then shows the new factory (its funding, its picture, its own
//! countdown) and the same balance, after a reload too. The native member moves out as well
//! (`PayHandle::migrate`), the provider closes the old factory with one key-path transaction of
//! one input and one output, and the wallet does not take that for a reason to leave on chain.
//!
//! Screenshots: `target/screenshots/migrate-*.png`.

mod common;
mod wallet_ui_support;

use std::time::Duration;

use bitcoin::Amount;
use common::pay::{admin_channel, leaf_of, start_payer_with};
use common::swarm::{self, ClientSpec};
use shared::pay::ChannelId;
use shared::types::ClientId;
use wallet::format::sats;
use wallet::pay::MemoryPayStore;
use wallet_ui_support::{
    absent, beside_a_native_run, browser_factory, home_shows_factory, mine_until, sats_in,
    text_becomes, wallet_dist, Driver, SCREEN,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_wallet_moves_to_a_new_factory_in_one_click_when_its_factory_is_dying() {
    let stack = common::start_with(browser_factory(2), Some(wallet_dist())).await;
    common::fund_lsp(&stack, Amount::from_sat(10_000_000)).await;
    let driver = Driver::start();
    let (a, native, mine) = beside_a_native_run(&stack, &driver, "mover").await;
    let native_old = leaf_of(&native);
    let old_factory = native_old.channel.factory;
    let funding_a = native_old.path.funding_outpoint();
    assert_eq!(
        a.content("#funding-txid", SCREEN).await,
        funding_a.txid.to_string(),
        "Home shows the factory joined"
    );
    let browser_old = ChannelId {
        factory: old_factory,
        client: ClientId(mine),
    };

    // Test sats: the balance that must reach the new factory, to the sat.
    a.click("#faucet").await;
    a.find("#faucet-message", SCREEN).await;
    let balance = a.settled_balance().await;
    absent(&a, "#dying-banner").await;

    // Blocks pass until the factory is in its dying period.
    mine_until(
        &stack,
        &[&a],
        ("#factory-status", "data-phase", "dying"),
        Duration::from_secs(180),
    )
    .await;
    let proposal = native_old.path.proposal();
    let ends = proposal.creation_height.to_consensus_u32()
        + proposal.params.active.to_blocks()
        + proposal.params.dying.to_blocks();
    a.wait_attr(
        "#dying-banner",
        "data-factory",
        &old_factory.to_string(),
        SCREEN,
    )
    .await;
    a.wait_attr("#dying-banner", "data-ends", &ends.to_string(), SCREEN)
        .await;
    let when = a.text("#dying-when", SCREEN).await;
    assert!(when.contains(&format!("by block {ends}")), "{when}");
    let if_nothing = a.text("#dying-if-nothing", SCREEN).await;
    assert!(
        if_nothing.contains("stays safe") && if_nothing.contains("leave on chain"),
        "{if_nothing}"
    );
    // What the move costs: the new factory's join fee, said before the click.
    let fee_words = a.text("#move-fee", SCREEN).await;
    assert!(fee_words.contains("join fee"), "{fee_words}");
    let move_fee = sats_in(fee_words.trim_start_matches(|c: char| !c.is_ascii_digit()));
    a.client
        .execute("window.scrollTo(0, 0);", vec![])
        .await
        .expect("scroll to the top");
    a.screenshot("migrate-01-dying-banner").await;

    // Shown on every open.
    a.reload().await;
    a.wait_attr(
        "#dying-banner",
        "data-factory",
        &old_factory.to_string(),
        SCREEN,
    )
    .await;
    text_becomes(&a, "#balance", &sats(Amount::from_sat(balance)), SCREEN).await;

    // The native member will join the new factory as the same member (same identity).
    let storage_b = tempfile::tempdir().expect("temp dir");
    let config_b = common::swarm_config(&stack, storage_b.path());
    let clients = swarm::spawn_as(&config_b, &[(ClientSpec::honest(), native.keys)]);

    // One click: the join's steps show, then the move.
    a.click("#move-factory").await;
    a.find("#move #join-progress", SCREEN).await;
    // Payments pause while the join runs (one connection per wallet at the provider); the
    // balance stays shown.
    a.wait_attr("#pay-status", "data-state", "paused", SCREEN)
        .await;
    text_becomes(&a, "#balance", &sats(Amount::from_sat(balance)), SCREEN).await;
    a.wait_attr(
        "#step-stored",
        "data-state",
        "done",
        Duration::from_secs(180),
    )
    .await;
    a.screenshot("migrate-02-joining").await;
    let said = a.text("#join-status", SCREEN).await;
    assert!(
        !said.contains("another connection"),
        "the join keeps its connection: {said}"
    );
    let runs = common::pay::funded_factory_of(&stack.devnet, clients, 1).await;
    let native_new = leaf_of(&runs[0]);
    let new_factory = native_new.channel.factory;
    assert_ne!(new_factory, old_factory, "a new factory");
    assert_ne!(
        native_new.path.funding_outpoint(),
        funding_a,
        "a new funding output"
    );

    a.wait_attr(
        "#move-status",
        "data-state",
        "moved",
        Duration::from_secs(180),
    )
    .await;
    let moved = a.text("#move-status", SCREEN).await;
    assert!(
        moved.contains("Moved \u{2713}")
            && moved.contains(&sats(Amount::from_sat(balance)))
            && moved.contains(&format!("factory {new_factory}")),
        "{moved}"
    );
    a.screenshot("migrate-03-moved").await;

    // Home: the new factory, the same balance, no banner.
    home_shows_factory(&a, &native_new, &native_old, balance).await;

    // The provider's view: the old channel is closed as moved, the new one holds it all.
    let old_at_lsp = admin_channel(&stack, browser_old).await;
    assert_eq!(old_at_lsp["state"], "moved", "{old_at_lsp}");
    assert_eq!(old_at_lsp["client_sat"], 0, "{old_at_lsp}");
    let browser_new = ChannelId {
        factory: new_factory,
        client: ClientId(1 - native_new.channel.client.0),
    };
    let new_at_lsp = admin_channel(&stack, browser_new).await;
    assert_eq!(new_at_lsp["client_sat"], balance, "{new_at_lsp}");
    assert_eq!(
        new_at_lsp["join_fee_sat"], move_fee,
        "the new channel owes the join fee the banner said: {new_at_lsp}"
    );

    // The native member moves out too (it holds nothing there: its key alone goes).
    let mut payer = start_payer_with(
        &stack,
        native.keys,
        vec![native_old.clone(), native_new.clone()],
        MemoryPayStore::default(),
    );
    payer.ready(60).await;
    let native_moved = tokio::time::timeout(
        Duration::from_secs(60),
        payer.handle.migrate(native_old.channel, native_new.channel),
    )
    .await
    .expect("the native member's move ends in time")
    .expect("the native member moved");
    assert_eq!(native_moved, Amount::ZERO);

    // Every member released its key: the provider closes the old factory alone.
    let close = common::chain::spent_by(
        stack.devnet.esplora_url(),
        funding_a,
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(close.input.len(), 1, "{close:?}");
    assert_eq!(close.output.len(), 1, "{close:?}");
    assert_eq!(close.input[0].witness.len(), 1, "a key-path spend");
    let funded = native_old.path.funding_output().value;
    assert!(
        close.output[0].value < funded && funded - close.output[0].value < Amount::from_sat(5_000),
        "the close returns the whole factory less its fee: {} of {funded}",
        close.output[0].value
    );
    stack.devnet.mine(1).await.expect("mine");

    // The spent funding output of the old factory is no reason to leave: no exit starts, and
    // Home still shows the new factory, after a reload too.
    tokio::time::sleep(Duration::from_secs(12)).await;
    absent(&a, "#exit-auto").await;
    absent(&a, "#exit-status").await;
    home_shows_factory(&a, &native_new, &native_old, balance).await;
    a.reload().await;
    home_shows_factory(&a, &native_new, &native_old, balance).await;
    absent(&a, "#move").await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    absent(&a, "#exit-auto").await;
    absent(&a, "#exit-status").await;
    a.screenshot("migrate-04-after-reload").await;
    payer.handle.stop();
    a.client.close().await.expect("close");
}
