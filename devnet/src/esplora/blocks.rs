//! Esplora's block routes: tip, heights, block info, headers, raw blocks and block txids.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use bitcoin::consensus::encode::{serialize, serialize_hex};

use super::json::{BlockJson, BlockStatusJson, TxJson};
use super::{octets, parse_block_hash, parse_number, text, HttpError, HttpResult};
use crate::index::{IndexStore, MempoolSnapshot};
use crate::state::Shared;

/// Blocks per `/blocks` page (as Esplora).
const BLOCKS_PAGE: u32 = 10;
/// Transactions per `/block/:hash/txs` page (as Esplora).
const TXS_PAGE: usize = 25;

pub(super) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/blocks/tip/height", get(tip_height))
        .route("/blocks/tip/hash", get(tip_hash))
        .route("/blocks", get(recent_blocks))
        .route("/blocks/{start}", get(blocks_from))
        .route("/block-height/{height}", get(hash_at_height))
        .route("/block/{hash}", get(block))
        .route("/block/{hash}/header", get(header))
        .route("/block/{hash}/status", get(status))
        .route("/block/{hash}/raw", get(raw))
        .route("/block/{hash}/txids", get(txids))
        .route("/block/{hash}/txid/{index}", get(txid_at))
        .route("/block/{hash}/txs", get(first_txs))
        .route("/block/{hash}/txs/{start}", get(txs_from))
}

fn no_block() -> HttpError {
    HttpError::not_found("Block not found")
}

/// Syncs the index and returns the height of the indexed block `hash`.
async fn indexed_height(state: &Shared, hash: &str) -> HttpResult<u32> {
    let hash = parse_block_hash(hash)?;
    state.chain.sync().await?;
    let height = state.chain.read().height_of(&hash);
    height.ok_or_else(no_block)
}

async fn tip_height(State(state): State<Arc<Shared>>) -> HttpResult<Response> {
    let height = state.chain.sync().await?;
    Ok(text(height.to_consensus_u32().to_string()))
}

async fn tip_hash(State(state): State<Arc<Shared>>) -> HttpResult<Response> {
    state.chain.sync().await?;
    let tip = state.chain.read().tip();
    let (_, hash) = tip.ok_or_else(no_block)?;
    Ok(text(hash.to_string()))
}

fn page_of_blocks(store: &IndexStore, start: u32) -> Vec<BlockJson> {
    (0..=start)
        .rev()
        .take(BLOCKS_PAGE as usize)
        .filter_map(|h| BlockJson::at(store, h))
        .collect()
}

async fn recent_blocks(State(state): State<Arc<Shared>>) -> HttpResult<Json<Vec<BlockJson>>> {
    let tip = state.chain.sync().await?.to_consensus_u32();
    Ok(Json(page_of_blocks(&state.chain.read(), tip)))
}

async fn blocks_from(
    State(state): State<Arc<Shared>>,
    Path(start): Path<String>,
) -> HttpResult<Json<Vec<BlockJson>>> {
    let start: u32 = parse_number(&start, "height")?;
    let tip = state.chain.sync().await?.to_consensus_u32();
    Ok(Json(page_of_blocks(&state.chain.read(), start.min(tip))))
}

async fn hash_at_height(
    State(state): State<Arc<Shared>>,
    Path(height): Path<String>,
) -> HttpResult<Response> {
    let height: u32 = parse_number(&height, "height")?;
    state.chain.sync().await?;
    let hash = state.chain.read().block(height).map(|b| b.hash);
    Ok(text(hash.ok_or_else(no_block)?.to_string()))
}

async fn block(
    State(state): State<Arc<Shared>>,
    Path(hash): Path<String>,
) -> HttpResult<Json<BlockJson>> {
    let height = indexed_height(&state, &hash).await?;
    let block = BlockJson::at(&state.chain.read(), height);
    Ok(Json(block.ok_or_else(no_block)?))
}

async fn header(
    State(state): State<Arc<Shared>>,
    Path(hash): Path<String>,
) -> HttpResult<Response> {
    let height = indexed_height(&state, &hash).await?;
    let header = state.chain.read().block(height).map(|b| b.header);
    Ok(text(serialize_hex(&header.ok_or_else(no_block)?)))
}

async fn status(
    State(state): State<Arc<Shared>>,
    Path(hash): Path<String>,
) -> HttpResult<Json<BlockStatusJson>> {
    let hash = parse_block_hash(&hash)?;
    state.chain.sync().await?;
    let store = state.chain.read();
    let status = match store.height_of(&hash) {
        Some(height) => BlockStatusJson {
            in_best_chain: true,
            height: Some(height),
            next_best: store.block(height + 1).map(|b| b.hash),
        },
        None => BlockStatusJson {
            in_best_chain: false,
            height: None,
            next_best: None,
        },
    };
    Ok(Json(status))
}

async fn raw(State(state): State<Arc<Shared>>, Path(hash): Path<String>) -> HttpResult<Response> {
    let hash = parse_block_hash(&hash)?;
    let block = state.rpc.get_block(&hash).await?.ok_or_else(no_block)?;
    Ok(octets(serialize(&block)))
}

async fn txids(
    State(state): State<Arc<Shared>>,
    Path(hash): Path<String>,
) -> HttpResult<Json<Vec<bitcoin::Txid>>> {
    let height = indexed_height(&state, &hash).await?;
    let txids = state.chain.read().block(height).map(|b| b.txids.clone());
    Ok(Json(txids.ok_or_else(no_block)?))
}

async fn txid_at(
    State(state): State<Arc<Shared>>,
    Path((hash, index)): Path<(String, String)>,
) -> HttpResult<Response> {
    let index: usize = parse_number(&index, "index")?;
    let height = indexed_height(&state, &hash).await?;
    let store = state.chain.read();
    let block = store.block(height).ok_or_else(no_block)?;
    let txid = block
        .txids
        .get(index)
        .ok_or_else(|| HttpError::not_found("Transaction index out of range"))?;
    Ok(text(txid.to_string()))
}

fn page_of_txs(store: &IndexStore, height: u32, start: usize) -> HttpResult<Vec<TxJson>> {
    if !start.is_multiple_of(TXS_PAGE) {
        return Err(HttpError::bad_request(format!(
            "start index must be a multiple of {TXS_PAGE}"
        )));
    }
    let block = store.block(height).ok_or_else(no_block)?;
    if start >= block.txids.len() && start > 0 {
        return Err(HttpError::bad_request("start index out of range"));
    }
    // Confirmed transactions' inputs are all in the index; no mempool needed.
    let no_mempool = MempoolSnapshot::default();
    Ok(block
        .txids
        .iter()
        .skip(start)
        .take(TXS_PAGE)
        .filter_map(|txid| store.tx(txid))
        .map(|c| TxJson::new(store, &no_mempool, &c.tx))
        .collect())
}

async fn first_txs(
    State(state): State<Arc<Shared>>,
    Path(hash): Path<String>,
) -> HttpResult<Json<Vec<TxJson>>> {
    let height = indexed_height(&state, &hash).await?;
    let page = page_of_txs(&state.chain.read(), height, 0)?;
    Ok(Json(page))
}

async fn txs_from(
    State(state): State<Arc<Shared>>,
    Path((hash, start)): Path<(String, String)>,
) -> HttpResult<Json<Vec<TxJson>>> {
    let start: usize = parse_number(&start, "start index")?;
    let height = indexed_height(&state, &hash).await?;
    let page = page_of_txs(&state.chain.read(), height, start)?;
    Ok(Json(page))
}
