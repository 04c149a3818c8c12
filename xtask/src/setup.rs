//! `cargo xtask setup`: installs what a fresh machine lacks and reuses what is there.
//!
//! Heavy builds (bitcoind, Trunk, wasm-bindgen-cli) and binaryen's `wasm-opt` are cached under
//! [`util::cache_dir`], outside the repository, so every clone and every later run reuses them.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::util::{self, cache_dir, exec, output, tools_bin, which};

/// Bitcoin Core's source comes vendored in this crates.io package (it carries Core 31.99).
const KERNEL_SYS: &str = "libbitcoinkernel-sys";
const KERNEL_SYS_VERSION: &str = "0.4.1";
const TRUNK_REQ: &str = "~0.21";
const DEBIAN_PACKAGES: &[&str] = &[
    "clang",
    "cmake",
    "libboost-dev",
    "libevent-dev",
    "pkg-config",
    "chromium",
    "chromium-driver",
];

/// What the other commands need from setup.
pub struct Tools {
    /// The bitcoind binary tests and the demo run.
    pub bitcoind: PathBuf,
    /// chromedriver, for wasm and browser tests.
    pub chromedriver: PathBuf,
}

impl Tools {
    /// Environment the tests and demo read: `BITCOIND`, `CHROMEDRIVER`, and the tools on PATH.
    pub fn apply(&self, cmd: &mut Command) {
        cmd.env("BITCOIND", &self.bitcoind)
            .env("CHROMEDRIVER", &self.chromedriver);
        util::with_tools_path(cmd);
    }
}

/// Runs every setup step; each is skipped when already done.
pub fn run() -> Result<Tools> {
    wasm_target()?;
    debian_packages()?;
    let bitcoind = bitcoind()?;
    wasm_bindgen_cli()?;
    trunk()?;
    wasm_opt()?;
    let chromedriver = which("chromedriver").context("chromedriver not found after install")?;
    eprintln!(
        "setup: ready (bitcoind {}, tools in {})",
        bitcoind.display(),
        tools_bin().display()
    );
    Ok(Tools {
        bitcoind,
        chromedriver,
    })
}

fn wasm_target() -> Result<()> {
    let installed = output(Command::new("rustup").args(["target", "list", "--installed"]));
    if installed.is_some_and(|t| t.lines().any(|l| l.trim() == "wasm32-unknown-unknown")) {
        return Ok(());
    }
    exec(Command::new("rustup").args(["target", "add", "wasm32-unknown-unknown"]))
}

fn debian_packages() -> Result<()> {
    let missing: Vec<&str> = DEBIAN_PACKAGES
        .iter()
        .copied()
        .filter(|p| {
            output(Command::new("dpkg-query").args(["-W", "-f=${Status}", p]))
                .is_none_or(|s| !s.contains("install ok installed"))
        })
        .collect();
    apt_install(&missing)
}

/// `apt-get install`s `packages` (none: nothing to do), as root or through sudo.
fn apt_install(packages: &[&str]) -> Result<()> {
    if packages.is_empty() {
        return Ok(());
    }
    let root = output(Command::new("id").arg("-u")).as_deref() == Some("0");
    let apt = |args: &[&str]| {
        let mut cmd = if root {
            Command::new("apt-get")
        } else {
            Command::new("sudo")
        };
        if !root {
            cmd.arg("apt-get");
        }
        cmd.env("DEBIAN_FRONTEND", "noninteractive").args(args);
        cmd
    };
    exec(&mut apt(&["update", "-q"]))?;
    let mut install = apt(&["install", "-y", "-q"]);
    install.args(packages);
    exec(&mut install)
}

/// `BITCOIND` if set, else the cached build, else one on PATH, else build it from source.
fn bitcoind() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("BITCOIND").map(PathBuf::from) {
        if p.is_file() {
            return Ok(p);
        }
        bail!("BITCOIND={} does not exist", p.display());
    }
    let dir = cache_dir().join(format!("bitcoin-core-{KERNEL_SYS}-{KERNEL_SYS_VERSION}"));
    let cached = dir.join("bin").join("bitcoind");
    if cached.is_file() {
        return Ok(cached);
    }
    if let Some(p) = which("bitcoind") {
        return Ok(p);
    }
    build_bitcoind(&dir)?;
    Ok(cached)
}

