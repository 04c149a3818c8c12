//! Esplora's address and scripthash routes: stats, transaction history (mempool first, then
//! confirmed newest first, paged by last seen txid) and UTXOs.

use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use bitcoin::{Address, Network, OutPoint, Txid};
use serde_json::{json, Value};

use super::json::{prevout, TxJson, TxStatusJson, TxoSummaryJson, UtxoJson};
use super::{parse_txid, HttpError, HttpResult};
use crate::index::{IndexStore, MempoolSnapshot, MempoolTx, SpkHash};
use crate::state::Shared;

/// Confirmed transactions per page (as Esplora).
const CHAIN_PAGE: usize = 25;
/// Most mempool transactions listed (as Esplora).
const MEMPOOL_LIMIT: usize = 50;

pub(super) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/address/{addr}", get(address_stats))
        .route("/address/{addr}/txs", get(address_txs))
        .route("/address/{addr}/txs/chain", get(address_chain_txs))
        .route(
            "/address/{addr}/txs/chain/{last_seen}",
            get(address_chain_txs_after),
        )
        .route("/address/{addr}/txs/mempool", get(address_mempool_txs))
        .route("/address/{addr}/utxo", get(address_utxos))
        .route("/scripthash/{hash}", get(scripthash_stats))
        .route("/scripthash/{hash}/txs", get(scripthash_txs))
        .route("/scripthash/{hash}/txs/chain", get(scripthash_chain_txs))
        .route(
            "/scripthash/{hash}/txs/chain/{last_seen}",
            get(scripthash_chain_txs_after),
        )
        .route(
            "/scripthash/{hash}/txs/mempool",
            get(scripthash_mempool_txs),
        )
        .route("/scripthash/{hash}/utxo", get(scripthash_utxos))
}

fn parse_address(s: &str) -> HttpResult<SpkHash> {
    let unchecked = Address::from_str(s)
        .map_err(|e| HttpError::bad_request(format!("Invalid Bitcoin address: {e}")))?;
    let address = unchecked
        .require_network(Network::Regtest)
        .map_err(|_| HttpError::bad_request(format!("Address {s} is not a regtest address")))?;
    Ok(SpkHash::of(&address.script_pubkey()))
}

fn parse_scripthash(s: &str) -> HttpResult<SpkHash> {
    SpkHash::from_str(s).map_err(|_| HttpError::bad_request(format!("Invalid scripthash: {s}")))
}

/// True if `m` pays to or spends from `spk`.
fn touches(store: &IndexStore, mempool: &MempoolSnapshot, m: &MempoolTx, spk: &SpkHash) -> bool {
    m.tx.output
        .iter()
        .any(|o| SpkHash::of(&o.script_pubkey) == *spk)
        || m.tx.input.iter().any(|i| {
            prevout(store, mempool, &i.previous_output)
                .is_some_and(|p| SpkHash::of(&p.script_pubkey) == *spk)
        })
}

/// Mempool transactions touching `spk`, newest first (skipping any the index has confirmed).
fn mempool_history<'a>(
    store: &IndexStore,
    mempool: &'a MempoolSnapshot,
    spk: &SpkHash,
) -> Vec<&'a MempoolTx> {
    mempool
        .newest_first()
        .into_iter()
        .filter(|m| store.tx(&m.txid).is_none() && touches(store, mempool, m, spk))
        .collect()
}

/// `chain_stats` and `mempool_stats` for `spk`.
fn stats(
    store: &IndexStore,
    mempool: &MempoolSnapshot,
    spk: &SpkHash,
) -> (TxoSummaryJson, TxoSummaryJson) {
    let mut chain = TxoSummaryJson::default();
    for outpoint in store.funded(spk) {
        let Some(out) = store.output(outpoint) else {
            continue;
        };
        chain.add_funded(out.txout.value);
        if store.spend(outpoint).is_some() {
            chain.add_spent(out.txout.value);
        }
    }
    chain.tx_count = store.history(spk).len() as u32;

    let mut pending = TxoSummaryJson::default();
    for m in mempool_history(store, mempool, spk) {
        pending.tx_count += 1;
        for out in
            m.tx.output
                .iter()
                .filter(|o| SpkHash::of(&o.script_pubkey) == *spk)
        {
            pending.add_funded(out.value);
        }
        for input in &m.tx.input {
            if let Some(prev) = prevout(store, mempool, &input.previous_output) {
                if SpkHash::of(&prev.script_pubkey) == *spk {
                    pending.add_spent(prev.value);
                }
            }
        }
    }
    (chain, pending)
}

/// Unspent outputs to `spk`: confirmed ones not spent (in a block or the mempool), then
/// mempool ones not spent in the mempool.
fn utxos(store: &IndexStore, mempool: &MempoolSnapshot, spk: &SpkHash) -> Vec<UtxoJson> {
    let unspent_in_mempool = |op: &OutPoint| {
        mempool
            .spender_of(op)
            .is_none_or(|(txid, _)| store.tx(&txid).is_some())
    };
    let mut all: Vec<UtxoJson> = store
        .funded(spk)
        .iter()
        .filter(|op| store.spend(op).is_none() && unspent_in_mempool(op))
        .filter_map(|op| {
            let out = store.output(op)?;
            Some(UtxoJson {
                txid: op.txid,
                vout: op.vout,
                status: TxStatusJson::at(store, out.height),
                value: out.txout.value.to_sat(),
            })
        })
        .collect();
    for m in mempool_history(store, mempool, spk) {
        for (vout, out) in m.tx.output.iter().enumerate() {
            let op = OutPoint::new(m.txid, vout as u32);
            if SpkHash::of(&out.script_pubkey) == *spk && unspent_in_mempool(&op) {
                all.push(UtxoJson {
                    txid: m.txid,
                    vout: vout as u32,
                    status: TxStatusJson::UNCONFIRMED,
                    value: out.value.to_sat(),
                });
            }
        }
    }
    all
}

