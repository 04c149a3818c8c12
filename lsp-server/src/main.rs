//! `lsp-server`: run a SuperScalar LSP.

use anyhow::Result;
use clap::Parser;
use lsp_server::config::LogFormat;
use lsp_server::Config;

#[tokio::main]
async fn main() -> Result<()> {
    let config = Config::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,lsp_server=debug".into());
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    match config.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    let mut running = lsp_server::start(config).await?;
    tokio::select! {
        res = &mut running.task => res??,
        _ = tokio::signal::ctrl_c() => {
            tracing::info!("shutting down");
            running.stop().await?;
        }
    }
    Ok(())
}
