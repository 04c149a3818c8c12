//! The operator's interface: a JSON admin API under `/admin` and Prometheus `/metrics`, both
//! behind one bearer token.
//!
//! The token comes from `--admin-token`, or else from `admin.token` in the data dir (created
//! with 32 random bytes, readable by the owner only, on first start). Its value is never logged.
//!
//! Routes (`GET` and JSON unless said otherwise):
//! - `/admin/status`: network, LSP key, version, uptime, chain tip, open connections.
//! - `/admin/factories`, `/admin/factories/{id}`: every stored factory, with its clients.
//! - `/admin/clients`: every stored membership.
//! - `/admin/ceremonies`: the coordinator's live view of ceremonies in progress.
//! - `/admin/wallet`: the on-chain wallet's balance and an unused receive address.
//! - `/admin/terms`: the signed terms as wallets see them now.
//! - `/admin/ln/…`: the Lightning node: info, peers, channels (`POST` to connect, open and
//!   close), balances (see `ln`).
//! - `/metrics`: Prometheus text, with the Lightning node's gauges when it runs.
//!
//! `/admin/ladder/view` is a page (HTML, no data in it, so no token to load it) that shows the
//! ladder live: factories being created, then each funded factory's life as a bar with the tip
//! on it, its members and moves, its next action and how it closed. It asks `/admin/ladder` and
//! `/admin/ceremonies` with the token from its address (`#token=…`) or from a form.

mod ln;
mod report;
mod token;

use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use axum::Router;
use serde_json::json;
use tokio::sync::oneshot;

pub use token::{load_or_create as load_token, AdminToken};

use crate::metrics::Gauges;
use crate::AppState;

/// The admin and metrics routes, each checking the bearer token.
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/admin/status", get(status))
        .route("/admin/factories", get(factories))
        .route("/admin/factories/{id}", get(factory))
        .route("/admin/ladder", get(ladder))
        .route("/admin/clients", get(clients))
        .route("/admin/ceremonies", get(ceremonies))
        .route("/admin/payments", get(payments))
        .route("/admin/wallet", get(wallet))
        .route("/admin/terms", get(terms))
        .route("/metrics", get(metrics))
        .merge(ln::routes())
        .route_layer(middleware::from_fn_with_state(state, require_token))
        .route("/admin/ladder/view", get(ladder_view))
}

/// The live ladder page (`ladder.html`).
const LADDER_PAGE: &str = include_str!("ladder.html");

async fn ladder_view() -> Response {
    static POLICY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let policy = POLICY.get_or_init(|| page_policy(LADDER_PAGE));
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_SECURITY_POLICY, policy.as_str()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        axum::response::Html(LADDER_PAGE),
    )
        .into_response()
}

/// A Content-Security-Policy for a page whose script and style are inline: only those exact
/// blocks run (by their SHA-256), it may fetch only from this origin, and nothing may frame it
/// (the token it holds is the operator's).
fn page_policy(page: &str) -> String {
    use base64::Engine;
    use bitcoin::hashes::{sha256, Hash};
    let hashes = |tag: &str| -> String {
        let open = format!("<{tag}>");
        let close = format!("</{tag}>");
        page.split(open.as_str())
            .skip(1)
            .filter_map(|rest| rest.split(close.as_str()).next())
            .map(|block| {
                let digest = sha256::Hash::hash(block.as_bytes());
                let b64 = base64::engine::general_purpose::STANDARD.encode(digest.as_byte_array());
                format!(" 'sha256-{b64}'")
            })
            .collect()
    };
    format!(
        "default-src 'none'; script-src{}; style-src{}; connect-src 'self'; img-src 'self' data:; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        hashes("script"),
        hashes("style")
    )
}

async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        Some(t) if state.admin_token.matches(t) => next.run(request).await,
        Some(_) => error(StatusCode::UNAUTHORIZED, "wrong admin token"),
        None => error(
            StatusCode::UNAUTHORIZED,
            "send the admin token as `Authorization: Bearer <token>` (see admin.token in the data dir)",
        ),
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    let mut response = (status, Json(json!({ "error": message }))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
    }
    response
}

/// Runs a report query on a fresh read-only connection to the database.
async fn query<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
) -> Result<T, Response> {
    let dir = state.config.data_dir.clone();
    tokio::task::spawn_blocking(move || report::read(&dir, f))
        .await
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()))?
        .map_err(|e| {
            tracing::warn!(error = %e, "admin query failed");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("database query failed: {e}"),
            )
        })
}

