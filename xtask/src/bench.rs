//! `cargo xtask bench`: prints the figures the README reports.

use anyhow::{bail, Result};

use crate::util::output;
use crate::{setup, web};

/// `bench` runs everything; `bench size` only the wallet bundle size.
pub fn run(args: &[String]) -> Result<()> {
    let what = args.first().map(String::as_str).unwrap_or("all");
    match what {
        "all" | "size" => bundle_size(),
        other => bail!("unknown bench `{other}` (known: all, size)"),
    }
}

fn bundle_size() -> Result<()> {
    let tools = setup::run()?;
    let dist = web::build(&tools, true)?;
    println!("\n== wallet bundle (release) ==");
    for entry in std::fs::read_dir(&dist)? {
        let path = entry?.path();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if !matches!(ext, "wasm" | "js") {
            continue;
        }
        let raw = std::fs::metadata(&path)?.len();
        let gz = output(
            std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("gzip -9 -c '{}' | wc -c", path.display())),
        )
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0);
        println!(
            "{:<12} {:>8.1} KiB raw {:>8.1} KiB gzipped",
            ext,
            raw as f64 / 1024.0,
            gz as f64 / 1024.0
        );
    }
    Ok(())
}
