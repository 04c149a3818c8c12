//! End to end through the wallet's screens, in four real headless Chromiums (four separate
//! profiles, so four separate wallets), against a real LSP serving the built wallet and a real
//! bitcoind on regtest: each person creates a wallet (words shown, three checked, a passphrase
//! or the device key), looks at the provider's terms, asks for liquidity, confirms the quote and
//! joins; the LSP builds one factory of four; after blocks are mined every wallet shows it live
//! with the same funding transaction and draws its path. A second tab of one wallet is told that
//! another tab has it open; another wallet reloads, unlocks, and still has its factory (the signed
//! path lives in its encrypted IndexedDB vault). The last wallet is wiped and restored from its
//! words.
//!
//! Screenshots of each screen go to `target/screenshots/join-*.png`.

mod common;
mod wallet_ui_support;

use std::time::{Duration, Instant};

use bitcoin::Amount;
use wallet_ui_support::{browser_factory, wallet_dist, Browser, Driver, SCREEN};

const PASSPHRASE: &str = "a long walk on the beach";
const NEW_PASSPHRASE: &str = "a short swim in the lake";

/// Mines a block every second until `css[attr] == want` in every browser (or `limit`).
async fn mine_until(
    stack: &common::Stack,
    browsers: &[Browser],
    (css, attr, want): (&str, &str, &str),
    limit: Duration,
) {
    let deadline = Instant::now() + limit;
    loop {
        let mut reached = 0;
        for b in browsers {
            if let Ok(el) = b.client.find(fantoccini::Locator::Css(css)).await {
                if el.attr(attr).await.ok().flatten().as_deref() == Some(want) {
                    reached += 1;
                }
            }
        }
        if reached == browsers.len() {
            return;
        }
        if Instant::now() > deadline {
            let mut pages = String::new();
            for b in browsers {
                pages += &format!("\n--- {}: {}", b.name, b.body_text().await);
            }
            panic!(
                "only {reached} of {} wallets reached {css}[{attr}={want}]; pages:{pages}",
                browsers.len()
            );
        }
        stack.devnet.mine(1).await.expect("mine");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_browsers_create_wallets_and_join_one_factory() {
    let stack = common::start_with(browser_factory(4), Some(wallet_dist())).await;
    common::fund_lsp(&stack, Amount::from_sat(10_000_000)).await;
    let url = stack.http_url();
    let driver = Driver::start();

    let mut browsers = Vec::new();
    let mut all_words = Vec::new();
    for i in 0..4 {
        let b = driver.browser(&format!("wallet {i}")).await;
        let passphrase = (i == 0).then_some(PASSPHRASE);
        let shots = (i == 0).then_some("join-");
        let words = b.create_wallet(&url, passphrase, shots).await;
        assert_eq!(words.len(), 24);
        all_words.push(words);
        browsers.push(b);
    }
    // Everyone joins; the factory starts when the fourth is in. While it gathers, the first
    // wallet's page counts the members so far, says the minimum, and what the deadline means.
    let first = &browsers[0];
    for (i, b) in browsers.iter().enumerate() {
        b.join((i == 0).then_some("join-")).await;
        if i < 3 {
            first
                .wait_attr("#gathering", "data-members", &(i + 1).to_string(), SCREEN)
                .await;
            let members = first.text("#gathering-members", SCREEN).await;
            assert!(
                members.contains(&format!("{} member", i + 1)) && members.contains("at least 4"),
                "{members}"
            );
            first.text("#gathering-outlook", SCREEN).await;
        }
    }
    first
        .wait_attr(
            "#step-waiting",
            "data-state",
            "done",
            Duration::from_secs(60),
        )
        .await;
    // Each wallet checks the tree, signs, stores its path, and sees the funding go out.
    for b in &browsers {
        b.wait_attr(
            "#step-stored",
            "data-state",
            "done",
            Duration::from_secs(180),
        )
        .await;
    }
    first.text("#confirmations", SCREEN).await;
    first.screenshot("join-08-progress").await;

    // Blocks come; every wallet sees the funding confirm on its own chain source.
    mine_until(
        &stack,
        &browsers,
        ("#step-open", "data-state", "done"),
        Duration::from_secs(120),
    )
    .await;
    first.screenshot("join-09-progress-open").await;
    for b in &browsers {
        b.click("#join-home").await;
    }
    mine_until(
        &stack,
        &browsers,
        ("#factory-status", "data-phase", "live"),
        Duration::from_secs(60),
    )
    .await;

    let mut funding = Vec::new();
    for b in &browsers {
        funding.push(b.content("#funding-txid", SCREEN).await);
        assert_eq!(b.text("#factory-clients", SCREEN).await, "4");
        let dying = b.text("#dying-in", SCREEN).await;
        assert!(dying.contains("blocks"), "{}: {dying}", b.name);
        let channel = b.content("#balance-channel", SCREEN).await;
        assert!(channel.ends_with("sats"), "{channel}");
        let nodes = b
            .client
            .find_all(fantoccini::Locator::Css("#factory-tree g.tree-node"))
            .await
            .expect("tree nodes");
        assert!(
            nodes.len() >= 3,
            "{}: {} boxes in the tree",
            b.name,
            nodes.len()
        );
    }
    assert!(funding.iter().all(|f| f == &funding[0]), "{funding:?}");
    let txid: bitcoin::Txid = funding[0].parse().expect("a txid");
    let tx = stack
        .devnet
        .rpc()
        .get_raw_transaction(&txid)
        .await
        .expect("bitcoind answers")
        .expect("the funding transaction is known to bitcoind");
    assert!(!tx.output.is_empty());
    first.screenshot("join-10-home-live").await;

    // The LSP agrees.
    common::wait_state(&stack, 1, "funded", 30).await;

    // Settings of another wallet.
    let second = &browsers[1];
    second.click("#nav-settings").await;
    assert_eq!(second.text("#network", SCREEN).await, "regtest");
    second.screenshot("join-11-settings").await;

    // The same wallet in a second tab of that browser: one writer only, and the tab says why.
    let main_tab = second.client.window().await.expect("current tab");
    let tab = second.client.new_window(true).await.expect("new tab");
    second
        .client
        .switch_to_window(tab.handle)
        .await
        .expect("switch");
    second
        .client
        .goto(&url)
        .await
        .expect("open the wallet again");
    let notice = second.text("#other-tab", SCREEN).await;
    assert!(notice.contains("another tab"), "{notice}");
    second.screenshot("join-12-other-tab").await;
    second.client.close_window().await.expect("close the tab");
    second
        .client
        .switch_to_window(main_tab)
        .await
        .expect("back");

    // A reload keeps everything: unlock with the passphrase, and the factory is still there.
    first.client.refresh().await.expect("reload");
    first.find("#unlock-passphrase", SCREEN).await;
    first.screenshot("join-13-unlock").await;
    first
        .type_into("#unlock-passphrase", "not the passphrase")
        .await;
    first.click("#unlock").await;
    let refused = first.text("#unlock-error", SCREEN).await;
    assert!(refused.contains("wrong passphrase"), "{refused}");
    first.type_into("#unlock-passphrase", PASSPHRASE).await;
    first.click("#unlock").await;
    first
        .wait_attr("#factory-status", "data-phase", "live", SCREEN)
        .await;
    assert_eq!(first.content("#funding-txid", SCREEN).await, funding[0]);
    first.screenshot("join-14-home-after-reload").await;

    // The passphrase changes in settings: after a reload the old one is refused, the new one
    // opens the same factory.
    first.click("#nav-settings").await;
    first.type_into("#new-passphrase", NEW_PASSPHRASE).await;
    first.type_into("#new-passphrase-again", "a typo").await;
    first.click("#change-passphrase").await;
    let differ = first.text("#protection-error", SCREEN).await;
    assert!(differ.contains("differ"), "{differ}");
    first
        .type_into("#new-passphrase-again", NEW_PASSPHRASE)
        .await;
    first.click("#change-passphrase").await;
    let done = first.text("#protection-message", SCREEN).await;
    assert!(done.contains("new passphrase"), "{done}");
    first.screenshot("join-14b-passphrase-changed").await;
    first.client.refresh().await.expect("reload");
    first.type_into("#unlock-passphrase", PASSPHRASE).await;
    first.click("#unlock").await;
    let refused = first.text("#unlock-error", SCREEN).await;
    assert!(refused.contains("wrong passphrase"), "{refused}");
    first.type_into("#unlock-passphrase", NEW_PASSPHRASE).await;
    first.click("#unlock").await;
    first
        .wait_attr("#factory-status", "data-phase", "live", SCREEN)
        .await;
    assert_eq!(first.content("#funding-txid", SCREEN).await, funding[0]);

    // The third wallet downloads an encrypted backup, is wiped, and comes back from the file
    // with its factory: same funding, still live.
    let third = &browsers[2];
    third.click("#nav-settings").await;
    third.type_into("#backup-password", "backup pass").await;
    third.click("#export-backup").await;
    let file = third
        .downloaded("superscalar-wallet-backup.json", SCREEN)
        .await;
    let backup = std::fs::read_to_string(&file).expect("the backup file");
    assert!(
        !backup.contains(&all_words[2][..4].join(" ")),
        "the backup does not hold the words in the clear"
    );
    third.click("#wipe").await;
    third.click("#wipe-confirm").await;
    third.find("#create-wallet", SCREEN).await;
    third.click("#restore-wallet").await;
    third
        .find("#import-file", SCREEN)
        .await
        .send_keys(&file.display().to_string())
        .await
        .expect("choose the backup file");
    third.type_into("#import-password", "not it").await;
    third.click("#import-submit").await;
    let refused = third.text("#restore-error", SCREEN).await;
    assert!(!refused.is_empty(), "a wrong backup password is refused");
    third.type_into("#import-password", "backup pass").await;
    third.click("#import-submit").await;
    third
        .wait_attr("#factory-status", "data-phase", "live", SCREEN)
        .await;
    assert_eq!(third.content("#funding-txid", SCREEN).await, funding[0]);
    third.screenshot("join-16-restored-from-backup").await;

    // The last wallet is wiped, then restored from its words: same keys, same sweep address;
    // its factory would come back only from a backup file.
    let last = &browsers[3];
    let address = last.text("#sweep-address", SCREEN).await;
    last.click("#nav-settings").await;
    last.click("#wipe").await;
    last.click("#wipe-confirm").await;
    last.find("#create-wallet", SCREEN).await;
    last.click("#restore-wallet").await;
    last.type_into("#restore-words", &all_words[3].join(" "))
        .await;
    last.screenshot("join-15-restore").await;
    last.click("#restore-submit").await;
    last.click("#no-passphrase").await;
    last.wait_attr("#factory-status", "data-phase", "none", SCREEN)
        .await;
    assert_eq!(last.text("#sweep-address", SCREEN).await, address);

    for b in browsers {
        b.client.close().await.expect("close the browser");
    }
}
