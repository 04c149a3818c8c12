//! `cargo xtask bench [all|factory|swarm|payments|outside|migrate|size] [N...]`: prints the
//! figures the README reports.
//!
//! `factory` runs the one-process factory benchmark (`shared/benches/factory.rs`) once per N, in
//! a fresh process each so peak memory is that N's alone; `size` builds the wallet in release
//! mode and prints its bundle size; `swarm` runs a real LSP process and N native clients over
//! real WebSockets against the devnet (`lsp-server/benches/swarm.rs`); `payments` and
//! `migrate` run N native wallets through a real LSP process; `outside` runs them against an
//! outside Lightning node (`ln-peer`) through the LSP's node.
//!
//! Each bench writes its README table (`crate::readme`) from the figures it just printed, so no
//! figure of ours in the README is typed by hand. The C reference's figures beside them are the
//! published runs of the handbook's section 9, kept here as constants.

use std::collections::BTreeMap;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::util::{cargo, exec, output};
use crate::{setup, web};

const FACTORY_SIZES: &[&str] = &["8", "127", "1024"];
const SWARM_SIZES: &[&str] = &["8", "32", "127", "1024"];
const PAYMENT_SIZES: &[&str] = &["2", "32", "127"];
const MIGRATE_SIZES: &[&str] = &["8", "127"];
const OUTSIDE_SIZES: &[&str] = &["2", "8"];

/// The C reference's one-process runs (N, wall, peak memory).
const C_FACTORY: &[(&str, &str, &str)] =
    &[("127", "0.23 s", "20.5 MB"), ("1024", "2.16 s", "114 MB")];
/// The C reference's networked ceremony (N, what it measured).
const C_SWARM: &[(&str, &str)] = &[
    ("8", "0.55 s"),
    ("32", "2.4 s"),
    ("127", "21.6 s, LSP 40–49 MB, ~36 MB per client"),
    ("1024", "cannot run (refuses N > 127)"),
];

