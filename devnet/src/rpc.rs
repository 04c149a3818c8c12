//! A small JSON-RPC client for bitcoind, with typed helpers for the calls the devnet and its
//! tests need. Every reply from the node is decoded and checked; nothing here panics on it.

use std::time::Duration;

use bitcoin::absolute::Height;
use bitcoin::consensus::encode::{deserialize_hex, serialize_hex};
use bitcoin::{Address, Amount, Block, BlockHash, FeeRate, MerkleBlock, OutPoint, ScriptBuf};
use bitcoin::{Transaction, Txid, Wtxid};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// bitcoind's error code for "no such transaction / block / entry".
const RPC_INVALID_ADDRESS_OR_KEY: i64 = -5;
/// How long one RPC call may take (mining many blocks is the slowest thing we ask for).
const RPC_TIMEOUT: Duration = Duration::from_secs(120);

/// What went wrong talking to bitcoind.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RpcError {
    /// The HTTP request did not complete (node down, refused, timed out).
    #[error("bitcoind RPC `{method}` failed to reach the node: {source}")]
    Transport {
        /// The RPC method called.
        method: String,
        /// The underlying HTTP error.
        source: reqwest::Error,
    },
    /// bitcoind answered with an error object.
    #[error("bitcoind RPC `{method}` returned error {code}: {message}")]
    Node {
        /// The RPC method called.
        method: String,
        /// bitcoind's error code (e.g. -26 for a policy rejection).
        code: i64,
        /// bitcoind's message, e.g. the mempool reject reason.
        message: String,
    },
    /// bitcoind answered with something that is not what the method returns.
    #[error("bitcoind RPC `{method}` returned an unexpected reply: {detail}")]
    Decode {
        /// The RPC method called.
        method: String,
        /// What did not fit.
        detail: String,
    },
}

impl RpcError {
    /// bitcoind's error code and message, if the node itself rejected the call.
    pub fn node_error(&self) -> Option<(i64, &str)> {
        match self {
            RpcError::Node { code, message, .. } => Some((*code, message.as_str())),
            _ => None,
        }
    }

    /// True if bitcoind said the requested item (transaction, block, entry) does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, RpcError::Node { code, .. } if *code == RPC_INVALID_ADDRESS_OR_KEY)
    }

    fn decode(method: &str, detail: impl ToString) -> Self {
        RpcError::Decode {
            method: method.to_owned(),
            detail: detail.to_string(),
        }
    }
}

/// A JSON-RPC client for one bitcoind, authenticated with rpcuser/rpcpassword.
///
/// Cheap to clone. It never uses a proxy (the node is always on loopback) and keeps no idle
/// connections open.
#[derive(Clone, Debug)]
pub struct RpcClient {
    http: reqwest::Client,
    url: String,
    user: String,
    password: String,
}

/// One reply to `testmempoolaccept`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct MempoolAcceptResult {
    /// The transaction's txid.
    pub txid: Txid,
    /// The transaction's wtxid.
    pub wtxid: Wtxid,
    /// Whether the mempool would accept it (absent when the package as a whole failed early).
    #[serde(default)]
    pub allowed: Option<bool>,
    /// Why it would be rejected, e.g. `min relay fee not met`.
    #[serde(rename = "reject-reason", default)]
    pub reject_reason: Option<String>,
    /// Further detail bitcoind gives for some rejections.
    #[serde(rename = "reject-details", default)]
    pub reject_details: Option<String>,
    /// Virtual size, when accepted.
    #[serde(default)]
    pub vsize: Option<u64>,
}

impl MempoolAcceptResult {
    /// True only if bitcoind said `allowed: true`.
    pub fn is_allowed(&self) -> bool {
        self.allowed == Some(true)
    }
}

/// The reply to `submitpackage`, field for field (this is also what `POST /txs/package` returns,
/// and what esplora-client's `submit_package` reads).
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct SubmitPackageResult {
    /// `"success"` when every transaction is in the mempool.
    pub package_msg: String,
    /// Per-transaction results keyed by wtxid.
    #[serde(rename = "tx-results")]
    pub tx_results: std::collections::BTreeMap<Wtxid, PackageTxResult>,
    /// Transactions that were replaced.
    #[serde(
        rename = "replaced-transactions",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub replaced_transactions: Option<Vec<Txid>>,
}

impl SubmitPackageResult {
    /// True if bitcoind accepted the whole package.
    pub fn is_success(&self) -> bool {
        self.package_msg == "success"
    }
}

