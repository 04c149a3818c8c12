//! The real `lsp-server` binary as a child process: started on a data dir, its JSON log lines
//! collected as they come, and killed with SIGKILL (no shutdown code runs).

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bitcoin::Amount;
use devnet::Devnet;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::swarm::SwarmConfig;

/// One run of the LSP binary, its JSON log lines collected as they come.
pub struct LspProcess {
    child: Child,
    logs: Arc<Mutex<Vec<Value>>>,
}

impl LspProcess {
    /// Starts the binary for factories of `size` wallets (all needed), funding confirmed at
    /// one block.
    pub async fn start(devnet: &Devnet, data_dir: &Path, port: u16, size: usize) -> LspProcess {
        Self::start_with(devnet, data_dir, port, size, &[]).await
    }

    /// [`LspProcess::start`] with `extra` flags (e.g. `--ln-listen`).
    pub async fn start_with(
        devnet: &Devnet,
        data_dir: &Path,
        port: u16,
        size: usize,
        extra: &[String],
    ) -> LspProcess {
        let size = size.to_string();
        let mut child = Command::new(env!("CARGO_BIN_EXE_lsp-server"))
            .args(["--network", "regtest", "--log-format", "json"])
            .arg("--esplora-url")
            .arg(devnet.esplora_url())
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--admin-token", super::ADMIN_TOKEN])
            .args(["--factory-size", &size, "--min-clients", &size])
            .args(["--gather-secs", "120", "--round-timeout-secs", "10"])
            .args([
                "--reconnect-grace-secs",
                "5",
                "--funding-confirmations",
                "1",
            ])
            .args(["--chain-poll-ms", "100"])
            .args(extra)
            .env("RUST_LOG", "info,lsp_server=debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("the lsp-server binary starts");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let sink = logs.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    sink.lock().unwrap_or_else(PoisonError::into_inner).push(v);
                }
            }
        });
        answers(&format!("http://127.0.0.1:{port}"), "the LSP").await;
        LspProcess { child, logs }
    }

    /// Waits until `count` log lines satisfy `matches`.
    pub async fn wait_log(&self, what: &str, count: usize, matches: impl Fn(&Value) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let seen = self
                .logs
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .filter(|v| matches(v))
                .count();
            if seen >= count {
                return;
            }
            assert!(Instant::now() < deadline, "the LSP logs {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// SIGKILL: no shutdown code runs.
    pub async fn kill(mut self) {
        self.child.start_kill().expect("SIGKILL");
        let status = self.child.wait().await.expect("the LSP exits");
        assert!(!status.success(), "killed, not exited: {status}");
    }
}

/// Waits (at most 30 s) until the process serving `url` answers `GET /healthz`.
pub async fn answers(url: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::get(format!("{url}/healthz")).await.is_err() {
        assert!(Instant::now() < deadline, "{what} answers at {url}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn message(v: &Value) -> &str {
    v["fields"]["message"].as_str().unwrap_or_default()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Funds the LSP on `port` with 1,000,000 sat, confirmed.
pub async fn fund(devnet: &Devnet, port: u16) {
    let wallet = super::admin_get(&format!("http://127.0.0.1:{port}"), "/admin/wallet").await;
    let address: bitcoin::Address<bitcoin::address::NetworkUnchecked> = wallet["receive_address"]
        .as_str()
        .expect("an address")
        .parse()
        .expect("valid");
    devnet
        .faucet(&address.assume_checked(), Amount::from_sat(1_000_000))
        .await
        .expect("faucet");
    devnet.mine(1).await.expect("mine");
}

/// Native sessions against the LSP on `port`, reconnecting patiently across restarts.
pub fn swarm_config(devnet: &Devnet, port: u16, storage: &Path) -> SwarmConfig {
    SwarmConfig {
        ws_url: format!("ws://127.0.0.1:{port}/ws"),
        esplora_url: devnet.esplora_url().to_string(),
        network: bitcoin::Network::Regtest,
        confirmations: 1,
        storage_root: storage.to_path_buf(),
        reconnect_attempts: 60,
        reconnect_delay: Duration::from_millis(250),
        grace_secs: 10,
    }
}

/// A devnet, the real LSP binary for factories of two on a free port (funded), and one
/// confirmed factory of two wallets: what a test of the running process starts from.
pub struct ProcessPair {
    pub devnet: Devnet,
    pub lsp: LspProcess,
    pub data_dir: tempfile::TempDir,
    pub port: u16,
    /// The LSP's WebSocket URL.
    pub ws: String,
    /// The LSP's HTTP origin.
    pub http: String,
    /// The two wallets' runs.
    pub runs: Vec<super::swarm::ClientRun>,
    pub _storage: tempfile::TempDir,
}

impl ProcessPair {
    /// Starts it, both wallets of `spec`.
    pub async fn start(spec: super::swarm::ClientSpec) -> ProcessPair {
        let devnet = Devnet::start(devnet::DevnetConfig::default())
            .await
            .expect("devnet");
        let data_dir = tempfile::tempdir().expect("temp dir");
        let storage = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let lsp = LspProcess::start(&devnet, data_dir.path(), port, 2).await;
        fund(&devnet, port).await;
        let config = swarm_config(&devnet, port, storage.path());
        let clients = super::swarm::spawn(&config, &[spec; 2]);
        let runs = super::pay::funded_factory_of(&devnet, clients, 2).await;
        ProcessPair {
            devnet,
            lsp,
            data_dir,
            port,
            ws: format!("ws://127.0.0.1:{port}/ws"),
            http: format!("http://127.0.0.1:{port}"),
            runs,
            _storage: storage,
        }
    }
}
