//! The SuperScalar LSP server: a thin driver around the protocol crate `shared`.
//!
//! It moves bytes (WebSockets, Esplora), persists (SQLite) and schedules; every protocol decision
//! lives in `shared`. [`start`] runs its tasks under one supervisor: the HTTP/WebSocket server,
//! the factory coordinator (`factory`), the payment router (`channels`), the chain watchers and,
//! with `--ln-listen`, the Lightning node's (`lightning`); stopping the supervisor (or dropping
//! [`Running`]) stops all of them and every open connection.

mod admin;
pub mod channels;
pub mod config;
mod factory;
mod http;
mod keys;
pub mod lightning;
pub mod metrics;
mod private_file;
mod store;
mod terms;
mod tip;
pub mod tower;
pub mod wallet;
mod ws;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::serve::ListenerExt;
use bitcoin::secp256k1::Keypair;
use shared::terms::SignedTerms;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

pub use config::{Config, FactoryOptions, LightningOptions, PaymentOptions};

use factory::{Coordinator, Inbound, Settings};
use wallet::LspWallet;

/// Messages that may wait for the coordinator before connection tasks feel backpressure.
const COORDINATOR_QUEUE: usize = 4096;

/// State shared by every request handler.
#[derive(Clone)]
pub struct AppState {
    config: Arc<Config>,
    key: Arc<Keypair>,
    coordinator: mpsc::Sender<Inbound>,
    router: mpsc::Sender<channels::RouterMsg>,
    next_conn: Arc<AtomicU64>,
    open_slots: Arc<AtomicU32>,
    shutdown: watch::Receiver<bool>,
    wallet: Arc<LspWallet>,
    metrics: Arc<metrics::Metrics>,
    admin_token: admin::AdminToken,
    tip: tip::Tip,
    ln: Option<Arc<lightning::LnNode>>,
}

impl AppState {
    /// The coordinator's view of factories and ceremonies; `None` while it is stopping.
    async fn coordinator_view(&self) -> Option<factory::CoordinatorView> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.coordinator.send(Inbound::Inspect(reply)).await.ok()?;
        answer.await.ok()
    }

    fn tip_height(&self) -> Result<u32, tip::TipError> {
        self.tip.height()
    }

    async fn terms(&self) -> SignedTerms {
        let moment = terms::Moment {
            tip_height: self.tip_height().unwrap_or(0),
            open_slots: self.open_slots.load(Ordering::Relaxed),
            lightning_node: self.ln.as_ref().map(|n| n.node_id()),
        };
        terms::current(&self.config, &self.key, moment)
    }
}

/// A started server. Dropping it stops every task of the server (as a crash would: nothing is
/// written on the way out), except that the Lightning node is stopped and waited for (so that
/// nothing of it outlives the value, e.g. a test's data dir); [`Running::stop`] stops
/// everything and waits until it is gone.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Finishes when the server stops.
    pub task: tokio::task::JoinHandle<Result<()>>,
    /// The LSP's on-chain wallet (fund it at [`LspWallet::next_address`]).
    pub wallet: Arc<LspWallet>,
    /// The LSP's Lightning node, when `--ln-listen` runs one.
    pub ln: Option<Arc<lightning::LnNode>>,
    shutdown: watch::Sender<bool>,
}

impl Running {
    /// Stops the server and waits until its tasks and connections are gone, then stops the
    /// Lightning node (peers disconnected, its state persisted).
    pub async fn stop(mut self) -> Result<()> {
        let _ = self.shutdown.send(true);
        let result = match (&mut self.task).await {
            Ok(result) => result,
            Err(e) if e.is_cancelled() => Ok(()),
            Err(e) => Err(e.into()),
        };
        if let Some(ln) = self.ln.take() {
            ln.stop().await.context("stopping the Lightning node")?;
        }
        result
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        self.task.abort();
        if let Some(ln) = self.ln.take() {
            ln.stop_now();
        }
    }
}

