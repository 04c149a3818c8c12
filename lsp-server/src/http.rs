//! HTTP routes: terms, health, WebSocket upgrade, the operator's admin API and metrics
//! (`crate::admin`), and the wallet's static files.

use axum::extract::{State, WebSocketUpgrade};
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use axum::Router;
use serde_json::json;
use shared::wire::MAX_FRAME_BYTES;
use tower_http::cors::CorsLayer;
use tower_http::services::{ServeDir, ServeFile};

use crate::AppState;

/// The LSP's router.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new()
        .route("/.well-known/superscalar.json", get(terms))
        .route("/healthz", get(healthz))
        .route("/ws", get(ws_upgrade))
        .merge(crate::admin::router(state.clone()))
        .layer(CorsLayer::permissive());
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
    let tip = state.tip_height().await;
    Json(json!({
        "status": "ok",
        "network": state.config.network.to_string(),
        "chain_tip": tip.ok(),
    }))
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
