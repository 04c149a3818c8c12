//! `cargo xtask test`: every check and test the project has. CI runs exactly this.

use anyhow::Result;

use crate::setup;
use crate::util::{cargo, exec};
use crate::web;

const WASM_CRATES: &[&str] = &[
    "superscalar-shared",
    "superscalar-wallet",
    "superscalar-web",
];

/// Runs fmt, clippy (native and wasm32), native tests (unit, devnet integration, browser
/// end-to-end) and the wasm tests in headless Chromium.
pub fn run(_args: &[String]) -> Result<()> {
    let tools = setup::run()?;

    step("format");
    exec(cargo().args(["fmt", "--all", "--", "--check"]))?;

    step("clippy, native");
    exec(cargo().args([
        "clippy",
        "--workspace",
        "--exclude",
        "superscalar-web",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;

    step("clippy, wasm32");
    let mut clippy_wasm = cargo();
    clippy_wasm.args(["clippy", "--target", "wasm32-unknown-unknown"]);
    for c in WASM_CRATES {
        clippy_wasm.args(["-p", c]);
    }
    exec(clippy_wasm.args(["--", "-D", "warnings"]))?;

    step("build the wallet (Trunk)");
    let dist = web::build(&tools, false)?;

    step("native tests: unit, integration against the devnet, browser end-to-end");
    let mut test = cargo();
    tools.apply(&mut test);
    test.env("WALLET_DIST", &dist);
    exec(test.args([
        "test",
        "--workspace",
        "--exclude",
        "superscalar-web",
        "--no-fail-fast",
    ]))?;

    step("wasm tests in headless Chromium");
    let mut wasm = cargo();
    tools.apply(&mut wasm);
    exec(wasm.args([
        "test",
        "--target",
        "wasm32-unknown-unknown",
        "-p",
        "superscalar-wallet",
    ]))?;

    step("all tests passed");
    Ok(())
}

fn step(name: &str) {
    eprintln!("\n==> {name}");
}
