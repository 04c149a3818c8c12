//! A real bitcoind on regtest plus an Esplora REST API served over it, for integration tests,
//! the demo and workshops.
//!
//! [`Devnet::start`] finds bitcoind (see [`locate_bitcoind`]), starts it on free loopback ports
//! in its own datadir, mines 101 blocks to a faucet key the devnet owns (then splits one mature
//! coinbase into many coins and confirms them), and serves Esplora (and a few `/devnet/*`
//! control endpoints, see [`control`]) on `127.0.0.1`. Nothing listens beyond loopback.
//!
//! Lifecycle: [`Devnet::shutdown`] stops everything cleanly; dropping a [`Devnet`] does the
//! same synchronously (stop over RPC, kill after a timeout), so no bitcoind outlives it and a
//! temporary datadir is always removed.
//!
//! ```no_run
//! # async fn demo() -> Result<(), devnet::DevnetError> {
//! use bitcoin::{Address, Amount};
//! let devnet = devnet::Devnet::start(devnet::DevnetConfig::default()).await?;
//! # let address: Address = devnet.faucet_address().clone();
//! let txid = devnet.faucet(&address, Amount::from_sat(100_000)).await?;
//! devnet.mine(1).await?;
//! println!("{txid} confirmed; Esplora at {}", devnet.esplora_url());
//! devnet.shutdown().await
//! # }
//! ```

mod bitcoind;
pub mod control;
mod error;
mod esplora;
mod faucet;
mod index;
pub mod rpc;
mod state;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bitcoin::absolute::Height;
use bitcoin::hashes::{sha256, Hash};
use bitcoin::{Address, Amount, BlockHash, TxOut, Txid};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower_http::cors::CorsLayer;

pub use bitcoind::locate_bitcoind;
pub use error::DevnetError;
pub use faucet::FaucetError;
pub use rpc::{RpcClient, RpcError};

use bitcoind::{BitcoindArgs, BitcoindProcess, Datadir};
use state::Shared;

/// Blocks mined at startup, so the first coinbase is spendable.
const INITIAL_BLOCKS: u32 = 101;
/// Coins of 1 BTC the first mature coinbase is split into, so many faucet payments (and many
/// chains of them) fit in each block.
const FAUCET_SPLIT: usize = 49;
/// How often the index polls bitcoind's tip.
const POLL_EVERY: Duration = Duration::from_millis(200);
/// Tries at starting bitcoind when a chosen free port was taken meanwhile.
const START_ATTEMPTS: usize = 3;
/// How long `shutdown` lets the HTTP server finish open requests.
const SERVER_GRACE: Duration = Duration::from_secs(2);

/// How to start a [`Devnet`]. `DevnetConfig::default()` suits tests.
#[derive(Debug, Clone)]
pub struct DevnetConfig {
    /// Esplora port on 127.0.0.1; `None` picks a free one.
    pub esplora_port: Option<u16>,
    /// bitcoind RPC port on 127.0.0.1; `None` picks a free one.
    pub rpc_port: Option<u16>,
    /// A persistent datadir (kept, reused on the next start); `None` uses a temporary one.
    pub datadir: Option<PathBuf>,
    /// The bitcoind binary; `None` uses [`locate_bitcoind`].
    pub bitcoind: Option<PathBuf>,
    /// Mine a block this often; `None` mines only when asked.
    pub automine: Option<Duration>,
    /// How long bitcoind may take to answer RPC after starting.
    pub startup_timeout: Duration,
    /// More `bitcoind` arguments, e.g. `-minrelaytxfee=0.00005` for a node whose relay floor is
    /// above what a pre-signed transaction pays.
    pub bitcoind_args: Vec<String>,
}

impl Default for DevnetConfig {
    fn default() -> Self {
        DevnetConfig {
            esplora_port: None,
            rpc_port: None,
            datadir: None,
            bitcoind: None,
            automine: None,
            startup_timeout: Duration::from_secs(60),
            bitcoind_args: Vec::new(),
        }
    }
}

/// A running regtest node with an Esplora API. See the crate docs for its lifecycle.
#[derive(Debug)]
pub struct Devnet {
    shared: Arc<Shared>,
    esplora_addr: SocketAddr,
    server: Option<JoinHandle<()>>,
    server_stop: Option<oneshot::Sender<()>>,
    poller: Option<JoinHandle<()>>,
    // Last: stopped (and its temp datadir removed) after the tasks above are gone.
    process: Option<BitcoindProcess>,
}