async fn status(State(state): State<AppState>) -> Response {
    let tip = state.tip_height().ok();
    Json(json!({
        "name": state.config.name,
        "network": state.config.network.to_string(),
        "lsp_pubkey": state.key.x_only_public_key().0.to_string(),
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_secs": state.metrics.uptime_secs(),
        "chain_tip": tip,
        "connections_open": state.metrics.connections_open(),
        "factory_size": state.config.factory_size(),
    }))
    .into_response()
}

async fn factories(State(state): State<AppState>) -> Response {
    match query(&state, report::factories).await {
        Ok(list) => Json(list).into_response(),
        Err(e) => e,
    }
}

async fn factory(State(state): State<AppState>, Path(id): Path<u64>) -> Response {
    match query(&state, move |c| report::factory(c, id)).await {
        Ok(Some(f)) => Json(f).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, &format!("no factory {id}")),
        Err(e) => e,
    }
}

async fn ladder(State(state): State<AppState>) -> Response {
    let tip = match state.tip_height() {
        Ok(tip) => tip,
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    // The ladder's schedule, when the operator set one: its interval and the next rung.
    let schedule = state.config.ladder().map(
        |l| json!({ "interval": l.interval(), "next_rung": l.next_rung(tip).to_consensus_u32() }),
    );
    match query(&state, move |c| report::ladder(c, tip)).await {
        Ok(list) => {
            Json(json!({ "tip": tip, "schedule": schedule, "factories": list })).into_response()
        }
        Err(e) => e,
    }
}

async fn clients(State(state): State<AppState>) -> Response {
    match query(&state, report::clients).await {
        Ok(list) => Json(list).into_response(),
        Err(e) => e,
    }
}

/// Channels, payments, fees earned and faucet sats given (the router's live view).
async fn payments(State(state): State<AppState>) -> Response {
    let (reply, answer) = oneshot::channel();
    let unavailable = || {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the payment router is stopping",
        )
    };
    if state
        .router
        .send(crate::channels::RouterMsg::Inspect(reply))
        .await
        .is_err()
    {
        return unavailable();
    }
    match answer.await {
        Ok(view) => Json(view).into_response(),
        Err(_) => unavailable(),
    }
}

async fn ceremonies(State(state): State<AppState>) -> Response {
    match state.coordinator_view().await {
        Some(view) => Json(view).into_response(),
        None => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the coordinator is stopping",
        ),
    }
}

async fn wallet(State(state): State<AppState>) -> Response {
    let balance = state.wallet.balance();
    let address = state.wallet.receive_address().map(|a| a.to_string());
    Json(json!({
        "confirmed_sat": balance.confirmed.to_sat(),
        "pending_sat": balance.pending.to_sat(),
        "receive_address": address.as_ref().ok(),
        "address_error": address.as_ref().err().map(|e| e.to_string()),
        "fee_bumps_unfunded": state.wallet.unfunded_bumps(),
    }))
    .into_response()
}

async fn terms(State(state): State<AppState>) -> Response {
    Json(state.terms().await).into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    let counts = match query(&state, report::state_counts).await {
        Ok(c) => c,
        Err(e) => return e,
    };
    let tip = state.tip_height().ok();
    let stages = match tip {
        Some(tip) => match query(&state, move |c| report::stage_counts(c, tip)).await {
            Ok(s) => s,
            Err(e) => return e,
        },
        None => Vec::new(),
    };
    let swaps_open = match query(&state, report::open_swaps).await {
        Ok(s) => s,
        Err(e) => return e,
    };
    let balance = state.wallet.balance();
    let ln = match &state.ln {
        Some(ln) => match ln.gauges().await {
            Ok(g) => Some(g),
            Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
        },
        None => None,
    };
    let gauges = Gauges {
        factories: counts.factories,
        funded_clients: counts.funded_clients,
        stages,
        wallet_confirmed_sat: balance.confirmed.to_sat(),
        wallet_pending_sat: balance.pending.to_sat(),
        fee_bumps_unfunded: state.wallet.unfunded_bumps(),
        tip_height: tip.map_or(0, u64::from),
        next_rung: state
            .config
            .ladder()
            .zip(tip)
            .map(|(l, tip)| u64::from(l.next_rung(tip).to_consensus_u32())),
        swaps_open,
        ln,
    };
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(&gauges),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ladder_page_runs_only_its_own_script_and_style() {
        let policy = page_policy(LADDER_PAGE);
        assert_eq!(policy.matches("'sha256-").count(), 2, "{policy}");
        assert!(!policy.contains("unsafe"), "{policy}");
        let other = page_policy("<script>alert(1)</script><style></style>");
        assert_ne!(policy, other);
    }
}
