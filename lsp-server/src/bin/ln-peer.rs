//! `ln-peer`: "the rest of the Lightning Network" for a demo or a workshop on regtest. An LDK
//! node of its own (the same node code as the LSP's), funded from the devnet's faucet, with a
//! public channel to the LSP's Lightning node, and a small web page and JSON API to make
//! invoices that the wallets pay and to pay the wallets' invoices.
//!
//! On start it has the LSP's node open a public channel to it through the LSP's admin API
//! (funded from the devnet's faucet, pushing part of the capacity to this node, so money can
//! flow both ways at once) and mines the blocks the channel needs (regtest only). Then it
//! serves:
//!
//! - `GET /`: the page (make an invoice, pay an invoice, the channel and balance);
//! - `GET /info`: `{ node_id, channel_ready, can_send_sat, can_receive_sat }`;
//! - `POST /invoice` `{ amount_sat, description }`: `{ invoice }`;
//! - `POST /pay` `{ invoice }`: `{ paid: true, preimage, fee_msat }` or `{ paid: false, reason }`
//!   (waits up to 60 s for the outcome).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bitcoin::hashes::{sha256, Hash};
use bitcoin::{Amount, Network};
use clap::Parser;
use lsp_server::lightning::pay::{Outcome, OutsidePayment, PayOutcome};
use lsp_server::lightning::{LnNode, LnSettings, Report};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

/// "The rest of the Lightning Network" for a regtest demo.
#[derive(Debug, Parser)]
#[command(name = "ln-peer", version)]
struct Args {
    /// The devnet's Esplora URL (its `/devnet/faucet` and `/devnet/mine` fund and confirm).
    #[arg(long)]
    esplora_url: String,
    /// The LSP's HTTP URL (its terms name its Lightning node).
    #[arg(long)]
    lsp_url: String,
    /// The LSP's admin token file (`admin.token` in its data dir): the LSP's node opens the
    /// channel, through its admin API.
    #[arg(long)]
    lsp_admin_token: PathBuf,
    /// Where this node takes peers.
    #[arg(long, default_value = "127.0.0.1:8803")]
    listen: SocketAddr,
    /// Where the page and the API listen.
    #[arg(long, default_value = "127.0.0.1:8804")]
    http: SocketAddr,
    /// Its seed and state.
    #[arg(long)]
    data_dir: PathBuf,
    /// The channel's capacity (sat).
    #[arg(long, default_value_t = 1_000_000)]
    capacity_sat: u64,
    /// Pushed to this node at opening (sat): what it can pay the LSP's clients at once.
    #[arg(long, default_value_t = 400_000)]
    push_sat: u64,
}

/// Payments sent, waiting for their outcome.
type Waiting = Arc<Mutex<HashMap<sha256::Hash, oneshot::Sender<Outcome>>>>;