/// The C reference's figure for `n`, or a dash.
fn c_figure<'a>(table: &'a [(&str, &'a str)], n: &str) -> &'a str {
    table.iter().find(|(k, _)| *k == n).map_or("—", |(_, v)| v)
}

/// One bench run's `key=value` figures.
type Row = BTreeMap<String, String>;

/// A README table of `rows`: the `header`, then per row the `(key, unit)` cells of `cells`
/// (the value, a space and the unit, or the value alone when the unit is empty; `?` when the
/// run printed no such key), then the cells `more` adds (the C reference's figures).
fn md_table(
    header: &[&str],
    rows: &[Row],
    cells: &[(&str, &str)],
    more: impl Fn(&Row) -> Vec<String>,
) -> String {
    let mut table = format!(
        "| {} |\n|{}\n",
        header.join(" | "),
        "---|".repeat(header.len())
    );
    for r in rows {
        let mut line: Vec<String> = cells
            .iter()
            .map(|(key, unit)| {
                let value = r.get(*key).map_or("?", String::as_str);
                if unit.is_empty() {
                    value.to_string()
                } else {
                    format!("{value} {unit}")
                }
            })
            .collect();
        line.extend(more(r));
        table += &format!("| {} |\n", line.join(" | "));
    }
    table
}

/// Runs the benches named in `args` (default: all).
pub fn run(args: &[String]) -> Result<()> {
    let what = args.first().map(String::as_str).unwrap_or("all");
    let sizes = |default: &[&'static str]| -> Vec<String> {
        match args.get(1..) {
            Some(rest) if !rest.is_empty() => rest.to_vec(),
            _ => default.iter().map(|s| s.to_string()).collect(),
        }
    };
    match what {
        "all" => {
            factory(&sizes(FACTORY_SIZES))?;
            swarm(&sizes(SWARM_SIZES))?;
            payments(&sizes(PAYMENT_SIZES))?;
            outside(&sizes(OUTSIDE_SIZES))?;
            migrate(&sizes(MIGRATE_SIZES))?;
            browser()?;
            bundle_size()
        }
        "factory" => factory(&sizes(FACTORY_SIZES)),
        "swarm" => swarm(&sizes(SWARM_SIZES)),
        "payments" => payments(&sizes(PAYMENT_SIZES)),
        "outside" => outside(&sizes(OUTSIDE_SIZES)),
        "migrate" => migrate(&sizes(MIGRATE_SIZES)),
        "browser" => browser(),
        "size" => bundle_size(),
        other => {
            bail!("unknown bench `{other}` (known: all, factory, swarm, payments, outside, migrate, browser, size)")
        }
    }
}

/// Runs one bench binary once per N (a fresh process each) and parses its last `key=value` line.
/// A bench's `key=value` line as a row.
fn parse_row(line: &str) -> Row {
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn runs(bench: &[&str], sizes: &[String], tools: Option<&setup::Tools>) -> Result<Vec<Row>> {
    exec(cargo().args(bench).arg("--no-run"))?;
    let mut rows = Vec::new();
    for n in sizes {
        let mut cmd = cargo();
        if let Some(tools) = tools {
            tools.apply(&mut cmd);
        }
        let out = output(cmd.args(bench).args(["--", n]))
            .with_context(|| format!("bench {bench:?} for N = {n} failed"))?;
        rows.push(parse_row(out.lines().last().unwrap_or_default()));
    }
    Ok(rows)
}

fn swarm(sizes: &[String]) -> Result<()> {
    let tools = setup::run()?;
    let rows = runs(
        &["bench", "-p", "lsp-server", "--bench", "swarm"],
        sizes,
        Some(&tools),
    )?;
    println!("\n== networked ceremony: LSP process + N native clients over WebSockets, regtest ==");
    println!(
        "{:>6} {:>12} {:>12} {:>14} {:>10} {:>10}",
        "N", "ceremony s", "LSP peak MB", "per-client MB", "path KB", "open"
    );
    for r in &rows {
        let g = |k: &str| r.get(k).map(String::as_str).unwrap_or("?");
        println!(
            "{:>6} {:>12} {:>12} {:>14} {:>10} {:>10}",
            g("n"),
            g("ceremony_s"),
            g("lsp_peak_mb"),
            g("client_rss_mb"),
            g("path_kb"),
            g("open")
        );
    }
    println!("(first join to the last client holding its verified, stored path; no block waits)");
    let table = md_table(
        &[
            "N",
            "ours: ceremony",
            "ours: LSP peak",
            "ours: per client",
            "ours: client's stored path",
            "C reference (networked)",
        ],
        &rows,
        &[
            ("n", ""),
            ("ceremony_s", "s"),
            ("lsp_peak_mb", "MB"),
            ("client_rss_mb", "MB"),
            ("path_kb", "KB"),
        ],
        |r| vec![c_figure(C_SWARM, r.get("n").map_or("?", String::as_str)).to_string()],
    );
    crate::readme::write_section("swarm", &table)
}

fn factory(sizes: &[String]) -> Result<()> {
    let bench = [
        "bench",
        "-p",
        "superscalar-shared",
        "--features",
        "test-utils",
        "--bench",
        "factory",
    ];
    let rows = runs(&bench, sizes, None)?;
    println!("\n== factory, one process holding every key (real MuSig2 via libsecp256k1's musig module) ==");
    println!(
        "{:>6} {:>9} {:>9} {:>9} {:>9} {:>8} {:>10} {:>11} {:>10} {:>9} {:>10}",
        "N",
        "build s",
        "sign s",
        "close s",
        "total s",
        "peak MB",
        "sessions",
        "tree vB",
        "client KB",
        "exit txs",
        "exit vB"
    );
    for r in &rows {
        let g = |k: &str| r.get(k).map(String::as_str).unwrap_or("?");
        let kb = g("path_bytes")
            .parse::<f64>()
            .map_or("?".into(), |b| format!("{:.1}", b / 1024.0));
        println!(
            "{:>6} {:>9} {:>9} {:>9} {:>9} {:>8} {:>10} {:>11} {:>10} {:>9} {:>10}",
            g("n"),
            g("build_s"),
            g("sign_s"),
            g("close_s"),
            g("total_s"),
            g("peak_rss_mb"),
            g("signer_sessions"),
            g("tree_vbytes"),
            kb,
            g("exit_txs"),
            g("exit_vbytes")
        );
    }
    println!(
        "(client KB: one client's stored, signed path as JSON; exit: worst case, mainnet params)"
    );
    crate::readme::write_section("factory", &factory_table(&rows))
}

/// The README's factory table and its detail line, from the bench's rows.
fn factory_table(rows: &[Row]) -> String {
    let c_wall: Vec<(&str, &str)> = C_FACTORY.iter().map(|(n, w, _)| (*n, *w)).collect();
    let c_mem: Vec<(&str, &str)> = C_FACTORY.iter().map(|(n, _, m)| (*n, *m)).collect();
    let get = |r: &Row, k: &str| r.get(k).cloned().unwrap_or("?".into());
    let mut table = md_table(
        &[
            "N",
            "ours: wall",
            "ours: peak memory",
            "C reference: wall",
            "C reference: memory",
        ],
        rows,
        &[("n", ""), ("total_s", "s"), ("peak_rss_mb", "MB")],
        |r| {
            let n = get(r, "n");
            vec![
                c_figure(&c_wall, &n).to_string(),
                c_figure(&c_mem, &n).to_string(),
            ]
        },
    );
    let all = |f: &dyn Fn(&Row) -> String| rows.iter().map(f).collect::<Vec<_>>().join(" / ");
    let num = |r: &Row, k: &str| {
        r.get(k)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    table += &format!(
        "\nDetail (N = {}): tree build {} s; signing {} s for {} signer-sessions; cooperative \
         close {} s. Tree size {} vbytes. One client's stored, signed path is {} KB (JSON), and \
         checking a proposal costs a client {} ms and signing its {} jobs {} ms. Worst-case unilateral exit on mainnet \
         parameters: {} transactions, {} vbytes, {} blocks of relative locks.\n",
        all(&|r| get(r, "n")),
        all(&|r| get(r, "build_s")),
        all(&|r| get(r, "sign_s")),
        all(&|r| thousands(num(r, "signer_sessions") as u64)),
        all(&|r| get(r, "close_s")),
        all(&|r| thousands(num(r, "tree_vbytes") as u64)),
        all(&|r| format!("{:.1}", num(r, "path_bytes") / 1024.0)),
        all(&|r| format!("{:.0}", num(r, "client_check_s") * 1000.0)),
        all(&|r| get(r, "client_jobs")),
        all(&|r| format!("{:.0}", num(r, "client_sign_s") * 1000.0)),
        all(&|r| get(r, "exit_txs")),
        all(&|r| thousands(num(r, "exit_vbytes") as u64)),
        all(&|r| get(r, "exit_blocks")),
    );
    table
}

fn payments(sizes: &[String]) -> Result<()> {
    let tools = setup::run()?;
    let rows = runs(
        &["bench", "-p", "lsp-server", "--bench", "payments"],
        sizes,
        Some(&tools),
    )?;
    println!("\n== payments: N wallets paying each other at once through a real LSP process ==");
    println!(
        "{:>6} {:>10} {:>10} {:>10} {:>10} {:>12} {:>12} {:>14} {:>16} {:>12}",
        "N",
        "payments",
        "per s",
        "p50 ms",
        "p99 ms",
        "LSP peak MB",
        "LSP CPU ms",
        "per LSP core/s",
        "stored changes",
        "restart ms"
    );
    for r in &rows {
        let g = |k: &str| r.get(k).map(String::as_str).unwrap_or("?");
        println!(
            "{:>6} {:>10} {:>10} {:>10} {:>10} {:>12} {:>12} {:>14} {:>16} {:>12}",
            g("n"),
            g("payments"),
            g("per_s"),
            g("p50_ms"),
            g("p99_ms"),
            g("lsp_peak_mb"),
            g("lsp_cpu_ms"),
            g("lsp_core_per_s"),
            g("stored_changes"),
            g("restart_ms")
        );
    }
    println!("(latency: the payer's pay call, from offering its HTLC to holding the preimage)");
    let table = md_table(
        &[
            "N",
            "payments",
            "payments/s",
            "p50",
            "p99",
            "LSP peak",
            "LSP CPU per payment",
            "payments/s per LSP core",
            "LSP restart (stored changes)",
        ],
        &rows,
        &[
            ("n", ""),
            ("payments", ""),
            ("per_s", ""),
            ("p50_ms", "ms"),
            ("p99_ms", "ms"),
            ("lsp_peak_mb", "MB"),
            ("lsp_cpu_ms", "ms"),
            ("lsp_core_per_s", ""),
        ],
        |r| {
            let g = |k: &str| r.get(k).map(String::as_str).unwrap_or("?");
            let changes = g("stored_changes").parse().map_or("?".into(), thousands);
            vec![format!(
                "{} ms ({changes}, {} MB)",
                g("restart_ms"),
                g("stored_changes_mb")
            )]
        },
    );
    crate::readme::write_section("payments", &table)
}

/// N wallets paying an outside Lightning node and paid by it (`lsp-server/benches/outside.rs`);
/// writes the README's `outside` table.
fn outside(sizes: &[String]) -> Result<()> {
    let tools = setup::run()?;
    let rows = runs(
        &["bench", "-p", "lsp-server", "--bench", "outside"],
        sizes,
        Some(&tools),
    )?;
    println!("\n== outside payments: N wallets and an outside LDK node, through the LSP's node ==");
    println!(
        "{:>6} {:>6} {:>10} {:>10} {:>6} {:>10} {:>10}",
        "N", "out", "out per s", "out p50", "in", "in per s", "in p50"
    );
    for r in &rows {
        let g = |k: &str| r.get(k).map(String::as_str).unwrap_or("?");
        println!(
            "{:>6} {:>6} {:>10} {:>10} {:>6} {:>10} {:>10}",
            g("n"),
            g("out"),
            g("out_per_s"),
            g("out_p50_ms"),
            g("in"),
            g("in_per_s"),
            g("in_p50_ms")
        );
    }
    let table = md_table(
        &[
            "N", "out", "out/s", "out p50", "in", "in/s", "in p50", "LSP peak",
        ],
        &rows,
        &[
            ("n", ""),
            ("out", ""),
            ("out_per_s", ""),
            ("out_p50_ms", "ms"),
            ("in", ""),
            ("in_per_s", ""),
            ("in_p50_ms", "ms"),
            ("lsp_peak_mb", "MB"),
        ],
        |_| Vec::new(),
    );
    crate::readme::write_section("outside", &table)
}

/// N wallets moving from a dying factory into a new one (`lsp-server/benches/migrate.rs`);
/// writes the README's `migrate` table.
fn migrate(sizes: &[String]) -> Result<()> {
    let tools = setup::run()?;
    let rows = runs(
        &["bench", "-p", "lsp-server", "--bench", "migrate"],
        sizes,
        Some(&tools),
    )?;
    println!("\n== migration: N wallets move from a dying factory into a new one ==");
    for r in &rows {
        let g = |k: &str| r.get(k).map(String::as_str).unwrap_or("?");
        println!(
            "n={} join_s={} move_s={} close_s={} lsp_peak_mb={}",
            g("n"),
            g("join_s"),
            g("move_s"),
            g("close_s"),
            g("lsp_peak_mb")
        );
    }
    let table = md_table(
        &[
            "N",
            "new factory's ceremony",
            "every balance moved, keys released",
            "old factory's close seen",
            "LSP peak",
        ],
        &rows,
        &[
            ("n", ""),
            ("join_s", "s"),
            ("move_s", "s"),
            ("close_s", "s"),
            ("lsp_peak_mb", "MB"),
        ],
        |_| Vec::new(),
    );
    crate::readme::write_section("migrate", &table)
}

/// One client's check and signing of a 127- and a 1,024-client proposal in headless Chromium
/// (the wallet's ignored wasm test `browser_client_work`, release build) beside the same code
/// natively (the factory bench's `client_check_s` and `client_sign_s`).
fn browser() -> Result<()> {
    let tools = setup::run()?;
    let mut cmd = cargo();
    tools.apply(&mut cmd);
    cmd.args([
        "test",
        "--release",
        "--target",
        "wasm32-unknown-unknown",
        "-p",
        "superscalar-wallet",
        "--lib",
        "--",
        "--include-ignored",
        "--nocapture",
        "browser_client_work",
    ]);
    let out = output(&mut cmd).context("the browser bench failed")?;
    let browser: Vec<Row> = out
        .lines()
        .filter_map(|l| l.find("bench=browser").map(|i| parse_row(&l[i..])))
        .collect();
    if browser.is_empty() {
        bail!("the browser bench printed no `bench=browser` line:\n{out}");
    }
    let sizes: Vec<String> = browser.iter().filter_map(|r| r.get("n").cloned()).collect();
    let factory_bench = [
        "bench",
        "-p",
        "superscalar-shared",
        "--features",
        "test-utils",
        "--bench",
        "factory",
    ];
    let native = runs(&factory_bench, &sizes, None)?;
    println!("\n== one client's check and signing: Chromium (wasm) beside native ==");
    println!(
        "{:>6} {:>6} {:>14} {:>14} {:>14} {:>14}",
        "N", "jobs", "wasm check ms", "wasm sign ms", "native check", "native sign"
    );
    let ms = |r: &Row, k: &str| {
        r.get(k)
            .and_then(|v| v.parse::<f64>().ok())
            .map_or("?".to_string(), |s| format!("{:.0}", s * 1000.0))
    };
    let mut rows = Vec::new();
    for (b, nat) in browser.iter().zip(&native) {
        let g = |k: &str| b.get(k).cloned().unwrap_or("?".into());
        let row: Row = [
            ("n", g("n")),
            ("jobs", g("jobs")),
            ("wasm_check_ms", g("check_ms")),
            ("wasm_sign_ms", g("sign_ms")),
            ("native_check_ms", ms(nat, "client_check_s")),
            ("native_sign_ms", ms(nat, "client_sign_s")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        println!(
            "{:>6} {:>6} {:>14} {:>14} {:>14} {:>14}",
            row["n"],
            row["jobs"],
            row["wasm_check_ms"],
            row["wasm_sign_ms"],
            row["native_check_ms"],
            row["native_sign_ms"]
        );
        rows.push(row);
    }
    let table = md_table(
        &[
            "N",
            "jobs",
            "Chromium: check",
            "Chromium: sign",
            "native: check",
            "native: sign",
        ],
        &rows,
        &[
            ("n", ""),
            ("jobs", ""),
            ("wasm_check_ms", "ms"),
            ("wasm_sign_ms", "ms"),
            ("native_check_ms", "ms"),
            ("native_sign_ms", "ms"),
        ],
        |_| Vec::new(),
    );
    crate::readme::write_section("browser", &table)
}

fn bundle_size() -> Result<()> {
    let tools = setup::run()?;
    let dist = web::build(&tools, true)?;
    println!("\n== wallet bundle (release) ==");
    let mut rows = Vec::new();
    for entry in std::fs::read_dir(&dist)? {
        let path = entry?.path();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if !matches!(ext, "wasm" | "js") {
            continue;
        }
        let raw = std::fs::metadata(&path)?.len();
        let gz = output(
            Command::new("sh")
                .arg("-c")
                .arg(format!("gzip -9 -c '{}' | wc -c", path.display())),
        )
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0);
        println!(
            "{:<6} {:>8.1} KiB raw {:>8.1} KiB gzipped",
            ext,
            raw as f64 / 1024.0,
            gz as f64 / 1024.0
        );
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let (label, key) = match (ext, name) {
            (_, "sw.js") => ("service worker (js)", "sw"),
            ("wasm", _) => ("wallet (wasm)", "wasm"),
            _ => ("glue (js)", "js"),
        };
        rows.push((label, key, raw.div_ceil(1024), gz.div_ceil(1024)));
    }
    rows.sort_by_key(|(_, _, raw, _)| std::cmp::Reverse(*raw)); // the wasm first
    let mut table = String::from("| file | raw | gzipped |\n|---|---|---|\n");
    for (label, _, raw, gz) in &rows {
        table += &format!(
            "| {label} | {} KiB | {} KiB |\n",
            thousands(*raw),
            thousands(*gz)
        );
    }
    crate::readme::write_section("size", &table)?;
    let last: Vec<String> = rows
        .iter()
        .map(|(_, key, raw, gz)| format!("{key}_raw_kib={raw} {key}_gzip_kib={gz}"))
        .collect();
    println!("bench=size {}", last.join(" "));
    Ok(())
}

/// `1234567` → `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_readme_table_has_the_header_units_and_extra_cells() {
        let row: Row = [("n", "8"), ("s", "0.4"), ("mb", "19.8")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let table = md_table(
            &["N", "time", "memory", "C"],
            &[row],
            &[("n", ""), ("s", "s"), ("mb", "MB")],
            |_| vec!["0.55 s".into()],
        );
        assert_eq!(
            table,
            "| N | time | memory | C |\n|---|---|---|---|\n| 8 | 0.4 s | 19.8 MB | 0.55 s |\n"
        );
        let missing = md_table(&["N", "x"], &[Row::new()], &[("n", ""), ("x", "s")], |_| {
            Vec::new()
        });
        assert!(missing.ends_with("| ? | ? s |\n"), "{missing}");
    }
}
