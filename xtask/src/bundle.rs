//! `cargo xtask bundle-hash [--no-build]`: builds the wallet as it is served (release,
//! `wasm-release`) and prints the SHA-256 of every file in `web/dist`, then one hash of the
//! whole bundle. Whoever serves the page decides what code runs with the user's seed; these
//! hashes let a user compare the bundle they got with one built from the source.
//!
//! The lines are `sha256sum`'s (`<hex>  <path>`, paths sorted bytewise), and the bundle's hash
//! is the SHA-256 of those lines, so without this tool:
//! `cd web/dist && LC_ALL=C sha256sum * | sha256sum`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::util::root;
use crate::{setup, web};

/// Runs the command.
pub fn run(args: &[String]) -> Result<()> {
    let dist = match args.first().map(String::as_str) {
        None => web::build(&setup::run()?, true)?,
        Some("--no-build") => root().join("web").join("dist"),
        Some(other) => bail!("unknown option `{other}`; `cargo xtask bundle-hash [--no-build]`"),
    };
    let (lines, bundle) = hash_dir(&dist)?;
    print!("{lines}");
    println!("{bundle}  (the whole bundle: {})", dist.display());
    Ok(())
}

/// The `sha256sum` lines of every file under `dir` and the hash of those lines.
pub fn hash_dir(dir: &Path) -> Result<(String, String)> {
    let mut files = Vec::new();
    collect(dir, dir, &mut files)?;
    if files.is_empty() {
        bail!("{} holds no files; build the wallet first", dir.display());
    }
    files.sort();
    let mut lines = String::new();
    for name in &files {
        let bytes = std::fs::read(dir.join(name)).with_context(|| format!("reading {name}"))?;
        lines.push_str(&format!("{}  {name}\n", hex(&Sha256::digest(&bytes))));
    }
    let bundle = hex(&Sha256::digest(lines.as_bytes()));
    Ok((lines, bundle))
}

fn collect(base: &Path, dir: &Path, out: &mut Vec<String>) -> Result<()> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("no built wallet at {}", dir.display()))?;
    for entry in entries {
        let path: PathBuf = entry?.path();
        if path.is_dir() {
            collect(base, &path, out)?;
        } else {
            let rel = path.strip_prefix(base).expect("a path under its base");
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_sha256sums_and_the_bundle_hashes_them() {
        let dir = std::env::temp_dir().join(format!("bundle-hash-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("b.js"), b"").expect("write");
        std::fs::write(dir.join("a.html"), b"abc").expect("write");
        let (lines, bundle) = hash_dir(&dir).expect("hashes");
        std::fs::remove_dir_all(&dir).expect("clean up");
        assert_eq!(
            lines,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  a.html\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  b.js\n"
        );
        assert_eq!(bundle, hex(&Sha256::digest(lines.as_bytes())));
    }
}