/// One transaction's outcome inside [`SubmitPackageResult`].
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct PackageTxResult {
    /// The transaction's txid.
    pub txid: Txid,
    /// Set if a same-txid transaction with another witness was already in the mempool.
    #[serde(
        rename = "other-wtxid",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub other_wtxid: Option<Wtxid>,
    /// Sigops-adjusted virtual size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vsize: Option<u64>,
    /// Fees, when accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fees: Option<PackageTxFees>,
    /// The reject reason, when rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Fees of one accepted package transaction.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct PackageTxFees {
    /// The transaction's own fee.
    #[serde(with = "bitcoin::amount::serde::as_btc")]
    pub base: Amount,
    /// The feerate it was accepted at, in BTC/kvB (absent if it was already in the mempool).
    #[serde(
        rename = "effective-feerate",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub effective_feerate: Option<f64>,
    /// Wtxids whose fees and sizes make up `effective_feerate`.
    #[serde(
        rename = "effective-includes",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub effective_includes: Option<Vec<Wtxid>>,
}

/// The parts of `getmempoolentry` the devnet uses.
#[derive(Clone, Debug, Deserialize)]
pub struct MempoolEntry {
    /// Virtual size.
    pub vsize: u64,
    /// Weight.
    pub weight: u64,
    /// Unix time it entered the mempool.
    pub time: u64,
    /// Tip height when it entered.
    pub height: u32,
    /// Its fees.
    pub fees: MempoolEntryFees,
    /// Unconfirmed parents.
    pub depends: Vec<Txid>,
    /// Unconfirmed children.
    pub spentby: Vec<Txid>,
}

/// Fees reported in a [`MempoolEntry`].
#[derive(Clone, Debug, Deserialize)]
pub struct MempoolEntryFees {
    /// The transaction's own fee.
    #[serde(with = "bitcoin::amount::serde::as_btc")]
    pub base: Amount,
    /// The fee after `prioritisetransaction`.
    #[serde(with = "bitcoin::amount::serde::as_btc")]
    pub modified: Amount,
}

/// The reply to `gettxout`: an unspent output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxOutInfo {
    /// The tip it was looked up against.
    pub bestblock: BlockHash,
    /// Confirmations (0 for a mempool output).
    pub confirmations: u32,
    /// The output's value.
    pub value: Amount,
    /// The output's script.
    pub script_pubkey: ScriptBuf,
    /// Whether it is a coinbase output.
    pub coinbase: bool,
}

#[derive(Deserialize)]
struct RawTxOut {
    bestblock: BlockHash,
    confirmations: u32,
    #[serde(with = "bitcoin::amount::serde::as_btc")]
    value: Amount,
    #[serde(rename = "scriptPubKey")]
    script_pubkey: RawScript,
    coinbase: bool,
}

#[derive(Deserialize)]
struct RawScript {
    hex: ScriptBuf,
}

#[derive(Deserialize)]
struct RawFeeEstimate {
    feerate: Option<f64>,
}

#[derive(Deserialize)]
struct RawMempoolInfo {
    mempoolminfee: f64,
    minrelaytxfee: f64,
}

#[derive(Deserialize)]
struct Reply {
    #[serde(default)]
    result: Value,
    #[serde(default)]
    error: Option<ReplyError>,
}

#[derive(Deserialize)]
struct ReplyError {
    code: i64,
    message: String,
}

impl RpcClient {
    /// A client for the node at `url` (e.g. `http://127.0.0.1:18443`).
    pub fn new(
        url: impl Into<String>,
        user: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        let http = reqwest::Client::builder()
            .no_proxy()
            // No idle keep-alive connections: bitcoind's `stop` waits for open HTTP
            // connections to close, so pooled ones would stall shutdown until it is killed.
            .pool_max_idle_per_host(0)
            .timeout(RPC_TIMEOUT)
            .build()
            // Building a plain HTTP client without TLS or proxies has no failure path left;
            // fall back to the default client rather than panic if that ever changes.
            .unwrap_or_default();
        RpcClient {
            http,
            url: url.into(),
            user: user.into(),
            password: password.into(),
        }
    }

    /// The node's RPC URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The rpcuser and rpcpassword this client authenticates with.
    pub fn credentials(&self) -> (&str, &str) {
        (&self.user, &self.password)
    }

