//! Esplora's transaction routes: lookups, status, merkle proofs, outspends, and broadcasting
//! single transactions (`POST /tx`) and packages (`POST /txs/package`).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use bitcoin::consensus::encode::{deserialize_hex, serialize, serialize_hex};
use bitcoin::hashes::{sha256d, Hash};
use bitcoin::{OutPoint, Transaction, Txid};
use serde::Deserialize;

use super::json::{prevout, MerkleProofJson, OutspendJson, TxJson, TxStatusJson};
use super::{octets, parse_number, parse_txid, text, HttpError, HttpResult};
use crate::index::{IndexStore, MempoolSnapshot};
use crate::rpc::{RpcError, SubmitPackageResult};
use crate::state::Shared;

pub(super) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/tx", post(broadcast))
        .route("/txs/package", post(submit_package))
        .route("/tx/{txid}", get(tx))
        .route("/tx/{txid}/hex", get(tx_hex))
        .route("/tx/{txid}/raw", get(tx_raw))
        .route("/tx/{txid}/status", get(tx_status))
        .route("/tx/{txid}/merkle-proof", get(merkle_proof))
        .route("/tx/{txid}/merkleblock-proof", get(merkleblock_proof))
        .route("/tx/{txid}/outspend/{vout}", get(outspend))
        .route("/tx/{txid}/outspends", get(outspends))
}

fn no_tx() -> HttpError {
    HttpError::not_found("Transaction not found")
}

/// A confirmed or mempool transaction.
fn find_tx(store: &IndexStore, mempool: &MempoolSnapshot, txid: &Txid) -> Option<Arc<Transaction>> {
    store
        .tx(txid)
        .map(|c| Arc::clone(&c.tx))
        .or_else(|| mempool.get(txid).map(|m| Arc::clone(&m.tx)))
}

/// Looks `txid` up in a consistent view of chain and mempool.
async fn lookup(
    state: &Shared,
    txid: &str,
) -> HttpResult<(Arc<Transaction>, Arc<MempoolSnapshot>)> {
    let txid = parse_txid(txid)?;
    let mempool = state.chain.view().await?;
    let tx = find_tx(&state.chain.read(), &mempool, &txid).ok_or_else(no_tx)?;
    Ok((tx, mempool))
}

async fn tx(
    State(state): State<Arc<Shared>>,
    Path(txid): Path<String>,
) -> HttpResult<Json<TxJson>> {
    let (tx, mempool) = lookup(&state, &txid).await?;
    Ok(Json(TxJson::new(&state.chain.read(), &mempool, &tx)))
}

async fn tx_hex(
    State(state): State<Arc<Shared>>,
    Path(txid): Path<String>,
) -> HttpResult<Response> {
    let (tx, _) = lookup(&state, &txid).await?;
    Ok(text(serialize_hex(tx.as_ref())))
}

async fn tx_raw(
    State(state): State<Arc<Shared>>,
    Path(txid): Path<String>,
) -> HttpResult<Response> {
    let (tx, _) = lookup(&state, &txid).await?;
    Ok(octets(serialize(tx.as_ref())))
}

async fn tx_status(
    State(state): State<Arc<Shared>>,
    Path(txid): Path<String>,
) -> HttpResult<Json<TxStatusJson>> {
    let txid = parse_txid(&txid)?;
    state.chain.sync().await?;
    Ok(Json(TxStatusJson::of(&state.chain.read(), &txid)))
}

/// The merkle branch for the transaction at `pos` among `txids`, deepest pair first.
pub(crate) fn merkle_branch(txids: &[Txid], mut pos: usize) -> Vec<Txid> {
    let mut level: Vec<sha256d::Hash> = txids.iter().map(|t| t.to_raw_hash()).collect();
    let mut branch = Vec::new();
    while level.len() > 1 {
        let sibling = if pos.is_multiple_of(2) {
            level.get(pos + 1).unwrap_or(&level[pos])
        } else {
            &level[pos - 1]
        };
        branch.push(Txid::from_raw_hash(*sibling));
        level = level
            .chunks(2)
            .map(|pair| {
                let (left, right) = (pair[0], *pair.get(1).unwrap_or(&pair[0]));
                let mut bytes = [0u8; 64];
                bytes[..32].copy_from_slice(left.as_byte_array());
                bytes[32..].copy_from_slice(right.as_byte_array());
                sha256d::Hash::hash(&bytes)
            })
            .collect();
        pos /= 2;
    }
    branch
}

async fn merkle_proof(
    State(state): State<Arc<Shared>>,
    Path(txid): Path<String>,
) -> HttpResult<Json<MerkleProofJson>> {
    let txid = parse_txid(&txid)?;
    state.chain.sync().await?;
    let store = state.chain.read();
    let unconfirmed = || HttpError::not_found("Transaction not found or is unconfirmed");
    let confirmed = store.tx(&txid).ok_or_else(unconfirmed)?;
    let block = store.block(confirmed.height).ok_or_else(unconfirmed)?;
    Ok(Json(MerkleProofJson {
        block_height: confirmed.height,
        merkle: merkle_branch(&block.txids, confirmed.pos),
        pos: confirmed.pos,
    }))
}

async fn merkleblock_proof(
    State(state): State<Arc<Shared>>,
    Path(txid): Path<String>,
) -> HttpResult<Response> {
    let txid = parse_txid(&txid)?;
    let unconfirmed = || HttpError::not_found("Transaction not found or is unconfirmed");
    let proof = state.rpc.get_tx_out_proof(&txid).await?;
    Ok(text(serialize_hex(&proof.ok_or_else(unconfirmed)?)))
}

