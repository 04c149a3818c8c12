//! The SuperScalar LSP server: a thin driver around the protocol crate `shared`.
//!
//! It moves bytes (WebSockets, Esplora), persists (SQLite) and schedules; every protocol decision
//! lives in `shared`.

pub mod config;
mod http;
mod keys;
mod store;
mod terms;
pub mod wallet;
mod ws;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use bitcoin::secp256k1::Keypair;
use esplora_client::AsyncClient;
use shared::terms::SignedTerms;
use tokio::sync::Mutex;

pub use config::Config;

/// State shared by every request handler.
#[derive(Clone)]
pub struct AppState {
    config: Arc<Config>,
    key: Arc<Keypair>,
    esplora: AsyncClient,
    #[allow(dead_code)]
    store: Arc<Mutex<store::Store>>,
}

impl AppState {
    async fn tip_height(&self) -> Result<u32, esplora_client::Error> {
        self.esplora.get_height().await
    }

    async fn terms(&self) -> SignedTerms {
        let tip = self.tip_height().await.unwrap_or(0);
        terms::current(&self.config, &self.key, tip)
    }
}

/// A started server.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Finishes when the server stops.
    pub task: tokio::task::JoinHandle<Result<()>>,
}

/// Opens the data dir, binds, and serves in a background task.
pub async fn start(config: Config) -> Result<Running> {
    config.validate()?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    let key = keys::load_or_create(&config.data_dir)?;
    let store = store::Store::open(&config.data_dir)?;
    store.check_network(config.network)?;
    let esplora = esplora_client::Builder::new(config.esplora_url.trim_end_matches('/'))
        .build_async()
        .context("building the Esplora client")?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, network = %config.network, lsp_pubkey = %key.x_only_public_key().0, "LSP listening");
    let state = AppState {
        config: Arc::new(config),
        key: Arc::new(key),
        esplora,
        store: Arc::new(Mutex::new(store)),
    };
    let app = http::router(state);
    let task = tokio::spawn(async move { axum::serve(listener, app).await.map_err(Into::into) });
    Ok(Running { addr, task })
}
