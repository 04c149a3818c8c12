//! `watchtower`: a keyless SuperScalar watchtower (see `lsp_server::tower`).

use anyhow::Result;
use clap::Parser;
use lsp_server::tower::TowerConfig;

#[tokio::main]
async fn main() -> Result<()> {
    let config = TowerConfig::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,lsp_server=debug".into());
    tracing_subscriber::fmt().with_env_filter(filter).init();
    let mut running = lsp_server::tower::start(config).await?;
    tokio::select! {
        res = &mut running.task => res??,
        _ = tokio::signal::ctrl_c() => tracing::info!("shutting down"),
    }
    Ok(())
}
