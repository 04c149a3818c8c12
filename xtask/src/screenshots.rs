//! `cargo xtask screenshots`: copies the main screens, as the browser tests last drew them
//! (`target/screenshots/`, written by `cargo xtask test`), into `docs/screenshots/`, which the
//! README shows. So the README's pictures are the tests' own, never drawn by hand.

use anyhow::{bail, Context, Result};

use crate::util::root;

/// (test screenshot, name in `docs/screenshots/`), in the README's order.
const SCREENS: &[(&str, &str)] = &[
    ("join-01-welcome", "welcome"),
    ("join-07-join-quote", "join-quote"),
    ("join-08-progress", "join-progress"),
    ("join-10-home-live", "home"),
    ("pay-04-invoice", "receive"),
    ("pay-05-send-quote", "send-quote"),
    ("liquidity-01-quote", "liquidity"),
    ("exit-02-confirm-costs", "leave-confirm"),
    ("exit-05-swept", "left"),
    ("onchain-send-quote", "onchain-send"),
    ("exit-07-stayer-paid-out", "paid-out"),
    ("pay-12b-quote-warns-too-much", "send-warning"),
    ("ladder-view", "ladder"),
    ("swap-01-quote", "swap-quote"),
    ("swap-02-paid-on-chain", "swap-progress"),
    ("swap-03-sent", "swap-sent"),
];

/// Copies every screen; fails naming the first the tests have not drawn.
pub fn run(_args: &[String]) -> Result<()> {
    let from = root().join("target").join("screenshots");
    let to = root().join("docs").join("screenshots");
    std::fs::create_dir_all(&to).context("creating docs/screenshots")?;
    for (shot, name) in SCREENS {
        let src = from.join(format!("{shot}.png"));
        if !src.is_file() {
            bail!(
                "{} is missing: run `cargo xtask test` first (the browser tests draw it)",
                src.display()
            );
        }
        std::fs::copy(&src, to.join(format!("{name}.png")))
            .with_context(|| format!("copying {}", src.display()))?;
        println!("docs/screenshots/{name}.png  ← {shot}");
    }
    Ok(())
}