fn build_bitcoind(dir: &Path) -> Result<()> {
    eprintln!("setup: building bitcoind from source (about 5-10 minutes, once)");
    let src = kernel_source()?;
    let build = dir.join("build");
    let mut configure = Command::new("cmake");
    configure.arg("-S").arg(&src).arg("-B").arg(&build).args([
        "-DCMAKE_BUILD_TYPE=Release",
        "-DBUILD_DAEMON=ON",
        "-DBUILD_CLI=ON",
        "-DENABLE_WALLET=OFF",
        "-DENABLE_IPC=OFF",
        "-DWITH_EMBEDDED_ASMAP=OFF",
        "-DBUILD_TESTS=OFF",
        "-DBUILD_BENCH=OFF",
        "-DBUILD_KERNEL_LIB=OFF",
        "-DBUILD_TX=OFF",
        "-DBUILD_UTIL=OFF",
        "-DBUILD_WALLET_TOOL=OFF",
        "-DBUILD_GUI=OFF",
        "-DBUILD_FUZZ_BINARY=OFF",
        "-DBUILD_UTIL_CHAINSTATE=OFF",
        "-DBUILD_BITCOIN_BIN=OFF",
        "-DWITH_ZMQ=OFF",
        "-DWITH_USDT=OFF",
    ]);
    exec(&mut configure)?;
    let jobs = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .to_string();
    exec(Command::new("cmake").arg("--build").arg(&build).args([
        "-j",
        &jobs,
        "--target",
        "bitcoind",
        "bitcoin-cli",
    ]))?;
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin)?;
    for name in ["bitcoind", "bitcoin-cli"] {
        std::fs::copy(build.join("bin").join(name), bin.join(name))
            .with_context(|| format!("copying {name}"))?;
    }
    // The build tree is large; the two binaries are all we keep.
    let _ = std::fs::remove_dir_all(&build);
    Ok(())
}

/// Fetches the pinned `libbitcoinkernel-sys` package with cargo and returns Core's source inside.
fn kernel_source() -> Result<PathBuf> {
    let fetch = cache_dir().join("kernel-fetch");
    std::fs::create_dir_all(fetch.join("src"))?;
    std::fs::write(
        fetch.join("Cargo.toml"),
        format!(
            "[package]\nname = \"kernel-fetch\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\n\
             [dependencies]\n{KERNEL_SYS} = \"={KERNEL_SYS_VERSION}\"\n\n[workspace]\n"
        ),
    )?;
    std::fs::write(fetch.join("src").join("main.rs"), "fn main() {}\n")?;
    exec(Command::new("cargo").arg("fetch").current_dir(&fetch))?;
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cargo")
        });
    let registry = cargo_home.join("registry").join("src");
    for index in std::fs::read_dir(&registry)? {
        let src = index?
            .path()
            .join(format!("{KERNEL_SYS}-{KERNEL_SYS_VERSION}"))
            .join("bitcoin");
        if src.join("CMakeLists.txt").is_file() {
            return Ok(src);
        }
    }
    bail!(
        "fetched {KERNEL_SYS} {KERNEL_SYS_VERSION} but found no Bitcoin Core source under {}",
        registry.display()
    )
}

/// The wasm-bindgen version pinned in Cargo.lock; the CLI must match it exactly.
fn locked_wasm_bindgen_version() -> Result<String> {
    let lock =
        std::fs::read_to_string(util::root().join("Cargo.lock")).context("reading Cargo.lock")?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == "name = \"wasm-bindgen\"" {
            if let Some(v) = lines.next().and_then(|l| l.strip_prefix("version = \"")) {
                return Ok(v.trim_end_matches('"').to_string());
            }
        }
    }
    bail!("Cargo.lock has no wasm-bindgen entry")
}

