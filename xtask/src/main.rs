//! `cargo xtask <command>`: the project's commands.
//!
//! - `setup`: install what this machine lacks (idempotent; fast when done).
//! - `demo`:  start devnet + LSP + wallet and print the URL to open; Ctrl-C stops everything.
//! - `test`:  every check and test the project has (what CI runs).
//! - `bench`: print the benchmark figures the README reports.
//! - `bundle-hash`: build the wallet as served and print the SHA-256 of each of its files and
//!   of the whole bundle.
//! - `screenshots`: copy the main screens the browser tests drew into `docs/screenshots/`.

mod bench;
mod bundle;
mod demo;
mod readme;
mod screenshots;
mod setup;
mod test;
mod util;
mod web;

use anyhow::{bail, Result};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, rest) = match args.split_first() {
        Some((c, r)) => (c.as_str(), r),
        None => ("help", &[][..]),
    };
    match cmd {
        "setup" => setup::run().map(|_| ()),
        "demo" => demo::run(rest),
        "test" => test::run(rest),
        "bench" => bench::run(rest),
        "bundle-hash" => bundle::run(rest),
        "screenshots" => screenshots::run(rest),
        "help" | "-h" | "--help" => {
            println!("usage: cargo xtask <setup|demo|test|bench|bundle-hash|screenshots> [args]");
            println!("  setup            install toolchain pieces this machine lacks (cached)");
            println!("  demo [--port P]  run devnet + LSP + wallet on 127.0.0.1 until Ctrl-C");
            println!("  test             fmt, clippy (native + wasm32), unit, wasm, integration and browser tests");
            println!("  bench [what]     print benchmark figures");
            println!("  bundle-hash      build the wallet as served; print each file's SHA-256 and the bundle's");
            println!(
                "  screenshots      copy the browser tests' main screens into docs/screenshots/"
            );
            Ok(())
        }
        other => bail!("unknown command `{other}`; try `cargo xtask help`"),
    }
}