impl Devnet {
    /// Starts bitcoind and the Esplora server; returns once both answer and the faucet is
    /// funded.
    pub async fn start(config: DevnetConfig) -> Result<Devnet, DevnetError> {
        let exe = match &config.bitcoind {
            Some(path) => path.clone(),
            None => locate_bitcoind()?,
        };
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, config.esplora_port.unwrap_or(0)));
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| DevnetError::Bind { addr, source })?;
        let esplora_addr = listener
            .local_addr()
            .map_err(|source| DevnetError::Bind { addr, source })?;
        let process = start_bitcoind(&config, exe).await?;
        let esplora_url = format!("http://{esplora_addr}");
        let faucet = faucet::Faucet::load_or_create(process.datadir().path())?;
        let shared = Arc::new(Shared::new(process.rpc().clone(), faucet, esplora_url));

        let mut devnet = Devnet {
            shared: Arc::clone(&shared),
            esplora_addr,
            server: None,
            server_stop: None,
            poller: None,
            process: Some(process),
        };
        // From here on, an error drops `devnet`, which stops bitcoind.
        devnet.fund_faucet().await?;
        let (stop_tx, stop_rx) = oneshot::channel();
        let app = esplora::routes()
            .merge(control::routes())
            .layer(CorsLayer::very_permissive())
            .with_state(Arc::clone(&shared));
        devnet.server = Some(tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stop_rx.await;
            });
            if let Err(e) = serve.await {
                tracing::warn!(error = %e, "esplora server stopped");
            }
        }));
        devnet.server_stop = Some(stop_tx);
        devnet.poller = Some(tokio::spawn(state::poll_tip(
            Arc::downgrade(&shared),
            POLL_EVERY,
        )));
        shared.set_automine(config.automine);
        tracing::info!(esplora = %devnet.esplora_url(), rpc = %shared.rpc.url(), "devnet ready");
        Ok(devnet)
    }

    /// Mines the first 101 blocks on a fresh chain and splits a coinbase into many coins.
    async fn fund_faucet(&mut self) -> Result<(), DevnetError> {
        let height = self.shared.rpc.get_block_count().await?.to_consensus_u32();
        if height >= INITIAL_BLOCKS {
            self.shared.chain.sync().await?;
            return Ok(());
        }
        self.shared.mine(INITIAL_BLOCKS - height).await?;
        let faucet_spk = self.shared.faucet.address().script_pubkey();
        let coins = vec![
            TxOut {
                value: Amount::ONE_BTC,
                script_pubkey: faucet_spk,
            };
            FAUCET_SPLIT
        ];
        let shared = &self.shared;
        shared.faucet.pay(&shared.chain, &shared.rpc, coins).await?;
        shared.mine(1).await?;
        Ok(())
    }

    /// The Esplora base URL, e.g. `http://127.0.0.1:40123` (no trailing slash).
    pub fn esplora_url(&self) -> &str {
        &self.shared.esplora_url
    }

    /// The Esplora server's socket address.
    pub fn esplora_addr(&self) -> SocketAddr {
        self.esplora_addr
    }

    /// The bitcoind JSON-RPC client.
    pub fn rpc(&self) -> &RpcClient {
        &self.shared.rpc
    }

    /// The faucet's own address (blocks from [`mine`](Self::mine) pay it).
    pub fn faucet_address(&self) -> &Address {
        self.shared.faucet.address()
    }

    /// Mines `blocks` blocks to the faucet; returns once Esplora serves them.
    pub async fn mine(&self, blocks: u32) -> Result<Vec<BlockHash>, DevnetError> {
        self.shared.mine(blocks).await
    }

    /// Mines `blocks` blocks paying `address`; returns once Esplora serves them.
    pub async fn mine_to(
        &self,
        address: &Address,
        blocks: u32,
    ) -> Result<Vec<BlockHash>, DevnetError> {
        self.shared.mine_to(address, blocks).await
    }

    /// Pays `amount` to `address` from the faucet; returns once the transaction is in the
    /// mempool. Many payments per block are fine.
    pub async fn faucet(&self, address: &Address, amount: Amount) -> Result<Txid, DevnetError> {
        self.shared.pay(address, amount).await
    }

    /// The node's tip height.
    pub async fn height(&self) -> Result<Height, DevnetError> {
        Ok(self.shared.rpc.get_block_count().await?)
    }

    /// Brings Esplora's index to the node's tip now (it also polls every 200 ms); useful after
    /// changing the chain through [`rpc`](Self::rpc) directly.
    pub async fn sync(&self) -> Result<Height, DevnetError> {
        self.shared.chain.sync().await
    }

    /// Mines a block every `every`; `None` stops.
    pub fn set_automine(&self, every: Option<Duration>) {
        self.shared.set_automine(every);
    }

    /// Makes `/fee-estimates` answer at least `sat_per_vb` for every target (0 clears it).
    pub fn set_fee_estimate(&self, sat_per_vb: f64) {
        self.shared.set_fee_floor(sat_per_vb);
    }

    /// The node's data directory (removed at shutdown unless it was given in the config).
    pub fn datadir(&self) -> Option<&Path> {
        self.process.as_ref().map(|p| p.datadir().path())
    }

    /// Whether the datadir is temporary (removed at shutdown).
    pub fn datadir_is_temporary(&self) -> bool {
        self.process
            .as_ref()
            .is_some_and(|p| p.datadir().is_temporary())
    }

    /// bitcoind's process id while it runs.
    pub fn bitcoind_pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(BitcoindProcess::pid)
    }

    /// Esplora's key for `address` (the SHA-256 of its scriptPubKey, as used in
    /// `/scripthash/:hash`).
    pub fn scripthash(address: &Address) -> sha256::Hash {
        sha256::Hash::hash(address.script_pubkey().as_bytes())
    }

    /// Stops the HTTP server, the background tasks and bitcoind (RPC `stop`, killed after a
    /// timeout), and removes a temporary datadir.
    pub async fn shutdown(mut self) -> Result<(), DevnetError> {
        self.shared.stop_automine();
        if let Some(poller) = self.poller.take() {
            poller.abort();
        }
        if let Some(stop) = self.server_stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut server) = self.server.take() {
            if tokio::time::timeout(SERVER_GRACE, &mut server)
                .await
                .is_err()
            {
                server.abort();
            }
        }
        if let Some(mut process) = self.process.take() {
            process.stop().await;
        }
        Ok(())
    }
}

