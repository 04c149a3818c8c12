//! Paths and process helpers shared by the xtask commands.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// The workspace root (xtask lives one level below it).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is inside the workspace")
        .to_path_buf()
}

/// Where heavy tool builds are cached, outside the repo, shared by every clone.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SUPERSCALAR_CACHE") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/tmp".into());
    home.join(".cache").join("superscalar")
}

/// Directory holding the installed tools (trunk, wasm-bindgen, wasm-opt).
pub fn tools_bin() -> PathBuf {
    cache_dir().join("tools").join("bin")
}

/// Prints and runs a command, failing if it fails.
pub fn exec(cmd: &mut Command) -> Result<()> {
    eprintln!("$ {}", show(cmd));
    let status = cmd
        .status()
        .with_context(|| format!("could not start {}", show(cmd)))?;
    if !status.success() {
        bail!("`{}` failed ({status})", show(cmd));
    }
    Ok(())
}

/// Runs a command quietly and returns its trimmed stdout, or `None` if it could not run or failed.
pub fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.stderr(Stdio::null()).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `cargo` with the tools directory first on PATH, run from the workspace root.
pub fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root());
    with_tools_path(&mut cmd);
    cmd
}

/// Puts the cached tools first on a command's PATH.
pub fn with_tools_path(cmd: &mut Command) -> &mut Command {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut parts = vec![tools_bin()];
    parts.extend(std::env::split_paths(&path));
    cmd.env(
        "PATH",
        std::env::join_paths(parts).expect("PATH entries contain no separator"),
    )
}

fn show(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Finds `name` on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}
