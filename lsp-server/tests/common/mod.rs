//! Shared setup for the LSP's integration tests: a devnet and an LSP on free loopback ports.

#![allow(dead_code)]

pub mod chain;
pub mod liquidity;
pub mod ln;
pub mod pay;
pub mod process;
pub mod puppet;
pub mod raw;
pub mod swarm;
pub mod tower;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bitcoin::Amount;
use devnet::{Devnet, DevnetConfig};
use lsp_server::{Config, FactoryOptions, PaymentOptions, Running};

/// A devnet with an LSP in front of it. Dropping it stops both.
pub struct Stack {
    pub devnet: Devnet,
    pub lsp: Running,
    pub data_dir: tempfile::TempDir,
}

impl Stack {
    pub fn http_url(&self) -> String {
        format!("http://{}", self.lsp.addr)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.lsp.addr)
    }

    /// The LSP's SQLite database, for checking what it stored.
    pub fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.data_dir.path().join("lsp.sqlite")).expect("open db")
    }
}

/// The admin API token of every test LSP.
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// The LSP configuration the tests use.
pub fn config(
    devnet: &Devnet,
    data_dir: &Path,
    listen: SocketAddr,
    factory: FactoryOptions,
    wallet_dir: Option<PathBuf>,
) -> Config {
    Config {
        network: bitcoin::Network::Regtest,
        allow_mainnet: false,
        esplora_url: devnet.esplora_url().to_string(),
        public_esplora_url: None,
        listen,
        data_dir: data_dir.to_path_buf(),
        wallet_dir,
        name: "test LSP".into(),
        regtest_faucet: None,
        admin_token: Some(ADMIN_TOKEN.into()),
        log_format: lsp_server::config::LogFormat::Text,
        factory,
        payments: lsp_server::config::PaymentOptions::default(),
        lightning: lsp_server::LightningOptions::default(),
    }
}

/// Starts a devnet and an LSP serving `wallet_dir` (if any).
pub async fn start(wallet_dir: Option<PathBuf>) -> Stack {
    start_with(FactoryOptions::default(), wallet_dir).await
}

/// Starts a devnet and an LSP with these factory settings.
pub async fn start_with(factory: FactoryOptions, wallet_dir: Option<PathBuf>) -> Stack {
    start_full(factory, PaymentOptions::default(), wallet_dir).await
}

/// Starts a devnet and an LSP with these factory and payment settings.
pub async fn start_full(
    factory: FactoryOptions,
    payments: PaymentOptions,
    wallet_dir: Option<PathBuf>,
) -> Stack {
    start_on(DevnetConfig::default(), factory, payments, wallet_dir).await
}

/// Starts a devnet as `devnet` says (e.g. a node with a higher relay floor) and an LSP with
/// these factory and payment settings.
pub async fn start_on(
    devnet: DevnetConfig,
    factory: FactoryOptions,
    payments: PaymentOptions,
    wallet_dir: Option<PathBuf>,
) -> Stack {
    let devnet = Devnet::start(devnet).await.expect("devnet starts");
    let data_dir = tempfile::tempdir().expect("temp dir");
    let listen = "127.0.0.1:0".parse().expect("valid address");
    init_logs();
    let mut config = config(&devnet, data_dir.path(), listen, factory, wallet_dir);
    config.payments = payments;
    let lsp = lsp_server::start(config).await.expect("LSP starts");
    Stack {
        devnet,
        lsp,
        data_dir,
    }
}

/// Factory settings for fast tests: `size` clients, short rounds, fast chain polling.
pub fn fast_factory(size: usize, min_clients: usize) -> FactoryOptions {
    FactoryOptions {
        factory_size: Some(size),
        min_clients,
        gather_secs: 60,
        round_timeout_secs: 10,
        reconnect_grace_secs: 2,
        funding_confirmations: Some(1),
        funding_bump_blocks: 3,
        chain_poll_ms: 100,
        active_blocks: None,
        dying_blocks: None,
        ladder_interval: None,
        underfilled_rung: lsp_server::config::Underfilled::Wait,
    }
}

/// Pays `amount` from the faucet to the LSP's wallet and confirms it.
/// The LSP's signed terms, as served at `/.well-known/superscalar.json`.
pub async fn terms(stack: &Stack) -> shared::terms::SignedTerms {
    reqwest::get(format!("{}/.well-known/superscalar.json", stack.http_url()))
        .await
        .expect("GET terms")
        .json()
        .await
        .expect("terms JSON")
}

pub async fn fund_lsp(stack: &Stack, amount: Amount) {
    let address = stack.lsp.wallet.next_address().expect("address");
    stack.devnet.faucet(&address, amount).await.expect("faucet");
    stack.devnet.mine(1).await.expect("mine");
    stack.lsp.wallet.sync().await.expect("wallet sync");
}

