//! Shared setup for the LSP's integration tests: a devnet and an LSP on free loopback ports.

#![allow(dead_code)]

use std::path::PathBuf;

use devnet::{Devnet, DevnetConfig};
use lsp_server::{Config, Running};

/// A devnet with an LSP in front of it. Dropping it stops both.
pub struct Stack {
    pub devnet: Devnet,
    pub lsp: Running,
    pub data_dir: tempfile::TempDir,
}

impl Stack {
    pub fn http_url(&self) -> String {
        format!("http://{}", self.lsp.addr)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.lsp.addr)
    }
}

/// Starts a devnet and an LSP serving `wallet_dir` (if any).
pub async fn start(wallet_dir: Option<PathBuf>) -> Stack {
    let devnet = Devnet::start(DevnetConfig::default())
        .await
        .expect("devnet starts");
    let data_dir = tempfile::tempdir().expect("temp dir");
    let config = Config {
        network: bitcoin::Network::Regtest,
        allow_mainnet: false,
        esplora_url: devnet.esplora_url().to_string(),
        public_esplora_url: None,
        listen: "127.0.0.1:0".parse().expect("valid address"),
        data_dir: data_dir.path().to_path_buf(),
        wallet_dir,
        name: "test LSP".into(),
    };
    let lsp = lsp_server::start(config).await.expect("LSP starts");
    Stack {
        devnet,
        lsp,
        data_dir,
    }
}
