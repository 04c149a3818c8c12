//! Building the browser wallet with Trunk.

use std::path::PathBuf;

use anyhow::Result;

use crate::setup::Tools;
use crate::util::{exec, root, tools_bin};

/// Builds `web/` into `web/dist` (release when asked) and returns the dist directory.
pub fn build(tools: &Tools, release: bool) -> Result<PathBuf> {
    let mut cmd = std::process::Command::new(tools_bin().join("trunk"));
    tools.apply(&mut cmd);
    cmd.current_dir(root().join("web"))
        .args(["build", "--offline"]);
    if release {
        // `wasm-release` (Cargo.toml): size-optimized, LTO, one codegen unit, abort on panic.
        cmd.args(["--release", "--cargo-profile", "wasm-release"]);
    }
    exec(&mut cmd)?;
    Ok(root().join("web").join("dist"))
}
