//! The standalone keyless watchtower (the `watchtower` binary): it answers cheats on the
//! channels of wallets that are away, with transactions those wallets signed beforehand. It
//! holds no key of anyone's, so whoever runs it (a meetup, beside its LSP) can fail to act but
//! cannot take a sat. What it holds and does is in `shared::tower`; the pass is in [`watch`].
//!
//! HTTP (JSON; any origin may call it, as a wallet's page may be served from anywhere):
//!
//! - `POST /v1/appointments` with a [`SignedAppointment`]: `200 {"penalties": n}` (what the tower
//!   now holds for the channel), `400 {"error"}` for a body that does not open (signature, kit,
//!   penalties) or a new channel whose funding output is not confirmed on chain, `409
//!   {"error", "stored"?}` for a sequence not above the stored one (`stored`) or a kit behind the
//!   stored one, `507 {"error"}` when it is full;
//! - `GET /v1/appointments/{identity}/{factory}/{client}`: what it holds and last did for a
//!   channel (`sequence`, `leaf_states`, `penalties`, [`ChannelReport`]), `404` if nothing;
//! - `GET /v1/wallet`: with `--fee-wallet`, the operator's fee wallet (`address` to fund,
//!   `balance_sat`);
//! - `GET /healthz`: `ok`.

mod store;
mod watch;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use axum::Router;
use bitcoin::secp256k1::XOnlyPublicKey;
use serde_json::json;
use shared::pay::ChannelId;
use shared::tower::{SignedAppointment, MAX_BODY_BYTES};
use shared::types::{ClientId, FactoryId};
use tokio::sync::watch as signal;
use tower_http::cors::{Any, CorsLayer};

pub use watch::ChannelReport;

use store::{Stored, TowerStore};

/// How the tower runs.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "watchtower",
    version,
    about = "A keyless SuperScalar watchtower"
)]
pub struct TowerConfig {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:8810")]
    pub listen: SocketAddr,
    /// The Esplora API it reads the chain from and publishes through.
    #[arg(long, default_value = "http://127.0.0.1:8801")]
    pub esplora_url: String,
    /// Where it keeps `tower.sqlite`.
    #[arg(long, default_value = "tower-data")]
    pub data_dir: PathBuf,
    /// Milliseconds between passes over the watched channels.
    #[arg(long, default_value_t = 2_000)]
    pub poll_ms: u64,
    /// The most channels it watches (a new one beyond is refused).
    #[arg(long, default_value_t = 10_000)]
    pub max_channels: usize,
    /// Keep an on-chain wallet of the operator's (in the data dir) that pays a child through
    /// the anchor of a tree transaction the network refuses for its fee. Needs `--network`.
    #[arg(long, default_value_t = false)]
    pub fee_wallet: bool,
    /// The network of `--fee-wallet`.
    #[arg(long)]
    pub network: Option<bitcoin::Network>,
}

#[derive(Clone)]
struct TowerState {
    store: Arc<TowerStore>,
    /// The operator's fee wallet, with `--fee-wallet`.
    wallet: Option<Arc<crate::wallet::LspWallet>>,
    reports: watch::Reports,
    esplora: esplora_client::AsyncClient,
    /// Bodies being checked at once (each may verify thousands of signatures).
    checking: Arc<tokio::sync::Semaphore>,
}

/// A started tower; dropping it stops it.
pub struct RunningTower {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Finishes when the tower stops.
    pub task: tokio::task::JoinHandle<Result<()>>,
    shutdown: signal::Sender<bool>,
}

impl Drop for RunningTower {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        self.task.abort();
    }
}

/// Opens the data dir, binds, and runs the HTTP API and the pass in background tasks.
pub async fn start(config: TowerConfig) -> Result<RunningTower> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    let store = Arc::new(TowerStore::open(&config.data_dir, config.max_channels)?);
    let esplora = esplora_client::Builder::new(config.esplora_url.trim_end_matches('/'))
        .build_async()
        .context("building the Esplora client")?;
    let wallet = match (config.fee_wallet, config.network) {
        (false, _) => None,
        (true, None) => anyhow::bail!("--fee-wallet needs --network"),
        (true, Some(network)) => {
            let wallet =
                crate::wallet::LspWallet::open(&config.data_dir, network, &config.esplora_url)
                    .await
                    .context("opening the tower's fee wallet")?;
            if let Err(e) = wallet.sync().await {
                tracing::warn!(error = %e, "the fee wallet's first sync failed; it syncs before each child");
            }
            match wallet.next_address() {
                Ok(address) => {
                    tracing::info!(%address, balance_sat = wallet.balance().total().to_sat(), "tower fee wallet: send a little here so the tower can add fees")
                }
                Err(e) => tracing::warn!(error = %e, "no address for the fee wallet"),
            }
            Some(Arc::new(wallet))
        }
    };
    let publisher = wallet
        .clone()
        .map(|w| Arc::new(crate::channels::Publisher::new(w)));
    let state = TowerState {
        wallet,
        store: store.clone(),
        reports: Default::default(),
        esplora: esplora.clone(),
        checking: Arc::new(tokio::sync::Semaphore::new(2)),
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    let watched = store.watched().len();
    tracing::info!(%addr, watched, esplora = config.esplora_url, "watchtower listening");
    let (shutdown, mut stopped) = signal::channel(false);
    let reports = state.reports.clone();
    let poll = Duration::from_millis(config.poll_ms.max(100));
    let passes = tokio::spawn(async move {
        loop {
            watch::pass(&esplora, &store, &reports, publisher.as_deref()).await;
            tokio::time::sleep(poll).await;
        }
    });
    let app = router(state);
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.wait_for(|s| *s).await;
            })
            .await;
        passes.abort();
        served.context("serving")
    });
    Ok(RunningTower {
        addr,
        task,
        shutdown,
    })
}

