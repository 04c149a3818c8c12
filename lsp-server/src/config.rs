//! Server configuration, from flags or environment variables.

use std::net::SocketAddr;
use std::path::PathBuf;

use bitcoin::Network;
use clap::Parser;

/// The LSP's configuration. Every flag also reads an `LSP_*` environment variable.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "lsp-server",
    about = "SuperScalar LSP: factories for browser wallets"
)]
pub struct Config {
    /// Network: regtest, signet, testnet4 or bitcoin (mainnet also needs --allow-mainnet).
    #[arg(long, env = "LSP_NETWORK", default_value = "regtest")]
    pub network: Network,
    /// Required to run on mainnet, where real money is at stake.
    #[arg(long, env = "LSP_ALLOW_MAINNET")]
    pub allow_mainnet: bool,
    /// Esplora REST endpoint the LSP reads the chain from and broadcasts through.
    #[arg(long, env = "LSP_ESPLORA_URL")]
    pub esplora_url: String,
    /// Esplora endpoint advertised to wallets in the terms (defaults to --esplora-url).
    #[arg(long, env = "LSP_PUBLIC_ESPLORA_URL")]
    pub public_esplora_url: Option<String>,
    /// Address to listen on (HTTP and WebSocket).
    #[arg(long, env = "LSP_LISTEN", default_value = "127.0.0.1:8800")]
    pub listen: SocketAddr,
    /// Directory for the LSP's key and SQLite database.
    #[arg(long, env = "LSP_DATA_DIR", default_value = "lsp-data")]
    pub data_dir: PathBuf,
    /// Directory of the built browser wallet to serve at `/` (optional).
    #[arg(long, env = "LSP_WALLET_DIR")]
    pub wallet_dir: Option<PathBuf>,
    /// Name shown to users in the terms.
    #[arg(long, env = "LSP_NAME", default_value = "SuperScalar LSP")]
    pub name: String,
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Mainnet without the explicit opt-in.
    #[error("refusing to run on mainnet without --allow-mainnet: real funds are at stake")]
    MainnetNotAllowed,
}

impl Config {
    /// Checks combinations clap cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.network == Network::Bitcoin && !self.allow_mainnet {
            return Err(ConfigError::MainnetNotAllowed);
        }
        Ok(())
    }

    /// The Esplora URL wallets are told about.
    pub fn advertised_esplora_url(&self) -> &str {
        self.public_esplora_url
            .as_deref()
            .unwrap_or(&self.esplora_url)
    }
}