/// Swarm settings for these tests.
pub fn swarm_config(stack: &Stack, storage_root: &Path) -> swarm::SwarmConfig {
    swarm::SwarmConfig {
        ws_url: stack.ws_url(),
        esplora_url: stack.devnet.esplora_url().to_string(),
        network: bitcoin::Network::Regtest,
        confirmations: 1,
        storage_root: storage_root.to_path_buf(),
        reconnect_attempts: 30,
        reconnect_delay: Duration::from_millis(300),
        grace_secs: 10,
    }
}

/// Checks that `run` ended with an open factory and holds a verified path to its confirmed
/// funding outpoint; returns the funding txid.
pub async fn assert_verified_path(devnet: &Devnet, run: &swarm::ClientRun) -> bitcoin::Txid {
    use shared::ceremony::ClientOutcome;
    use shared::verify::{check_path, ClientPolicy};
    use wallet::session::{DirStorage, Storage};

    let report = run.result.as_ref().expect("the session ends without error");
    let ClientOutcome::Open { txid } = report.outcome else {
        panic!(
            "client {} did not end open: {:?}",
            run.index, report.outcome
        )
    };
    let mut storage = DirStorage::open(&run.storage_dir).expect("storage");
    let paths = storage.load_paths().await.expect("stored paths");
    let stored = paths
        .iter()
        .find(|p| p.path.funding_outpoint().txid == txid)
        .expect("a stored path spends the confirmed funding transaction");
    let path = &stored.path;
    check_path(path, &ClientPolicy::for_network(bitcoin::Network::Regtest))
        .expect("the stored path passes every client check");
    assert_eq!(path.client_key(), run.factory_key);
    assert!(path.is_fully_signed());
    // The path chains from the funding outpoint to the leaf, every signature verifies.
    let mut parent: Option<&shared::tree::TreeNode> = None;
    for node in path.nodes() {
        let spent = node.spent_outpoint();
        match parent {
            None => assert_eq!(spent, path.funding_outpoint()),
            Some(p) => {
                assert_eq!(spent.txid, p.txid());
                assert_eq!(Some(&node.prevout), p.tx.output.get(spent.vout as usize));
            }
        }
        let sig = node.signature.expect("signed");
        assert!(node.verify_signature(&sig), "node {} signature", node.id);
        parent = Some(node);
    }
    let dist = path.distribution();
    assert_eq!(dist.spent_outpoint(), path.funding_outpoint());
    assert!(dist.verify_signature(&dist.signature.expect("signed")));
    // The funding output is confirmed on chain exactly as the path expects it.
    let out = devnet
        .rpc()
        .get_tx_out(&path.funding_outpoint(), false)
        .await
        .expect("gettxout")
        .expect("the funding output is unspent and confirmed");
    assert!(out.confirmations >= 1);
    assert_eq!(out.value, path.funding_output().value);
    assert_eq!(out.script_pubkey, path.funding_output().script_pubkey);
    // Bitcoin Core itself accepts the first signed transaction of the path (on a node whose
    // relay floor is above the tree's fee rate, only for its fee: it needs a child then).
    let root = path.nodes()[0].signed_tx().expect("signed");
    let verdict = devnet
        .rpc()
        .test_mempool_accept(&[root])
        .await
        .expect("testmempoolaccept");
    assert!(
        verdict[0].is_allowed()
            || verdict[0].reject_reason.as_deref() == Some("min relay fee not met"),
        "bitcoind refuses the root: {:?}",
        verdict[0]
    );
    txid
}

/// The stored state of factory `id` in the LSP's database.
pub fn factory_state(stack: &Stack, id: u64) -> Option<String> {
    stack
        .db()
        .query_row(
            "SELECT state FROM factories WHERE id = ?1",
            [id as i64],
            |r| r.get(0),
        )
        .ok()
}

/// Waits (up to `secs`) until the LSP's database says factory `id` is in state `want`.
pub async fn wait_state(stack: &Stack, id: u64, want: &str, secs: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while factory_state(stack, id).as_deref() != Some(want) {
        assert!(
            std::time::Instant::now() < deadline,
            "factory {id} reaches {want}, is {:?}",
            factory_state(stack, id)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Stops the LSP and starts a new one on the same address and data dir, with these settings.
pub async fn restart(stack: Stack, factory: FactoryOptions, payments: PaymentOptions) -> Stack {
    let Stack {
        devnet,
        lsp,
        data_dir,
    } = stack;
    let addr = lsp.addr;
    lsp.stop().await.expect("the LSP stops");
    let mut config = config(&devnet, data_dir.path(), addr, factory, None);
    config.payments = payments;
    let lsp = lsp_server::start(config)
        .await
        .expect("the LSP starts again");
    Stack {
        devnet,
        lsp,
        data_dir,
    }
}

/// GETs an admin API path of the LSP at `base` (`http://…`) with the test token, as JSON.
pub async fn admin_get(base: &str, path: &str) -> serde_json::Value {
    reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("admin API")
        .json()
        .await
        .expect("JSON")
}

/// Logs of the LSP under test, shown for failing tests (`RUST_LOG` filters; default: warnings).
pub fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}
