//! The Lightning side of the tests: an LSP running its Lightning node, and an independent LDK
//! node standing for "the rest of the Lightning Network", both on loopback over the devnet.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use bitcoin::{Address, Amount, Network, Transaction, Txid};
use devnet::{Devnet, DevnetConfig};
use ldk_node::config::EsploraSyncConfig;
use ldk_node::lightning::ln::msgs::SocketAddress;
use ldk_node::{Event, Node};
use lsp_server::{FactoryOptions, PaymentOptions};
use serde_json::Value;

use super::{Stack, ADMIN_TOKEN};

/// A loopback address with a port free right now (LDK needs a real port, not 0: it tells
/// peers the address it was given).
pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

/// Starts a devnet and an LSP whose Lightning node listens on `ln_listen`.
pub async fn start(ln_listen: SocketAddr) -> Stack {
    start_with(
        ln_listen,
        FactoryOptions::default(),
        PaymentOptions::default(),
    )
    .await
}

/// Starts a devnet and an LSP with these settings whose Lightning node listens on `ln_listen`.
pub async fn start_with(
    ln_listen: SocketAddr,
    factory: FactoryOptions,
    payments: PaymentOptions,
) -> Stack {
    start_serving(ln_listen, factory, payments, None).await
}

/// [`start_with`], the LSP serving the built wallet from `wallet_dir`.
pub async fn start_serving(
    ln_listen: SocketAddr,
    factory: FactoryOptions,
    payments: PaymentOptions,
    wallet_dir: Option<std::path::PathBuf>,
) -> Stack {
    let devnet = Devnet::start(DevnetConfig::default())
        .await
        .expect("devnet starts");
    let data_dir = tempfile::tempdir().expect("temp dir");
    super::init_logs();
    let lsp = start_lsp(
        &devnet,
        data_dir.path(),
        free_addr(),
        ln_listen,
        factory,
        payments,
        wallet_dir,
    )
    .await;
    Stack {
        devnet,
        lsp,
        data_dir,
    }
}

async fn start_lsp(
    devnet: &Devnet,
    data_dir: &std::path::Path,
    listen: SocketAddr,
    ln_listen: SocketAddr,
    factory: FactoryOptions,
    payments: PaymentOptions,
    wallet_dir: Option<std::path::PathBuf>,
) -> lsp_server::Running {
    let mut config = super::config(devnet, data_dir, listen, factory, wallet_dir);
    config.payments = payments;
    config.lightning.ln_listen = Some(ln_listen);
    lsp_server::start(config).await.expect("LSP starts")
}

/// Stops the LSP cleanly and starts it again on the same addresses and data dir.
pub async fn restart(stack: Stack, ln_listen: SocketAddr) -> Stack {
    restart_with(
        stack,
        ln_listen,
        FactoryOptions::default(),
        PaymentOptions::default(),
    )
    .await
}

/// [`restart`] with these settings.
pub async fn restart_with(
    stack: Stack,
    ln_listen: SocketAddr,
    factory: FactoryOptions,
    payments: PaymentOptions,
) -> Stack {
    let Stack {
        devnet,
        lsp,
        data_dir,
    } = stack;
    let addr = lsp.addr;
    lsp.stop().await.expect("the LSP stops");
    let lsp = start_lsp(
        &devnet,
        data_dir.path(),
        addr,
        ln_listen,
        factory,
        payments,
        None,
    )
    .await;
    Stack {
        devnet,
        lsp,
        data_dir,
    }
}

/// An LSP the helpers below talk to: in-process ([`Stack`]) or the binary as a child process.
pub trait Target {
    /// Its HTTP base URL.
    fn http_url(&self) -> String;
    /// The devnet it runs on.
    fn devnet(&self) -> &Devnet;
}

impl Target for Stack {
    fn http_url(&self) -> String {
        Stack::http_url(self)
    }
    fn devnet(&self) -> &Devnet {
        &self.devnet
    }
}

