//! Devnet-only HTTP endpoints (not part of Esplora): mine blocks, pay from the faucet, set
//! automining, and describe the node.
//!
//! - `POST /devnet/mine` `{"blocks": n, "address"?: "bcrt1..."}` → `{"hashes": [..], "height": h}`
//! - `POST /devnet/faucet` `{"address": "bcrt1...", "sats": n}` → `{"txid": ".."}`
//! - `POST /devnet/automine` `{"seconds": t}` (0 stops) → `{"seconds": t}`
//! - `POST /devnet/fee-estimate` `{"sat_per_vb": r}` (0 clears) → `{"sat_per_vb": r}`: every
//!   `/fee-estimates` target answers at least `r`, as in a busy mempool
//! - `GET /devnet/info` → network, RPC URL and credentials, Esplora URL, tip, faucet address

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use bitcoin::{Address, Amount, BlockHash, Network, Txid};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::esplora::{HttpError, HttpResult};
use crate::state::Shared;

/// Most blocks one `/devnet/mine` call may ask for.
const MAX_BLOCKS_PER_CALL: u32 = 10_000;

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/devnet/mine", post(mine))
        .route("/devnet/faucet", post(faucet))
        .route("/devnet/automine", post(automine))
        .route("/devnet/fee-estimate", post(fee_estimate))
        .route("/devnet/info", get(info))
}

/// Reads a JSON body whatever its content type (so plain `curl -d` works too).
fn json_body<T: serde::de::DeserializeOwned>(body: &str) -> HttpResult<T> {
    serde_json::from_str(body)
        .map_err(|e| HttpError::bad_request(format!("invalid JSON body: {e}")))
}

fn regtest_address(s: &str) -> HttpResult<Address> {
    Address::from_str(s)
        .map_err(|e| HttpError::bad_request(format!("invalid address {s}: {e}")))?
        .require_network(Network::Regtest)
        .map_err(|_| HttpError::bad_request(format!("{s} is not a regtest address")))
}

#[derive(Debug, Deserialize)]
struct MineRequest {
    blocks: u32,
    #[serde(default)]
    address: Option<String>,
}

#[derive(Debug, Serialize)]
struct MineResponse {
    hashes: Vec<BlockHash>,
    height: u32,
}

async fn mine(State(state): State<Arc<Shared>>, body: String) -> HttpResult<Json<MineResponse>> {
    let req: MineRequest = json_body(&body)?;
    if req.blocks == 0 || req.blocks > MAX_BLOCKS_PER_CALL {
        return Err(HttpError::bad_request(format!(
            "blocks must be between 1 and {MAX_BLOCKS_PER_CALL}"
        )));
    }
    let hashes = match req.address {
        Some(a) => state.mine_to(&regtest_address(&a)?, req.blocks).await?,
        None => state.mine(req.blocks).await?,
    };
    let height = state.chain.read().tip().map_or(0, |(h, _)| h);
    Ok(Json(MineResponse { hashes, height }))
}

#[derive(Debug, Deserialize)]
struct FaucetRequest {
    address: String,
    sats: u64,
}

#[derive(Debug, Serialize)]
struct FaucetResponse {
    txid: Txid,
}

async fn faucet(
    State(state): State<Arc<Shared>>,
    body: String,
) -> HttpResult<Json<FaucetResponse>> {
    let req: FaucetRequest = json_body(&body)?;
    let address = regtest_address(&req.address)?;
    let txid = state.pay(&address, Amount::from_sat(req.sats)).await?;
    Ok(Json(FaucetResponse { txid }))
}

#[derive(Debug, Deserialize, Serialize)]
struct AutomineRequest {
    seconds: u64,
}

async fn automine(
    State(state): State<Arc<Shared>>,
    body: String,
) -> HttpResult<Json<AutomineRequest>> {
    let req: AutomineRequest = json_body(&body)?;
    state.set_automine(Some(Duration::from_secs(req.seconds)));
    Ok(Json(req))
}

#[derive(Debug, Deserialize, Serialize)]
struct FeeEstimateRequest {
    sat_per_vb: f64,
}

async fn fee_estimate(
    State(state): State<Arc<Shared>>,
    body: String,
) -> HttpResult<Json<FeeEstimateRequest>> {
    let req: FeeEstimateRequest = json_body(&body)?;
    if !req.sat_per_vb.is_finite() || req.sat_per_vb < 0.0 {
        return Err(HttpError::bad_request("sat_per_vb must be a number >= 0"));
    }
    state.set_fee_floor(req.sat_per_vb);
    Ok(Json(req))
}

async fn info(State(state): State<Arc<Shared>>) -> HttpResult<Json<Value>> {
    let height = state.chain.sync().await?;
    let tip = state.chain.read().tip().map(|(_, hash)| hash);
    let (user, password) = state.rpc.credentials();
    Ok(Json(json!({
        "network": "regtest",
        "rpc_url": state.rpc.url(),
        "rpc_user": user,
        "rpc_password": password,
        "esplora_url": state.esplora_url,
        "tip": { "height": height.to_consensus_u32(), "hash": tip },
        "faucet_address": state.faucet.address().to_string(),
    })))
}