/// Opens the data dir, restores unfinished factories, binds, and serves in background tasks.
pub async fn start(config: Config) -> Result<Running> {
    config.validate()?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    let key = keys::load_or_create(&config.data_dir)?;
    let admin_token = admin::load_token(&config.data_dir, config.admin_token.as_deref())?;
    let store = store::Store::open(&config.data_dir)?;
    store.check_network(config.network)?;
    let esplora = esplora_client::Builder::new(config.esplora_url.trim_end_matches('/'))
        .build_async()
        .context("building the Esplora client")?;
    let wallet = Arc::new(
        LspWallet::open(&config.data_dir, config.network, &config.esplora_url)
            .await
            .context("opening the LSP's on-chain wallet")?,
    );
    if let Some(faucet) = config.regtest_faucet.as_deref() {
        regtest_top_up(&wallet, config.network, faucet).await;
    }
    match wallet.next_address() {
        Ok(address) => tracing::info!(
            %address,
            balance_sat = wallet.balance().total().to_sat(),
            "LSP wallet: send funds to this address to fund factories"
        ),
        Err(e) => {
            tracing::warn!(error = %e, "could not derive a funding address for the LSP wallet")
        }
    }
    let settings = Settings::from_config(&config);
    let chain_poll = settings.chain_poll;
    let config = Arc::new(config);
    let open_slots = Arc::new(AtomicU32::new(settings.factory_size as u32));
    let watch_list = factory::WatchList::default();
    let first_tip = tip::read_once(&esplora).await;
    let height = first_tip.unwrap_or(0);
    let (tip, tip_task) = tip::watch_tip(esplora.clone(), first_tip);
    let ln = match lightning::LnSettings::from_config(&config) {
        Some(settings) => Some(Arc::new(
            lightning::LnNode::start(settings)
                .await
                .context("starting the Lightning node")?,
        )),
        None => None,
    };
    let coordinator = Coordinator::new(
        settings,
        config.clone(),
        key,
        wallet.clone(),
        store,
        watch_list.clone(),
        open_slots.clone(),
        height,
    )
    .context("restoring factories")?;
    // Signed funding transactions go out before the first sync, which would otherwise free
    // their coins.
    coordinator.resume_broadcasts().await;
    if let Err(e) = wallet.sync().await {
        tracing::warn!(error = %e, "initial wallet sync failed; the wallet syncs again before funding");
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, network = %config.network, lsp_pubkey = %key.x_only_public_key().0, "LSP listening");
    let sweep_to = wallet
        .receive_address()
        .context("an address for the LSP's claims")?
        .script_pubkey();
    let router = channels::Router::new(
        channels::RouterSettings {
            network: config.network,
            policy: shared::pay::ChannelPolicy::for_network(config.network),
            fees: terms::fees(),
            liquidity: terms::LIQUIDITY,
            options: config.payments.clone(),
            sweep_to,
            ladder: config.ladder(),
        },
        key,
        &config.data_dir,
        esplora.clone(),
        tip.clone(),
        ln.clone(),
        wallet.clone(),
    )
    .context("restoring channels")?;
    let outside_outcomes = router.outside_outcomes();
    let (router_tx, router_rx) = mpsc::channel(COORDINATOR_QUEUE);
    let (inbound, inbound_rx) = mpsc::channel(COORDINATOR_QUEUE);
    let (shutdown, shutdown_rx) = watch::channel(false);
    let state = AppState {
        config,
        key: Arc::new(key),
        coordinator: inbound.clone(),
        router: router_tx,
        next_conn: Arc::new(AtomicU64::new(1)),
        open_slots,
        shutdown: shutdown_rx.clone(),
        wallet: wallet.clone(),
        metrics: Arc::default(),
        admin_token,
        tip: tip.clone(),
        ln: ln.clone(),
    };
    let app = http::router(state);
    let mut stop = shutdown_rx;
    let chain_wallet = wallet.clone();
    let ln_tasks = ln.clone();
    let task = tokio::spawn(async move {
        let mut tasks = JoinSet::new();
        if let Some(ln) = ln_tasks {
            tasks.spawn(async move {
                ln.tasks(tip, outside_outcomes).await;
                Ok(())
            });
        }
        // Frames are small and each round waits on the other side's answer: without
        // TCP_NODELAY, Nagle's algorithm holds a frame until the previous one is acknowledged,
        // which the peer's delayed ACK puts off by up to 40 ms per round trip.
        let listener = listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "could not set TCP_NODELAY on a connection");
            }
        });
        tasks.spawn(async move { axum::serve(listener, app).await.map_err(Into::into) });
        tasks.spawn(async move {
            coordinator.run(inbound_rx).await;
            Ok(())
        });
        tasks.spawn(async move {
            router.run(router_rx).await;
            Ok(())
        });
        tasks.spawn(async move {
            tip_task.await;
            Ok(())
        });
        tasks.spawn(async move {
            factory::watch_chain(esplora, chain_wallet, watch_list, inbound, chain_poll).await;
            Ok(())
        });
        let result = tokio::select! {
            done = tasks.join_next() => match done {
                Some(Ok(result)) => result,
                Some(Err(e)) => Err(e.into()),
                None => Ok(()),
            },
            _ = stop.changed() => Ok(()),
        };
        tasks.shutdown().await;
        result
    });
    Ok(Running {
        addr,
        task,
        wallet,
        ln,
        shutdown,
    })
}

/// Regtest demos: asks the devnet faucet for coins when the wallet is empty. Failures are logged,
/// not fatal: the LSP still serves, and the operator can fund it by hand.
async fn regtest_top_up(wallet: &LspWallet, network: bitcoin::Network, faucet: &str) {
    const TOP_UP_SAT: u64 = 10 * 100_000_000;
    if network != bitcoin::Network::Regtest {
        tracing::warn!("--regtest-faucet is ignored outside regtest");
        return;
    }
    if let Err(e) = wallet.sync().await {
        tracing::warn!(error = %e, "could not sync the LSP wallet before the faucet top-up");
        return;
    }
    if wallet.balance().total().to_sat() > 0 {
        return;
    }
    let address = match wallet.next_address() {
        Ok(a) => a,
        Err(e) => return tracing::warn!(error = %e, "no address for the faucet top-up"),
    };
    let body = serde_json::json!({ "address": address.to_string(), "sats": TOP_UP_SAT });
    match reqwest::Client::new().post(faucet).json(&body).send().await {
        Ok(r) if r.status().is_success() => {
            tracing::info!(%address, sats = TOP_UP_SAT, "LSP wallet topped up from the devnet faucet")
        }
        Ok(r) => tracing::warn!(status = %r.status(), "the devnet faucet refused the top-up"),
        Err(e) => tracing::warn!(error = %e, "could not reach the devnet faucet"),
    }
}
