//! HTTP routes: terms, health, a gathering factory's member count, WebSocket upgrade, the operator's admin API and metrics
//! (`crate::admin`), and the wallet's static files.

use axum::extract::{Path, State, WebSocketUpgrade};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use axum::Router;
use serde_json::json;
use shared::ceremony::GatheringStatus;
use shared::types::FactoryId;
use shared::wire::MAX_FRAME_BYTES;
use tower_http::cors::{Any, CorsLayer};
use tower_http::services::{ServeDir, ServeFile};

use crate::AppState;

/// The LSP's router.
///
/// A wallet may be served from any origin (its own static host, an installed app), so what it
/// reads over HTTP (terms, health, a gathering factory) answers every origin: public, read-only
/// `GET`s without credentials. The admin API and metrics send no CORS headers, so no page can
/// read them. The WebSocket takes any origin too: a connection proves who it is by signing the
/// LSP's challenge with its identity key, not by where its page came from.
pub fn router(state: AppState) -> Router {
    let public = Router::new()
        .route("/.well-known/superscalar.json", get(terms))
        .route("/healthz", get(healthz))
        .route("/factories/{id}/gathering", get(gathering))
        .layer(
            CorsLayer::new()
                .allow_origin(Any)
                .allow_methods([Method::GET]),
        );
    let mut router = public
        .route("/ws", get(ws_upgrade))
        .merge(crate::admin::router(state.clone()));
    if let Some(dir) = &state.config.wallet_dir {
        let index = dir.join("index.html");
        router = router.fallback_service(ServeDir::new(dir).fallback(ServeFile::new(index)));
    }
    router.with_state(state)
}

async fn terms(State(state): State<AppState>) -> impl IntoResponse {
    Json(state.terms().await)
}

async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    let tip = state.tip_height();
    Json(json!({
        "status": "ok",
        "network": state.config.network.to_string(),
        "chain_tip": tip.ok(),
    }))
}

/// A factory still gathering members: how many it has and needs, and when gathering ends (a
/// joining wallet shows it while it waits). 404 once the factory is signing or gone.
async fn gathering(Path(id): Path<u64>, State(state): State<AppState>) -> Response {
    let Some(view) = state.coordinator_view().await else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let found = view
        .ceremonies
        .into_iter()
        .find(|c| c.factory == FactoryId(id) && c.phase == "gathering");
    match found {
        Some(c) => Json(GatheringStatus {
            factory: c.factory,
            members: u32::try_from(c.members.len()).unwrap_or(u32::MAX),
            min_members: u32::try_from(state.config.factory.min_clients).unwrap_or(u32::MAX),
            max_members: u32::try_from(state.config.factory_size()).unwrap_or(u32::MAX),
            gather_until: c.gather_until,
            start_height: c.start_height,
            waits_when_short: state.config.factory.underfilled_rung
                == crate::config::Underfilled::Wait,
        })
        .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Per-connection socket buffers. Wallet messages are small (a proposal is the largest), and an
/// LSP holds thousands of connections, so the buffers start small and grow only when needed.
const SOCKET_BUFFER_BYTES: usize = 16 * 1024;

async fn ws_upgrade(ws: WebSocketUpgrade, State(state): State<AppState>) -> impl IntoResponse {
    ws.max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .read_buffer_size(SOCKET_BUFFER_BYTES)
        .write_buffer_size(SOCKET_BUFFER_BYTES)
        .on_upgrade(move |socket| crate::ws::serve(socket, state))
}
