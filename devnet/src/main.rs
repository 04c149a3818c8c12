//! `devnet`: runs a regtest bitcoind with an Esplora API until Ctrl-C (or SIGTERM), for the
//! demo and workshops.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use devnet::{Devnet, DevnetConfig};

/// A real bitcoind on regtest plus an Esplora REST API on 127.0.0.1.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Port for the Esplora API (default: a free port).
    #[arg(long, env = "DEVNET_ESPLORA_PORT")]
    esplora_port: Option<u16>,
    /// Port for bitcoind's RPC (default: a free port).
    #[arg(long, env = "DEVNET_RPC_PORT")]
    rpc_port: Option<u16>,
    /// Keep the chain in this directory across runs (default: a temporary directory).
    #[arg(long, env = "DEVNET_DATADIR")]
    datadir: Option<PathBuf>,
    /// Mine a block every SECS seconds (default: only when asked).
    #[arg(long, value_name = "SECS")]
    automine: Option<u64>,
    /// The bitcoind binary (default: $BITCOIND, the `cargo xtask setup` cache, or PATH).
    #[arg(long)]
    bitcoind: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let config = DevnetConfig {
        esplora_port: args.esplora_port,
        rpc_port: args.rpc_port,
        datadir: args.datadir,
        bitcoind: args.bitcoind,
        automine: args.automine.filter(|s| *s > 0).map(Duration::from_secs),
        ..DevnetConfig::default()
    };
    let devnet = Devnet::start(config)
        .await
        .context("could not start the devnet")?;
    let (user, password) = devnet.rpc().credentials();
    println!("Esplora API: {}", devnet.esplora_url());
    println!(
        "bitcoind RPC: {} (user {user}, password {password})",
        devnet.rpc().url()
    );
    println!(
        "faucet:      POST {}/devnet/faucet {{\"address\":\"bcrt1...\",\"sats\":100000}}",
        devnet.esplora_url()
    );
    println!(
        "mine:        POST {}/devnet/mine {{\"blocks\":1}}",
        devnet.esplora_url()
    );
    if let Some(dir) = devnet.datadir() {
        println!("datadir:     {}", dir.display());
    }
    println!("Ctrl-C stops it.");

    shutdown_signal().await;
    println!("stopping...");
    devnet.shutdown().await.context("could not stop cleanly")?;
    Ok(())
}

/// Resolves on Ctrl-C, or on SIGTERM on Unix.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
