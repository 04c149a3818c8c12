//! The admin API of the LSP's Lightning node, under `/admin/ln` (behind the admin token like
//! every admin route).
//!
//! - `GET /admin/ln`: node id, `node_id@address` URIs, addresses, alias, sync state.
//! - `GET /admin/ln/peers`; `POST /admin/ln/peers` `{node_id, address, persist?}` connects
//!   (and with `persist`, the default, reconnects after restarts).
//! - `GET /admin/ln/channels`; `POST /admin/ln/channels` `{node_id, address, amount_sat,
//!   push_sat?, announce?}` opens one (public unless `announce` is false) and answers its
//!   `user_channel_id`.
//! - `POST /admin/ln/channels/{user_channel_id}/close` `{force?}`.
//! - `GET /admin/ln/balances`: on chain, in channels, from closed channels.
//! - `POST /admin/ln/address`: a fresh address of the node's on-chain wallet, to fund it.
//!
//! Without `--ln-listen` there is no node, and every route answers 404 saying so.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use axum::Router;
use bitcoin::Amount;
use ldk_node::NodeError;
use serde::Deserialize;
use serde_json::json;

use super::error;
use crate::lightning::{self, LnError, LnNode, OpenChannel};
use crate::AppState;

/// The `/admin/ln` routes (the caller adds the token check).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/ln", get(info))
        .route("/admin/ln/peers", get(peers).post(connect))
        .route("/admin/ln/channels", get(channels).post(open))
        .route("/admin/ln/channels/{id}/close", post(close))
        .route("/admin/ln/balances", get(balances))
        .route("/admin/ln/address", post(address))
}

/// The node, if it runs.
fn node(state: &AppState) -> Option<Arc<LnNode>> {
    state.ln.clone()
}

/// The answer when no node runs: how to turn it on.
fn off() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "the LSP runs no Lightning node; start it with --ln-listen <address:port>",
    )
}

/// The status an error answers with.
fn status_of(e: &LnError) -> StatusCode {
    match e {
        LnError::BadInput { .. } => StatusCode::BAD_REQUEST,
        LnError::UnknownChannel(_) => StatusCode::NOT_FOUND,
        LnError::Stopped => StatusCode::SERVICE_UNAVAILABLE,
        LnError::Node { source, .. } => match source {
            NodeError::ConnectionFailed => StatusCode::BAD_GATEWAY,
            NodeError::InsufficientFunds
            | NodeError::ChannelCreationFailed
            | NodeError::ChannelClosingFailed => StatusCode::CONFLICT,
            NodeError::NotRunning => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        },
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn answer<T: serde::Serialize>(result: Result<T, LnError>) -> Response {
    match result {
        Ok(value) => Json(value).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "admin Lightning request failed");
            error(status_of(&e), &e.to_string())
        }
    }
}

async fn info(State(state): State<AppState>) -> Response {
    match node(&state) {
        Some(ln) => answer(ln.info().await),
        None => off(),
    }
}

async fn peers(State(state): State<AppState>) -> Response {
    match node(&state) {
        Some(ln) => answer(ln.peers().await),
        None => off(),
    }
}

async fn channels(State(state): State<AppState>) -> Response {
    match node(&state) {
        Some(ln) => answer(ln.channels().await),
        None => off(),
    }
}

async fn balances(State(state): State<AppState>) -> Response {
    match node(&state) {
        Some(ln) => answer(ln.balances().await),
        None => off(),
    }
}

async fn address(State(state): State<AppState>) -> Response {
    match node(&state) {
        Some(ln) => answer(
            ln.new_address()
                .await
                .map(|a| json!({ "address": a.to_string() })),
        ),
        None => off(),
    }
}

fn yes() -> bool {
    true
}

/// `POST /admin/ln/peers`.
#[derive(Debug, Deserialize)]
struct ConnectRequest {
    node_id: String,
    address: String,
    #[serde(default = "yes")]
    persist: bool,
}

async fn connect(State(state): State<AppState>, Json(req): Json<ConnectRequest>) -> Response {
    let Some(ln) = node(&state) else {
        return off();
    };
    let result = async {
        let node_id = lightning::parse_node_id(&req.node_id)?;
        let address = lightning::parse_address("address", &req.address)?;
        ln.connect(node_id, address, req.persist).await?;
        Ok(json!({ "connected": node_id.to_string() }))
    };
    answer(result.await)
}

/// `POST /admin/ln/channels`.
#[derive(Debug, Deserialize)]
struct OpenRequest {
    node_id: String,
    address: String,
    amount_sat: u64,
    #[serde(default)]
    push_sat: u64,
    #[serde(default = "yes")]
    announce: bool,
}

async fn open(State(state): State<AppState>, Json(req): Json<OpenRequest>) -> Response {
    let Some(ln) = node(&state) else {
        return off();
    };
    let result = async {
        if req.push_sat >= req.amount_sat {
            return Err(LnError::BadInput {
                field: "push_sat",
                reason: format!(
                    "{} sats leaves nothing of the {}-sat channel to its opener",
                    req.push_sat, req.amount_sat
                ),
            });
        }
        let open = OpenChannel {
            node_id: lightning::parse_node_id(&req.node_id)?,
            address: lightning::parse_address("address", &req.address)?,
            amount: Amount::from_sat(req.amount_sat),
            push: Amount::from_sat(req.push_sat),
            announce: req.announce,
        };
        let id = ln.open_channel(open).await?;
        Ok(json!({ "user_channel_id": id }))
    };
    answer(result.await)
}

/// `POST /admin/ln/channels/{id}/close`.
#[derive(Debug, Default, Deserialize)]
struct CloseRequest {
    #[serde(default)]
    force: bool,
}

async fn close(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let Some(ln) = node(&state) else {
        return off();
    };
    // The body is optional: none, or `{}`, closes cooperatively.
    let request = if body.iter().all(u8::is_ascii_whitespace) {
        Ok(CloseRequest::default())
    } else {
        serde_json::from_slice::<CloseRequest>(&body)
    };
    let force = match request {
        Ok(r) => r.force,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("the body is not {{\"force\": true|false}}: {e}"),
            )
        }
    };
    answer(
        ln.close_channel(&id, force)
            .await
            .map(|()| json!({ "closing": id, "force": force })),
    )
}