/// The spend status of one output: confirmed spend, mempool spend, or unspent.
fn outspend_of(store: &IndexStore, mempool: &MempoolSnapshot, outpoint: &OutPoint) -> OutspendJson {
    if let Some(spend) = store.spend(outpoint) {
        return OutspendJson {
            spent: true,
            txid: Some(spend.txid),
            vin: Some(spend.vin),
            status: Some(TxStatusJson::at(store, spend.height)),
        };
    }
    match mempool.spender_of(outpoint) {
        Some((txid, vin)) if store.tx(&txid).is_none() => OutspendJson {
            spent: true,
            txid: Some(txid),
            vin: Some(vin),
            status: Some(TxStatusJson::UNCONFIRMED),
        },
        _ => OutspendJson {
            spent: false,
            txid: None,
            vin: None,
            status: None,
        },
    }
}

async fn outspend(
    State(state): State<Arc<Shared>>,
    Path((txid, vout)): Path<(String, String)>,
) -> HttpResult<Json<OutspendJson>> {
    let vout: u32 = parse_number(&vout, "output index")?;
    let (tx, mempool) = lookup(&state, &txid).await?;
    let outpoint = OutPoint::new(tx.compute_txid(), vout);
    let store = state.chain.read();
    if prevout(&store, &mempool, &outpoint).is_none() {
        return Err(HttpError::not_found("Output not found"));
    }
    Ok(Json(outspend_of(&store, &mempool, &outpoint)))
}

async fn outspends(
    State(state): State<Arc<Shared>>,
    Path(txid): Path<String>,
) -> HttpResult<Json<Vec<OutspendJson>>> {
    let (tx, mempool) = lookup(&state, &txid).await?;
    let txid = tx.compute_txid();
    let store = state.chain.read();
    let all = (0..tx.output.len() as u32)
        .map(|vout| outspend_of(&store, &mempool, &OutPoint::new(txid, vout)))
        .collect();
    Ok(Json(all))
}

fn decode_tx(hex: &str) -> HttpResult<Transaction> {
    deserialize_hex(hex.trim())
        .map_err(|e| HttpError::bad_request(format!("Invalid transaction hex: {e}")))
}

/// bitcoind's rejection as electrs words it.
fn rejected(method: &str, e: RpcError) -> HttpError {
    match e.node_error() {
        Some((code, message)) => HttpError::bad_request(format!(
            "{method} RPC error: {}",
            serde_json::json!({"code": code, "message": message})
        )),
        None => e.into(),
    }
}

async fn broadcast(State(state): State<Arc<Shared>>, body: String) -> HttpResult<Response> {
    let tx = decode_tx(&body)?;
    let txid = state
        .rpc
        .send_raw_transaction(&tx)
        .await
        .map_err(|e| rejected("sendrawtransaction", e))?;
    tracing::debug!(%txid, "broadcast");
    Ok(text(txid.to_string()))
}

#[derive(Debug, Deserialize)]
struct PackageParams {
    maxfeerate: Option<f64>,
    maxburnamount: Option<f64>,
}

async fn submit_package(
    State(state): State<Arc<Shared>>,
    Query(params): Query<PackageParams>,
    body: String,
) -> HttpResult<Json<SubmitPackageResult>> {
    let hexes: Vec<String> = serde_json::from_str(&body).map_err(|e| {
        HttpError::bad_request(format!("expected a JSON array of hex transactions: {e}"))
    })?;
    let txs = hexes
        .iter()
        .map(|h| decode_tx(h))
        .collect::<HttpResult<Vec<_>>>()?;
    let result = state
        .rpc
        .submit_package(&txs, params.maxfeerate, params.maxburnamount)
        .await
        .map_err(|e| rejected("submitpackage", e))?;
    tracing::debug!(package_msg = %result.package_msg, txs = txs.len(), "package submitted");
    Ok(Json(result))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::TxMerkleNode;

    /// Folds a branch back up to the root, as a light client would.
    fn root_from_branch(txid: Txid, branch: &[Txid], mut pos: usize) -> TxMerkleNode {
        let mut node = txid.to_raw_hash();
        for sibling in branch {
            let mut bytes = [0u8; 64];
            let (l, r) = if pos.is_multiple_of(2) {
                (node, sibling.to_raw_hash())
            } else {
                (sibling.to_raw_hash(), node)
            };
            bytes[..32].copy_from_slice(l.as_byte_array());
            bytes[32..].copy_from_slice(r.as_byte_array());
            node = sha256d::Hash::hash(&bytes);
            pos /= 2;
        }
        TxMerkleNode::from_raw_hash(node)
    }

    #[test]
    fn merkle_branches_lead_to_the_root() {
        for n in 1..=9u8 {
            let txids: Vec<Txid> = (0..n).map(|i| Txid::from_byte_array([i + 1; 32])).collect();
            let root = bitcoin::merkle_tree::calculate_root(txids.iter().map(|t| t.to_raw_hash()))
                .map(TxMerkleNode::from_raw_hash)
                .expect("non-empty");
            for (pos, txid) in txids.iter().enumerate() {
                let branch = merkle_branch(&txids, pos);
                assert_eq!(
                    root_from_branch(*txid, &branch, pos),
                    root,
                    "n={n} pos={pos}"
                );
            }
        }
    }
}