fn wasm_bindgen_cli() -> Result<()> {
    let want = locked_wasm_bindgen_version()?;
    let have = output(Command::new(tools_bin().join("wasm-bindgen")).arg("--version"));
    if have.is_some_and(|v| v.split_whitespace().nth(1) == Some(want.as_str())) {
        return Ok(());
    }
    cargo_install(&["wasm-bindgen-cli", "--version", &want], false)
}

fn trunk() -> Result<()> {
    let have = output(Command::new(tools_bin().join("trunk")).arg("--version"));
    if have.is_some_and(|v| {
        v.split_whitespace()
            .nth(1)
            .is_some_and(|v| v.starts_with("0.21."))
    }) {
        return Ok(());
    }
    // `--locked` first; registry snapshots can lag a pinned dependency, so retry without it.
    cargo_install(&["trunk", "--version", TRUNK_REQ], true)
        .or_else(|_| cargo_install(&["trunk", "--version", TRUNK_REQ], false))
}

/// The binaryen release `web/Trunk.toml` pins for `wasm-opt` (`wasm_opt = "version_N"`): N.
fn pinned_binaryen_version() -> Result<String> {
    let trunk_toml = std::fs::read_to_string(util::root().join("web").join("Trunk.toml"))
        .context("reading web/Trunk.toml")?;
    parse_wasm_opt_pin(&trunk_toml).context("web/Trunk.toml pins no `wasm_opt = \"version_N\"`")
}

fn parse_wasm_opt_pin(trunk_toml: &str) -> Option<String> {
    trunk_toml.lines().find_map(|l| {
        let (key, value) = l.split_once('=')?;
        let n = value.trim().strip_prefix("\"version_")?.strip_suffix('"')?;
        (key.trim() == "wasm_opt" && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .then(|| n.to_string())
    })
}

/// Binaryen's `wasm-opt` at the version Trunk is pinned to (Trunk runs it on release builds and
/// takes the one on PATH only at exactly that version). It comes from the npm registry's
/// `binaryen` package (binaryen compiled to wasm, run by Node.js), installed into the tools
/// directory like the cargo-installed tools.
fn wasm_opt() -> Result<()> {
    let want = pinned_binaryen_version()?;
    let have = output(Command::new(tools_bin().join("wasm-opt")).arg("--version"));
    // `wasm-opt version 132 (version_132)`, the line Trunk reads too.
    if have.is_some_and(|v| v.split_whitespace().nth(2) == Some(want.as_str())) {
        return Ok(());
    }
    // Node.js runs this wasm-opt; a machine without npm gets Debian's (one that has Node.js
    // from elsewhere keeps it: its npm is on PATH).
    if which("npm").is_none() {
        apt_install(&["nodejs", "npm"])?;
    }
    exec(
        Command::new("npm")
            .args(["install", "--global", "--no-fund", "--no-audit", "--prefix"])
            .arg(cache_dir().join("tools"))
            .arg(format!("binaryen@{want}.0.0")),
    )
}

fn cargo_install(args: &[&str], locked: bool) -> Result<()> {
    let mut cmd = Command::new("cargo");
    cmd.arg("install")
        .arg("--root")
        .arg(cache_dir().join("tools"))
        .args(args);
    if locked {
        cmd.arg("--locked");
    }
    exec(&mut cmd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wasm_opt_pin_is_read_from_trunk_toml() {
        let toml = "[build]\ndist = \"dist\"\n\n[tools]\nwasm_opt = \"version_132\"\n";
        assert_eq!(parse_wasm_opt_pin(toml).as_deref(), Some("132"));
        assert_eq!(parse_wasm_opt_pin("wasm_opt = \"132\"\n"), None);
        assert_eq!(parse_wasm_opt_pin("[tools]\n"), None);
    }

    #[test]
    fn the_project_pins_a_wasm_opt() {
        pinned_binaryen_version().expect("web/Trunk.toml pins wasm-opt");
    }
}