fn router(state: TowerState) -> Router {
    Router::new()
        .route("/v1/appointments", post(register))
        .route(
            "/v1/appointments/{identity}/{factory}/{client}",
            get(status),
        )
        .route("/v1/wallet", get(wallet_view))
        .route("/healthz", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES + 64 * 1024))
        .layer(
            CorsLayer::new()
                .allow_origin(Any)
                .allow_methods([Method::GET, Method::POST])
                .allow_headers(Any),
        )
        .with_state(state)
}

fn refuse(status: StatusCode, error: impl ToString) -> Response {
    (status, Json(json!({ "error": error.to_string() }))).into_response()
}

async fn register(
    State(state): State<TowerState>,
    Json(signed): Json<SignedAppointment>,
) -> Response {
    // Checking a body verifies every signature of its kit: off the async threads, a few at once.
    let Ok(_permit) = state.checking.acquire().await else {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "the tower is stopping");
    };
    let opened = tokio::task::spawn_blocking(move || {
        let appointment = signed.open()?;
        Ok::<_, shared::tower::TowerError>((signed.identity, appointment))
    })
    .await;
    let (identity, appointment) = match opened {
        Ok(Ok(opened)) => opened,
        Ok(Err(e)) => return refuse(StatusCode::BAD_REQUEST, e),
        Err(e) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    // A channel the tower does not watch yet must be of a factory that exists: its funding
    // output confirmed on chain, as the kit says.
    if state.store.get(&identity, appointment.channel).is_none() {
        if let Err(why) = funded(&state.esplora, &appointment).await {
            return refuse(StatusCode::BAD_REQUEST, why);
        }
    }
    let store = state.store.clone();
    let put = tokio::task::spawn_blocking(move || store.put(&identity, &appointment)).await;
    match put {
        Ok(Ok(Stored::Taken { penalties })) => {
            Json(json!({ "penalties": penalties })).into_response()
        }
        Ok(Ok(Stored::Stale { stored })) => (
            StatusCode::CONFLICT,
            Json(json!({
                "error": format!("sequence is not above the stored {stored}; send a newer appointment"),
                "stored": stored,
            })),
        )
            .into_response(),
        Ok(Ok(Stored::Older)) => refuse(
            StatusCode::CONFLICT,
            "this exit kit is older than the one the tower holds (a restored backup?); kept the newer one",
        ),
        Ok(Ok(Stored::Full { penalties })) => refuse(
            StatusCode::INSUFFICIENT_STORAGE,
            format!("the kit was taken, but this channel has the most penalties a tower keeps ({penalties})"),
        ),
        Ok(Ok(Stored::TooManyChannels)) => refuse(
            StatusCode::INSUFFICIENT_STORAGE,
            "this tower watches its most channels",
        ),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "tower: storing an appointment failed");
            refuse(StatusCode::INTERNAL_SERVER_ERROR, "could not store it")
        }
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

/// Whether `appointment`'s factory is funded: its funding transaction confirmed, with the
/// output the kit's paths spend.
async fn funded(
    esplora: &esplora_client::AsyncClient,
    appointment: &shared::tower::Appointment,
) -> Result<(), String> {
    let path = appointment.kit.latest();
    let funding = path.funding_outpoint();
    let unreadable = || "the tower cannot read the chain now; try again later".to_string();
    let status = crate::channels::read("funding status", esplora.get_tx_status(&funding.txid))
        .await
        .ok_or_else(unreadable)?;
    if !status.confirmed {
        return Err(
            "the factory's funding transaction is not confirmed; send it again once it is".into(),
        );
    }
    let tx = crate::channels::read("funding", esplora.get_tx(&funding.txid))
        .await
        .ok_or_else(unreadable)?;
    let output = tx.and_then(|tx| tx.output.get(funding.vout as usize).cloned());
    if output.as_ref() != Some(path.funding_output()) {
        return Err("the kit's funding output is not on chain".into());
    }
    Ok(())
}

async fn wallet_view(State(state): State<TowerState>) -> Response {
    let Some(wallet) = &state.wallet else {
        return refuse(
            StatusCode::NOT_FOUND,
            "this tower keeps no fee wallet (--fee-wallet)",
        );
    };
    let address = wallet.receive_address().map(|a| a.to_string()).ok();
    Json(json!({
        "address": address,
        "balance_sat": wallet.balance().total().to_sat(),
    }))
    .into_response()
}

async fn status(
    State(state): State<TowerState>,
    Path((identity, factory, client)): Path<(String, u64, u32)>,
) -> Response {
    let Ok(identity) = identity.parse::<XOnlyPublicKey>() else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "identity is not an x-only public key",
        );
    };
    let channel = ChannelId {
        factory: FactoryId(factory),
        client: ClientId(client),
    };
    let Some(held) = state.store.get(&identity, channel) else {
        return refuse(StatusCode::NOT_FOUND, "no appointment for this channel");
    };
    let report = state
        .reports
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&(identity, channel))
        .cloned()
        .unwrap_or_default();
    Json(json!({
        "sequence": held.sequence,
        "leaf_states": held.leaf_states(),
        "penalties": held.penalties,
        "moved": held.moved,
        "report": report,
    }))
    .into_response()
}
