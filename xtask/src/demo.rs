//! `cargo xtask demo`: the whole product on this machine, on 127.0.0.1, until Ctrl-C.
//!
//! Starts the devnet (bitcoind regtest + Esplora API), the LSP (SQLite in a data dir, serving the
//! built wallet, with its Lightning node), "the rest of the Lightning Network" (`ln-peer`: an
//! outside node with a channel to the LSP's and a page to make and pay invoices), a keyless
//! watchtower (the LSP's port + 10), prints the
//! URLs to open, and stops everything on Ctrl-C.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::util::{cargo, exec, root};
use crate::{setup, web};

struct Options {
    lsp_port: u16,
    esplora_port: u16,
    /// The LSP's Lightning node's port; the outside node's takes the next one, its page the
    /// one after.
    ln_port: u16,
    data_dir: PathBuf,
    automine_secs: u32,
    /// Passed to the LSP's flags of the same names; `None` keeps the LSP's default.
    factory_size: Option<u32>,
    min_clients: Option<u32>,
    gather_secs: Option<u32>,
    /// Passed to `--factory-active-blocks` and `--factory-dying-blocks`.
    active_blocks: Option<u32>,
    dying_blocks: Option<u32>,
    /// Passed to `--ladder-interval`.
    ladder_interval: Option<u32>,
}

/// `--ladder`: a factory's whole life in minutes at a block every 10 s (3 minutes active, then
/// 2 minutes to move, a new factory every 30 s), so a room watches factories be born, age,
/// move and close.
const LADDER: (u32, u32, u32) = (18, 12, 3);

const OPTIONS: &str = "--port, --esplora-port, --ln-port, --data-dir, --automine, \
     --factory-size, --min-clients, --gather-secs, --active-blocks, --dying-blocks, --ladder-interval, --ladder";

fn parse(args: &[String]) -> Result<Options> {
    let mut o = Options {
        lsp_port: 8800,
        esplora_port: 8801,
        ln_port: 8802,
        data_dir: root().join("target").join("demo"),
        automine_secs: 10,
        factory_size: None,
        min_clients: None,
        gather_secs: None,
        active_blocks: None,
        dying_blocks: None,
        ladder_interval: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().context(format!("{a} needs a value"));
        match a.as_str() {
            "--port" => o.lsp_port = val()?.parse()?,
            "--esplora-port" => o.esplora_port = val()?.parse()?,
            "--ln-port" => o.ln_port = val()?.parse()?,
            "--data-dir" => o.data_dir = val()?.into(),
            "--automine" => o.automine_secs = val()?.parse()?,
            "--factory-size" => o.factory_size = Some(val()?.parse()?),
            "--min-clients" => o.min_clients = Some(val()?.parse()?),
            "--gather-secs" => o.gather_secs = Some(val()?.parse()?),
            "--active-blocks" => o.active_blocks = Some(val()?.parse()?),
            "--dying-blocks" => o.dying_blocks = Some(val()?.parse()?),
            "--ladder-interval" => o.ladder_interval = Some(val()?.parse()?),
            "--ladder" => {
                o.active_blocks = Some(LADDER.0);
                o.dying_blocks = Some(LADDER.1);
                o.ladder_interval = Some(LADDER.2);
            }
            other => bail!("unknown demo option `{other}` (known: {OPTIONS})"),
        }
    }
    Ok(o)
}