/// Up to one page of confirmed transactions touching `spk`, newest first, after `last_seen`.
fn chain_page(store: &IndexStore, spk: &SpkHash, last_seen: Option<Txid>) -> Vec<TxJson> {
    let newest_first = store.history(spk).iter().rev();
    let after: Vec<_> = match last_seen {
        None => newest_first.take(CHAIN_PAGE).collect(),
        Some(seen) => newest_first
            .skip_while(|r| r.txid != seen)
            .skip(1)
            .take(CHAIN_PAGE)
            .collect(),
    };
    let no_mempool = MempoolSnapshot::default();
    after
        .into_iter()
        .filter_map(|r| store.tx(&r.txid))
        .map(|c| TxJson::new(store, &no_mempool, &c.tx))
        .collect()
}

fn mempool_page(store: &IndexStore, mempool: &MempoolSnapshot, spk: &SpkHash) -> Vec<TxJson> {
    mempool_history(store, mempool, spk)
        .into_iter()
        .take(MEMPOOL_LIMIT)
        .map(|m| TxJson::new(store, mempool, &m.tx))
        .collect()
}

/// What a route asks for.
enum Want {
    Stats(Value),
    All,
    Chain(Option<Txid>),
    Mempool,
    Utxos,
}

async fn answer(state: &Shared, spk: SpkHash, want: Want) -> HttpResult<Json<Value>> {
    let mempool = state.chain.view().await?;
    let store = state.chain.read();
    let value = match want {
        Want::Stats(mut id) => {
            let (chain, pending) = stats(&store, &mempool, &spk);
            id["chain_stats"] = json!(chain);
            id["mempool_stats"] = json!(pending);
            id
        }
        Want::All => {
            let mut txs = mempool_page(&store, &mempool, &spk);
            txs.extend(chain_page(&store, &spk, None));
            json!(txs)
        }
        Want::Chain(last_seen) => json!(chain_page(&store, &spk, last_seen)),
        Want::Mempool => json!(mempool_page(&store, &mempool, &spk)),
        Want::Utxos => json!(utxos(&store, &mempool, &spk)),
    };
    Ok(Json(value))
}

type S = State<Arc<Shared>>;

async fn address_stats(State(s): S, Path(a): Path<String>) -> HttpResult<Json<Value>> {
    let spk = parse_address(&a)?;
    answer(&s, spk, Want::Stats(json!({ "address": a }))).await
}

async fn address_txs(State(s): S, Path(a): Path<String>) -> HttpResult<Json<Value>> {
    answer(&s, parse_address(&a)?, Want::All).await
}

async fn address_chain_txs(State(s): S, Path(a): Path<String>) -> HttpResult<Json<Value>> {
    answer(&s, parse_address(&a)?, Want::Chain(None)).await
}

async fn address_chain_txs_after(
    State(s): S,
    Path((a, seen)): Path<(String, String)>,
) -> HttpResult<Json<Value>> {
    let seen = parse_txid(&seen)?;
    answer(&s, parse_address(&a)?, Want::Chain(Some(seen))).await
}

async fn address_mempool_txs(State(s): S, Path(a): Path<String>) -> HttpResult<Json<Value>> {
    answer(&s, parse_address(&a)?, Want::Mempool).await
}

async fn address_utxos(State(s): S, Path(a): Path<String>) -> HttpResult<Json<Value>> {
    answer(&s, parse_address(&a)?, Want::Utxos).await
}

async fn scripthash_stats(State(s): S, Path(h): Path<String>) -> HttpResult<Json<Value>> {
    let spk = parse_scripthash(&h)?;
    answer(
        &s,
        spk,
        Want::Stats(json!({ "scripthash": spk.to_string() })),
    )
    .await
}

async fn scripthash_txs(State(s): S, Path(h): Path<String>) -> HttpResult<Json<Value>> {
    answer(&s, parse_scripthash(&h)?, Want::All).await
}

async fn scripthash_chain_txs(State(s): S, Path(h): Path<String>) -> HttpResult<Json<Value>> {
    answer(&s, parse_scripthash(&h)?, Want::Chain(None)).await
}

async fn scripthash_chain_txs_after(
    State(s): S,
    Path((h, seen)): Path<(String, String)>,
) -> HttpResult<Json<Value>> {
    let seen = parse_txid(&seen)?;
    answer(&s, parse_scripthash(&h)?, Want::Chain(Some(seen))).await
}

async fn scripthash_mempool_txs(State(s): S, Path(h): Path<String>) -> HttpResult<Json<Value>> {
    answer(&s, parse_scripthash(&h)?, Want::Mempool).await
}

async fn scripthash_utxos(State(s): S, Path(h): Path<String>) -> HttpResult<Json<Value>> {
    answer(&s, parse_scripthash(&h)?, Want::Utxos).await
}
