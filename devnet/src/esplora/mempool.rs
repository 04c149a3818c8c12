//! Esplora's mempool and fee routes: `/mempool`, `/mempool/txids`, `/mempool/recent` and
//! `/fee-estimates`.
//!
//! A young regtest chain has no fee estimates; targets bitcoind cannot estimate are filled with
//! [`FLOOR_SAT_PER_VB`] so wallets always get a usable number. No estimate is ever below what the
//! node's mempool takes now (`-minrelaytxfee`, or a full mempool's minimum), as public Esplora
//! servers report, so a wallet following the estimates is never refused for its fee.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use bitcoin::{Amount, Txid};

use super::json::{prevout, MempoolRecentJson, MempoolStatsJson};
use super::HttpResult;
use crate::index::{IndexStore, MempoolSnapshot, MempoolTx};
use crate::state::Shared;

/// Esplora's confirmation targets.
const TARGETS: [u16; 28] = [
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 144,
    504, 1008,
];
/// The feerate reported when bitcoind has no estimate, in sat/vB.
pub(crate) const FLOOR_SAT_PER_VB: f64 = 2.0;
/// How many transactions `/mempool/recent` lists.
const RECENT: usize = 10;

pub(super) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/mempool", get(stats))
        .route("/mempool/txids", get(txids))
        .route("/mempool/recent", get(recent))
        .route("/fee-estimates", get(fee_estimates))
}

/// Fee and vsize of a mempool transaction (fee 0 if an input is unknown).
fn fee_and_vsize(store: &IndexStore, mempool: &MempoolSnapshot, m: &MempoolTx) -> (Amount, u64) {
    let inputs: Option<Amount> =
        m.tx.input
            .iter()
            .map(|i| prevout(store, mempool, &i.previous_output).map(|o| o.value))
            .sum();
    let outputs: Amount = m.tx.output.iter().map(|o| o.value).sum();
    let fee = inputs
        .and_then(|i| i.checked_sub(outputs))
        .unwrap_or(Amount::ZERO);
    (fee, m.tx.vsize() as u64)
}

/// Unconfirmed transactions (the index may already have confirmed a few the snapshot holds).
fn pending<'a>(store: &IndexStore, mempool: &'a MempoolSnapshot) -> Vec<&'a MempoolTx> {
    mempool
        .newest_first()
        .into_iter()
        .filter(|m| store.tx(&m.txid).is_none())
        .collect()
}

async fn stats(State(state): State<Arc<Shared>>) -> HttpResult<Json<MempoolStatsJson>> {
    let mempool = state.chain.view().await?;
    let store = state.chain.read();
    let mut out = MempoolStatsJson {
        count: 0,
        vsize: 0,
        total_fee: 0,
        fee_histogram: Vec::new(),
    };
    for m in pending(&store, &mempool) {
        let (fee, vsize) = fee_and_vsize(&store, &mempool, m);
        out.count += 1;
        out.vsize += vsize;
        out.total_fee += fee.to_sat();
    }
    Ok(Json(out))
}

async fn txids(State(state): State<Arc<Shared>>) -> HttpResult<Json<Vec<Txid>>> {
    let mempool = state.chain.view().await?;
    let store = state.chain.read();
    Ok(Json(
        pending(&store, &mempool).iter().map(|m| m.txid).collect(),
    ))
}

async fn recent(State(state): State<Arc<Shared>>) -> HttpResult<Json<Vec<MempoolRecentJson>>> {
    let mempool = state.chain.view().await?;
    let store = state.chain.read();
    let list = pending(&store, &mempool)
        .into_iter()
        .take(RECENT)
        .map(|m| {
            let (fee, vsize) = fee_and_vsize(&store, &mempool, m);
            MempoolRecentJson {
                txid: m.txid,
                fee: fee.to_sat(),
                vsize,
                value: m.tx.output.iter().map(|o| o.value.to_sat()).sum(),
            }
        })
        .collect();
    Ok(Json(list))
}

async fn fee_estimates(
    State(state): State<Arc<Shared>>,
) -> HttpResult<Json<BTreeMap<String, f64>>> {
    let sat_per_vb = |r: bitcoin::FeeRate| r.to_sat_per_kwu() as f64 * 4.0 / 1000.0;
    let floor = sat_per_vb(state.rpc.mempool_min_fee().await?).max(state.fee_floor());
    let mut estimates = BTreeMap::new();
    for target in TARGETS {
        let rate = state.rpc.estimate_smart_fee(target).await?;
        let estimate = rate.map_or(FLOOR_SAT_PER_VB, sat_per_vb);
        estimates.insert(target.to_string(), estimate.max(floor));
    }
    Ok(Json(estimates))
}