impl Drop for Devnet {
    fn drop(&mut self) {
        self.shared.stop_automine();
        for task in [self.poller.take(), self.server.take()]
            .into_iter()
            .flatten()
        {
            task.abort();
        }
        // Dropping the process stops bitcoind (blocking) and removes a temporary datadir.
        self.process.take();
    }
}

/// Starts bitcoind, retrying with fresh ports if a picked port was taken in the meantime.
async fn start_bitcoind(
    config: &DevnetConfig,
    exe: PathBuf,
) -> Result<BitcoindProcess, DevnetError> {
    let mut password = [0u8; 16];
    bitcoin::secp256k1::rand::RngCore::fill_bytes(
        &mut bitcoin::secp256k1::rand::thread_rng(),
        &mut password,
    );
    let mut attempt = 0;
    loop {
        attempt += 1;
        let args = BitcoindArgs {
            exe: exe.clone(),
            rpc_port: match config.rpc_port {
                Some(port) => port,
                None => bitcoind::free_port()?,
            },
            p2p_port: bitcoind::free_port()?,
            rpc_user: "devnet".to_owned(),
            rpc_password: hex::encode(password),
            extra: config.bitcoind_args.clone(),
        };
        let datadir = match &config.datadir {
            Some(dir) => Datadir::persistent(dir.clone())?,
            None => Datadir::temp()?,
        };
        let mut process = BitcoindProcess::spawn(&args, datadir)?;
        match process.wait_ready(config.startup_timeout).await {
            Ok(()) => return Ok(process),
            Err(e) if BitcoindProcess::is_port_clash(&e) && attempt < START_ATTEMPTS => {
                tracing::debug!(error = %e, "port taken meanwhile; retrying with new ports");
            }
            Err(e) => return Err(e),
        }
    }
}