#[derive(Clone)]
struct AppState {
    ln: Arc<LnNode>,
    waiting: Waiting,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,ldk_node=warn,lightning=warn".into()),
        )
        .init();
    let args = Args::parse();
    std::fs::create_dir_all(&args.data_dir).context("creating the data dir")?;
    let esplora = args.esplora_url.trim_end_matches('/').to_string();
    let ln = Arc::new(
        LnNode::start(LnSettings {
            network: Network::Regtest,
            esplora_url: esplora.clone(),
            data_dir: args.data_dir.clone(),
            listen: args.listen,
            announce: None,
            alias: "the Lightning Network".into(),
        })
        .await
        .context("starting the node")?,
    );
    let waiting: Waiting = Arc::default();
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(ln.clone().handle_events(tx));
    tokio::spawn(route_outcomes(rx, waiting.clone()));
    let syncing = ln.clone();
    tokio::spawn(async move {
        loop {
            if let Err(e) = syncing.sync().await {
                tracing::debug!(error = %e, "sync failed; retrying");
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    });
    open_channel(&ln, &args, &esplora).await?;
    let app = Router::new()
        .route("/", get(page))
        .route("/info", get(info))
        .route("/invoice", post(invoice))
        .route("/pay", post(pay))
        .with_state(AppState { ln, waiting });
    let listener = tokio::net::TcpListener::bind(args.http)
        .await
        .with_context(|| format!("binding {}", args.http))?;
    tracing::info!(url = %format!("http://{}", args.http), "the Lightning Network's page");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

/// Sends each payment outcome to whoever waits for it.
async fn route_outcomes(mut rx: mpsc::Receiver<Report>, waiting: Waiting) {
    while let Some(report) = rx.recv().await {
        if let Report::Outcome(outcome) = report {
            let hash = match &outcome {
                Outcome::Paid { hash, .. } | Outcome::Failed { hash, .. } => *hash,
            };
            let waiter = waiting
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&hash);
            if let Some(w) = waiter {
                let _ = w.send(outcome);
            }
        }
    }
}

/// Unless it has one, has the LSP's node open a public channel to this node, through the
/// LSP's admin API: the LSP's node is funded from the faucet (the capacity, and its anchor
/// reserve), this node gets its own anchor reserve (an anchor channel's acceptor keeps one),
/// and the blocks the channel needs are mined.
async fn open_channel(ln: &LnNode, args: &Args, esplora: &str) -> Result<()> {
    if !ln.channels().await?.is_empty() {
        return Ok(());
    }
    let token = std::fs::read_to_string(&args.lsp_admin_token)
        .with_context(|| format!("reading {}", args.lsp_admin_token.display()))?;
    let token = token.trim();
    let http = reqwest::Client::new();
    let lsp = args.lsp_url.trim_end_matches('/');
    let admin = |path: &str| format!("{lsp}{path}");
    let mut lsp_address = None;
    for _ in 0..120 {
        if let Ok(r) = http
            .post(admin("/admin/ln/address"))
            .bearer_auth(token)
            .json(&json!({}))
            .send()
            .await
        {
            if let Ok(v) = r.json::<Value>().await {
                lsp_address = v["address"].as_str().map(str::to_owned);
                if lsp_address.is_some() {
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let Some(lsp_address) = lsp_address else {
        bail!("the LSP at {lsp} runs no Lightning node (start it with --ln-listen)");
    };
    let faucet = format!("{esplora}/devnet/faucet");
    let capacity = args.capacity_sat;
    send(
        &http,
        &faucet,
        json!({ "address": lsp_address, "sats": capacity + ANCHOR_RESERVE }),
    )
    .await?;
    let own = ln.new_address().await?;
    send(
        &http,
        &faucet,
        json!({ "address": own.to_string(), "sats": ANCHOR_RESERVE }),
    )
    .await?;
    send(
        &http,
        &format!("{esplora}/devnet/mine"),
        json!({ "blocks": 1 }),
    )
    .await?;
    ln.sync().await.ok();
    // The LSP's node syncs on the next block it sees.
    for _ in 0..120 {
        let balances: Option<Value> = match http
            .get(admin("/admin/ln/balances"))
            .bearer_auth(token)
            .send()
            .await
        {
            Ok(r) => r.json().await.ok(),
            Err(_) => None,
        };
        let spendable = balances.and_then(|b| b["onchain_spendable_sat"].as_u64());
        if spendable.is_some_and(|s| s >= capacity) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let open = json!({
        "node_id": ln.node_id().to_string(),
        "address": args.listen.to_string(),
        "amount_sat": capacity,
        "push_sat": args.push_sat,
    });
    let mut opened = false;
    for _ in 0..60 {
        let r = http
            .post(admin("/admin/ln/channels"))
            .bearer_auth(token)
            .json(&open)
            .send()
            .await?;
        if r.status().is_success() {
            opened = true;
            break;
        }
        // The LSP's node may not have synced its new coins yet.
        tracing::debug!(answer = %r.text().await.unwrap_or_default(), "the LSP cannot open yet");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if !opened {
        bail!("the LSP's node did not open a channel to this node");
    }
    for _ in 0..120 {
        let channels = ln.channels().await?;
        if channels.iter().any(|c| c.is_usable) {
            tracing::info!("channel with the LSP's node ready");
            return Ok(());
        }
        if channels.iter().any(|c| c.funding_txo.is_some()) {
            send(
                &http,
                &format!("{esplora}/devnet/mine"),
                json!({ "blocks": 1 }),
            )
            .await?;
        }
        ln.sync().await.ok();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    bail!("the channel with the LSP's node did not become ready")
}

/// What LDK keeps on chain per anchor channel to bump its closing transaction (sat).
const ANCHOR_RESERVE: u64 = 25_000;

async fn send(http: &reqwest::Client, url: &str, body: Value) -> Result<()> {
    let r = http.post(url).json(&body).send().await?;
    if !r.status().is_success() {
        bail!("{url}: {}", r.text().await.unwrap_or_default());
    }
    Ok(())
}

fn bad(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, Json(json!({ "error": message.to_string() }))).into_response()
}

async fn info(State(state): State<AppState>) -> Response {
    match state.ln.channels().await {
        Ok(channels) => {
            let ready: Vec<_> = channels.iter().filter(|c| c.is_usable).collect();
            Json(json!({
                "node_id": state.ln.node_id().to_string(),
                "channel_ready": !ready.is_empty(),
                "can_send_sat": ready.iter().map(|c| c.outbound_capacity_msat).sum::<u64>() / 1000,
                "can_receive_sat": ready.iter().map(|c| c.inbound_capacity_msat).sum::<u64>() / 1000,
            }))
            .into_response()
        }
        Err(e) => bad(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

async fn invoice(State(state): State<AppState>, Json(body): Json<Value>) -> Response {
    let Some(sats) = body["amount_sat"].as_u64().filter(|s| *s > 0) else {
        return bad(
            StatusCode::BAD_REQUEST,
            "amount_sat must be a whole number above 0",
        );
    };
    let description = body["description"]
        .as_str()
        .unwrap_or("from the Lightning Network");
    match state
        .ln
        .invoice(Amount::from_sat(sats), description, 3600)
        .await
    {
        Ok(invoice) => Json(json!({ "invoice": invoice })).into_response(),
        Err(e) => bad(StatusCode::BAD_REQUEST, e),
    }
}

async fn pay(State(state): State<AppState>, Json(body): Json<Value>) -> Response {
    let Some(text) = body["invoice"].as_str().map(str::trim) else {
        return bad(StatusCode::BAD_REQUEST, "invoice is missing");
    };
    let Ok(parsed) = text.parse::<ldk_node::lightning_invoice::Bolt11Invoice>() else {
        return bad(StatusCode::BAD_REQUEST, "not a BOLT11 invoice");
    };
    let hash = sha256::Hash::from_byte_array(parsed.payment_hash().to_byte_array());
    let (tx, rx) = oneshot::channel();
    state
        .waiting
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(hash, tx);
    let sent = state
        .ln
        .pay(OutsidePayment {
            invoice: text.to_string(),
            max_fee: Amount::from_sat(1_000),
            max_cltv: 2_016,
        })
        .await;
    match sent {
        Ok(PayOutcome::Sent | PayOutcome::InFlight) => {}
        Ok(PayOutcome::Refused(reason)) => {
            return Json(json!({ "paid": false, "reason": reason })).into_response()
        }
        Err(e) => return bad(StatusCode::BAD_REQUEST, e),
    }
    match tokio::time::timeout(Duration::from_secs(60), rx).await {
        Ok(Ok(Outcome::Paid {
            preimage,
            network_fee_msat,
            ..
        })) => Json(json!({
            "paid": true,
            "preimage": hex::encode(preimage),
            "fee_msat": network_fee_msat,
        }))
        .into_response(),
        Ok(Ok(Outcome::Failed { reason, .. })) => {
            Json(json!({ "paid": false, "reason": reason })).into_response()
        }
        _ => Json(json!({ "paid": false, "reason": "no outcome within 60 s" })).into_response(),
    }
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

/// The page: two forms over the JSON API.
const PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>The Lightning Network (demo)</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;background:#111;color:#eee}
section{background:#1c1c22;border-radius:12px;padding:1rem;margin:1rem 0}input,textarea{width:100%;box-sizing:border-box;margin:.3rem 0;padding:.5rem}
button{padding:.6rem 1rem;border-radius:8px;border:0;background:#f7931a;font-weight:600}.mono{font-family:monospace;word-break:break-all}</style></head>
<body><h1>⚡ The Lightning Network</h1>
<p>An outside Lightning node with a channel to the provider. Make an invoice and pay it from a wallet, or pay a wallet's invoice from here.</p>
<p id="info">…</p>
<section><h2>Get paid by a wallet</h2>
<input id="amount" type="number" min="1" value="1000" aria-label="amount in sats">
<input id="description" value="Coffee" aria-label="description">
<button onclick="makeInvoice()">Make invoice</button><p id="invoice" class="mono"></p></section>
<section><h2>Pay a wallet</h2>
<textarea id="pay" rows="4" placeholder="lnbcrt…" aria-label="invoice to pay"></textarea>
<button onclick="payInvoice()">Pay</button><p id="paid" role="status"></p></section>
<script>
async function call(path, body){const r=await fetch(path,body?{method:'POST',headers:{'content-type':'application/json'},body:JSON.stringify(body)}:{});return r.json();}
async function info(){const i=await call('/info');document.getElementById('info').textContent=i.error?i.error:(i.channel_ready?`Channel ready: can send ${i.can_send_sat} sats, can receive ${i.can_receive_sat} sats.`:'Opening its channel to the provider…');}
async function makeInvoice(){const r=await call('/invoice',{amount_sat:Number(document.getElementById('amount').value),description:document.getElementById('description').value});document.getElementById('invoice').textContent=r.invoice||r.error;}
async function payInvoice(){document.getElementById('paid').textContent='Paying…';const r=await call('/pay',{invoice:document.getElementById('pay').value});document.getElementById('paid').textContent=r.paid?'Paid ✓':('Not paid: '+(r.reason||r.error));info();}
info();setInterval(info,5000);
</script></body></html>"#;