/// Children are killed when this guard drops, whatever path leaves `run`.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in self.0.iter_mut().rev() {
            // SIGINT (as Ctrl-C would) first, so bitcoind and the LSP shut down cleanly.
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs the demo until Ctrl-C.
pub fn run(args: &[String]) -> Result<()> {
    let opts = parse(args)?;
    let tools = setup::run()?;
    let dist = web::build(&tools, false)?;
    exec(cargo().args([
        "build",
        "-p",
        "superscalar-devnet",
        "-p",
        "lsp-server",
        "--bins",
    ]))?;
    std::fs::create_dir_all(&opts.data_dir)?;

    let (stop_tx, stop_rx) = mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = stop_tx.send(());
    })?;

    let bin = root().join("target").join("debug");
    let mut children = Children(Vec::new());
    let esplora_url = format!("http://127.0.0.1:{}", opts.esplora_port);
    let mut devnet = Command::new(bin.join("devnet"));
    tools.apply(&mut devnet);
    devnet
        .args(["--esplora-port", &opts.esplora_port.to_string()])
        .args(["--automine", &opts.automine_secs.to_string()])
        .arg("--datadir")
        .arg(opts.data_dir.join("bitcoind"));
    children
        .0
        .push(devnet.spawn().context("starting the devnet")?);
    wait_for_port(opts.esplora_port, Duration::from_secs(120))?;

    let mut lsp = Command::new(bin.join("lsp-server"));
    lsp.args(["--network", "regtest"])
        .args(["--listen", &format!("127.0.0.1:{}", opts.lsp_port)])
        .args(["--esplora-url", &esplora_url])
        .args(["--regtest-faucet", &format!("{esplora_url}/devnet/faucet")])
        .arg("--data-dir")
        .arg(opts.data_dir.join("lsp"))
        .arg("--wallet-dir")
        .arg(&dist)
        .args(["--ln-listen", &format!("127.0.0.1:{}", opts.ln_port)]);
    for (flag, value) in [
        ("--factory-size", opts.factory_size),
        ("--min-clients", opts.min_clients),
        ("--gather-secs", opts.gather_secs),
        ("--factory-active-blocks", opts.active_blocks),
        ("--factory-dying-blocks", opts.dying_blocks),
        ("--ladder-interval", opts.ladder_interval),
    ] {
        if let Some(v) = value {
            lsp.args([flag, &v.to_string()]);
        }
    }
    children.0.push(lsp.spawn().context("starting the LSP")?);
    wait_for_port(opts.lsp_port, Duration::from_secs(30))?;

    let tower_port = opts.lsp_port + 10;
    let mut tower = Command::new(bin.join("watchtower"));
    tower
        .args(["--esplora-url", &esplora_url])
        .args(["--listen", &format!("127.0.0.1:{tower_port}")])
        .arg("--data-dir")
        .arg(opts.data_dir.join("watchtower"));
    children
        .0
        .push(tower.spawn().context("starting the watchtower")?);
    wait_for_port(tower_port, Duration::from_secs(30))?;

    let peer_http = opts.ln_port + 2;
    let mut peer = Command::new(bin.join("ln-peer"));
    peer.args(["--esplora-url", &esplora_url])
        .args(["--lsp-url", &format!("http://127.0.0.1:{}", opts.lsp_port)])
        .arg("--lsp-admin-token")
        .arg(opts.data_dir.join("lsp").join("admin.token"))
        .args(["--listen", &format!("127.0.0.1:{}", opts.ln_port + 1)])
        .args(["--http", &format!("127.0.0.1:{peer_http}")])
        .arg("--data-dir")
        .arg(opts.data_dir.join("ln-peer"));
    children.0.push(
        peer.spawn()
            .context("starting the outside Lightning node")?,
    );
    // It opens its channel first (a few blocks), then serves its page.
    wait_for_port(peer_http, Duration::from_secs(120))?;

    println!();
    println!("  SuperScalar demo is running.");
    // The wallet reads the chain from the demo's default devnet port by itself; another port
    // goes in its address.
    let chain_param = if opts.esplora_port == 8801 {
        String::new()
    } else {
        format!("?esplora={esplora_url}")
    };
    println!(
        "  Open the wallet:   http://127.0.0.1:{}/{chain_param}",
        opts.lsp_port
    );
    println!(
        "  LSP terms:         http://127.0.0.1:{}/.well-known/superscalar.json",
        opts.lsp_port
    );
    println!(
        "  Esplora (regtest): {esplora_url}   (mines a block every {}s)",
        opts.automine_secs
    );
    println!(
        "  The Lightning Network (an outside node with a channel to the LSP's): \
         http://127.0.0.1:{peer_http}/   (make invoices for the wallets to pay, pay theirs)"
    );
    let start = match opts.ladder_interval {
        Some(b) => format!("at every block that is a multiple of {b}"),
        None => format!("after {}s of gathering", opts.gather_secs.unwrap_or(60)),
    };
    println!(
        "  Factories:         {} members, starting with at least {} {start}",
        opts.factory_size.unwrap_or(8),
        opts.min_clients.unwrap_or(2),
    );
    if let (Some(active), Some(dying)) = (opts.active_blocks, opts.dying_blocks) {
        println!(
            "  Factory life:      {active} blocks active, then {dying} blocks to move (about {} \
             and {} minutes)",
            active * opts.automine_secs / 60,
            dying * opts.automine_secs / 60
        );
    }
    let token =
        std::fs::read_to_string(opts.data_dir.join("lsp").join("admin.token")).unwrap_or_default();
    println!(
        "  Factory ladder:    http://127.0.0.1:{}/admin/ladder/view#token={}   (the operator's \
         live view)",
        opts.lsp_port,
        token.trim()
    );
    println!(
        "  Watchtower:        http://127.0.0.1:{tower_port}   (name it in a wallet's settings: it \
         answers for that wallet while its page is closed)"
    );
    println!("  Data:              {}", opts.data_dir.display());
    println!("  Press Ctrl-C to stop everything.");
    println!();

    loop {
        if stop_rx.recv_timeout(Duration::from_millis(500)).is_ok() {
            eprintln!("stopping…");
            return Ok(());
        }
        for child in children.0.iter_mut() {
            if let Some(status) = child.try_wait()? {
                bail!("a demo process exited early ({status}); see its output above");
            }
        }
    }
}

fn wait_for_port(port: u16, limit: Duration) -> Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!("nothing listens on 127.0.0.1:{port} after {limit:?}")
}
