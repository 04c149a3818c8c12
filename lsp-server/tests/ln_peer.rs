//! The demo's "rest of the Lightning Network": the real `ln-peer` binary beside a real LSP with
//! its Lightning node. The peer has the LSP's node open a public channel to it (through the
//! admin API) and confirms it; then it pays a wallet's invoice through its `/pay` API, and the
//! wallet pays an invoice made by its `/invoice` API, each to the sat.

mod common;

use std::process::Stdio;

use bitcoin::Amount;
use common::ln;
use common::pay::{funded_factory, join_fee_of, start_payer};
use common::swarm::ClientSpec;
use lsp_server::PaymentOptions;
use serde_json::{json, Value};
use shared::pay::policy::route_fee;
use wallet::pay::{MemoryPayStore, PaymentStatus};

const CAPACITY: u64 = 300_000;
const PUSH: u64 = 100_000;
const RECEIVED: Amount = Amount::from_sat(10_000);
const PAID: Amount = Amount::from_sat(3_000);

async fn call(url: &str, body: Option<Value>) -> Value {
    let http = reqwest::Client::new();
    let request = match body {
        Some(b) => http.post(url).json(&b),
        None => http.get(url),
    };
    request
        .send()
        .await
        .expect("the peer answers")
        .json()
        .await
        .expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_peer_pays_a_wallet_and_is_paid_by_it() {
    let stack = ln::start_with(
        ln::free_addr(),
        common::fast_factory(2, 2),
        PaymentOptions::default(),
    )
    .await;
    let dir = tempfile::tempdir().expect("temp dir");
    let token = dir.path().join("admin.token");
    std::fs::write(&token, common::ADMIN_TOKEN).expect("token file");
    let http_addr = ln::free_addr();
    let peer_url = format!("http://{http_addr}");
    let _peer = tokio::process::Command::new(env!("CARGO_BIN_EXE_ln-peer"))
        .arg("--esplora-url")
        .arg(stack.devnet.esplora_url())
        .arg("--lsp-url")
        .arg(stack.http_url())
        .arg("--lsp-admin-token")
        .arg(&token)
        .arg("--listen")
        .arg(ln::free_addr().to_string())
        .arg("--http")
        .arg(http_addr.to_string())
        .arg("--data-dir")
        .arg(dir.path().join("peer"))
        .args(["--capacity-sat", &CAPACITY.to_string()])
        .args(["--push-sat", &PUSH.to_string()])
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the ln-peer binary starts");
    let info = ln::wait_for(120, "the peer's channel ready", || async {
        let r = reqwest::get(format!("{peer_url}/info")).await.ok()?;
        let v: Value = r.json().await.ok()?;
        (v["channel_ready"] == true).then_some(v)
    })
    .await;
    assert!(
        info["can_send_sat"].as_u64().expect("sats") > RECEIVED.to_sat(),
        "{info}"
    );
    let channels = ln::get(&stack, "/admin/ln/channels").await;
    assert_eq!(channels[0]["value_sat"], CAPACITY, "{channels}");
    assert_eq!(
        channels[0]["counterparty_node_id"], info["node_id"],
        "{channels}"
    );

    common::fund_lsp(&stack, Amount::from_sat(2_000_000)).await;
    let storage = tempfile::tempdir().expect("temp dir");
    let config = common::swarm_config(&stack, storage.path());
    let spec = ClientSpec {
        channel: Amount::from_sat(100_000),
        liquidity: Amount::from_sat(10_000),
        ..ClientSpec::honest()
    };
    let runs = funded_factory(&stack, &config, spec, 2).await;
    let mut wallet = start_payer(&stack, &runs[0], MemoryPayStore::default());
    wallet.ready(30).await;

    // The page pays the wallet.
    let record = wallet
        .handle
        .invoice(RECEIVED, "from the page")
        .await
        .expect("an invoice");
    let paid = call(
        &format!("{peer_url}/pay"),
        Some(json!({ "invoice": record.invoice })),
    )
    .await;
    assert_eq!(paid["paid"], true, "{paid}");
    assert_eq!(paid["preimage"], hex::encode(record.preimage), "{paid}");
    let mut balance = RECEIVED - join_fee_of(&runs[0]);
    wallet.balance_becomes(balance, 30).await;

    // The wallet pays the page.
    let made = call(
        &format!("{peer_url}/invoice"),
        Some(json!({ "amount_sat": PAID.to_sat(), "description": "tea" })),
    )
    .await;
    let invoice = made["invoice"].as_str().expect("an invoice");
    let sent = wallet.handle.pay(invoice).await.expect("paid");
    assert_eq!(sent.status, PaymentStatus::Complete);
    let fees = common::terms(&stack).await.body.fees;
    balance -= PAID + route_fee(&fees, PAID);
    wallet.balance_becomes(balance, 30).await;
    // The wallet hears "paid" once the page reveals the preimage; the page's channel counts
    // the sats once its own commitment round with the LSP's node ends, a moment later.
    let want = info["can_send_sat"].as_u64().expect("sats") - RECEIVED.to_sat() + PAID.to_sat();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let after: Value = call(&format!("{peer_url}/info"), None).await;
        if after["can_send_sat"].as_u64() == Some(want) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the page can send {want} sat: {after}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
