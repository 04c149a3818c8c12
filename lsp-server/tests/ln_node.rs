//! The LSP's Lightning node against an independent LDK node standing for the rest of the
//! Lightning Network, both on loopback over the devnet: funded from the faucet, connected and a
//! public channel opened through the admin API, both ready, the LSP restarted, the channel
//! closed, and every balance on both sides reconciled to the sat with the transactions on chain.

mod common;

use bitcoin::{Amount, OutPoint};
use common::ln::{self, sat, Outside};
use ldk_node::Event;
use serde_json::{json, Value};

const LSP_FUNDS: Amount = Amount::from_sat(1_000_000);
const OUTSIDE_FUNDS: Amount = Amount::from_sat(100_000);
const CAPACITY: Amount = Amount::from_sat(500_000);
const PUSH: Amount = Amount::from_sat(100_000);
/// Each anchor output of a commitment transaction (paid by the opener).
const ANCHOR: Amount = Amount::from_sat(330);

async fn lsp_channel(stack: &common::Stack) -> Option<Value> {
    let channels = ln::get(stack, "/admin/ln/channels").await;
    channels.as_array().and_then(|c| c.first()).cloned()
}

async fn metric(stack: &common::Stack, name: &str) -> u64 {
    let (status, body) = ln::admin(stack, "GET", "/metrics", None).await;
    assert_eq!(status, 200);
    let text = body.as_str().expect("metrics are text");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} in {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lsp_opens_a_public_channel_to_an_outside_node_restarts_and_closes_it() {
    let ln_listen = ln::free_addr();
    let stack = ln::start(ln_listen).await;
    let outside = Outside::start(&stack.devnet);

    // The node: its id and where peers reach it; the admin routes need the token.
    let info = ln::get(&stack, "/admin/ln").await;
    let lsp_id = info["node_id"].as_str().expect("a node id").to_string();
    assert_eq!(info["listening_addresses"], json!([ln_listen.to_string()]));
    assert_eq!(info["uris"], json!([format!("{lsp_id}@{ln_listen}")]));
    assert_eq!(info["network"], "regtest");
    assert_eq!(info["alias"], "test LSP");
    let unauthenticated = reqwest::Client::new()
        .post(format!("{}/admin/ln/address", stack.http_url()))
        .send()
        .await
        .expect("the LSP answers");
    assert_eq!(unauthenticated.status().as_u16(), 401);
    let seed = stack.data_dir.path().join("ln.seed");
    assert_eq!(std::fs::read_to_string(&seed).expect("ln.seed").len(), 128);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&seed).expect("seed").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the seed is the owner's alone");
    }

    // Both nodes funded from the devnet; the LSP's node sees its coins at the next block by
    // itself.
    let address = ln::post(&stack, "/admin/ln/address", json!({})).await;
    let address: bitcoin::Address<bitcoin::address::NetworkUnchecked> = address["address"]
        .as_str()
        .expect("an address")
        .parse()
        .expect("valid");
    let address = address
        .require_network(bitcoin::Network::Regtest)
        .expect("regtest");
    let funding_in = stack
        .devnet
        .faucet(&address, LSP_FUNDS)
        .await
        .expect("faucet");
    stack
        .devnet
        .faucet(&outside.address(), OUTSIDE_FUNDS)
        .await
        .expect("faucet");
    stack.devnet.mine(1).await.expect("mine");
    ln::wait_for(30, "the LSP node's coins", || async {
        let b = ln::get(&stack, "/admin/ln/balances").await;
        (sat(&b["onchain_total_sat"]) == LSP_FUNDS).then_some(())
    })
    .await;
    outside.sync();
    assert_eq!(
        outside.node.list_balances().total_onchain_balance_sats,
        OUTSIDE_FUNDS.to_sat()
    );

    // Refusals before anything moves: a bad node id, a push of the whole channel.
    let outside_id = outside.node.node_id().to_string();
    let outside_addr = outside.addr.to_string();
    let (status, body) = ln::admin(
        &stack,
        "POST",
        "/admin/ln/channels",
        Some(json!({ "node_id": "02ab", "address": outside_addr, "amount_sat": 1000 })),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("node_id")),
        "{body}"
    );
    let (status, body) = ln::admin(
        &stack,
        "POST",
        "/admin/ln/channels",
        Some(json!({ "node_id": outside_id, "address": outside_addr, "amount_sat": 1000, "push_sat": 1000 })),
    )
    .await;
    assert_eq!(status, 400, "{body}");

    // Connect, then open a public channel pushing some sats to the outside node.
    ln::post(
        &stack,
        "/admin/ln/peers",
        json!({ "node_id": outside_id, "address": outside_addr }),
    )
    .await;
    let peers = ln::get(&stack, "/admin/ln/peers").await;
    assert_eq!(peers[0]["node_id"], outside_id.as_str(), "{peers}");
    assert_eq!(peers[0]["is_connected"], true, "{peers}");
    let opened = ln::post(
        &stack,
        "/admin/ln/channels",
        json!({
            "node_id": outside_id,
            "address": outside_addr,
            "amount_sat": CAPACITY.to_sat(),
            "push_sat": PUSH.to_sat(),
        }),
    )
    .await;
    let user_channel_id = opened["user_channel_id"]
        .as_str()
        .expect("an id")
        .to_string();
    outside
        .expect_event(30, "the channel pending", |e| {
            matches!(e, Event::ChannelPending { counterparty_node_id, .. } if counterparty_node_id.to_string() == lsp_id)
        })
        .await;
    let funding: OutPoint = ln::wait_for(30, "the funding outpoint", || async {
        lsp_channel(&stack).await?["funding_txo"]
            .as_str()?
            .parse()
            .ok()
    })
    .await;
    ln::wait_for(30, "the funding transaction in the mempool", || async {
        common::chain::known(&stack, funding.txid)
            .await
            .then_some(())
    })
    .await;

    // Six blocks: both sides see the channel ready.
    stack.devnet.mine(6).await.expect("mine");
    outside.sync();
    outside
        .expect_event(30, "the channel ready", |e| {
            matches!(e, Event::ChannelReady { .. })
        })
        .await;
    let channel = ln::wait_for(30, "the LSP's channel ready", || async {
        lsp_channel(&stack).await.filter(|c| c["is_ready"] == true)
    })
    .await;
    assert_eq!(channel["user_channel_id"], user_channel_id.as_str());
    assert_eq!(channel["counterparty_node_id"], outside_id.as_str());
    assert_eq!(sat(&channel["value_sat"]), CAPACITY);
    assert_eq!(channel["is_outbound"], true);
    assert_eq!(channel["is_announced"], true);
    let theirs = outside.node.list_channels();
    assert_eq!(theirs.len(), 1);
    assert!(theirs[0].is_channel_ready && !theirs[0].is_outbound);
    assert_eq!(theirs[0].funding_txo, Some(funding));
    assert_eq!(theirs[0].channel_value_sats, CAPACITY.to_sat());

    // The chain and both nodes agree to the sat: the funding transaction spent the LSP node's
    // one coin into the channel, change and fee; the outside node owns exactly the push; the
    // LSP's side is the rest, less the commitment fee and anchors it pays as opener.
    let funding_tx = ln::transaction(&stack, funding.txid).await;
    assert_eq!(funding_tx.input.len(), 1);
    assert_eq!(funding_tx.input[0].previous_output.txid, funding_in);
    assert_eq!(funding_tx.output[funding.vout as usize].value, CAPACITY);
    let open_fee = ln::fee(&funding_tx, LSP_FUNDS);
    let lsp_onchain = LSP_FUNDS - CAPACITY - open_fee;
    let balances = ln::get(&stack, "/admin/ln/balances").await;
    assert_eq!(
        sat(&balances["onchain_total_sat"]),
        lsp_onchain,
        "{balances}"
    );
    let item = &balances["lightning"][0];
    assert_eq!(item["kind"], "claimable_on_channel_close", "{balances}");
    let commitment_fee = sat(&item["commitment_fee_sat"]);
    assert_eq!(
        sat(&item["amount_sat"]) + commitment_fee + ANCHOR * 2,
        CAPACITY - PUSH,
        "{balances}"
    );
    let theirs = outside.node.list_balances();
    assert_eq!(theirs.total_lightning_balance_sats, PUSH.to_sat());
    assert_eq!(theirs.total_onchain_balance_sats, OUTSIDE_FUNDS.to_sat());

    // `/metrics` shows the same channel and capacities.
    let channel = lsp_channel(&stack).await.expect("the channel");
    assert_eq!(
        metric(&stack, "superscalar_ln_channels{state=\"ready\"}").await,
        1
    );
    assert_eq!(
        metric(&stack, "superscalar_ln_outbound_capacity_sats").await,
        channel["outbound_capacity_msat"].as_u64().expect("msat") / 1000
    );
    assert_eq!(
        metric(&stack, "superscalar_ln_inbound_capacity_sats").await,
        channel["inbound_capacity_msat"].as_u64().expect("msat") / 1000
    );

    // A clean restart: the same node, the same channel, reconnected to its peer.
    let stack = ln::restart(stack, ln_listen).await;
    let info = ln::get(&stack, "/admin/ln").await;
    assert_eq!(info["node_id"], lsp_id.as_str());
    ln::wait_for(60, "the channel usable again after the restart", || async {
        lsp_channel(&stack).await.filter(|c| c["is_usable"] == true)
    })
    .await;

    // An unknown channel is not closed; the channel closes cooperatively.
    let (status, body) = ln::admin(
        &stack,
        "POST",
        "/admin/ln/channels/12345/close",
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    // No body: a cooperative close.
    let (status, body) = ln::admin(
        &stack,
        "POST",
        &format!("/admin/ln/channels/{user_channel_id}/close"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["force"], false, "{body}");
    let closing = ln::wait_for(30, "the closing transaction", || async {
        common::chain::spender(&stack, funding.txid, funding.vout).await
    })
    .await;
    stack.devnet.mine(6).await.expect("mine");
    outside.sync();
    ln::wait_for(30, "the LSP's channel gone", || async {
        lsp_channel(&stack).await.is_none().then_some(())
    })
    .await;

    // The closing transaction pays the outside node exactly its push and the LSP's node the
    // rest less the fee; both wallets hold exactly that.
    let closing_tx = ln::transaction(&stack, closing).await;
    let close_fee = ln::fee(&closing_tx, CAPACITY);
    assert!(closing_tx.output.iter().any(|o| o.value == PUSH));
    ln::wait_for(30, "the LSP node's coins back on chain", || async {
        let b = ln::get(&stack, "/admin/ln/balances").await;
        (sat(&b["onchain_total_sat"]) == lsp_onchain + CAPACITY - PUSH - close_fee).then_some(())
    })
    .await;
    assert_eq!(
        outside.node.list_balances().total_onchain_balance_sats,
        (OUTSIDE_FUNDS + PUSH).to_sat()
    );
    assert_eq!(
        metric(&stack, "superscalar_ln_channels{state=\"ready\"}").await,
        0
    );
}