    /// Calls any RPC method and decodes its result as `T`.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        params: &[Value],
    ) -> Result<T, RpcError> {
        let body = json!({"jsonrpc": "1.0", "id": "devnet", "method": method, "params": params});
        let response = self
            .http
            .post(&self.url)
            .basic_auth(&self.user, Some(&self.password))
            .json(&body)
            .send()
            .await
            .map_err(|source| RpcError::Transport {
                method: method.to_owned(),
                source,
            })?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|source| RpcError::Transport {
                method: method.to_owned(),
                source,
            })?;
        let reply: Reply = serde_json::from_str(&text).map_err(|_| {
            RpcError::decode(method, format!("HTTP {status}: {}", truncate(&text, 200)))
        })?;
        if let Some(err) = reply.error {
            return Err(RpcError::Node {
                method: method.to_owned(),
                code: err.code,
                message: err.message,
            });
        }
        serde_json::from_value(reply.result).map_err(|e| RpcError::decode(method, e))
    }

    /// Like [`call`](Self::call) but maps "not found" (-5) to `None`.
    async fn call_opt<T: DeserializeOwned>(
        &self,
        method: &str,
        params: &[Value],
    ) -> Result<Option<T>, RpcError> {
        match self.call(method, params).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `getblockcount`: the height of the node's tip.
    pub async fn get_block_count(&self) -> Result<Height, RpcError> {
        let n: u32 = self.call("getblockcount", &[]).await?;
        Height::from_consensus(n).map_err(|e| RpcError::decode("getblockcount", e))
    }

    /// `getbestblockhash`: the hash of the node's tip.
    pub async fn get_best_block_hash(&self) -> Result<BlockHash, RpcError> {
        self.call("getbestblockhash", &[]).await
    }

    /// `getblockhash`: the hash of the best-chain block at `height`, `None` above the tip.
    pub async fn get_block_hash(&self, height: Height) -> Result<Option<BlockHash>, RpcError> {
        match self
            .call("getblockhash", &[json!(height.to_consensus_u32())])
            .await
        {
            Ok(h) => Ok(Some(h)),
            // -8: "Block height out of range".
            Err(RpcError::Node { code: -8, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `getblock <hash> 0`: the raw block, `None` if unknown.
    pub async fn get_block(&self, hash: &BlockHash) -> Result<Option<Block>, RpcError> {
        let hex: Option<String> = self.call_opt("getblock", &[json!(hash), json!(0)]).await?;
        hex.map(|h| deserialize_hex(&h).map_err(|e| RpcError::decode("getblock", e)))
            .transpose()
    }

    /// `getrawtransaction`: a mempool or (thanks to `-txindex`) confirmed transaction.
    pub async fn get_raw_transaction(&self, txid: &Txid) -> Result<Option<Transaction>, RpcError> {
        let hex: Option<String> = self.call_opt("getrawtransaction", &[json!(txid)]).await?;
        hex.map(|h| deserialize_hex(&h).map_err(|e| RpcError::decode("getrawtransaction", e)))
            .transpose()
    }

    /// `sendrawtransaction`: submits one transaction to the mempool.
    ///
    /// A policy or consensus rejection comes back as [`RpcError::Node`] carrying the reason.
    pub async fn send_raw_transaction(&self, tx: &Transaction) -> Result<Txid, RpcError> {
        self.call("sendrawtransaction", &[json!(serialize_hex(tx))])
            .await
    }

    /// `testmempoolaccept`: whether each transaction would be accepted, and if not, why.
    pub async fn test_mempool_accept(
        &self,
        txs: &[Transaction],
    ) -> Result<Vec<MempoolAcceptResult>, RpcError> {
        let hexes: Vec<String> = txs.iter().map(serialize_hex).collect();
        self.call("testmempoolaccept", &[json!(hexes)]).await
    }

    /// `submitpackage`: submits a child with its unconfirmed parents (parents first).
    ///
    /// `max_fee_rate` is in BTC/kvB and `max_burn_amount` in BTC, as bitcoind takes them.
    pub async fn submit_package(
        &self,
        txs: &[Transaction],
        max_fee_rate: Option<f64>,
        max_burn_amount: Option<f64>,
    ) -> Result<SubmitPackageResult, RpcError> {
        let hexes: Vec<String> = txs.iter().map(serialize_hex).collect();
        let mut params = vec![json!(hexes)];
        if max_fee_rate.is_some() || max_burn_amount.is_some() {
            params.push(max_fee_rate.map_or(Value::Null, |r| json!(r)));
        }
        if let Some(burn) = max_burn_amount {
            params.push(json!(burn));
        }
        self.call("submitpackage", &params).await
    }

    /// `generatetoaddress`: mines `blocks` blocks paying `address`; returns their hashes.
    pub async fn generate_to_address(
        &self,
        blocks: u32,
        address: &Address,
    ) -> Result<Vec<BlockHash>, RpcError> {
        self.call(
            "generatetoaddress",
            &[json!(blocks), json!(address.to_string())],
        )
        .await
    }

    /// `getrawmempool`: the txids in the mempool.
    pub async fn get_raw_mempool(&self) -> Result<Vec<Txid>, RpcError> {
        self.call("getrawmempool", &[]).await
    }

    /// `getmempoolentry`: a mempool transaction's entry, `None` if it is not in the mempool.
    pub async fn get_mempool_entry(&self, txid: &Txid) -> Result<Option<MempoolEntry>, RpcError> {
        self.call_opt("getmempoolentry", &[json!(txid)]).await
    }

    /// `gettxout`: the unspent output at `outpoint`, `None` if spent or unknown.
    pub async fn get_tx_out(
        &self,
        outpoint: &OutPoint,
        include_mempool: bool,
    ) -> Result<Option<TxOutInfo>, RpcError> {
        let raw: Option<RawTxOut> = self
            .call(
                "gettxout",
                &[
                    json!(outpoint.txid),
                    json!(outpoint.vout),
                    json!(include_mempool),
                ],
            )
            .await?;
        Ok(raw.map(|r| TxOutInfo {
            bestblock: r.bestblock,
            confirmations: r.confirmations,
            value: r.value,
            script_pubkey: r.script_pubkey.hex,
            coinbase: r.coinbase,
        }))
    }

    /// `estimatesmartfee`: the estimated feerate to confirm within `target` blocks, `None` when
    /// the node has no estimate (usual on a young regtest chain).
    pub async fn estimate_smart_fee(&self, target: u16) -> Result<Option<FeeRate>, RpcError> {
        let raw: RawFeeEstimate = self.call("estimatesmartfee", &[json!(target)]).await?;
        Ok(raw.feerate.and_then(btc_per_kvb_to_fee_rate))
    }

    /// The lowest feerate the node's mempool takes now: the larger of `getmempoolinfo`'s
    /// `mempoolminfee` (rises when the mempool is full) and `minrelaytxfee` (its `-minrelaytxfee`).
    pub async fn mempool_min_fee(&self) -> Result<FeeRate, RpcError> {
        let raw: RawMempoolInfo = self.call("getmempoolinfo", &[]).await?;
        let rate = raw.mempoolminfee.max(raw.minrelaytxfee);
        btc_per_kvb_to_fee_rate(rate)
            .ok_or_else(|| RpcError::decode("getmempoolinfo", format!("feerate {rate}")))
    }

    /// `gettxoutproof`: a merkle-block proof that `txid` is in a block, `None` if unconfirmed.
    pub async fn get_tx_out_proof(&self, txid: &Txid) -> Result<Option<MerkleBlock>, RpcError> {
        let hex: Option<String> = self.call_opt("gettxoutproof", &[json!([txid])]).await?;
        hex.map(|h| deserialize_hex(&h).map_err(|e| RpcError::decode("gettxoutproof", e)))
            .transpose()
    }

    /// `stop`: asks bitcoind to shut down (it exits shortly after answering).
    pub async fn stop(&self) -> Result<(), RpcError> {
        let _: Value = self.call("stop", &[]).await?;
        Ok(())
    }
}

/// Converts bitcoind's BTC/kvB into a [`FeeRate`] (rounded down to whole sat/kwu).
pub(crate) fn btc_per_kvb_to_fee_rate(btc_per_kvb: f64) -> Option<FeeRate> {
    let sat_per_kwu = btc_per_kvb * 100_000_000.0 / 4.0;
    (sat_per_kwu.is_finite() && sat_per_kwu >= 0.0)
        .then(|| FeeRate::from_sat_per_kwu(sat_per_kwu as u64))
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submitpackage_reply_round_trips() {
        let raw = r#"{"package_msg":"success","tx-results":{
            "0000000000000000000000000000000000000000000000000000000000000001":{
              "txid":"0000000000000000000000000000000000000000000000000000000000000002",
              "vsize":150,"fees":{"base":0.00001000,"effective-feerate":0.0000500,
              "effective-includes":["0000000000000000000000000000000000000000000000000000000000000001"]}}},
            "replaced-transactions":[]}"#;
        let parsed: SubmitPackageResult = serde_json::from_str(raw).expect("valid reply");
        assert!(parsed.is_success());
        let again = serde_json::to_value(&parsed).expect("serializable");
        let fees = &again["tx-results"]
            ["0000000000000000000000000000000000000000000000000000000000000001"]["fees"];
        assert_eq!(fees["base"], json!(0.00001));
        assert_eq!(fees["effective-feerate"], json!(0.00005));
    }

    #[test]
    fn fee_rate_conversion() {
        let rate = btc_per_kvb_to_fee_rate(0.00001).expect("finite");
        assert_eq!(rate.to_sat_per_vb_floor(), 1);
        assert!(btc_per_kvb_to_fee_rate(f64::NAN).is_none());
    }
}