/// Sends an admin API request with the test token; answers the status and the JSON body.
pub async fn admin(
    stack: &impl Target,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let client = reqwest::Client::new();
    let url = format!("{}{path}", stack.http_url());
    let mut request = match method {
        "GET" => client.get(url),
        "POST" => client.post(url),
        other => panic!("no method {other}"),
    }
    .bearer_auth(ADMIN_TOKEN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("the LSP answers");
    let status = response.status().as_u16();
    let text = response.text().await.expect("a body");
    let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, json)
}

/// An admin `GET` that must succeed.
pub async fn get(stack: &impl Target, path: &str) -> Value {
    let (status, body) = admin(stack, "GET", path, None).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

/// An admin `POST` that must succeed.
pub async fn post(stack: &impl Target, path: &str, body: Value) -> Value {
    let (status, answer) = admin(stack, "POST", path, Some(body)).await;
    assert_eq!(status, 200, "POST {path}: {answer}");
    answer
}

/// Polls `check` every 200 ms until it answers `Some`, for at most `secs`.
pub async fn wait_for<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A transaction as the devnet's Esplora serves it.
pub async fn transaction(stack: &Stack, txid: Txid) -> Transaction {
    let hex = reqwest::get(format!("{}/tx/{txid}/hex", stack.devnet.esplora_url()))
        .await
        .expect("Esplora answers")
        .text()
        .await
        .expect("hex");
    bitcoin::consensus::encode::deserialize_hex(&hex).expect("a transaction")
}

/// What `tx` pays in fees, given what its inputs spent.
pub fn fee(tx: &Transaction, spent: Amount) -> Amount {
    spent - tx.output.iter().map(|o| o.value).sum::<Amount>()
}

/// What an LDK node keeps on chain per anchor channel, and refuses a channel without.
pub const ANCHOR_RESERVE: Amount = Amount::from_sat(25_000);

/// An LDK node of its own, outside the LSP: a stand-in for the Lightning Network.
pub struct Outside {
    pub node: Node,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Outside {
    /// Builds and starts it on a free loopback port, reading the devnet's Esplora. It syncs only
    /// when told ([`Outside::sync`]), so tests decide when it sees blocks.
    pub fn start(devnet: &Devnet) -> Outside {
        let dir = tempfile::tempdir().expect("temp dir");
        let addr = free_addr();
        let mut builder = ldk_node::Builder::new();
        builder
            .set_network(Network::Regtest)
            .set_storage_dir_path(dir.path().to_string_lossy().into_owned())
            .set_chain_source_esplora(
                devnet.esplora_url().to_string(),
                Some(EsploraSyncConfig {
                    background_sync_config: None,
                }),
            )
            .set_log_facade_logger();
        builder
            .set_listening_addresses(vec![SocketAddress::from(addr)])
            .expect("an address");
        builder.set_node_alias("outside".into()).expect("an alias");
        let node = builder.build().expect("the outside node builds");
        node.start().expect("the outside node starts");
        Outside {
            node,
            addr,
            _dir: dir,
        }
    }

    /// Syncs it with the chain.
    pub fn sync(&self) {
        self.node.sync_wallets().expect("the outside node syncs");
    }

    /// A fresh address of its on-chain wallet.
    pub fn address(&self) -> Address {
        self.node
            .onchain_payment()
            .new_address()
            .expect("an address")
    }

    /// Waits (at most `secs`) for its next event, which must match `want`; acknowledges it.
    pub async fn expect_event(
        &self,
        secs: u64,
        what: &str,
        want: impl Fn(&Event) -> bool,
    ) -> Event {
        let event = tokio::time::timeout(Duration::from_secs(secs), self.node.next_event_async())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
        assert!(want(&event), "expected {what}, got {event:?}");
        self.node.event_handled().expect("event handled");
        event
    }
}

/// Funds the LSP's node with `funds` (and the outside node with its anchor reserve, without
/// which it refuses an anchor channel), opens a public channel of `capacity` to `outside`
/// pushing `push` to it, confirms it and waits until both sides have it ready; returns the
/// channel as the LSP's admin API shows it.
pub async fn open_channel_to(
    stack: &impl Target,
    outside: &Outside,
    funds: Amount,
    capacity: Amount,
    push: Amount,
) -> Value {
    let address = post(stack, "/admin/ln/address", serde_json::json!({})).await;
    let address: Address<bitcoin::address::NetworkUnchecked> = address["address"]
        .as_str()
        .expect("an address")
        .parse()
        .expect("valid");
    let address = address.require_network(Network::Regtest).expect("regtest");
    stack
        .devnet()
        .faucet(&address, funds)
        .await
        .expect("faucet");
    stack
        .devnet()
        .faucet(&outside.address(), ANCHOR_RESERVE)
        .await
        .expect("faucet");
    stack.devnet().mine(1).await.expect("mine");
    outside.sync();
    wait_for(30, "the LSP node's coins", || async {
        let b = get(stack, "/admin/ln/balances").await;
        (b["onchain_total_sat"].as_u64() == Some(funds.to_sat())).then_some(())
    })
    .await;
    post(
        stack,
        "/admin/ln/channels",
        serde_json::json!({
            "node_id": outside.node.node_id().to_string(),
            "address": outside.addr.to_string(),
            "amount_sat": capacity.to_sat(),
            "push_sat": push.to_sat(),
        }),
    )
    .await;
    outside
        .expect_event(30, "the channel pending", |e| {
            matches!(e, Event::ChannelPending { .. })
        })
        .await;
    let funding: bitcoin::OutPoint = wait_for(30, "the funding outpoint", || async {
        let channels = get(stack, "/admin/ln/channels").await;
        channels[0]["funding_txo"].as_str()?.parse().ok()
    })
    .await;
    wait_for(30, "the funding transaction in the mempool", || async {
        super::chain::known_at(stack.devnet(), funding.txid)
            .await
            .then_some(())
    })
    .await;
    stack.devnet().mine(6).await.expect("mine");
    outside.sync();
    outside
        .expect_event(30, "the channel ready", |e| {
            matches!(e, Event::ChannelReady { .. })
        })
        .await;
    wait_for(30, "the LSP's channel usable", || async {
        let channels = get(stack, "/admin/ln/channels").await;
        Some(channels[0].clone()).filter(|c| c["is_usable"] == true)
    })
    .await
}

/// A number of sats in a JSON view.
pub fn sat(v: &Value) -> Amount {
    Amount::from_sat(v.as_u64().unwrap_or_else(|| panic!("sats: {v}")))
}

/// The LSP node's balance in its one channel.
pub async fn lsp_channel_balance(stack: &impl Target) -> Amount {
    let balances = get(stack, "/admin/ln/balances").await;
    sat(&balances["lightning"][0]["amount_sat"])
}

/// An invoice of the outside node.
pub fn outside_invoice(outside: &Outside, amount: Amount, expiry_secs: u32) -> String {
    let description = ldk_node::lightning_invoice::Bolt11InvoiceDescription::Direct(
        ldk_node::lightning_invoice::Description::new("coffee".into()).expect("a description"),
    );
    outside
        .node
        .bolt11_payment()
        .receive(amount.to_sat() * 1000, &description, expiry_secs)
        .expect("the outside node makes an invoice")
        .to_string()
}

/// An LSP with a Lightning node on `ln_listen` (serving the wallet from `wallet_dir`, if any),
/// an outside node, and a public channel of `capacity` from the LSP's node pushing `push` to
/// it; the LSP's own wallet funded for factories.
pub async fn with_outside(
    ln_listen: SocketAddr,
    factory: FactoryOptions,
    payments: PaymentOptions,
    wallet_dir: Option<std::path::PathBuf>,
    (capacity, push): (Amount, Amount),
) -> (Stack, Outside) {
    let stack = start_serving(ln_listen, factory, payments, wallet_dir).await;
    let outside = Outside::start(&stack.devnet);
    open_channel_to(
        &stack,
        &outside,
        Amount::from_sat(1_000_000),
        capacity,
        push,
    )
    .await;
    super::fund_lsp(&stack, Amount::from_sat(2_000_000)).await;
    (stack, outside)
}
